package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
)

// openLedger opens the ledger a collector under test wrote: the embedded file in dir, or the Redis
// ledger at redisAddr with its key prefix (empty prefix: the default). It is closed when the test
// ends.
func openLedger(tb testing.TB, dir, redisAddr, prefix string) ledger.Ledger {
	tb.Helper()
	cfg := ledger.NewDefaultConfig()
	if redisAddr != "" {
		cfg.Backend, cfg.Redis.Endpoint = ledger.BackendRedis, redisAddr
		if prefix != "" {
			cfg.Redis.KeyPrefix = prefix
		}
	} else {
		cfg.Directory = dir
	}
	l, err := ledger.Open(context.Background(), cfg, ledger.Settings{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	return l
}

// waitSpent polls the spend of (scope, id) in the day window holding at until it equals want or the
// timeout passes, and returns the last value read.
func waitSpent(l ledger.Ledger, scope ledger.Scope, id string, at time.Time, want money.Nanos, timeout time.Duration) money.Nanos {
	var got money.Nanos
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if st, err := l.State(context.Background(), scope, id, ledger.Day, at); err == nil {
			if got = st.Spent; got == want {
				break
			}
		}
	}
	return got
}

// queuedRedisConfig is a collector booking into the Redis ledger through costledger's persistent
// file_storage queue (queue is extra sending_queue settings, e.g. ", queue_size: 100000"), so that a
// Redis outage delays booking instead of failing the agents' OTLP requests.
func queuedRedisConfig(dir, redisAddr, prefix, grpcEndpoint, metricsEndpoint, queue string) string {
	return fmt.Sprintf(`
extensions:
  file_storage: {directory: %[1]s}
  budgetledger:
    backend: redis
    redis: {endpoint: %[2]s, key_prefix: %[3]q, read_timeout: 500ms, write_timeout: 500ms, dial_timeout: 500ms}
    evidence: {directory: %[1]s/evidence}
receivers:
  otlp: {protocols: {grpc: {endpoint: %[4]s}}}
processors:
  agentcost: {}
exporters:
  costledger:
    sending_queue: {storage: file_storage%[6]s}
    retry_on_failure: {initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 0}
  prometheus:
    endpoint: %[5]s
    translation_strategy: UnderscoreEscapingWithoutSuffixes  # agentcost's metric names as they are
    without_scope_info: true
    metric_expiration: 1h  # the budget receiver re-publishes the ledger's totals every publish_interval
service:
  telemetry: {metrics: {level: none}}
  extensions: [file_storage, budgetledger]
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [costledger]}
`, dir, redisAddr, prefix, grpcEndpoint, metricsEndpoint, queue)
}
