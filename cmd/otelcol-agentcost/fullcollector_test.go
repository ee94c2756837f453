package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/testutil/collectortest"
)

// accessToken is one entry of the budget receiver's access.tokens.
type accessToken struct{ token, role, subject string }

// fullOptions configure startFullCollector.
type fullOptions struct {
	// policy is the policy file's path (required).
	policy string
	// prices is a price file for the agentcost processor; empty for the embedded table only.
	prices string
	// tokens, when set, configure the receiver's access; otherwise the loopback API is open.
	tokens []accessToken
	// publish and settle are the receiver's publish_interval and settle_interval (0: defaults).
	publish, settle time.Duration
	// evidenceLogs routes the receiver's evidence records to a debug exporter.
	evidenceLogs bool
	// logLevel is the collector's log level (default warn).
	logLevel string
	// console serves the reviewer console at /console/ on the decision API.
	console bool
	// budgetExtra is more of the budget receiver's configuration, YAML lines indented by four.
	budgetExtra string
}

// fullCollector is a running collector with every agentcost component, on free loopback ports.
type fullCollector struct {
	otlp    string // OTLP/gRPC endpoint
	api     string // decision API host:port
	metrics string // the prometheus exporter's /metrics host:port
}

// startFullCollector runs the distribution in-process with the whole loop: otlp → agentcost →
// costledger; budget → metrics → prometheus; the budgetledger extension in a temp dir.
func startFullCollector(t *testing.T, o fullOptions) fullCollector {
	t.Helper()
	fc := fullCollector{otlp: collectortest.Endpoint(t), api: collectortest.Endpoint(t), metrics: collectortest.Endpoint(t)}
	var budget strings.Builder
	fmt.Fprintf(&budget, "    endpoint: %s\n    policy_file: %q\n", fc.api, o.policy)
	// The spend-side metrics reach /metrics only when the receiver publishes: publish often
	// unless the test chose an interval.
	if o.publish == 0 {
		o.publish = 200 * time.Millisecond
	}
	fmt.Fprintf(&budget, "    publish_interval: %s\n", o.publish)
	if o.settle > 0 {
		fmt.Fprintf(&budget, "    settle_interval: %s\n", o.settle)
	}
	if o.console {
		budget.WriteString("    console: {enabled: true}\n")
	}
	budget.WriteString(o.budgetExtra)
	if len(o.tokens) > 0 {
		budget.WriteString("    access:\n      tokens:\n")
		for _, tk := range o.tokens {
			fmt.Fprintf(&budget, "        - {token: %s, role: %s, subject: %s}\n", tk.token, tk.role, tk.subject)
		}
	}
	processor := "  agentcost: {}\n"
	if o.prices != "" {
		processor = fmt.Sprintf("  agentcost:\n    prices: {files: [%q]}\n", o.prices)
	}
	debug, logs := "", ""
	if o.evidenceLogs {
		debug = "  debug: {verbosity: basic}\n"
		logs = "    logs: {receivers: [budget], exporters: [debug]}\n"
	}
	level := o.logLevel
	if level == "" {
		level = "warn"
	}
	dir := t.TempDir()
	collectortest.Run(t, components, fmt.Sprintf(`
extensions:
  budgetledger:
    directory: %[1]s/ledger
    evidence: {directory: %[1]s/evidence}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: %[2]s}
  budget:
%[3]sprocessors:
%[4]sexporters:
  costledger: {}
  prometheus:
    endpoint: %[5]s
    translation_strategy: UnderscoreEscapingWithoutSuffixes  # agentcost's metric names as they are
    without_scope_info: true
    metric_expiration: 1h  # the budget receiver re-publishes the ledger's totals every publish_interval
%[6]sservice:
  telemetry:
    metrics: {level: none}
    logs: {level: %[7]s}
  extensions: [budgetledger]
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [costledger]}
    metrics: {receivers: [budget], exporters: [prometheus]}
%[8]s`, dir, fc.otlp, budget.String(), processor, fc.metrics, debug, level, logs))
	return fc
}

// publishingBudget is a budget receiver entry (under receivers:) with an allow-everything policy
// that publishes the ledger's totals every 100ms, for configs whose tests read the spend metrics.
func publishingBudget(t *testing.T) string {
	t.Helper()
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte("version: v1\ndefault_decision: allow\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("budget: {endpoint: %s, policy_file: %q, publish_interval: 100ms}", collectortest.Endpoint(t), policy)
}
