package decisionapi

import (
	"bytes"
	"errors"
	"testing"

	"github.com/agentcost/agentcost/internal/money"
)

// FuzzDecodeDecisionRequest feeds arbitrary bodies to the decoder and validator the decision
// endpoint uses. Invariants: no panic; every failure is an *APIError with a 4xx status; a request
// that decodes and validates has a non-negative, exact estimate.
func FuzzDecodeDecisionRequest(f *testing.F) {
	for _, seed := range []string{
		`{"agent_id":"research-agent","action":"job.research.company","estimated_cost_usd":1.25,"items":3,"risk_tags":["high-cost"]}`,
		`{"agent_id":"a","action":"job.x.batch-generate","estimated_cost_usd":78.40,"approval_id":"ap_1","idempotency_key":"k"}`,
		`{"agent_id":"a","action":"b","estimated_cost_usd":-1}`,
		`{"agent_id":"a","action":"b","estimated_cost_usd":1e400}`,
		`{"agent_id":"a","action":"b","unknown":true}`,
		`{"agent_id":"a","action":"b"} trailing`,
		`{"agent_id":1}`,
		``,
		`[]`,
		`{"agent_id":"\u0000","action":"b"}`,
		`{"agent_id":"a","action":"b","agent_id":"c"}`,
		`{"AGENT_ID":"a","action":"b"}`,
		`{"agent_id":"\ud800","action":"b"}`,
		"{\"agent_id\":\"\xff\",\"action\":\"b\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req DecisionRequest
		err := Decode(bytes.NewReader(body), 4096, &req)
		if err == nil {
			err = req.Validate()
		}
		if err != nil {
			ae := AsAPIError(err)
			var fe *FieldError
			if ae == nil && !errors.As(err, &fe) {
				t.Fatalf("error %v is neither an API error nor a field error", err)
			}
			if ae != nil && (ae.Status < 400 || ae.Status > 499) {
				t.Fatalf("status %d for a bad request body: %v", ae.Status, err)
			}
			return
		}
		n, cerr := money.FromUSD(req.EstimatedCostUSD)
		if cerr != nil || n < 0 {
			t.Fatalf("valid request with estimate %v: %d %v", req.EstimatedCostUSD, n, cerr)
		}
	})
}
