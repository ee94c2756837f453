package agentcostprocessor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/processor/processortest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/agentcost/agentcost/internal/pricing"
	"github.com/agentcost/agentcost/processor/agentcostprocessor/internal/metadata"
)

// matchCounts reads otelcol_processor_agentcost_price_matches as "model|match|allowed" → count.
func matchCounts(t *testing.T, tel *componenttest.Telemetry) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	m, err := tel.GetMetric("otelcol_processor_agentcost_price_matches")
	if err != nil {
		return out
	}
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		model, _ := dp.Attributes.Value(attribute.Key("model"))
		match, _ := dp.Attributes.Value(attribute.Key("match"))
		allowed, _ := dp.Attributes.Value(attribute.Key("allowed"))
		out[model.AsString()+"|"+match.AsString()+"|"+allowed.String()] += dp.Value
	}
	return out
}

// TestPriceMatchAttributeAndAllowMatch: a price found by a non-exact rule is written in
// agentcost.price.match and counted per model and kind; an exact key writes nothing (the lean
// default stays lean); a kind left out of prices.allow_match leaves the span unpriced, marked
// unknown and counted; route prefixes of a separate billing are never priced as the direct API.
func TestPriceMatchAttributeAndAllowMatch(t *testing.T) {
	facts := priceFacts(t)
	span := func(model string) spanSpec {
		return spanSpec{name: "chat", resource: map[string]any{"service.name": "a"}, attrs: map[string]any{
			"gen_ai.request.model": model, "gen_ai.usage.input_tokens": int64(1_000), "gen_ai.usage.output_tokens": int64(100)}}
	}
	models := []string{
		"gpt-4o",                  // exact
		"openai/gpt-4o",           // provider prefix
		"gpt-3.5-turbo-0613",      // a snapshot that left the file
		"GPT-4O",                  // case-insensitive
		"github_copilot/gpt-4o",   // a subscription the file lists without token prices
		"chatgpt/brand-new-model", // a subscription route the file does not list
		"us.anthropic.claude-sonnet-4-5-20250929-v1:0", // Bedrock's regional key, exact
	}
	var specs []spanSpec
	for _, m := range models {
		specs = append(specs, span(m))
	}

	t.Run("default allows every kind", func(t *testing.T) {
		tel := componenttest.NewTelemetry()
		t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
		p, sink := newTestProcessor(t, createDefaultConfig().(*Config), tel)
		spans := process(t, p, sink, buildTraces(t, specs...))
		want := []struct{ model, match string }{
			{"gpt-4o", ""}, {"gpt-4o", "provider_prefix"}, {"gpt-3.5-turbo", "dated_snapshot"},
			{"gpt-4o", "case_insensitive"}, {"", ""}, {"", ""},
			{"us.anthropic.claude-sonnet-4-5-20250929-v1:0", ""},
		}
		for i, w := range want {
			s := spans[i]
			if w.model == "" {
				if v, ok := s.Attributes().Get("agentcost.price.unknown"); !ok || !v.Bool() {
					t.Errorf("%s: not marked unknown: %v", models[i], s.Attributes().AsRaw())
				}
				if _, ok := s.Attributes().Get("agentcost.cost_usd"); ok {
					t.Errorf("%s: priced as the direct API", models[i])
				}
				continue
			}
			if got := attrStr(s, "agentcost.model"); got != w.model {
				t.Errorf("%s: model %q, want %q", models[i], got, w.model)
			}
			got, ok := s.Attributes().Get("agentcost.price.match")
			if ok != (w.match != "") || (ok && got.Str() != w.match) {
				t.Errorf("%s: agentcost.price.match %v (present %v), want %q", models[i], got.AsRaw(), ok, w.match)
			}
			cost := expectUSD(t, facts, w.model, map[string]int64{"input_cost_per_token": 1_000, "output_cost_per_token": 100})
			if c := attrDouble(t, s, "agentcost.cost_usd"); c != cost {
				t.Errorf("%s: cost %.9f, want %.9f", models[i], c, cost)
			}
		}
		// The snapshot that left the file is priced at today's gpt-3.5-turbo, not its own
		// $0.0015/$0.002 per 1K: the flag is what tells them apart.
		if c := attrDouble(t, spans[2], "agentcost.cost_usd"); c != 0.00065 {
			t.Errorf("gpt-3.5-turbo-0613 priced %.9f, want 0.00065 (1,000 × $0.5/M + 100 × $1.5/M)", c)
		}
		counts := matchCounts(t, tel)
		wantCounts := map[string]int64{"gpt-4o|provider_prefix|true": 1, "gpt-3.5-turbo|dated_snapshot|true": 1,
			"gpt-4o|case_insensitive|true": 1}
		if len(counts) != len(wantCounts) {
			t.Errorf("price_matches %v, want %v", counts, wantCounts)
		}
		for k, n := range wantCounts {
			if counts[k] != n {
				t.Errorf("price_matches{%s} = %d, want %d (all: %v)", k, counts[k], n, counts)
			}
		}
		if got := sumCounter(t, tel, "otelcol_processor_agentcost_spans_unpriced"); got != 2 {
			t.Errorf("spans_unpriced = %d, want 2", got)
		}
	})

	t.Run("allow_match without dated_snapshot", func(t *testing.T) {
		tel := componenttest.NewTelemetry()
		t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
		cfg := createDefaultConfig().(*Config)
		cfg.Prices.AllowMatch = []string{"provider_prefix"}
		p, sink := newTestProcessor(t, cfg, tel)
		spans := process(t, p, sink, buildTraces(t, specs...))
		if _, ok := spans[1].Attributes().Get("agentcost.cost_usd"); !ok {
			t.Errorf("openai/gpt-4o not priced: %v", spans[1].Attributes().AsRaw())
		}
		for _, i := range []int{2, 3} {
			a := spans[i].Attributes()
			if _, ok := a.Get("agentcost.cost_usd"); ok {
				t.Errorf("%s priced although its kind is not allowed", models[i])
			}
			if v, ok := a.Get("agentcost.price.unknown"); !ok || !v.Bool() {
				t.Errorf("%s not marked unknown", models[i])
			}
			if _, ok := a.Get("agentcost.price.match"); !ok {
				t.Errorf("%s: the refused kind is not named", models[i])
			}
		}
		counts := matchCounts(t, tel)
		if counts["gpt-3.5-turbo|dated_snapshot|false"] != 1 || counts["gpt-4o|case_insensitive|false"] != 1 ||
			counts["gpt-4o|provider_prefix|true"] != 1 {
			t.Errorf("price_matches %v", counts)
		}
		if got := sumCounter(t, tel, "otelcol_processor_agentcost_spans_unpriced"); got != 4 {
			t.Errorf("spans_unpriced = %d, want 4", got)
		}
	})
}

