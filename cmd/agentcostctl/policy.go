package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// lintResult is the JSON output of `policy lint`.
type lintResult struct {
	File          string      `json:"file"`
	Overlays      []string    `json:"overlays"`
	Valid         bool        `json:"valid"`
	PolicyVersion string      `json:"policy_version,omitempty"`
	Hash          string      `json:"hash,omitempty"`
	Rules         []string    `json:"rules,omitempty"`
	Errors        []lintError `json:"errors"`
	Omitted       int         `json:"omitted,omitempty"`
}

type lintError struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func policyLint(e *env, path string, args []string) error {
	fs := newFlags(e, path, "FILE [--overlay FILE]...", `
Validates a policy file and its overlay files the way the budget receiver loads them. Every problem
is printed as "file:line: field: message"; the exit code is 1 when there is any.`)
	var overlays, prices stringList
	fs.Var(&overlays, "overlay", "overlay `FILE` holding only topics:, later ones winning (repeatable)")
	fs.Var(&prices, "prices", "price `FILE` over the embedded table, as the receiver's prices.files: degrade targets must be in it (repeatable)")
	out := fs.output("table", "json")
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	res := lintResult{File: pos[0], Overlays: append([]string{}, overlays...), Errors: []lintError{}}
	p, err := policy.Load(pos[0], overlays...)
	if err == nil {
		err = checkDegradeModels(p, prices)
	}
	var ve *policy.ValidationError
	switch {
	case errors.As(err, &ve):
		for _, fe := range ve.Errors {
			res.Errors = append(res.Errors, lintError{File: fe.File, Line: fe.Line, Field: fe.Field, Message: fe.Msg})
		}
		res.Omitted = ve.Omitted
	case err != nil:
		return ioErr(err)
	default:
		res.Valid, res.PolicyVersion, res.Hash, res.Rules = true, p.Version(), p.Hash(), p.RuleIDs()
	}

	if *out == "json" {
		if err := writeJSON(e.stdout, res); err != nil {
			return ioErr(err)
		}
	} else if res.Valid {
		fmt.Fprintf(e.stdout, "%s: ok: policy_version %s (%s), %d rules, default_decision %s\n",
			res.File, res.PolicyVersion, res.Hash, len(res.Rules), p.DefaultDecision())
	} else {
		for _, fe := range ve.Errors {
			fmt.Fprintln(e.stdout, cell(fe.Error()))
		}
		if ve.Omitted > 0 {
			fmt.Fprintf(e.stdout, "... and %d more\n", ve.Omitted)
		}
		fmt.Fprintf(e.stdout, "%s: %d problem(s)\n", res.File, len(ve.Errors)+ve.Omitted)
	}
	if !res.Valid {
		return findings()
	}
	return nil
}

// parseScope maps a scope name of --spent or a cases file to its Scope.
func parseScope(s string) (policy.Scope, bool) {
	for sc := range policy.Scope(policy.NumScopes) {
		if sc.String() == s {
			return sc, true
		}
	}
	return 0, false
}

// scopeAmounts parses repeated "scope=USD" flag values into per-scope amounts.
func scopeAmounts(flagName string, vals []string) ([policy.NumScopes]money.Nanos, error) {
	var out [policy.NumScopes]money.Nanos
	for _, v := range vals {
		name, amount, ok := strings.Cut(v, "=")
		sc, known := parseScope(strings.TrimSpace(name))
		if !ok || !known {
			return out, usageErr("--%s %q: want SCOPE=USD with SCOPE one of fleet, team, agent, run", flagName, v)
		}
		n, err := parseUSDFlag(flagName, amount)
		if err != nil {
			return out, err
		}
		out[sc] = n
	}
	return out, nil
}

// parseAgo parses a non-negative duration such as "5m" (how long ago something happened).
func parseAgo(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a non-negative duration such as 90s, 5m or 2h", s)
	}
	return d, nil
}

// loadTZ loads the time zone of a --tz flag; the error is a usage error naming the flag.
func loadTZ(tz string) (*time.Location, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, usageErr("--tz %q: %v", tz, err)
	}
	return loc, nil
}

// parseNow returns the evaluation time: --now (RFC 3339) or the clock, in the ledger's time zone.
func parseNow(now, tz string) (time.Time, error) {
	loc, err := loadTZ(tz)
	if err != nil {
		return time.Time{}, err
	}
	t := time.Now()
	if now != "" {
		if t, err = time.Parse(time.RFC3339, now); err != nil {
			return time.Time{}, usageErr("--now %q: want an RFC 3339 time such as 2026-03-02T10:00:00Z", now)
		}
	}
	return t.In(loc), nil
}

