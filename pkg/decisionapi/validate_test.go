package decisionapi

import (
	"errors"
	"math"
	"strings"
	"testing"
)

func validRequest() DecisionRequest {
	return DecisionRequest{RunID: "run-1", AgentID: "research-agent", Action: "job.research.company",
		RiskTags: []string{"high-cost", "pii:email"}, EstimatedCostUSD: 0.42, Items: 3, Team: "growth",
		IdempotencyKey: "9f1c", Metadata: map[string]string{"ticket": "T-1"}}
}

func TestDecisionRequestValidate(t *testing.T) {
	tags := make([]string, MaxRiskTags+1)
	for i := range tags {
		tags[i] = "t"
	}
	meta := map[string]string{}
	for i := range MaxMetadataEntries + 1 {
		meta[strings.Repeat("k", i+1)] = "v"
	}
	cases := []struct {
		name  string
		edit  func(r *DecisionRequest)
		field string // "" means valid
	}{
		{"valid", func(r *DecisionRequest) {}, ""},
		{"minimal", func(r *DecisionRequest) { *r = DecisionRequest{AgentID: "a", Action: "chat"} }, ""},
		{"id at the bound", func(r *DecisionRequest) { r.AgentID = strings.Repeat("a", MaxIDBytes) }, ""},
		{"agent name with a space", func(r *DecisionRequest) { r.AgentID = "Research Agent" }, ""},
		{"unicode agent", func(r *DecisionRequest) { r.AgentID = "agent-é" }, ""},
		{"large amount", func(r *DecisionRequest) { r.EstimatedCostUSD = 999_999_999.5 }, ""},
		{"zero cost", func(r *DecisionRequest) { r.EstimatedCostUSD = 0 }, ""},
		{"tags at the bound", func(r *DecisionRequest) { r.RiskTags = tags[:MaxRiskTags] }, ""},
		{"missing agent", func(r *DecisionRequest) { r.AgentID = "" }, "agent_id"},
		{"missing action", func(r *DecisionRequest) { r.Action = "" }, "action"},
		{"long agent", func(r *DecisionRequest) { r.AgentID = strings.Repeat("a", MaxIDBytes+1) }, "agent_id"},
		{"agent with newline", func(r *DecisionRequest) { r.AgentID = "a\nb" }, "agent_id"},
		{"agent with bidi override", func(r *DecisionRequest) { r.AgentID = "a\u202eb" }, "agent_id"},
		{"agent padded", func(r *DecisionRequest) { r.AgentID = " a" }, "agent_id"},
		{"agent bad utf8", func(r *DecisionRequest) { r.AgentID = "a\xffb" }, "agent_id"},
		{"long run", func(r *DecisionRequest) { r.RunID = strings.Repeat("r", MaxIDBytes+1) }, "run_id"},
		{"team with NUL", func(r *DecisionRequest) { r.Team = "g\x00" }, "team"},
		{"approval with tab", func(r *DecisionRequest) { r.ApprovalID = "ap\t1" }, "approval_id"},
		{"idempotency key too long", func(r *DecisionRequest) { r.IdempotencyKey = strings.Repeat("k", MaxIDBytes+1) }, "idempotency_key"},
		{"action with space", func(r *DecisionRequest) { r.Action = "job research" }, "action"},
		{"action with glob", func(r *DecisionRequest) { r.Action = "job.*.generate" }, "action"},
		{"action empty segment", func(r *DecisionRequest) { r.Action = "job..generate" }, "action"},
		{"action trailing dot", func(r *DecisionRequest) { r.Action = "job." }, "action"},
		{"action too long", func(r *DecisionRequest) { r.Action = strings.Repeat("a", MaxActionBytes+1) }, "action"},
		{"negative cost", func(r *DecisionRequest) { r.EstimatedCostUSD = -0.01 }, "estimated_cost_usd"},
		{"NaN cost", func(r *DecisionRequest) { r.EstimatedCostUSD = math.NaN() }, "estimated_cost_usd"},
		{"infinite cost", func(r *DecisionRequest) { r.EstimatedCostUSD = math.Inf(1) }, "estimated_cost_usd"},
		{"huge cost", func(r *DecisionRequest) { r.EstimatedCostUSD = 1e9 + 1 }, "estimated_cost_usd"},
		{"negative items", func(r *DecisionRequest) { r.Items = -1 }, "items"},
		{"too many tags", func(r *DecisionRequest) { r.RiskTags = tags }, "risk_tags"},
		{"empty tag", func(r *DecisionRequest) { r.RiskTags = []string{"a", ""} }, "risk_tags[1]"},
		{"tag with space", func(r *DecisionRequest) { r.RiskTags = []string{"high cost"} }, "risk_tags[0]"},
		{"tag too long", func(r *DecisionRequest) { r.RiskTags = []string{strings.Repeat("t", MaxRiskTagBytes+1)} }, "risk_tags[0]"},
		{"too much metadata", func(r *DecisionRequest) { r.Metadata = meta }, "metadata"},
		{"metadata key invalid", func(r *DecisionRequest) { r.Metadata = map[string]string{"a b": "v"} }, "metadata"},
		{"metadata value too long", func(r *DecisionRequest) {
			r.Metadata = map[string]string{"k": strings.Repeat("v", MaxMetadataValueBytes+1)}
		}, "metadata.k"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := validRequest()
			c.edit(&r)
			err := r.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError for %s", err, c.field)
			}
			if fe.Field != c.field {
				t.Errorf("field %q (%s), want %q", fe.Field, fe.Message, c.field)
			}
		})
	}
}

