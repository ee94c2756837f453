package ledger

import (
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/money"
)

func loadLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestWindowBounds(t *testing.T) {
	la := loadLoc(t, "America/Los_Angeles")
	kolkata := loadLoc(t, "Asia/Kolkata") // UTC+5:30: local hours start at UTC half hours
	cases := []struct {
		name       string
		w          Window
		t          time.Time
		loc        *time.Location
		start, end time.Time
	}{
		{"minute", Minute, time.Date(2026, 7, 24, 15, 30, 59, 999, time.UTC), nil,
			time.Date(2026, 7, 24, 15, 30, 0, 0, time.UTC), time.Date(2026, 7, 24, 15, 31, 0, 0, time.UTC)},
		{"hour in a half-hour zone", Hour, time.Date(2026, 7, 24, 10, 10, 0, 0, time.UTC), kolkata,
			time.Date(2026, 7, 24, 15, 0, 0, 0, kolkata), time.Date(2026, 7, 24, 16, 0, 0, 0, kolkata)},
		{"day", Day, time.Date(2026, 7, 24, 23, 59, 0, 0, la), la,
			time.Date(2026, 7, 24, 0, 0, 0, 0, la), time.Date(2026, 7, 25, 0, 0, 0, 0, la)},
		// 2026-03-08 is the day clocks spring forward in Los Angeles: 23 hours long.
		{"day of 23 hours", Day, time.Date(2026, 3, 8, 12, 0, 0, 0, la), la,
			time.Date(2026, 3, 8, 0, 0, 0, 0, la), time.Date(2026, 3, 8, 0, 0, 0, 0, la).Add(23 * time.Hour)},
		// 2026-01-01 is a Thursday: its ISO week began on Monday, December 29th.
		{"week across a year end", Week, time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC), nil,
			time.Date(2025, 12, 29, 0, 0, 0, 0, time.UTC), time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)},
		{"week on a Sunday", Week, time.Date(2026, 3, 1, 23, 0, 0, 0, la), la,
			time.Date(2026, 2, 23, 0, 0, 0, 0, la), time.Date(2026, 3, 2, 0, 0, 0, 0, la)},
		{"week on a Monday", Week, time.Date(2026, 3, 2, 0, 0, 0, 0, la), la,
			time.Date(2026, 3, 2, 0, 0, 0, 0, la), time.Date(2026, 3, 9, 0, 0, 0, 0, la)},
		{"month in a zone behind UTC", Month, time.Date(2026, 3, 1, 5, 0, 0, 0, time.UTC), la,
			time.Date(2026, 2, 1, 0, 0, 0, 0, la), time.Date(2026, 3, 1, 0, 0, 0, 0, la)},
		{"december", Month, time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC), time.UTC,
			time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start, end := WindowBounds(c.w, c.t, c.loc)
			if !start.Equal(c.start) || !end.Equal(c.end) {
				t.Errorf("WindowBounds = [%v, %v), want [%v, %v)", start, end, c.start, c.end)
			}
			if start.After(c.t) || !end.After(c.t) {
				t.Errorf("%v is not inside [%v, %v)", c.t, start, end)
			}
		})
	}
	if s, e := WindowBounds(Lifetime, time.Now(), nil); !s.IsZero() || !e.IsZero() {
		t.Errorf("lifetime bounds %v %v, want zero", s, e)
	}
}

func TestWindowBoundsFallBack(t *testing.T) {
	// On 2026-11-01 Los Angeles repeats 01:00-02:00: the two hours are distinct window instances,
	// each 60 minutes long.
	la := loadLoc(t, "America/Los_Angeles")
	first := time.Date(2026, 11, 1, 8, 30, 0, 0, time.UTC)  // 01:30 PDT
	second := time.Date(2026, 11, 1, 9, 30, 0, 0, time.UTC) // 01:30 PST
	s1, e1 := WindowBounds(Hour, first, la)
	s2, e2 := WindowBounds(Hour, second, la)
	if !e1.Equal(s2) || e1.Sub(s1) != time.Hour || e2.Sub(s2) != time.Hour {
		t.Errorf("hours [%v, %v) and [%v, %v) are not consecutive 60-minute windows", s1, e1, s2, e2)
	}
	if WindowKey(Hour, first, la) == WindowKey(Hour, second, la) {
		t.Error("the repeated hour shares a key with the first")
	}
	if ds, de := WindowBounds(Day, first, la); de.Sub(ds) != 25*time.Hour {
		t.Errorf("the fall-back day lasts %v, want 25h", de.Sub(ds))
	}
}

