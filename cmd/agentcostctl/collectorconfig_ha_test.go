package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
)

// TestConfigFlagSentinelAndCluster: ledger-report --config reads the budgetledger extension's
// sentinel and cluster settings (issue 18) and reports what a collector booked through them.
func TestConfigFlagSentinelAndCluster(t *testing.T) {
	s := redistest.StartSentinel(t)
	c := redistest.StartCluster(t)
	for _, tc := range []struct {
		name, yaml string
		set        func(*ledger.Config)
	}{
		{"sentinel", fmt.Sprintf("{mode: sentinel, master_name: %s, sentinel_addresses: [%s], key_prefix: \"ha:\", wait_for_replicas: {replicas: 1, timeout: 500ms}}",
			s.MasterName, strings.Join(s.Sentinels, ", ")), func(cfg *ledger.Config) {
			cfg.Redis.Mode, cfg.Redis.MasterName, cfg.Redis.SentinelAddresses = ledger.RedisModeSentinel, s.MasterName, s.Sentinels
		}},
		{"cluster", fmt.Sprintf("{mode: cluster, addresses: [%s], key_prefix: \"ha:\"}", strings.Join(c.Addrs(), ", ")), func(cfg *ledger.Config) {
			cfg.Redis.Mode, cfg.Redis.Addresses = ledger.RedisModeCluster, c.Addrs()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lcfg := ledger.NewDefaultConfig()
			lcfg.Backend, lcfg.Redis.KeyPrefix = ledger.BackendRedis, "ha:"
			tc.set(&lcfg)
			l, err := ledger.Open(context.Background(), lcfg, ledger.Settings{})
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
			if _, err := l.Book(context.Background(), []ledger.Spend{
				{TraceID: "t1", SpanID: "1", Time: at, Agent: "research-agent", Team: "growth", Model: "gpt-4o", Cost: 35_000_000},
			}); err != nil {
				t.Fatal(err)
			}
			l.Close()
			config := writeFile(t, t.TempDir(), "collector.yaml", fmt.Sprintf(`
extensions:
  budgetledger:
    backend: redis
    redis: %s
    time_zone: UTC
    evidence: {directory: %s}
service:
  extensions: [budgetledger]
`, tc.yaml, filepath.Join(t.TempDir(), "evidence")))
			code, stdout, stderr := runCLI(t, "ledger-report", "--config", config, "--by", "model", "--at", "2026-11-28T10:30:00Z")
			if code != exitOK || !strings.Contains(stdout, "gpt-4o  day     2026-11-28T00:00:00Z  0.035") {
				t.Fatalf("--config in %s mode: exit %d\n%s%s", tc.name, code, stdout, stderr)
			}
		})
	}
}
