package pricing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/agentcost/agentcost/internal/money"
)

// priceBases are the LiteLLM per-token price columns agentcost prices. Each may carry a prompt-size
// suffix (`_above_200k_tokens`) and a service-tier suffix (`_batches`, `_flex`, `_priority`), in
// either order.
var priceBases = []struct {
	name string
	rate RateSet
}{
	{"input_cost_per_token", HasInput},
	{"output_cost_per_token", HasOutput},
	{"cache_read_input_token_cost", HasCacheRead},
	// The 1-hour cache write before the cache write its name starts with.
	{"cache_creation_input_token_cost_above_1hr", HasCacheWrite1h},
	{"cache_creation_input_token_cost", HasCacheWrite},
	{"output_cost_per_reasoning_token", HasReasoning},
	{"input_cost_per_audio_token", HasAudioInput},
	{"output_cost_per_audio_token", HasAudioOutput},
	{"input_cost_per_image_token", HasImageInput},
}

// The LiteLLM per-unit price fields agentcost prices (Entry.Units), and tiered_pricing.
const (
	searchQueryField = "search_context_cost_per_query"
	outputImageField = "output_cost_per_image"
	inputImageField  = "input_cost_per_image"
	tieredField      = "tiered_pricing"
)

// mediaFields are the LiteLLM per-second, per-pixel and per-character price fields (Entry.Units):
// an entry priced only by them is loaded. The per-second prices of video and of audio inside a
// multimodal prompt (`input_cost_per_video_per_second`, `input_cost_per_audio_per_second`) and their
// prompt-size tiers are not among them: those entries stay skipped.
var mediaFields = map[string]UnitSet{
	"input_cost_per_second":     HasInputSeconds,
	"output_cost_per_second":    HasOutputSeconds,
	"input_cost_per_pixel":      HasInputPixels,
	"output_cost_per_pixel":     HasOutputPixels,
	"input_cost_per_character":  HasInputCharacters,
	"output_cost_per_character": HasOutputCharacters,
}

// searchSizeFields are the keys of search_context_cost_per_query, by SearchContextSize.
var searchSizeFields = [numSearchSizes]string{
	SearchContextMedium: "search_context_size_medium",
	SearchContextLow:    "search_context_size_low",
	SearchContextHigh:   "search_context_size_high",
}

// cacheHitField is DeepSeek's name for the cache-read price, used when cache_read_input_token_cost
// is absent.
const cacheHitField = "input_cost_per_token_cache_hit"

// priceField is a parsed LiteLLM price column name.
type priceField struct {
	rate  RateSet
	above int64 // 0: no prompt-size tier
	tier  ServiceTier
}

// parsePriceField parses a LiteLLM column name such as
// "input_cost_per_token_above_200k_tokens_priority". ok is false for columns agentcost does not
// price (audio, images, `_above_1hr` cache writes, ...).
func parsePriceField(name string) (f priceField, ok bool) {
	for _, b := range priceBases {
		rest, found := strings.CutPrefix(name, b.name)
		if !found {
			continue
		}
		f.rate = b.rate
		for rest != "" {
			switch {
			case f.tier == TierStandard && strings.HasPrefix(rest, "_batches"):
				f.tier, rest = TierBatch, rest[len("_batches"):]
			case f.tier == TierStandard && strings.HasPrefix(rest, "_flex"):
				f.tier, rest = TierFlex, rest[len("_flex"):]
			case f.tier == TierStandard && strings.HasPrefix(rest, "_priority"):
				f.tier, rest = TierPriority, rest[len("_priority"):]
			case f.above == 0 && strings.HasPrefix(rest, "_above_"):
				n, tail, valid := parseThreshold(rest[len("_above_"):])
				if !valid {
					return priceField{}, false
				}
				f.above, rest = n, tail
			default:
				return priceField{}, false
			}
		}
		return f, true
	}
	return priceField{}, false
}

