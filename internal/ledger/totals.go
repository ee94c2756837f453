package ledger

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/agentcost/agentcost/internal/money"
)

// Family names one kind of cumulative total the ledger keeps for the metrics pipeline. Book writes
// the totals in the same transaction (embedded) or script (Redis) that decides the booking outcome,
// so each span is counted once, whichever replica booked it and however often it was delivered.
type Family string

// The families and their labels, in order.
const (
	// TotalSpend is the booked spend in nano-dollars; labels agent, team, model, provider.
	TotalSpend Family = "spend"
	// TotalTokens is the booked tokens; labels agent, model, type (input, output, cache_read,
	// cache_write, reasoning).
	TotalTokens Family = "tokens"
	// TotalAnomalies counts booked spans the processor flagged; labels agent, level (call,
	// escalation).
	TotalAnomalies Family = "anomalies"
	// TotalSameCalls counts spans not booked under the same-call rule; labels agent, model.
	TotalSameCalls Family = "same_calls"
	// TotalSameCallCost is the cost in nano-dollars those spans carried; labels agent, model.
	TotalSameCallCost Family = "same_call_cost"
	// TotalDuplicates counts spans delivered again after they were booked; no labels.
	TotalDuplicates Family = "duplicates"
	// TotalMismatched counts booked spans whose decision id named another agent's or run's
	// reservation; no labels.
	TotalMismatched Family = "mismatched"
	// TotalUnpriced counts spans with usage whose model matched no price; label model.
	TotalUnpriced Family = "unpriced"
	// TotalMalformed counts spans not priced because their usage was malformed; label reason.
	TotalMalformed Family = "malformed"
	// TotalRefused counts priced spans the exporter did not book; label reason (invalid_cost,
	// cost_over_limit).
	TotalRefused Family = "refused"
)

// unbookedFamilies are the families a Spend's Unbooked may name.
var unbookedFamilies = map[Family]bool{TotalUnpriced: true, TotalMalformed: true, TotalRefused: true}

// Total is one cumulative counter: a family, its label values in the family's order, and the count
// (nano-dollars for TotalSpend and TotalSameCallCost).
type Total struct {
	Family Family
	Labels []string
	Value  int64
}

// Totals is every total the ledger keeps.
type Totals struct {
	// Since is when the ledger wrote its first total: the start of every cumulative series (zero
	// when nothing has been counted yet).
	Since time.Time
	// Totals are sorted by family, then labels.
	Totals []Total
}

// totalKey encodes a family and its labels as one stored key (a JSON array, so any label value
// round-trips).
func totalKey(f Family, labels ...string) string {
	b, _ := json.Marshal(append([]string{string(f)}, labels...)) // strings always marshal
	return string(b)
}

func decodeTotalKey(k string) (Family, []string, error) {
	var parts []string
	if err := json.Unmarshal([]byte(k), &parts); err != nil || len(parts) == 0 {
		return "", nil, fmt.Errorf("decoding total key %q: not a JSON array of strings", k)
	}
	return Family(parts[0]), parts[1:], nil
}

// totalDelta adds N to the total of Key.
type totalDelta struct {
	Key string
	N   int64
}

// bookedTotals are the totals a newly booked spend adds.
func bookedTotals(sp Spend, mismatched bool) []totalDelta {
	d := []totalDelta{{totalKey(TotalSpend, sp.Agent, sp.Team, sp.Model, sp.Provider), int64(sp.Cost)}}
	for _, t := range [...]struct {
		typ string
		n   int64
	}{{"input", sp.Tokens.Input}, {"output", sp.Tokens.Output}, {"cache_read", sp.Tokens.CacheRead},
		{"cache_write", sp.Tokens.CacheWrite}, {"reasoning", sp.Tokens.Reasoning}} {
		if t.n > 0 {
			d = append(d, totalDelta{totalKey(TotalTokens, sp.Agent, sp.Model, t.typ), t.n})
		}
	}
	if sp.Anomaly {
		d = append(d, totalDelta{totalKey(TotalAnomalies, sp.Agent, "call"), 1})
	}
	if sp.Escalating {
		d = append(d, totalDelta{totalKey(TotalAnomalies, sp.Agent, "escalation"), 1})
	}
	if mismatched {
		d = append(d, totalDelta{totalKey(TotalMismatched), 1})
	}
	return d
}

