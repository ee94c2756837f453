package budgetledgerextension

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
)

// startExt starts the extension with cfg; it returns the extension or the start error.
func startExt(t *testing.T, cfg *Config, tel *componenttest.Telemetry) (*budgetLedger, error) {
	t.Helper()
	set := extensiontest.NewNopSettings(NewFactory().Type())
	if tel != nil {
		set.TelemetrySettings = tel.NewTelemetrySettings()
	}
	ext, err := NewFactory().Create(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = ext.Shutdown(context.Background()) })
	return ext.(*budgetLedger), nil
}

// cutLastLines removes the last n lines of the chain's only file, as an attacker with the
// collector stopped would.
func cutLastLines(t *testing.T, dir string, n int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if len(files) != 1 {
		t.Fatalf("evidence files %v", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	lines = lines[:len(lines)-1] // the empty piece after the last newline
	if err := os.WriteFile(files[0], bytes.Join(lines[:len(lines)-n], nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestEvidenceCutIsRefused is the review's finding 7: records written, the collector stopped,
// the last three lines deleted, the collector restarted. The restart is refused, naming the
// missing records; with accept_truncated_chain it starts, reports the cut in a gauge and re-anchors
// the shorter chain, which then continues.
func TestEvidenceCutIsRefused(t *testing.T) {
	backends := map[string]func(t *testing.T, cfg *Config){
		"embedded": func(*testing.T, *Config) {},
		"redis": func(t *testing.T, cfg *Config) {
			cfg.Backend = ledger.BackendRedis
			cfg.Redis.Endpoint = redistest.Start(t).Addr
		},
	}
	for name, setup := range backends {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := createDefaultConfig().(*Config)
			cfg.Directory = filepath.Join(dir, "ledger")
			cfg.Evidence.Directory = filepath.Join(dir, "evidence")
			setup(t, cfg)
			b, err := startExt(t, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if _, err := b.Evidence().Append(evidence.Record{Kind: evidence.KindDecision, EvidenceID: fmt.Sprintf("ev-%d", i), AgentID: "a"}); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			// A clean stop and start: the chain is at its anchor.
			if b, err = startExt(t, cfg, nil); err != nil {
				t.Fatalf("restart over an intact chain: %v", err)
			}
			if err := b.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}

			cutLastLines(t, cfg.Evidence.Directory, 3)
			_, err = startExt(t, cfg, nil)
			if err == nil || !strings.Contains(err.Error(), "ends at seq 7") || !strings.Contains(err.Error(), "seq 10") ||
				!strings.Contains(err.Error(), "accept_truncated_chain") {
				t.Fatalf("restart over a cut chain: %v, want a refusal naming seq 7, seq 10 and the override", err)
			}

			cfg.Evidence.AcceptTruncatedChain = true
			tel := componenttest.NewTelemetry()
			t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
			b, err = startExt(t, cfg, tel)
			if err != nil {
				t.Fatalf("restart with accept_truncated_chain: %v", err)
			}
			m, err := tel.GetMetric("otelcol_extension_budgetledger_evidence_chain_truncated")
			if err != nil {
				t.Fatal(err)
			}
			if g, ok := m.Data.(metricdata.Gauge[int64]); !ok || g.DataPoints[0].Value != 1 {
				t.Fatalf("evidence_chain_truncated %+v, want 1", m.Data)
			}
			if ap, err := b.Evidence().Append(evidence.Record{Kind: evidence.KindDecision, EvidenceID: "ev-after", AgentID: "a"}); err != nil || ap.Record.Seq != 8 {
				t.Fatalf("append after the accepted cut: seq %d, %v", ap.Record.Seq, err)
			}
			if err := b.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			// The anchor was reset: without the override the next start is accepted again.
			cfg.Evidence.AcceptTruncatedChain = false
			if _, err := startExt(t, cfg, nil); err != nil {
				t.Fatalf("start after the accepted cut was re-anchored: %v", err)
			}
		})
	}
}

// TestEvidenceRemovedIsRefused empties the evidence directory of an embedded ledger that anchors
// a chain: the new, empty chain is refused.
func TestEvidenceRemovedIsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := createDefaultConfig().(*Config)
	cfg.Directory = filepath.Join(dir, "ledger")
	cfg.Evidence.Directory = filepath.Join(dir, "evidence")
	b, err := startExt(t, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Evidence().Append(evidence.Record{Kind: evidence.KindDecision, EvidenceID: "ev", AgentID: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(cfg.Evidence.Directory); err != nil {
		t.Fatal(err)
	}
	if _, err := startExt(t, cfg, nil); err == nil || !strings.Contains(err.Error(), "evidence files were removed") {
		t.Fatalf("start over a removed chain: %v", err)
	}
}

// TestEvidenceAnchoredWhileRunning: the head is anchored after appends, without waiting for a
// shutdown (a kill -9 loses at most the last anchor_interval).
func TestEvidenceAnchoredWhileRunning(t *testing.T) {
	dir := t.TempDir()
	cfg := createDefaultConfig().(*Config)
	cfg.Directory = filepath.Join(dir, "ledger")
	cfg.Evidence.Directory = filepath.Join(dir, "evidence")
	b, err := startExt(t, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var last evidence.Appended
	for i := range 50 {
		if last, err = b.Evidence().Append(evidence.Record{Kind: evidence.KindDecision, EvidenceID: fmt.Sprintf("ev-%d", i), AgentID: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	an := b.Ledger().(ledger.EvidenceAnchorer)
	deadline := time.Now().Add(30 * time.Second)
	for {
		a, ok, err := an.EvidenceAnchor(context.Background(), last.Record.ChainID)
		if err != nil {
			t.Fatal(err)
		}
		if ok && a.Seq == last.Record.Seq {
			if a.Hash != last.Record.Hash {
				t.Fatalf("anchor %+v, want the hash of seq %d %s", a, last.Record.Seq, last.Record.Hash)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the head seq %d was not anchored while running (anchor %+v)", last.Record.Seq, a)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if w := b.anchor.written.Load(); w < 1 || w > 50 {
		t.Errorf("%d anchor writes for 50 appends", w)
	}
}

// BenchmarkAppendAnchored appends through the extension's writer (sync always, four goroutines)
// with the head anchored in the embedded ledger; compare with internal/evidence's
// BenchmarkAppend/always-parallel, which anchors nothing.
func BenchmarkAppendAnchored(b *testing.B) {
	dir := b.TempDir()
	cfg := createDefaultConfig().(*Config)
	cfg.Directory = filepath.Join(dir, "ledger")
	cfg.Evidence.Directory = filepath.Join(dir, "evidence")
	set := extensiontest.NewNopSettings(NewFactory().Type())
	ext, err := NewFactory().Create(context.Background(), set, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := ext.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		b.Fatal(err)
	}
	bl := ext.(*budgetLedger)
	w := bl.Evidence()
	rec := evidence.Record{Kind: evidence.KindDecision, EvidenceID: "ev", AgentID: "a", Decision: "allow_with_constraints"}
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := w.Append(rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(bl.anchor.written.Load())/b.Elapsed().Seconds(), "anchors/s")
	if err := ext.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
}