// parseThreshold parses "200k_tokens..." or "128000_tokens..." and returns the token count and
// what follows "_tokens".
func parseThreshold(s string) (n int64, rest string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 9 {
		return 0, "", false
	}
	n, _ = strconv.ParseInt(s[:i], 10, 64)
	s = s[i:]
	if strings.HasPrefix(s, "k") {
		n *= 1000
		s = s[1:]
	} else if strings.HasPrefix(s, "m") {
		n *= 1_000_000
		s = s[1:]
	}
	rest, found := strings.CutPrefix(s, "_tokens")
	if !found || n <= 0 {
		return 0, "", false
	}
	return n, rest, true
}

// ParseLiteLLM parses a price map in LiteLLM's `model_prices_and_context_window.json` format.
// file names the input in errors; source labels the entries. Prices are parsed from their decimal
// text, never through float arithmetic. Entries without both an input and an output token price
// are skipped and counted (per-image-only models, `sample_spec`, ...), unless they have a
// per-second, per-pixel or per-character price and no token price at all: those load, priced by
// their units only (Entry.HasTokenPrices is false). Any malformed
// price, duplicate key or syntax error rejects the whole file with a *FileError naming the line.
func ParseLiteLLM(data []byte, file, source string) (*Layer, error) {
	p := &jsonParser{data: data, file: file, dec: json.NewDecoder(bytes.NewReader(data))}
	p.dec.UseNumber()
	layer := &Layer{Source: source, File: file}
	if err := p.parse(layer); err != nil {
		return nil, err
	}
	return layer, nil
}

type jsonParser struct {
	data []byte
	file string
	dec  *json.Decoder
	// lineOff and line memoise lineAt: offsets mostly increase, so lines are counted once.
	lineOff int64
	line    int
}

// lineAt returns the 1-based line of byte offset off.
func (p *jsonParser) lineAt(off int64) int {
	off = min(max(off, 0), int64(len(p.data)))
	if off < p.lineOff {
		p.lineOff, p.line = 0, 0
	}
	p.line += bytes.Count(p.data[p.lineOff:off], []byte("\n"))
	p.lineOff = off
	return p.line + 1
}

func (p *jsonParser) errorf(model, field string, format string, args ...any) error {
	return &FileError{File: p.file, Line: p.lineAt(p.dec.InputOffset()), Model: model, Field: field,
		Err: fmt.Errorf(format, args...)}
}

// token reads the next token, turning decoder errors into a *FileError at their offset.
func (p *jsonParser) token(model, field string) (json.Token, error) {
	tok, err := p.dec.Token()
	if err == nil {
		return tok, nil
	}
	off := p.dec.InputOffset()
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		// The decoder's SyntaxError offset can lag behind the bad byte (it is counted from the start
		// of the value being scanned); the decoder's position is past it.
		off = max(syn.Offset, off)
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
		off = int64(len(p.data))
	}
	return nil, &FileError{File: p.file, Line: p.lineAt(off), Model: model, Field: field, Err: err}
}

func (p *jsonParser) parse(layer *Layer) error {
	tok, err := p.token("", "")
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return p.errorf("", "", "want a JSON object of models")
	}
	seen := make(map[string]int)
	for p.dec.More() {
		tok, err := p.token("", "")
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		line := p.lineAt(p.dec.InputOffset())
		model := strings.TrimSpace(key)
		if model == "" {
			return &FileError{File: p.file, Line: line, Err: errors.New("empty model name")}
		}
		if prev, dup := seen[model]; dup {
			return &FileError{File: p.file, Line: line, Model: model,
				Err: fmt.Errorf("duplicate model (first at line %d)", prev)}
		}
		seen[model] = line
		if model == "sample_spec" { // LiteLLM's documentation of the format, not a model
			if err := p.skipValue(model, ""); err != nil {
				return err
			}
			layer.skip(Skip{Model: model, Line: line, Reason: SkipDocumentation})
			continue
		}
		e, reason, err := p.parseEntry(model)
		if err != nil {
			return err
		}
		if reason != "" {
			layer.skip(Skip{Model: model, Line: line, Reason: reason, Provider: e.Provider})
			continue
		}
		e.Source = layer.Source
		layer.Entries = append(layer.Entries, e)
	}
	if _, err := p.token("", ""); err != nil { // the closing '}'
		return err
	}
	if _, err := p.dec.Token(); !errors.Is(err, io.EOF) {
		return p.errorf("", "", "unexpected data after the top-level object")
	}
	return nil
}

