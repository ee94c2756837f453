package decisionapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	cases := []struct {
		name   string
		body   string
		limit  int64
		status int  // 0: success
		code   Code // expected code on failure
		field  string
	}{
		{"valid", `{"agent_id":"a","action":"x","estimated_cost_usd":0.5,"risk_tags":["t"]}`, 0, 0, "", ""},
		{"empty body is an empty object", "", 0, 0, "", ""},
		{"whitespace body", " \n\t", 0, 0, "", ""},
		{"trailing whitespace", `{"agent_id":"a"}` + "\n\n", 0, 0, "", ""},
		{"body at the limit", `{"agent_id":"abc"}`, int64(len(`{"agent_id":"abc"}`)), 0, "", ""},
		{"body over the limit", `{"agent_id":"abcd"}`, int64(len(`{"agent_id":"abc"}`)), 413, CodeBodyTooLarge, ""},
		{"unknown field", `{"agent_id":"a","agent":"b"}`, 0, 400, CodeInvalidField, "agent"},
		{"unknown nested field", `{"agent_id":"a","metadata":{"k":"v"},"x":{}}`, 0, 400, CodeInvalidField, "x"},
		{"trailing object", `{"agent_id":"a"}{"agent_id":"b"}`, 0, 400, CodeInvalidJSON, ""},
		{"trailing garbage", `{"agent_id":"a"} x`, 0, 400, CodeInvalidJSON, ""},
		{"string for number", `{"estimated_cost_usd":"0.5"}`, 0, 400, CodeInvalidField, "estimated_cost_usd"},
		{"number out of range", `{"estimated_cost_usd":1e400}`, 0, 400, CodeInvalidField, "estimated_cost_usd"},
		{"fractional items", `{"items":1.5}`, 0, 400, CodeInvalidField, "items"},
		{"items overflow", `{"items":99999999999999999999}`, 0, 400, CodeInvalidField, "items"},
		{"tag not a string", `{"risk_tags":["a",7]}`, 0, 400, CodeInvalidField, "risk_tags"},
		{"metadata value not a string", `{"metadata":{"k":1}}`, 0, 400, CodeInvalidField, "metadata"},
		{"array body", `[1,2]`, 0, 400, CodeInvalidJSON, ""},
		{"syntax error", `{"agent_id":}`, 0, 400, CodeInvalidJSON, ""},
		{"truncated", `{"agent_id":"a"`, 0, 400, CodeInvalidJSON, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r DecisionRequest
			err := Decode(strings.NewReader(c.body), c.limit, &r)
			if c.status == 0 {
				if err != nil {
					t.Fatalf("Decode = %v", err)
				}
				return
			}
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("Decode = %v (%T), want *APIError", err, err)
			}
			if ae.Status != c.status || ae.Code != c.code || ae.Field != c.field {
				t.Errorf("Decode = %d %s field %q (%s); want %d %s field %q", ae.Status, ae.Code, ae.Field, ae.Message, c.status, c.code, c.field)
			}
		})
	}
}

func TestDecodeNestedFieldNames(t *testing.T) {
	var r ApproveRequest
	err := Decode(strings.NewReader(`{"constraints":{"max_tokens":"many"}}`), 0, &r)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Field != "constraints.max_tokens" {
		t.Fatalf("Decode = %v, want field constraints.max_tokens", err)
	}
	// A JSON 0 is a set limit, distinct from an absent one.
	r = ApproveRequest{}
	if err := Decode(strings.NewReader(`{"constraints":{"max_retries":0}}`), 0, &r); err != nil {
		t.Fatal(err)
	}
	if r.Constraints.MaxRetries == nil || *r.Constraints.MaxRetries != 0 || r.Constraints.MaxTokens != nil {
		t.Errorf("constraints = %+v", r.Constraints)
	}
}

func TestDecodeHonoursMaxBytesReader(t *testing.T) {
	body := `{"agent_id":"` + strings.Repeat("a", 100) + `"}`
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/v1/decisions", strings.NewReader(body))
	limited := http.MaxBytesReader(rec, req.Body, 50)
	var r DecisionRequest
	err := Decode(limited, 1<<20, &r)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("Decode = %v, want 413", err)
	}
}

// failingReader returns data and then an error, like a dropped connection.
type failingReader struct{ r io.Reader }

func (f failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errors.New("connection reset")
	}
	return n, err
}

func TestDecodeReadError(t *testing.T) {
	var r DecisionRequest
	err := Decode(failingReader{strings.NewReader(`{"agent_id":"a"}`)}, 0, &r)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, "connection reset") {
		t.Fatalf("Decode = %v", err)
	}
}

