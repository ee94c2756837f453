// Package ledgertest is the behaviour suite every ledger backend must pass.
package ledgertest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Backend describes the backend under test.
type Backend struct {
	Name string
	// Open opens a fresh, empty ledger with cfg, to which it adds its own settings (backend,
	// directory or Redis endpoint and a key prefix of its own). It closes the ledger at test cleanup.
	// again opens one more ledger over the same storage: for a backend that is not Shared it closes
	// the previous ledger first (a restart).
	Open func(t testing.TB, cfg ledger.Config) (l ledger.Ledger, again func() ledger.Ledger)
	// Shared is set when several ledgers may use the same storage at once (Redis).
	Shared bool
}

// BaseConfig is the configuration the suite starts from: UTC, default horizons, and no background
// maintenance during a test (the suite books at made-up times).
func BaseConfig() ledger.Config {
	cfg := ledger.NewDefaultConfig()
	cfg.MaintenanceInterval = 24 * time.Hour
	return cfg
}

// Run runs the suite.
func Run(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"BookingAndWindows", testBookingAndWindows},
		{"IdempotentBooking", testIdempotentBooking},
		{"LargeBatch", testLargeBatch},
		{"IdempotencyHorizon", testIdempotencyHorizon},
		{"InvalidInput", testInvalidInput},
		{"LargeAmountsStayExact", testLargeAmounts},
		{"ReserveRace", testReserveRace},
		{"ReserveCommitReleaseRace", testReserveCommitReleaseRace},
		{"CommitByDecisionID", testCommitByDecisionID},
		{"CommitByTraceID", testCommitByTraceID},
		{"ReleaseReportedCost", testReleaseReportedCost},
		{"ExpireDueSettlesOnce", testExpireDueSettlesOnce},
		{"WindowRollover", testWindowRollover},
		{"Leases", testLeases},
		{"RateLimits", testRateLimits},
		{"IdempotencyRecords", testIdempotencyRecords},
		{"Approvals", testApprovals},
		{"ApprovalPendingCap", testApprovalPendingCap},
		{"ApprovalPaging", testApprovalPaging},
		{"ActiveIDs", testActiveIDs},
		{"Anomalies", testAnomalies},
		{"Read", testRead},
		{"Snapshot", testSnapshot},
		{"Persistence", testPersistence},
		{"SharedTruth", testSharedTruth},
		{"DecisionIDOfAnotherAgent", testDecisionIDOfAnotherAgent},
		{"ReportedCostClipped", testReportedCostClipped},
		{"EvidenceAnchor", testEvidenceAnchor},
		{"SameCallChildFirst", testSameCallChildFirst},
		{"SameCallParentFirst", testSameCallParentFirst},
		{"SameCallOneBatch", testSameCallOneBatch},
		{"SameCallOnlyDirectRelatives", testSameCallOnlyDirectRelatives},
		{"SameCallConcurrent", testSameCallConcurrent},
		{"OpenSpend", testOpenSpend},
		{"RunAnomalies", testRunAnomalies},
		{"Totals", testTotals},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, b) })
	}
}

var ctx = context.Background()

func usd(s string) money.Nanos {
	n, err := money.ParseUSD(s)
	if err != nil {
		panic(err)
	}
	return n
}

func open(t *testing.T, b Backend, tune ...func(*ledger.Config)) (ledger.Ledger, func() ledger.Ledger) {
	t.Helper()
	cfg := BaseConfig()
	for _, f := range tune {
		f(&cfg)
	}
	return b.Open(t, cfg)
}

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	return loc
}

func state(t *testing.T, l ledger.Ledger, scope ledger.Scope, id string, w ledger.Window, at time.Time) ledger.State {
	t.Helper()
	s, err := l.State(ctx, scope, id, w, at)
	if err != nil {
		t.Fatalf("State(%s %s %s): %v", scope, id, w, err)
	}
	return s
}

// bookCounts is a BookResult's counts, comparable with ==.
type bookCounts struct{ Booked, Duplicates, Matched int }

// book books spends and checks that the per-spend New mask agrees with the counts.
func book(t *testing.T, l ledger.Ledger, spends ...ledger.Spend) bookCounts {
	t.Helper()
	r, err := l.Book(ctx, spends)
	if err != nil {
		t.Fatalf("Book: %v", err)
	}
	if len(r.New) != len(spends) {
		t.Fatalf("Book: New mask of %d for %d spends", len(r.New), len(spends))
	}
	n := 0
	for i := range spends {
		if r.IsNew(i) {
			n++
		}
	}
	if n != r.Booked {
		t.Fatalf("Book: %d spends marked new, %d booked", n, r.Booked)
	}
	return bookCounts{r.Booked, r.Duplicates, r.Matched}
}

// bookMask books spends and returns which of them this call booked.
func bookMask(t *testing.T, l ledger.Ledger, spends ...ledger.Spend) []bool {
	t.Helper()
	r, err := l.Book(ctx, spends)
	if err != nil {
		t.Fatalf("Book: %v", err)
	}
	return r.New
}

func reserve(t *testing.T, l ledger.Ledger, req ledger.ReserveRequest) ledger.Reservation {
	t.Helper()
	r, err := l.Reserve(ctx, req)
	if err != nil {
		t.Fatalf("Reserve(%s): %v", req.ID, err)
	}
	return r
}

func release(t *testing.T, l ledger.Ledger, req ledger.ReleaseRequest) ledger.Settlement {
	t.Helper()
	s, err := l.Release(ctx, req)
	if err != nil {
		t.Fatalf("Release(%s): %v", req.ID, err)
	}
	return s
}

func testBookingAndWindows(t *testing.T, b Backend) {
	la := mustLoc(t, "America/Los_Angeles")
	l, _ := open(t, b, func(c *ledger.Config) { c.TimeZone = "America/Los_Angeles" })
	// 2026-03-01 is a Sunday. In UTC spend (a) falls on March 1st; in Los Angeles it is still
	// Saturday, February 28th.
	satFeb28 := time.Date(2026, 3, 1, 5, 0, 0, 0, time.UTC)
	sunMar1 := time.Date(2026, 3, 1, 23, 30, 0, 0, la)
	monMar2 := time.Date(2026, 3, 2, 0, 30, 0, 0, la)
	r := book(t, l,
		ledger.Spend{TraceID: "ta", SpanID: "a", Time: satFeb28, Agent: "A", Team: "T", Model: "M", RunID: "r1", Cost: usd("1")},
		ledger.Spend{TraceID: "tb", SpanID: "b", Time: sunMar1, Agent: "A", Model: "M", RunID: "r1", Cost: usd("2")},
		ledger.Spend{TraceID: "tc", SpanID: "c", Time: monMar2, Agent: "A", Team: "T", Model: "M2", Cost: usd("4")},
	)
	if r != (bookCounts{Booked: 3}) {
		t.Fatalf("Book = %+v, want 3 booked", r)
	}
	cases := []struct {
		scope     ledger.Scope
		id        string
		w         ledger.Window
		at        time.Time
		want      money.Nanos
		wantStart time.Time
	}{
		{ledger.ScopeAgent, "A", ledger.Month, satFeb28, usd("1"), time.Date(2026, 2, 1, 0, 0, 0, 0, la)},
		{ledger.ScopeAgent, "A", ledger.Month, monMar2, usd("6"), time.Date(2026, 3, 1, 0, 0, 0, 0, la)},
		// ISO weeks start on Monday: Saturday and Sunday share the week of Monday the 23rd.
		{ledger.ScopeAgent, "A", ledger.Week, sunMar1, usd("3"), time.Date(2026, 2, 23, 0, 0, 0, 0, la)},
		{ledger.ScopeAgent, "A", ledger.Week, monMar2, usd("4"), time.Date(2026, 3, 2, 0, 0, 0, 0, la)},
		{ledger.ScopeAgent, "A", ledger.Day, sunMar1, usd("2"), time.Date(2026, 3, 1, 0, 0, 0, 0, la)},
		{ledger.ScopeAgent, "A", ledger.Hour, sunMar1.Add(20 * time.Minute), usd("2"), time.Date(2026, 3, 1, 23, 0, 0, 0, la)},
		{ledger.ScopeAgent, "A", ledger.Minute, sunMar1.Add(59 * time.Second), usd("2"), sunMar1},
		{ledger.ScopeAgent, "A", ledger.Minute, sunMar1.Add(time.Minute), 0, sunMar1.Add(time.Minute)},
		{ledger.ScopeTeam, "T", ledger.Month, satFeb28, usd("1"), time.Date(2026, 2, 1, 0, 0, 0, 0, la)},
		{ledger.ScopeTeam, "T", ledger.Week, monMar2, usd("4"), time.Date(2026, 3, 2, 0, 0, 0, 0, la)},
		{ledger.ScopeModel, "M", ledger.Month, monMar2, usd("2"), time.Date(2026, 3, 1, 0, 0, 0, 0, la)},
		{ledger.ScopeModel, "M2", ledger.Day, monMar2, usd("4"), time.Date(2026, 3, 2, 0, 0, 0, 0, la)},
		{ledger.ScopeFleet, ledger.FleetID, ledger.Week, sunMar1, usd("3"), time.Date(2026, 2, 23, 0, 0, 0, 0, la)},
		{ledger.ScopeRun, "r1", ledger.Lifetime, monMar2, usd("3"), time.Time{}},
		{ledger.ScopeRun, "tc", ledger.Lifetime, monMar2, usd("4"), time.Time{}}, // no run id: the trace is the run
	}
	for _, c := range cases {
		s := state(t, l, c.scope, c.id, c.w, c.at)
		if s.Spent != c.want || s.Reserved != 0 || !s.Start.Equal(c.wantStart) {
			t.Errorf("%s %s %s at %v: spent %s reserved %s start %v; want spent %s start %v",
				c.scope, c.id, c.w, c.at, s.Spent, s.Reserved, s.Start, c.want, c.wantStart)
		}
		if c.w != ledger.Lifetime && s.Start.Location().String() != la.String() {
			t.Errorf("%s %s %s: start %v not in the ledger's time zone", c.scope, c.id, c.w, s.Start)
		}
	}
	if l.Location().String() != la.String() {
		t.Errorf("Location() = %v, want %v", l.Location(), la)
	}
	// An unset team books nothing under an empty id.
	if s := state(t, l, ledger.ScopeTeam, "", ledger.Month, monMar2); s.Spent != 0 {
		t.Errorf("empty team booked %s", s.Spent)
	}
}

