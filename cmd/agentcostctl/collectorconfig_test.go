package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/agentcost/agentcost/extension/budgetledgerextension"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
)

// TestConfigFlagPasswordRedis is issue 13's finding 2: ledger-report --redis cannot read a
// password-protected Redis (NOAUTH), while --config reads the collector's own budgetledger
// settings, ${env:REDIS_PASSWORD} expanded as the collector expands it, and reports the spend.
func TestConfigFlagPasswordRedis(t *testing.T) {
	const password = "s3cret-redis-pass"
	srv := redistest.StartWithPassword(t, password)
	lcfg := ledger.NewDefaultConfig()
	lcfg.Backend, lcfg.Redis.Endpoint, lcfg.Redis.Password, lcfg.Redis.KeyPrefix = ledger.BackendRedis, srv.Addr, configopaque.String(password), "prod:"
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

	code, _, stderr := runCLI(t, "ledger-report", "--redis", srv.Addr, "--key-prefix", "prod:", "--at", "2026-11-28T10:30:00Z")
	if code != exitIO || !strings.Contains(stderr, "NOAUTH") {
		t.Fatalf("--redis against a password-protected Redis: exit %d, %q (want exit 3, NOAUTH)", code, stderr)
	}

	t.Setenv("REDIS_PASSWORD", password)
	config := writeFile(t, t.TempDir(), "collector.yaml", fmt.Sprintf(`
extensions:
  budgetledger:
    backend: redis
    redis: {endpoint: %s, password: "${env:REDIS_PASSWORD}", key_prefix: "prod:"}
    time_zone: UTC
    evidence: {directory: %s}
  budgetledger/other:
    directory: /nonexistent
service:
  extensions: [budgetledger]
`, srv.Addr, filepath.Join(t.TempDir(), "evidence")))
	code, stdout, stderr := runCLI(t, "ledger-report", "--config", config, "--extension", "budgetledger", "--by", "model", "--at", "2026-11-28T10:30:00Z")
	if code != exitOK || !strings.Contains(stdout, "gpt-4o  day     2026-11-28T00:00:00Z  0.035") {
		t.Fatalf("--config: exit %d\n%s%s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, password) {
		t.Errorf("the password was printed:\n%s%s", stdout, stderr)
	}
	// The collector's evidence chain, anchored in the password-protected Redis: verify --config
	// finds both the directory and the anchor through the same settings.
	ext, err := loadLedgerExtension(context.Background(), config, "budgetledger")
	if err != nil {
		t.Fatal(err)
	}
	f := budgetledgerextension.NewFactory()
	running, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), ext)
	if err != nil {
		t.Fatal(err)
	}
	if err := running.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := running.(budgetledgerextension.Provider).Evidence().Append(evidence.Record{Kind: evidence.KindDecision,
			EvidenceID: fmt.Sprintf("ev-%d", i), AgentID: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := running.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI(t, "evidence", "verify", "--config", config, "--extension", "budgetledger", "-o", "json")
	if code != exitOK || !strings.Contains(stdout, `"anchor": {`) || !strings.Contains(stdout, `"last_seq": 3`) {
		t.Fatalf("evidence verify --config: exit %d\n%s%s", code, stdout, stderr)
	}

	// Two budgetledger extensions: --extension is required.
	code, _, stderr = runCLI(t, "ledger-report", "--config", config)
	if code != exitUsage || !strings.Contains(stderr, "several budgetledger extensions (budgetledger, budgetledger/other): choose one with --extension") {
		t.Errorf("two extensions without --extension: exit %d, %q", code, stderr)
	}
	// A wrong password in the environment is the server's refusal, not a silent empty report.
	t.Setenv("REDIS_PASSWORD", "wrong")
	code, _, stderr = runCLI(t, "ledger-report", "--config", config, "--extension", "budgetledger")
	if code != exitIO || strings.Contains(stderr, "wrong") {
		t.Errorf("wrong password: exit %d, %q", code, stderr)
	}
}
