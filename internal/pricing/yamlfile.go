package pricing

import (
	"cmp"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/yamldoc"
)

// The rate keys of the YAML format, dollars per million tokens, and the rate each sets.
var yamlRateKeys = map[string]RateSet{
	"input_per_million":       HasInput,
	"output_per_million":      HasOutput,
	"cache_read_per_million":  HasCacheRead,
	"cache_write_per_million": HasCacheWrite,
	"reasoning_per_million":   HasReasoning,
	// Parts of the above with a price of their own.
	"cache_write_1h_per_million": HasCacheWrite1h,
	"audio_input_per_million":    HasAudioInput,
	"audio_output_per_million":   HasAudioOutput,
	"image_input_per_million":    HasImageInput,
}

// The per-unit price keys of a YAML model, dollars per unit.
var yamlUnitKeys = map[string]UnitSet{
	"web_search_per_query_usd": HasSearchQuery,
	"output_image_usd":         HasOutputImage,
	"input_image_usd":          HasInputImage,
	"input_second_usd":         HasInputSeconds,
	"output_second_usd":        HasOutputSeconds,
	"input_pixel_usd":          HasInputPixels,
	"output_pixel_usd":         HasOutputPixels,
	"input_character_usd":      HasInputCharacters,
	"output_character_usd":     HasOutputCharacters,
}

// MaxToolPrice bounds a tool's per-call and per-unit price ($1,000): a price file is a
// configuration, and a typo of a few zeros must not book fortunes.
const MaxToolPrice money.Rate = 1_000 * 1_000_000_000_000_000

const abovePrefix = "above_"

var yamlServiceKeys = map[string]ServiceTier{
	"batch":    TierBatch,
	"flex":     TierFlex,
	"priority": TierPriority,
}

// ParseYAML parses a price file in agentcost's YAML format (see the package documentation). file
// names the input in errors and, through its base name, is the default source label. Unknown keys,
// malformed prices, duplicates and aliases that collide with a model reject the whole file with a
// *FileError naming the line.
func ParseYAML(data []byte, file string) (*Layer, error) {
	var errs yamldoc.Errors
	p := &yamlParser{file: file, d: yamldoc.NewDecoder(&errs, file)}
	root := p.d.Document(data, "a price file")
	if root == nil {
		e := errs.Errors[0]
		return nil, &FileError{File: file, Line: e.Line, Err: errors.New(e.Msg)}
	}
	layer := &Layer{Source: filepath.Base(file), File: file}
	p.parse(root, layer)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...) // one problem per line; errors.As finds the first
	}
	for _, e := range layer.Entries {
		e.Source = layer.Source
	}
	for _, e := range layer.Fallbacks {
		e.Source = layer.Source
	}
	for _, tp := range layer.Tools {
		tp.Source = layer.Source
	}
	return layer, nil
}

type yamlParser struct {
	file string
	d    *yamldoc.Decoder
	// errs are the problems found (*FileError), one per entry at most.
	errs []error
	// stopped is set once the end of the walk (yamldoc's node budget or depth) is reported.
	stopped bool
	// high is the current entry's first price above MaxRate.
	high *FileError
}

func (p *yamlParser) errorf(n *yaml.Node, model, field, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &FileError{File: p.file, Line: line, Model: model, Field: field, Err: fmt.Errorf(format, args...)}
}

// keep records an entry's problem, so that the walk goes on to the next entry.
func (p *yamlParser) keep(err error) error {
	if err == nil {
		return nil
	}
	var fe *FileError
	if !errors.As(err, &fe) {
		fe = &FileError{File: p.file, Err: err}
	}
	if len(p.errs) < yamldoc.MaxErrors {
		p.errs = append(p.errs, fe)
	}
	return nil
}

// each is mapping for a mapping of entries: a problem in one entry is kept and the walk goes on to
// the next, so that one load reports the problems of every entry.
func (p *yamlParser) each(n *yaml.Node, field string, fn func(key string, k, v *yaml.Node) error) error {
	return p.keep(p.mapping(n, "", field, func(key string, k, v *yaml.Node) error { return p.keep(fn(key, k, v)) }))
}

