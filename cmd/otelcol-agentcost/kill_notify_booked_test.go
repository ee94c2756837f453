package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/notify"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
)

// TestKill9DeliversLevelCrossedByBookedSpend: spans sent over OTLP/HTTP book enough spend to
// cross an agent's warn_at; the collector acknowledges the request (the exporter books and runs
// the level check synchronously) and is killed with SIGKILL right away, with the webhook down and
// publish_interval an hour, so no publish ever saw the crossing. After the restart the budget.level
// event reaches the webhook: it was stored in the outbox before the spans were acknowledged.
func TestKill9DeliversLevelCrossedByBookedSpend(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	sink := newWebhookSink(t, nil)

	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(`version: v1
budgets:
  agents: {book-agent: {limit_usd: 1, window: day, warn_at: 0.5}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	httpEP, api := collectortest.Endpoint(t), collectortest.Endpoint(t)
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`
extensions:
  budgetledger: {directory: %[1]s/ledger, evidence: {directory: %[1]s/evidence}}
receivers:
  otlp: {protocols: {http: {endpoint: %[2]s}}}
  budget:
    endpoint: %[3]s
    policy_file: %[4]s
    publish_interval: 1h
    notifications:
      webhooks:
        - {name: ops, endpoint: %[5]s, timeout: 1s}
      outbox: {poll_interval: 20ms, lease: 5s}
      retry: {initial_interval: 20ms, max_interval: 100ms, max_elapsed_time: 0}
processors:
  agentcost: {}
exporters:
  costledger: {}
  prometheus: {endpoint: %[6]s, translation_strategy: UnderscoreEscapingWithoutSuffixes, without_scope_info: true, metric_expiration: 1h}
service:
  telemetry: {metrics: {level: none}}
  extensions: [budgetledger]
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [costledger]}
    metrics: {receivers: [budget], exporters: [prometheus]}
`, dir, httpEP, api, policy, sink.URL, collectortest.Endpoint(t))), 0o600); err != nil {
		t.Fatal(err)
	}

	child := startChild(t, bin, config)
	waitListening(t, httpEP)
	waitListening(t, api)
	// 20 spans at $0.035: $0.70 of the $1 budget, past warn_at ($0.50).
	if got := postTraces(t, httpEP, "", authSpans(20, "book-agent", nil, 7)); got != http.StatusOK {
		t.Fatalf("OTLP export: status %d", got)
	}
	_ = child.Process.Signal(syscall.SIGKILL)
	_, _ = child.Process.Wait()
	sink.down.Store(false)

	startChild(t, bin, config)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var got []notify.Budget
		for _, ev := range sink.accepted() {
			if ev.Type == notify.TypeBudgetLevel && ev.Budget != nil {
				got = append(got, *ev.Budget)
			}
		}
		if len(got) > 0 {
			b := got[0]
			if b.Scope != "agent" || b.ID != "book-agent" || b.Level != "warn" || b.SpentUSD != "0.7" {
				t.Fatalf("budget.level event %+v, want agent book-agent at warn with 0.7 spent", b)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the budget.level event of the spend acknowledged before the kill never reached the webhook")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
