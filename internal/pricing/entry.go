package pricing

import (
	"errors"
	"strings"

	"github.com/agentcost/agentcost/internal/money"
)

// MaxTokensPerPart is the largest token count accepted in one usage part (input, output, cache read,
// cache write, reasoning). Larger counts are treated as malformed telemetry, not as spend.
const MaxTokensPerPart = 100_000_000

var (
	// ErrMalformedUsage is returned by Entry.Cost for a negative or absurdly large token count.
	ErrMalformedUsage = errors.New("malformed usage: token count negative or above 100,000,000")
	// ErrInconsistentUsage is returned by Entry.Cost when the parts of a usage contradict each other:
	// cached tokens above the input tokens that include them, or reasoning tokens above the output
	// tokens. errors.Is(ErrInconsistentUsage, ErrMalformedUsage) holds.
	ErrInconsistentUsage error = &inconsistentError{}
	// ErrCostOverflow is returned by Entry.Cost when a cost exceeds money.MaxNanos (an absurd rate
	// times an absurd count).
	ErrCostOverflow = errors.New("cost exceeds the largest representable amount")
)

type inconsistentError struct{}

func (*inconsistentError) Error() string {
	return "inconsistent usage: cached tokens exceed input tokens or reasoning tokens exceed output tokens"
}

func (*inconsistentError) Is(target error) bool { return target == ErrMalformedUsage }

// RateSet records which of the rates in a Rates value are given.
type RateSet uint16

// The rates a Rates value can hold.
const (
	HasInput RateSet = 1 << iota
	HasOutput
	HasCacheRead
	HasCacheWrite
	HasReasoning
	// HasCacheWrite1h is Anthropic's 1-hour cache-write price (LiteLLM
	// `cache_creation_input_token_cost_above_1hr`); absent, 1-hour writes are priced as cache writes.
	HasCacheWrite1h
	// HasAudioInput and HasAudioOutput price audio tokens (`input_cost_per_audio_token`,
	// `output_cost_per_audio_token`); absent, audio tokens are priced as input or output tokens.
	HasAudioInput
	HasAudioOutput
	// HasImageInput prices image input tokens (`input_cost_per_image_token`); absent, as input tokens.
	HasImageInput
)

// Rates is one column of per-token prices. A rate whose bit is not in Set is absent (not zero): it
// falls back as Entry.Effective describes.
type Rates struct {
	Input      money.Rate
	Output     money.Rate
	CacheRead  money.Rate
	CacheWrite money.Rate
	// Reasoning prices reasoning tokens (a part of the output tokens) when it differs from Output.
	Reasoning money.Rate
	// CacheWrite1h prices the cache-write tokens written with a 1-hour lifetime (a part of the
	// cache-write tokens).
	CacheWrite1h money.Rate
	// AudioInput and AudioOutput price audio tokens (a part of the input and output tokens).
	AudioInput  money.Rate
	AudioOutput money.Rate
	// ImageInput prices image input tokens (a part of the input tokens).
	ImageInput money.Rate
	Set        RateSet
}

// Has reports whether every rate in s is given.
func (r Rates) Has(s RateSet) bool { return r.Set&s == s }

// IsZero reports whether no rate is given.
func (r Rates) IsZero() bool { return r.Set == 0 }

// set stores v as the rate s (one bit).
func (r *Rates) set(s RateSet, v money.Rate) {
	switch s {
	case HasInput:
		r.Input = v
	case HasOutput:
		r.Output = v
	case HasCacheRead:
		r.CacheRead = v
	case HasCacheWrite:
		r.CacheWrite = v
	case HasReasoning:
		r.Reasoning = v
	case HasCacheWrite1h:
		r.CacheWrite1h = v
	case HasAudioInput:
		r.AudioInput = v
	case HasAudioOutput:
		r.AudioOutput = v
	case HasImageInput:
		r.ImageInput = v
	}
	r.Set |= s
}

