package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusexporter"
	"github.com/rogpeppe/go-internal/testscript"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/agentcost/agentcost/exporter/costledgerexporter"
	"github.com/agentcost/agentcost/extension/budgetledgerextension"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/internal/testutil/readmetest"
	"github.com/agentcost/agentcost/receiver/budgetreceiver"
)

// readmeEntry is one "$ agentcostctl ..." of a README session block and the output shown under it.
type readmeEntry struct {
	where string
	args  []string
	out   []string
	code  int
}

// notTranscript marks a README block that only illustrates (placeholders in it cannot run); it
// must be the line right before the block's fence.
const notTranscript = "<!-- illustration, not a transcript -->"

// TestREADMESessions runs the transcript scripts (testdata/script/*.txtar) and checks that every
// session README.md shows is one of their runs of the CLI: the same arguments, the same output
// (stdout, then stderr) and the same exit code ("[exit N]"; none shown is 0). In README output a
// line "..." stands for any number of lines and "…" inside a line for any text (a random chain id,
// a decision id, a time). AGENTCOSTCTL_UPDATE_SCRIPTS=1 rewrites the scripts' golden files from
// the real output; the README is then updated by hand, and this test says where.
func TestREADMESessions(t *testing.T) {
	dir := t.TempDir()
	endpoint := startCollector(t)
	t.Run("scripts", func(t *testing.T) {
		p := scriptParams(t, dir, "AGENTCOST_ENDPOINT", endpoint)
		setup := p.Setup
		p.Setup = func(env *testscript.Env) error {
			if err := setup(env); err != nil {
				return err
			}
			// The collector's tokens, as files a reviewer and an agent would keep.
			if err := os.WriteFile(filepath.Join(env.WorkDir, "reviewer.token"), []byte(sessionReviewerToken+"\n"), 0o600); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(env.WorkDir, "research-agent.token"), []byte(sessionAgentToken+"\n"), 0o600)
		}
		p.UpdateScripts = os.Getenv("AGENTCOSTCTL_UPDATE_SCRIPTS") == "1"
		testscript.Run(t, p)
	})
	if t.Failed() {
		return
	}
	var runs []transcript
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var tr transcript
		if err := json.Unmarshal(data, &tr); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, tr)
	}
	entries := readmeEntries(t, "README.md")
	if len(entries) < 20 {
		t.Fatalf("found %d sessions in README.md: the parser missed them", len(entries))
	}
	for _, e := range entries {
		var candidates []transcript
		for _, r := range runs {
			if slices.EqualFunc(e.args, r.Args, matchLine) {
				candidates = append(candidates, r)
			}
		}
		if len(candidates) == 0 {
			t.Errorf("%s: `agentcostctl %s` is run by no script in testdata/script", e.where, strings.Join(e.args, " "))
			continue
		}
		var last string
		ok := false
		for _, r := range candidates {
			got := outputLines(r.Stdout + r.Stderr)
			if r.Code == e.code && matchLines(e.out, got) {
				ok = true
				break
			}
			last = "exit " + strconv.Itoa(r.Code) + ":\n" + strings.Join(got, "\n")
		}
		if !ok {
			t.Errorf("%s: `agentcostctl %s`: README shows (exit %d)\n%s\n\nthe CLI printed (%s)", e.where, strings.Join(e.args, " "),
				e.code, strings.Join(e.out, "\n"), last)
		}
	}
}

// Tokens of the collector the online session runs against.
const (
	sessionAgentToken    = "research-agent-session-token-0001"
	sessionReviewerToken = "reviewer-alice-session-token-0001"
)

// startCollector runs a collector with the decision API (the budget receiver on the shipped
// single-node policy, an embedded ledger, access tokens for research-agent and a reviewer) and
// returns the API's URL.
func startCollector(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	api, metrics := collectortest.Endpoint(t), collectortest.Endpoint(t)
	policy, err := filepath.Abs(filepath.Join("..", "..", "deploy", "single-node", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	factories := func() (otelcol.Factories, error) {
		var f otelcol.Factories
		var err error
		f.Telemetry = otelconftelemetry.NewFactory()
		if f.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](budgetledgerextension.NewFactory()); err != nil {
			return f, err
		}
		if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](budgetreceiver.NewFactory()); err != nil {
			return f, err
		}
		f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](costledgerexporter.NewFactory(), prometheusexporter.NewFactory())
		return f, err
	}
	collectortest.Run(t, factories, fmt.Sprintf(`
extensions:
  budgetledger:
    directory: %[1]s/ledger
    evidence: {directory: %[1]s/evidence}
receivers:
  budget:
    endpoint: %[2]s
    policy_file: %[3]s
    access:
      tokens:
        - {token: %[4]s, role: agent, subject: research-agent, teams: [growth]}
        - {token: %[5]s, role: reviewer, subject: alice@example.com}
exporters:
  costledger: {}
  prometheus: {endpoint: %[6]s, translation_strategy: UnderscoreEscapingWithoutSuffixes, without_scope_info: true, metric_expiration: 1h}
service:
  telemetry: {metrics: {level: none}}
  extensions: [budgetledger]
  pipelines:
    metrics: {receivers: [budget], exporters: [prometheus]}
`, dir, api, policy, sessionAgentToken, sessionReviewerToken, metrics))
	return "http://" + api
}