// parseEntry parses one model object. skip is the reason (a Skip* constant) when the entry lacks a
// standard input or output token price, "" when it is priced.
func (p *jsonParser) parseEntry(model string) (e *Entry, skip string, err error) {
	tok, err := p.token(model, "")
	if err != nil {
		return nil, "", err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, "", p.errorf(model, "", "want an object of model fields")
	}
	e = &Entry{Model: model}
	tiers := map[int64]*Tier{}
	var cacheHit money.Rate
	hasCacheHit := false
	seen := make(map[string]bool)
	var otherCosts []string // non-token price columns, for the skip reason
	allowHigh := false
	var high *FileError // the first price above MaxRate
	var tiered []tokenTier
	for p.dec.More() {
		tok, err := p.token(model, "")
		if err != nil {
			return nil, "", err
		}
		field, _ := tok.(string)
		if seen[field] {
			return nil, "", p.errorf(model, field, "duplicate field")
		}
		seen[field] = true
		pf, isPrice := parsePriceField(field)
		switch {
		case isPrice || field == cacheHitField:
			rate, present, err := p.rate(model, field)
			if err != nil {
				return nil, "", err
			}
			if !present {
				continue
			}
			if rate > MaxRate && high == nil {
				high = &FileError{File: p.file, Line: p.lineAt(p.dec.InputOffset()), Model: model, Field: field,
					Err: highPriceError(rate, `"`+AllowHighPriceField+`": true`)}
			}
			if isPrice && pf.rate > HasReasoning {
				// Audio, image-token and 1-hour cache prices: they name the unit when the entry
				// has no token prices to load.
				otherCosts = append(otherCosts, field)
			}
			if !isPrice {
				cacheHit, hasCacheHit = rate, true
				continue
			}
			col := &e.Standard
			if pf.above > 0 {
				t := tiers[pf.above]
				if t == nil {
					t = &Tier{AboveTokens: pf.above}
					tiers[pf.above] = t
				}
				col = &t.Rates
				if pf.tier != TierStandard {
					col = &t.Service[pf.tier]
				}
			} else if pf.tier != TierStandard {
				col = &e.Service[pf.tier]
			}
			col.set(pf.rate, rate)
		case field == "litellm_provider" || field == "mode":
			s, err := p.str(model, field)
			if err != nil {
				return nil, "", err
			}
			if field == "mode" {
				e.Mode = s
			} else {
				e.Provider = s
			}
		case field == outputImageField || field == inputImageField:
			otherCosts = append(otherCosts, field)
			rate, present, err := p.rate(model, field)
			if err != nil || !present {
				if err != nil {
					return nil, "", err
				}
				continue
			}
			if field == outputImageField {
				e.Units.OutputImage = rate
				e.Units.Set |= HasOutputImage
			} else {
				e.Units.InputImage = rate
				e.Units.Set |= HasInputImage
			}
		case mediaFields[field] != 0:
			otherCosts = append(otherCosts, field)
			rate, present, err := p.rate(model, field)
			if err != nil {
				return nil, "", err
			}
			if !present {
				continue
			}
			if rate > MaxRate && high == nil {
				high = &FileError{File: p.file, Line: p.lineAt(p.dec.InputOffset()), Model: model, Field: field,
					Err: highPriceError(rate, `"`+AllowHighPriceField+`": true`)}
			}
			e.Units.set(mediaFields[field], rate)
		case field == searchQueryField:
			otherCosts = append(otherCosts, field)
			if err := p.searchPrices(model, &e.Units); err != nil {
				return nil, "", err
			}
		case field == tieredField:
			t, ok, err := p.tieredPricing(model)
			if err != nil {
				return nil, "", err
			}
			if !ok {
				otherCosts = append(otherCosts, field) // per-query tiers (search APIs): not tokens
				continue
			}
			tiered = t
			for _, tt := range t {
				if tt.high != nil && high == nil {
					high = tt.high
				}
			}
		case field == AllowHighPriceField:
			tok, err := p.token(model, field)
			if err != nil {
				return nil, "", err
			}
			b, ok := tok.(bool)
			if !ok {
				return nil, "", p.errorf(model, field, "want true or false")
			}
			allowHigh = b
		default:
			if strings.Contains(field, "cost") || field == "tiered_pricing" {
				otherCosts = append(otherCosts, field)
			}
			if err := p.skipValue(model, field); err != nil {
				return nil, "", err
			}
		}
	}
	if _, err := p.token(model, ""); err != nil { // the closing '}'
		return nil, "", err
	}
	if high != nil && !allowHigh {
		return nil, "", high
	}
	if hasCacheHit && !e.Standard.Has(HasCacheRead) {
		e.Standard.set(HasCacheRead, cacheHit)
	}
	if len(tiered) > 0 {
		applyTiered(e, tiers, tiered)
	}
	for _, t := range tiers {
		e.Tiers = append(e.Tiers, *t)
	}
	sort.Slice(e.Tiers, func(i, j int) bool { return e.Tiers[i].AboveTokens < e.Tiers[j].AboveTokens })
	if e.Mode == "embedding" && e.Standard.Has(HasInput) && !e.Standard.Has(HasOutput) {
		e.Standard.set(HasOutput, 0) // an embedding has no output tokens
	}
	if e.Units.Set&MediaUnits != 0 && !e.Standard.Has(HasInput) && !e.Standard.Has(HasOutput) {
		return e, "", nil // priced per second, pixel or character only (whisper-1, tts-1)
	}
	if !e.Standard.Has(HasInput | HasOutput) {
		tiered := false
		for _, f := range otherCosts {
			tiered = tiered || f == "tiered_pricing"
		}
		return e, skipReason(e.Standard.Has(HasInput), e.Standard.Has(HasOutput), tiered, otherCosts), nil
	}
	return e, "", nil
}

