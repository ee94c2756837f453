package ledger

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// counter names one (scope, id, window instance) counter of spent and reserved.
type counter struct {
	Scope  Scope  `json:"s"`
	ID     string `json:"i"`
	Window Window `json:"w"`
	// Start and End are the window instance's bounds in Unix seconds; zero for the lifetime window.
	Start int64 `json:"a,omitempty"`
	End   int64 `json:"b,omitempty"`
}

// calendar places times in window instances in one time zone.
type calendar struct{ loc *time.Location }

func (c calendar) counter(scope Scope, id string, w Window, t time.Time) counter {
	if w == Lifetime {
		return counter{Scope: scope, ID: id, Window: w}
	}
	start, end := WindowBounds(w, t, c.loc)
	return counter{Scope: scope, ID: id, Window: w, Start: start.Unix(), End: end.Unix()}
}

// queryCounters validates a Read's queries and returns their counters at t.
func (c calendar) queryCounters(qs []StateQuery, t time.Time) ([]counter, error) {
	out := make([]counter, len(qs))
	for i, q := range qs {
		if err := q.Window.validFor(q.Scope); err != nil {
			return nil, err
		}
		out[i] = c.counter(q.Scope, q.ID, q.Window, t)
	}
	return out, nil
}

// bookCounters lists the counters a spend of agent, team, model and run at t is booked into: every
// calendar window of each scope with a non-empty id plus the fleet, and the run's lifetime.
func (c calendar) bookCounters(agent, team, model, run string, t time.Time) []counter {
	out := make([]counter, 0, 4*len(CalendarWindows)+1)
	for _, sc := range []struct {
		scope Scope
		id    string
	}{{ScopeAgent, agent}, {ScopeTeam, team}, {ScopeModel, model}, {ScopeFleet, FleetID}} {
		if sc.id == "" {
			continue
		}
		for _, w := range CalendarWindows {
			out = append(out, c.counter(sc.scope, sc.id, w, t))
		}
	}
	if run != "" {
		out = append(out, c.counter(ScopeRun, run, Lifetime, t))
	}
	return out
}

// ttl is how long, seen from t, a counter must be kept: until two instances after its window ends,
// or run retention after its last activity for a run.
func (k counter) ttl(t time.Time, runRetention time.Duration) time.Duration {
	if k.Window == Lifetime {
		return runRetention
	}
	start, end := time.Unix(k.Start, 0), time.Unix(k.End, 0)
	return max(end.Add(retention(k.Window, start, end)).Sub(t), time.Minute)
}

// preparedCheck is a validated check with its counter.
type preparedCheck struct {
	Check
	counter counter
}

// prepareReserve validates a reservation request and merges checks that name the same counter (the
// tighter limit wins).
func (c calendar) prepareReserve(req *ReserveRequest) ([]preparedCheck, error) {
	switch {
	case req.ID == "":
		return nil, errors.New("reservation id is empty")
	case req.Estimate < 0:
		return nil, fmt.Errorf("estimate %d nano-dollars is negative", req.Estimate)
	case req.Estimate > money.MaxNanos:
		return nil, fmt.Errorf("estimate %s USD exceeds the maximum of %s USD", req.Estimate, money.MaxNanos)
	case req.TTL <= 0:
		return nil, fmt.Errorf("reservation ttl %v is not positive", req.TTL)
	}
	req.Time = at(req.Time)
	var out []preparedCheck
	seen := map[counter]int{}
	for i, ch := range req.Checks {
		if ch.Scope == ScopeFleet && ch.ID == "" {
			ch.ID = FleetID
		}
		if err := ch.Window.validFor(ch.Scope); err != nil {
			return nil, fmt.Errorf("check %d: %w", i, err)
		}
		if ch.ID == "" {
			return nil, fmt.Errorf("check %d: %s id is empty", i, ch.Scope)
		}
		if !ch.Unlimited && ch.Limit < 0 {
			return nil, fmt.Errorf("check %d: limit %d nano-dollars is negative", i, ch.Limit)
		}
		k := c.counter(ch.Scope, ch.ID, ch.Window, req.Time)
		if j, ok := seen[k]; ok {
			prev := &out[j]
			switch {
			case prev.Unlimited:
				prev.Check.Limit, prev.Unlimited = ch.Limit, ch.Unlimited
			case !ch.Unlimited:
				prev.Limit = min(prev.Limit, ch.Limit)
			}
			continue
		}
		seen[k] = len(out)
		out = append(out, preparedCheck{Check: ch, counter: k})
	}
	for _, ch := range out {
		switch {
		case ch.Scope == ScopeAgent && req.Agent == "":
			req.Agent = ch.ID
		case ch.Scope == ScopeTeam && req.Team == "":
			req.Team = ch.ID
		case ch.Scope == ScopeRun && req.RunID == "":
			req.RunID = ch.ID
		}
	}
	return out, nil
}