// get returns the rate s (one bit) and whether it is given.
func (r *Rates) get(s RateSet) (money.Rate, bool) {
	if r.Set&s == 0 {
		return 0, false
	}
	switch s {
	case HasInput:
		return r.Input, true
	case HasOutput:
		return r.Output, true
	case HasCacheRead:
		return r.CacheRead, true
	case HasCacheWrite:
		return r.CacheWrite, true
	case HasReasoning:
		return r.Reasoning, true
	case HasCacheWrite1h:
		return r.CacheWrite1h, true
	case HasAudioInput:
		return r.AudioInput, true
	case HasAudioOutput:
		return r.AudioOutput, true
	case HasImageInput:
		return r.ImageInput, true
	}
	return 0, false
}

// Tier is a set of rates that applies when a call's prompt is above a size threshold (LiteLLM's
// `..._above_200k_tokens` columns).
type Tier struct {
	// AboveTokens is the threshold: the tier applies when the prompt has more tokens than this.
	AboveTokens int64
	// Rates are the tier's standard-service rates.
	Rates Rates
	// Service holds the tier's rates per service tier (`..._above_200k_tokens_priority`), indexed by
	// ServiceTier; the TierStandard slot is unused.
	Service [numServiceTiers]Rates
}

const numServiceTiers = int(TierPriority) + 1

// Entry is the price of one model in the table. Entries returned by a Table are shared and must not
// be modified.
type Entry struct {
	// Model is the table key (the model name as the price file spells it).
	Model string
	// Provider is the LiteLLM provider of the entry (`litellm_provider`), or the YAML `provider`.
	Provider string
	// Mode is the LiteLLM mode ("chat", "embedding", ...), when the file gives one.
	Mode string
	// Source is the label of the layer the entry came from ("litellm-2026-07-18", a file name, or the
	// YAML `source`); the processor shows it in `agentcost.price.source`.
	Source string
	// Fallback marks a per-provider fallback price used for a model the table does not know.
	Fallback bool
	// Standard are the standard-service rates for prompts up to the first tier's threshold.
	Standard Rates
	// Service holds the rates of the batch, flex and priority columns, indexed by ServiceTier; the
	// TierStandard slot is unused.
	Service [numServiceTiers]Rates
	// Tiers are the prompt-size tiers, ascending by AboveTokens.
	Tiers []Tier
	// Units are the entry's per-request and per-unit prices (web search, images).
	Units UnitPrices
}

// UnitPrices are an entry's prices per request or per unit rather than per token, each in
// femto-dollars per unit (a money.Rate whose unit is one query or one image).
type UnitPrices struct {
	// SearchQuery is the price of one web-search query by search context size (LiteLLM
	// `search_context_cost_per_query`), indexed by SearchContextSize.
	SearchQuery [numSearchSizes]money.Rate
	// OutputImage is the price of one generated image (`output_cost_per_image`).
	OutputImage money.Rate
	// InputImage is the price of one input image (`input_cost_per_image`).
	InputImage money.Rate
	// InputSecond and OutputSecond are the prices of one second of input and output audio or video
	// (`input_cost_per_second`, `output_cost_per_second`: transcription, speech, video models).
	InputSecond  money.Rate
	OutputSecond money.Rate
	// InputPixel and OutputPixel are the prices of one pixel (`input_cost_per_pixel`,
	// `output_cost_per_pixel`). LiteLLM prices image generation (dall-e) by input_cost_per_pixel
	// times the generated image's width × height.
	InputPixel  money.Rate
	OutputPixel money.Rate
	// InputCharacter and OutputCharacter are the prices of one character (`input_cost_per_character`,
	// `output_cost_per_character`: text-to-speech, some Vertex models).
	InputCharacter  money.Rate
	OutputCharacter money.Rate
	// Set records which prices are given.
	Set UnitSet
}

// Has reports whether every price in s is given.
func (p UnitPrices) Has(s UnitSet) bool { return p.Set&s == s }

// set stores r as the price of the unit u (one bit).
func (p *UnitPrices) set(u UnitSet, r money.Rate) {
	switch u {
	case HasSearchQuery:
		for i := range p.SearchQuery {
			p.SearchQuery[i] = r
		}
	case HasOutputImage:
		p.OutputImage = r
	case HasInputImage:
		p.InputImage = r
	case HasInputSeconds:
		p.InputSecond = r
	case HasOutputSeconds:
		p.OutputSecond = r
	case HasInputPixels:
		p.InputPixel = r
	case HasOutputPixels:
		p.OutputPixel = r
	case HasInputCharacters:
		p.InputCharacter = r
	case HasOutputCharacters:
		p.OutputCharacter = r
	}
	p.Set |= u
}