// rate reads a price value: a JSON number (or a numeric string, as LiteLLM tolerates) in dollars
// per token. A null is an absent price.
func (p *jsonParser) rate(model, field string) (money.Rate, bool, error) {
	tok, err := p.token(model, field)
	if err != nil {
		return 0, false, err
	}
	var text string
	switch v := tok.(type) {
	case json.Number:
		text = string(v)
	case string:
		text = v
	case nil:
		return 0, false, nil
	case json.Delim:
		return 0, false, p.errorf(model, field, "want a price in dollars per token, got %s", delimKind(v))
	default:
		return 0, false, p.errorf(model, field, "want a price in dollars per token, got %v", v)
	}
	r, err := money.RateFromPerToken(text)
	if err == nil {
		err = checkPrice(text, r)
	}
	if err != nil {
		return 0, false, p.errorf(model, field, "price %q: %w", text, err)
	}
	return r, true, nil
}

func (p *jsonParser) str(model, field string) (string, error) {
	tok, err := p.token(model, field)
	if err != nil {
		return "", err
	}
	switch v := tok.(type) {
	case string:
		return v, nil
	case nil:
		return "", nil
	case json.Delim:
		return "", p.errorf(model, field, "want a string, got %s", delimKind(v))
	default:
		return "", p.errorf(model, field, "want a string, got %v", v)
	}
}

func delimKind(d json.Delim) string {
	if d == '[' {
		return "an array"
	}
	return "an object"
}

// skipValue skips one JSON value of any shape.
func (p *jsonParser) skipValue(model, field string) error {
	tok, err := p.token(model, field)
	if err != nil {
		return err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if d != '{' && d != '[' {
		return p.errorf(model, field, "unexpected %q", rune(d))
	}
	depth := 1
	for depth > 0 {
		tok, err := p.token(model, field)
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
			default:
				depth--
			}
		}
	}
	return nil
}

