package guard

import (
	"testing"
	"time"
)

// TestRetryBackoffIsJittered: the waits between attempts without a Retry-After double from 250ms,
// each within ±50%, and differ between clients, so that clients failing together spread out.
func TestRetryBackoffIsJittered(t *testing.T) {
	firsts := map[time.Duration]bool{}
	for range 50 {
		b := retryBackoff()
		base := 250 * time.Millisecond
		for i := range 4 {
			d := b.NextBackOff()
			if d < base/2 || d > base*3/2 {
				t.Fatalf("wait %d = %v, want within [%v, %v]", i+1, d, base/2, base*3/2)
			}
			if i == 0 {
				firsts[d] = true
			}
			base *= 2
		}
	}
	if len(firsts) < 2 {
		t.Errorf("50 clients all waited %v first: no jitter", firsts)
	}
}