// MediaUnits are the per-second, per-pixel and per-character units: an entry priced only by them (no
// token prices) is loaded, and a span's tokens are then reported unpriced (UnitTokens).
const MediaUnits = HasInputSeconds | HasOutputSeconds | HasInputPixels | HasOutputPixels | HasInputCharacters |
	HasOutputCharacters

// UnitSet records which of the prices in a UnitPrices value are given; Cost.Unpriced uses it for
// the units a span reports that its entry does not price.
type UnitSet uint16

// The per-unit prices.
const (
	HasSearchQuery UnitSet = 1 << iota
	HasOutputImage
	HasInputImage
	HasInputSeconds
	HasOutputSeconds
	HasInputPixels
	HasOutputPixels
	HasInputCharacters
	HasOutputCharacters
	// UnitTokens is never a price: in Cost.Unpriced it marks token counts reported against an
	// entry priced only per second, pixel or character (whisper-1, tts-1).
	UnitTokens
)

// unitNames name the units of a UnitSet, in bit order (agentcost.price.unpriced_units).
var unitNames = [...]string{"web_search", "output_image", "input_image", "input_seconds", "output_seconds",
	"input_pixels", "output_pixels", "input_characters", "output_characters", "tokens"}

// String names the units of s, comma-separated ("web_search,output_image").
func (s UnitSet) String() string {
	var parts []string
	for i, name := range unitNames {
		if s&(1<<i) != 0 {
			parts = append(parts, name)
		}
	}
	return strings.Join(parts, ",")
}

// Cost is the cost of one call. The parts are each rounded to nano-dollars for display; Total is the
// exact sum of the unrounded parts, rounded once, so it may differ from the sum of the parts by a
// few nano-dollars.
type Cost struct {
	Input      money.Nanos
	Output     money.Nanos
	CacheRead  money.Nanos
	CacheWrite money.Nanos
	// Units is the per-request and per-unit part (web-search queries, images).
	Units money.Nanos
	Total money.Nanos
	// Unpriced are the units the usage reports that the entry has no price for (they add nothing
	// to Total; the processor marks the span so the gap is never a silent $0).
	Unpriced UnitSet
}

// Effective returns the rates that apply to a call with promptTokens prompt tokens (cached tokens
// included) on the given service tier, with every rate given. Each rate is taken from the first
// column that has it:
//
//  1. the highest prompt-size tier exceeded, its service-tier column;
//  2. that tier's standard column;
//  3. the entry's service-tier column;
//  4. the entry's standard column.
//
// A cache-read or cache-write rate found in none of them is the effective input rate; a reasoning
// rate found in none of them is the effective output rate (reasoning is then priced as output).
// This is LiteLLM's precedence, so a tiered standard rate wins over a service-tier base rate when
// the file has no combined column.
func (e *Entry) Effective(promptTokens int64, tier ServiceTier) Rates {
	var cols [4]*Rates
	n := 0
	svc := int(tier)
	if svc <= 0 || svc >= numServiceTiers {
		svc = 0
	}
	for i := len(e.Tiers) - 1; i >= 0; i-- {
		if promptTokens > e.Tiers[i].AboveTokens {
			t := &e.Tiers[i]
			if svc != 0 {
				cols[n] = &t.Service[svc]
				n++
			}
			cols[n] = &t.Rates
			n++
			break
		}
	}
	if svc != 0 {
		cols[n] = &e.Service[svc]
		n++
	}
	cols[n] = &e.Standard
	n++

	pick := func(s RateSet) (money.Rate, bool) {
		for _, c := range cols[:n] {
			if v, ok := c.get(s); ok {
				return v, true
			}
		}
		return 0, false
	}
	var r Rates
	r.Input, _ = pick(HasInput)
	r.Output, _ = pick(HasOutput)
	var ok bool
	if r.CacheRead, ok = pick(HasCacheRead); !ok {
		r.CacheRead = r.Input
	}
	if r.CacheWrite, ok = pick(HasCacheWrite); !ok {
		r.CacheWrite = r.Input
	}
	if r.Reasoning, ok = pick(HasReasoning); !ok {
		r.Reasoning = r.Output
	}
	if r.CacheWrite1h, ok = pick(HasCacheWrite1h); !ok {
		r.CacheWrite1h = r.CacheWrite
	}
	if r.AudioInput, ok = pick(HasAudioInput); !ok {
		r.AudioInput = r.Input
	}
	if r.AudioOutput, ok = pick(HasAudioOutput); !ok {
		r.AudioOutput = r.Output
	}
	if r.ImageInput, ok = pick(HasImageInput); !ok {
		r.ImageInput = r.Input
	}
	r.Set = HasInput | HasOutput | HasCacheRead | HasCacheWrite | HasReasoning | HasCacheWrite1h |
		HasAudioInput | HasAudioOutput | HasImageInput
	return r
}

