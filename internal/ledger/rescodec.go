package ledger

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// The embedded backend stores a reservation record in a compact binary form: a decision writes
// one on its hot path, and encoding/json cost more than the rest of the transaction. Records
// that start with '{' are the JSON of earlier builds and still decode.
//
// Layout (version 1): the version byte, then the fields in struct order; strings are
// uvarint-length-prefixed, integers varints, times varint Unix nanoseconds with a presence
// byte, metadata sorted by key.
const resCodecV1 = 1

// errResTruncated reports a record that ends early.
var errResTruncated = errors.New("truncated reservation record")

func encodeReservation(r *reservation) []byte {
	b := make([]byte, 0, 128+len(r.ID)+len(r.TraceID)+len(r.Agent)+len(r.Team)+len(r.RunID)+len(r.Action)+32*len(r.Counters)+48*len(r.Metadata))
	b = append(b, resCodecV1)
	for _, s := range [...]string{r.ID, r.TraceID, r.Agent, r.Team, r.RunID, r.Action} {
		b = appendString(b, s)
	}
	keys := make([]string, 0, len(r.Metadata))
	for k := range r.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(appendString(b, k), r.Metadata[k])
	}
	b = binary.AppendUvarint(b, uint64(len(r.Counters)))
	for _, c := range r.Counters {
		b = appendString(appendString(b, string(c.Scope)), c.ID)
		b = append(b, windowCode(c.Window))
		b = binary.AppendVarint(binary.AppendVarint(b, c.Start), c.End)
	}
	for _, v := range [...]int64{int64(r.Estimate), int64(r.Remaining)} {
		b = binary.AppendVarint(b, v)
	}
	b = appendTime(appendTime(b, r.CreatedAt), r.ExpiresAt)
	for _, v := range [...]int64{int64(r.Matched), r.Spans, r.MaxOutput,
		r.Tokens.Input, r.Tokens.Output, r.Tokens.CacheRead, r.Tokens.CacheWrite, r.Tokens.Reasoning, r.Anomalous} {
		b = binary.AppendVarint(b, v)
	}
	flags := byte(0)
	if r.Settled {
		flags |= 1
	}
	if r.HasReported {
		flags |= 2
	}
	b = append(b, flags)
	b = appendString(appendString(b, string(r.Source)), string(r.Reason))
	b = binary.AppendVarint(b, int64(r.Reported))
	return appendTime(b, r.SettledAt)
}

func decodeReservationRecord(v []byte) (*reservation, error) {
	r := &reservation{}
	if len(v) > 0 && v[0] == '{' {
		if err := json.Unmarshal(v, r); err != nil {
			return nil, err
		}
		return r, nil
	}
	if len(v) == 0 || v[0] != resCodecV1 {
		return nil, fmt.Errorf("unknown reservation record version")
	}
	d := resDecoder{b: v[1:]}
	for _, s := range [...]*string{&r.ID, &r.TraceID, &r.Agent, &r.Team, &r.RunID, &r.Action} {
		*s = d.str()
	}
	if n := d.count(); n > 0 {
		r.Metadata = make(map[string]string, n)
		for range n {
			k := d.str()
			r.Metadata[k] = d.str()
		}
	}
	if n := d.count(); n > 0 {
		r.Counters = make([]counter, n)
		for i := range r.Counters {
			c := &r.Counters[i]
			c.Scope, c.ID = Scope(d.str()), d.str()
			c.Window = windowFromCode(d.byte())
			c.Start, c.End = d.varint(), d.varint()
		}
	}
	r.Estimate, r.Remaining = money.Nanos(d.varint()), money.Nanos(d.varint())
	r.CreatedAt, r.ExpiresAt = d.time(), d.time()
	for _, p := range [...]*int64{(*int64)(&r.Matched), &r.Spans, &r.MaxOutput,
		&r.Tokens.Input, &r.Tokens.Output, &r.Tokens.CacheRead, &r.Tokens.CacheWrite, &r.Tokens.Reasoning, &r.Anomalous} {
		*p = d.varint()
	}
	flags := d.byte()
	r.Settled, r.HasReported = flags&1 != 0, flags&2 != 0
	r.Source, r.Reason = decisionapi.CostSource(d.str()), SettleReason(d.str())
	r.Reported = money.Nanos(d.varint())
	r.SettledAt = d.time()
	switch {
	case d.err != nil:
		return nil, d.err
	case len(d.b) > 0:
		return nil, fmt.Errorf("%d bytes after the reservation record", len(d.b))
	}
	return r, nil
}

// peekOpenSpend reads only a binary record's span count and settled flag, skipping the rest
// without allocating: OpenSpend passes over every open reservation and most have matched no span
// yet. ok is false for a JSON record or one that does not parse (exactly when
// decodeReservationRecord fails for a binary record); decode those in full.
func peekOpenSpend(v []byte) (spans int64, settled, ok bool) {
	if len(v) == 0 || v[0] != resCodecV1 {
		return 0, false, false
	}
	d := resDecoder{b: v[1:]}
	for range 6 { // ID, TraceID, Agent, Team, RunID, Action
		d.skipStr()
	}
	for n := d.count(); n > 0; n-- {
		d.skipStr()
		d.skipStr()
	}
	for n := d.count(); n > 0; n-- {
		d.skipStr()
		d.skipStr()
		d.byte()
		d.varint()
		d.varint()
	}
	d.varint() // Estimate
	d.varint() // Remaining
	d.time()
	d.time()
	d.varint() // Matched
	spans = d.varint()
	for range 7 { // MaxOutput, the five token counts, Anomalous
		d.varint()
	}
	flags := d.byte()
	d.skipStr() // Source
	d.skipStr() // Reason
	d.varint()  // Reported
	d.time()
	if d.err != nil || len(d.b) > 0 {
		return 0, false, false
	}
	return spans, flags&1 != 0, true
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	return binary.AppendVarint(append(b, 1), t.UnixNano())
}

// resDecoder reads a binary reservation record; the first failure sticks and later reads
// return zero values.
type resDecoder struct {
	b   []byte
	err error
}

func (d *resDecoder) fail() { d.err, d.b = errResTruncated, nil }

func (d *resDecoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *resDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *resDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must fit in what is left (each element takes at least a byte).
func (d *resDecoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *resDecoder) str() string {
	n := d.count()
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *resDecoder) skipStr() {
	d.b = d.b[d.count():]
}

func (d *resDecoder) time() time.Time {
	if d.byte() == 0 {
		return time.Time{}
	}
	return time.Unix(0, d.varint()).UTC()
}
