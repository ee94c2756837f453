package ledger

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

func fullReservation() *reservation {
	at := time.Date(2026, 11, 28, 10, 30, 0, 123456789, time.UTC)
	return &reservation{
		ID: "dec_01", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Agent: "agent-ü", Team: "team", RunID: "run-1", Action: "job.batch",
		Metadata: map[string]string{"evidence_id": "dec_01", "lease_id": "lease", "max_tokens": "4000", "": "empty key"},
		Counters: []counter{
			{Scope: ScopeAgent, ID: "agent-ü", Window: Hour, Start: at.Truncate(time.Hour).Unix(), End: at.Truncate(time.Hour).Add(time.Hour).Unix()},
			{Scope: ScopeRun, ID: "run-1", Window: Lifetime},
		},
		Estimate: 1_500_000_000, Remaining: -1, CreatedAt: at, ExpiresAt: at.Add(time.Minute),
		Matched: 1 << 62, Spans: 3, MaxOutput: 4001, Tokens: Tokens{Input: 1, Output: 2, CacheRead: 3, CacheWrite: 4, Reasoning: 5}, Anomalous: 1,
		Settled: true, Source: decisionapi.SourceReported, Reason: "release", Reported: 7, HasReported: true, SettledAt: at.Add(2 * time.Minute),
	}
}

func TestReservationCodecRoundTrip(t *testing.T) {
	for name, r := range map[string]*reservation{
		"full":    fullReservation(),
		"minimal": {ID: "x", CreatedAt: time.Unix(0, 1).UTC(), ExpiresAt: time.Unix(60, 0).UTC()},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := decodeReservationRecord(encodeReservation(r))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, r) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
			}
		})
	}
}

// Records written as JSON by earlier builds still decode.
func TestReservationCodecReadsJSON(t *testing.T) {
	r := fullReservation()
	v, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeReservationRecord(v)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("JSON record:\n got %+v\nwant %+v", got, r)
	}
}

// Every truncation of a record, and garbage, is an error, never a panic or a silent partial record.
func TestReservationCodecRejectsDamage(t *testing.T) {
	v := encodeReservation(fullReservation())
	for n := range len(v) {
		if _, err := decodeReservationRecord(v[:n]); err == nil {
			t.Fatalf("a record cut to %d of %d bytes decoded", n, len(v))
		}
	}
	for _, bad := range [][]byte{{2, 0}, {resCodecV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, []byte("{not json")} {
		if _, err := decodeReservationRecord(bad); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

// peekOpenSpend reads what a full decode reads, and parses exactly the binary records that decode.
func TestPeekOpenSpendAgreesWithDecode(t *testing.T) {
	open := fullReservation()
	open.Settled, open.Source, open.Reason, open.SettledAt = false, "", "", time.Time{}
	unmatched := *open
	unmatched.Spans, unmatched.Matched, unmatched.Metadata = 0, 0, nil
	for name, r := range map[string]*reservation{"settled": fullReservation(), "open": open, "unmatched": &unmatched} {
		v := encodeReservation(r)
		spans, settled, ok := peekOpenSpend(v)
		if !ok || spans != r.Spans || settled != r.Settled {
			t.Errorf("%s: peek %d spans, settled %v, ok %v; want %d, %v, true", name, spans, settled, ok, r.Spans, r.Settled)
		}
		for n := range len(v) {
			if _, _, ok := peekOpenSpend(v[:n]); ok {
				t.Fatalf("%s: a record cut to %d of %d bytes peeked", name, n, len(v))
			}
		}
		if _, _, ok := peekOpenSpend(append(v, 0)); ok {
			t.Errorf("%s: a record with a trailing byte peeked", name)
		}
	}
	if js, _ := json.Marshal(open); func() bool { _, _, ok := peekOpenSpend(js); return ok }() {
		t.Error("a JSON record peeked; it must be decoded in full")
	}
}

func FuzzReservationCodec(f *testing.F) {
	f.Add(encodeReservation(fullReservation()))
	f.Add([]byte{resCodecV1})
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := decodeReservationRecord(v)
		spans, settled, ok := peekOpenSpend(v)
		if len(v) > 0 && v[0] == resCodecV1 && ok != (err == nil) {
			t.Fatalf("peek ok %v, decode error %v", ok, err)
		}
		if err != nil || v[0] != resCodecV1 {
			return
		}
		if spans != r.Spans || settled != r.Settled {
			t.Fatalf("peek %d spans, settled %v; decoded %d, %v", spans, settled, r.Spans, r.Settled)
		}
		again, err := decodeReservationRecord(encodeReservation(r))
		if err != nil {
			t.Fatalf("re-encoded record fails: %v", err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encoding changed the record:\n%+v\n%+v", again, r)
		}
	})
}