// Cost prices one call's usage. Input tokens include the cached tokens (unless
// u.InputExcludesCache): the uncached part is priced at the input rate, the cache-read and
// cache-write parts at theirs (the 1-hour part of the cache writes at the 1-hour rate). Audio and
// image input tokens come out of the uncached part at their rates (a modality count above the
// uncached input was cached, priced at the cache rates). Reasoning tokens are part of the output
// tokens and priced once, at the reasoning rate when the entry has one; audio output tokens come
// out of the rest of the output at the audio rate. Web-search queries, images, seconds, pixels and
// characters are priced per unit (Cost.Units; seconds come as milliseconds); a unit the entry has
// no price for adds nothing and is reported in Cost.Unpriced, as are tokens against an entry
// without token prices. Prompt-size tiers apply when the whole prompt (cached tokens included) is
// above their threshold; service-tier columns apply when u.Tier names one the entry has.
//
// A negative count or one above MaxTokensPerPart (MaxMillisPerPart for a duration) is
// ErrMalformedUsage; cached tokens above the input tokens, reasoning or audio tokens above the
// output tokens, audio and image tokens above the prompt, or 1-hour cache writes above the cache
// writes is ErrInconsistentUsage. No part is
// ever negative. Cost does not allocate.
func (e *Entry) Cost(u Usage) (Cost, error) {
	if !validCount(u.InputTokens) || !validCount(u.OutputTokens) || !validCount(u.CacheReadTokens) ||
		!validCount(u.CacheWriteTokens) || !validCount(u.ReasoningTokens) || !validCount(u.AudioInputTokens) ||
		!validCount(u.ImageInputTokens) || !validCount(u.AudioOutputTokens) || !validCount(u.CacheWrite1hTokens) ||
		!validCount(u.WebSearchQueries) || !validCount(u.OutputImages) || !validCount(u.InputImages) ||
		!validMillis(u.InputMillis) || !validMillis(u.OutputMillis) || !validCount(u.InputPixels) ||
		!validCount(u.OutputPixels) || !validCount(u.InputCharacters) || !validCount(u.OutputCharacters) {
		return Cost{}, ErrMalformedUsage
	}
	uncached, prompt := u.InputTokens, u.InputTokens
	if u.InputExcludesCache {
		prompt += u.CacheReadTokens + u.CacheWriteTokens
	} else {
		uncached -= u.CacheReadTokens + u.CacheWriteTokens
		if uncached < 0 {
			return Cost{}, ErrInconsistentUsage
		}
	}
	if u.ReasoningTokens > u.OutputTokens || u.CacheWrite1hTokens > u.CacheWriteTokens ||
		u.AudioInputTokens+u.ImageInputTokens > prompt || u.AudioOutputTokens > u.OutputTokens {
		return Cost{}, ErrInconsistentUsage
	}
	r := e.Effective(prompt, u.Tier)

	// The modality parts come out of the uncached input (a count above it was served from the
	// cache, priced at the cache rates), and out of the output outside the reasoning tokens.
	audioIn := min(u.AudioInputTokens, uncached)
	imageIn := min(u.ImageInputTokens, uncached-audioIn)
	textIn := uncached - audioIn - imageIn
	outside := u.OutputTokens - u.ReasoningTokens
	audioOut := min(u.AudioOutputTokens, outside)
	textOut := outside - audioOut
	write5m := u.CacheWriteTokens - u.CacheWrite1hTokens

	var units money.Acc
	var unpriced UnitSet
	unit := func(n int64, has UnitSet, rate money.Rate) {
		if n == 0 {
			return
		}
		if e.Units.Set&has == 0 {
			unpriced |= has
			return
		}
		units.Add(n, rate)
	}
	unit(u.WebSearchQueries, HasSearchQuery, e.Units.SearchQuery[min(u.SearchContext, numSearchSizes-1)])
	unit(u.OutputImages, HasOutputImage, e.Units.OutputImage)
	unit(u.InputImages, HasInputImage, e.Units.InputImage)
	unit(u.InputMillis, HasInputSeconds, 0)
	unit(u.OutputMillis, HasOutputSeconds, 0)
	addSeconds(&units, u.InputMillis, unitRate(e, HasInputSeconds, e.Units.InputSecond))
	addSeconds(&units, u.OutputMillis, unitRate(e, HasOutputSeconds, e.Units.OutputSecond))
	unit(u.InputPixels, HasInputPixels, e.Units.InputPixel)
	unit(u.OutputPixels, HasOutputPixels, e.Units.OutputPixel)
	unit(u.InputCharacters, HasInputCharacters, e.Units.InputCharacter)
	unit(u.OutputCharacters, HasOutputCharacters, e.Units.OutputCharacter)
	if !e.HasTokenPrices() && u.InputTokens+u.OutputTokens+u.CacheReadTokens+u.CacheWriteTokens > 0 {
		unpriced |= UnitTokens
	}

	var total money.Acc
	total.Add(textIn, r.Input)
	total.Add(audioIn, r.AudioInput)
	total.Add(imageIn, r.ImageInput)
	total.Add(textOut, r.Output)
	total.Add(audioOut, r.AudioOutput)
	total.Add(u.ReasoningTokens, r.Reasoning)
	total.Add(u.CacheReadTokens, r.CacheRead)
	total.Add(write5m, r.CacheWrite)
	total.Add(u.CacheWrite1hTokens, r.CacheWrite1h)
	total.Add(u.WebSearchQueries, searchRate(e, u))
	total.Add(u.OutputImages, unitRate(e, HasOutputImage, e.Units.OutputImage))
	total.Add(u.InputImages, unitRate(e, HasInputImage, e.Units.InputImage))
	addSeconds(&total, u.InputMillis, unitRate(e, HasInputSeconds, e.Units.InputSecond))
	addSeconds(&total, u.OutputMillis, unitRate(e, HasOutputSeconds, e.Units.OutputSecond))
	total.Add(u.InputPixels, unitRate(e, HasInputPixels, e.Units.InputPixel))
	total.Add(u.OutputPixels, unitRate(e, HasOutputPixels, e.Units.OutputPixel))
	total.Add(u.InputCharacters, unitRate(e, HasInputCharacters, e.Units.InputCharacter))
	total.Add(u.OutputCharacters, unitRate(e, HasOutputCharacters, e.Units.OutputCharacter))
	n, ok := total.Nanos()
	if !ok || n > money.MaxNanos {
		return Cost{}, ErrCostOverflow
	}
	un, _ := units.Nanos()
	// Every part is at most the total, so it fits once the total does.
	c := Cost{
		Input:      partNanos(textIn, r.Input, audioIn, r.AudioInput, imageIn, r.ImageInput),
		Output:     partNanos(textOut, r.Output, u.ReasoningTokens, r.Reasoning, audioOut, r.AudioOutput),
		CacheRead:  partNanos(u.CacheReadTokens, r.CacheRead, 0, 0, 0, 0),
		CacheWrite: partNanos(write5m, r.CacheWrite, u.CacheWrite1hTokens, r.CacheWrite1h, 0, 0),
		Units:      un,
		Total:      n,
		Unpriced:   unpriced,
	}
	return c, nil
}

