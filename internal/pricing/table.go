package pricing

import (
	"fmt"
	"sort"
	"strings"
)

// Table is an immutable, matched price table built from layers. It is safe for concurrent use.
type Table struct {
	exact     map[string]slot
	lower     map[string]slot
	qualified map[string]map[string]slot // route → key without "route/" → slot
	fallbacks map[string]*Entry          // NormalizeProvider(provider) → fallback price
	// unpriced are the keys a file lists without token prices (subscription, per-second, image
	// models): a name that reaches one is not priced as another model by a further rule.
	unpriced map[string]unpricedKey
	layers   []LayerStats
	cache    *lookupCache
	// tools are the tool-call prices by gen_ai.tool.name, a later layer winning.
	tools map[string]*ToolPrice
}

// unpricedKey is a key a layer lists without token prices.
type unpricedKey struct {
	reason string
	source string
}

// Hit is the result of a lookup: the entry, nil when none matched, and how it was found.
type Hit struct {
	Entry *Entry
	// Kind is zero for an exact match (the exact key, the provider-qualified key, an alias).
	Kind MatchKind
}

// slot is a table key's entry with the layer that set the key.
type slot struct {
	e     *Entry
	key   string // the table key (for the case-insensitive map: the original spelling)
	layer int
	alias string // the alias target as written, when the key is an alias
}

// LayerStats counts what one layer contributed to a table, for telemetry.
type LayerStats struct {
	Source string
	File   string
	// Loaded is the layer's priced entries.
	Loaded int
	// Skipped is the file's entries without token prices.
	Skipped int
	// Skips counts the skipped entries by reason, most frequent first.
	Skips []SkipCount
	// Shadowed is the layer's entries replaced by a later layer's entry or alias of the same name.
	Shadowed int
	// Aliases and Fallbacks count the layer's aliases and per-provider fallback prices.
	Aliases   int
	Fallbacks int
}

// CacheStats describes the lookup cache of resolved raw names.
type CacheStats struct {
	// Entries is the number of names cached (hits and misses).
	Entries int
	// Capacity bounds Entries.
	Capacity int
	// Evictions counts names dropped to stay within Capacity.
	Evictions uint64
}

// Build stacks layers into a table: an entry of a later layer replaces one of an earlier layer
// with the same key, aliases of a later layer replace earlier entries of that name, and fallback
// prices of a later layer replace earlier ones for the same provider. An alias whose target matches
// no model is an error naming its file and line.
func Build(layers ...*Layer) (*Table, error) {
	t := &Table{
		exact:     make(map[string]slot),
		lower:     make(map[string]slot),
		qualified: make(map[string]map[string]slot),
		fallbacks: make(map[string]*Entry),
		unpriced:  make(map[string]unpricedKey),
		cache:     newLookupCache(defaultCacheCapacity),
	}
	for i, l := range layers {
		if l == nil {
			return nil, fmt.Errorf("building price table: layer %d is nil", i)
		}
		for _, s := range l.Skips {
			if s.Reason != SkipDocumentation {
				t.unpriced[s.Model] = unpricedKey{reason: s.Reason, source: l.Source}
			}
		}
		for _, e := range l.Entries {
			t.index(slot{e: e, key: e.Model, layer: i})
		}
	}
	// Aliases resolve against every layer's entries and the aliases before them.
	for i, l := range layers {
		for _, a := range l.Aliases {
			if cur, ok := t.exact[a.Name]; ok && cur.layer > i {
				continue // a later layer prices this name itself
			}
			m := t.resolve(a.Target, "", false)
			if m.Entry == nil {
				return nil, &FileError{File: l.File, Line: a.Line, Model: a.Name, Field: "aliases",
					Err: fmt.Errorf("alias target %q matches no model", a.Target)}
			}
			t.index(slot{e: m.Entry, key: a.Name, layer: i, alias: a.Target})
		}
		for _, f := range l.Fallbacks {
			t.fallbacks[NormalizeProvider(f.Provider)] = f
		}
		for _, tp := range l.Tools {
			if t.tools == nil {
				t.tools = make(map[string]*ToolPrice)
			}
			t.tools[tp.Name] = tp
		}
	}
	for _, l := range layers {
		st := LayerStats{Source: l.Source, File: l.File, Loaded: len(l.Entries), Skipped: l.Skipped,
			Aliases: len(l.Aliases), Fallbacks: len(l.Fallbacks), Skips: SkipsByReason(l.Skips)}
		for _, e := range l.Entries {
			if t.exact[e.Model].e != e {
				st.Shadowed++
			}
		}
		t.layers = append(t.layers, st)
	}
	return t, nil
}

