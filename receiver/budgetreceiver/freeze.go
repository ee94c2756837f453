package budgetreceiver

import (
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// The freeze gauge.
const (
	NameFreezesActive = "agentcost_freezes_active"
	HelpFreezesActive = "Freezes (emergency brakes a reviewer put on the fleet, a team, an agent or a run) active now, read from the ledger: every replica's."
)

// routeFreezes serves the freeze endpoints (reviewers) and the lease check (agents for their own
// leases, reviewers for any).
func (s *server) routeFreezes(mux *http.ServeMux) {
	s.route(mux, decisionapi.PathFreezes, endpoint{http.MethodGet + ", " + http.MethodPost, reviewers, s.freezes})
	s.route(mux, decisionapi.PathFreeze, endpoint{http.MethodDelete, reviewers, s.liftFreeze})
	s.route(mux, decisionapi.PathLease, endpoint{http.MethodGet, agents | reviewers, s.lease})
}

// methodAllowed reports whether method is one of allowed, a comma-separated list ("GET, POST").
func methodAllowed(method, allowed string) bool {
	for m := range strings.SplitSeq(allowed, ",") {
		if strings.TrimSpace(m) == method {
			return true
		}
	}
	return false
}

// newLeaseSlots returns the lease checks' own bound: as many in flight as max_in_flight, a
// quarter of them per caller, counted apart from the other endpoints'.
func newLeaseSlots(maxInFlight int) *slots { return newSlots(maxInFlight, 0) }

// slotsFor returns the in-flight bound a path's requests count against.
func (s *server) slotsFor(path string) *slots {
	if path == decisionapi.PathLease && s.leaseSlots != nil {
		return s.leaseSlots
	}
	return s.slots
}

func (s *server) freezes(r *http.Request, c decide.Caller) (any, error) {
	if r.Method == http.MethodPost {
		var req decisionapi.FreezeRequest
		if err := s.decode(r, &req); err != nil {
			return nil, err
		}
		return s.engine.CreateFreeze(r.Context(), c, req)
	}
	page, err := decisionapi.ParseListParams(r.URL.Query())
	if err != nil {
		return nil, err
	}
	return s.engine.Freezes(r.Context(), c, r.URL.Query().Get("state"), page)
}

func (s *server) liftFreeze(r *http.Request, c decide.Caller) (any, error) {
	return s.engine.LiftFreeze(r.Context(), c, r.PathValue("id"))
}

func (s *server) lease(r *http.Request, c decide.Caller) (any, error) {
	return s.engine.Lease(r.Context(), c, r.PathValue("id"))
}

// appendFreezeGauge adds agentcost_freezes_active to a publication.
func appendFreezeGauge(md pmetric.Metrics, now time.Time, active int) {
	rms := md.ResourceMetrics()
	if rms.Len() == 0 || rms.At(0).ScopeMetrics().Len() == 0 {
		return
	}
	dp := gauge(rms.At(0).ScopeMetrics().At(0).Metrics(), NameFreezesActive, HelpFreezesActive, "1").AppendEmpty()
	dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	dp.SetIntValue(int64(active))
}