func TestOtherRequestsValidate(t *testing.T) {
	neg, ok, big := -1.0, 2.5, 2e9
	cases := []struct {
		name  string
		v     interface{ Validate() error }
		field string
	}{
		{"release empty", &ReleaseRequest{}, ""},
		{"release with cost", &ReleaseRequest{ActualCostUSD: &ok, Status: StatusOK}, ""},
		{"release negative", &ReleaseRequest{ActualCostUSD: &neg}, "actual_cost_usd"},
		{"release huge", &ReleaseRequest{ActualCostUSD: &big}, "actual_cost_usd"},
		{"release status", &ReleaseRequest{Status: "done"}, "status"},
		{"approve empty", &ApproveRequest{}, ""},
		{"approve zero retries", &ApproveRequest{Constraints: Constraints{MaxRetries: Limit(0), RateLimit: "6/minute"}, CostCapUSD: &ok, Comment: "ok\nthanks"}, ""},
		{"approve negative cap", &ApproveRequest{CostCapUSD: &neg}, "cost_cap_usd"},
		{"approve negative limit", &ApproveRequest{Constraints: Constraints{MaxTokens: Limit(-1)}}, "constraints.max_tokens"},
		{"approve huge limit", &ApproveRequest{Constraints: Constraints{MaxDepth: Limit(MaxLimit + 1)}}, "constraints.max_depth"},
		{"approve bad rate", &ApproveRequest{Constraints: Constraints{RateLimit: "0/hour"}}, "constraints.rate_limit"},
		{"approve bad rate unit", &ApproveRequest{Constraints: Constraints{RateLimit: "5/fortnight"}}, "constraints.rate_limit"},
		{"approve long comment", &ApproveRequest{Comment: strings.Repeat("c", MaxTextBytes+1)}, "comment"},
		{"approve comment with escape", &ApproveRequest{Comment: "a\x1b[31m"}, "comment"},
		{"deny", &DenyRequest{Reason: "too expensive\tfor now"}, ""},
		{"deny long", &DenyRequest{Reason: strings.Repeat("r", MaxTextBytes+1)}, "reason"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.v.Validate()
			var fe *FieldError
			switch {
			case c.field == "" && err != nil:
				t.Fatalf("Validate() = %v", err)
			case c.field != "" && !errors.As(err, &fe):
				t.Fatalf("Validate() = %v, want a *FieldError for %s", err, c.field)
			case c.field != "" && fe.Field != c.field:
				t.Errorf("field %q, want %q", fe.Field, c.field)
			}
		})
	}
}

func TestParseApprovalStateAndID(t *testing.T) {
	for _, s := range []string{"", "pending", "approved", "denied", "expired", "consumed"} {
		if got, err := ParseApprovalState(s); err != nil || string(got) != s {
			t.Errorf("ParseApprovalState(%q) = %q, %v", s, got, err)
		}
	}
	var fe *FieldError
	if _, err := ParseApprovalState("Pending"); !errors.As(err, &fe) || fe.Field != "state" {
		t.Errorf("ParseApprovalState(Pending) = %v", err)
	}
	if err := ValidateID("id", "ap_123"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", strings.Repeat("x", MaxIDBytes+1), "a\x00"} {
		if err := ValidateID("id", bad); !errors.As(err, &fe) || fe.Field != "id" {
			t.Errorf("ValidateID(%q) = %v", bad, err)
		}
	}
}
