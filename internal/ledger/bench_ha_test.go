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

// BenchmarkRedisWaitForReplicas measures the cost of redis.wait_for_replicas on a sentinel setup
// (primary and one replica on loopback): booking batches of 100 spends, and reserve+release pairs
// (serial and GOMAXPROCS×4 goroutines), with wait 0 and wait 1.
func BenchmarkRedisWaitForReplicas(b *testing.B) {
	s := redistest.StartSentinel(b)
	for _, wait := range []int{0, 1} {
		be := sentinelBackend(s, wait)
		b.Run(fmt.Sprintf("wait%d/book100", wait), func(b *testing.B) {
			l, _ := be.Open(b, ledgertest.BaseConfig())
			at := time.Now()
			batch := make([]ledger.Spend, 100)
			b.ResetTimer()
			for i := range b.N {
				for j := range batch {
					batch[j] = ledger.Spend{TraceID: fmt.Sprintf("trace-%d", i), SpanID: fmt.Sprintf("span-%d", j), Time: at,
						Agent: fmt.Sprintf("agent-%d", j%10), Team: fmt.Sprintf("team-%d", j%2), Model: fmt.Sprintf("model-%d", j%3),
						Cost: money.Nanos(1000 + j)}
				}
				if r, err := l.Book(b.Context(), batch); err != nil || r.Booked != len(batch) {
					b.Fatalf("Book: %+v %v", r, err)
				}
			}
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "spends/s")
		})
		for _, mode := range []string{"serial", "parallel"} {
			b.Run(fmt.Sprintf("wait%d/reserve-release/%s", wait, mode), func(b *testing.B) {
				l, _ := be.Open(b, ledgertest.BaseConfig())
				at := time.Now()
				var seq atomic.Int64
				one := func() {
					id := fmt.Sprintf("d%d", seq.Add(1))
					if _, err := l.Reserve(b.Context(), ledger.ReserveRequest{ID: id, Estimate: 1000, TTL: time.Minute, Time: at,
						Checks: []ledger.Check{
							{Scope: ledger.ScopeAgent, ID: "A", Window: ledger.Hour, Limit: money.MaxNanos},
							{Scope: ledger.ScopeFleet, Window: ledger.Day, Limit: money.MaxNanos},
						}}); err != nil {
						b.Error(err)
						return
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