func testIdempotentBooking(t *testing.T, b Backend) {
	l, _ := open(t, b)
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	s := func(span string, cost string) ledger.Spend {
		return ledger.Spend{TraceID: "t1", SpanID: span, Time: at, Agent: "A", Model: "M", Cost: usd(cost)}
	}
	r := book(t, l, s("1", "0.5"), s("2", "0.25"), s("1", "0.5"))
	if r != (bookCounts{Booked: 2, Duplicates: 1}) {
		t.Fatalf("first batch = %+v, want 2 booked 1 duplicate", r)
	}
	r = book(t, l, s("2", "0.25"), s("3", "1"), s("1", "0.5"))
	if r != (bookCounts{Booked: 1, Duplicates: 2}) {
		t.Fatalf("second batch = %+v, want 1 booked 2 duplicates", r)
	}
	want := usd("0.5") + usd("0.25") + usd("1")
	for _, w := range ledger.CalendarWindows {
		if got := state(t, l, ledger.ScopeAgent, "A", w, at).Spent; got != want {
			t.Errorf("agent %s spent %s, want %s", w, got, want)
		}
	}
	if got := state(t, l, ledger.ScopeRun, "t1", ledger.Lifetime, at).Spent; got != want {
		t.Errorf("run spent %s, want %s", got, want)
	}
	// The same batch booked concurrently still counts once.
	batch := []ledger.Spend{s("c1", "2"), s("c2", "3")}
	var wg sync.WaitGroup
	var booked atomic.Int64
	for range 8 {
		wg.Go(func() {
			r, err := l.Book(ctx, batch)
			if err != nil {
				t.Errorf("Book: %v", err)
			}
			booked.Add(int64(r.Booked))
		})
	}
	wg.Wait()
	if booked.Load() != 2 {
		t.Errorf("concurrent identical batches booked %d spends, want 2", booked.Load())
	}
	if got := state(t, l, ledger.ScopeFleet, ledger.FleetID, ledger.Day, at).Spent; got != want+usd("5") {
		t.Errorf("fleet spent %s, want %s", got, want+usd("5"))
	}
	// The New mask says which spends of a call it booked, in order (the exporter counts only those).
	if mask := bookMask(t, l, s("4", "1"), s("3", "1"), s("4", "1")); len(mask) != 3 || !mask[0] || mask[1] || mask[2] {
		t.Fatalf("New mask = %v, want [true false false]", mask)
	}
}

// testLargeBatch books more spends than one Redis script takes, with duplicates across chunks.
func testLargeBatch(t *testing.T, b Backend) {
	l, _ := open(t, b)
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	const distinct, total = 2400, 2500
	batch := make([]ledger.Spend, total)
	var want money.Nanos
	for i := range batch {
		span := i % distinct // the last 100 repeat the first 100
		batch[i] = ledger.Spend{TraceID: "t", SpanID: fmt.Sprint(span), Time: at, Agent: fmt.Sprint("agent-", span%7), Cost: money.Nanos(span + 1)}
		if i < distinct {
			want += money.Nanos(span + 1)
		}
	}
	if r := book(t, l, batch...); r != (bookCounts{Booked: distinct, Duplicates: total - distinct}) {
		t.Fatalf("Book = %+v, want %d booked and %d duplicates", r, distinct, total-distinct)
	}
	if s := state(t, l, ledger.ScopeFleet, ledger.FleetID, ledger.Hour, at); s.Spent != want {
		t.Errorf("fleet spent %d, want %d", s.Spent, want)
	}
}

func testIdempotencyHorizon(t *testing.T, b Backend) {
	const horizon = 300 * time.Millisecond
	l, _ := open(t, b, func(c *ledger.Config) { c.IdempotencyHorizon = horizon })
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	sp := ledger.Spend{TraceID: "t", SpanID: "s", Time: at, Agent: "A", Cost: usd("1")}
	book(t, l, sp)
	if r := book(t, l, sp); r.Duplicates != 1 {
		t.Fatalf("within the horizon: %+v, want a duplicate", r)
	}
	time.Sleep(horizon + 200*time.Millisecond)
	if r := book(t, l, sp); r.Booked != 1 {
		t.Fatalf("past the horizon: %+v, want booked again", r)
	}
	if got := state(t, l, ledger.ScopeAgent, "A", ledger.Day, at).Spent; got != usd("2") {
		t.Errorf("spent %s, want 2 after the record expired", got)
	}
}

func testInvalidInput(t *testing.T, b Backend) {
	l, _ := open(t, b)
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	good := ledger.Spend{TraceID: "t", SpanID: "ok", Time: at, Agent: "A", Cost: usd("1")}
	for _, bad := range []ledger.Spend{
		{TraceID: "t", SpanID: "neg", Time: at, Agent: "A", Cost: -1},
		{SpanID: "notrace", Time: at, Agent: "A", Cost: 1},
		{TraceID: "t", Time: at, Agent: "A", Cost: 1},
		{TraceID: "t", SpanID: "tok", Time: at, Agent: "A", Cost: 1, Tokens: ledger.Tokens{Output: -5}},
	} {
		if _, err := l.Book(ctx, []ledger.Spend{good, bad}); err == nil {
			t.Errorf("Book accepted %+v", bad)
		}
	}
	if got := state(t, l, ledger.ScopeAgent, "A", ledger.Day, at).Spent; got != 0 {
		t.Errorf("a rejected batch booked %s", got)
	}
	for _, req := range []ledger.ReserveRequest{
		{ID: "", TTL: time.Minute},
		{ID: "x", TTL: 0},
		{ID: "x", TTL: time.Minute, Estimate: -1},
		{ID: "x", TTL: time.Minute, Checks: []ledger.Check{{Scope: ledger.ScopeRun, ID: "r", Window: ledger.Hour, Limit: 1}}},
		{ID: "x", TTL: time.Minute, Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "A", Window: ledger.Lifetime, Limit: 1}}},
		{ID: "x", TTL: time.Minute, Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "", Window: ledger.Hour, Limit: 1}}},
		{ID: "x", TTL: time.Minute, Checks: []ledger.Check{{Scope: "planet", ID: "p", Window: ledger.Hour, Limit: 1}}},
		{ID: "x", TTL: time.Minute, Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "A", Window: "fortnight", Limit: 1}}},
	} {
		if _, err := l.Reserve(ctx, req); err == nil {
			t.Errorf("Reserve accepted %+v", req)
		}
	}
	if _, err := l.State(ctx, ledger.ScopeRun, "r", ledger.Day, at); err == nil {
		t.Error("State accepted a run in a day window")
	}
	if _, _, err := l.AllowRate(ctx, "k", 0, time.Minute, at); err == nil {
		t.Error("AllowRate accepted a zero limit")
	}
	if _, _, _, err := l.AcquireLease(ctx, "k", 0, time.Minute, at); err == nil {
		t.Error("AcquireLease accepted a zero limit")
	}
	if err := l.RecordAnomaly(ctx, "A", "span", at); err == nil {
		t.Error("RecordAnomaly accepted an unknown level")
	}
	if _, err := l.Release(ctx, ledger.ReleaseRequest{ID: "never-reserved"}); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("Release of an unknown id: %v, want ErrNotFound", err)
	}
}

// testLargeAmounts books, reserves and commits amounts past 2^53 nano-dollars (where a float64
// stops counting single nano-dollars): every sum and comparison stays exact.
func testLargeAmounts(t *testing.T, b Backend) {
	l, _ := open(t, b)
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	big := money.Nanos(1<<53 + 1)
	book(t, l,
		ledger.Spend{TraceID: "t", SpanID: "1", Time: at, Agent: "A", Cost: big},
		ledger.Spend{TraceID: "t", SpanID: "2", Time: at, Agent: "A", Cost: money.MaxNanos - 1},
		ledger.Spend{TraceID: "t", SpanID: "3", Time: at, Agent: "A", Cost: 3},
	)
	spent := big + money.MaxNanos - 1 + 3
	if s := state(t, l, ledger.ScopeAgent, "A", ledger.Day, at); s.Spent != spent {
		t.Fatalf("spent %d, want %d", s.Spent, spent)
	}
	estimate := money.Nanos(1<<53 + 3)
	limit := spent + estimate // exactly full
	check := []ledger.Check{{Scope: ledger.ScopeAgent, ID: "A", Window: ledger.Day, Limit: limit}}
	reserve(t, l, ledger.ReserveRequest{ID: "fits", Estimate: estimate, TTL: time.Minute, Time: at, Checks: check})
	_, err := l.Reserve(ctx, ledger.ReserveRequest{ID: "one-more", Estimate: 1, TTL: time.Minute, Time: at, Checks: check})
	var ee *ledger.ExhaustedError
	if !errors.As(err, &ee) || ee.Spent != spent || ee.Reserved != estimate {
		t.Fatalf("one nano-dollar over the limit: %v", err)
	}
	book(t, l, ledger.Spend{TraceID: "t", SpanID: "4", DecisionID: "fits", Time: at, Agent: "A", Cost: big})
	if s := state(t, l, ledger.ScopeAgent, "A", ledger.Day, at); s.Spent != spent+big || s.Reserved != estimate-big {
		t.Errorf("after commit: spent %d reserved %d, want %d and %d", s.Spent, s.Reserved, spent+big, estimate-big)
	}
	if st := release(t, l, ledger.ReleaseRequest{ID: "fits", Time: at}); st.MatchedCost != big || st.Cost != big {
		t.Errorf("settlement %+v, want cost %d", st, big)
	}
}

