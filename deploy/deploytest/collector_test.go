package deploytest

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// distributionTypes are the component types of otelcol-agentcost (builder-config.yaml) that the
// deployment configurations may use.
var distributionTypes = map[string][]string{
	"receivers":  {"otlp", "budget"},
	"processors": {"agentcost", "batch", "memory_limiter"},
	"exporters":  {"costledger", "otlp_grpc", "otlp_http", "debug", "prometheus"},
	"extensions": {"agentauth", "budgetledger", "file_storage", "healthcheckv2"},
}

// exposedPorts are the ports a containerised collector serves, by the component that serves them.
var exposedPorts = map[string]int{
	"otlp grpc":     4317,
	"otlp http":     4318,
	"budget":        4320,
	"prometheus":    9464,
	"healthcheckv2": 13133,
}

// collectorConfig is a collector configuration as plain YAML values.
type collectorConfig struct {
	Extensions map[string]map[string]any `yaml:"extensions"`
	Receivers  map[string]map[string]any `yaml:"receivers"`
	Processors map[string]map[string]any `yaml:"processors"`
	Exporters  map[string]map[string]any `yaml:"exporters"`
	Connectors map[string]map[string]any `yaml:"connectors"`
	Service    struct {
		Extensions []string `yaml:"extensions"`
		Pipelines  map[string]struct {
			Receivers  []string `yaml:"receivers"`
			Processors []string `yaml:"processors"`
			Exporters  []string `yaml:"exporters"`
		} `yaml:"pipelines"`
	} `yaml:"service"`
}

// componentType is the type of a component ID ("otlp/agents" is of type otlp).
func componentType(id string) string {
	typ, _, _ := strings.Cut(id, "/")
	return typ
}

