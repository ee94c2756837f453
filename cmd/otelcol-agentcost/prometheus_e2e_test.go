package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/sim"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
)

// budgetAlert is the shipped rule that fires at 80% of an agent's budget.
const budgetAlert = "AgentcostAgentBudgetHigh"

// budgetAlertFor replaces the shipped rule's "for" in the test's copy of the rules; see
// TestPrometheusFiresAgentBudgetAlert.
const budgetAlertFor = 2 * time.Second

// promPolicy gives steady-agent-001 a $2 day budget that agentsim's traffic below crosses within
// seconds, and steady-agent-002 one it cannot reach in the run.
const promPolicy = `version: v1
policy_version: prometheus-e2e-1
default_decision: allow
budgets:
  agents:
    steady-agent-001: {limit_usd: 2, window: day}
    steady-agent-002: {limit_usd: 1000, window: day}
`

// TestPrometheusFiresAgentBudgetAlert closes the operator's loop with a real Prometheus server:
// agentsim's steady fleet spends through the collector (OTLP into the agentcost processor and
// costledger exporter, decisions from the budget receiver), Prometheus scrapes the exporter's
// /metrics every second and evaluates deploy/prometheus/agentcost-rules.yaml, and the agent-budget
// alert must fire for the agent past 80% of its budget, and only for it. Prometheus must also hold
// the spend each agent ran, as agentsim counted it.
func TestPrometheusFiresAgentBudgetAlert(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a Prometheus server and the simulated fleet for several seconds")
	}
	promBin := lookPathOrSkip(t, "prometheus")

	dir := t.TempDir()
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(promPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	prices, err := filepath.Abs("../agentsim/sim-prices.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fc := startFullCollector(t, fullOptions{policy: policyPath, prices: prices, publish: time.Second,
		settle: 100 * time.Millisecond, logLevel: "error"})
	grpcEndpoint, apiEndpoint, metricsEndpoint := fc.otlp, fc.api, fc.metrics

	rules := writeRulesWithShortFor(t, "../../deploy/prometheus/agentcost-rules.yaml", budgetAlert, budgetAlertFor)
	prom := startPrometheus(t, promBin, rules, metricsEndpoint)

	// agentsim's steady fleet: 30 actions a second over two agents for 3 s, each action 0 to 3
	// calls of 2,000 input and 500 output tokens at $15 per 1M tokens ($0.0375 a call), about $1
	// a second per agent: steady-agent-001 reaches its $2 limit and is denied from then on.
	pricer := simPricer(t, prices)
	exp, err := sim.NewOTLPExporter(context.Background(), grpcEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	r, err := sim.RunSteady(context.Background(), sim.SteadyOptions{
		Fleet: sim.FleetConfig{DecisionURL: "http://" + apiEndpoint, Pricer: pricer, Exporter: exp,
			FlushPerAction: true, ThrottleWait: 20 * time.Millisecond},
		Agents: 2, Team: "sim", Rate: 30, Duration: 3 * time.Second, Concurrency: 4, Seed: 5,
		InputTokens: 2_000, OutputTokens: 500, RunPrefix: "prom-e2e",
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors != 0 || r.SpansFailed != 0 {
		t.Fatalf("agentsim: errors %d %q, spans failed %d", r.Errors, r.ErrorSamples, r.SpansFailed)
	}
	limits := map[string]money.Nanos{"steady-agent-001": 2 * money.NanosPerUSD, "steady-agent-002": 1000 * money.NanosPerUSD}
	spent := map[string]money.Nanos{}
	for _, a := range r.Agents {
		spent[a.Agent] = a.Spent
	}
	// The run must have pushed steady-agent-001 past 80% (and kept steady-agent-002 below it),
	// or the alert below proves nothing.
	var wantFiring []string
	for agent, limit := range limits {
		if spent[agent]*10 >= limit*8 {
			wantFiring = append(wantFiring, agent)
		}
	}
	if len(wantFiring) != 1 || wantFiring[0] != "steady-agent-001" {
		t.Fatalf("agentsim spent %v against limits %v; want only steady-agent-001 at 80%% or more", spent, limits)
	}
	// The budget receiver denied what would have passed the limit.
	if spent["steady-agent-001"] > limits["steady-agent-001"] {
		t.Errorf("steady-agent-001 ran %s, past its %s limit", spent["steady-agent-001"], limits["steady-agent-001"])
	}

	// Prometheus holds each agent's spend as agentsim ran it (a float counter: within 1 µ$).
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := prom.spendByAgent(t)
		ok := len(got) == len(spent)
		for agent, want := range spent {
			if d := got[agent] - want; d > 1000 || d < -1000 {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sum by (agent) (agentcost_spend_usd_total) is %v in Prometheus; agentsim ran %v", got, spent)
		}
		time.Sleep(250 * time.Millisecond)
	}

	// The agent-budget alert fires for steady-agent-001, at its utilization after the run (spent
	// over the limit: no reservation is left), and stays silent for steady-agent-002.
	wantUtil := float64(spent["steady-agent-001"]) / float64(limits["steady-agent-001"])
	deadline = time.Now().Add(60 * time.Second)
	for {
		alerts := prom.alerts(t, budgetAlert)
		a := alerts["steady-agent-001"]
		v, _ := strconv.ParseFloat(a.Value, 64)
		if a.State == "firing" && v > wantUtil-1e-6 && v < wantUtil+1e-6 {
			if a.Labels["scope"] != "agent" || a.Labels["window"] != "day" {
				t.Errorf("%s labels %v; want scope agent, window day", budgetAlert, a.Labels)
			}
			if !strings.Contains(a.Annotations["summary"], "steady-agent-001") {
				t.Errorf("%s summary %q does not name steady-agent-001", budgetAlert, a.Annotations["summary"])
			}
			if other, ok := alerts["steady-agent-002"]; ok {
				t.Errorf("%s is %s for steady-agent-002, which spent %s of $1000", budgetAlert, other.State, spent["steady-agent-002"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not firing for steady-agent-001 at utilization %.6f within 60s; alerts %+v\nprometheus log:\n%s",
				budgetAlert, wantUtil, alerts, prom.log.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("agentsim: %d actions at %.1f/s, spent %v; decision p50 %.2f ms",
		r.Ran.Actions, r.ActionsPerSecond, spent, r.DecisionLatency.P50Ms)
}

// lookPathOrSkip finds a program the test needs; without it the test is skipped, or fails when
// CI is "true" (CI installs it).
func lookPathOrSkip(t *testing.T, name string) string {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		msg := name + " not found in PATH: the Prometheus end-to-end test DID NOT RUN (install it, e.g. apt-get install prometheus)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// writeRulesWithShortFor copies the rule file into a temporary directory with the named alert's
// "for" shortened to at most max, and returns the copy's path. The shipped rule waits a minute
// (so that one noisy scrape does not page anyone); the test keeps its expression but would
// otherwise wait that minute on every run. A short "for" that is not zero still takes the alert
// through pending to firing.
func writeRulesWithShortFor(t *testing.T, path, alert string, max time.Duration) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	rule := findRule(&doc, alert)
	if rule == nil {
		t.Fatalf("%s has no alert %s", path, alert)
	}
	if forNode := mappingValue(rule, "for"); forNode != nil {
		d, err := model.ParseDuration(forNode.Value)
		if err != nil {
			t.Fatalf("%s: alert %s: for %q: %v", path, alert, forNode.Value, err)
		}
		if time.Duration(d) > max {
			forNode.Value = model.Duration(max).String()
		}
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(copyPath, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return copyPath
}

// findRule returns the mapping of the rule that defines alert, under groups[].rules[].
func findRule(doc *yaml.Node, alert string) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	groups := mappingValue(doc.Content[0], "groups")
	if groups == nil {
		return nil
	}
	for _, g := range groups.Content {
		rules := mappingValue(g, "rules")
		if rules == nil {
			continue
		}
		for _, r := range rules.Content {
			if a := mappingValue(r, "alert"); a != nil && a.Value == alert {
				return r
			}
		}
	}
	return nil
}

// mappingValue returns the value of key in a YAML mapping node, or nil.
func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// promServer is a Prometheus server owned by one test.
type promServer struct {
	base string
	log  *lockedBuffer
}

// startPrometheus runs prometheus on a free loopback port, scraping target's /metrics and
// evaluating rules every second, waits until it is ready and kills it when the test ends.
func startPrometheus(t *testing.T, bin, rules, target string) *promServer {
	t.Helper()
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, fmt.Appendf(nil, `global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: agentcost
    static_configs: [{targets: [%q]}]
`, rules, target), 0o600); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := range 3 { // the free port can be taken between finding and binding it
		listen := collectortest.Endpoint(t)
		p := &promServer{base: "http://" + listen, log: new(lockedBuffer)}
		cmd := exec.Command(bin, "--config.file="+config, "--web.listen-address="+listen,
			"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("data-%d", attempt)), "--log.level=warn")
		cmd.Stdout, cmd.Stderr = p.log, p.log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
		if lastErr = p.waitReady(exited); lastErr == nil {
			return p
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	t.Fatalf("starting prometheus: %v", lastErr)
	return nil
}

func (p *promServer) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(p.base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("prometheus exited: %s", p.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prometheus on %s not ready within 30s: %s", p.base, p.log.String())
		}
	}
}

// promAlert is one alert of /api/v1/alerts.
type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	Value       string            `json:"value"`
}

// alerts returns the active (pending or firing) alerts named name, by their id label.
func (p *promServer) alerts(t *testing.T, name string) map[string]promAlert {
	t.Helper()
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Alerts []promAlert `json:"alerts"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/alerts", &body)
	out := map[string]promAlert{}
	for _, a := range body.Data.Alerts {
		if a.Labels["alertname"] == name {
			out[a.Labels["id"]] = a
		}
	}
	return out
}

// spendByAgent returns sum by (agent) (agentcost_spend_usd_total), in nano-dollars.
func (p *promServer) spendByAgent(t *testing.T) map[string]money.Nanos {
	t.Helper()
	var body struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/query?query="+url.QueryEscape("sum by (agent) (agentcost_spend_usd_total)"), &body)
	out := map[string]money.Nanos{}
	for _, s := range body.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			t.Fatalf("spend of %q: value %v: %v", s.Metric["agent"], s.Value[1], err)
		}
		n, err := money.FromUSD(v)
		if err != nil {
			t.Fatal(err)
		}
		out[s.Metric["agent"]] = n
	}
	return out
}

func (p *promServer) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(p.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}
