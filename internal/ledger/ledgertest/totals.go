package ledgertest

import (
	"reflect"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
)

// totals reads l's totals as a map from family and labels to value.
func totals(t *testing.T, l ledger.Ledger) (map[string]int64, time.Time) {
	t.Helper()
	got, err := l.Totals(ctx)
	if err != nil {
		t.Fatalf("Totals: %v", err)
	}
	m := map[string]int64{}
	for _, tot := range got.Totals {
		k := string(tot.Family)
		for _, v := range tot.Labels {
			k += "|" + v
		}
		m[k] = tot.Value
	}
	return m, got.Since
}

// testTotals: Book counts each span once in the totals by its outcome (booked, duplicate, same
// call, mismatched, unbooked), exactly, also over a restart or another replica; a redelivery adds
// nothing but a duplicate, and a span without ids is the one thing counted on every delivery.
func testTotals(t *testing.T, b Backend) {
	l, again := open(t, b)
	if m, since := totals(t, l); len(m) != 0 || !since.IsZero() {
		t.Fatalf("totals of a fresh ledger = %v since %v, want none", m, since)
	}
	at := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	reserve(t, l, ledger.ReserveRequest{ID: "dx", Estimate: usd("1"), TTL: time.Minute, Time: at, Agent: "X",
		Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "X", Window: ledger.Hour, Unlimited: true}}})
	batch := []ledger.Spend{
		{TraceID: "t1", SpanID: "1", Time: at, Agent: "a", Team: "t", Model: "m", Provider: "p", Cost: usd("5000000.000000001"),
			Tokens: ledger.Tokens{Input: 10, Output: 5}, Anomaly: true},
		{TraceID: "t1", SpanID: "2", Time: at, Agent: "a", Team: "t", Model: "m", Provider: "p", Cost: usd("5000000.000000002"),
			Tokens: ledger.Tokens{Input: 1, CacheRead: 7, Reasoning: 3}, Escalating: true},
		// Another agent's span carrying X's decision id: booked as b's, and mismatched.
		{TraceID: "t2", SpanID: "1", Time: at, Agent: "b", Model: "m", Cost: usd("0.25"), DecisionID: "dx"},
		// The same provider call seen by two instrumentations: the child is not booked.
		{TraceID: "t3", SpanID: "p", Time: at, Agent: "c", Model: "m", Cost: usd("2"), CallKey: "m/2"},
		{TraceID: "t3", SpanID: "c", ParentSpanID: "p", Time: at, Agent: "c", Model: "m", Cost: usd("2"), CallKey: "m/2"},
		{TraceID: "t4", SpanID: "1", Unbooked: ledger.TotalUnpriced, UnbookedLabel: "mystery"},
		{TraceID: "t4", SpanID: "2", Unbooked: ledger.TotalMalformed, UnbookedLabel: "negative_tokens"},
		{Unbooked: ledger.TotalRefused, UnbookedLabel: "invalid_cost"},
	}
	if got, want := book(t, l, batch...), (bookCounts{Booked: 4}); got != want {
		t.Fatalf("Book = %+v, want %+v", got, want)
	}
	want := map[string]int64{
		"spend|a|t|m|p":             int64(usd("10000000.000000003")),
		"spend|b||m|":               int64(usd("0.25")),
		"spend|c||m|":               int64(usd("2")),
		"tokens|a|m|input":          11,
		"tokens|a|m|output":         5,
		"tokens|a|m|cache_read":     7,
		"tokens|a|m|reasoning":      3,
		"anomalies|a|call":          1,
		"anomalies|a|escalation":    1,
		"mismatched":                1,
		"same_calls|c|m":            1,
		"same_call_cost|c|m":        int64(usd("2")),
		"unpriced|mystery":          1,
		"malformed|negative_tokens": 1,
		"refused|invalid_cost":      1,
	}
	got, since := totals(t, l)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("totals after one batch:\n got %v\nwant %v", got, want)
	}
	if since.IsZero() {
		t.Errorf("Since is zero after counting")
	}
	// A redelivery of the whole batch: five duplicates, and only the span without ids again.
	if got, want := book(t, l, batch...), (bookCounts{Duplicates: 5}); got != want {
		t.Fatalf("redelivery: Book = %+v, want %+v", got, want)
	}
	want["duplicates"] = 5
	want["refused|invalid_cost"] = 2
	if got, _ := totals(t, l); !reflect.DeepEqual(got, want) {
		t.Fatalf("totals after a redelivery:\n got %v\nwant %v", got, want)
	}
	// An unpriced span priced on a later delivery is still booked.
	priced := ledger.Spend{TraceID: "t4", SpanID: "1", Time: at, Agent: "a", Team: "t", Model: "m", Provider: "p", Cost: usd("1")}
	if got := book(t, l, priced); got.Booked != 1 {
		t.Fatalf("span first unpriced, then priced: Book = %+v, want it booked", got)
	}
	want["spend|a|t|m|p"] += int64(usd("1"))
	// The totals are the storage's: a restart (embedded) or another replica (Redis) reads them.
	l2 := again()
	got2, since2 := totals(t, l2)
	if !reflect.DeepEqual(got2, want) || !since2.Equal(since) {
		t.Fatalf("totals read again:\n got %v since %v\nwant %v since %v", got2, since2, want, since)
	}
}