// lookup walks nested maps along keys.
func lookup(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// ofType returns the configs of the components of one type, by ID.
func ofType(section map[string]map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, cfg := range section {
		if componentType(id) == typ {
			out[id] = cfg
		}
	}
	return out
}

// accessTokens returns the token list a budget receiver uses and its YAML key: its inline
// access.tokens, or the tokens of the agentauth extension its access.authenticator names.
func accessTokens(cfg collectorConfig, budget map[string]any) (string, []any) {
	if ext, ok := lookup(budget, "access", "authenticator").(string); ok {
		tokens, _ := lookup(cfg.Extensions[ext], "tokens").([]any)
		return "extensions." + ext + ".tokens", tokens
	}
	tokens, _ := lookup(budget, "access", "tokens").([]any)
	return "access.tokens", tokens
}

// containerFacts are what a containerised configuration exposes and reads.
type containerFacts struct {
	ports      map[int]string // port -> what serves it
	healthPath string
	tokenFiles []string
	policyFile string
	dataDirs   []string // directories the collector writes
}

// checkContainerConfig checks a configuration meant for a container: only the distribution's
// component types; every endpoint on 0.0.0.0 at its exposed port; the decision API, being on a
// non-loopback address, protected by token files; the durability contract (no batch processor or
// in-memory queue in front of costledger). It returns what the container must provide.
func checkContainerConfig(t *testing.T, name string, data []byte) containerFacts {
	t.Helper()
	var cfg collectorConfig
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	sections := map[string]map[string]map[string]any{
		"receivers": cfg.Receivers, "processors": cfg.Processors, "exporters": cfg.Exporters, "extensions": cfg.Extensions,
	}
	for section, comps := range sections {
		for id := range comps {
			if !slices.Contains(distributionTypes[section], componentType(id)) {
				t.Errorf("%s: %s.%s: type %q is not in the distribution (have %v)", name, section, id, componentType(id), distributionTypes[section])
			}
		}
	}
	if len(cfg.Connectors) > 0 {
		t.Errorf("%s: connectors: the distribution has none", name)
	}

	facts := containerFacts{ports: map[int]string{}}
	endpoint := func(what, where string, v any) {
		s, _ := v.(string)
		host, portText, err := net.SplitHostPort(s)
		port, perr := strconv.Atoi(portText)
		switch {
		case err != nil || perr != nil:
			t.Errorf("%s: %s endpoint %q: want host:port", name, where, s)
		case host != "0.0.0.0":
			t.Errorf("%s: %s endpoint %q: want 0.0.0.0 so the container's port is reachable", name, where, s)
		case port != exposedPorts[what]:
			t.Errorf("%s: %s endpoint %q: want port %d", name, where, s, exposedPorts[what])
		default:
			facts.ports[port] = what
		}
	}
	for id, c := range ofType(cfg.Receivers, "otlp") {
		endpoint("otlp grpc", "receivers."+id+".protocols.grpc", lookup(c, "protocols", "grpc", "endpoint"))
		endpoint("otlp http", "receivers."+id+".protocols.http", lookup(c, "protocols", "http", "endpoint"))
	}
	for id, c := range ofType(cfg.Receivers, "budget") {
		endpoint("budget", "receivers."+id, c["endpoint"])
		facts.policyFile, _ = c["policy_file"].(string)
		key, tokens := accessTokens(cfg, c)
		if len(tokens) == 0 {
			t.Errorf("%s: receivers.%s.access: required on a non-loopback endpoint (%s)", name, id, key)
		}
		roles := map[string]bool{}
		for i, tok := range tokens {
			file, _ := lookup(tok, "token_file").(string)
			role, _ := lookup(tok, "role").(string)
			subject, _ := lookup(tok, "subject").(string)
			if file == "" || subject == "" || (role != "agent" && role != "reviewer" && role != "forwarder") {
				t.Errorf("%s: %s[%d]: want token_file, subject and role agent, reviewer or forwarder", name, key, i)
			}
			roles[role] = true
			facts.tokenFiles = append(facts.tokenFiles, file)
		}
		if !roles["agent"] || !roles["reviewer"] {
			t.Errorf("%s: %s: want an agent and a reviewer token (roles %v)", name, key, roles)
		}
	}
	// OTLP takes the same tokens: every protocol authenticates with the agentauth extension the
	// decision API uses, and the agentcost processor refuses spans that arrive without it.
	for id, c := range ofType(cfg.Receivers, "otlp") {
		for _, proto := range []string{"grpc", "http"} {
			auth, _ := lookup(c, "protocols", proto, "auth", "authenticator").(string)
			if auth == "" || componentType(auth) != "agentauth" || cfg.Extensions[auth] == nil {
				t.Errorf("%s: receivers.%s.protocols.%s.auth.authenticator: want a configured agentauth extension, have %q", name, id, proto, auth)
			}
		}
	}
	for id, c := range ofType(cfg.Processors, "agentcost") {
		if lookup(c, "auth", "required") != true {
			t.Errorf("%s: processors.%s.auth.required: want true (spans without an authenticated sender are refused)", name, id)
		}
	}
	// The metrics are served by the prometheus exporter on the metrics pipeline the budget
	// receiver feeds, with agentcost's names kept.
	for id, c := range ofType(cfg.Exporters, "prometheus") {
		endpoint("prometheus", "exporters."+id, c["endpoint"])
		if c["translation_strategy"] != "UnderscoreEscapingWithoutSuffixes" || c["without_scope_info"] != true {
			t.Errorf("%s: exporters.%s: want translation_strategy UnderscoreEscapingWithoutSuffixes and without_scope_info true (the metric names and labels the rules and dashboard use)", name, id)
		}
	}
	for id, c := range ofType(cfg.Extensions, "healthcheckv2") {
		if c["use_v2"] != true {
			t.Errorf("%s: extensions.%s.use_v2: want true (the probes read the v2 status endpoint)", name, id)
		}
		endpoint("healthcheckv2", "extensions."+id+".http", lookup(c, "http", "endpoint"))
		facts.healthPath, _ = lookup(c, "http", "status", "path").(string)
		if facts.healthPath == "" {
			facts.healthPath = "/status" // healthcheckv2's default
		}
	}
	for id, c := range ofType(cfg.Extensions, "budgetledger") {
		if backend, _ := c["backend"].(string); backend != "" && backend != "embedded" {
			continue
		}
		dir, _ := c["directory"].(string)
		evidenceDir, _ := lookup(c, "evidence", "directory").(string)
		if dir == "" || evidenceDir == "" {
			t.Errorf("%s: extensions.%s: directory and evidence.directory must be set (the defaults are relative to the working directory)", name, id)
		}
		facts.dataDirs = append(facts.dataDirs, dir, evidenceDir)
	}
	for id, c := range ofType(cfg.Extensions, "file_storage") {
		dir, _ := c["directory"].(string)
		facts.dataDirs = append(facts.dataDirs, dir)
		if c["create_directory"] != true {
			t.Errorf("%s: extensions.%s.create_directory: want true (the volume starts empty)", name, id)
		}
	}
	for port, what := range exposedPortsByNumber() {
		if _, ok := facts.ports[port]; !ok {
			t.Errorf("%s: no %s endpoint on port %d", name, what, port)
		}
	}

	for pname, p := range cfg.Service.Pipelines {
		var ledgers []string
		for _, e := range p.Exporters {
			if componentType(e) == "costledger" {
				ledgers = append(ledgers, e)
			}
		}
		if len(ledgers) == 0 || !strings.HasPrefix(pname, "traces") {
			continue
		}
		for _, pr := range p.Processors {
			if componentType(pr) == "batch" {
				t.Errorf("%s: pipeline %s: processor %s in front of costledger acknowledges spans before their spend is booked", name, pname, pr)
			}
		}
		for _, e := range ledgers {
			if q, ok := lookup(cfg.Exporters[e], "sending_queue").(map[string]any); ok && q["storage"] == nil && q["wait_for_result"] != true {
				t.Errorf("%s: exporters.%s.sending_queue: in memory; the durability contract needs storage or wait_for_result", name, e)
			}
		}
	}
	return facts
}

func exposedPortsByNumber() map[int]string {
	out := map[int]string{}
	for what, port := range exposedPorts {
		out[port] = what
	}
	return out
}

func sortedPorts(ports map[int]string) []int {
	return slices.Sorted(maps.Keys(ports))
}

// rewritePaths replaces, in every string of v, a leading container path (a key of mounts) by its
// host directory; the longest matching mount wins.
func rewritePaths(v any, mounts map[string]string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = rewritePaths(e, mounts)
		}
	case []any:
		for i, e := range x {
			x[i] = rewritePaths(e, mounts)
		}
	case string:
		best := ""
		for mount := range mounts {
			if (x == mount || strings.HasPrefix(x, mount+"/")) && len(mount) > len(best) {
				best = mount
			}
		}
		if best != "" {
			return mounts[best] + strings.TrimPrefix(x, best)
		}
	}
	return v
}