// mapping calls fn for each key and value of a mapping node (yamldoc.Decoder.Pairs: aliases within
// the document's node budget, no duplicate, merge or non-string keys), stopping at the first
// problem.
func (p *yamlParser) mapping(n *yaml.Node, model, field string, fn func(key string, k, v *yaml.Node) error) error {
	err := p.d.Pairs(n, field, fn, nil)
	if e := (*yamldoc.Error)(nil); errors.As(err, &e) {
		return &FileError{File: p.file, Line: e.Line, Model: model, Field: e.Field, Err: errors.New(e.Msg)}
	}
	if e := p.d.Stopped(); err == nil && e != nil && !p.stopped {
		p.stopped = true // reported once; the enclosing walks end without more
		return &FileError{File: p.file, Line: e.Line, Model: model, Field: field, Err: errors.New(e.Msg)}
	}
	return err
}

func (p *yamlParser) str(n *yaml.Node, model, field string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return "", p.errorf(n, model, field, "want a string")
	}
	s := strings.TrimSpace(n.Value)
	if s == "" {
		return "", p.errorf(n, model, field, "empty value")
	}
	return s, nil
}

func (p *yamlParser) parse(root *yaml.Node, layer *Layer) {
	names := map[string]int{} // model and alias names in this file, with their line
	claim := func(n *yaml.Node, name, field string) error {
		if prev, dup := names[name]; dup {
			return p.errorf(n, name, field, "name already used at line %d", prev)
		}
		names[name] = n.Line
		return nil
	}
	_ = p.each(root, "", func(key string, k, v *yaml.Node) error {
		switch key {
		case "source":
			s, err := p.str(v, "", key)
			layer.Source = cmp.Or(s, layer.Source)
			return err
		case "models":
			return p.each(v, key, func(name string, k, v *yaml.Node) error {
				name = strings.TrimSpace(name)
				if name == "" {
					return p.errorf(k, "", "models", "empty model name")
				}
				if err := claim(k, name, ""); err != nil {
					return err
				}
				e, aliases, err := p.entry(v, name, true)
				if err != nil {
					return err
				}
				layer.Entries = append(layer.Entries, e)
				for _, a := range aliases {
					if err := claim(a.node, a.name, "aliases"); err != nil {
						return err
					}
					layer.Aliases = append(layer.Aliases, Alias{Name: a.name, Target: name, Line: a.node.Line})
				}
				return nil
			})
		case "aliases":
			return p.each(v, key, func(name string, k, v *yaml.Node) error {
				name = strings.TrimSpace(name)
				if name == "" {
					return p.errorf(k, "", "aliases", "empty alias name")
				}
				target, err := p.str(v, name, "aliases")
				if err != nil {
					return err
				}
				if err := claim(k, name, "aliases"); err != nil {
					return err
				}
				layer.Aliases = append(layer.Aliases, Alias{Name: name, Target: target, Line: k.Line})
				return nil
			})
		case "fallback":
			return p.each(v, key, func(provider string, k, v *yaml.Node) error {
				provider = strings.TrimSpace(provider)
				if provider == "" {
					return p.errorf(k, "", "fallback", "empty provider name")
				}
				e, _, err := p.entry(v, provider, false)
				if err != nil {
					return err
				}
				e.Model = "*"
				e.Provider = provider
				e.Fallback = true
				layer.Fallbacks = append(layer.Fallbacks, e)
				return nil
			})
		case "tools":
			return p.each(v, key, func(name string, k, v *yaml.Node) error {
				name = strings.TrimSpace(name)
				if name == "" {
					return p.errorf(k, "", "tools", "empty tool name")
				}
				tp, err := p.tool(v, name)
				if err != nil {
					return err
				}
				layer.Tools = append(layer.Tools, tp)
				return nil
			})
		default:
			return p.errorf(k, "", key, "unknown key (want source, models, aliases, fallback or tools)")
		}
	})
}

type yamlAlias struct {
	name string
	node *yaml.Node
}

