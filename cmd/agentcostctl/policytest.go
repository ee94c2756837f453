package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/agentcost/agentcost/internal/boundedfile"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/internal/yamldoc"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// casesFile is a YAML file of policy test cases, in the spirit of `opa test`. It is read strictly
// by yamldoc.Decode: the `check` tags name caseChecks.
type casesFile struct {
	// Policy is the policy file, relative to the cases file; --policy overrides it.
	Policy string `yaml:"policy"`
	// Overlays are overlay files, relative to the cases file.
	Overlays []string `yaml:"overlays"`
	// Now is the evaluation time of every case without its own (RFC 3339); default the clock.
	Now   string     `yaml:"now" check:"rfc3339"`
	Cases []testCase `yaml:"cases,required"`
}

type testCase struct {
	Name     string        `yaml:"name,required"`
	Now      string        `yaml:"now" check:"rfc3339"`
	Request  caseRequest   `yaml:"request,required"`
	Approval *caseApproval `yaml:"approval"`
	State    caseState     `yaml:"state"`
	Expect   caseExpect    `yaml:"expect,required"`
	// Line is the case's line in the file.
	Line int `yaml:",line"`
}

type caseRequest struct {
	AgentID          string   `yaml:"agent_id,required"`
	Action           string   `yaml:"action,required"`
	EstimatedCostUSD string   `yaml:"estimated_cost_usd" check:"usd"`
	Items            int64    `yaml:"items" check:"count"`
	RiskTags         []string `yaml:"risk_tags"`
	Team             string   `yaml:"team"`
	RunID            string   `yaml:"run_id"`
	// Model is the model the action intends to call; degrade applies only with one.
	Model string `yaml:"model"`
}

// caseApproval is an approval a reviewer granted, which the request refers to.
type caseApproval struct {
	ID          string              `yaml:"id,required"`
	CostCapUSD  string              `yaml:"cost_cap_usd" check:"usd"`
	Constraints approvalConstraints `yaml:"constraints"`
}

type caseState struct {
	// Spent and Reserved are dollars per scope (fleet, team, agent, run) in the scope's window.
	Spent    caseScopes `yaml:"spent"`
	Reserved caseScopes `yaml:"reserved"`
	// LastAnomaly and LastActionAnomaly are how long ago the agent's last per-call and per-action
	// anomalies were, as anomaly_within reads them.
	LastAnomaly       string `yaml:"last_anomaly" check:"ago"`
	LastActionAnomaly string `yaml:"last_action_anomaly" check:"ago"`
}

// caseScopes are dollar amounts per budget scope.
type caseScopes struct {
	Fleet string `yaml:"fleet" check:"usd"`
	Team  string `yaml:"team" check:"usd"`
	Agent string `yaml:"agent" check:"usd"`
	Run   string `yaml:"run" check:"usd"`
}

// usage returns the amounts given, by scope.
func (s caseScopes) usage() map[policy.Scope]money.Nanos {
	out := map[policy.Scope]money.Nanos{}
	for sc, v := range map[policy.Scope]string{policy.ScopeFleet: s.Fleet, policy.ScopeTeam: s.Team, policy.ScopeAgent: s.Agent, policy.ScopeRun: s.Run} {
		if v != "" {
			out[sc], _ = money.ParseUSD(v) // checked by yamldoc.Decode
		}
	}
	return out
}

type caseExpect struct {
	Decision string `yaml:"decision,required" check:"decision"`
	// RuleID, when given, must equal the deciding rule ("" for default_decision).
	RuleID         *string `yaml:"rule_id"`
	ReasonContains string  `yaml:"reason_contains"`
	// Constraints is a subset: each constraint given must be returned with that value.
	Constraints   expectConstraints `yaml:"constraints"`
	RetryAfterSec *int64            `yaml:"retry_after_sec" check:"count"`
	// ReservedUSD is the estimate an allowed answer reserves: the request's, or a degrade
	// entry's re-estimate.
	ReservedUSD string `yaml:"reserved_usd" check:"usd"`
}