// testReserveRace is the anti-overrun guarantee: 64 concurrent reservations against one $50 limit
// with $7 already spent admit exactly floor(43 / 3) = 14 of $3.
func testReserveRace(t *testing.T, b Backend) {
	l, _ := open(t, b)
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	limit, spent, estimate := usd("50"), usd("7"), usd("3")
	book(t, l, ledger.Spend{TraceID: "t0", SpanID: "s0", Time: at, Agent: "A", Cost: spent})
	var ok, exhausted atomic.Int64
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			_, err := l.Reserve(ctx, ledger.ReserveRequest{
				ID: fmt.Sprintf("race-%d", i), Estimate: estimate, TTL: time.Minute, Time: at,
				Checks: []ledger.Check{
					{Scope: ledger.ScopeAgent, ID: "A", Window: ledger.Hour, Limit: limit},
					{Scope: ledger.ScopeFleet, ID: ledger.FleetID, Window: ledger.Day, Unlimited: true},
				},
			})
			var ee *ledger.ExhaustedError
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &ee):
				if ee.Scope != ledger.ScopeAgent || ee.ID != "A" || ee.Window != ledger.Hour || ee.Limit != limit {
					t.Errorf("exhausted error names %+v", ee)
				}
				if ee.Spent+ee.Reserved+estimate <= limit {
					t.Errorf("refused although %s + %s + %s fits in %s", ee.Spent, ee.Reserved, estimate, limit)
				}
				exhausted.Add(1)
			default:
				t.Errorf("Reserve: %v", err)
			}
		})
	}
	wg.Wait()
	wantOK := int64((limit - spent) / estimate)
	if ok.Load() != wantOK || exhausted.Load() != 64-wantOK {
		t.Fatalf("%d reserved, %d refused; want %d and %d", ok.Load(), exhausted.Load(), wantOK, 64-wantOK)
	}
	s := state(t, l, ledger.ScopeAgent, "A", ledger.Hour, at)
	if s.Spent != spent || s.Reserved != money.Nanos(wantOK)*estimate || s.Used() > limit {
		t.Errorf("agent hour spent %s reserved %s; want %s and %s (≤ %s)", s.Spent, s.Reserved, spent, money.Nanos(wantOK)*estimate, limit)
	}
	if f := state(t, l, ledger.ScopeFleet, ledger.FleetID, ledger.Day, at); f.Reserved != money.Nanos(wantOK)*estimate {
		t.Errorf("fleet reserved %s, want %s", f.Reserved, money.Nanos(wantOK)*estimate)
	}
}

// testReserveCommitReleaseRace mixes reserving, committing spans and releasing while a watcher
// checks that spent + reserved never passes the limit.
func testReserveCommitReleaseRace(t *testing.T, b Backend) {
	l, _ := open(t, b)
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	limit, estimate, cost := usd("50"), usd("3"), usd("2")
	stop := make(chan struct{})
	watched := make(chan int)
	go func() {
		n := 0
		defer func() { watched <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			s, err := l.State(ctx, ledger.ScopeAgent, "A", ledger.Hour, at)
			if err != nil {
				t.Errorf("State: %v", err)
				return
			}
			if s.Used() > limit {
				t.Errorf("spent %s + reserved %s passed the limit %s", s.Spent, s.Reserved, limit)
			}
			n++
		}
	}()
	var wins atomic.Int64
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			// Spent grows by $2 per action, so 25 actions exhaust the budget; the cap only stops a
			// broken backend from looping for ever.
			for i := range 64 {
				id := fmt.Sprintf("g%d-%d", g, i)
				_, err := l.Reserve(ctx, ledger.ReserveRequest{ID: id, Estimate: estimate, TTL: time.Minute, Time: at,
					Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "A", Window: ledger.Hour, Limit: limit}}})
				if err != nil {
					var ee *ledger.ExhaustedError
					if !errors.As(err, &ee) {
						t.Errorf("Reserve: %v", err)
					}
					return
				}
				wins.Add(1)
				if r, err := l.Book(ctx, []ledger.Spend{{TraceID: "t-" + id, SpanID: "s", DecisionID: id, Time: at, Agent: "A", Cost: cost}}); err != nil || r.Matched != 1 {
					t.Errorf("Book: %+v %v", r, err)
				}
				if _, err := l.Release(ctx, ledger.ReleaseRequest{ID: id, Time: at}); err != nil {
					t.Errorf("Release: %v", err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if n := <-watched; n == 0 {
		t.Error("the watcher never read the state")
	}
	s := state(t, l, ledger.ScopeAgent, "A", ledger.Hour, at)
	if s.Reserved != 0 || s.Spent != money.Nanos(wins.Load())*cost || s.Spent > limit {
		t.Errorf("after the race: spent %s reserved %s with %d actions of %s; want reserved 0, spent ≤ %s",
			s.Spent, s.Reserved, wins.Load(), cost, limit)
	}
	// Each action holds at most one estimate, so the first 16 attempts always fit (16 × 3 ≤ 50).
	if wins.Load() < 16 {
		t.Errorf("only %d actions admitted, want at least 16", wins.Load())
	}
}

func testCommitByDecisionID(t *testing.T, b Backend) {
	l, _ := open(t, b)
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	meta := map[string]string{"evidence_id": "ev-1", "max_tokens": "500"}
	res := reserve(t, l, ledger.ReserveRequest{
		ID: "d1", Estimate: usd("10"), TTL: time.Minute, Time: at, Agent: "A", Action: "job.research", Metadata: meta,
		Checks: []ledger.Check{
			{Scope: ledger.ScopeAgent, ID: "A", Window: ledger.Hour, Limit: usd("100")},
			{Scope: ledger.ScopeFleet, Window: ledger.Day, Unlimited: true},
			{Scope: ledger.ScopeRun, ID: "run-1", Window: ledger.Lifetime, Limit: usd("25")},
		},
	})
	if res.Estimate != usd("10") || !res.ExpiresAt.Equal(at.Add(time.Minute)) || len(res.Usage) != 3 {
		t.Fatalf("reservation %+v", res)
	}
	if u := res.Usage[0]; u.Spent != 0 || u.Reserved != usd("10") || !u.Start.Equal(at) || !u.End.Equal(at.Add(time.Hour)) {
		t.Errorf("usage after reserving: %+v", u)
	}
	if _, err := l.Reserve(ctx, ledger.ReserveRequest{ID: "d1", TTL: time.Minute, Time: at}); !errors.Is(err, ledger.ErrExists) {
		t.Errorf("reserving d1 twice: %v, want ErrExists", err)
	}
	// The first span costs less than the estimate: the reservation shrinks by its cost.
	r := book(t, l, ledger.Spend{TraceID: "tx", SpanID: "1", DecisionID: "d1", Time: at.Add(time.Second), Agent: "A",
		RunID: "run-1", Cost: usd("4"), Tokens: ledger.Tokens{Input: 1000, Output: 300}})
	if r != (bookCounts{Booked: 1, Matched: 1}) {
		t.Fatalf("Book = %+v, want 1 booked and matched", r)
	}
	check := func(scope ledger.Scope, id string, w ledger.Window, spent, reserved money.Nanos) {
		t.Helper()
		s := state(t, l, scope, id, w, at)
		if s.Spent != spent || s.Reserved != reserved {
			t.Errorf("%s %s %s: spent %s reserved %s; want %s and %s", scope, id, w, s.Spent, s.Reserved, spent, reserved)
		}
	}
	check(ledger.ScopeAgent, "A", ledger.Hour, usd("4"), usd("6"))
	check(ledger.ScopeFleet, ledger.FleetID, ledger.Day, usd("4"), usd("6"))
	check(ledger.ScopeRun, "run-1", ledger.Lifetime, usd("4"), usd("6"))
	// The second overshoots: the reservation falls to zero, never below.
	book(t, l, ledger.Spend{TraceID: "tx", SpanID: "2", DecisionID: "d1", Time: at.Add(2 * time.Second), Agent: "A",
		RunID: "run-1", Cost: usd("8"), Tokens: ledger.Tokens{Input: 2000, Output: 700, Reasoning: 100}, Anomaly: true})
	check(ledger.ScopeAgent, "A", ledger.Hour, usd("12"), 0)
	check(ledger.ScopeRun, "run-1", ledger.Lifetime, usd("12"), 0)
	st := release(t, l, ledger.ReleaseRequest{ID: "d1", ReportedCost: usd("99"), HasReported: true, Time: at.Add(time.Minute / 2)})
	want := ledger.Settlement{
		ID: "d1", Agent: "A", RunID: "run-1", Action: "job.research", Metadata: meta, Estimate: usd("10"),
		MatchedCost: usd("12"), SpansMatched: 2, MaxOutputTokens: 700, AnomalousSpans: 1,
		Tokens:       ledger.Tokens{Input: 3000, Output: 1000, Reasoning: 100},
		ReportedCost: usd("99"), HasReported: true, Source: decisionapi.SourceSpans, Cost: usd("12"), Reason: ledger.ReasonReleased,
	}
	if !sameSettlement(st, want) {
		t.Errorf("settlement\n got %+v\nwant %+v", st, want)
	}
	// The reported cost is not added when spans matched.
	check(ledger.ScopeAgent, "A", ledger.Hour, usd("12"), 0)
	again := release(t, l, ledger.ReleaseRequest{ID: "d1", Time: at.Add(time.Minute)})
	if !again.AlreadySettled || !sameSettlement(again, want) {
		t.Errorf("second release = %+v, want the first settlement, marked already settled", again)
	}
	// Spans after the release book normally and match nothing.
	if r := book(t, l, ledger.Spend{TraceID: "tx", SpanID: "3", DecisionID: "d1", Time: at.Add(3 * time.Second), Agent: "A", Cost: usd("1")}); r.Matched != 0 || r.Booked != 1 {
		t.Errorf("late span: %+v, want booked, not matched", r)
	}
	check(ledger.ScopeAgent, "A", ledger.Hour, usd("13"), 0)
}

// sameSettlement compares settlements without the times, the AlreadySettled flag and the
// claimed reported figure (only the settling call returns it; testReportedCostClipped checks it).
func sameSettlement(a, b ledger.Settlement) bool {
	a.ReportedClaimed, a.ReportedClipped, b.ReportedClaimed, b.ReportedClipped = 0, false, 0, false
	if len(a.Metadata) != len(b.Metadata) {
		return false
	}
	for k, v := range b.Metadata {
		if a.Metadata[k] != v {
			return false
		}
	}
	a.Metadata, b.Metadata = nil, nil
	a.CreatedAt, a.ExpiresAt, a.SettledAt, a.AlreadySettled = time.Time{}, time.Time{}, time.Time{}, false
	b.CreatedAt, b.ExpiresAt, b.SettledAt, b.AlreadySettled = time.Time{}, time.Time{}, time.Time{}, false
	return reflect.DeepEqual(a, b)
}

func testCommitByTraceID(t *testing.T, b Backend) {
	l, _ := open(t, b)
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	reserve(t, l, ledger.ReserveRequest{ID: "d2", TraceID: "trace-2", Estimate: usd("5"), TTL: time.Minute, Time: at,
		Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "B", Window: ledger.Day, Limit: usd("100")}}})
	r := book(t, l,
		// No decision id: matched by trace.
		ledger.Spend{TraceID: "trace-2", SpanID: "1", Time: at, Agent: "B", Cost: usd("1")},
		// An unknown decision id falls back to the trace.
		ledger.Spend{TraceID: "trace-2", SpanID: "2", DecisionID: "unknown", Time: at, Agent: "B", Cost: usd("1.5")},
		// Another trace: not matched.
		ledger.Spend{TraceID: "trace-3", SpanID: "1", Time: at, Agent: "B", Cost: usd("7")},
	)
	if r != (bookCounts{Booked: 3, Matched: 2}) {
		t.Fatalf("Book = %+v, want 3 booked 2 matched", r)
	}
	s := state(t, l, ledger.ScopeAgent, "B", ledger.Day, at)
	if s.Spent != usd("9.5") || s.Reserved != usd("2.5") {
		t.Errorf("spent %s reserved %s, want 9.5 and 2.5", s.Spent, s.Reserved)
	}
	st := release(t, l, ledger.ReleaseRequest{ID: "d2", Time: at})
	if st.Source != decisionapi.SourceSpans || st.Cost != usd("2.5") || st.SpansMatched != 2 || st.TraceID != "trace-2" {
		t.Errorf("settlement %+v, want 2 spans for 2.5", st)
	}
	if s := state(t, l, ledger.ScopeAgent, "B", ledger.Day, at); s.Reserved != 0 || s.Spent != usd("9.5") {
		t.Errorf("after release: spent %s reserved %s", s.Spent, s.Reserved)
	}
	// After the release the trace matches nothing.
	if r := book(t, l, ledger.Spend{TraceID: "trace-2", SpanID: "3", Time: at, Agent: "B", Cost: usd("1")}); r.Matched != 0 {
		t.Errorf("span after release matched: %+v", r)
	}
}