// index makes s the table's slot for its key: exact, case-insensitive and, for a key with a
// route prefix ("azure/gpt-4o"), provider-qualified. Slots are indexed in layer order.
func (t *Table) index(s slot) {
	t.exact[s.key] = s
	lk := strings.ToLower(s.key)
	if cur, ok := t.lower[lk]; !ok || betterFolded(s, cur, lk) {
		t.lower[lk] = s
	}
	if route, rest, ok := strings.Cut(s.key, "/"); ok && rest != "" {
		m := t.qualified[route]
		if m == nil {
			m = make(map[string]slot)
			t.qualified[route] = m
		}
		m[rest] = s
	}
}

// betterFolded decides which of two keys that fold to the same lower-case name the
// case-insensitive match uses: the later layer, then the key already in lower case, then the
// smaller key (for a deterministic table).
func betterFolded(s, cur slot, lk string) bool {
	if s.layer != cur.layer {
		return s.layer > cur.layer
	}
	if (s.key == lk) != (cur.key == lk) {
		return s.key == lk
	}
	return s.key < cur.key
}

// Len returns the number of keys (models and aliases) in the table.
func (t *Table) Len() int { return len(t.exact) }

// Layers returns per-layer counts, in Build order.
func (t *Table) Layers() []LayerStats { return append([]LayerStats(nil), t.layers...) }

// CacheStats returns the state of the lookup cache.
func (t *Table) CacheStats() CacheStats { return t.cache.stats() }

