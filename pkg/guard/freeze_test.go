package guard

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/internal/ledger/ledgertest"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// realAPI serves the decision, release and lease-check endpoints from the real engine on an
// embedded ledger, as an open API.
func realAPI(t *testing.T) (*decide.Engine, string) {
	t.Helper()
	p, err := policy.Parse("policy.yaml", []byte("version: v1\ndefault_decision: allow\n"))
	if err != nil {
		t.Fatal(err)
	}
	bl, err := baseline.New(baseline.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := decide.New(context.Background(), decide.Config{Policy: func() *policy.Policy { return p }, Ledger: ledgertest.NewEmbedded(t), Baselines: bl})
	if err != nil {
		t.Fatal(err)
	}
	open := decide.Caller{Role: access.RoleOpen}
	reply := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			decisionapi.WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+decisionapi.PathDecisions, func(w http.ResponseWriter, r *http.Request) {
		var req decisionapi.DecisionRequest
		if err := decisionapi.Decode(r.Body, 0, &req); err != nil {
			reply(w, nil, err)
			return
		}
		out, err := eng.Decide(r.Context(), open, req, r.Header.Get("traceparent"))
		reply(w, out, err)
	})
	mux.HandleFunc("POST "+decisionapi.PathLeaseRelease, func(w http.ResponseWriter, r *http.Request) {
		var req decisionapi.ReleaseRequest
		if err := decisionapi.Decode(r.Body, 0, &req); err != nil {
			reply(w, nil, err)
			return
		}
		out, err := eng.Release(r.Context(), open, r.PathValue("id"), req)
		reply(w, out, err)
	})
	mux.HandleFunc("GET "+decisionapi.PathLease, func(w http.ResponseWriter, r *http.Request) {
		out, err := eng.Lease(r.Context(), open, r.PathValue("id"))
		reply(w, out, err)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return eng, srv.URL
}

// TestFreezeStopsARunningAction: a reviewer freezes the agent while its action runs; the guard's
// lease watch cancels the action's context with a *FrozenError, Run returns an error matching
// ErrFrozen, and the lease is released (settled) all the same. A later Run is denied by the freeze.
func TestFreezeStopsARunningAction(t *testing.T) {
	eng, url := realAPI(t)
	c, err := New(url, WithAgent("research-agent"), WithLeaseWatch(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan *Decision, 1)
	var cause error
	done := make(chan error, 1)
	go func() {
		done <- c.Run(context.Background(), Action{Name: "job.long", EstimatedCostUSD: 0.1}, func(ctx context.Context, d *Decision) error {
			started <- d
			<-ctx.Done()
			cause = context.Cause(ctx)
			return ctx.Err()
		})
	}()
	d := <-started
	f, err := eng.CreateFreeze(context.Background(), decide.Caller{Role: access.RoleReviewer, Subject: "alice"},
		decisionapi.FreezeRequest{Scope: decisionapi.FreezeAgent, ScopeID: "research-agent", Reason: "runaway loop"})
	if err != nil {
		t.Fatal(err)
	}
	err = <-done
	var fe *FrozenError
	if !errors.Is(err, ErrFrozen) || !errors.As(err, &fe) || fe.Freeze.FreezeID != f.FreezeID || fe.Freeze.Reason != "runaway loop" {
		t.Fatalf("Run = %v; want a FrozenError of %s", err, f.FreezeID)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v; want fn's context.Canceled wrapped too", err)
	}
	if !errors.As(cause, &fe) {
		t.Errorf("the action's context cause = %v; want the FrozenError", cause)
	}
	st, err := c.Lease(context.Background(), d.LeaseID)
	if err != nil || st.State != decisionapi.LeaseSettled || !st.Frozen {
		t.Fatalf("lease after the stop = %+v, %v; want settled (and still frozen)", st, err)
	}
	err = c.Run(context.Background(), Action{Name: "job.long", EstimatedCostUSD: 0.1}, func(context.Context, *Decision) error {
		t.Error("a frozen agent's action ran")
		return nil
	})
	var de *DeniedError
	if !errors.As(err, &de) || de.RuleID != decisionapi.RuleFreeze {
		t.Fatalf("Run while frozen = %v; want denied by rule freeze", err)
	}
}

// TestLeaseWatchOff: with the watch off the action runs on, unaware of the freeze.
func TestLeaseWatchOff(t *testing.T) {
	eng, url := realAPI(t)
	c, err := New(url, WithAgent("a1"), WithLeaseWatch(0))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run(context.Background(), Action{Name: "job.x"}, func(ctx context.Context, d *Decision) error {
		if _, err := eng.CreateFreeze(ctx, decide.Caller{Role: access.RoleOpen}, decisionapi.FreezeRequest{Scope: decisionapi.FreezeFleet, Reason: "r"}); err != nil {
			return err
		}
		st, err := c.Lease(ctx, d.LeaseID)
		if err != nil || !st.Frozen {
			t.Errorf("lease check = %+v, %v; want frozen", st, err)
		}
		return ctx.Err()
	})
	if err != nil {
		t.Fatalf("Run = %v; want nil (no watch)", err)
	}
	if _, err := New(url, WithLeaseWatch(-time.Second)); err == nil {
		t.Error("a negative lease watch was accepted")
	}
}