func testReleaseReportedCost(t *testing.T, b Backend) {
	l, _ := open(t, b)
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	checks := []ledger.Check{
		{Scope: ledger.ScopeAgent, ID: "C", Window: ledger.Hour, Limit: usd("100")},
		{Scope: ledger.ScopeTeam, ID: "growth", Window: ledger.Day, Limit: usd("500")},
		{Scope: ledger.ScopeRun, ID: "run-c", Window: ledger.Lifetime, Limit: usd("25")},
	}
	reserve(t, l, ledger.ReserveRequest{ID: "rep", Estimate: usd("5"), TTL: time.Minute, Time: at, Checks: checks})
	reserve(t, l, ledger.ReserveRequest{ID: "none", Estimate: usd("2"), TTL: time.Minute, Time: at, Checks: checks})
	st := release(t, l, ledger.ReleaseRequest{ID: "rep", ReportedCost: usd("3"), HasReported: true, Time: at.Add(time.Second)})
	if st.Source != decisionapi.SourceReported || st.Cost != usd("3") || st.MatchedCost != 0 || st.Agent != "C" || st.Team != "growth" || st.RunID != "run-c" {
		t.Errorf("settlement %+v, want reported cost 3 attributed to C, growth, run-c", st)
	}
	st = release(t, l, ledger.ReleaseRequest{ID: "none", Time: at.Add(time.Second)})
	if st.Source != decisionapi.SourceNone || st.Cost != 0 {
		t.Errorf("settlement %+v, want none", st)
	}
	// The reported cost is booked as model-less spend of the agent, team, run and fleet.
	for _, c := range []struct {
		scope ledger.Scope
		id    string
		w     ledger.Window
	}{
		{ledger.ScopeAgent, "C", ledger.Hour}, {ledger.ScopeAgent, "C", ledger.Month}, {ledger.ScopeTeam, "growth", ledger.Day},
		{ledger.ScopeRun, "run-c", ledger.Lifetime}, {ledger.ScopeFleet, ledger.FleetID, ledger.Week},
	} {
		if s := state(t, l, c.scope, c.id, c.w, at); s.Spent != usd("3") || s.Reserved != 0 {
			t.Errorf("%s %s %s: spent %s reserved %s, want 3 and 0", c.scope, c.id, c.w, s.Spent, s.Reserved)
		}
	}
}

