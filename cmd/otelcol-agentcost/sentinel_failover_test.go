package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// TestSentinelFailoverWholeCollector (issue 18): two collectors share a Sentinel-managed Redis (a
// primary, one replica, three sentinels) with wait_for_replicas: 1, under OTLP and decision load at
// both. The primary is killed with SIGKILL mid-load; the sentinels promote the replica and the
// collectors follow it by themselves, and the killed node comes back as the new primary's replica.
// Once the collectors' persistent queues have drained, booked spend equals the spend of every
// acknowledged span exactly, every allowed decision's reservation is in the ledger, and no more
// decisions were allowed than the budget holds. The decision API's unavailability window (first to
// last ledger.unavailable answer) is measured and logged.
func TestSentinelFailoverWholeCollector(t *testing.T) {
	if testing.Short() {
		t.Skip("a Redis failover under load; skipped with -short")
	}
	s := redistest.StartSentinel(t)
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	const limitUSD, estimateUSD = 300, 1
	if err := os.WriteFile(policy, []byte(fmt.Sprintf("version: v1\nbudgets:\n  default_agent: {limit_usd: %d, window: day}\n", limitUSD)), 0o600); err != nil {
		t.Fatal(err)
	}
	type collector struct{ otlp, api string }
	var cols []collector
	for i := range 2 {
		d := filepath.Join(dir, fmt.Sprint(i))
		c := collector{otlp: collectortest.Endpoint(t), api: collectortest.Endpoint(t)}
		collectortest.Run(t, withCapture(&collectortest.Capture{}), fmt.Sprintf(`
extensions:
  file_storage: {directory: %[1]s, create_directory: true}
  budgetledger:
    backend: redis
    redis:
      mode: sentinel
      master_name: %[2]s
      sentinel_addresses: [%[3]s]
      key_prefix: "ha:"
      dial_timeout: 300ms
      read_timeout: 1s
      write_timeout: 1s
      wait_for_replicas: {replicas: 1, timeout: 200ms}
    evidence: {directory: %[1]s/evidence}
receivers:
  otlp: {protocols: {grpc: {endpoint: %[4]s}}}
  budget:
    endpoint: %[5]s
    policy_file: %[6]s
    ledger_unavailable: {decisions: fail_closed, timeout: 500ms}
processors:
  agentcost: {}
exporters:
  costledger:
    sending_queue: {storage: file_storage, queue_size: 100000}
    retry_on_failure: {initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0}
  prometheus:
    endpoint: %[7]s
    translation_strategy: UnderscoreEscapingWithoutSuffixes  # agentcost's metric names as they are
    without_scope_info: true
    metric_expiration: 1h  # the budget receiver re-publishes the ledger's totals every publish_interval
service:
  telemetry: {metrics: {level: none}}
  extensions: [file_storage, budgetledger]
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [costledger]}
    metrics: {receivers: [budget], exporters: [prometheus]}
`, d, s.MasterName, strings.Join(s.Sentinels, ", "), c.otlp, c.api, policy, collectortest.Endpoint(t)))
		cols = append(cols, c)
	}

	ctx := context.Background()
	end := time.Now().UTC()
	var (
		acked, allowed, unavailable, failedSpans atomic.Int64
		mu                                       sync.Mutex
		firstDown, lastDown                      time.Time
		slowest                                  time.Duration
		errs                                     []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range cols {
		wg.Add(2)
		go func() { // spans
			defer wg.Done()
			exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(c.otlp), otlptracegrpc.WithInsecure(),
				otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
			if err != nil {
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()
				return
			}
			defer func() { _ = exp.Shutdown(ctx) }()
			for n := i * 1_000_000; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := exp.ExportSpans(ctx, []sdktrace.ReadOnlySpan{llmSpan(n, end)}); err != nil {
					failedSpans.Add(1)
				} else {
					acked.Add(1)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		go func() { // decisions, by an agent that sends no spans
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				began := time.Now()
				resp, err := decideOnce(c.api, decisionapi.DecisionRequest{AgentID: "decider-agent", Action: "job.research.batch-generate", EstimatedCostUSD: estimateUSD})
				mu.Lock()
				slowest = max(slowest, time.Since(began))
				mu.Unlock()
				switch {
				case err != nil:
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					return
				case resp.Decision == decisionapi.DecisionAllow:
					allowed.Add(1)
				case resp.RuleID == "ledger.unavailable":
					unavailable.Add(1)
					mu.Lock()
					if firstDown.IsZero() {
						firstDown = time.Now()
					}
					lastDown = time.Now()
					mu.Unlock()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	killedAt := time.Now()
	if err := s.KillPrimary(); err != nil {
		t.Fatal(err)
	}
	promoted := s.WaitPromoted(t, 60*time.Second)
	s.RestartPrimaryAsReplica(t)
	replicated := time.Since(killedAt)
	time.Sleep(4 * time.Second) // long enough to exhaust the budget after the failover
	close(stop)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("load errors: %v", errs)
	}

	cfg := ledger.NewDefaultConfig()
	cfg.Backend, cfg.Redis.KeyPrefix = ledger.BackendRedis, "ha:"
	cfg.Redis.Mode, cfg.Redis.MasterName, cfg.Redis.SentinelAddresses = ledger.RedisModeSentinel, s.MasterName, s.Sentinels
	l, err := ledger.Open(ctx, cfg, ledger.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := money.Nanos(acked.Load()) * spanCost
	got := waitSpent(l, ledger.ScopeFleet, ledger.FleetID, end, want, 60*time.Second)
	if got != want {
		t.Errorf("after the failover and the queues drained: %s USD booked for %d acknowledged spans, want exactly %s USD", got, acked.Load(), want)
	}
	st, err := l.State(ctx, ledger.ScopeAgent, "decider-agent", ledger.Day, end)
	if err != nil {
		t.Fatal(err)
	}
	est := money.Nanos(estimateUSD * 1_000_000_000)
	if st.Reserved < money.Nanos(allowed.Load())*est {
		t.Errorf("%d decisions allowed but only %s USD reserved: an acknowledged reservation was lost", allowed.Load(), st.Reserved)
	}
	if st.Reserved+st.Spent > money.Nanos(limitUSD)*1_000_000_000 || allowed.Load() > limitUSD/estimateUSD {
		t.Errorf("%d decisions allowed, %s USD reserved, under a %d USD budget", allowed.Load(), st.Reserved, limitUSD)
	}
	if allowed.Load() == 0 || acked.Load() == 0 {
		t.Errorf("no load went through: %d allowed, %d spans acknowledged", allowed.Load(), acked.Load())
	}
	mu.Lock()
	window := lastDown.Sub(firstDown)
	mu.Unlock()
	t.Logf("sentinel failover: promoted %v after SIGKILL, killed node back as replica after %v; %d spans acknowledged (%d refused), %d decisions allowed, %d answered ledger.unavailable over %v, slowest decision %v",
		promoted.Round(time.Millisecond), replicated.Round(time.Millisecond), acked.Load(), failedSpans.Load(), allowed.Load(), unavailable.Load(), window.Round(time.Millisecond), slowest.Round(time.Millisecond))
}

// decideOnce posts one decision without a token and decodes the answer.
func decideOnce(api string, req decisionapi.DecisionRequest) (decisionapi.DecisionResponse, error) {
	var out decisionapi.DecisionResponse
	b, _ := json.Marshal(req)
	resp, err := http.Post("http://"+api+decisionapi.PathDecisions, "application/json", bytes.NewReader(b))
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("decision: HTTP %d", resp.StatusCode)
	}
	return out, json.NewDecoder(resp.Body).Decode(&out)
}