// caseChecks are the checks of a cases file's values.
var caseChecks = yamldoc.Checks{
	"usd":   func(s string) error { _, err := money.ParseUSD(s); return err },
	"count": checkCount,
	"ago":   func(s string) error { _, err := parseAgo(s); return err },
	"rfc3339": func(s string) error {
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return fmt.Errorf("%q is not an RFC 3339 time such as 2026-03-02T10:00:00Z", s)
		}
		return nil
	},
	"decision": func(s string) error {
		if _, ok := policy.ParseDecision(s); !ok {
			return fmt.Errorf("%q is not one of allow|allow_with_constraints|throttle|require_approval|deny", s)
		}
		return nil
	},
	"rate": func(s string) error { _, err := policy.ParseRateLimit(s); return err },
}

func checkCount(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a non-negative integer", s)
	}
	return nil
}

// parseCases reads and validates a cases file. Errors in the file are usage errors listing every
// problem with its line and field.
func parseCases(file string) (*casesFile, error) {
	data, err := boundedfile.Read(file, 0) // the bound every loaded file shares
	if err != nil {
		return nil, ioErr(fmt.Errorf("reading cases file: %w", err))
	}
	var cf casesFile
	err = yamldoc.Decode(file, data, &cf, caseChecks)
	if err == nil {
		err = checkCases(file, &cf)
	}
	if err != nil {
		return nil, &cliError{code: exitUsage, err: fmt.Errorf("invalid cases file:\n%w", err)}
	}
	return &cf, nil
}

// checkCases rejects empty and duplicate case names, which would make the report ambiguous.
func checkCases(file string, cf *casesFile) error {
	var errs yamldoc.Errors
	d := yamldoc.NewDecoder(&errs, file)
	lines := map[string]int{}
	for i := range cf.Cases {
		c := &cf.Cases[i]
		field := yamldoc.Index("cases", i)
		switch first, dup := lines[c.Name]; {
		case strings.TrimSpace(c.Name) == "":
			d.FailAt(c.Line, yamldoc.Join(field, "name"), "must not be empty")
		case dup:
			d.FailAt(c.Line, yamldoc.Join(field, "name"), "%q is also the name of the case on line %d", c.Name, first)
		default:
			lines[c.Name] = c.Line
		}
	}
	return errs.Err()
}

// expectConstraints are the constraints a case expects: decisionapi.Constraints, checked as the
// API checks them.
type expectConstraints decisionapi.Constraints

// CheckYAML reports a constraint the API would refuse (a count out of range, a malformed rate).
func (c *expectConstraints) CheckYAML(fail func(field, format string, args ...any)) {
	var fe *decisionapi.FieldError
	if err := decisionapi.Constraints(*c).Validate(); errors.As(err, &fe) {
		fail(fe.Field, "%s", fe.Message)
	}
}

// approvalConstraints are the constraints of a case's approval: as expected ones, without a model
// (only a degrade entry sets one).
type approvalConstraints expectConstraints

// CheckYAML reports what expectConstraints does, and a model.
func (c *approvalConstraints) CheckYAML(fail func(field, format string, args ...any)) {
	(*expectConstraints)(c).CheckYAML(fail)
	if c.Model != "" {
		fail("model", "unknown key (an approval's constraints have no model; expect.constraints.model does)")
	}
}

// caseResult is the outcome of one case, and its JSON output.
type caseResult struct {
	Name     string   `json:"name"`
	Line     int      `json:"line"`
	Pass     bool     `json:"pass"`
	Decision string   `json:"decision"`
	RuleID   string   `json:"rule_id"`
	Failures []string `json:"failures,omitempty"`
}

type testReport struct {
	Policy        string       `json:"policy"`
	PolicyVersion string       `json:"policy_version"`
	Passed        int          `json:"passed"`
	Failed        int          `json:"failed"`
	Skipped       int          `json:"skipped,omitempty"`
	Cases         []caseResult `json:"cases"`
}

