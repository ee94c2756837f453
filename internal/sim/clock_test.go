package sim

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	for _, bad := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if _, err := NewClock(bad); err == nil {
			t.Errorf("NewClock(%v) accepted", bad)
		}
	}
	c, err := NewClock(3600)
	if err != nil {
		t.Fatal(err)
	}
	now := c.start.Add(2 * time.Second)
	c.now = func() time.Time { return now }
	tests := []struct {
		name      string
		got, want time.Duration
	}{
		{"two real seconds are two simulated hours", c.Elapsed(), 2 * time.Hour},
		{"real elapsed", c.RealElapsed(), 2 * time.Second},
		{"a simulated round of 7m12s takes 120ms", c.Real(432 * time.Second), 120 * time.Millisecond},
		{"sim of real", c.Sim(time.Minute), 60 * time.Hour},
		{"saturates", c.Sim(math.MaxInt64 / 2), math.MaxInt64},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, tt.got, tt.want)
		}
	}
	// Due in the past: no wait.
	if err := c.WaitUntil(context.Background(), time.Hour); err != nil {
		t.Errorf("WaitUntil of a past time: %v", err)
	}
	// Due in an hour of real time: the context ends the wait.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.WaitUntil(ctx, 3600*time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitUntil with a canceled context: %v", err)
	}
}
