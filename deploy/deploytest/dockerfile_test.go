package deploytest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/internal/pricing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int
	cmd  string // upper case
	args string
}

// stage is one build stage: its FROM and the instructions after it.
type stage struct {
	from         string // image, without "--platform=..." and "AS name"
	name         string
	instructions []instruction
}

// parseDockerfile splits a Dockerfile into stages.
func parseDockerfile(t *testing.T, data []byte) []stage {
	t.Helper()
	var stages []stage
	var pending strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if pending.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if pending.Len() == 0 {
			start = n
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending.WriteString(cont + " ")
			continue
		}
		pending.WriteString(line)
		cmd, args, _ := strings.Cut(pending.String(), " ")
		pending.Reset()
		in := instruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			var st stage
			fields := strings.Fields(in.args)
			for i := 0; i < len(fields); i++ {
				switch {
				case strings.HasPrefix(fields[i], "--"):
				case strings.EqualFold(fields[i], "AS") && i+1 < len(fields):
					st.name = fields[i+1]
					i++
				default:
					st.from = fields[i]
				}
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("Dockerfile line %d: %s before FROM", in.line, in.cmd)
			}
			continue
		}
		stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

// TestDockerfile checks the image's basic facts: a golang:1.26 builder making a static, trimmed,
// stripped binary; a distroless (or scratch with CA certificates) final stage running as uid 10001;
// the ports the default configuration serves exposed; the configuration at /etc/agentcost and the
// data volume at /var/lib/agentcost.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, readFile(t, deployPath(t, "docker", "Dockerfile")))
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stages", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build.from, "golang:1.26") {
		t.Errorf("builder FROM %q, want golang:1.26", build.from)
	}
	var buildRun string
	for _, in := range build.instructions {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			buildRun = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "go build", "-trimpath", "./cmd/otelcol-agentcost"} {
		if !strings.Contains(buildRun, want) {
			t.Errorf("go build step %q lacks %s", buildRun, want)
		}
	}
	if flags := ldflags(buildRun); !slices.Contains(flags, "-s") || !slices.Contains(flags, "-w") {
		t.Errorf("go build -ldflags %q: want -s -w", flags)
	}

	scratch := final.from == "scratch"
	if !scratch && !strings.HasPrefix(final.from, "gcr.io/distroless/static") {
		t.Errorf("final FROM %q, want distroless static or scratch", final.from)
	}
	var user, entrypoint, cmd string
	var exposed []int
	var volumes, copies []string
	for _, in := range final.instructions {
		switch in.cmd {
		case "USER":
			user = in.args
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
				if err != nil {
					t.Errorf("line %d: EXPOSE %q", in.line, p)
				}
				exposed = append(exposed, n)
			}
		case "VOLUME":
			volumes = append(volumes, in.args)
		case "ENTRYPOINT":
			entrypoint = in.args
		case "CMD":
			cmd = in.args
		case "COPY":
			copies = append(copies, in.args)
		case "RUN":
			t.Errorf("line %d: RUN in the final stage (distroless and scratch have no shell)", in.line)
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if uid != "10001" {
		t.Errorf("final USER %q, want uid 10001 (numeric, so runAsNonRoot can verify it)", user)
	}
	if scratch && !strings.Contains(strings.Join(copies, "\n"), "ca-certificates") {
		t.Error("scratch final stage without CA certificates")
	}

	// The default configuration the image carries.
	configData := readFile(t, deployPath(t, "docker", "config.yaml"))
	facts := checkContainerConfig(t, "deploy/docker/config.yaml", configData)
	if got, want := slices.Sorted(slices.Values(exposed)), sortedPorts(facts.ports); !slices.Equal(got, want) {
		t.Errorf("EXPOSE %v, want the configuration's ports %s", got, describePorts(facts.ports))
	}
	if !strings.Contains(entrypoint, "/otelcol-agentcost") || !strings.Contains(cmd, "--config=/etc/agentcost/config.yaml") {
		t.Errorf("ENTRYPOINT %s CMD %s: want /otelcol-agentcost --config=/etc/agentcost/config.yaml", entrypoint, cmd)
	}
	if !strings.Contains(strings.Join(volumes, " "), "/var/lib/agentcost") {
		t.Errorf("VOLUME %v: want /var/lib/agentcost", volumes)
	}
	copied := map[string]bool{}
	for _, c := range copies {
		fields := strings.Fields(c)
		var srcs []string
		for _, f := range fields[:len(fields)-1] {
			if !strings.HasPrefix(f, "--") {
				srcs = append(srcs, f)
			}
		}
		if strings.Contains(c, "--from=") {
			continue
		}
		dst := fields[len(fields)-1]
		for _, src := range srcs {
			if _, err := os.Stat(filepath.Join(repoRoot(t), src)); err != nil {
				t.Errorf("COPY %s: %v", src, err)
			}
			copied[path.Join(dst, path.Base(src))] = true
		}
	}
	for _, want := range []string{"/etc/agentcost/config.yaml", facts.policyFile} {
		if !copied[want] {
			t.Errorf("the image does not contain %s (COPY %v)", want, copies)
		}
	}
	for _, dir := range facts.dataDirs {
		if !under(dir, "/var/lib/agentcost") {
			t.Errorf("data directory %s is not on the /var/lib/agentcost volume", dir)
		}
	}
	if _, err := policy.Parse("deploy/docker/policy.yaml", readFile(t, deployPath(t, "docker", "policy.yaml"))); err != nil {
		t.Errorf("the image's policy: %v", err)
	}
}