func TestWindowKeyAndParse(t *testing.T) {
	at := time.Date(2026, 7, 24, 15, 30, 0, 0, time.UTC)
	if got, want := WindowKey(Hour, at, nil), "hour:"+itoa(time.Date(2026, 7, 24, 15, 0, 0, 0, time.UTC).Unix()); got != want {
		t.Errorf("WindowKey = %q, want %q", got, want)
	}
	if WindowKey(Lifetime, at, nil) != "lifetime" {
		t.Error("lifetime key")
	}
	for in, want := range map[string]Window{
		"minute": Minute, "1m": Minute, "1h": Hour, "24h": Day, "1d": Day, "7d": Week, "1w": Week, "1mo": Month,
		"Month": Month, "lifetime": Lifetime,
	} {
		if got, err := ParseWindow(in); err != nil || got != want {
			t.Errorf("ParseWindow(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseWindow("fortnight"); err == nil {
		t.Error("ParseWindow accepted fortnight")
	}
	if _, err := ParseScope("planet"); err == nil {
		t.Error("ParseScope accepted planet")
	}
}

func TestForecastAndTimeToLimit(t *testing.T) {
	start := time.Date(2026, 7, 24, 0, 0, 0, 0, time.UTC)
	day := State{Window: Day, Start: start, End: start.Add(24 * time.Hour)}
	usd := func(s string) money.Nanos { n, _ := money.ParseUSD(s); return n }
	cases := []struct {
		name      string
		at        time.Duration
		spent     money.Nanos
		reserved  money.Nanos
		limit     money.Nanos
		forecast  money.Nanos
		ttl       time.Duration
		ttlOK     bool
		lifetimeF bool
	}{
		// $6 in 6 hours is $1/h: $24 by the end of the day; $20 of headroom lasts 14h... minus
		// the $4 reserved: (20 - 6 - 4) / 1 = 10h.
		{"steady", 6 * time.Hour, usd("6"), usd("4"), usd("20"), usd("24"), 10 * time.Hour, true, false},
		// The limit is beyond the end of the window at this rate.
		{"not reached today", 12 * time.Hour, usd("1"), 0, usd("20"), usd("2"), 0, false, false},
		{"already over", time.Hour, usd("30"), 0, usd("20"), usd("720"), 0, true, false},
		{"nothing spent", time.Hour, 0, usd("5"), usd("20"), 0, 0, false, false},
		// A fresh window counts at least one second elapsed.
		{"first instant", 0, usd("1"), 0, usd("1000000"), usd("86400"), 0, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := day
			s.At, s.Spent, s.Reserved = start.Add(c.at), c.spent, c.reserved
			if got := s.Forecast(); got != c.forecast {
				t.Errorf("Forecast = %s, want %s", got, c.forecast)
			}
			ttl, ok := s.TimeToLimit(c.limit)
			if ttl != c.ttl || ok != c.ttlOK {
				t.Errorf("TimeToLimit = %v %v, want %v %v", ttl, ok, c.ttl, c.ttlOK)
			}
		})
	}
	run := State{Window: Lifetime, Spent: usd("3"), At: start}
	if run.Forecast() != usd("3") {
		t.Error("a run's forecast is not its spend")
	}
	if _, ok := run.TimeToLimit(usd("5")); ok {
		t.Error("a run has no rate to reach its limit by")
	}
	if u := (State{Spent: usd("1"), Reserved: usd("1")}).Utilization(usd("4")); u != 0.5 {
		t.Errorf("Utilization = %v, want 0.5", u)
	}
	if mulDiv(1<<62, 1<<62, 3) != 1<<63-1 {
		t.Error("mulDiv does not saturate")
	}
}

func TestGCRAInterval(t *testing.T) {
	iv, per, err := gcraInterval(3, time.Second)
	if err != nil || iv != 333333 || per != 1_000_000 {
		t.Fatalf("3/s: %d %d %v", iv, per, err)
	}
	// Exactly three fit in a burst, not four.
	tat, n := int64(0), 0
	for range 5 {
		var ok bool
		if tat, ok, _ = gcra(tat, 0, iv, per); ok {
			n++
		}
	}
	if n != 3 {
		t.Errorf("burst of %d, want 3", n)
	}
	for _, c := range []struct {
		limit int
		per   time.Duration
	}{{0, time.Second}, {1, 0}, {1500, time.Second}, {1, time.Nanosecond}} {
		if _, _, err := gcraInterval(c.limit, c.per); err == nil {
			t.Errorf("gcraInterval(%d, %v) accepted", c.limit, c.per)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		key  string
	}{
		{"default", func(*Config) {}, ""},
		{"backend", func(c *Config) { c.Backend = "mongo" }, "backend:"},
		{"directory", func(c *Config) { c.Directory = " " }, "directory:"},
		{"endpoint", func(c *Config) { c.Backend, c.Redis.Endpoint = BackendRedis, "" }, "redis.endpoint:"},
		{"endpoint port", func(c *Config) { c.Backend, c.Redis.Endpoint = BackendRedis, "localhost" }, "redis.endpoint:"},
		{"redis ok", func(c *Config) { c.Backend, c.Directory = BackendRedis, "" }, ""},
		{"time zone", func(c *Config) { c.TimeZone = "Mars/Olympus" }, "time_zone:"},
		{"horizon", func(c *Config) { c.IdempotencyHorizon = -time.Hour }, "idempotency_horizon:"},
		{"db", func(c *Config) { c.Backend, c.Redis.DB = BackendRedis, -1 }, "redis.db:"},
		{"snapshot", func(c *Config) { c.SnapshotLimit = -1 }, "snapshot_limit:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := NewDefaultConfig()
			c.mod(&cfg)
			err := cfg.Validate()
			switch {
			case c.key == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case c.key != "" && (err == nil || !strings.HasPrefix(err.Error(), c.key)):
				t.Errorf("error %v, want one naming %q", err, c.key)
			}
		})
	}
	cfg := NewDefaultConfig()
	cfg.Backend, cfg.Redis.Password = BackendRedis, "s3cret"
	cfg.Redis.Endpoint = "127.0.0.1:1" // nothing listens there
	cfg.Redis.DialTimeout = 100 * time.Millisecond
	if _, err := Open(t.Context(), cfg, Settings{}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open against a closed port: %v (must fail without the password)", err)
	}
}