func TestWriteError(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		status     int
		code       Code
		field      string
		retryAfter string
	}{
		{"field error", &FieldError{Field: "items", Message: "must not be negative"}, 400, CodeInvalidField, "items", ""},
		{"wrapped field error", fmt.Errorf("decision: %w", &FieldError{Field: "action", Message: "is required"}), 400, CodeInvalidField, "action", ""},
		{"api error", NewError(CodeNotFound, "no lease %q", "l1"), 404, CodeNotFound, "", ""},
		{"rate limited", &APIError{Status: 429, Code: CodeRateLimited, Message: "slow down", RetryAfterSec: 7}, 429, CodeRateLimited, "", "7"},
		{"max bytes", &http.MaxBytesError{Limit: 10}, 413, CodeBodyTooLarge, "", ""},
		{"internal", errors.New("redis: connection refused at 10.0.0.3"), 500, CodeInternal, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteError(rec, c.err)
			if rec.Code != c.status {
				t.Errorf("status %d, want %d", rec.Code, c.status)
			}
			if got := rec.Header().Get("Retry-After"); got != c.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, c.retryAfter)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			var body ErrorResponse
			dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				t.Fatal(err)
			}
			if body.Error.Code != c.code || body.Error.Field != c.field || body.Error.Message == "" {
				t.Errorf("body %s", rec.Body)
			}
			if strings.Contains(rec.Body.String(), "10.0.0.3") {
				t.Errorf("internal error text leaked: %s", rec.Body)
			}
		})
	}
}

func TestCodeStatuses(t *testing.T) {
	want := map[Code]int{
		CodeInvalidJSON: 400, CodeInvalidField: 400, CodeUnauthorized: 401, CodeForbidden: 403, CodeNotFound: 404,
		CodeMethodNotAllowed: 405, CodeRequestTimeout: 408, CodeConflict: 409, CodeBodyTooLarge: 413,
		CodeUnsupportedMediaType: 415, CodeRateLimited: 429, CodeInternal: 500,
		CodeUnavailable: 503,
	}
	if len(Codes()) != len(want) {
		t.Errorf("Codes() has %d codes, the table %d", len(Codes()), len(want))
	}
	for _, c := range Codes() {
		if c.Status() != want[c] {
			t.Errorf("%s.Status() = %d, want %d", c, c.Status(), want[c])
		}
	}
	if Code("bogus").Status() != 500 {
		t.Error("unknown code is not 500")
	}
	e := (&FieldError{Field: "items", Message: "must not be negative"}).APIError()
	if e.Error() != "400 invalid_field: items: must not be negative" {
		t.Errorf("Error() = %q", e.Error())
	}
}

func TestEncodingKeepsZeroLimitsAndEmptyLists(t *testing.T) {
	cases := []struct {
		v    any
		want string
	}{
		{DecisionResponse{Decision: DecisionAllowWithConstraints, DecisionID: "d", PolicyVersion: "v",
			Constraints: Constraints{MaxRetries: Limit(0)}},
			`{"decision":"allow_with_constraints","decision_id":"d","policy_version":"v","constraints":{"max_retries":0}}`},
		{DecisionResponse{Decision: DecisionAllow, DecisionID: "d", PolicyVersion: "v"},
			`{"decision":"allow","decision_id":"d","policy_version":"v"}`},
		{ApprovalList{}, `{"approvals":[]}`},
		{BudgetsResponse{Fleet: FleetStatus{Name: LevelNormal}}, `{"policy_version":"","fleet":{"level":0,"name":"normal"},"scopes":[]}`},
		{ExplainResponse{Decision: DecisionAllow, PolicyVersion: "v"},
			`{"decision":"allow","policy_version":"v","derived_tags":[],"rules":[],"budget_layers":[]}`},
		{ScopeBudget{Scope: "fleet", BudgetStatus: BudgetStatus{Window: "day", LimitUSD: 2000, Level: LevelNormal}},
			`{"scope":"fleet","window":"day","spent_usd":0,"reserved_usd":0,"limit_usd":2000,"utilization":0,"level":"normal","forecast_usd":0}`},
	}
	for _, c := range cases {
		b, err := json.Marshal(c.v)
		if err != nil || string(b) != c.want {
			t.Errorf("Marshal(%T) = %s, %v\nwant %s", c.v, b, err, c.want)
		}
	}
}

func TestDecisionHelpers(t *testing.T) {
	for _, d := range Decisions() {
		if !d.Valid() {
			t.Errorf("%s is not valid", d)
		}
		if d.Allowed() != (d == DecisionAllow || d == DecisionAllowWithConstraints) {
			t.Errorf("%s.Allowed() = %v", d, d.Allowed())
		}
	}
	if Decision("maybe").Valid() {
		t.Error("unknown decision is valid")
	}
	if rt, ok := (Constraints{MaxRuntimeSec: Limit(90)}).MaxRuntime(); !ok || rt.Seconds() != 90 {
		t.Errorf("MaxRuntime = %v, %v", rt, ok)
	}
	if _, ok := (Constraints{}).MaxRuntime(); ok {
		t.Error("unset MaxRuntime reported as set")
	}
	if !(Constraints{}).IsZero() || (Constraints{MaxRetries: Limit(0)}).IsZero() {
		t.Error("IsZero is wrong")
	}
}