// ldflags returns the flags of -ldflags="..." in a go build command line.
func ldflags(cmdline string) []string {
	_, rest, ok := strings.Cut(cmdline, "-ldflags=")
	if !ok {
		return nil
	}
	quote := rest[0]
	if quote != '"' && quote != '\'' {
		return strings.Fields(rest)[:1]
	}
	value, _, _ := strings.Cut(rest[1:], string(quote))
	return strings.Fields(value)
}

// TestDockerfileValidate validates the image's default configuration with the real binary and
// starts the collector on it, with the image's paths moved to temporary directories:
// /etc/agentcost holds the files the image copies there, /run/secrets/agentcost the token files a
// user mounts, /var/lib/agentcost the data volume.
func TestDockerfileValidate(t *testing.T) {
	data := readFile(t, deployPath(t, "docker", "config.yaml"))
	facts := checkContainerConfig(t, "deploy/docker/config.yaml", data)
	etc, secrets, lib := t.TempDir(), t.TempDir(), t.TempDir()
	writeFiles(t, etc, map[string]string{
		"config.yaml": string(data),
		"policy.yaml": string(readFile(t, deployPath(t, "docker", "policy.yaml"))),
	})
	for _, file := range facts.tokenFiles {
		if !under(file, "/run/secrets/agentcost") {
			t.Fatalf("token file %s is not under /run/secrets/agentcost", file)
		}
		writeFiles(t, secrets, map[string]string{path.Base(file): randomToken(t)})
	}
	mounts := map[string]string{
		"/etc/agentcost":         etc,
		"/run/secrets/agentcost": secrets,
		"/var/lib/agentcost":     lib,
	}
	validateInContainerLayout(t, "deploy/docker/config.yaml", data, mounts)
	startInContainerLayout(t, "deploy/docker/config.yaml", data, mounts)
}

// TestDockerignore checks that the build context keeps every file the build needs: Go sources,
// go.mod and go.sum, embedded data, and the files the Dockerfile copies.
func TestDockerignore(t *testing.T) {
	var patterns []string
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, deployPath(t, "docker", "Dockerfile.dockerignore"))))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	root := repoRoot(t)
	needed := []string{"go.mod", "go.sum", "deploy/docker/config.yaml", "deploy/docker/policy.yaml",
		"internal/pricing/data/" + pricing.DefaultFile, "api/openapi.yaml"}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			rel, _ := filepath.Rel(root, p)
			needed = append(needed, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range needed {
		if pat := ignoredBy(f, patterns); pat != "" {
			t.Errorf("%s is excluded from the build context by %q", f, pat)
		}
	}
	for _, f := range []string{".git/config", "data/ledger/ledger.db", "agentcostprocessor.test"} {
		if ignoredBy(f, patterns) == "" {
			t.Errorf("%s is in the build context; want it excluded", f)
		}
	}
}

// ignoredBy returns the pattern that excludes file (slash-separated, relative to the context), or
// "". It follows .dockerignore's rules for the patterns used here: a pattern matches the path or
// one of its parent directories; a leading "**/" matches any number of directories.
func ignoredBy(file string, patterns []string) string {
	parts := strings.Split(file, "/")
	for _, pat := range patterns {
		for i := 1; i <= len(parts); i++ {
			prefix := strings.Join(parts[:i], "/")
			if ok, _ := path.Match(pat, prefix); ok {
				return pat
			}
			if rest, ok := strings.CutPrefix(pat, "**/"); ok {
				if ok, _ := path.Match(rest, parts[i-1]); ok {
					return pat
				}
			}
		}
	}
	return ""
}

func randomToken(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