var (
	exitLine   = regexp.MustCompile(`^\[exit (\d+)\]$`)
	endComment = regexp.MustCompile(`\s{2,}#\s.*$`)
)

// readmeEntries parses the "$ agentcostctl" sessions of the plain code blocks of a README.
func readmeEntries(t *testing.T, path string) []readmeEntry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var out []readmeEntry
	for _, b := range readmetest.Blocks(t, path, "") {
		if b.Line >= 2 && strings.TrimSpace(lines[b.Line-2]) == notTranscript {
			continue
		}
		blines := strings.Split(strings.TrimSuffix(b.Text, "\n"), "\n")
		var cur *readmeEntry
		flush := func() {
			if cur == nil {
				return
			}
			for len(cur.out) > 0 && strings.TrimSpace(cur.out[len(cur.out)-1]) == "" {
				cur.out = cur.out[:len(cur.out)-1]
			}
			if n := len(cur.out); n > 0 {
				if m := exitLine.FindStringSubmatch(cur.out[n-1]); m != nil {
					cur.code, _ = strconv.Atoi(m[1])
					cur.out = cur.out[:n-1]
				}
			}
			out = append(out, *cur)
			cur = nil
		}
		for i := 0; i < len(blines); i++ {
			l := blines[i]
			if !strings.HasPrefix(l, "$ ") {
				if cur != nil {
					cur.out = append(cur.out, strings.TrimRight(l, " "))
				}
				continue
			}
			flush()
			start := i
			cmd := strings.TrimPrefix(l, "$ ")
			for strings.HasSuffix(cmd, "\\") && i+1 < len(blines) {
				i++
				cmd = strings.TrimSuffix(cmd, "\\") + " " + strings.TrimSpace(blines[i])
			}
			cmd = endComment.ReplaceAllString(cmd, "")
			args := splitArgs(cmd)
			if len(args) == 0 || args[0] != "agentcostctl" {
				continue
			}
			cur = &readmeEntry{where: path + ":" + strconv.Itoa(b.Line+1+start), args: args[1:]}
		}
		flush()
	}
	return out
}

// splitArgs splits a shell command line on blanks, honouring single and double quotes.
func splitArgs(s string) []string {
	var (
		args  []string
		cur   strings.Builder
		quote rune
		inArg bool
	)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inArg = r, true
		case r == ' ' || r == '\t':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

// outputLines splits output into lines without trailing blanks or a final empty line.
func outputLines(s string) []string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	return lines
}

// matchLines matches README lines against real output: "..." is any number of lines, "…" in a
// line any text.
func matchLines(want, got []string) bool {
	if len(want) == 0 {
		return len(got) == 0
	}
	if want[0] == "..." {
		for i := 0; i <= len(got); i++ {
			if matchLines(want[1:], got[i:]) {
				return true
			}
		}
		return false
	}
	return len(got) > 0 && matchLine(want[0], got[0]) && matchLines(want[1:], got[1:])
}

func matchLine(want, got string) bool {
	if !strings.Contains(want, "…") {
		return want == got
	}
	parts := strings.Split(want, "…")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$").MatchString(got)
}

// TestMatchLines pins the README wildcards.
func TestMatchLines(t *testing.T) {
	for _, tc := range []struct {
		want, got []string
		ok        bool
	}{
		{[]string{"a", "b"}, []string{"a", "b"}, true},
		{[]string{"a"}, []string{"a", "b"}, false},
		{[]string{"a", "..."}, []string{"a", "b", "c"}, true},
		{[]string{"...", "c"}, []string{"a", "b", "c"}, true},
		{[]string{"a", "...", "c"}, []string{"a", "c"}, true},
		{[]string{"chain …, seq 3"}, []string{"chain XYZ, seq 3"}, true},
		{[]string{"chain …, seq 3"}, []string{"chain XYZ, seq 4"}, false},
		{[]string{"a.b"}, []string{"axb"}, false},
	} {
		if got := matchLines(tc.want, tc.got); got != tc.ok {
			t.Errorf("matchLines(%q, %q) = %v, want %v", tc.want, tc.got, got, tc.ok)
		}
	}
	if got := splitArgs(`prices lint prices.json --reason "per-second prices" -o 'a b'`); !slices.Equal(got,
		[]string{"prices", "lint", "prices.json", "--reason", "per-second prices", "-o", "a b"}) {
		t.Errorf("splitArgs: %q", got)
	}
}
