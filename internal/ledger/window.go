package ledger

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Scope is the kind of thing a budget counts spend for.
type Scope string

// The scopes. FleetID is the only id of the fleet scope; runs are counted in the lifetime window.
const (
	ScopeAgent Scope = "agent"
	ScopeTeam  Scope = "team"
	ScopeModel Scope = "model"
	ScopeFleet Scope = "fleet"
	ScopeRun   Scope = "run"

	FleetID = "fleet"
)

// ParseScope parses a scope name.
func ParseScope(s string) (Scope, error) {
	switch sc := Scope(s); sc {
	case ScopeAgent, ScopeTeam, ScopeModel, ScopeFleet, ScopeRun:
		return sc, nil
	}
	return "", fmt.Errorf("unknown scope %q (want agent, team, model, fleet or run)", s)
}

// Window is a calendar window granularity.
type Window string

// The windows. Calendar windows are aligned in the ledger's time zone; weeks start on Monday (ISO).
const (
	Minute   Window = "minute"
	Hour     Window = "hour"
	Day      Window = "day"
	Week     Window = "week"
	Month    Window = "month"
	Lifetime Window = "lifetime"
)

// CalendarWindows lists the windows every spend is booked into for the agent, team, model and
// fleet scopes, shortest first.
var CalendarWindows = []Window{Minute, Hour, Day, Week, Month}

// ParseWindow parses a window name or one of the policy aliases (1m, 1h, 24h, 1d, 7d, 1w, 1mo).
func ParseWindow(s string) (Window, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "minute", "1m":
		return Minute, nil
	case "hour", "1h":
		return Hour, nil
	case "day", "24h", "1d":
		return Day, nil
	case "week", "7d", "1w":
		return Week, nil
	case "month", "1mo":
		return Month, nil
	case "lifetime":
		return Lifetime, nil
	}
	return "", fmt.Errorf("unknown window %q (want minute, hour, day, week, month or lifetime)", s)
}

// validFor reports whether the window can be used with the scope: runs count only in the lifetime
// window, every other scope only in calendar windows.
func (w Window) validFor(s Scope) error {
	if _, err := ParseScope(string(s)); err != nil {
		return err
	}
	switch w {
	case Minute, Hour, Day, Week, Month, Lifetime:
	default:
		return fmt.Errorf("unknown window %q", w)
	}
	if (s == ScopeRun) != (w == Lifetime) {
		if s == ScopeRun {
			return fmt.Errorf("scope run counts only in the lifetime window, not %q", w)
		}
		return fmt.Errorf("scope %s has no lifetime window (only runs do)", s)
	}
	return nil
}

// WindowBounds returns the window instance of w that contains t, as [start, end) in loc (UTC when
// nil). Minutes and hours are real elapsed spans, so across a daylight-saving change an hour is
// always 60 minutes long while a day may last 23 or 25 hours. The lifetime window has zero bounds.
func WindowBounds(w Window, t time.Time, loc *time.Location) (start, end time.Time) {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	y, mo, d := t.Date()
	switch w {
	case Minute:
		start = t.Add(-time.Duration(t.Second())*time.Second - time.Duration(t.Nanosecond()))
		return start, start.Add(time.Minute)
	case Hour:
		start = t.Add(-time.Duration(t.Minute())*time.Minute - time.Duration(t.Second())*time.Second - time.Duration(t.Nanosecond()))
		return start, start.Add(time.Hour)
	case Day:
		return time.Date(y, mo, d, 0, 0, 0, 0, loc), time.Date(y, mo, d+1, 0, 0, 0, 0, loc)
	case Week:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, mo, d-back, 0, 0, 0, 0, loc), time.Date(y, mo, d-back+7, 0, 0, 0, 0, loc)
	case Month:
		return time.Date(y, mo, 1, 0, 0, 0, 0, loc), time.Date(y, mo+1, 1, 0, 0, 0, 0, loc)
	}
	return time.Time{}, time.Time{}
}

// WindowKey names the instance of w containing t: the window name and its start in Unix seconds
// ("hour:1753369200"), unambiguous across daylight-saving changes; the lifetime window is
// "lifetime".
func WindowKey(w Window, t time.Time, loc *time.Location) string {
	if w == Lifetime {
		return string(Lifetime)
	}
	start, _ := WindowBounds(w, t, loc)
	return string(w) + ":" + strconv.FormatInt(start.Unix(), 10)
}

// retention is how long a window instance's counters are kept after it ends: two instances back.
func retention(w Window, start, end time.Time) time.Duration {
	return 2 * end.Sub(start)
}

// windowCode is the one-byte tag of a window in embedded keys.
func windowCode(w Window) byte {
	switch w {
	case Minute:
		return 'm'
	case Hour:
		return 'h'
	case Day:
		return 'd'
	case Week:
		return 'w'
	case Month:
		return 'M'
	}
	return 'L'
}

func windowFromCode(c byte) Window {
	switch c {
	case 'm':
		return Minute
	case 'h':
		return Hour
	case 'd':
		return Day
	case 'w':
		return Week
	case 'M':
		return Month
	}
	return Lifetime
}
