package budgetledgerextension

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/testutil/configtest"
)

func loadConfig(t *testing.T, name string) *Config {
	t.Helper()
	return configtest.Load[*Config](t, NewFactory(), name)
}

func TestConfig(t *testing.T) {
	def := loadConfig(t, "")
	if err := confmap.Validate(def); err != nil {
		t.Fatal(err)
	}
	if def.Backend != "embedded" || def.Directory != "./data/ledger" || def.Evidence.Directory != "./data/evidence" {
		t.Fatalf("defaults: %+v", def)
	}
	r := loadConfig(t, "redis")
	if err := confmap.Validate(r); err != nil {
		t.Fatal(err)
	}
	if r.Redis.Endpoint != "127.0.0.1:6390" || r.Redis.KeyPrefix != "ac:" || r.TimeZone != "Europe/Berlin" || r.Evidence.SyncInterval != 2*time.Second {
		t.Fatalf("redis config: %+v", r)
	}
	err := confmap.Validate(loadConfig(t, "bad"))
	for _, key := range []string{"backend:", "time_zone:", "evidence.directory:", "evidence.sync", "evidence.anchor_interval:"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}

func TestLifecycleAndTornEvidence(t *testing.T) {
	dir := t.TempDir()
	cfg := createDefaultConfig().(*Config)
	cfg.Directory = filepath.Join(dir, "ledger")
	cfg.Evidence.Directory = filepath.Join(dir, "evidence")
	cfg.TimeZone = "America/New_York"
	start := func() Provider {
		ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(NewFactory().Type()), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := ext.Start(context.Background(), componenttest.NewNopHost()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ext.Shutdown(context.Background()) })
		return ext.(Provider)
	}
	p := start()
	if p.Location().String() != "America/New_York" {
		t.Fatalf("location %v", p.Location())
	}
	ctx := context.Background()
	if _, err := p.Ledger().Book(ctx, []ledger.Spend{{TraceID: "t", SpanID: "s", Time: time.Now(), Agent: "a", Cost: 7}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Evidence().Append(evidence.Record{Kind: evidence.KindDecision, EvidenceID: "ev-1", AgentID: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := p.(*budgetLedger).Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// A crash mid-write leaves half a line; the next start truncates it and keeps the chain.
	files, _ := filepath.Glob(filepath.Join(cfg.Evidence.Directory, "*.jsonl"))
	f, err := os.OpenFile(files[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"seq":2,"kind":"deci`)
	f.Close()
	p2 := start()
	st, err := p2.Ledger().State(ctx, ledger.ScopeAgent, "a", ledger.Day, time.Now())
	if err != nil || st.Spent != 7 {
		t.Fatalf("spend after restart %v %v", st.Spent, err)
	}
	if _, err := p2.Evidence().Append(evidence.Record{Kind: evidence.KindSettlement, EvidenceID: "ev-1"}); err != nil {
		t.Fatal(err)
	}
	_ = p2.(*budgetLedger).Shutdown(ctx)
	rep, err := evidence.Verify(cfg.Evidence.Directory)
	if err != nil || !rep.OK() {
		t.Fatalf("chain after torn-line recovery does not verify: %+v %v", rep, err)
	}
}

func TestFind(t *testing.T) {
	if _, err := Find(componenttest.NewNopHost(), component.MustNewID("budgetledger")); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("want a not-configured error, got %v", err)
	}
}

// The embedded backend's work shows in the collector's own telemetry: commits, journal syncs and
// what is pending, and the callback is gone after shutdown.
func TestTelemetry(t *testing.T) {
	dir := t.TempDir()
	cfg := createDefaultConfig().(*Config)
	cfg.Directory = filepath.Join(dir, "ledger")
	cfg.Evidence.Directory = filepath.Join(dir, "evidence")
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	set := extensiontest.NewNopSettings(NewFactory().Type())
	set.TelemetrySettings = tel.NewTelemetrySettings()
	ext, err := NewFactory().Create(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	l := ext.(Provider).Ledger()
	for i := range 3 {
		if _, err := l.Reserve(t.Context(), ledger.ReserveRequest{ID: fmt.Sprintf("d%d", i), Estimate: 10, TTL: time.Minute,
			Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "A", Window: ledger.Day, Limit: 1000}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Release(t.Context(), ledger.ReleaseRequest{ID: "d0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Book(t.Context(), []ledger.Spend{{TraceID: "t", SpanID: "s", Agent: "A", Cost: 5}}); err != nil {
		t.Fatal(err)
	}
	sum := func(name string) float64 {
		t.Helper()
		m, err := tel.GetMetric(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch d := m.Data.(type) {
		case metricdata.Sum[int64]:
			return float64(d.DataPoints[0].Value)
		case metricdata.Sum[float64]:
			return d.DataPoints[0].Value
		case metricdata.Gauge[int64]:
			return float64(d.DataPoints[0].Value)
		}
		t.Fatalf("%s: unexpected data %T", name, m.Data)
		return 0
	}
	if n := sum("otelcol_extension_budgetledger_journal_syncs"); n < 1 || n > 3 {
		t.Errorf("journal syncs %v, want 1 to 3 for three reservations", n)
	}
	if d := sum("otelcol_extension_budgetledger_journal_sync_duration"); d <= 0 {
		t.Errorf("journal sync duration %v", d)
	}
	// The release applied the journal to the file first; the booking is a commit of its own.
	if n := sum("otelcol_extension_budgetledger_commits"); n < 2 {
		t.Errorf("commits %v, want at least the release's and the booking's", n)
	}
	if d := sum("otelcol_extension_budgetledger_commit_duration"); d <= 0 {
		t.Errorf("commit duration %v", d)
	}
	if n := sum("otelcol_extension_budgetledger_reservations_pending"); n != 0 {
		t.Errorf("pending %v after the release's commit, want 0", n)
	}
	if n := sum("otelcol_extension_budgetledger_journal_size"); n <= 0 {
		t.Errorf("journal size %v, want the three records", n)
	}
	if n := sum("otelcol_extension_budgetledger_reservations_recovered"); n != 0 {
		t.Errorf("recovered %v on a fresh directory", n)
	}
	if err := ext.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := tel.GetMetric("otelcol_extension_budgetledger_commits"); err == nil {
		t.Error("the telemetry callback outlived shutdown")
	}
}