// reservation is a reservation's full record, open or settled.
type reservation struct {
	ID        string            `json:"id"`
	TraceID   string            `json:"trace,omitempty"`
	Agent     string            `json:"agent,omitempty"`
	Team      string            `json:"team,omitempty"`
	RunID     string            `json:"run,omitempty"`
	Action    string            `json:"action,omitempty"`
	Metadata  map[string]string `json:"meta,omitempty"`
	Counters  []counter         `json:"counters,omitempty"`
	Estimate  money.Nanos       `json:"est"`
	Remaining money.Nanos       `json:"rem"`
	CreatedAt time.Time         `json:"created"`
	ExpiresAt time.Time         `json:"expires"`

	Matched   money.Nanos `json:"matched,omitempty"`
	Spans     int64       `json:"spans,omitempty"`
	MaxOutput int64       `json:"max_out,omitempty"`
	Tokens    Tokens      `json:"tokens,omitzero"`
	Anomalous int64       `json:"anomalous,omitempty"`

	Settled     bool                   `json:"settled,omitempty"`
	Source      decisionapi.CostSource `json:"source,omitempty"`
	Reason      SettleReason           `json:"reason,omitempty"`
	Reported    money.Nanos            `json:"reported,omitempty"`
	HasReported bool                   `json:"has_reported,omitempty"`
	SettledAt   time.Time              `json:"settled_at,omitzero"`
}

func newReservation(req ReserveRequest, checks []preparedCheck) *reservation {
	r := &reservation{
		ID: req.ID, TraceID: req.TraceID, Agent: req.Agent, Team: req.Team, RunID: req.RunID, Action: req.Action,
		Metadata: maps.Clone(req.Metadata), Estimate: req.Estimate, Remaining: req.Estimate,
		CreatedAt: req.Time, ExpiresAt: req.Time.Add(req.TTL),
	}
	for _, ch := range checks {
		r.Counters = append(r.Counters, ch.counter)
	}
	return r
}

// accepts reports whether sp may commit against r: it is r's agent's spend and, when r has a
// run, that run's.
func (r *reservation) accepts(sp Spend) bool {
	return (r.Agent == "" || r.Agent == sp.Agent) && (r.RunID == "" || r.RunID == sp.Run())
}

// clipReported applies req.ReportedLimit to the reported cost for a reservation of estimate and
// returns the figure to book and whether it was clipped.
func clipReported(req ReleaseRequest, estimate money.Nanos) (money.Nanos, bool) {
	if !req.HasReported || req.ReportedLimit == nil {
		return req.ReportedCost, false
	}
	if limit := max(req.ReportedLimit(estimate), 0); req.ReportedCost > limit {
		return limit, true
	}
	return req.ReportedCost, false
}