// sameCallTotals are the totals a spend not booked under the same-call rule adds.
func sameCallTotals(sp Spend) []totalDelta {
	return []totalDelta{{totalKey(TotalSameCalls, sp.Agent, sp.Model), 1}, {totalKey(TotalSameCallCost, sp.Agent, sp.Model), int64(sp.Cost)}}
}

// unbookedTotals are the totals an Unbooked spend adds the first time it is seen.
func unbookedTotals(sp Spend) []totalDelta {
	return []totalDelta{{totalKey(sp.Unbooked, sp.UnbookedLabel), 1}}
}

var duplicateKey = totalKey(TotalDuplicates)

// unbookedSpanID is the span id an Unbooked spend is recorded under, apart from the booked span's
// so that a span first seen unpriced is still booked once a price is known.
func unbookedSpanID(span string, f Family) string { return span + "\x00" + string(f) }

// identified reports whether an Unbooked spend can be recorded under its ids (a span without them
// is counted on every delivery).
func (sp *Spend) identified() bool { return sp.TraceID != "" && sp.SpanID != "" }

// sortTotals orders totals by family, then labels.
func sortTotals(ts []Total) {
	slices.SortFunc(ts, func(a, b Total) int {
		return cmp.Or(cmp.Compare(a.Family, b.Family), slices.Compare(a.Labels, b.Labels))
	})
}

// newTotals builds Totals from stored keys and values.
func newTotals(since time.Time, stored map[string]int64) (Totals, error) {
	out := Totals{Since: since, Totals: make([]Total, 0, len(stored))}
	for k, v := range stored {
		f, labels, err := decodeTotalKey(k)
		if err != nil {
			return Totals{}, err
		}
		out.Totals = append(out.Totals, Total{Family: f, Labels: labels, Value: v})
	}
	sortTotals(out.Totals)
	return out, nil
}

// The embedded ledger keeps the totals in its meta bucket: metaTotalPrefix + key → value
// (8 bytes, big endian), and metaTotalsSince → the Unix nanoseconds of the first total.
var (
	metaTotalPrefix = []byte("total:")
	metaTotalsSince = []byte("totals_since")
)

// addTotals adds the deltas to the stored totals inside t.
func (t *txn) addTotals(deltas map[string]int64, now time.Time) error {
	if len(deltas) == 0 {
		return nil
	}
	meta := t.meta()
	if meta.Get(metaTotalsSince) == nil {
		if err := meta.Put(metaTotalsSince, be64(now.UnixNano())); err != nil {
			return err
		}
	}
	for k, n := range deltas {
		key := append(append([]byte{}, metaTotalPrefix...), k...)
		var v int64
		if b := meta.Get(key); len(b) == 8 {
			v = int64(binary.BigEndian.Uint64(b))
		}
		if err := meta.Put(key, be64(money.AddSat(v, n))); err != nil {
			return err
		}
	}
	return nil
}

// Totals implements Ledger.
func (e *Embedded) Totals(ctx context.Context) (Totals, error) {
	var out Totals
	err := e.view(ctx, func(t *txn) error {
		meta := t.meta()
		var since time.Time
		if b := meta.Get(metaTotalsSince); len(b) == 8 {
			since = time.Unix(0, int64(binary.BigEndian.Uint64(b))).In(e.cal.loc)
		}
		stored := map[string]int64{}
		c := meta.Cursor()
		for k, v := c.Seek(metaTotalPrefix); k != nil && bytes.HasPrefix(k, metaTotalPrefix); k, v = c.Next() {
			if len(v) == 8 {
				stored[string(k[len(metaTotalPrefix):])] = int64(binary.BigEndian.Uint64(v))
			}
		}
		var err error
		out, err = newTotals(since, stored)
		return err
	})
	if err != nil {
		return Totals{}, fmt.Errorf("reading totals: %w", err)
	}
	return out, nil
}

// Totals implements Ledger. The Redis ledger keeps the totals in one hash: a field per total key,
// and the field "since" with the Unix nanoseconds of the first total.
func (r *Redis) Totals(ctx context.Context) (Totals, error) {
	fields, err := r.client.HGetAll(ctx, r.totalsKey()).Result()
	if err != nil {
		return Totals{}, fmt.Errorf("reading totals: %w", r.wrap(err))
	}
	var since time.Time
	stored := make(map[string]int64, len(fields))
	for k, v := range fields {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Totals{}, fmt.Errorf("reading totals: field %q: %w", k, err)
		}
		if k == "since" {
			since = time.Unix(0, n).In(r.cal.loc)
			continue
		}
		stored[k] = n
	}
	return newTotals(since, stored)
}