// HasTokenPrices reports whether the entry prices tokens (a standard input and output rate). An
// entry priced only per second, pixel or character (whisper-1, tts-1, dall-e by size) does not:
// the tokens a span reports against it are marked unpriced (UnitTokens), never priced at $0.
func (e *Entry) HasTokenPrices() bool { return e.Standard.Has(HasInput | HasOutput) }

// PricesAny reports whether the entry prices any part of u: it has token prices, or u counts a
// unit it prices. A span with only tokens against an entry priced only per second, pixel or
// character is unpriced (agentcost.price.unknown), not $0.
func (e *Entry) PricesAny(u Usage) bool {
	return e.HasTokenPrices() || u.Units()&e.Units.Set != 0
}

// addSeconds adds ms milliseconds at rate (femto-dollars per second) to acc: the whole seconds
// exactly, the remaining fraction of a second rounded half-up to the femto-dollar (at most half a
// femto-dollar off per count, far below the nano-dollar the total is rounded to).
func addSeconds(acc *money.Acc, ms int64, rate money.Rate) {
	if ms <= 0 || rate <= 0 {
		return
	}
	acc.Add(ms/1000, rate)
	if rem := ms % 1000; rem != 0 {
		// rem×rate/1000 without overflow: rate = q×1000 + r, so it is rem×q + rem×r/1000.
		q, r := int64(rate)/1000, int64(rate)%1000
		acc.Add(1, money.Rate(rem*q+(rem*r+500)/1000))
	}
}