// distributionComponents returns the component types the built distribution lists
// (`otelcol-agentcost components`), by section.
func distributionComponents(t *testing.T, bin string) map[string][]string {
	t.Helper()
	out, err := run("", bin, "components")
	if err != nil {
		t.Fatalf("otelcol-agentcost components: %v\n%s", err, out)
	}
	var doc map[string]any // buildinfo is a map, the component sections are lists
	if err := yaml.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("otelcol-agentcost components: %v\n%s", err, out)
	}
	comps := map[string][]string{}
	for section := range distributionTypes {
		list, _ := doc[section].([]any)
		for _, c := range list {
			name, _ := lookup(c, "name").(string)
			comps[section] = append(comps[section], name)
		}
	}
	return comps
}

// validateInContainerLayout runs `otelcol-agentcost validate` on a container configuration whose
// absolute paths have been moved to host directories (mounts: container path -> host directory,
// already populated by the caller).
func validateInContainerLayout(t *testing.T, name string, data []byte, mounts map[string]string) {
	t.Helper()
	bin := collectorBinary(t)
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	out, err := yaml.Marshal(rewritePaths(doc, mounts))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run("", bin, "validate", "--config="+path); err != nil {
		t.Fatalf("%s: otelcol-agentcost validate: %v\n%s", name, err, out)
	}
}

// TestDistributionTypes checks the component types the deployment configurations may use against
// what the built distribution lists.
func TestDistributionTypes(t *testing.T) {
	comps := distributionComponents(t, collectorBinary(t))
	for section, types := range distributionTypes {
		for _, typ := range types {
			if !slices.Contains(comps[section], typ) {
				t.Errorf("otelcol-agentcost has no %s of type %s (has %v)", section, typ, comps[section])
			}
		}
	}
}

// writeFiles writes files (name -> content) into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// under reports whether path lies in dir.
func under(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..")
}

func describePorts(ports map[int]string) string {
	var parts []string
	for _, p := range sortedPorts(ports) {
		parts = append(parts, fmt.Sprintf("%d (%s)", p, ports[p]))
	}
	return strings.Join(parts, ", ")
}
