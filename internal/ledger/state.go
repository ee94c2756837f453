package ledger

import (
	"math"
	"math/bits"
	"time"

	"github.com/agentcost/agentcost/internal/money"
)

// State is one scope's counters in one window instance, read at At.
type State struct {
	Scope  Scope
	ID     string
	Window Window
	// Start and End bound the window instance; both are zero for the lifetime window.
	Start    time.Time
	End      time.Time
	At       time.Time
	Spent    money.Nanos
	Reserved money.Nanos
}

// Used returns spent + reserved, what a limit is compared with.
func (s State) Used() money.Nanos { return s.Spent + s.Reserved }

// Utilization returns (spent + reserved) / limit, for display and telemetry; 0 for a zero limit.
func (s State) Utilization(limit money.Nanos) float64 {
	if limit <= 0 {
		return 0
	}
	return float64(s.Used()) / float64(limit)
}

// elapsed is the part of the window that has passed at At, at least one second so that a fresh
// window does not divide by zero, at most the whole window.
func (s State) elapsed() time.Duration {
	e := s.At.Sub(s.Start)
	if length := s.End.Sub(s.Start); e > length {
		e = length
	}
	return max(e, time.Second)
}

// Forecast projects the spend at the end of the window from the rate so far: spent / elapsed ×
// window length. For the lifetime window it is the spend so far.
func (s State) Forecast() money.Nanos {
	if s.Window == Lifetime || s.Start.IsZero() || s.Spent <= 0 {
		return s.Spent
	}
	return money.Nanos(mulDiv(int64(s.Spent), int64(s.End.Sub(s.Start)), int64(s.elapsed())))
}

// TimeToLimit returns how long, at the rate spent so far, until spent + reserved reaches limit. ok is
// false when that will not happen within the current window (or nothing has been spent yet); a
// budget already at or over its limit returns 0, true.
func (s State) TimeToLimit(limit money.Nanos) (d time.Duration, ok bool) {
	if s.Used() >= limit {
		return 0, true
	}
	if s.Window == Lifetime || s.Start.IsZero() || s.Spent <= 0 {
		return 0, false
	}
	d = time.Duration(mulDiv(int64(limit-s.Used()), int64(s.elapsed()), int64(s.Spent)))
	if s.At.Add(d).After(s.End) {
		return 0, false
	}
	return d, true
}

// mulDiv returns a×b/c rounded down for non-negative a, b and positive c, saturating at MaxInt64.
func mulDiv(a, b, c int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= uint64(c) {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, uint64(c))
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// Snapshot is the state of every scope with activity in the current windows.
type Snapshot struct {
	At     time.Time
	States []State
	// Truncated is set when more scopes were active than snapshot_limit allows.
	Truncated bool
}
