package ledgertest

import (
	"errors"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
)

// RunFreezes runs the freeze tests: create, lift, list with paging, expiry honoured on read,
// durable across a restart, one truth across replicas (Shared backends), and the active freezes
// read with a decision's state and with a lease.
func RunFreezes(t *testing.T, b Backend) {
	t.Run("FreezeLifecycle", func(t *testing.T) { testFreezeLifecycle(t, b) })
	t.Run("FreezePaging", func(t *testing.T) { testFreezePaging(t, b) })
	t.Run("FreezeInReadAndLease", func(t *testing.T) { testFreezeInRead(t, b) })
	t.Run("FreezeSurvivesRestart", func(t *testing.T) { testFreezeRestart(t, b) })
	if b.Shared {
		t.Run("FreezeSharedByReplicas", func(t *testing.T) { testFreezeReplicas(t, b) })
	}
}

func ids(fs []ledger.Freeze) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	return out
}

func testFreezeLifecycle(t *testing.T, b Backend) {
	l, _ := open(t, b)
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	f, err := l.CreateFreeze(ctx, ledger.Freeze{ID: "fz-1", Scope: ledger.FreezeAgent, ScopeID: "A", Reason: "runaway", CreatedBy: "alice", CreatedAt: t0})
	if err != nil || f.StateAt(t0) != ledger.FreezeActive {
		t.Fatalf("CreateFreeze = %+v, %v", f, err)
	}
	if _, err := l.CreateFreeze(ctx, ledger.Freeze{ID: "fz-1", Scope: ledger.FreezeFleet, Reason: "x", CreatedAt: t0}); !errors.Is(err, ledger.ErrExists) {
		t.Fatalf("second CreateFreeze with the same id: %v; want ErrExists", err)
	}
	for _, bad := range []ledger.Freeze{
		{ID: "b1", Scope: "planet", CreatedAt: t0},
		{ID: "b2", Scope: ledger.FreezeTeam, CreatedAt: t0},
		{ID: "b3", Scope: ledger.FreezeFleet, ScopeID: "x", CreatedAt: t0},
		{ID: "b4", Scope: ledger.FreezeFleet, CreatedAt: t0, ExpiresAt: t0.Add(-time.Second)},
	} {
		if _, err := l.CreateFreeze(ctx, bad); err == nil {
			t.Errorf("CreateFreeze(%+v) succeeded; want an error", bad)
		}
	}
	lifted, err := l.LiftFreeze(ctx, "fz-1", "bob", t0.Add(time.Minute))
	if err != nil || lifted.LiftedBy != "bob" || !lifted.LiftedAt.Equal(t0.Add(time.Minute)) || lifted.StateAt(t0.Add(time.Hour)) != ledger.FreezeLifted {
		t.Fatalf("LiftFreeze = %+v, %v", lifted, err)
	}
	var se *ledger.FreezeStateError
	if _, err := l.LiftFreeze(ctx, "fz-1", "bob", t0.Add(2*time.Minute)); !errors.As(err, &se) || !errors.Is(err, ledger.ErrConflict) || se.State != ledger.FreezeLifted {
		t.Fatalf("second LiftFreeze: %v; want a FreezeStateError (lifted)", err)
	}
	if _, err := l.LiftFreeze(ctx, "nope", "bob", t0); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("LiftFreeze(unknown): %v; want ErrNotFound", err)
	}
	// Expiry is honoured on read: an expired freeze is not active, and cannot be lifted.
	if _, err := l.CreateFreeze(ctx, ledger.Freeze{ID: "fz-2", Scope: ledger.FreezeFleet, Reason: "maintenance", CreatedBy: "alice", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if got, err := l.ListFreezes(ctx, true, ledger.ApprovalCursor{}, 0, t0.Add(59*time.Minute)); err != nil || len(got) != 1 || got[0].ID != "fz-2" {
		t.Fatalf("active before expiry = %v, %v; want [fz-2]", ids(got), err)
	}
	if got, err := l.ListFreezes(ctx, true, ledger.ApprovalCursor{}, 0, t0.Add(time.Hour)); err != nil || len(got) != 0 {
		t.Fatalf("active at expiry = %v, %v; want none", ids(got), err)
	}
	if _, err := l.LiftFreeze(ctx, "fz-2", "bob", t0.Add(2*time.Hour)); !errors.As(err, &se) || se.State != ledger.FreezeExpired {
		t.Fatalf("LiftFreeze(expired): %v; want a FreezeStateError (expired)", err)
	}
	all, err := l.ListFreezes(ctx, false, ledger.ApprovalCursor{}, 0, t0.Add(2*time.Hour))
	if err != nil || len(all) != 2 {
		t.Fatalf("all freezes = %v, %v; want both", ids(all), err)
	}
}

func testFreezePaging(t *testing.T, b Backend) {
	l, _ := open(t, b)
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	// Two share a creation time: the id breaks the tie.
	for i, id := range []string{"fz-c", "fz-a", "fz-b", "fz-d", "fz-e"} {
		created := t0.Add(time.Duration(min(i, 3)) * time.Second)
		if i == 2 {
			created = t0.Add(time.Second)
		}
		if _, err := l.CreateFreeze(ctx, ledger.Freeze{ID: id, Scope: ledger.FreezeRun, ScopeID: "run-" + id, Reason: "r", CreatedBy: "alice", CreatedAt: created}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.LiftFreeze(ctx, "fz-d", "bob", t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var got []string
	var after ledger.ApprovalCursor
	for {
		page, err := l.ListFreezes(ctx, false, after, 2, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, ids(page)...)
		after = page[len(page)-1].Cursor()
	}
	want := []string{"fz-c", "fz-a", "fz-b", "fz-d", "fz-e"}
	if len(got) != len(want) {
		t.Fatalf("paged list = %v; want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("paged list = %v; want %v", got, want)
		}
	}
	act, err := l.ListFreezes(ctx, true, ledger.ApprovalCursor{}, 0, t0.Add(time.Hour))
	if err != nil || len(act) != 4 {
		t.Fatalf("active = %v, %v; want four (fz-d lifted)", ids(act), err)
	}
}

func testFreezeInRead(t *testing.T, b Backend) {
	l, _ := open(t, b)
	now := time.Now().UTC()
	res, err := l.Read(ctx, ledger.ReadRequest{Freezes: true, Time: now})
	if err != nil || len(res.Freezes) != 0 {
		t.Fatalf("Read before any freeze = %+v, %v", res.Freezes, err)
	}
	if _, err := l.CreateFreeze(ctx, ledger.Freeze{ID: "fz-t", Scope: ledger.FreezeTeam, ScopeID: "growth", Reason: "audit", CreatedBy: "alice", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	res, err = l.Read(ctx, ledger.ReadRequest{States: []ledger.StateQuery{{Scope: ledger.ScopeFleet, ID: ledger.FleetID, Window: ledger.Day}}, Freezes: true, Time: now})
	if err != nil || len(res.Freezes) != 1 || res.Freezes[0].ID != "fz-t" || len(res.States) != 1 {
		t.Fatalf("Read = %+v, %v; want fz-t with the state", res, err)
	}
	if !res.Freezes[0].Applies("A", "growth", "") || res.Freezes[0].Applies("A", "research", "") {
		t.Fatal("a team freeze must apply to its team only")
	}
	if res, err := l.Read(ctx, ledger.ReadRequest{Time: now}); err != nil || res.Freezes != nil {
		t.Fatalf("Read without Freezes = %+v, %v; want no freezes", res.Freezes, err)
	}
	// A lease reads its reservation and the freezes at once.
	if _, err := l.Reserve(ctx, ledger.ReserveRequest{ID: "dec-1", Agent: "A", Team: "growth", RunID: "r1", Action: "x",
		Checks:   []ledger.Check{{Scope: ledger.ScopeFleet, ID: ledger.FleetID, Window: ledger.Day, Unlimited: true}},
		Estimate: usd("1"), TTL: time.Minute, Time: now}); err != nil {
		t.Fatal(err)
	}
	li, err := l.LeaseInfo(ctx, "dec-1", now)
	if err != nil || li.Agent != "A" || li.Team != "growth" || li.RunID != "r1" || li.Settled || len(li.Freezes) != 1 || !li.ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("LeaseInfo = %+v, %v", li, err)
	}
	if _, err := l.LiftFreeze(ctx, "fz-t", "bob", now); err != nil {
		t.Fatal(err)
	}
	release(t, l, ledger.ReleaseRequest{ID: "dec-1", Time: now})
	li, err = l.LeaseInfo(ctx, "dec-1", now)
	if err != nil || !li.Settled || len(li.Freezes) != 0 {
		t.Fatalf("LeaseInfo after lift and release = %+v, %v; want settled, no freezes", li, err)
	}
	if _, err := l.LeaseInfo(ctx, "nope", now); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("LeaseInfo(unknown): %v; want ErrNotFound", err)
	}
}

func testFreezeRestart(t *testing.T, b Backend) {
	l, again := open(t, b)
	now := time.Now().UTC()
	if _, err := l.CreateFreeze(ctx, ledger.Freeze{ID: "fz-1", Scope: ledger.FreezeFleet, Reason: "incident", CreatedBy: "alice", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateFreeze(ctx, ledger.Freeze{ID: "fz-2", Scope: ledger.FreezeAgent, ScopeID: "A", Reason: "loop", CreatedBy: "alice", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.LiftFreeze(ctx, "fz-2", "bob", now); err != nil {
		t.Fatal(err)
	}
	l = again()
	res, err := l.Read(ctx, ledger.ReadRequest{Freezes: true, Time: now})
	if err != nil || len(res.Freezes) != 1 || res.Freezes[0].ID != "fz-1" || res.Freezes[0].Reason != "incident" || res.Freezes[0].CreatedBy != "alice" {
		t.Fatalf("after restart Read = %+v, %v; want fz-1 active", res.Freezes, err)
	}
	all, err := l.ListFreezes(ctx, false, ledger.ApprovalCursor{}, 0, now)
	if err != nil || len(all) != 2 || all[1].LiftedBy != "bob" && all[0].LiftedBy != "bob" {
		t.Fatalf("after restart list = %+v, %v", all, err)
	}
}

func testFreezeReplicas(t *testing.T, b Backend) {
	l1, again := open(t, b)
	l2 := again()
	now := time.Now().UTC()
	if _, err := l1.CreateFreeze(ctx, ledger.Freeze{ID: "fz-1", Scope: ledger.FreezeFleet, Reason: "incident", CreatedBy: "alice", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := l2.CreateFreeze(ctx, ledger.Freeze{ID: "fz-1", Scope: ledger.FreezeFleet, Reason: "again", CreatedAt: now}); !errors.Is(err, ledger.ErrExists) {
		t.Fatalf("replica 2 creating the same id: %v; want ErrExists", err)
	}
	res, err := l2.Read(ctx, ledger.ReadRequest{Freezes: true, Time: now})
	if err != nil || len(res.Freezes) != 1 {
		t.Fatalf("replica 2 Read = %+v, %v; want the freeze", res.Freezes, err)
	}
	if _, err := l2.LiftFreeze(ctx, "fz-1", "bob", now); err != nil {
		t.Fatal(err)
	}
	if res, err := l1.Read(ctx, ledger.ReadRequest{Freezes: true, Time: now}); err != nil || len(res.Freezes) != 0 {
		t.Fatalf("replica 1 after replica 2 lifted = %+v, %v; want none", res.Freezes, err)
	}
}