// entry parses a model (or, with isModel false, a provider fallback) mapping.
func (p *yamlParser) entry(n *yaml.Node, name string, isModel bool) (*Entry, []yamlAlias, error) {
	e := &Entry{Model: name}
	var aliases []yamlAlias
	var above [numServiceTiers]Rates // above-threshold rates per service tier (slot 0: standard)
	var aboveTokens int64
	var aboveNode *yaml.Node
	p.high = nil
	allowHigh := false
	err := p.mapping(n, name, "", func(key string, k, v *yaml.Node) error {
		if rate, ok := yamlRateKeys[key]; ok {
			return p.rate(v, name, key, &e.Standard, rate)
		}
		if rate, ok := yamlRateKeys[strings.TrimPrefix(key, abovePrefix)]; ok && strings.HasPrefix(key, abovePrefix) {
			aboveNode = k
			return p.rate(v, name, key, &above[TierStandard], rate)
		}
		if tier, ok := yamlServiceKeys[key]; ok {
			return p.serviceBlock(v, name, key, &e.Service[tier], &above[tier], &aboveNode)
		}
		if unit, ok := yamlUnitKeys[key]; ok && isModel {
			r, err := p.unitPrice(v, name, key)
			if err != nil {
				return err
			}
			e.Units.set(unit, r)
			return nil
		}
		switch {
		case key == "allow_high_price":
			if v.Kind != yaml.ScalarNode || (v.Value != "true" && v.Value != "false") {
				return p.errorf(v, name, key, "want true or false")
			}
			allowHigh = v.Value == "true"
			return nil
		case key == "above_tokens":
			if v.Kind != yaml.ScalarNode {
				return p.errorf(v, name, key, "want a token count")
			}
			t, err := strconv.ParseInt(strings.ReplaceAll(v.Value, "_", ""), 10, 64)
			if err != nil || t <= 0 || t > 1_000_000_000 {
				return p.errorf(v, name, key, "want a token count between 1 and 1,000,000,000, got %q", v.Value)
			}
			aboveTokens = t
			return nil
		case isModel && key == "provider":
			s, err := p.str(v, name, key)
			e.Provider = s
			return err
		case isModel && key == "mode":
			s, err := p.str(v, name, key)
			e.Mode = s
			return err
		case isModel && key == "aliases":
			if v.Kind != yaml.SequenceNode {
				return p.errorf(v, name, key, "want a list of names")
			}
			for _, item := range v.Content {
				item = p.d.Node(item)
				s, err := p.str(item, name, key)
				if err != nil {
					return err
				}
				if s == name {
					return p.errorf(item, name, key, "alias equals the model name")
				}
				aliases = append(aliases, yamlAlias{name: s, node: item})
			}
			return nil
		}
		return p.errorf(k, name, key, "unknown key")
	})
	if err != nil {
		return nil, nil, err
	}
	if p.high != nil && !allowHigh {
		return nil, nil, p.high
	}
	hasAbove := false
	for _, r := range above {
		hasAbove = hasAbove || !r.IsZero()
	}
	switch {
	case hasAbove && aboveTokens == 0:
		return nil, nil, p.errorf(aboveNode, name, "above_tokens", "above_* prices need above_tokens")
	case !hasAbove && aboveTokens > 0:
		return nil, nil, p.errorf(n, name, "above_tokens", "above_tokens without any above_* price")
	case hasAbove:
		t := Tier{AboveTokens: aboveTokens, Rates: above[TierStandard]}
		copy(t.Service[1:], above[1:])
		e.Tiers = []Tier{t}
	}
	if e.Units.Set&MediaUnits != 0 && !e.Standard.Has(HasInput) && !e.Standard.Has(HasOutput) {
		return e, aliases, nil // priced per second, pixel or character only (a speech or image model)
	}
	if !e.Standard.Has(HasInput) {
		return nil, nil, p.errorf(n, name, "input_per_million", "missing")
	}
	if !e.Standard.Has(HasOutput) {
		return nil, nil, p.errorf(n, name, "output_per_million", "missing")
	}
	return e, aliases, nil
}

