package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/internal/testutil/componentdoc"
)

// TestSelfTelemetryNames: the collector's own telemetry, scraped from its Prometheus reader as
// deployments scrape it, exposes each component's internal metrics under the names their
// metadata.yaml declares (otelcol_<name>: the default reader adds no _total and no unit suffix),
// and every otelcol_ name the alert rules use is one of them. The observable metrics are reported from the start;
// one authenticated LLM span that claims another agent brings the processor's and agentauth's
// counters.
func TestSelfTelemetryNames(t *testing.T) {
	root := filepath.Join("..", "..")
	declared := map[string]bool{} // exposed name → must appear on this scrape
	var prefixes []string
	for _, dir := range []string{"processor/agentcostprocessor", "extension/agentauthextension",
		"extension/budgetledgerextension", "receiver/budgetreceiver", "exporter/costledgerexporter"} {
		md, err := componentdoc.Load(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		prefixes = append(prefixes, "otelcol_"+md.Status.Class+"_"+md.Type+"_")
		for name, m := range md.Telemetry.Metrics {
			declared[componentdoc.Exposed(name)] = m.Observable()
		}
	}
	for _, name := range []string{"processor_agentcost_spans_priced", "processor_agentcost_cost_usd",
		"processor_agentcost_spans_agent_overridden", "extension_agentauth_authenticated"} {
		key := componentdoc.Exposed(name)
		if _, ok := declared[key]; !ok {
			t.Fatalf("%s is not declared in any metadata.yaml", key)
		}
		declared[key] = true
	}

	rules, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "agentcost-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`otelcol_[a-z0-9_]+`).FindAllString(string(rules), -1) {
		if _, ok := declared[name]; !ok {
			t.Errorf("deploy/prometheus/agentcost-rules.yaml uses %s, which no metadata.yaml declares", name)
		}
	}

	dir := t.TempDir()
	grpcEP, selfEP := collectortest.Endpoint(t), collectortest.Endpoint(t)
	host, port, _ := strings.Cut(selfEP, ":")
	collectortest.Run(t, components, fmt.Sprintf(`
extensions:
  agentauth:
    tokens:
      - {token: %[1]s, role: agent, subject: research-agent}
  budgetledger:
    directory: %[2]s/ledger
    evidence: {directory: %[2]s/evidence}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: %[3]s, auth: {authenticator: agentauth}}
processors:
  agentcost: {}
exporters:
  costledger: {}
service:
  telemetry:
    logs: {level: warn}
    metrics:
      readers:
        - pull: {exporter: {prometheus: {host: %[4]s, port: %[5]s}}}
  extensions: [agentauth, budgetledger]
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [costledger]}
`, e2eAgentToken, dir, grpcEP, host, port))

	exportSpans(t, grpcEP, []sdktrace.ReadOnlySpan{agentSpan(1, time.Now(), "drafting-agent", 1000, 100)},
		otlptracegrpc.WithHeaders(map[string]string{"authorization": "Bearer " + e2eAgentToken}))

	var missing, unknown []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		exposed := scrapeNames(t, "http://"+selfEP+"/metrics")
		missing, unknown = nil, nil
		for name, required := range declared {
			if required && !exposed[name] {
				missing = append(missing, name)
			}
		}
		for name := range exposed {
			own := slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(name, p) })
			if _, ok := declared[name]; own && !ok {
				unknown = append(unknown, name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	sort.Strings(missing)
	sort.Strings(unknown)
	if len(missing) > 0 {
		t.Errorf("declared metrics not exposed under their declared names: %v", missing)
	}
	if len(unknown) > 0 {
		t.Errorf("exposed under names no metadata.yaml declares: %v", unknown)
	}
}

// scrapeNames returns the series names of a Prometheus text page: what Prometheus stores as
// __name__ and rules select.
func scrapeNames(t *testing.T, url string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, l := range strings.Split(httpGet(t, url), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if end := strings.IndexAny(l, "{ "); end > 0 {
			names[l[:end]] = true
		}
	}
	return names
}
