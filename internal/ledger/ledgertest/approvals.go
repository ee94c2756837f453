package ledgertest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// testApprovalPendingCap floods one agent's approvals from many goroutines: exactly the cap are
// created, the rest fail with a *PendingCapError; another agent is not affected; resolving or
// expiring a pending approval makes room again.
func testApprovalPendingCap(t *testing.T, b Backend) {
	l, _ := open(t, b)
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	const limit = 5
	create := func(id, agent string, created time.Time, ttl time.Duration) error {
		_, err := l.CreateApproval(ctx, ledger.Approval{ID: id, Agent: agent, Action: "x", CreatedAt: created, ExpiresAt: created.Add(ttl)}, limit)
		return err
	}
	var created, capped atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			err := create(fmt.Sprintf("flood-%02d", i), "A", t0, time.Hour)
			var ce *ledger.PendingCapError
			switch {
			case err == nil:
				created.Add(1)
			case errors.As(err, &ce) && errors.Is(err, ledger.ErrPendingCap) && ce.Agent == "A" && ce.Max == limit:
				capped.Add(1)
			default:
				t.Errorf("CreateApproval: %v", err)
			}
		})
	}
	wg.Wait()
	if created.Load() != limit || capped.Load() != 40-limit {
		t.Fatalf("created %d and capped %d of 40, want %d created", created.Load(), capped.Load(), limit)
	}
	pending, err := l.ListApprovals(ctx, decisionapi.ApprovalPending, ledger.ApprovalCursor{}, 0, t0)
	if err != nil || len(pending) != limit {
		t.Fatalf("pending after the flood: %d, %v; want %d", len(pending), err, limit)
	}
	if err := create("other", "B", t0, time.Hour); err != nil {
		t.Errorf("another agent is capped too: %v", err)
	}
	if err := create("uncapped", "A", t0, time.Hour); !errors.Is(err, ledger.ErrPendingCap) {
		t.Errorf("sixth approval of A: %v, want ErrPendingCap", err)
	}
	// Without a cap the count does not matter.
	if _, err := l.CreateApproval(ctx, ledger.Approval{ID: "nocap", Agent: "C", Action: "x", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}, 0); err != nil {
		t.Errorf("uncapped create: %v", err)
	}
	// Denying one and approving another frees two places; approved is not pending.
	if _, err := l.ResolveApproval(ctx, pending[0].ID, ledger.Resolution{Reviewer: "r", Time: t0}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ResolveApproval(ctx, pending[1].ID, ledger.Resolution{Approve: true, Reviewer: "r", Time: t0}); err != nil {
		t.Fatal(err)
	}
	if err := create("after-resolve-1", "A", t0, time.Minute); err != nil {
		t.Errorf("after resolving: %v", err)
	}
	if err := create("after-resolve-2", "A", t0, time.Minute); err != nil {
		t.Errorf("after resolving: %v", err)
	}
	if err := create("after-resolve-3", "A", t0, time.Minute); !errors.Is(err, ledger.ErrPendingCap) {
		t.Errorf("past the cap again: %v, want ErrPendingCap", err)
	}
	// The two one-minute approvals expire unanswered: two places again, no more.
	later := t0.Add(2 * time.Minute)
	for i := range 2 {
		if err := create(fmt.Sprintf("after-expiry-%d", i), "A", later, time.Hour); err != nil {
			t.Errorf("after expiry: %v", err)
		}
	}
	if err := create("after-expiry-2", "A", later, time.Hour); !errors.Is(err, ledger.ErrPendingCap) {
		t.Errorf("past the cap after expiry: %v, want ErrPendingCap", err)
	}
}