func policyTest(e *env, path string, args []string) error {
	fs := newFlags(e, path, "CASES.yaml [--policy FILE] [--run REGEX]", `
Runs decision test cases against a policy, offline. Each case gives a request, optional budget state
and an approved approval, and the expected decision with, optionally, its rule_id, a reason
substring, a subset of its constraints and retry_after_sec. PASS or FAIL is printed per case; the
exit code is 1 when a case fails. The policy is the cases file's "policy:" (relative to it) unless
--policy is given. See cmd/agentcostctl/README.md for the file format.`)
	policyFile := fs.String("policy", "", "policy `FILE`, overriding the cases file's policy:")
	runRE := fs.String("run", "", "run only the cases whose name matches `REGEX`")
	verbose := fs.Bool("v", false, "print the reason of passing cases too")
	out := fs.output("table", "json")
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	var filter *regexp.Regexp
	if *runRE != "" {
		if filter, err = regexp.Compile(*runRE); err != nil {
			return usageErr("--run %q: %v", *runRE, err)
		}
	}
	cf, err := parseCases(pos[0])
	if err != nil {
		return err
	}
	dir := filepath.Dir(pos[0])
	pfile, overlays := *policyFile, []string{}
	if pfile == "" {
		if cf.Policy == "" {
			return usageErr("%s: the cases file names no policy: set policy: or --policy", path)
		}
		pfile = relTo(dir, cf.Policy)
	}
	for _, o := range cf.Overlays {
		overlays = append(overlays, relTo(dir, o))
	}
	p, err := loadPolicy(pfile, overlays)
	if err != nil {
		return err
	}
	prices, err := degradePrices(p, nil)
	if err != nil {
		return err
	}

	rep := testReport{Policy: pfile, PolicyVersion: p.Version(), Cases: []caseResult{}}
	clock := time.Now().UTC()
	for i := range cf.Cases {
		c := &cf.Cases[i]
		if filter != nil && !filter.MatchString(c.Name) {
			rep.Skipped++
			continue
		}
		res := runCase(p, prices, c, firstNonEmpty(c.Now, cf.Now), clock)
		if res.Pass {
			rep.Passed++
		} else {
			rep.Failed++
		}
		rep.Cases = append(rep.Cases, res)
		if *out == "table" {
			status := "PASS"
			if !res.Pass {
				status = "FAIL"
			}
			by := res.RuleID
			if by == "" {
				by = "default_decision"
			}
			fmt.Fprintf(e.stdout, "%s  %s  (%s by %s)\n", status, cell(res.Name), res.Decision, cell(by))
			for _, f := range res.Failures {
				fmt.Fprintf(e.stdout, "      %s:%d: %s\n", pos[0], res.Line, cell(f))
			}
			if *verbose && res.Pass {
				o := evaluateCase(p, prices, c, firstNonEmpty(c.Now, cf.Now), clock)
				fmt.Fprintf(e.stdout, "      reason: %s\n", cell(o.Reason))
			}
		}
	}
	if *out == "json" {
		if err := writeJSON(e.stdout, rep); err != nil {
			return ioErr(err)
		}
	} else {
		fmt.Fprintf(e.stdout, "\n%d passed, %d failed", rep.Passed, rep.Failed)
		if rep.Skipped > 0 {
			fmt.Fprintf(e.stdout, ", %d skipped", rep.Skipped)
		}
		fmt.Fprintf(e.stdout, " (policy %s, %s)\n", pfile, rep.PolicyVersion)
	}
	if rep.Failed > 0 {
		return findings()
	}
	return nil
}

