package decisionapi

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestDecodeStrict: what encoding/json accepts silently is a 400 naming the field.
func TestDecodeStrict(t *testing.T) {
	cases := []struct {
		name  string
		body  string
		code  Code
		field string
		msg   string // a part of the message
	}{
		{"duplicate key", `{"agent_id":"a","action":"x","agent_id":"b"}`, CodeInvalidField, "agent_id", "duplicate key"},
		{"duplicate nested key", `{"metadata":{"k":"1","k":"2"}}`, CodeInvalidField, "metadata.k", "duplicate key"},
		{"duplicate key with an escape", `{"agent_id":"a","agent\u005fid":"b"}`, CodeInvalidField, "agent_id", "duplicate key"},
		{"duplicate among many keys", `{"metadata":{` + manyKeys(40) + `,"k07":"again"}}`, CodeInvalidField, "metadata.k07", "duplicate key"},
		{"key in upper case", `{"AGENT_ID":"a","action":"x"}`, CodeInvalidField, "AGENT_ID", `case-sensitive: "agent_id"`},
		{"key in mixed case", `{"agent_id":"a","Estimated_Cost_USD":1}`, CodeInvalidField, "Estimated_Cost_USD", "case-sensitive"},
		{"nested key in another case", `{"constraints":{"MAX_TOKENS":5}}`, CodeInvalidField, "constraints.MAX_TOKENS", "case-sensitive"},
		{"invalid UTF-8", "{\"agent_id\":\"a\xff\"}", CodeInvalidField, "agent_id", "invalid UTF-8"},
		{"invalid UTF-8 in a tag", "{\"risk_tags\":[\"ok\",\"b\xc3\"]}", CodeInvalidField, "risk_tags[1]", "invalid UTF-8"},
		{"invalid UTF-8 in a metadata value", "{\"metadata\":{\"k\":\"\xed\xa0\x80\"}}", CodeInvalidField, "metadata.k", "invalid UTF-8"},
		{"lone high surrogate", `{"agent_id":"a\ud800"}`, CodeInvalidField, "agent_id", "lone UTF-16 surrogate"},
		{"high surrogate then a letter", `{"agent_id":"\ud800\u0041"}`, CodeInvalidField, "agent_id", "lone UTF-16 surrogate"},
		{"lone low surrogate", `{"action":"\uDC00x"}`, CodeInvalidField, "action", "lone UTF-16 surrogate"},
		{"unknown nested field", `{"constraints":{"max_cost":5}}`, CodeInvalidField, "constraints.max_cost", "unknown field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r ApproveRequest
			var target any = &r
			if !strings.Contains(c.body, "constraints") {
				target = &DecisionRequest{}
			}
			err := Decode(strings.NewReader(c.body), 0, target)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("Decode = %v, want an *APIError", err)
			}
			if ae.Status != 400 || ae.Code != c.code || ae.Field != c.field || !strings.Contains(ae.Message, c.msg) {
				t.Errorf("Decode = %d %s field %q: %s; want %s field %q with %q", ae.Status, ae.Code, ae.Field, ae.Message, c.code, c.field, c.msg)
			}
		})
	}
	// What strictness must not refuse: a valid surrogate pair, multi-byte UTF-8, escapes,
	// metadata keys that differ only in case, nested objects with the same keys.
	var r DecisionRequest
	body := `{"agent_id":"a\ud83d\ude00","action":"x\"y","team":"équipe 团队","metadata":{"k":"v","K":"w"},"risk_tags":["a","a"]}`
	if err := Decode(strings.NewReader(body), 0, &r); err != nil {
		t.Fatalf("Decode(%s) = %v", body, err)
	}
	if r.AgentID != "a😀" || r.Team != "équipe 团队" || r.Metadata["K"] != "w" || r.Action != `x"y` {
		t.Errorf("decoded %+v", r)
	}
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + string(rune('0'+i/10)) + string(rune('0'+i%10)) + `":"v"`)
	}
	return b.String()
}

// TestDecodeMessages: type errors read as English.
func TestDecodeMessages(t *testing.T) {
	cases := []struct {
		body, field, want string
	}{
		{`{"estimated_cost_usd":1e400}`, "estimated_cost_usd", "1e400 is out of range"},
		{`{"items":99999999999999999999}`, "items", "99999999999999999999 is out of range"},
		{`{"items":1.5}`, "items", "must be an integer, not 1.5"},
		{`{"estimated_cost_usd":"1"}`, "estimated_cost_usd", "must be a number, not a string"},
		{`{"agent_id":true}`, "agent_id", "must be a string, not a boolean"},
		{`{"risk_tags":{}}`, "risk_tags", "must be an array, not an object"},
		{`[1]`, "", "request body must be a JSON object, not an array"},
		{`"x"`, "", "request body must be a JSON object, not a string"},
	}
	for _, c := range cases {
		var r DecisionRequest
		err := Decode(strings.NewReader(c.body), 0, &r)
		var ae *APIError
		if !errors.As(err, &ae) {
			t.Fatalf("Decode(%s) = %v", c.body, err)
		}
		if ae.Field != c.field || ae.Message != c.want {
			t.Errorf("Decode(%s) = field %q %q; want field %q %q", c.body, ae.Field, ae.Message, c.field, c.want)
		}
	}
}

// BenchmarkStrictScan measures the strictness pre-scan alone on a typical decision request (a
// part of BenchmarkDecodeValidate).
func BenchmarkStrictScan(b *testing.B) {
	body, _ := json.Marshal(validRequest())
	typ := reflect.TypeOf(&DecisionRequest{})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := strictScan(body, typ); err != nil {
			b.Fatal(err)
		}
	}
}