// testApprovalPaging lists more approvals than a page in small pages, including many created in
// the same microsecond, and checks that every one is listed exactly once, in order, and that a
// state filter pages as well.
func testApprovalPaging(t *testing.T, b Backend) {
	l, _ := open(t, b)
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	const n = 1203
	want := map[string]bool{}
	for i := range n {
		// Groups of 600 share a creation time, so a page boundary falls inside a group.
		created := t0.Add(time.Duration(i/600) * time.Second)
		id := fmt.Sprintf("p%05d", (i*7919)%n) // ids out of creation order
		if _, err := l.CreateApproval(ctx, ledger.Approval{ID: id, Agent: "A", Action: "x", CreatedAt: created, ExpiresAt: created.Add(time.Hour)}, 0); err != nil {
			t.Fatal(err)
		}
		want[id] = true
	}
	for i := range n {
		id := fmt.Sprintf("p%05d", i)
		if i%3 == 0 {
			if _, err := l.ResolveApproval(ctx, id, ledger.Resolution{Reviewer: "r", Time: t0.Add(5 * time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	now := t0.Add(10 * time.Second)
	walk := func(state decisionapi.ApprovalState, limit int) []ledger.Approval {
		var all []ledger.Approval
		var after ledger.ApprovalCursor
		for pages := 0; ; pages++ {
			if pages > n {
				t.Fatalf("paging %q by %d does not end", state, limit)
			}
			page, err := l.ListApprovals(ctx, state, after, limit, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("a page of %d approvals, limit %d", len(page), limit)
			}
			all = append(all, page...)
			if len(page) < limit {
				return all
			}
			after = page[len(page)-1].Cursor()
		}
	}
	for _, limit := range []int{1000, 77} {
		all := walk("", limit)
		seen := map[string]bool{}
		for i, a := range all {
			if seen[a.ID] {
				t.Fatalf("limit %d: %s listed twice", limit, a.ID)
			}
			seen[a.ID] = true
			if i > 0 {
				p := all[i-1]
				if p.CreatedAt.After(a.CreatedAt) || p.CreatedAt.Equal(a.CreatedAt) && p.ID > a.ID {
					t.Fatalf("limit %d: %s listed after %s", limit, a.ID, p.ID)
				}
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("limit %d: listed %d approvals of %d", limit, len(seen), len(want))
		}
		denied := walk(decisionapi.ApprovalDenied, limit)
		pending := walk(decisionapi.ApprovalPending, limit)
		if len(denied) != (n+2)/3 || len(pending) != n-(n+2)/3 {
			t.Fatalf("limit %d: %d denied and %d pending, want %d and %d", limit, len(denied), len(pending), (n+2)/3, n-(n+2)/3)
		}
		for _, a := range pending {
			if a.State != decisionapi.ApprovalPending {
				t.Fatalf("pending page holds %s %s", a.ID, a.State)
			}
		}
	}
}

// testActiveIDs pages the active agent ids in small pages past a small snapshot_limit: every id
// with spend or a reservation in a current window exactly once, in order; none without; the
// scope is respected.
func testActiveIDs(t *testing.T, b Backend) {
	l, _ := open(t, b, func(c *ledger.Config) { c.SnapshotLimit = 5 })
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	var spends []ledger.Spend
	var want []string
	for i := range 23 {
		id := fmt.Sprintf("agent-%02d", i)
		want = append(want, id)
		// Some spent an hour ago: in today's window, not this hour's.
		at := t0
		if i%4 == 0 {
			at = t0.Add(-time.Hour)
		}
		spends = append(spends, ledger.Spend{TraceID: "t", SpanID: fmt.Sprint(i), Time: at, Agent: id, Team: "T", Cost: usd("1")})
	}
	book(t, l, spends...)
	reserve(t, l, ledger.ReserveRequest{ID: "r", Estimate: usd("8"), TTL: time.Minute, Time: t0,
		Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "reserver", Window: ledger.Hour, Limit: usd("100")}}})
	reserve(t, l, ledger.ReserveRequest{ID: "gone", Estimate: usd("8"), TTL: time.Minute, Time: t0,
		Checks: []ledger.Check{{Scope: ledger.ScopeAgent, ID: "released", Window: ledger.Hour, Limit: usd("100")}}})
	release(t, l, ledger.ReleaseRequest{ID: "gone", Time: t0})
	want = append(want, "reserver")
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 30 {
			t.Fatal("paging does not end")
		}
		page, err := l.ActiveIDs(ctx, ledger.ScopeAgent, after, 4, t0.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if len(page) < 4 {
			break
		}
		after = page[len(page)-1]
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("active agents paged by 4:\n got %v\nwant %v", got, want)
	}
	teams, err := l.ActiveIDs(ctx, ledger.ScopeTeam, "", 10, t0.Add(time.Second))
	if err != nil || fmt.Sprint(teams) != "[T]" {
		t.Errorf("active teams = %v, %v; want [T]", teams, err)
	}
	if _, err := l.ActiveIDs(ctx, ledger.ScopeRun, "", 10, t0); err == nil {
		t.Error("ActiveIDs of runs was accepted")
	}
}
