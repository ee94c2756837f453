package decide

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/ledger/ledgertest"
	"github.com/agentcost/agentcost/internal/money"
)

// BenchmarkCheckMidFlight measures one mid-flight check over 1,000 open actions with booked
// spend, each in its own run, none anomalous, on the embedded ledger (the receiver runs one check
// every midflight_interval).
func BenchmarkCheckMidFlight(b *testing.B) {
	ctx := context.Background()
	l := ledgertest.NewEmbedded(b)
	clock := &testClock{t: time.Date(2026, time.March, 11, 10, 0, 0, 0, time.UTC)}
	e, _, _ := midEngine(b, l, clock)
	for i := range 1000 {
		id := fmt.Sprintf("d%04d", i)
		if _, err := l.Reserve(ctx, ledger.ReserveRequest{ID: id, Estimate: money.NanosPerUSD, TTL: time.Hour, Time: clock.now(),
			Agent: "a", RunID: "run-" + id, Action: "job.loop",
			Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "a", Window: ledger.Day, Unlimited: true}}}); err != nil {
			b.Fatal(err)
		}
		if _, err := l.Book(ctx, []ledger.Spend{{TraceID: "t" + id, SpanID: "1", DecisionID: id, Time: clock.now(), Agent: "a",
			RunID: "run-" + id, Cost: money.NanosPerUSD / 10}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.CheckMidFlight(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
