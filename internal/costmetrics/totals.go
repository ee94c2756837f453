package costmetrics

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
)

// family is how one ledger.Family is published: the metric, its label names in the family's
// order, which of them are bounded, and whether the value is nano-dollars (published as dollars).
type family struct {
	name, help, unit string
	labels           []string
	bounded          []bool
	nanos            bool
}

// families maps every ledger total to its metric.
var families = map[ledger.Family]family{
	ledger.TotalSpend:        {NameSpend, HelpSpend, "USD", []string{"agent", "team", "model", "provider"}, []bool{true, true, true, true}, true},
	ledger.TotalTokens:       {NameTokens, HelpTokens, "1", []string{"agent", "model", "type"}, []bool{true, true, false}, false},
	ledger.TotalAnomalies:    {NameAnomalies, HelpAnomalies, "1", []string{"agent", "level"}, []bool{true, false}, false},
	ledger.TotalSameCalls:    {NameSameCalls, HelpSameCalls, "1", []string{"agent", "model"}, []bool{true, true}, false},
	ledger.TotalSameCallCost: {NameSameCallUSD, HelpSameCallUSD, "USD", []string{"agent", "model"}, []bool{true, true}, true},
	ledger.TotalDuplicates:   {NameDuplicates, HelpDuplicates, "1", nil, nil, false},
	ledger.TotalMismatched:   {NameMismatched, HelpMismatched, "1", nil, nil, false},
	ledger.TotalUnpriced:     {NameUnpriced, HelpUnpriced, "1", []string{"model"}, []bool{true}, false},
	ledger.TotalMalformed:    {NameMalformed, HelpMalformed, "1", []string{"reason"}, []bool{true}, false},
	ledger.TotalRefused:      {NameRefused, HelpRefused, "1", []string{"reason"}, []bool{false}, false},
}

// alwaysPublished are the unlabelled totals published at zero before anything is counted, so that
// an alert on their increase has a series to start from.
var alwaysPublished = []ledger.Family{ledger.TotalDuplicates, ledger.TotalMismatched}

// Publisher turns the ledger's totals into cumulative sums. It remembers, per label, the values it
// has published, up to max_label_values: a value past the bound is published as Overflow (its
// totals summed into the overflow series) for as long as the publisher lives, so every series
// stays monotonic. Safe for concurrent use.
type Publisher struct {
	mu     sync.Mutex
	labels *bounded
}

// NewPublisher returns a publisher bounding each label to maxValues distinct values.
func NewPublisher(maxValues int) *Publisher {
	return &Publisher{labels: newBounded(maxValues)}
}

// Append appends one cumulative monotonic sum per family of t (and the always-published ones) to
// ms, with points at now starting at t.Since, followed by agentcost_label_overflow_total when a
// label overflowed.
func (p *Publisher) Append(ms pmetric.MetricSlice, t ledger.Totals, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := t.Since
	if start.IsZero() || start.After(now) {
		start = now
	}
	type point struct {
		labels []string
		value  int64
	}
	byFamily := map[ledger.Family]map[string]*point{}
	for _, tot := range t.Totals {
		f, ok := families[tot.Family]
		if !ok || len(tot.Labels) != len(f.labels) {
			continue // a family this build does not know (a newer replica wrote it)
		}
		labels := make([]string, len(tot.Labels))
		for i, v := range tot.Labels {
			labels[i] = v
			if f.bounded[i] {
				labels[i] = p.labels.value(f.labels[i], v)
			}
		}
		v := tot.Value
		points := byFamily[tot.Family]
		if points == nil {
			points = map[string]*point{}
			byFamily[tot.Family] = points
		}
		key := strings.Join(labels, "\x00")
		if pt := points[key]; pt != nil {
			pt.value = money.AddSat(pt.value, v)
		} else {
			points[key] = &point{labels, v}
		}
	}
	for _, fam := range alwaysPublished {
		if byFamily[fam] == nil {
			byFamily[fam] = map[string]*point{"": {nil, 0}}
		}
	}
	for _, fam := range slices.Sorted(maps.Keys(byFamily)) {
		f := families[fam]
		dps := Sum(ms, f.name, f.help, f.unit)
		for _, k := range slices.Sorted(maps.Keys(byFamily[fam])) {
			pt := byFamily[fam][k]
			dp := dps.AppendEmpty()
			dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
			dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
			if f.nanos {
				dp.SetDoubleValue(money.Nanos(pt.value).USD()) // exact nanos summed, converted once
			} else {
				dp.SetIntValue(pt.value)
			}
			for i, name := range f.labels {
				dp.Attributes().PutStr(name, pt.labels[i])
			}
		}
	}
	if over := p.labels.overflowed(); len(over) > 0 {
		dps := Sum(ms, NameOverflow, HelpOverflow, "1")
		for _, name := range slices.Sorted(maps.Keys(over)) {
			dp := dps.AppendEmpty()
			dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
			dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
			dp.SetIntValue(int64(over[name]))
			dp.Attributes().PutStr("label", name)
		}
	}
}

// Sum returns the data points of ms's cumulative monotonic sum name, appending the metric when ms
// has none of that name: the budget receiver adds its own points (anomalies of level action and
// run) to a family the ledger's totals started.
func Sum(ms pmetric.MetricSlice, name, help, unit string) pmetric.NumberDataPointSlice {
	for i := 0; i < ms.Len(); i++ {
		if m := ms.At(i); m.Name() == name && m.Type() == pmetric.MetricTypeSum {
			return m.Sum().DataPoints()
		}
	}
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetDescription(help)
	m.SetUnit(unit)
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	return sum.DataPoints()
}

// bounded keeps, per label, the set of values seen, up to a limit, and the values refused.
type bounded struct {
	limit int
	seen  map[string]map[string]struct{}
	over  map[string]map[string]struct{}
}

func newBounded(limit int) *bounded {
	return &bounded{limit: limit, seen: map[string]map[string]struct{}{}, over: map[string]map[string]struct{}{}}
}

// value returns v if the label has room for it (or already has it), else Overflow.
func (b *bounded) value(label, v string) string {
	set := b.seen[label]
	if set == nil {
		set = map[string]struct{}{}
		b.seen[label] = set
	}
	if _, ok := set[v]; ok {
		return v
	}
	if len(set) >= b.limit {
		if b.over[label] == nil {
			b.over[label] = map[string]struct{}{}
		}
		b.over[label][v] = struct{}{}
		return Overflow
	}
	set[v] = struct{}{}
	return v
}

// overflowed returns, per label, how many distinct values were replaced by Overflow.
func (b *bounded) overflowed() map[string]int {
	out := make(map[string]int, len(b.over))
	for label, vs := range b.over {
		out[label] = len(vs)
	}
	return out
}