func testExpireDueSettlesOnce(t *testing.T, b Backend) {
	l, again := open(t, b)
	others := []ledger.Ledger{l}
	if b.Shared {
		others = append(others, again())
	}
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	for i := range 20 {
		ttl := time.Minute
		if i%2 == 1 {
			ttl = time.Hour
		}
		reserve(t, l, ledger.ReserveRequest{ID: fmt.Sprintf("e%d", i), Estimate: usd("1"), TTL: ttl, Time: t0,
			Action: "job.x", Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "E", Window: ledger.Day, Limit: usd("100")}}})
	}
	if due, err := l.ExpireDue(ctx, t0.Add(30*time.Second)); err != nil || len(due) != 0 {
		t.Fatalf("ExpireDue before the TTL: %d, %v", len(due), err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			due, err := others[i%len(others)].ExpireDue(ctx, t0.Add(61*time.Second))
			if err != nil {
				t.Errorf("ExpireDue: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, s := range due {
				seen[s.ID]++
				if s.Reason != ledger.ReasonExpired || s.Source != decisionapi.SourceNone || s.Action != "job.x" {
					t.Errorf("settlement %+v", s)
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != 10 {
		t.Errorf("%d reservations expired, want the 10 with a one-minute TTL", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s settled %d times", id, n)
		}
	}
	if s := state(t, l, ledger.ScopeAgent, "E", ledger.Day, t0); s.Reserved != usd("10") {
		t.Errorf("reserved %s after expiry, want the 10 one-hour reservations", s.Reserved)
	}
	st := release(t, l, ledger.ReleaseRequest{ID: "e0", ReportedCost: usd("1"), HasReported: true, Time: t0.Add(2 * time.Minute)})
	if !st.AlreadySettled || st.Reason != ledger.ReasonExpired || st.Cost != 0 {
		t.Errorf("release after expiry = %+v, want the expired settlement", st)
	}
	if s := state(t, l, ledger.ScopeAgent, "E", ledger.Day, t0); s.Spent != 0 {
		t.Errorf("a late reported cost was booked: %s", s.Spent)
	}
	due, err := l.ExpireDue(ctx, t0.Add(2*time.Hour))
	if err != nil || len(due) != 10 {
		t.Fatalf("ExpireDue after an hour: %d, %v", len(due), err)
	}
	if s := state(t, l, ledger.ScopeAgent, "E", ledger.Day, t0); s.Reserved != 0 {
		t.Errorf("reserved %s after every reservation expired", s.Reserved)
	}
}

// testWindowRollover reserves concurrently on both sides of an hour boundary: each hour admits its
// own limit, and releases free the right hour.
func testWindowRollover(t *testing.T, b Backend) {
	l, _ := open(t, b)
	boundary := time.Date(2026, 5, 4, 11, 0, 0, 0, time.UTC)
	before, after := boundary.Add(-500*time.Millisecond), boundary.Add(500*time.Millisecond)
	limit, estimate := usd("20"), usd("1")
	var mu sync.Mutex
	won := map[bool][]string{}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			late := i%2 == 1
			when := before
			if late {
				when = after
			}
			id := fmt.Sprintf("w%d", i)
			_, err := l.Reserve(ctx, ledger.ReserveRequest{ID: id, Estimate: estimate, TTL: time.Hour, Time: when,
				Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "W", Window: ledger.Hour, Limit: limit}}})
			if err == nil {
				mu.Lock()
				won[late] = append(won[late], id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(won[false]) != 20 || len(won[true]) != 20 {
		t.Fatalf("admitted %d before and %d after the boundary, want 20 each", len(won[false]), len(won[true]))
	}
	for _, at := range []time.Time{before, after} {
		if s := state(t, l, ledger.ScopeAgent, "W", ledger.Hour, at); s.Reserved != limit {
			t.Errorf("hour of %v reserved %s, want %s", at, s.Reserved, limit)
		}
	}
	// A span of an action reserved before the boundary books after it: its spend lands in the new
	// hour while the reservation shrinks in the old one.
	book(t, l, ledger.Spend{TraceID: "t", SpanID: "s", DecisionID: won[false][0], Time: after, Agent: "W", Cost: usd("0.25")})
	if s := state(t, l, ledger.ScopeAgent, "W", ledger.Hour, before); s.Spent != 0 || s.Reserved != limit-usd("0.25") {
		t.Errorf("old hour: spent %s reserved %s", s.Spent, s.Reserved)
	}
	if s := state(t, l, ledger.ScopeAgent, "W", ledger.Hour, after); s.Spent != usd("0.25") || s.Reserved != limit {
		t.Errorf("new hour: spent %s reserved %s", s.Spent, s.Reserved)
	}
	for _, ids := range won {
		for _, id := range ids {
			wg.Go(func() {
				if _, err := l.Release(ctx, ledger.ReleaseRequest{ID: id, Time: after}); err != nil {
					t.Errorf("Release: %v", err)
				}
			})
		}
	}
	wg.Wait()
	for _, at := range []time.Time{before, after} {
		if s := state(t, l, ledger.ScopeAgent, "W", ledger.Hour, at); s.Reserved != 0 {
			t.Errorf("hour of %v still reserves %s", at, s.Reserved)
		}
	}
}

func testLeases(t *testing.T, b Backend) {
	l, _ := open(t, b)
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	acquire := func(at time.Time) (string, bool, time.Duration) {
		t.Helper()
		id, ok, retry, err := l.AcquireLease(ctx, "rule:agent", 2, time.Minute, at)
		if err != nil {
			t.Fatalf("AcquireLease: %v", err)
		}
		return id, ok, retry
	}
	first, ok1, _ := acquire(t0)
	_, ok2, _ := acquire(t0.Add(10 * time.Second))
	_, ok3, retry := acquire(t0.Add(20 * time.Second))
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("leases granted %v %v %v, want the first two of max 2", ok1, ok2, ok3)
	}
	if want := 40 * time.Second; retry != want {
		t.Errorf("retry after %v, want %v (until the first lease expires)", retry, want)
	}
	if err := l.ReleaseLease(ctx, "rule:agent", first); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := acquire(t0.Add(30 * time.Second)); !ok {
		t.Error("no lease after one was released")
	}
	if err := l.ReleaseLease(ctx, "rule:agent", "no-such-lease"); err != nil {
		t.Errorf("releasing an unknown lease: %v", err)
	}
	// All held leases have expired two minutes later.
	_, okA, _ := acquire(t0.Add(2 * time.Minute))
	_, okB, _ := acquire(t0.Add(2 * time.Minute))
	if !okA || !okB {
		t.Error("expired leases still count")
	}
	// Exactly max of many concurrent acquisitions succeed.
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			_, ok, _, err := l.AcquireLease(ctx, "concurrent", 5, time.Minute, t0)
			if err != nil {
				t.Errorf("AcquireLease: %v", err)
			}
			if ok {
				got.Add(1)
			}
		})
	}
	wg.Wait()
	if got.Load() != 5 {
		t.Errorf("%d concurrent leases granted, want 5", got.Load())
	}
}

func testRateLimits(t *testing.T, b Backend) {
	l, _ := open(t, b)
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	const limit, per = 10, time.Minute
	interval := per / limit
	var allowed atomic.Int64
	var retries sync.Map
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			ok, retry, err := l.AllowRate(ctx, "rule:agent", limit, per, t0)
			if err != nil {
				t.Errorf("AllowRate: %v", err)
			}
			if ok {
				allowed.Add(1)
			} else {
				retries.Store(retry, true)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != limit {
		t.Fatalf("%d admitted, want %d", allowed.Load(), limit)
	}
	retries.Range(func(k, _ any) bool {
		if k.(time.Duration) != interval {
			t.Errorf("retry after %v, want %v", k, interval)
		}
		return true
	})
	if ok, _, _ := l.AllowRate(ctx, "rule:agent", limit, per, t0.Add(interval-time.Millisecond)); ok {
		t.Error("admitted before the interval passed")
	}
	if ok, _, _ := l.AllowRate(ctx, "rule:agent", limit, per, t0.Add(interval)); !ok {
		t.Error("not admitted after one interval")
	}
	if ok, retry, _ := l.AllowRate(ctx, "rule:agent", limit, per, t0.Add(interval)); ok || retry != interval {
		t.Errorf("second event in the interval: ok %v retry %v, want refused for %v", ok, retry, interval)
	}
	if ok, _, _ := l.AllowRate(ctx, "other", limit, per, t0); !ok {
		t.Error("keys are not independent")
	}
	// Once the theoretical arrival time (t0 + 2 intervals + the period) has passed, a whole burst is
	// available again.
	n := 0
	for range limit + 1 {
		if ok, _, _ := l.AllowRate(ctx, "rule:agent", limit, per, t0.Add(2*interval+per)); ok {
			n++
		}
	}
	if n != limit {
		t.Errorf("burst after a quiet period: %d, want %d", n, limit)
	}
}

func testIdempotencyRecords(t *testing.T, b Backend) {
	l, _ := open(t, b)
	var created atomic.Int64
	values := make([]string, 16)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			existing, ok, err := l.PutIfAbsent(ctx, "idem-1", []byte(fmt.Sprintf("v%d", i)), time.Minute)
			if err != nil {
				t.Errorf("PutIfAbsent: %v", err)
			}
			if ok {
				created.Add(1)
				values[i] = fmt.Sprintf("v%d", i)
			} else {
				values[i] = string(existing)
			}
		})
	}
	wg.Wait()
	if created.Load() != 1 {
		t.Fatalf("%d callers created the record, want 1", created.Load())
	}
	for _, v := range values[1:] {
		if v != values[0] {
			t.Fatalf("callers saw different values: %q", values)
		}
	}
	if _, ok, err := l.PutIfAbsent(ctx, "short", []byte("a"), 200*time.Millisecond); !ok || err != nil {
		t.Fatalf("PutIfAbsent: %v %v", ok, err)
	}
	time.Sleep(400 * time.Millisecond)
	if _, ok, err := l.PutIfAbsent(ctx, "short", []byte("b"), time.Minute); !ok || err != nil {
		t.Errorf("an expired record was not replaced: %v %v", ok, err)
	}
}