// MaxMillisPerPart is the longest duration in one usage part: MaxTokensPerPart seconds.
const MaxMillisPerPart = MaxTokensPerPart * 1000

func validMillis(n int64) bool { return n >= 0 && n <= MaxMillisPerPart }

// searchRate is the entry's price of one query of u's search context size (0 when unpriced).
func searchRate(e *Entry, u Usage) money.Rate {
	return unitRate(e, HasSearchQuery, e.Units.SearchQuery[min(u.SearchContext, numSearchSizes-1)])
}

// unitRate is rate when the entry gives the unit price has, else 0.
func unitRate(e *Entry, has UnitSet, rate money.Rate) money.Rate {
	if e.Units.Set&has == 0 {
		return 0
	}
	return rate
}

// partNanos rounds one displayed part, a×ra + b×rb + c×rc, to nano-dollars.
func partNanos(a int64, ra money.Rate, b int64, rb money.Rate, c int64, rc money.Rate) money.Nanos {
	if (a == 0 || ra == 0) && (b == 0 || rb == 0) && (c == 0 || rc == 0) {
		return 0
	}
	var acc money.Acc
	acc.Add(a, ra)
	acc.Add(b, rb)
	acc.Add(c, rc)
	n, _ := acc.Nanos()
	return n
}

func validCount(n int64) bool { return n >= 0 && n <= MaxTokensPerPart }

// ToolPrice is the price of one tool or MCP call (the YAML price file's `tools`): a flat price per
// call, a price per unit counted by a span attribute, or both. Prices are femto-dollars per call
// and per unit.
type ToolPrice struct {
	// Name is the tool name as execute_tool spans give it (gen_ai.tool.name).
	Name string
	// PerCall is the price of one call.
	PerCall money.Rate
	// PerUnit is the price of one unit, counted by the span attribute UnitAttribute.
	PerUnit money.Rate
	// UnitAttribute is the span attribute whose value is the number of units (set with PerUnit).
	UnitAttribute string
	// Source labels the price file the price came from.
	Source string
}

// Cost prices one call of units units (ignored without a per-unit price): PerCall + PerUnit×units,
// rounded once. A negative or absurd unit count is ErrMalformedUsage.
func (tp *ToolPrice) Cost(units int64) (money.Nanos, error) {
	if tp.PerUnit == 0 || tp.UnitAttribute == "" {
		units = 0
	}
	if !validCount(units) {
		return 0, ErrMalformedUsage
	}
	var acc money.Acc
	acc.Add(1, tp.PerCall)
	acc.Add(units, tp.PerUnit)
	n, ok := acc.Nanos()
	if !ok || n > money.MaxNanos {
		return 0, ErrCostOverflow
	}
	return n, nil
}
