package ledgertest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
)

// The same-call rule (ledger.Spend.CallKey): an LLM span and its direct parent or child of the same
// trace with the same call key describe one provider call; whichever is booked second is recorded
// but not booked, and counted in BookResult.SameCall.

var sameCallAt = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

// callSpend is an LLM spend of trace tr, span sp under parent, costing 1.3 cents, with call key key.
func callSpend(tr, sp, parent, key string) ledger.Spend {
	return ledger.Spend{TraceID: tr, SpanID: sp, ParentSpanID: parent, CallKey: key, Time: sameCallAt,
		Agent: "A", Team: "T", Model: "claude-sonnet-4-5", Cost: usd("0.013"),
		Tokens: ledger.Tokens{Input: 1300, Output: 200, CacheRead: 200, CacheWrite: 100}}
}

func bookResult(t *testing.T, l ledger.Ledger, spends ...ledger.Spend) ledger.BookResult {
	t.Helper()
	r, err := l.Book(ctx, spends)
	if err != nil {
		t.Fatalf("Book: %v", err)
	}
	if len(r.New) != len(spends) || len(r.Same) != len(spends) {
		t.Fatalf("Book: masks of %d and %d for %d spends", len(r.New), len(r.Same), len(spends))
	}
	var sum int
	for i := range spends {
		if r.IsNew(i) && r.IsSameCall(i) {
			t.Fatalf("Book: spend %d both booked and the same call as a booked one", i)
		}
		if r.IsSameCall(i) {
			sum++
		}
	}
	if sum != r.SameCall {
		t.Fatalf("Book: %d spends marked the same call, SameCall %d", sum, r.SameCall)
	}
	return r
}

func agentSpent(t *testing.T, l ledger.Ledger) string {
	t.Helper()
	return state(t, l, ledger.ScopeAgent, "A", ledger.Day, sameCallAt).Spent.String()
}

// testSameCallChildFirst: the child (an SDK's own span) is exported first, in one Book; its parent
// (an instrumentation library's span of the same call) comes in a later Book and is not booked. A
// redelivery of the parent is a plain duplicate, and the run is charged once.
func testSameCallChildFirst(t *testing.T, b Backend) {
	l, _ := open(t, b)
	if r := bookResult(t, l, callSpend("t1", "child", "parent", "k1")); r.Booked != 1 || r.SameCall != 0 {
		t.Fatalf("child: %+v, want booked", r)
	}
	r := bookResult(t, l, callSpend("t1", "parent", "root", "k1"))
	if r.Booked != 0 || r.SameCall != 1 || r.SameCallCost != usd("0.013") || !r.IsSameCall(0) {
		t.Fatalf("parent of the same call: %+v, want SameCall 1 of $0.013", r)
	}
	if r := bookResult(t, l, callSpend("t1", "parent", "root", "k1")); r.Duplicates != 1 || r.SameCall != 0 || r.Booked != 0 {
		t.Fatalf("redelivered parent: %+v, want a plain duplicate", r)
	}
	if got := agentSpent(t, l); got != "0.013" {
		t.Errorf("agent spent %s, want 0.013 (one call)", got)
	}
	if s := state(t, l, ledger.ScopeRun, "t1", ledger.Lifetime, sameCallAt); s.Spent != usd("0.013") {
		t.Errorf("run spent %s, want 0.013", s.Spent)
	}
}

// testSameCallParentFirst: the parent happens to be booked first; the child is then the repeat.
// A child with another call key (another call under the same parent) is booked.
func testSameCallParentFirst(t *testing.T, b Backend) {
	l, _ := open(t, b)
	bookResult(t, l, callSpend("t1", "parent", "", "k1"))
	if r := bookResult(t, l, callSpend("t1", "child", "parent", "k1")); r.SameCall != 1 || r.Booked != 0 {
		t.Fatalf("child of a booked parent with the same key: %+v, want SameCall 1", r)
	}
	if r := bookResult(t, l, callSpend("t1", "child2", "parent", "k2")); r.Booked != 1 || r.SameCall != 0 {
		t.Fatalf("child with another call key: %+v, want booked", r)
	}
	// The same key in another trace is another call.
	if r := bookResult(t, l, callSpend("t2", "child", "parent", "k1")); r.Booked != 1 {
		t.Fatalf("same key in another trace: %+v, want booked", r)
	}
	if got := agentSpent(t, l); got != "0.039" {
		t.Errorf("agent spent %s, want 0.039 (three calls)", got)
	}
}

// testSameCallOneBatch: a three-level chain of one call (OpenInference over OpenLLMetry over the
// SDK's span) in one Book, in any order, is booked once; spends without a call key never match.
func testSameCallOneBatch(t *testing.T, b Backend) {
	l, _ := open(t, b)
	r := bookResult(t, l, callSpend("t1", "mid", "top", "k1"), callSpend("t1", "top", "", "k1"), callSpend("t1", "leaf", "mid", "k1"))
	if r.Booked != 1 || r.SameCall != 2 || !r.IsNew(0) {
		t.Fatalf("chain of one call: %+v, want 1 booked (the first) and 2 the same call", r)
	}
	if r := bookResult(t, l, callSpend("t3", "c", "p", ""), callSpend("t3", "p", "", "")); r.Booked != 2 {
		t.Fatalf("spends without a call key: %+v, want both booked", r)
	}
	if got := agentSpent(t, l); got != "0.039" {
		t.Errorf("agent spent %s, want 0.039", got)
	}
}

// testSameCallOnlyDirectRelatives: the rule relates a span to its direct parent only; siblings with
// the same key (two identical calls under one agent span) are two calls.
func testSameCallOnlyDirectRelatives(t *testing.T, b Backend) {
	l, _ := open(t, b)
	if r := bookResult(t, l, callSpend("t1", "a", "agent", "k1"), callSpend("t1", "b", "agent", "k1")); r.Booked != 2 {
		t.Fatalf("siblings with the same key: %+v, want both booked", r)
	}
	if r := bookResult(t, l, callSpend("t1", "grandparent", "", "k1")); r.Booked != 1 {
		t.Fatalf("a span that is no direct parent of a booked span: %+v, want booked", r)
	}
}

// testSameCallConcurrent: child and parent of many calls booked at the same time through two
// ledgers (two replicas sharing a store, or one ledger twice): each call is booked exactly once.
func testSameCallConcurrent(t *testing.T, b Backend) {
	l1, again := open(t, b)
	l2 := l1
	if b.Shared {
		l2 = again()
	}
	const calls = 40
	var wg sync.WaitGroup
	for i := range calls {
		tr := fmt.Sprintf("t%d", i)
		wg.Go(func() {
			if _, err := l1.Book(ctx, []ledger.Spend{callSpend(tr, "child", "parent", "k")}); err != nil {
				t.Errorf("Book child: %v", err)
			}
		})
		wg.Go(func() {
			if _, err := l2.Book(ctx, []ledger.Spend{callSpend(tr, "parent", "", "k")}); err != nil {
				t.Errorf("Book parent: %v", err)
			}
		})
	}
	wg.Wait()
	want := usd("0.013") * calls
	for _, l := range []ledger.Ledger{l1, l2} {
		if s := state(t, l, ledger.ScopeAgent, "A", ledger.Day, sameCallAt); s.Spent != want {
			t.Errorf("agent spent %s after %d calls booked as child and parent concurrently, want %s", s.Spent, calls, want)
		}
	}
}
