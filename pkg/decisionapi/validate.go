package decisionapi

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/agentcost/agentcost/internal/money"
)

// Bounds of request fields.
const (
	// MaxIDBytes bounds run_id, agent_id, team, approval_id, idempotency_key and path ids.
	MaxIDBytes = 256
	// MaxActionBytes bounds the action topic.
	MaxActionBytes = 256
	// MaxRiskTags bounds the number of risk tags of a request.
	MaxRiskTags = 64
	// MaxRiskTagBytes bounds one risk tag.
	MaxRiskTagBytes = 64
	// MaxMetadataEntries bounds the metadata map.
	MaxMetadataEntries = 32
	// MaxMetadataKeyBytes and MaxMetadataValueBytes bound one metadata entry.
	MaxMetadataKeyBytes   = 64
	MaxMetadataValueBytes = 256
	// MaxTextBytes bounds free text: a reviewer's comment or denial reason.
	MaxTextBytes = 1024
	// MaxLimit bounds every integer constraint.
	MaxLimit = 1_000_000_000
)

// Validate checks the request and returns a *FieldError naming the first invalid field, or nil.
// (It returns the error interface so that a nil result compares equal to nil.)
// Required: agent_id and action. estimated_cost_usd must be a finite amount from 0 up to
// $1,000,000,000 (exact to the nano-dollar); items must not be negative; identifiers are
// bounded, valid UTF-8 text without control characters or surrounding spaces; the action is a
// dot-separated topic without whitespace or '*'; risk tags and metadata keys use
// [A-Za-z0-9._:/-].
func (r *DecisionRequest) Validate() error {
	if err := requiredID("agent_id", r.AgentID); err != nil {
		return err
	}
	if err := validAction("action", r.Action); err != nil {
		return err
	}
	for _, f := range [...]struct{ name, value string }{
		{"run_id", r.RunID}, {"team", r.Team}, {"approval_id", r.ApprovalID}, {"idempotency_key", r.IdempotencyKey},
		{"model", r.Model},
	} {
		if err := optionalID(f.name, f.value); err != nil {
			return err
		}
	}
	if err := validUSD("estimated_cost_usd", r.EstimatedCostUSD); err != nil {
		return err
	}
	if r.Items < 0 {
		return fieldErr("items", "must not be negative, got %d", r.Items)
	}
	if len(r.RiskTags) > MaxRiskTags {
		return fieldErr("risk_tags", "has %d tags, at most %d are allowed", len(r.RiskTags), MaxRiskTags)
	}
	for i, tag := range r.RiskTags {
		if err := validToken("risk_tags["+strconv.Itoa(i)+"]", tag, MaxRiskTagBytes); err != nil {
			return err
		}
	}
	if len(r.Metadata) > MaxMetadataEntries {
		return fieldErr("metadata", "has %d entries, at most %d are allowed", len(r.Metadata), MaxMetadataEntries)
	}
	keys := make([]string, 0, len(r.Metadata))
	for k := range r.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first invalid entry is the same on every call
	for _, k := range keys {
		if err := validToken("metadata", k, MaxMetadataKeyBytes); err != nil {
			return fieldErr("metadata", "key %q: %s", truncate(k), err.(*FieldError).Message)
		}
		if err := validText("metadata."+k, r.Metadata[k], MaxMetadataValueBytes); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the release request: actual_cost_usd, when given, must be a valid amount, and
// status one of the outcomes.
func (r *ReleaseRequest) Validate() error {
	if err := optionalUSD("actual_cost_usd", r.ActualCostUSD); err != nil {
		return err
	}
	if r.Status != "" && !oneOf(r.Status, SettlementStatuses()) {
		return fieldErr("status", "unknown status %q (want ok, error, timeout, canceled or panic)", truncate(string(r.Status)))
	}
	return nil
}

// Validate checks the approval: its constraints, cost cap and comment.
func (r *ApproveRequest) Validate() error {
	if err := r.Constraints.validate("constraints."); err != nil {
		return err
	}
	if r.Constraints.Model != "" {
		return fieldErr("constraints.model", "is set by a policy's degrade entries, not by a reviewer")
	}
	if err := optionalUSD("cost_cap_usd", r.CostCapUSD); err != nil {
		return err
	}
	return validProse("comment", r.Comment, MaxTextBytes)
}

// Validate checks the denial's reason.
func (r *DenyRequest) Validate() error { return validProse("reason", r.Reason, MaxTextBytes) }

// Validate checks every set constraint: integers from 0 to MaxLimit and a rate limit of the form
// "N/second|minute|hour|day" (short units s, sec, min, h, d), N ≥ 1.
func (c Constraints) Validate() error { return c.validate("") }

var rateLimitRE = regexp.MustCompile(`^[1-9][0-9]{0,9}/(second|sec|s|minute|min|hour|h|day|d)$`)

func (c Constraints) validate(prefix string) error {
	for _, f := range [...]struct {
		name string
		v    *int64
	}{
		{"max_runtime_sec", c.MaxRuntimeSec}, {"max_retries", c.MaxRetries}, {"max_concurrent", c.MaxConcurrent},
		{"max_tokens", c.MaxTokens}, {"max_tool_calls", c.MaxToolCalls}, {"max_depth", c.MaxDepth},
	} {
		if f.v != nil && (*f.v < 0 || *f.v > MaxLimit) {
			return fieldErr(prefix+f.name, "must be from 0 to %d, got %d", MaxLimit, *f.v)
		}
	}
	if c.RateLimit != "" && !rateLimitRE.MatchString(c.RateLimit) {
		return fieldErr(prefix+"rate_limit", "%q is not N/second|minute|hour|day", truncate(c.RateLimit))
	}
	return nil
}

// ParseApprovalState parses the state query parameter of GET /v1/approvals; empty means every
// state. The error is a *FieldError for field "state".
func ParseApprovalState(s string) (ApprovalState, error) {
	if s == "" || oneOf(ApprovalState(s), ApprovalStates()) {
		return ApprovalState(s), nil
	}
	return "", fieldErr("state", "unknown approval state %q (want pending, approved, denied, expired or consumed)", truncate(s))
}

// ValidateID checks an identifier such as a path's lease or approval id: non-empty, at most
// MaxIDBytes, valid UTF-8 without control characters or surrounding spaces. The error is a
// *FieldError naming field.
func ValidateID(field, id string) error { return requiredID(field, id) }

// validUSD checks a dollar amount: finite, not negative, at most money.MaxNanos once exact. The
// server converts valid amounts to nano-dollars itself; the API carries only dollars.
func validUSD(field string, usd float64) error {
	if _, err := money.FromUSD(usd); err != nil {
		if err == money.ErrNegative {
			return fieldErr(field, "must not be negative, got %v", usd)
		}
		return fieldErr(field, "%v", err)
	}
	return nil
}

// optionalUSD checks a dollar amount when it is given.
func optionalUSD(field string, usd *float64) error {
	if usd == nil {
		return nil
	}
	return validUSD(field, *usd)
}

func requiredID(field, s string) error {
	if s == "" {
		return fieldErr(field, "is required")
	}
	return optionalID(field, s)
}

func optionalID(field, s string) error {
	if s == "" {
		return nil
	}
	if err := validText(field, s, MaxIDBytes); err != nil {
		return err
	}
	if strings.TrimSpace(s) != s {
		return fieldErr(field, "must not start or end with whitespace")
	}
	return nil
}

// validText accepts valid UTF-8 of at most limit bytes without control or bidirectional
// formatting characters (which disguise text in logs and review screens).
func validText(field, s string, limit int) error { return checkText(field, s, limit, false) }

// validProse is validText that also allows newlines and tabs, for comments and reasons.
func validProse(field, s string, limit int) error { return checkText(field, s, limit, true) }

func checkText(field, s string, limit int, prose bool) error {
	if len(s) > limit {
		return fieldErr(field, "is %d bytes long, at most %d are allowed", len(s), limit)
	}
	if !utf8.ValidString(s) {
		return fieldErr(field, "is not valid UTF-8")
	}
	for i, r := range s {
		if prose && (r == '\n' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) || bidiControl(r) {
			return fieldErr(field, "has a control character %U at byte %d", r, i)
		}
	}
	return nil
}

func bidiControl(r rune) bool {
	return r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069 || r == 0x200E || r == 0x200F || r == 0x061C
}

func validAction(field, s string) error {
	if s == "" {
		return fieldErr(field, "is required")
	}
	if err := validText(field, s, MaxActionBytes); err != nil {
		return err
	}
	for i, r := range s {
		if unicode.IsSpace(r) || r == '*' {
			return fieldErr(field, "has %q at byte %d: a topic has no whitespace or '*'", r, i)
		}
	}
	if strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return fieldErr(field, "%q has an empty dot-separated segment", truncate(s))
	}
	return nil
}

// validToken accepts 1 to limit bytes of [A-Za-z0-9._:/-].
func validToken(field, s string, limit int) error {
	if s == "" {
		return fieldErr(field, "is empty")
	}
	if len(s) > limit {
		return fieldErr(field, "is %d bytes long, at most %d are allowed", len(s), limit)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:/-", c) >= 0) {
			return fieldErr(field, "has byte %#02x at %d: only letters, digits and . _ : / - are allowed", c, i)
		}
	}
	return nil
}

func oneOf[T comparable](v T, set []T) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

// truncate shortens a value echoed in an error message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
