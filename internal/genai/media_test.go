package genai

import (
	"math"
	"testing"

	"github.com/agentcost/agentcost/internal/pricing"
)

// TestExtractMediaUnits: the seconds, pixels and characters keys reach the Call; seconds may be
// fractional and are read to the millisecond; a count alone is usage to price; a malformed count
// is flagged like a token count.
func TestExtractMediaUnits(t *testing.T) {
	c := Extract(attrMap(t, map[string]any{
		"gen_ai.request.model": "whisper-1", KeyInputSeconds: 12.3456, KeyOutputSeconds: int64(7),
		KeyInputPixels: int64(1_048_576), KeyOutputPixels: 2.0, KeyInputCharacters: int64(4_096), KeyOutputCharacters: int64(12),
	}), "transcription", nil)
	want := pricing.Usage{InputMillis: 12_346, OutputMillis: 7_000, InputPixels: 1_048_576, OutputPixels: 2,
		InputCharacters: 4_096, OutputCharacters: 12}
	if c.Usage != want || c.Malformed != 0 || !c.HasUsage {
		t.Errorf("call %+v (malformed %s), want usage %+v", c, c.Malformed, want)
	}
	for _, s := range []struct {
		v  any
		ms int64
	}{{0.0005, 1}, {0.0004, 0}, {1e8, 1e11}, {int64(100_000_000), 1e11}} {
		c := Extract(attrMap(t, map[string]any{"gen_ai.request.model": "m", KeyInputSeconds: s.v}), "x", nil)
		if c.Usage.InputMillis != s.ms || c.Malformed != 0 || !c.HasUsage {
			t.Errorf("%v seconds: %d ms (malformed %s), want %d", s.v, c.Usage.InputMillis, c.Malformed, s.ms)
		}
	}
	for _, bad := range []map[string]any{
		{"gen_ai.request.model": "m", KeyInputSeconds: "12"},
		{"gen_ai.request.model": "m", KeyOutputSeconds: -0.5},
		{"gen_ai.request.model": "m", KeyInputSeconds: math.NaN()},
		{"gen_ai.request.model": "m", KeyInputSeconds: 1e8 + 1},
		{"gen_ai.request.model": "m", KeyInputPixels: 1.5},
		{"gen_ai.request.model": "m", KeyOutputCharacters: int64(-1)},
	} {
		if c := Extract(attrMap(t, bad), "x", nil); c.Malformed == 0 {
			t.Errorf("%v: not flagged malformed (%+v)", bad, c)
		}
	}
}
