package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/internal/sim"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/processor/agentcostprocessor"
)

// TestVersion: `agentsim version` and `--version` print the build's version line on stdout.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version", "-version"} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{arg}, &stdout, &stderr); code != 0 || stderr.Len() != 0 {
			t.Fatalf("%s: exit %d, stderr %q", arg, code, stderr.String())
		}
		if got := stdout.String(); !strings.HasPrefix(got, "agentsim ") || !strings.Contains(got, runtime.Version()) {
			t.Errorf("%s printed %q, want agentsim's version line with %s", arg, got, runtime.Version())
		}
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no scenario", nil, 2, "usage: agentsim runaway|creep|steady"},
		{"help", []string{"help"}, 0, "usage: agentsim"},
		{"unknown scenario", []string{"stampede"}, 2, `unknown scenario "stampede"`},
		{"scenario help", []string{"runaway", "-h"}, 0, "-auto-approve-as"},
		{"unknown flag", []string{"runaway", "--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"bad output", []string{"runaway", "--output", "xml"}, 2, `--output "xml" is not text or json`},
		{"extra argument", []string{"runaway", "now"}, 2, `unexpected arguments ["now"]`},
		{"no bound", []string{"runaway", "--batches", "0"}, 2, "--batches 0 needs --duration"},
		{"bad speed", []string{"runaway", "--speed", "0"}, 2, "--speed: speed must be a positive"},
		{"per-batch loop agent", []string{"runaway", "--loop-agent", "drafting-agent"}, 2, "runs one action per batch"},
		{"no decision url", []string{"runaway", "--decision-url", ""}, 2, "use --ungoverned"},
		{"bad run prefix", []string{"runaway", "--run-prefix", "a b"}, 2, "must not contain spaces"},
		{"unknown model", []string{"runaway", "--model", "nope-llm"}, 1, `model "nope-llm" (provider "sim") has no price`},
		{"missing price file", []string{"runaway", "--prices", "/nonexistent/prices.yaml"}, 1, "/nonexistent/prices.yaml"},
		{"degrade ungoverned", []string{"runaway", "--ungoverned", "--degrade-to", "sim-llm-mini"}, 2, "--degrade-to needs the decision API"},
		{"degrade unknown model", []string{"runaway", "--degrade-to", "nope-mini"}, 2, `--degrade-to: model "nope-mini" (provider "sim") has no price`},
		{"degrade not runaway", []string{"steady", "--degrade-to", "sim-llm-mini"}, 2, "--degrade-to is a runaway flag"},
		{"steady zero rate", []string{"steady", "--rate", "0"}, 2, "rate must be a positive"},
		{"steady no agents", []string{"steady", "--agents", "0"}, 2, "agents must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.code, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q on a failed start", stdout.String())
			}
		})
	}
}