func testApprovals(t *testing.T, b Backend) {
	l, _ := open(t, b)
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	mk := func(id string, ttl time.Duration) ledger.Approval {
		a, err := l.CreateApproval(ctx, ledger.Approval{ID: id, Agent: "A", Action: "job.batch-generate", Estimate: usd("60"),
			Items: 200, Rule: "approve-expensive-batch", Reason: "big", Requester: "research-agent", CreatedAt: t0,
			ExpiresAt: t0.Add(ttl), Payload: []byte(`{"run_id":"r"}`)}, 0)
		if err != nil {
			t.Fatalf("CreateApproval(%s): %v", id, err)
		}
		return a
	}
	a := mk("ap1", time.Hour)
	if a.State != decisionapi.ApprovalPending {
		t.Fatalf("new approval is %s", a.State)
	}
	mk("ap2", time.Hour)
	mk("ap3", time.Minute)
	if _, err := l.CreateApproval(ctx, ledger.Approval{ID: "ap1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, 0); !errors.Is(err, ledger.ErrExists) {
		t.Errorf("duplicate approval: %v, want ErrExists", err)
	}
	got, err := l.GetApproval(ctx, "ap1", t0)
	if err != nil || got.Agent != "A" || got.Estimate != usd("60") || got.Items != 200 || string(got.Payload) != `{"run_id":"r"}` || !got.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("GetApproval = %+v, %v", got, err)
	}
	if _, err := l.GetApproval(ctx, "nope", t0); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("unknown approval: %v", err)
	}
	// Consuming before approval is refused.
	if _, err := l.ConsumeApproval(ctx, "ap1", t0); !errors.Is(err, ledger.ErrConflict) {
		t.Errorf("consume pending: %v, want a conflict", err)
	}
	// Concurrent reviewers: exactly one resolution wins.
	var wins atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, err := l.ResolveApproval(ctx, "ap1", ledger.Resolution{Approve: i%2 == 0, Reviewer: fmt.Sprintf("rev%d", i),
				Constraints: []byte(`{"max_tokens":1000}`), CostCap: usd("40"), HasCostCap: true, Time: t0.Add(time.Minute)})
			var se *ledger.ApprovalStateError
			switch {
			case err == nil:
				wins.Add(1)
			case errors.As(err, &se) && errors.Is(err, ledger.ErrConflict):
			default:
				t.Errorf("ResolveApproval: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d resolutions won, want 1", wins.Load())
	}
	got, _ = l.GetApproval(ctx, "ap1", t0.Add(time.Minute))
	if got.Decision == nil || got.Decision.Reviewer == "" || !got.Decision.HasCostCap || got.Decision.CostCap != usd("40") || string(got.Decision.Constraints) != `{"max_tokens":1000}` {
		t.Fatalf("resolved approval %+v", got)
	}
	if (got.State == decisionapi.ApprovalApproved) != got.Decision.Approved {
		t.Errorf("state %s disagrees with decision %+v", got.State, got.Decision)
	}
	// Make the approved path deterministic with ap2.
	if ap, err := l.ResolveApproval(ctx, "ap2", ledger.Resolution{Approve: true, Reviewer: "alice@example.com", Time: t0.Add(time.Minute)}); err != nil || ap.State != decisionapi.ApprovalApproved || ap.Decision.Reviewer != "alice@example.com" {
		t.Fatalf("approve ap2: %+v %v", ap, err)
	}
	if _, err := l.ResolveApproval(ctx, "ap2", ledger.Resolution{Approve: false, Reviewer: "bob", Time: t0.Add(2 * time.Minute)}); !errors.Is(err, ledger.ErrConflict) {
		t.Errorf("resolving twice: %v, want a conflict", err)
	}
	var consumed atomic.Int64
	for range 8 {
		wg.Go(func() {
			if _, err := l.ConsumeApproval(ctx, "ap2", t0.Add(3*time.Minute)); err == nil {
				consumed.Add(1)
			} else if !errors.Is(err, ledger.ErrConflict) {
				t.Errorf("ConsumeApproval: %v", err)
			}
		})
	}
	wg.Wait()
	if consumed.Load() != 1 {
		t.Errorf("approval consumed %d times, want exactly once", consumed.Load())
	}
	// ap3 expires unanswered after a minute.
	if _, err := l.ResolveApproval(ctx, "ap3", ledger.Resolution{Approve: true, Reviewer: "alice", Time: t0.Add(2 * time.Minute)}); !errors.Is(err, ledger.ErrConflict) {
		t.Errorf("resolving an expired approval: %v, want a conflict", err)
	}
	now := t0.Add(4 * time.Minute)
	states := map[decisionapi.ApprovalState][]string{}
	all, err := l.ListApprovals(ctx, "", ledger.ApprovalCursor{}, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		states[a.State] = append(states[a.State], a.ID)
	}
	if len(all) != 3 || len(states[decisionapi.ApprovalConsumed]) != 1 || states[decisionapi.ApprovalConsumed][0] != "ap2" ||
		len(states[decisionapi.ApprovalExpired]) != 1 || states[decisionapi.ApprovalExpired][0] != "ap3" {
		t.Errorf("approvals by state: %v", states)
	}
	expired, _ := l.ListApprovals(ctx, decisionapi.ApprovalExpired, ledger.ApprovalCursor{}, 0, now)
	if len(expired) != 1 || expired[0].ID != "ap3" {
		t.Errorf("ListApprovals(expired) = %v", expired)
	}
	if pending, _ := l.ListApprovals(ctx, decisionapi.ApprovalPending, ledger.ApprovalCursor{}, 0, now); len(pending) != 0 {
		t.Errorf("ListApprovals(pending) = %v", pending)
	}
	// An approved but unconsumed approval expires too.
	mk("ap4", 10*time.Minute)
	if _, err := l.ResolveApproval(ctx, "ap4", ledger.Resolution{Approve: true, Reviewer: "alice", Time: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ConsumeApproval(ctx, "ap4", t0.Add(11*time.Minute)); !errors.Is(err, ledger.ErrConflict) {
		t.Errorf("consuming after expiry: %v, want a conflict", err)
	}
	if pending, _ := l.ListApprovals(ctx, decisionapi.ApprovalPending, ledger.ApprovalCursor{}, 0, t0); len(pending) != 1 || pending[0].ID != "ap3" {
		t.Errorf("pending at t0: %v, want ap3 (ap4 is approved)", pending)
	}
}

func testAnomalies(t *testing.T, b Backend) {
	l, _ := open(t, b)
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	if _, ok, err := l.LastAnomaly(ctx, "A", ledger.LevelAction); ok || err != nil {
		t.Fatalf("anomaly before any: %v %v", ok, err)
	}
	for _, at := range []time.Time{t0.Add(time.Minute), t0} { // the later one is kept
		if err := l.RecordAnomaly(ctx, "A", ledger.LevelAction, at); err != nil {
			t.Fatal(err)
		}
	}
	if got, ok, _ := l.LastAnomaly(ctx, "A", ledger.LevelAction); !ok || !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("last action anomaly %v %v, want %v", got, ok, t0.Add(time.Minute))
	}
	if _, ok, _ := l.LastAnomaly(ctx, "A", ledger.LevelCall); ok {
		t.Error("an action anomaly counted as a call anomaly")
	}
	book(t, l,
		ledger.Spend{TraceID: "t", SpanID: "1", Time: t0.Add(2 * time.Minute), Agent: "A", Cost: 1, Anomaly: true},
		ledger.Spend{TraceID: "t", SpanID: "2", Time: t0.Add(5 * time.Minute), Agent: "A", Cost: 1},
		ledger.Spend{TraceID: "t", SpanID: "3", Time: t0.Add(3 * time.Minute), Agent: "A", Cost: 1, Anomaly: true},
	)
	if got, ok, _ := l.LastAnomaly(ctx, "A", ledger.LevelCall); !ok || !got.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("last call anomaly %v %v, want %v", got, ok, t0.Add(3*time.Minute))
	}
	if _, ok, _ := l.LastAnomaly(ctx, "B", ledger.LevelCall); ok {
		t.Error("agent B has an anomaly")
	}
}

// testRead checks that one Read sees what State and LastAnomaly see, in request order, and
// rejects a query that State rejects.
func testRead(t *testing.T, b Backend) {
	l, _ := open(t, b)
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	book(t, l,
		ledger.Spend{TraceID: "t", SpanID: "1", Time: t0, Agent: "A", Team: "T", RunID: "R", Cost: usd("1.5"), Anomaly: true},
		ledger.Spend{TraceID: "t", SpanID: "2", Time: t0, Agent: "B", Cost: usd("0.25")},
	)
	if _, err := l.Reserve(ctx, ledger.ReserveRequest{ID: "d1", Estimate: usd("2"), TTL: time.Hour, Time: t0,
		Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "A", Window: ledger.Day, Limit: usd("10")}}}); err != nil {
		t.Fatal(err)
	}
	queries := []ledger.StateQuery{
		{Scope: ledger.ScopeAgent, ID: "A", Window: ledger.Day},
		{Scope: ledger.ScopeFleet, ID: ledger.FleetID, Window: ledger.Hour},
		{Scope: ledger.ScopeRun, ID: "R", Window: ledger.Lifetime},
		{Scope: ledger.ScopeAgent, ID: "nobody", Window: ledger.Month},
	}
	got, err := l.Read(ctx, ledger.ReadRequest{States: queries, Agent: "A", Time: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.States) != len(queries) {
		t.Fatalf("%d states for %d queries", len(got.States), len(queries))
	}
	for i, q := range queries {
		want := state(t, l, q.Scope, q.ID, q.Window, t0.Add(time.Minute))
		if g := got.States[i]; g.Scope != want.Scope || g.ID != want.ID || g.Spent != want.Spent ||
			g.Reserved != want.Reserved || !g.Start.Equal(want.Start) || !g.End.Equal(want.End) {
			t.Errorf("query %d: Read %+v, State %+v", i, g, want)
		}
	}
	if a := got.States[0]; a.Spent != usd("1.5") || a.Reserved != usd("2") {
		t.Errorf("agent A: spent %s reserved %s, want 1.5 and 2", a.Spent, a.Reserved)
	}
	if f := got.States[1]; f.Spent != usd("1.75") {
		t.Errorf("fleet spent %s, want 1.75", f.Spent)
	}
	if !got.LastCallAnomaly.Equal(t0) || !got.LastActionAnomaly.IsZero() {
		t.Errorf("anomalies call %v action %v, want %v and none", got.LastCallAnomaly, got.LastActionAnomaly, t0)
	}
	if none, err := l.Read(ctx, ledger.ReadRequest{Agent: "B", Time: t0}); err != nil || len(none.States) != 0 || !none.LastCallAnomaly.IsZero() {
		t.Errorf("agent B: %+v %v, want no states and no anomaly", none, err)
	}
	if _, err := l.Read(ctx, ledger.ReadRequest{States: []ledger.StateQuery{{Scope: ledger.ScopeRun, ID: "R", Window: ledger.Day}}}); err == nil {
		t.Error("a run read in a day window was accepted")
	}
}

