package ledger_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/ledger/ledgertest"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
)

func benchBackends(b *testing.B) []ledgertest.Backend {
	return []ledgertest.Backend{embeddedBackend(), redisBackend(redistest.Start(b))}
}

// BenchmarkBook books batches of 100 spends (10 agents, 2 teams, 3 models): 21 counters each.
func BenchmarkBook(b *testing.B) {
	for _, be := range benchBackends(b) {
		b.Run(be.Name, func(b *testing.B) {
			l, _ := be.Open(b, ledgertest.BaseConfig())
			at := time.Now()
			batch := make([]ledger.Spend, 100)
			b.ResetTimer()
			for i := range b.N {
				for j := range batch {
					batch[j] = ledger.Spend{TraceID: fmt.Sprintf("trace-%d", i), SpanID: fmt.Sprintf("span-%d", j), Time: at,
						Agent: fmt.Sprintf("agent-%d", j%10), Team: fmt.Sprintf("team-%d", j%2), Model: fmt.Sprintf("model-%d", j%3),
						Cost: money.Nanos(1000 + j), Tokens: ledger.Tokens{Input: 1000, Output: 200}}
				}
				if r, err := l.Book(b.Context(), batch); err != nil || r.Booked != len(batch) {
					b.Fatalf("Book: %+v %v", r, err)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "spends/s")
		})
	}
}

// BenchmarkReserveRelease reserves against three budgets (agent hour, fleet day, run) and
// releases; "commit" also books one matched span in between. "parallel" runs GOMAXPROCS×4
// goroutines at once.
func BenchmarkReserveRelease(b *testing.B) {
	for _, be := range benchBackends(b) {
		for _, mode := range []string{"serial", "commit", "parallel"} {
			b.Run(be.Name+"/"+mode, func(b *testing.B) {
				l, _ := be.Open(b, ledgertest.BaseConfig())
				at := time.Now()
				var seq atomic.Int64
				one := func() {
					id := fmt.Sprintf("d%d", seq.Add(1))
					_, err := l.Reserve(b.Context(), ledger.ReserveRequest{ID: id, Estimate: 1000, TTL: time.Minute, Time: at,
						Checks: []ledger.Check{
							{Scope: ledger.ScopeAgent, ID: "A", Window: ledger.Hour, Limit: money.MaxNanos},
							{Scope: ledger.ScopeFleet, Window: ledger.Day, Limit: money.MaxNanos},
							{Scope: ledger.ScopeRun, ID: "run-" + id, Window: ledger.Lifetime, Limit: money.MaxNanos},
						}})
					if err != nil {
						b.Error(err)
						return
					}
					if mode == "commit" {
						if _, err := l.Book(b.Context(), []ledger.Spend{{TraceID: id, SpanID: "s", DecisionID: id, Time: at, Agent: "A", Cost: 700}}); err != nil {
							b.Error(err)
						}
					}
					if _, err := l.Release(b.Context(), ledger.ReleaseRequest{ID: id, Time: at}); err != nil {
						b.Error(err)
					}
				}
				b.ResetTimer()
				if mode == "parallel" {
					b.SetParallelism(4)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							one()
						}
					})
				} else {
					for range b.N {
						one()
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
			})
		}
	}
}
