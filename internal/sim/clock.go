package sim

import (
	"context"
	"errors"
	"math"
	"time"
)

// Clock compresses time: Speed simulated seconds pass per real second. Simulated time is real
// time scaled, so everything that takes real time — a decision round trip, a throttle's
// retry_after_sec, a wait for a reviewer — also takes simulated time.
type Clock struct {
	speed float64
	start time.Time
	now   func() time.Time
}

// NewClock starts a clock at speed simulated seconds per real second (3600: an hour a second).
func NewClock(speed float64) (*Clock, error) {
	if math.IsNaN(speed) || math.IsInf(speed, 0) || speed <= 0 {
		return nil, errors.New("speed must be a positive number of simulated seconds per real second")
	}
	return &Clock{speed: speed, start: time.Now(), now: time.Now}, nil
}

// Speed returns the simulated seconds per real second.
func (c *Clock) Speed() float64 { return c.speed }

// Elapsed returns the simulated time since the start.
func (c *Clock) Elapsed() time.Duration { return c.Sim(c.now().Sub(c.start)) }

// RealElapsed returns the real time since the start.
func (c *Clock) RealElapsed() time.Duration { return c.now().Sub(c.start) }

// Sim returns the simulated duration of a real one, saturating at the largest duration.
func (c *Clock) Sim(d time.Duration) time.Duration { return scale(d, c.speed) }

// Real returns the real duration of a simulated one.
func (c *Clock) Real(sim time.Duration) time.Duration { return scale(sim, 1/c.speed) }

// WaitUntil sleeps until the simulated time since the start reaches at; it returns at once when
// it already has, and ctx's error when ctx ends first.
func (c *Clock) WaitUntil(ctx context.Context, at time.Duration) error {
	d := c.start.Add(c.Real(at)).Sub(c.now())
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func scale(d time.Duration, f float64) time.Duration {
	v := float64(d) * f
	if v >= math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(v)
}