// TestPolicyGovernsTheRunaway evaluates the shipped policy for the runaway fleet's requests: each
// of the article's layers answers the action it is meant for.
func TestPolicyGovernsTheRunaway(t *testing.T) {
	p, err := policy.Load("policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	table, err := priceTable("")
	if err != nil {
		t.Fatal(err)
	}
	pricer, err := sim.NewPricer(table, "sim-llm", "sim")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.DefaultRunawayConfig()
	arith, err := cfg.Arithmetic(pricer)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := cfg.Runaway(pricer)
	if err != nil {
		t.Fatal(err)
	}
	find := func(agent string, repeat int) *sim.Action {
		for _, a := range plan.Actions {
			if a.Agent == agent && a.Repeat == repeat {
				return a
			}
		}
		t.Fatalf("no action of %s repeat %d", agent, repeat)
		return nil
	}
	request := func(a *sim.Action) policy.Request {
		return policy.Request{RunID: a.RunID, AgentID: a.Agent, Action: a.Topic, RiskTags: a.RiskTags, EstimatedCost: a.Cost,
			Items: a.Items, Team: a.Team}
	}
	fleet, ok := p.Budget(policy.ScopeFleet, "")
	if !ok {
		t.Fatal("the policy has no fleet budget")
	}
	// The throttle and pause levels must fall inside one simulated day of the runaway fleet.
	if fleet.Limit >= arith.DayCost || fleet.Window != policy.Day {
		t.Fatalf("fleet limit %s per %s; want a day limit below the fleet's %s a day", fleet.Limit, fleet.Window, arith.DayCost)
	}
	atLevel := func(num, den int64) policy.State {
		var s policy.State
		s.Usage[policy.ScopeFleet].Spent = money.Nanos(int64(fleet.Limit) * num / den)
		return s
	}
	now := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	research, enrichment, drafting := find("research-agent", 0), find("enrichment-agent", 0), find("drafting-agent", 0)
	repeat1, repeat2 := find("research-agent", 1), find("research-agent", 2)
	anomalous := policy.State{LastActionAnomaly: now.Add(-time.Second)}
	// Were the loop never declared, its run (one agent's batch) would hold the first round and
	// three repeats when the fourth asks.
	undeclared := cfg
	undeclared.Loop.DeclareAfter = cfg.Loop.Repeats
	loopPlan, err := undeclared.Runaway(pricer)
	if err != nil {
		t.Fatal(err)
	}
	var runSpent policy.State
	var repeat4 *sim.Action
	for _, a := range loopPlan.Actions {
		if a.Agent == "research-agent" && a.Batch == cfg.Loop.Batch && a.Round == 1 && a.Repeat < 4 {
			runSpent.Usage[policy.ScopeRun].Spent += a.Cost
		}
		if a.Agent == "research-agent" && a.Repeat == 4 {
			repeat4 = a
		}
	}

	tests := []struct {
		name     string
		action   *sim.Action
		state    policy.State
		decision policy.Decision
		rule     string
	}{
		{"a research round runs under constraints", research, policy.State{}, policy.AllowWithConstraints, "constrain-llm-calls"},
		{"an enrichment round too", enrichment, policy.State{}, policy.AllowWithConstraints, "constrain-llm-calls"},
		{"the batch-generate above $50 waits for a reviewer", drafting, policy.State{}, policy.RequireApproval, "approve-expensive-batch"},
		{"the first, undeclared repeat runs", repeat1, policy.State{}, policy.AllowWithConstraints, "constrain-llm-calls"},
		{"a declared loop repeat is denied", repeat2, policy.State{}, policy.Deny, "deny-unbounded-loop"},
		{"an agent just flagged anomalous is throttled", research, anomalous, policy.Throttle, "throttle-anomalous"},
		{"the run budget stops an undeclared loop", repeat4, runSpent, policy.Deny, policy.RuleRunBudget},
		{"the fleet at 95% pauses", enrichment, atLevel(95, 100), policy.Deny, policy.RuleFleet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := policy.Evaluate(p, request(tt.action), tt.state, now)
			if o.Decision != tt.decision || o.RuleID != tt.rule {
				t.Errorf("%s %s ($%s): %s by %q (%s); want %s by %q", tt.action.Agent, tt.action.Topic, tt.action.Cost,
					o.Decision, o.RuleID, o.Reason, tt.decision, tt.rule)
			}
		})
	}
	// At 80% the fleet throttles to throttle_rate per agent.
	if o := policy.Evaluate(p, request(enrichment), atLevel(80, 100), now); o.FleetLevel != policy.FleetThrottled || o.FleetRate.Limit.IsZero() {
		t.Errorf("at 80%%: level %s, fleet rate %+v; want throttle with a per-agent rate", o.FleetLevel, o.FleetRate)
	}
	// drafting-agent's day budget ends before a day of batch-generates.
	var draftSpent policy.State
	draftSpent.Usage[policy.ScopeAgent].Spent = 6 * drafting.Cost
	if o := policy.Evaluate(p, request(drafting), draftSpent, now); o.Decision != policy.Deny || o.RuleID != policy.RuleAgentBudget {
		t.Errorf("drafting-agent after six batches: %s by %q, want deny by %s", o.Decision, o.RuleID, policy.RuleAgentBudget)
	}
}