// commit applies a matched spend and returns how much of the remaining reservation it consumed.
func (r *reservation) commit(sp Spend) money.Nanos {
	take := min(sp.Cost, r.Remaining)
	r.Remaining -= take
	r.Matched += sp.Cost
	r.Spans++
	r.MaxOutput = max(r.MaxOutput, sp.Tokens.Output)
	r.Tokens = r.Tokens.add(sp.Tokens)
	if sp.Anomaly {
		r.Anomalous++
	}
	return take
}

// settle closes the reservation and reports whether the reported cost must be booked.
func (r *reservation) settle(reason SettleReason, reported money.Nanos, hasReported bool, now time.Time) bool {
	r.Settled, r.Reason, r.SettledAt = true, reason, now
	r.Reported, r.HasReported = reported, hasReported
	r.Remaining = 0
	switch {
	case r.Spans > 0:
		r.Source = decisionapi.SourceSpans
	case hasReported:
		r.Source = decisionapi.SourceReported
	default:
		r.Source = decisionapi.SourceNone
	}
	return r.Source == decisionapi.SourceReported && reported > 0
}

func (r *reservation) settlement() Settlement {
	s := Settlement{
		ID: r.ID, TraceID: r.TraceID, Agent: r.Agent, Team: r.Team, RunID: r.RunID, Action: r.Action,
		Metadata: maps.Clone(r.Metadata), Estimate: r.Estimate,
		MatchedCost: r.Matched, SpansMatched: r.Spans, MaxOutputTokens: r.MaxOutput, Tokens: r.Tokens,
		AnomalousSpans: r.Anomalous, ReportedCost: r.Reported, HasReported: r.HasReported,
		Source: r.Source, Reason: r.Reason, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, SettledAt: r.SettledAt,
	}
	switch r.Source {
	case decisionapi.SourceSpans:
		s.Cost = r.Matched
	case decisionapi.SourceReported:
		s.Cost = r.Reported
	}
	return s
}

func validateRelease(req *ReleaseRequest) error {
	if req.ID == "" {
		return errors.New("reservation id is empty")
	}
	if req.HasReported && (req.ReportedCost < 0 || req.ReportedCost > money.MaxNanos) {
		return fmt.Errorf("reported cost %d nano-dollars is out of range", req.ReportedCost)
	}
	if !req.HasReported {
		req.ReportedCost = 0
	}
	req.Time = at(req.Time)
	return nil
}

// gcraInterval validates a rate limit and returns its emission interval in microseconds. The interval
// is rounded down, which admits exactly limit events per burst as long as (limit+1) intervals exceed
// the period; finer rates are refused rather than admitted inexactly.
func gcraInterval(limit int, per time.Duration) (interval, period int64, err error) {
	period = per.Microseconds()
	if limit <= 0 || period <= 0 {
		return 0, 0, fmt.Errorf("rate limit %d per %v is not positive", limit, per)
	}
	interval = period / int64(limit)
	if interval == 0 || (int64(limit)+1)*interval <= period {
		return 0, 0, fmt.Errorf("rate limit %d per %v is finer than the ledger's microsecond clock can count exactly", limit, per)
	}
	return interval, period, nil
}

// gcra admits one event at now (µs) given the theoretical arrival time tat (µs, 0 when unknown).
func gcra(tat, now, interval, period int64) (newTAT int64, ok bool, retryAfter time.Duration) {
	newTAT = max(tat, now) + interval
	if newTAT-now > period {
		return tat, false, time.Duration(newTAT-period-now) * time.Microsecond
	}
	return newTAT, true, 0
}

func validateLease(key string, limit int, ttl time.Duration) error {
	switch {
	case key == "":
		return errors.New("lease key is empty")
	case limit <= 0:
		return fmt.Errorf("lease limit %d is not positive", limit)
	case ttl <= 0:
		return fmt.Errorf("lease ttl %v is not positive", ttl)
	}
	return nil
}

func newLeaseID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func micros(t time.Time) int64 { return t.UnixMicro() }