func policyExplain(e *env, path string, args []string) error {
	fs := newFlags(e, path, "--policy FILE --agent ID --action TOPIC [flags]", `
Explains offline how a policy decides a request: every rule in order and why it matched or not, the
derived tags, each budget layer's verdict with its numbers, and the outcome. Budget state comes from
--spent and --reserved (dollars per scope, in the scope's current window), anomalies from
--last-anomaly. The JSON output has the shape of POST /v1/explain.`)
	var (
		policyFile = fs.String("policy", "", "policy `FILE`")
		agent      = fs.String("agent", "", "agent `ID` (the canonical agent key)")
		action     = fs.String("action", "", "action `TOPIC`, e.g. job.research.company")
		estimate   = fs.String("estimate", "0", "estimated cost in `USD`")
		items      = fs.Int64("items", 0, "number of `N` items the action processes")
		team       = fs.String("team", "", "team `ID`")
		runID      = fs.String("run", "", "run `ID`")
		approved   = fs.String("approved", "", "treat the request as carrying approved approval `ID`")
		lastCall   = fs.String("last-anomaly", "", "the agent's last per-call anomaly was `DURATION` ago")
		lastAction = fs.String("last-action-anomaly", "", "the agent's last per-action anomaly was `DURATION` ago")
		now        = fs.String("now", "", "evaluate at this RFC 3339 `TIME` (default: now)")
		tz         = fs.String("tz", "UTC", "the ledger's time `ZONE`, which aligns budget windows")
		failOnDeny = fs.Bool("fail-on-deny", false, "exit 1 when the decision is deny")
		model      = fs.String("model", "", "the `MODEL` the action intends to call (degrade applies only with one)")
		prices     stringList
		overlays   stringList
		tags       stringList
		spent      stringList
		reserved   stringList
	)
	fs.Var(&overlays, "overlay", "overlay `FILE` (repeatable)")
	fs.Var(&prices, "prices", "price `FILE` over the embedded table, to re-estimate a degraded model (repeatable)")
	fs.Var(&tags, "tag", "risk `TAG` the agent declares (repeatable)")
	fs.Var(&spent, "spent", "`SCOPE=USD` spent in the scope's window: fleet, team, agent or run (repeatable)")
	fs.Var(&reserved, "reserved", "`SCOPE=USD` reserved by running actions (repeatable)")
	out := fs.output("table", "json")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	if *policyFile == "" || *agent == "" || *action == "" {
		return usageErr("%s: --policy, --agent and --action are required", path)
	}
	est, err := parseUSDFlag("estimate", *estimate)
	if err != nil {
		return err
	}
	at, err := parseNow(*now, *tz)
	if err != nil {
		return err
	}
	req := policy.Request{RunID: *runID, AgentID: *agent, Action: *action, RiskTags: tags, EstimatedCost: est,
		Items: *items, Team: *team, Model: *model}
	wire := decisionapi.DecisionRequest{RunID: *runID, AgentID: *agent, Action: *action, RiskTags: tags,
		EstimatedCostUSD: est.USD(), Items: *items, Team: *team, Model: *model}
	if err := wire.Validate(); err != nil {
		return usageErr("%s: invalid request: %v", path, err)
	}
	if *approved != "" {
		req.ApprovalID = *approved
		req.Approval = &policy.ApprovedApproval{ID: *approved}
	}
	var st policy.State
	sp, err := scopeAmounts("spent", spent)
	if err != nil {
		return err
	}
	rs, err := scopeAmounts("reserved", reserved)
	if err != nil {
		return err
	}
	for sc := range st.Usage {
		st.Usage[sc] = policy.Usage{Spent: sp[sc], Reserved: rs[sc]}
	}
	for _, a := range []struct {
		flag, v string
		dst     *time.Time
	}{{"--last-anomaly", *lastCall, &st.LastCallAnomaly}, {"--last-action-anomaly", *lastAction, &st.LastActionAnomaly}} {
		if a.v == "" {
			continue
		}
		d, err := parseAgo(a.v)
		if err != nil {
			return usageErr("%s: %v", a.flag, err)
		}
		*a.dst = at.Add(-d)
	}

	p, err := loadPolicy(*policyFile, overlays)
	if err != nil {
		return err
	}
	if req.Prices, err = degradePrices(p, prices); err != nil {
		return err
	}
	ex := policy.Explain(p, req, st, at)
	if *out == "json" {
		if err := writeJSON(e.stdout, apiExplanation(ex, at)); err != nil {
			return ioErr(err)
		}
	} else {
		printExplanation(e.stdout, p, req, ex)
	}
	if *failOnDeny && ex.Outcome.Decision == policy.Deny {
		return findings()
	}
	return nil
}