// TestCollectorConfigReferencesShippedFiles checks the demo collector configuration's wiring:
// the processor prices with sim-prices.yaml, the budget receiver reads policy.yaml, and the
// exporter and receiver share the embedded ledger.
func TestCollectorConfigReferencesShippedFiles(t *testing.T) {
	data, err := os.ReadFile("collector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Extensions struct {
			Budgetledger struct {
				Backend   string `yaml:"backend"`
				Directory string `yaml:"directory"`
			} `yaml:"budgetledger"`
		} `yaml:"extensions"`
		Receivers struct {
			Budget struct {
				Endpoint   string `yaml:"endpoint"`
				PolicyFile string `yaml:"policy_file"`
				Ledger     string `yaml:"ledger"`
			} `yaml:"budget"`
		} `yaml:"receivers"`
		Processors struct {
			Agentcost struct {
				Prices struct {
					Files []string `yaml:"files"`
				} `yaml:"prices"`
			} `yaml:"agentcost"`
		} `yaml:"processors"`
		Exporters struct {
			Costledger struct {
				Ledger string `yaml:"ledger"`
			} `yaml:"costledger"`
		} `yaml:"exporters"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	root := "../.." // the configuration's paths are relative to the repository root
	files := append([]string{cfg.Receivers.Budget.PolicyFile}, cfg.Processors.Agentcost.Prices.Files...)
	want := []string{"policy.yaml", "sim-prices.yaml"}
	for i, f := range files {
		if i >= len(want) || filepath.Clean(filepath.Join(root, f)) != filepath.Clean(filepath.Join(root, "cmd/agentsim", want[i])) {
			t.Errorf("collector.yaml refers to %q, want cmd/agentsim/%s", f, want[min(i, len(want)-1)])
		}
	}
	if cfg.Extensions.Budgetledger.Backend != "embedded" || !strings.HasPrefix(cfg.Extensions.Budgetledger.Directory, "./data/") ||
		cfg.Receivers.Budget.Ledger != "budgetledger" || cfg.Exporters.Costledger.Ledger != "budgetledger" || cfg.Receivers.Budget.Endpoint != "localhost:4320" {
		t.Errorf("collector.yaml wiring %+v", cfg)
	}
}

// TestRunawayOverOTLP runs the ungoverned runaway through the binary's flags against a real
// collector (OTLP receiver, the agentcost processor with sim-prices.yaml, a capture exporter):
// the spans arrive over gRPC and the collector prices them at exactly the plan's cost.
func TestRunawayOverOTLP(t *testing.T) {
	capture := &collectortest.Capture{}
	endpoint := collectortest.Endpoint(t)
	factories := func() (otelcol.Factories, error) {
		var f otelcol.Factories
		var err error
		f.Telemetry = otelconftelemetry.NewFactory()
		if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](otlpreceiver.NewFactory()); err != nil {
			return f, err
		}
		if f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](agentcostprocessor.NewFactory()); err != nil {
			return f, err
		}
		f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](collectortest.CaptureFactory(capture))
		return f, err
	}
	prices, err := filepath.Abs("sim-prices.yaml")
	if err != nil {
		t.Fatal(err)
	}
	collectortest.Run(t, factories, fmt.Sprintf(`
receivers:
  otlp: {protocols: {grpc: {endpoint: %s}}}
processors:
  agentcost: {prices: {files: [%q]}}
exporters:
  capture: {}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [capture]}
`, endpoint, prices))

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"runaway", "--ungoverned", "--batches", "1", "--loop-batch", "1", "--loop-repeats", "2",
		"--speed", "1e12", "--otlp-endpoint", endpoint, "--output", "json", "--run-prefix", "otlp-test"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	// Progress goes to stderr as the run goes (issue 13: silent until its report), the last tenth
	// and the flush included.
	for _, want := range []string{"agentsim runaway: 43/43 actions done (100%)", "agentsim runaway: all agents done; flushing spans"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if n := strings.Count(stderr.String(), "actions done"); n != 10 {
		t.Errorf("%d progress lines for 43 actions, want one per tenth (10):\n%s", n, stderr.String())
	}
	var report struct {
		Plan struct {
			Actions int     `json:"actions"`
			Calls   int     `json:"calls"`
			CostUSD float64 `json:"cost_usd"`
		} `json:"plan"`
		SpansSent int64 `json:"spans_sent"`
		Errors    int   `json:"errors"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	// One batch (41 actions, 300 calls) and two loop repeats of 5 calls.
	if report.Plan.Actions != 43 || report.Plan.Calls != 310 || report.Errors != 0 || report.SpansSent != 43+310 {
		t.Fatalf("report %+v", report)
	}
	deadline := time.Now().Add(10 * time.Second)
	for int64(len(capture.Spans())) < report.SpansSent && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	spans := capture.Spans()
	if int64(len(spans)) != report.SpansSent {
		t.Fatalf("collector received %d spans, agentsim sent %d", len(spans), report.SpansSent)
	}
	var priced money.Nanos
	n := 0
	for _, s := range spans {
		v, ok := s.Attributes().Get("agentcost.cost_usd")
		if !ok {
			continue
		}
		c, err := money.FromUSD(v.Double())
		if err != nil {
			t.Fatal(err)
		}
		priced += c
		n++
	}
	// Batch: $225; repeat j re-reads 5 transcripts: 5 calls of (40K + j x 250K) input + 10K output at $15 per 1M.
	want := money.Nanos(225*money.NanosPerUSD) + money.Nanos(5*(300_000+550_000)*15_000)
	if n != 310 || priced != want {
		t.Errorf("the collector priced %d spans at %s, want 310 calls at %s", n, priced, want)
	}
	if money.Nanos(report.Plan.CostUSD*money.NanosPerUSD+0.5) != want {
		t.Errorf("the report's plan %v USD, want %s", report.Plan.CostUSD, want)
	}
}