// tokenTier is one element of a LiteLLM tiered_pricing list priced per token: the rates for a call
// whose prompt is above `above` tokens (the range's start).
type tokenTier struct {
	above int64
	rates Rates
	high  *FileError // the tier's first price above MaxRate
}

// tieredPricing reads a tiered_pricing list. ok is false when it is not a list of token-priced
// prompt ranges (search APIs price queries by `max_results_range`): the caller then skips it.
// Alibaba's tiers are all-or-nothing (LiteLLM's select_tier_for_input): the tier whose range
// holds the prompt (start < prompt <= end) prices every token of the call, a prompt above the last
// range takes the last tier — which is how Entry.Tiers apply, each tier from its range's start.
func (p *jsonParser) tieredPricing(model string) (tiers []tokenTier, ok bool, err error) {
	tok, err := p.token(model, tieredField)
	if err != nil {
		return nil, false, err
	}
	if d, isDelim := tok.(json.Delim); !isDelim || d != '[' {
		if tok == nil {
			return nil, false, nil
		}
		return nil, false, p.errorf(model, tieredField, "want a list of price tiers")
	}
	ok = true
	for p.dec.More() {
		tok, err := p.token(model, tieredField)
		if err != nil {
			return nil, false, err
		}
		if d, isDelim := tok.(json.Delim); !isDelim || d != '{' {
			return nil, false, p.errorf(model, tieredField, "want an object per tier")
		}
		var t tokenTier
		hasRange := false
		for p.dec.More() {
			tok, err := p.token(model, tieredField)
			if err != nil {
				return nil, false, err
			}
			key, _ := tok.(string)
			field := tieredField + "." + key
			pf, isPrice := parsePriceField(key)
			switch {
			case key == "range":
				lo, err := p.rangeStart(model, field)
				if err != nil {
					return nil, false, err
				}
				t.above, hasRange = lo, true
			case isPrice && pf.above == 0 && pf.tier == TierStandard:
				rate, present, err := p.rate(model, field)
				if err != nil {
					return nil, false, err
				}
				if !present {
					continue
				}
				if rate > MaxRate && t.high == nil {
					t.high = &FileError{File: p.file, Line: p.lineAt(p.dec.InputOffset()), Model: model, Field: field,
						Err: highPriceError(rate, `"`+AllowHighPriceField+`": true`)}
				}
				t.rates.set(pf.rate, rate)
			default:
				ok = false // max_results_range, input_cost_per_query, ...: not a token tier
				if err := p.skipValue(model, field); err != nil {
					return nil, false, err
				}
			}
		}
		if _, err := p.token(model, tieredField); err != nil { // the tier's closing '}'
			return nil, false, err
		}
		if !hasRange || !t.rates.Has(HasInput|HasOutput) {
			ok = false
		}
		tiers = append(tiers, t)
	}
	if _, err := p.token(model, tieredField); err != nil { // the closing ']'
		return nil, false, err
	}
	if !ok || len(tiers) == 0 {
		return nil, false, nil
	}
	sort.SliceStable(tiers, func(i, j int) bool { return tiers[i].above < tiers[j].above })
	for i := 1; i < len(tiers); i++ {
		if tiers[i].above == tiers[i-1].above {
			return nil, false, p.errorf(model, tieredField, "two tiers start at %d tokens", tiers[i].above)
		}
	}
	return tiers, true, nil
}

// rangeStart reads a tier's "range": [start, end] in tokens and returns start.
func (p *jsonParser) rangeStart(model, field string) (int64, error) {
	tok, err := p.token(model, field)
	if err != nil {
		return 0, err
	}
	if d, isDelim := tok.(json.Delim); !isDelim || d != '[' {
		return 0, p.errorf(model, field, "want [start, end] in tokens")
	}
	var bounds []int64
	for p.dec.More() {
		tok, err := p.token(model, field)
		if err != nil {
			return 0, err
		}
		num, isNum := tok.(json.Number)
		f, perr := strconv.ParseFloat(string(num), 64)
		if !isNum || perr != nil || f < 0 || f > 1e12 || f != float64(int64(f)) {
			return 0, p.errorf(model, field, "want a whole, non-negative token count, got %v", tok)
		}
		bounds = append(bounds, int64(f))
	}
	if _, err := p.token(model, field); err != nil { // the closing ']'
		return 0, err
	}
	if len(bounds) != 2 || bounds[1] < bounds[0] {
		return 0, p.errorf(model, field, "want [start, end] with start <= end")
	}
	return bounds[0], nil
}