func testSnapshot(t *testing.T, b Backend) {
	l, _ := open(t, b)
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	book(t, l,
		ledger.Spend{TraceID: "t", SpanID: "1", Time: t0, Agent: "A", Team: "T", Model: "M", Cost: usd("1")},
		ledger.Spend{TraceID: "t", SpanID: "2", Time: t0, Agent: "B", Model: "M", Cost: usd("2")},
		// Last hour: still in today's day window, not in this hour's.
		ledger.Spend{TraceID: "t", SpanID: "3", Time: t0.Add(-time.Hour), Agent: "C", Cost: usd("4")},
	)
	reserve(t, l, ledger.ReserveRequest{ID: "r", Estimate: usd("8"), TTL: time.Minute, Time: t0,
		Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "D", Window: ledger.Hour, Limit: usd("100")}}})
	reserve(t, l, ledger.ReserveRequest{ID: "gone", Estimate: usd("8"), TTL: time.Minute, Time: t0,
		Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "E", Window: ledger.Hour, Limit: usd("100")}}})
	release(t, l, ledger.ReleaseRequest{ID: "gone", Time: t0})
	snap, err := l.Snapshot(ctx, t0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		scope ledger.Scope
		id    string
		w     ledger.Window
	}
	got := map[key][2]money.Nanos{}
	for _, s := range snap.States {
		got[key{s.Scope, s.ID, s.Window}] = [2]money.Nanos{s.Spent, s.Reserved}
	}
	want := map[key][2]money.Nanos{
		{ledger.ScopeAgent, "A", ledger.Hour}:             {usd("1"), 0},
		{ledger.ScopeAgent, "B", ledger.Day}:              {usd("2"), 0},
		{ledger.ScopeAgent, "C", ledger.Day}:              {usd("4"), 0},
		{ledger.ScopeTeam, "T", ledger.Month}:             {usd("1"), 0},
		{ledger.ScopeModel, "M", ledger.Week}:             {usd("3"), 0},
		{ledger.ScopeFleet, ledger.FleetID, ledger.Hour}:  {usd("3"), 0},
		{ledger.ScopeFleet, ledger.FleetID, ledger.Month}: {usd("7"), 0},
		{ledger.ScopeAgent, "D", ledger.Hour}:             {0, usd("8")},
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("snapshot %v = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got[key{ledger.ScopeAgent, "C", ledger.Hour}]; ok {
		t.Error("snapshot lists C in this hour, where it spent nothing")
	}
	if _, ok := got[key{ledger.ScopeAgent, "E", ledger.Hour}]; ok {
		t.Error("snapshot lists E, whose only reservation was released without spend")
	}
	if _, ok := got[key{ledger.ScopeAgent, "A", ledger.Minute}]; !ok {
		t.Error("snapshot misses the current minute")
	}
	// A bounded snapshot says it was cut.
	small, _ := open(t, b, func(c *ledger.Config) { c.SnapshotLimit = 3 })
	book(t, small, ledger.Spend{TraceID: "t", SpanID: "1", Time: t0, Agent: "A", Cost: 1})
	snap, err = small.Snapshot(ctx, t0)
	if err != nil || len(snap.States) != 3 || !snap.Truncated {
		t.Errorf("limited snapshot: %d states, truncated %v, %v", len(snap.States), snap.Truncated, err)
	}
}

// testPersistence checks that another ledger over the same storage (the embedded file reopened, or a
// second Redis client) sees everything acknowledged.
func testPersistence(t *testing.T, b Backend) {
	l, again := open(t, b)
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	book(t, l, ledger.Spend{TraceID: "t", SpanID: "1", Time: t0, Agent: "A", Cost: usd("1.5"), Anomaly: true})
	reserve(t, l, ledger.ReserveRequest{ID: "open", TraceID: "t2", Estimate: usd("3"), TTL: time.Minute, Time: t0,
		Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "A", Window: ledger.Day, Limit: usd("10")}}})
	reserve(t, l, ledger.ReserveRequest{ID: "done", Estimate: usd("1"), TTL: time.Minute, Time: t0,
		Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "A", Window: ledger.Day, Limit: usd("10")}}})
	first := release(t, l, ledger.ReleaseRequest{ID: "done", ReportedCost: usd("0.5"), HasReported: true, Time: t0})
	lease, ok, _, err := l.AcquireLease(ctx, "k", 1, time.Minute, t0)
	if err != nil || !ok {
		t.Fatalf("AcquireLease: %v %v", ok, err)
	}
	if ok, _, err := l.AllowRate(ctx, "rk", 1, time.Minute, t0); err != nil || !ok {
		t.Fatalf("AllowRate: %v %v", ok, err)
	}
	if _, ok, err := l.PutIfAbsent(ctx, "pk", []byte("v"), time.Hour); err != nil || !ok {
		t.Fatalf("PutIfAbsent: %v %v", ok, err)
	}
	if _, err := l.CreateApproval(ctx, ledger.Approval{ID: "ap", Agent: "A", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}, 0); err != nil {
		t.Fatal(err)
	}

	l2 := again()
	if s := state(t, l2, ledger.ScopeAgent, "A", ledger.Day, t0); s.Spent != usd("2") || s.Reserved != usd("3") {
		t.Errorf("after reopening: spent %s reserved %s, want 2 and 3", s.Spent, s.Reserved)
	}
	if r := book(t, l2, ledger.Spend{TraceID: "t", SpanID: "1", Time: t0, Agent: "A", Cost: usd("1.5")}); r.Duplicates != 1 {
		t.Errorf("a booked span booked again after reopening: %+v", r)
	}
	if r := book(t, l2, ledger.Spend{TraceID: "t2", SpanID: "x", Time: t0, Agent: "A", Cost: usd("1")}); r.Matched != 1 {
		t.Errorf("the open reservation's trace did not match after reopening: %+v", r)
	}
	if s := release(t, l2, ledger.ReleaseRequest{ID: "done", Time: t0}); !s.AlreadySettled || s.Cost != first.Cost {
		t.Errorf("settled reservation after reopening: %+v", s)
	}
	if _, ok, _, _ := l2.AcquireLease(ctx, "k", 1, time.Minute, t0); ok {
		t.Error("the held lease was forgotten")
	}
	if err := l2.ReleaseLease(ctx, "k", lease); err != nil {
		t.Error(err)
	}
	if ok, _, _ := l2.AllowRate(ctx, "rk", 1, time.Minute, t0); ok {
		t.Error("the rate limit state was forgotten")
	}
	if v, ok, _ := l2.PutIfAbsent(ctx, "pk", []byte("w"), time.Hour); ok || string(v) != "v" {
		t.Errorf("idempotency record after reopening: %q %v", v, ok)
	}
	if a, err := l2.GetApproval(ctx, "ap", t0); err != nil || a.State != decisionapi.ApprovalPending {
		t.Errorf("approval after reopening: %+v %v", a, err)
	}
	if _, ok, _ := l2.LastAnomaly(ctx, "A", ledger.LevelCall); !ok {
		t.Error("anomaly state was forgotten")
	}
}