// serviceBlock parses a `batch:`, `flex:` or `priority:` block of rates and above_* rates.
func (p *yamlParser) serviceBlock(n *yaml.Node, model, block string, rates, above *Rates, aboveNode **yaml.Node) error {
	err := p.mapping(n, model, block, func(key string, k, v *yaml.Node) error {
		if rate, ok := yamlRateKeys[key]; ok {
			return p.rate(v, model, block+"."+key, rates, rate)
		}
		if rate, ok := yamlRateKeys[strings.TrimPrefix(key, abovePrefix)]; ok && strings.HasPrefix(key, abovePrefix) {
			*aboveNode = k
			return p.rate(v, model, block+"."+key, above, rate)
		}
		return p.errorf(k, model, block+"."+key, "unknown key")
	})
	if err != nil {
		return err
	}
	if rates.IsZero() && above.IsZero() {
		return p.errorf(n, model, block, "no prices")
	}
	return nil
}

// rate parses a price in dollars per million tokens, exactly from its decimal text.
func (p *yamlParser) rate(n *yaml.Node, model, field string, into *Rates, which RateSet) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return p.errorf(n, model, field, "want a price in dollars per million tokens")
	}
	text := strings.ReplaceAll(n.Value, "_", "")
	r, err := money.RateFromPerMillion(text)
	if err == nil {
		err = checkPrice(text, r)
	}
	if err != nil {
		return p.errorf(n, model, field, "price %q: %w", n.Value, err)
	}
	if r > MaxRate && p.high == nil {
		p.high = &FileError{File: p.file, Line: n.Line, Model: model, Field: field,
			Err: highPriceError(r, "allow_high_price: true")}
	}
	into.set(which, r)
	return nil
}

// unitPrice parses a price in dollars per unit (a call, a query, an image), exactly from its
// decimal text, bounded by MaxToolPrice.
func (p *yamlParser) unitPrice(n *yaml.Node, model, field string) (money.Rate, error) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return 0, p.errorf(n, model, field, "want a price in dollars")
	}
	text := strings.ReplaceAll(n.Value, "_", "")
	r, err := money.RateFromPerToken(text) // femto-dollars per unit
	if err == nil {
		err = checkPrice(text, r)
	}
	if err == nil && r > MaxToolPrice {
		err = fmt.Errorf("is above the sanity bound of $%s", money.Nanos(MaxToolPrice/money.FemtosPerNano))
	}
	if err != nil {
		return 0, p.errorf(n, model, field, "price %q: %w", n.Value, err)
	}
	return r, nil
}

// tool parses one entry of `tools`: per_call_usd, and/or per_unit_usd with unit_attribute.
func (p *yamlParser) tool(n *yaml.Node, name string) (*ToolPrice, error) {
	tp := &ToolPrice{Name: name}
	field := "tools." + name
	var has struct{ call, unit bool }
	err := p.mapping(n, "", field, func(key string, k, v *yaml.Node) error {
		var err error
		switch key {
		case "per_call_usd":
			tp.PerCall, err = p.unitPrice(v, "", field+"."+key)
			has.call = true
		case "per_unit_usd":
			tp.PerUnit, err = p.unitPrice(v, "", field+"."+key)
			has.unit = true
		case "unit_attribute":
			tp.UnitAttribute, err = p.str(v, "", field+"."+key)
		default:
			err = p.errorf(k, "", field+"."+key, "unknown key (want per_call_usd, per_unit_usd or unit_attribute)")
		}
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case !has.call && !has.unit:
		return nil, p.errorf(n, "", field, "no price (want per_call_usd and/or per_unit_usd)")
	case has.unit && tp.UnitAttribute == "":
		return nil, p.errorf(n, "", field+".unit_attribute", "missing: per_unit_usd needs the span attribute that counts the units")
	case !has.unit && tp.UnitAttribute != "":
		return nil, p.errorf(n, "", field+".per_unit_usd", "missing: unit_attribute without a per-unit price")
	}
	return tp, nil
}
