package agentcostprocessor

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"

	"github.com/agentcost/agentcost/internal/money"
)

// TestMediaUnitsPriced: spans of models the upstream map prices only per second (whisper-1), per
// character (tts-1-hd) or per pixel (dall-e-3 by size) are priced from the agentcost.usage.*
// seconds, characters and pixels keys (seconds may be fractional, read to the millisecond); tokens
// or units their entry has no price for are named in agentcost.price.unpriced_units; a malformed
// count is malformed and a count above limits.max_tokens_per_count is over the limit, never booked;
// a span with only tokens against an entry priced only per second is unpriced, not $0.
func TestMediaUnitsPriced(t *testing.T) {
	tel := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	cfg := testConfig()
	cfg.Limits.MaxTokensPerCount = 2_000_000
	p, sink := newTestProcessor(t, cfg, tel)
	span := func(model string, extra map[string]any) map[string]any {
		a := map[string]any{"gen_ai.request.model": model, "gen_ai.agent.name": "voice-agent"}
		for k, v := range extra {
			a[k] = v
		}
		return a
	}
	spans := process(t, p, sink, buildTraces(t,
		spanSpec{name: "transcription", attrs: span("whisper-1", map[string]any{"agentcost.usage.input_seconds": 12.3456})},
		spanSpec{name: "speech", attrs: span("tts-1-hd", map[string]any{"agentcost.usage.input_characters": int64(4_096)})},
		spanSpec{name: "image", attrs: span("hd/1024-x-1024/dall-e-3", map[string]any{"agentcost.usage.input_pixels": int64(1024 * 1024)})},
		spanSpec{name: "transcription with tokens", attrs: span("whisper-1", map[string]any{"agentcost.usage.input_seconds": int64(60),
			"gen_ai.usage.input_tokens": int64(100), "gen_ai.usage.output_tokens": int64(20)})},
		spanSpec{name: "chat with characters", attrs: span("gpt-4o-mini", map[string]any{"gen_ai.usage.input_tokens": int64(1_000),
			"gen_ai.usage.output_tokens": int64(10), "agentcost.usage.input_characters": int64(300)})},
		spanSpec{name: "string seconds", attrs: span("whisper-1", map[string]any{"agentcost.usage.input_seconds": "12"})},
		spanSpec{name: "negative pixels", attrs: span("hd/1024-x-1024/dall-e-3", map[string]any{"agentcost.usage.input_pixels": -1.0})},
		spanSpec{name: "seconds over the limit", attrs: span("whisper-1", map[string]any{"agentcost.usage.output_seconds": 2_000_000.5})},
		spanSpec{name: "characters over the limit", attrs: span("tts-1-hd", map[string]any{"agentcost.usage.input_characters": int64(2_000_001)})},
		spanSpec{name: "tokens only against a per-second entry", attrs: span("whisper-1", map[string]any{
			"gen_ai.usage.input_tokens": int64(100), "gen_ai.usage.output_tokens": int64(20)})},
		spanSpec{name: "pixels over the limit", attrs: span("hd/1024-x-1024/dall-e-3", map[string]any{"agentcost.usage.input_pixels": int64(2_000_001)})},
	))
	// The upstream decimals: 12.346 s × $0.0001, 4,096 × $0.00003, 1,048,576 × $7.629e-08 (half-even
	// to the nano-dollar: 79,995,863.04), 60 s × $0.0001.
	want := []money.Nanos{1_234_600, 122_880_000, 79_995_863, 6_000_000, -1, 0, 0, 0, 0, 0, 0}
	unpriced := []string{"", "", "", "tokens", "input_characters", "", "", "", "", "", ""}
	for i, s := range spans {
		v, priced := s.Attributes().Get("agentcost.cost_usd")
		switch {
		case want[i] == 0 && priced:
			t.Errorf("%s: priced at %v: %v", s.Name(), v.Double(), s.Attributes().AsRaw())
		case want[i] > 0 && (!priced || v.Double() != want[i].USD()):
			t.Errorf("%s: attrs %v, want cost %s", s.Name(), s.Attributes().AsRaw(), want[i])
		case want[i] < 0 && !priced:
			t.Errorf("%s: not priced: %v", s.Name(), s.Attributes().AsRaw())
		}
		if got := attrStr(s, "agentcost.price.unpriced_units"); got != unpriced[i] {
			t.Errorf("%s: unpriced_units %q, want %q", s.Name(), got, unpriced[i])
		}
	}
	if s := spans[9]; attrStr(s, "agentcost.price.unknown") != "true" {
		t.Errorf("%s: %v, want agentcost.price.unknown, not $0", s.Name(), s.Attributes().AsRaw())
	}
	// The README's "Every mode of the bill" quotes the first two.
	readme, _ := readmeBlocks(t)
	for _, q := range []string{"is 12.346 × $0.0001 = $" + want[0].String(), "for 4,096 characters is $" + want[1].String()} {
		if !strings.Contains(readme, q) {
			t.Errorf("README does not say %q", q)
		}
	}
	got := malformedBy(t, tel)
	if got["tokens_over_limit"] != 3 || got["string"] != 1 || got["negative"] != 1 {
		t.Errorf("spans_malformed = %v, want three tokens_over_limit, one string, one negative", got)
	}
}