// applyTiered makes a tiered_pricing list the entry's standard rates (the lowest range) and
// prompt-size tiers (the others). Within a tier an absent cache price is the tier's own input
// price and an absent reasoning price its own output price (LiteLLM's tier_rate fallbacks), never
// the lower tier's.
func applyTiered(e *Entry, tiers map[int64]*Tier, list []tokenTier) {
	for i, tt := range list {
		r := tt.rates
		if i == 0 {
			for _, b := range priceBases {
				if v, ok := r.get(b.rate); ok {
					e.Standard.set(b.rate, v)
				}
			}
			continue
		}
		for _, fill := range [...]struct{ rate, from RateSet }{
			{HasCacheRead, HasInput}, {HasCacheWrite, HasInput}, {HasReasoning, HasOutput},
		} {
			if !r.Has(fill.rate) {
				v, _ := r.get(fill.from)
				r.set(fill.rate, v)
			}
		}
		t := tiers[tt.above]
		if t == nil {
			t = &Tier{AboveTokens: tt.above}
			tiers[tt.above] = t
		}
		for _, b := range priceBases {
			if v, ok := r.get(b.rate); ok {
				t.Rates.set(b.rate, v)
			}
		}
	}
}

// searchPrices reads search_context_cost_per_query: an object of prices per query by context size
// (a bare number prices every size).
func (p *jsonParser) searchPrices(model string, u *UnitPrices) error {
	tok, err := p.token(model, searchQueryField)
	if err != nil {
		return err
	}
	price := func(field, text string) (money.Rate, error) {
		r, err := money.RateFromPerToken(text)
		if err == nil {
			err = checkPrice(text, r)
		}
		if err != nil {
			return 0, p.errorf(model, field, "price %q: %w", text, err)
		}
		return r, nil
	}
	switch v := tok.(type) {
	case nil:
		return nil
	case json.Number:
		r, err := price(searchQueryField, string(v))
		if err != nil {
			return err
		}
		for i := range u.SearchQuery {
			u.SearchQuery[i] = r
		}
		u.Set |= HasSearchQuery
		return nil
	case json.Delim:
		if v != '{' {
			return p.errorf(model, searchQueryField, "want an object of prices per context size")
		}
	default:
		return p.errorf(model, searchQueryField, "want an object of prices per context size, got %v", v)
	}
	var got [numSearchSizes]bool
	for p.dec.More() {
		tok, err := p.token(model, searchQueryField)
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		field := searchQueryField + "." + key
		size := -1
		for i, f := range searchSizeFields {
			if f == key {
				size = i
			}
		}
		if size < 0 {
			if err := p.skipValue(model, field); err != nil {
				return err
			}
			continue
		}
		tok, err = p.token(model, field)
		if err != nil {
			return err
		}
		num, isNum := tok.(json.Number)
		if tok == nil {
			continue
		}
		if !isNum {
			return p.errorf(model, field, "want a price in dollars per query, got %v", tok)
		}
		r, err := price(field, string(num))
		if err != nil {
			return err
		}
		u.SearchQuery[size], got[size] = r, true
	}
	if _, err := p.token(model, searchQueryField); err != nil { // the closing '}'
		return err
	}
	if !got[SearchContextMedium] {
		return nil // no default-size price: web search stays unpriced rather than guessed
	}
	for i := range got {
		if !got[i] {
			u.SearchQuery[i] = u.SearchQuery[SearchContextMedium]
		}
	}
	u.Set |= HasSearchQuery
	return nil
}
