package policy

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseRateLimit(t *testing.T) {
	cases := []struct {
		in   string
		want RateLimit
	}{
		{"20/hour", RateLimit{20, time.Hour}},
		{"6/minute", RateLimit{6, time.Minute}},
		{"5/min", RateLimit{5, time.Minute}},
		{"100/d", RateLimit{100, 24 * time.Hour}},
		{"1/second", RateLimit{1, time.Second}},
		{"3/s", RateLimit{3, time.Second}},
		{" 7 / h ", RateLimit{7, time.Hour}},
	}
	for _, tc := range cases {
		got, err := ParseRateLimit(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRateLimit(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"20/hr", "20", "0/hour", "-1/hour", "x/hour", "20/week", "1.5/hour", "2000000000/day", ""} {
		if r, err := ParseRateLimit(bad); err == nil {
			t.Errorf("ParseRateLimit(%q) = %+v, want an error", bad, r)
		}
	}
	if s := (RateLimit{20, time.Hour}).String(); s != "20/hour" {
		t.Errorf("String = %q", s)
	}
}

func TestTighter(t *testing.T) {
	unset := Limit{}
	for _, tc := range []struct{ a, b, want Limit }{
		{LimitOf(3), LimitOf(5), LimitOf(3)},
		{LimitOf(5), LimitOf(3), LimitOf(3)},
		{unset, LimitOf(0), LimitOf(0)},
		{LimitOf(0), unset, LimitOf(0)},
		{unset, unset, unset},
	} {
		if got := tc.a.Tighter(tc.b); got != tc.want {
			t.Errorf("%v.Tighter(%v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	perHour20 := RateLimit{20, time.Hour}
	perMinute1 := RateLimit{1, time.Minute} // 60/hour
	perHour60 := RateLimit{60, time.Hour}
	perDay1000 := RateLimit{1000, 24 * time.Hour} // 41.7/hour
	for _, tc := range []struct{ a, b, want RateLimit }{
		{perHour20, perMinute1, perHour20},
		{perMinute1, perHour20, perHour20},
		{perHour60, perMinute1, perMinute1}, // equal rates: the smaller burst
		{perMinute1, perHour60, perMinute1},
		{perDay1000, perHour60, perDay1000},
		{RateLimit{}, perHour20, perHour20},
		{perHour20, RateLimit{}, perHour20},
	} {
		if got := tc.a.Tighter(tc.b); got != tc.want {
			t.Errorf("%v.Tighter(%v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestWindowBounds(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata")
	}
	at := time.Date(2026, time.March, 11, 10, 40, 30, 5, berlin) // Wednesday
	cases := []struct {
		w          Window
		start, end time.Time
	}{
		{Minute, time.Date(2026, 3, 11, 10, 40, 0, 0, berlin), time.Date(2026, 3, 11, 10, 41, 0, 0, berlin)},
		{Hour, time.Date(2026, 3, 11, 10, 0, 0, 0, berlin), time.Date(2026, 3, 11, 11, 0, 0, 0, berlin)},
		{Day, time.Date(2026, 3, 11, 0, 0, 0, 0, berlin), time.Date(2026, 3, 12, 0, 0, 0, 0, berlin)},
		{Week, time.Date(2026, 3, 9, 0, 0, 0, 0, berlin), time.Date(2026, 3, 16, 0, 0, 0, 0, berlin)},
		{Month, time.Date(2026, 3, 1, 0, 0, 0, 0, berlin), time.Date(2026, 4, 1, 0, 0, 0, 0, berlin)},
		{Lifetime, time.Time{}, time.Time{}},
	}
	for _, tc := range cases {
		s, e := tc.w.Bounds(at)
		if !s.Equal(tc.start) || !e.Equal(tc.end) {
			t.Errorf("%v: [%v, %v), want [%v, %v)", tc.w, s, e, tc.start, tc.end)
		}
	}
	// A Sunday belongs to the week that began on the Monday before.
	sunday := time.Date(2026, time.March, 15, 23, 0, 0, 0, time.UTC)
	if s, _ := Week.Bounds(sunday); !s.Equal(time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Sunday's week starts %v", s)
	}
	// The day of the spring-forward switch is 23 hours long in Berlin.
	switchDay := time.Date(2026, time.March, 29, 12, 0, 0, 0, berlin)
	if s, e := Day.Bounds(switchDay); e.Sub(s) != 23*time.Hour {
		t.Errorf("DST day is %v long", e.Sub(s))
	}
}

func TestParseWindowAliases(t *testing.T) {
	for in, want := range map[string]Window{
		"minute": Minute, "1m": Minute, "hour": Hour, "1h": Hour, "day": Day, "24h": Day, "1d": Day,
		"week": Week, "7d": Week, "1w": Week, "month": Month, "1mo": Month, "lifetime": Lifetime,
	} {
		if got, ok := ParseWindow(in); !ok || got != want {
			t.Errorf("ParseWindow(%q) = %v %v, want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "2h", "year", "Day"} {
		if _, ok := ParseWindow(bad); ok {
			t.Errorf("ParseWindow(%q) accepted", bad)
		}
	}
}

func TestConstraintsJSON(t *testing.T) {
	c := Constraints{MaxRetries: LimitOf(0), RateLimit: RateLimit{20, time.Hour}, MaxTokens: LimitOf(50000)}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"max_retries":0,"rate_limit":"20/hour","max_tokens":50000}`
	if string(b) != want {
		t.Fatalf("json %s, want %s", b, want)
	}
	var back Constraints
	if err := json.Unmarshal(b, &back); err != nil || back != c {
		t.Fatalf("round trip %+v %v", back, err)
	}
	for _, bad := range []string{`{"max_retries":-1}`, `{"max_tokens":"x"}`, `{"rate_limit":"20/hr"}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestDecisionText(t *testing.T) {
	for d := Allow; d <= Deny; d++ {
		b, err := d.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Decision
		if err := back.UnmarshalText(b); err != nil || back != d {
			t.Errorf("%v round trip: %v %v", d, back, err)
		}
	}
	var d Decision
	if err := d.UnmarshalText([]byte("maybe")); err == nil {
		t.Error("unknown decision accepted")
	}
	if !AllowWithConstraints.Allowed() || Throttle.Allowed() {
		t.Error("Allowed() is wrong")
	}
}