// Entries returns the table's entries (without aliases), sorted by model.
func (t *Table) Entries() []*Entry {
	out := make([]*Entry, 0, len(t.exact))
	for key, s := range t.exact {
		if s.alias == "" && s.e.Model == key {
			out = append(out, s.e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Model < out[j].Model })
	return out
}

// Tool returns the price of a tool call by its gen_ai.tool.name (exact name, no other match).
func (t *Table) Tool(name string) (*ToolPrice, bool) {
	tp, ok := t.tools[name]
	return tp, ok
}

// HasTools reports whether any price file prices tool calls.
func (t *Table) HasTools() bool { return len(t.tools) > 0 }

// Fallback returns the fallback price configured for a provider.
func (t *Table) Fallback(provider string) (*Entry, bool) {
	e, ok := t.fallbacks[NormalizeProvider(provider)]
	return e, ok
}

// Lookup returns the price entry for a model name as a span reports it, and the provider the span
// names (empty when unknown). When nothing matches and a fallback price is configured for the
// provider, that fallback entry is returned (Entry.Fallback is set). Lookup is called for every
// LLM span: an exact hit costs a few map reads, and any other result, miss included, is cached per
// raw (model, provider), so neither allocates after the first time.
func (t *Table) Lookup(model, provider string) (*Entry, bool) {
	h := t.LookupHit(model, provider)
	return h.Entry, h.Entry != nil
}

// LookupHit is Lookup that also says how the entry was found (Hit.Kind), for the processor's
// agentcost.price.match attribute and `prices.allow_match`. It costs what Lookup costs.
func (t *Table) LookupHit(model, provider string) Hit {
	if route, known := providerRoutes[provider]; known {
		if e, ok := t.exactHit(model, route); ok {
			return Hit{Entry: e}
		}
	}
	if len(model) > maxNameLen || len(provider) > maxNameLen {
		// Not a model name: resolved with the exact key and the fallback only, and not cached, so
		// hostile spans can neither pin memory nor make the rules scan long strings.
		m := t.resolve(model, provider, true)
		return Hit{Entry: m.Entry, Kind: m.Kind}
	}
	if h, ok := t.cache.get(model, provider); ok {
		return h
	}
	m := t.resolve(model, provider, true)
	h := Hit{Entry: m.Entry, Kind: m.Kind}
	t.cache.put(model, provider, h)
	return h
}

// exactHit is the allocation-free first step of resolve: the provider-qualified key, else the
// exact key, the later layer winning between the two.
func (t *Table) exactHit(model, route string) (*Entry, bool) {
	b, okb := t.exact[model]
	if route != "" {
		if q, ok := t.qualified[route][model]; ok && (!okb || q.layer >= b.layer) {
			return q.e, true
		}
	}
	return b.e, okb
}

// maxNameLen bounds the model and provider names the matching rules and the cache consider; longer
// names match only an exact key or a fallback.
const maxNameLen = 256

// Match explains a lookup.
type Match struct {
	// Model and Provider are the looked-up names.
	Model    string
	Provider string
	// Entry is the matched entry, nil when none matched.
	Entry *Entry
	// Key is the table key that matched (an alias name when an alias matched).
	Key string
	// Rules are the matching rules applied, in order (RuleExact, RuleDatedSnapshot, ...).
	Rules []string
	// Kind is the set of non-exact rules applied (zero for an exact match).
	Kind MatchKind
	// Unpriced is the skip reason when the name reached a key a price file lists without token
	// prices (SkipPerSecond, ...): such a name is not priced as another model.
	Unpriced string
	// Reason says in words which rule matched, for `agentcostctl prices lookup`.
	Reason string
}

// Explain resolves a model name like Lookup, without the cache, and says which rule matched.
func (t *Table) Explain(model, provider string) Match {
	return t.resolve(model, provider, true)
}

// resolve applies the matching rules in order (see candidates): for each candidate name, the
// provider-qualified key, the exact key, then the case-insensitive key; then the provider's
// fallback price when withFallback is set.
func (t *Table) resolve(model, provider string, withFallback bool) Match {
	m := Match{Model: model, Provider: provider}
	route := NormalizeProvider(provider)
	name := strings.TrimSpace(model)
	var cands []candidate
	switch {
	case name == "":
	case len(name) > maxNameLen:
		cands = []candidate{{name: name}} // the exact key only
	default:
		cands = candidates(name)
	}
	for _, c := range cands {
		s, via, ok := t.find(c.name, route)
		if !ok {
			if u, key, listed := t.listedUnpriced(c.name, route); listed {
				m.Key, m.Unpriced = key, u.reason
				m.Reason = fmt.Sprintf("%q reaches %q, which %s lists without token prices (%s): not priced as another model",
					model, key, u.source, u.reason)
				break
			}
			continue
		}
		m.Entry, m.Key = s.e, s.key
		m.Rules = append(m.Rules, c.rules...)
		if via != "" {
			m.Rules = append(m.Rules, via)
		}
		if s.alias != "" {
			m.Rules = append(m.Rules, RuleAlias)
		}
		if len(m.Rules) == 0 {
			m.Rules = []string{RuleExact}
		}
		m.Kind = kindOf(m.Rules)
		m.Reason = describe(m, s)
		return m
	}
	if m.Unpriced != "" {
		return m
	}
	if withFallback {
		p := route
		if r, rest, ok := strings.Cut(name, "/"); ok && (p == "" || separateBilling(r, rest)) {
			// "openai/gpt-9" names its provider in the model; "github_copilot/gpt-9" is billed by
			// the subscription, never at the span provider's fallback price.
			p = NormalizeProvider(r)
		}
		if e, ok := t.fallbacks[p]; ok && p != "" {
			m.Entry, m.Key, m.Rules, m.Kind = e, e.Model, []string{RuleFallback}, MatchFallback
			m.Reason = fmt.Sprintf("%q matched no model; using the fallback price for provider %q (source %s)",
				model, e.Provider, e.Source)
			return m
		}
	}
	m.Reason = fmt.Sprintf("%q matched no model", model)
	if provider != "" {
		m.Reason += fmt.Sprintf(" and provider %q has no fallback price", provider)
	}
	return m
}

// find looks a candidate name up: the provider-qualified key or the exact key (the later layer
// winning between the two), then the same case-insensitively. via is the rule beyond the
// candidate's own ("" for an exact key).
func (t *Table) find(name, route string) (s slot, via string, ok bool) {
	b, okb := t.exact[name]
	if route != "" {
		if q, qok := t.qualified[route][name]; qok && (!okb || q.layer >= b.layer) {
			return q, RuleProviderQualified, true
		}
	}
	if okb {
		return b, "", true
	}
	lk := strings.ToLower(name)
	b, okb = t.lower[lk]
	if route != "" {
		if q, qok := t.lower[route+"/"+lk]; qok && (!okb || q.layer >= b.layer) {
			return q, RuleProviderQualified + ", " + RuleCaseInsensitive, true
		}
	}
	if okb {
		return b, RuleCaseInsensitive, true
	}
	return slot{}, "", false
}

// listedUnpriced reports whether a price file lists the candidate name (provider-qualified or
// bare) without token prices.
func (t *Table) listedUnpriced(name, route string) (unpricedKey, string, bool) {
	if len(t.unpriced) == 0 {
		return unpricedKey{}, "", false
	}
	if route != "" {
		if u, ok := t.unpriced[route+"/"+name]; ok {
			return u, route + "/" + name, true
		}
	}
	u, ok := t.unpriced[name]
	return u, name, ok
}

func describe(m Match, s slot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q matched %q by %s", m.Model, m.Key, strings.Join(m.Rules, ", "))
	if s.alias != "" {
		fmt.Fprintf(&b, " (alias of %q, priced as %q)", s.alias, s.e.Model)
	}
	fmt.Fprintf(&b, "; source %s", s.e.Source)
	return b.String()
}
