package guard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// DefaultLeaseWatchInterval is how often Run checks a running action's lease for a freeze. The
// cost: one GET /v1/leases/{id} per running action per interval (a single ledger read on the
// server, counted apart from the agent's share of the decision API). A freeze stops the action
// within one interval plus one request's round trip.
const DefaultLeaseWatchInterval = 2 * time.Second

// ErrFrozen matches a *FrozenError.
var ErrFrozen = errors.New("guard: scope frozen")

// FrozenError is the cause of a running action's context when a reviewer froze its scope, and
// what Run returns (wrapping fn's error) when the action ended after the freeze.
type FrozenError struct {
	// Freeze is the freeze that stopped the action.
	Freeze decisionapi.Freeze
	// DecisionID is the stopped action's decision.
	DecisionID string
}

// Error describes the freeze: its scope, who froze it and why.
func (e *FrozenError) Error() string {
	scope := string(e.Freeze.Scope)
	if e.Freeze.ScopeID != "" {
		scope += " " + e.Freeze.ScopeID
	}
	return fmt.Sprintf("guard: action stopped: %s frozen by %s (%s): %s", scope, e.Freeze.CreatedBy, e.Freeze.FreezeID, e.Freeze.Reason)
}

// Is makes a FrozenError match ErrFrozen.
func (e *FrozenError) Is(target error) bool { return target == ErrFrozen }

// WithLeaseWatch sets how often Run checks a running action's lease and cancels the action's
// context (cause: a *FrozenError) once a reviewer froze its scope; default
// DefaultLeaseWatchInterval. 0 turns the watch off.
func WithLeaseWatch(interval time.Duration) Option {
	return func(c *Client) { c.leaseWatch = interval }
}

// Lease returns a lease's state and whether a freeze covers it (GET /v1/leases/{id}).
func (c *Client) Lease(ctx context.Context, leaseID string) (*decisionapi.LeaseStatus, error) {
	if err := decisionapi.ValidateID("lease_id", leaseID); err != nil {
		return nil, err
	}
	var out decisionapi.LeaseStatus
	if err := c.do(ctx, http.MethodGet, "/v1/leases/"+url.PathEscape(leaseID), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// watchLease polls d's lease every interval until stop closes or the lease is no longer open, and
// cancels the action with a *FrozenError once its scope is frozen. Failed checks are logged and
// retried at the next tick: a server that cannot answer does not stop the action.
func (c *Client) watchLease(ctx context.Context, d *Decision, cancel context.CancelCauseFunc, stop <-chan struct{}) {
	t := time.NewTicker(c.leaseWatch)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cctx, done := context.WithTimeout(ctx, max(c.leaseWatch, time.Second))
		st, err := c.Lease(cctx, d.LeaseID)
		done()
		switch {
		case err != nil:
			if ctx.Err() == nil {
				c.logger.WarnContext(ctx, "checking the lease failed; checking on", "lease_id", d.LeaseID, "error", err)
			}
		case st.Frozen && st.Freeze != nil:
			c.logger.WarnContext(ctx, "scope frozen; stopping the action", "lease_id", d.LeaseID,
				"freeze_id", st.Freeze.FreezeID, "reason", st.Freeze.Reason)
			cancel(&FrozenError{Freeze: *st.Freeze, DecisionID: d.DecisionID})
			return
		case st.State != decisionapi.LeaseOpen:
			return
		}
	}
}

// startWatch starts the lease watch of a running action when it is on and the decision has a
// lease. It returns the action's context and a function that stops the watch and returns the
// freeze that canceled the action, if one did.
func (c *Client) startWatch(runCtx context.Context, d *Decision) (context.Context, func() *FrozenError) {
	if c.leaseWatch <= 0 || d.LeaseID == "" {
		return runCtx, func() *FrozenError { return nil }
	}
	ctx, cancel := context.WithCancelCause(runCtx)
	stop, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		c.watchLease(ctx, d, cancel, stop)
	}()
	return ctx, func() *FrozenError {
		close(stop)
		<-finished
		var fe *FrozenError
		errors.As(context.Cause(ctx), &fe)
		cancel(nil)
		return fe
	}
}