// testSharedTruth runs the reservation race across two ledgers on one store.
func testSharedTruth(t *testing.T, b Backend) {
	if !b.Shared {
		t.Skipf("%s allows one ledger per store", b.Name)
	}
	l1, again := open(t, b)
	l2 := again()
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	limit, estimate := usd("50"), usd("5")
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range 64 {
		l := l1
		if i%2 == 1 {
			l = l2
		}
		wg.Go(func() {
			id := fmt.Sprintf("s%d", i)
			_, err := l.Reserve(ctx, ledger.ReserveRequest{ID: id, Estimate: estimate, TTL: time.Minute, Time: at,
				Checks: []ledger.Check{{Scope: ledger.ScopeFleet, Window: ledger.Day, Limit: limit}}})
			if err == nil {
				ok.Add(1)
				// Spend booked through the other instance commits against this reservation.
				other := l2
				if l == l2 {
					other = l1
				}
				if r, err := other.Book(ctx, []ledger.Spend{{TraceID: id, SpanID: "s", DecisionID: id, Time: at, Agent: "A", Cost: usd("5")}}); err != nil || r.Matched != 1 {
					t.Errorf("cross-instance commit: %+v %v", r, err)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != 10 {
		t.Errorf("%d reservations admitted across two ledgers, want 10", ok.Load())
	}
	for _, l := range []ledger.Ledger{l1, l2} {
		if s := state(t, l, ledger.ScopeFleet, ledger.FleetID, ledger.Day, at); s.Spent != limit || s.Reserved != 0 {
			t.Errorf("fleet spent %s reserved %s, want %s and 0 from either ledger", s.Spent, s.Reserved, limit)
		}
	}
}

// testDecisionIDOfAnotherAgent: a span naming agent B that carries agent A's decision id (or a
// span of another run than the decision's) is booked as its own agent's spend and never commits
// against A's reservation; trace-id matching likewise needs the same agent.
func testDecisionIDOfAnotherAgent(t *testing.T, b Backend) {
	l, _ := open(t, b)
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	reserve(t, l, ledger.ReserveRequest{ID: "da", TraceID: "trace-a", Estimate: usd("10"), TTL: time.Minute, Time: at,
		Agent: "A", RunID: "run-a", Action: "job.x",
		Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "A", Window: ledger.Hour, Limit: usd("100")}}})
	r, err := l.Book(ctx, []ledger.Spend{
		// Agent B with A's decision id: B's spend, not A's action's.
		{TraceID: "tb", SpanID: "1", DecisionID: "da", Time: at, Agent: "B", RunID: "run-a", Cost: usd("7")},
		// Agent A with the decision id but another run.
		{TraceID: "tb", SpanID: "2", DecisionID: "da", Time: at, Agent: "A", RunID: "run-other", Cost: usd("2")},
		// Agent B on A's trace, without a decision id: no trace match either.
		{TraceID: "trace-a", SpanID: "3", Time: at, Agent: "B", Cost: usd("3")},
		// A's own span of the run: matched.
		{TraceID: "tb", SpanID: "4", DecisionID: "da", Time: at, Agent: "A", RunID: "run-a", Cost: usd("1")},
	})
	if err != nil {
		t.Fatalf("Book: %v", err)
	}
	if r.Booked != 4 || r.Matched != 1 || r.Mismatched != 2 {
		t.Fatalf("Book = booked %d matched %d mismatched %d, want 4, 1 and 2", r.Booked, r.Matched, r.Mismatched)
	}
	// Every span is booked to its own agent; only A's matched dollar left A's reservation.
	if s := state(t, l, ledger.ScopeAgent, "B", ledger.Hour, at); s.Spent != usd("10") || s.Reserved != 0 {
		t.Errorf("agent B: spent %s reserved %s, want 10 and 0", s.Spent, s.Reserved)
	}
	if s := state(t, l, ledger.ScopeAgent, "A", ledger.Hour, at); s.Spent != usd("3") || s.Reserved != usd("9") {
		t.Errorf("agent A: spent %s reserved %s, want 3 and 9", s.Spent, s.Reserved)
	}
	// A duplicate of a mismatched span counts nothing again.
	if r, err := l.Book(ctx, []ledger.Spend{{TraceID: "tb", SpanID: "1", DecisionID: "da", Time: at, Agent: "B", RunID: "run-a", Cost: usd("7")}}); err != nil || r.Duplicates != 1 || r.Mismatched != 0 {
		t.Errorf("duplicate: %+v, %v; want one duplicate and no mismatch", r, err)
	}
	st := release(t, l, ledger.ReleaseRequest{ID: "da", Time: at.Add(time.Second)})
	if st.Source != decisionapi.SourceSpans || st.SpansMatched != 1 || st.Cost != usd("1") {
		t.Errorf("settlement %+v, want A's one span for 1", st)
	}
}

// testReportedCostClipped: a release's ReportedLimit bounds the reported cost that is booked; the
// settling call returns the claimed figure and whether it was clipped.
func testReportedCostClipped(t *testing.T, b Backend) {
	l, _ := open(t, b)
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	checks := []ledger.Check{{Scope: ledger.ScopeAgent, ID: "R", Window: ledger.Hour, Limit: usd("100")},
		{Scope: ledger.ScopeFleet, Window: ledger.Day, Unlimited: true}}
	limit := func(est money.Nanos) money.Nanos { return 2 * est }
	reserve(t, l, ledger.ReserveRequest{ID: "big", Estimate: usd("0.01"), TTL: time.Minute, Time: at, Checks: checks})
	reserve(t, l, ledger.ReserveRequest{ID: "fair", Estimate: usd("0.01"), TTL: time.Minute, Time: at, Checks: checks})
	st := release(t, l, ledger.ReleaseRequest{ID: "big", ReportedCost: usd("999999999"), HasReported: true,
		ReportedLimit: limit, Time: at.Add(time.Second)})
	if st.Source != decisionapi.SourceReported || st.Cost != usd("0.02") || st.ReportedCost != usd("0.02") ||
		st.ReportedClaimed != usd("999999999") || !st.ReportedClipped {
		t.Errorf("clipped settlement %+v, want cost 0.02 clipped from 999999999", st)
	}
	st = release(t, l, ledger.ReleaseRequest{ID: "fair", ReportedCost: usd("0.015"), HasReported: true,
		ReportedLimit: limit, Time: at.Add(time.Second)})
	if st.Cost != usd("0.015") || st.ReportedClaimed != usd("0.015") || st.ReportedClipped {
		t.Errorf("settlement within the limit %+v, want 0.015 unclipped", st)
	}
	// Only the clipped figure reached the budgets.
	for _, q := range []struct {
		scope ledger.Scope
		id    string
		w     ledger.Window
	}{{ledger.ScopeAgent, "R", ledger.Hour}, {ledger.ScopeFleet, ledger.FleetID, ledger.Day}} {
		if s := state(t, l, q.scope, q.id, q.w, at); s.Spent != usd("0.035") || s.Reserved != 0 {
			t.Errorf("%s %s: spent %s reserved %s, want 0.035 and 0", q.scope, q.id, s.Spent, s.Reserved)
		}
	}
	// Read back, the settlement has the booked figure.
	again := release(t, l, ledger.ReleaseRequest{ID: "big", ReportedCost: usd("5"), HasReported: true, ReportedLimit: limit, Time: at.Add(time.Minute)})
	if !again.AlreadySettled || again.Cost != usd("0.02") || again.ReportedClipped {
		t.Errorf("second release %+v, want the first settlement's 0.02", again)
	}
	// A report ignored because spans matched is not clipped.
	reserve(t, l, ledger.ReserveRequest{ID: "spans", Estimate: usd("0.01"), TTL: time.Minute, Time: at, Checks: checks})
	book(t, l, ledger.Spend{TraceID: "tc", SpanID: "1", DecisionID: "spans", Time: at, Agent: "R", Cost: usd("0.005")})
	st = release(t, l, ledger.ReleaseRequest{ID: "spans", ReportedCost: usd("50"), HasReported: true, ReportedLimit: limit, Time: at.Add(time.Second)})
	if st.Source != decisionapi.SourceSpans || st.Cost != usd("0.005") || st.ReportedClipped || st.ReportedClaimed != usd("50") {
		t.Errorf("settlement with spans %+v, want the spans' 0.005 and the report unclipped", st)
	}
}

// testOpenSpend checks that OpenSpend lists the open reservations with matched spend, with their
// running total, and drops them once settled.
func testOpenSpend(t *testing.T, b Backend) {
	l, _ := open(t, b)
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	for _, id := range []string{"d1", "d2", "d3"} {
		reserve(t, l, ledger.ReserveRequest{ID: id, Estimate: usd("1"), TTL: time.Hour, Time: at, Agent: "A",
			RunID: "run-1", Action: "job." + id, Metadata: map[string]string{"evidence_id": "ev-" + id},
			Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "A", Window: ledger.Day, Unlimited: true}}})
	}
	if got, err := l.OpenSpend(ctx, 0); err != nil || len(got) != 0 {
		t.Fatalf("OpenSpend before any spend = %v, %v; want none", got, err)
	}
	book(t, l,
		ledger.Spend{TraceID: "t", SpanID: "1", DecisionID: "d1", Time: at, Agent: "A", RunID: "run-1", Cost: usd("0.25")},
		ledger.Spend{TraceID: "t", SpanID: "2", DecisionID: "d1", Time: at, Agent: "A", RunID: "run-1", Cost: usd("2")},
		ledger.Spend{TraceID: "t", SpanID: "3", DecisionID: "d3", Time: at, Agent: "A", RunID: "run-1", Cost: usd("0.5")})
	got, err := l.OpenSpend(ctx, 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("OpenSpend = %+v, %v; want d1 and d3", got, err)
	}
	byID := map[string]ledger.OpenSpend{got[0].ID: got[0], got[1].ID: got[1]}
	if d1 := byID["d1"]; d1.Matched != usd("2.25") || d1.Spans != 2 || d1.Agent != "A" || d1.RunID != "run-1" ||
		d1.Action != "job.d1" || d1.Metadata["evidence_id"] != "ev-d1" || d1.Estimate != usd("1") {
		t.Errorf("d1 = %+v, want 2.25 USD over 2 spans with its agent, run, action and metadata", d1)
	}
	if d3 := byID["d3"]; d3.Matched != usd("0.5") || d3.Spans != 1 {
		t.Errorf("d3 = %+v, want 0.5 USD over 1 span", d3)
	}
	if one, err := l.OpenSpend(ctx, 1); err != nil || len(one) != 1 {
		t.Errorf("OpenSpend(limit 1) = %d, %v; want 1", len(one), err)
	}
	release(t, l, ledger.ReleaseRequest{ID: "d1", Time: at.Add(time.Minute)})
	if got, err := l.OpenSpend(ctx, 0); err != nil || len(got) != 1 || got[0].ID != "d3" {
		t.Errorf("OpenSpend after releasing d1 = %+v, %v; want d3 alone", got, err)
	}
}

// testRunAnomalies checks the run level: recorded, read back by LastAnomaly and Read, and kept
// apart from the other levels.
func testRunAnomalies(t *testing.T, b Backend) {
	l, _ := open(t, b)
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	if err := l.RecordAnomaly(ctx, "A", ledger.LevelRun, t0); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := l.LastAnomaly(ctx, "A", ledger.LevelRun); err != nil || !ok || !got.Equal(t0) {
		t.Errorf("last run anomaly %v %v %v, want %v", got, ok, err, t0)
	}
	res, err := l.Read(ctx, ledger.ReadRequest{Agent: "A", Time: t0})
	if err != nil || !res.LastRunAnomaly.Equal(t0) || !res.LastActionAnomaly.IsZero() || !res.LastCallAnomaly.IsZero() {
		t.Errorf("Read = %+v, %v; want a run anomaly at %v alone", res, err, t0)
	}
	if err := l.RecordAnomaly(ctx, "A", ledger.AnomalyLevel("loop"), t0); err == nil {
		t.Error("an unknown anomaly level was recorded")
	}
}