func TestAllowMatchValidate(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	if len(cfg.Prices.AllowMatch) != len(pricing.MatchKindNames()) || cfg.Prices.denyMatch() != 0 {
		t.Fatalf("default allow_match %v", cfg.Prices.AllowMatch)
	}
	cfg.Prices.AllowMatch = []string{"provider_prefix", "dated-snapshot"}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "prices.allow_match[1]") || !strings.Contains(err.Error(), "dated_snapshot") {
		t.Fatalf("err = %v", err)
	}
	cfg.Prices.AllowMatch = []string{}
	if err := cfg.Validate(); err != nil || cfg.Prices.denyMatch() != pricing.AllMatchKinds {
		t.Fatalf("empty allow_match: %v", err)
	}
}

// TestStartLogsSkippedEntries: at start the processor logs, in one line, the price files' entries
// without token prices by reason, adding up the embedded map's and a user file's.
func TestStartLogsSkippedEntries(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	set := processortest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	cfg := createDefaultConfig().(*Config)
	cfg.Prices.Files = []string{writePriceFile(t, `{"img-x": {"output_cost_per_image": 0.04}, "m": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}`)}
	p, err := NewFactory().CreateTraces(context.Background(), set, cfg, new(consumertest.TracesSink))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	entries := logs.FilterMessage("price files: entries skipped (no token prices)").All()
	if len(entries) != 1 {
		t.Fatalf("%d skip lines logged", len(entries))
	}
	line := entries[0].ContextMap()["skipped"].(string)
	def, err := pricing.DefaultLayer()
	if err != nil {
		t.Fatal(err)
	}
	images := 0
	for _, c := range pricing.SkipsByReason(def.Skips) {
		if c.Reason == pricing.SkipPerImage {
			images = c.Count
		}
	}
	if want := fmt.Sprintf("%s %d", pricing.SkipPerImage, images+1); !strings.Contains(line, want) {
		t.Errorf("logged %q, want it to contain %q", line, want)
	}
}

func writePriceFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
