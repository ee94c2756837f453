package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
)

// TestLedgerReport books spans into an embedded ledger and reads the chargeback back by model and
// by agent, with totals worked out from the bookings.
func TestLedgerReport(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ledger")
	cfg := ledger.NewDefaultConfig()
	cfg.Directory = dir
	l, err := ledger.Open(context.Background(), cfg, ledger.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	spends := []ledger.Spend{
		{TraceID: "t1", SpanID: "1", Time: at, Agent: "research-agent", Team: "growth", Model: "gpt-4o", Cost: 35_000_000},
		{TraceID: "t1", SpanID: "2", Time: at, Agent: "research-agent", Team: "growth", Model: "o3", Cost: 1_500_000_000},
		{TraceID: "t2", SpanID: "1", Time: at, Agent: "drafting-agent", Model: "gpt-4o", Cost: 2},
	}
	if _, err := l.Book(context.Background(), spends); err != nil {
		t.Fatal(err)
	}
	l.Close()

	report := func(args ...string) string {
		var out, errb bytes.Buffer
		if code := run(append([]string{"ledger-report", "--directory", dir, "--at", "2026-11-28T10:30:00Z"}, args...), &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		return out.String()
	}
	byModel := report("--by", "model")
	for _, want := range []string{"gpt-4o", "0.035000002", "o3", "1.5", "TOTAL", "1.535000002"} {
		if !strings.Contains(byModel, want) {
			t.Errorf("by model: missing %q in\n%s", want, byModel)
		}
	}
	csv := report("--by", "agent", "--window", "month", "-o", "csv")
	if !strings.Contains(csv, "agent,research-agent,month,2026-11-01T00:00:00Z,1.535,0") ||
		!strings.Contains(csv, "agent,drafting-agent,month,2026-11-01T00:00:00Z,0.000000002,0") {
		t.Errorf("by agent (csv):\n%s", csv)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"ledger-report", "--by", "model"}, &out, &errb); code != exitUsage {
		t.Errorf("no ledger given: exit %d, want %d", code, exitUsage)
	}
}
