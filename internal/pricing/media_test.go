package pricing

import "testing"

// TestYAMLMediaUnits: the YAML price file prices seconds, pixels and characters; a model priced
// only by them needs no token prices (its tokens are then reported unpriced), one with a lone token
// price is still an error naming the missing key.
func TestYAMLMediaUnits(t *testing.T) {
	l, err := ParseYAML([]byte(`
source: ours
models:
  speech-1: {input_character_usd: 0.000015, output_second_usd: 0}
  transcribe-1: {input_per_million: 2.5, output_per_million: 10, input_second_usd: 0.0001}
  paint-1: {input_pixel_usd: 0.0000000381469, output_pixel_usd: 0}
`), "ours.yaml")
	if err != nil {
		t.Fatal(err)
	}
	table := mustBuild(t, l)
	for _, c := range []struct {
		model    string
		usage    Usage
		want     string
		unpriced UnitSet
	}{
		{"speech-1", Usage{InputCharacters: 10_000, OutputMillis: 30_000}, "0.15", 0},
		{"speech-1", Usage{InputCharacters: 1_000, InputTokens: 5}, "0.015", UnitTokens},
		{"transcribe-1", Usage{InputTokens: 1_000_000, OutputTokens: 100_000, InputMillis: 90_500}, "3.50905", 0},
		{"transcribe-1", Usage{InputPixels: 10}, "0", HasInputPixels},
		{"paint-1", Usage{InputPixels: 1024 * 1024, OutputPixels: 1024 * 1024}, "0.039999924", 0},
	} {
		e, ok := table.Lookup(c.model, "")
		if !ok {
			t.Fatalf("%s not loaded", c.model)
		}
		got, err := e.Cost(c.usage)
		if err != nil || got.Total.String() != c.want || got.Unpriced != c.unpriced {
			t.Errorf("%s %+v = %s (unpriced %q), %v; want $%s (unpriced %q)", c.model, c.usage, got.Total, got.Unpriced, err, c.want, c.unpriced)
		}
	}
	speech, _ := table.Lookup("speech-1", "")
	if speech.PricesAny(Usage{InputTokens: 10, OutputTokens: 10}) || speech.PricesAny(Usage{InputPixels: 10}) ||
		!speech.PricesAny(Usage{InputTokens: 10, InputCharacters: 1}) || !speech.PricesAny(Usage{OutputMillis: 1}) {
		t.Error("PricesAny: a per-character entry prices characters and its zero-priced seconds, not tokens or pixels alone")
	}
	checkBadFiles(t, "t.yaml", func(b []byte) (*Layer, error) { return ParseYAML(b, "t.yaml") }, []badFile{
		{"media and an input price only", "models:\n  m: {input_per_million: 1, input_second_usd: 0.01}\n", 2, "m", "output_per_million"},
		{"negative per-second price", "models:\n  m: {input_second_usd: -0.01}\n", 2, "m", "input_second_usd"},
		{"per-pixel price below a femto-dollar", "models:\n  m: {input_pixel_usd: 1e-18}\n", 2, "m", "input_pixel_usd"},
		{"no price at all", "models:\n  m: {provider: x}\n", 2, "m", "input_per_million"},
	})
}