func relTo(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// runCase evaluates a case and compares the outcome with its expectations.
func runCase(p *policy.Policy, prices policy.Repricer, c *testCase, now string, clock time.Time) caseResult {
	res := caseResult{Name: c.Name, Line: c.Line}
	req, err := caseRequestOf(c)
	if err != nil {
		res.Failures = []string{"request: " + err.Error()}
		return res
	}
	wire := decisionapi.DecisionRequest{RunID: req.RunID, AgentID: req.AgentID, Action: req.Action,
		RiskTags: req.RiskTags, EstimatedCostUSD: req.EstimatedCost.USD(), Items: req.Items, Team: req.Team,
		ApprovalID: req.ApprovalID, Model: req.Model}
	if err := wire.Validate(); err != nil {
		res.Failures = []string{"request: the decision API would reject it: " + err.Error()}
		return res
	}
	o := evaluateCase(p, prices, c, now, clock)
	res.Decision, res.RuleID = o.Decision.String(), o.RuleID
	x := c.Expect
	if want, _ := policy.ParseDecision(x.Decision); o.Decision != want {
		res.Failures = append(res.Failures, fmt.Sprintf("decision: got %s, want %s (reason: %s)", o.Decision, want, o.Reason))
	}
	if x.RuleID != nil && o.RuleID != *x.RuleID {
		res.Failures = append(res.Failures, fmt.Sprintf("rule_id: got %q, want %q", o.RuleID, *x.RuleID))
	}
	if x.ReasonContains != "" && !strings.Contains(o.Reason, x.ReasonContains) {
		res.Failures = append(res.Failures, fmt.Sprintf("reason: %q does not contain %q", o.Reason, x.ReasonContains))
	}
	if x.RetryAfterSec != nil {
		if got := decisionapi.RetryAfterSec(o.RetryAfter); got != *x.RetryAfterSec {
			res.Failures = append(res.Failures, fmt.Sprintf("retry_after_sec: got %d, want %d", got, *x.RetryAfterSec))
		}
	}
	res.Failures = append(res.Failures, compareConstraints(o.Constraints, decisionapi.Constraints(x.Constraints))...)
	res.Failures = append(res.Failures, compareDegrade(o, req, x)...)
	res.Pass = len(res.Failures) == 0
	return res
}

func evaluateCase(p *policy.Policy, prices policy.Repricer, c *testCase, now string, clock time.Time) policy.Outcome {
	at := clock
	if now != "" {
		at, _ = time.Parse(time.RFC3339, now) // validated with the file
	}
	req, _ := caseRequestOf(c)
	req.Prices = prices
	return policy.Evaluate(p, req, caseStateOf(c, at), at)
}

// caseRequestOf builds the policy request of a case; its amounts were validated with the file.
func caseRequestOf(c *testCase) (policy.Request, error) {
	r := c.Request
	req := policy.Request{RunID: r.RunID, AgentID: r.AgentID, Action: r.Action, RiskTags: r.RiskTags,
		Items: r.Items, Team: r.Team, Model: r.Model}
	var err error
	if r.EstimatedCostUSD != "" {
		if req.EstimatedCost, err = money.ParseUSD(r.EstimatedCostUSD); err != nil {
			return req, fmt.Errorf("estimated_cost_usd: %w", err)
		}
	}
	if a := c.Approval; a != nil {
		ap := &policy.ApprovedApproval{ID: a.ID}
		if a.CostCapUSD != "" {
			if ap.CostCap, err = money.ParseUSD(a.CostCapUSD); err != nil {
				return req, fmt.Errorf("approval.cost_cap_usd: %w", err)
			}
		}
		if ap.Constraints, err = policy.ConstraintsFromAPI(decisionapi.Constraints(a.Constraints)); err != nil {
			return req, fmt.Errorf("approval.constraints: %w", err)
		}
		req.ApprovalID, req.Approval = a.ID, ap
	}
	return req, nil
}

func caseStateOf(c *testCase, at time.Time) policy.State {
	var st policy.State
	for sc, v := range c.State.Spent.usage() {
		st.Usage[sc].Spent = v
	}
	for sc, v := range c.State.Reserved.usage() {
		st.Usage[sc].Reserved = v
	}
	if c.State.LastAnomaly != "" {
		d, _ := parseAgo(c.State.LastAnomaly)
		st.LastCallAnomaly = at.Add(-d)
	}
	if c.State.LastActionAnomaly != "" {
		d, _ := parseAgo(c.State.LastActionAnomaly)
		st.LastActionAnomaly = at.Add(-d)
	}
	return st
}

// compareConstraints checks that every expected constraint was returned with its value.
func compareConstraints(got policy.Constraints, want decisionapi.Constraints) []string {
	var fails []string
	for _, f := range [...]struct {
		name string
		got  policy.Limit
		want *int64
	}{
		{"max_runtime_sec", got.MaxRuntimeSec, want.MaxRuntimeSec}, {"max_retries", got.MaxRetries, want.MaxRetries},
		{"max_concurrent", got.MaxConcurrent, want.MaxConcurrent}, {"max_tokens", got.MaxTokens, want.MaxTokens},
		{"max_tool_calls", got.MaxToolCalls, want.MaxToolCalls}, {"max_depth", got.MaxDepth, want.MaxDepth},
	} {
		if f.want == nil {
			continue
		}
		if v, ok := f.got.Value(); !ok || v != *f.want {
			fails = append(fails, fmt.Sprintf("constraints.%s: got %s, want %d", f.name, f.got, *f.want))
		}
	}
	if want.RateLimit != "" {
		w, _ := policy.ParseRateLimit(want.RateLimit)
		if got.RateLimit != w {
			g := "unset"
			if !got.RateLimit.IsZero() {
				g = got.RateLimit.String()
			}
			fails = append(fails, fmt.Sprintf("constraints.rate_limit: got %s, want %s", g, w))
		}
	}
	return fails
}
