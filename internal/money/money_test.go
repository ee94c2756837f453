package money

import (
	"math"
	"testing"
)

func TestRateParsing(t *testing.T) {
	cases := []struct {
		in   string
		want Rate
	}{
		{"1.5e-07", 150_000_000},     // $0.15 per 1M
		{"3.75e-08", 37_500_000},     // $0.0375 per 1M
		{"0.000015", 15_000_000_000}, // $15 per 1M
		{"0", 0},
		{"1e-16", 0}, // below a femto-dollar, rounds half-even to 0
		{"5e-16", 0}, // exactly half, even
		{"1.5e-15", 2},
		{"2.5e-15", 2},
	}
	for _, c := range cases {
		got, err := RateFromPerToken(c.in)
		if err != nil || got != c.want {
			t.Errorf("RateFromPerToken(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	if r, _ := RateFromPerMillion("0.15"); r != 150_000_000 {
		t.Errorf("RateFromPerMillion(0.15) = %d", r)
	}
	if r, _ := RateFromFloat(1.5e-07); r != 150_000_000 {
		t.Errorf("RateFromFloat(1.5e-07) = %d", r)
	}
	for _, bad := range []string{"", "abc", "-1", "1e999", "1..2"} {
		if _, err := RateFromPerToken(bad); err == nil {
			t.Errorf("RateFromPerToken(%q) accepted", bad)
		}
	}
}

func TestAccRoundsOnceHalfEven(t *testing.T) {
	var a Acc
	// $0.15 per 1M tokens is 150 nano-dollars per token: exact.
	a.Add(1, 150_000_000)
	if n, ok := a.Nanos(); !ok || n != 150 {
		t.Fatalf("got %d %v", n, ok)
	}
	// Sub-nano parts are summed before the single rounding: 0.3 + 0.3 nano = 0.6 → 1.
	a = Acc{}
	a.Add(1, 300_000)
	if n, _ := a.Nanos(); n != 0 {
		t.Fatalf("0.3 rounded to %d", n)
	}
	a.Add(1, 300_000)
	if n, ok := a.Nanos(); !ok || n != 1 {
		t.Fatalf("got %d %v", n, ok)
	}
	a = Acc{}
	a.Add(5, 100_000) // 0.5 nano → half-even → 0
	if n, _ := a.Nanos(); n != 0 {
		t.Fatalf("0.5 rounded to %d", n)
	}
	a.Add(10, 100_000) // 1.5 nano → 2
	if n, _ := a.Nanos(); n != 2 {
		t.Fatalf("1.5 rounded to %d", n)
	}
	if a.Add(-1, 1) {
		t.Fatal("negative tokens accepted")
	}
	// 1e9 output tokens at $60/1M = $60,000 exactly.
	a = Acc{}
	a.Add(1_000_000_000, 60_000_000_000)
	if n, ok := a.Nanos(); !ok || n != 60_000*NanosPerUSD {
		t.Fatalf("got %d %v", n, ok)
	}
	a = Acc{}
	a.Add(math.MaxInt64, math.MaxInt64)
	if _, ok := a.Nanos(); ok {
		t.Fatal("overflow not reported")
	}
}

func TestFromUSD(t *testing.T) {
	if n, err := FromUSD(78.40); err != nil || n != 78_400_000_000 {
		t.Fatalf("FromUSD(78.40) = %d %v", n, err)
	}
	if n, _ := FromUSD(0.1 + 0.2); n != 300_000_000 {
		t.Fatalf("FromUSD(0.1+0.2) = %d", n)
	}
	if n, err := FromUSD(1e9); err != nil || n != MaxNanos {
		t.Fatalf("FromUSD(1e9) = %d, %v; want MaxNanos", n, err)
	}
	if _, err := ParseUSD("9223372036.854775808"); err == nil {
		t.Fatal("int64 overflow accepted")
	}
	for _, bad := range []float64{-1, math.NaN(), math.Inf(1), 1e12} {
		if _, err := FromUSD(bad); err == nil {
			t.Errorf("FromUSD(%v) accepted", bad)
		}
	}
	if s := Nanos(150_225).String(); s != "0.000150225" {
		t.Fatalf("String = %s", s)
	}
	if s := Nanos(2 * NanosPerUSD).String(); s != "2" {
		t.Fatalf("String = %s", s)
	}
	if DivRound(5, 2) != 2 || DivRound(7, 2) != 4 || DivRound(8, 3) != 3 {
		t.Fatal("DivRound is not half-even")
	}
}

func TestAddSat(t *testing.T) {
	for _, c := range []struct{ a, b, want Nanos }{
		{1, 2, 3},
		{math.MaxInt64 - 1, 5, math.MaxInt64},
		{math.MaxInt64, math.MaxInt64, math.MaxInt64},
		{5, -7, -2},
		{math.MinInt64 + 1, -5, math.MinInt64},
	} {
		if got := AddSat(c.a, c.b); got != c.want {
			t.Errorf("AddSat(%d, %d) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	if got := AddSat(int64(math.MaxInt64), 1); got != math.MaxInt64 {
		t.Errorf("AddSat on int64 = %d, want the maximum", got)
	}
}