// loadPolicy loads a policy, printing its validation errors: they are findings (exit 1), an
// unreadable file is an I/O error.
func loadPolicy(file string, overlays []string) (*policy.Policy, error) {
	p, err := policy.Load(file, overlays...)
	var ve *policy.ValidationError
	switch {
	case errors.As(err, &ve):
		lines := make([]string, 0, len(ve.Errors)+1)
		for _, fe := range ve.Errors {
			lines = append(lines, cell(fe.Error()))
		}
		if ve.Omitted > 0 {
			lines = append(lines, fmt.Sprintf("... and %d more", ve.Omitted))
		}
		return nil, &cliError{code: exitFindings, err: fmt.Errorf("invalid policy:\n%s", strings.Join(lines, "\n"))}
	case err != nil:
		return nil, ioErr(err)
	}
	return p, nil
}

func printExplanation(w io.Writer, p *policy.Policy, req policy.Request, ex policy.Explanation) {
	o := ex.Outcome
	t := newTable(w)
	row(t, "policy:", ex.PolicyVersion+" ("+p.Name()+")")
	row(t, "request:", fmt.Sprintf("agent=%s action=%s estimate=%s items=%d tags=[%s] team=%s run=%s",
		req.AgentID, req.Action, usd(req.EstimatedCost), req.Items, strings.Join(req.RiskTags, ","), req.Team, req.RunID))
	row(t, "derived tags:", strings.Join(ex.DerivedTags, ","))
	if ex.Topic != nil {
		row(t, "topic settings:", fmt.Sprintf("timeout_seconds=%s max_retries=%s", ex.Topic.TimeoutSeconds, ex.Topic.MaxRetries))
	}
	t.Flush()

	fmt.Fprintln(w)
	t = newTable(w)
	row(t, "RULE", "LINE", "DECISION", "MATCH", "WHY")
	for _, r := range ex.Rules {
		match := "no"
		switch {
		case r.Selected:
			match = "selected"
		case r.Matched:
			match = "yes"
		}
		row(t, r.ID, strconv.Itoa(r.Line), r.Decision.String(), match, strings.Join(r.Why, "; "))
	}
	if ex.SelectedRule == "" {
		row(t, "(default_decision)", "", p.DefaultDecision().String(), "selected", "no rule matched")
	}
	t.Flush()

	fmt.Fprintln(w)
	t = newTable(w)
	row(t, "LAYER", "VERDICT", "DETAIL")
	for _, l := range ex.Layers {
		row(t, l.Layer, l.Verdict.String(), l.Detail)
	}
	t.Flush()

	fmt.Fprintln(w)
	t = newTable(w)
	row(t, "decision:", o.Decision.String())
	by := o.RuleID
	if by == "" {
		by = "default_decision"
	}
	row(t, "decided by:", by)
	row(t, "reason:", o.Reason)
	cons := o.Constraints.API()
	cons.Model = o.Degraded.Model
	row(t, "constraints:", formatConstraints(cons))
	if s := decisionapi.RetryAfterSec(o.RetryAfter); s > 0 {
		row(t, "retry after:", strconv.FormatInt(s, 10)+"s")
	}
	if c := o.Concurrency; c.Max > 0 {
		row(t, "concurrency slot:", fmt.Sprintf("%d at once, counted per %s", c.Max, c.Key))
	}
	if r := o.RuleRate; !r.Limit.IsZero() {
		row(t, "rule rate:", fmt.Sprintf("%s, counted per %s", r.Limit, r.Key))
	}
	if r := o.FleetRate; !r.Limit.IsZero() {
		row(t, "fleet rate:", fmt.Sprintf("%s, counted per %s", r.Limit, r.Key))
	}
	row(t, "evidence record:", strconv.FormatBool(o.Evidence))
	t.Flush()
}
