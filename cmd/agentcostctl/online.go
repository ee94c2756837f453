package main

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

const onlineHelp = `

The endpoint is --endpoint, else $AGENTCOST_ENDPOINT, else ` + defaultEndpoint + `; the bearer token is
read from --token-file, else $AGENTCOST_TOKEN, and is never printed.`

func decide(e *env, path string, args []string) error {
	fs := newFlags(e, path, "--agent ID --action TOPIC --estimate USD [flags]", `
Asks the decision endpoint (POST /v1/decisions) whether an action may run, as an agent would. An
allowed action reserves its estimate and holds a lease until it is released or expires.`+onlineHelp)
	o := addOnlineFlags(fs)
	var (
		agent      = fs.String("agent", "", "agent `ID` (the canonical agent key)")
		action     = fs.String("action", "", "action `TOPIC`, e.g. job.research.company")
		estimate   = fs.String("estimate", "", "estimated cost in `USD`")
		items      = fs.Int64("items", 0, "number of `N` items the action processes")
		team       = fs.String("team", "", "team `ID`")
		runID      = fs.String("run", "", "run `ID`")
		approval   = fs.String("approval", "", "approval `ID` a reviewer granted for this action")
		idemKey    = fs.String("idempotency-key", "", "`KEY` that makes a retried request return the first decision")
		failOnDeny = fs.Bool("fail-on-deny", false, "exit 1 when the decision is deny")
		tags       stringList
		meta       stringList
	)
	fs.Var(&tags, "tag", "risk `TAG` (repeatable)")
	fs.Var(&meta, "meta", "`KEY=VALUE` recorded with the decision's evidence (repeatable)")
	out := fs.output("table", "json")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	if *estimate == "" {
		return usageErr("%s: --estimate is required", path)
	}
	est, err := parseUSDFlag("estimate", *estimate)
	if err != nil {
		return err
	}
	req := decisionapi.DecisionRequest{RunID: *runID, AgentID: *agent, Action: *action, RiskTags: tags,
		EstimatedCostUSD: est.USD(), Items: *items, Team: *team, ApprovalID: *approval, IdempotencyKey: *idemKey}
	for _, kv := range meta {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return usageErr("--meta %q: want KEY=VALUE", kv)
		}
		if req.Metadata == nil {
			req.Metadata = map[string]string{}
		}
		req.Metadata[k] = v
	}
	if err := req.Validate(); err != nil {
		return usageErr("%s: invalid request: %v", path, err)
	}
	c, err := o.client(e)
	if err != nil {
		return err
	}
	var resp decisionapi.DecisionResponse
	if err := c.do(e.ctx, http.MethodPost, decisionapi.PathDecisions, nil, req, &resp); err != nil {
		return err
	}
	if *out == "json" {
		if err := writeJSON(e.stdout, resp); err != nil {
			return ioErr(err)
		}
	} else {
		printDecision(e.stdout, resp)
	}
	if *failOnDeny && resp.Decision == decisionapi.DecisionDeny {
		return findings()
	}
	return nil
}

func printDecision(w io.Writer, r decisionapi.DecisionResponse) {
	t := newTable(w)
	row(t, "decision:", string(r.Decision))
	row(t, "decision id:", r.DecisionID)
	by := r.RuleID
	if by == "" {
		by = "default_decision"
	}
	row(t, "decided by:", by)
	row(t, "reason:", r.Reason)
	row(t, "policy version:", r.PolicyVersion)
	row(t, "constraints:", formatConstraints(r.Constraints))
	if r.RetryAfterSec > 0 {
		row(t, "retry after:", strconv.FormatInt(r.RetryAfterSec, 10)+"s")
	}
	if r.LeaseID != "" {
		row(t, "lease:", r.LeaseID)
	}
	if r.ApprovalID != "" {
		row(t, "approval:", r.ApprovalID)
	}
	if !r.ExpiresAt.IsZero() {
		row(t, "expires:", r.ExpiresAt.Format(time.RFC3339))
	}
	row(t, "evidence:", r.EvidenceID)
	t.Flush()
	if len(r.Budget) == 0 {
		return
	}
	fmt.Fprintln(w)
	t = newTable(w)
	budgetHeader(t)
	for _, scope := range decisionapi.Scopes() {
		if b, ok := r.Budget[scope]; ok {
			budgetRow(t, scope, b)
		}
	}
	t.Flush()
}

func budgetHeader(t io.Writer) {
	row(t, "SCOPE", "ID", "WINDOW", "SPENT", "RESERVED", "LIMIT", "UTILIZATION", "FORECAST", "LEVEL")
}

func budgetRow(t io.Writer, scope string, b decisionapi.BudgetStatus) {
	row(t, scope, b.ID, b.Window, usdFloat(b.SpentUSD), usdFloat(b.ReservedUSD), usdFloat(b.LimitUSD),
		percent(b.Utilization), usdForecast(b.ForecastUSD), string(b.Level))
}

// usdForecast formats a forecast, an extrapolation rather than an amount, to the cent.
func usdForecast(f float64) string {
	return "$" + strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64)
}

func budgets(e *env, path string, args []string) error {
	fs := newFlags(e, path, "[--scope SCOPE]", `
Shows every configured budget with its spend in the current window (GET /v1/budgets): scope, id,
window, spent, reserved, limit, utilization = (spent + reserved) / limit, the forecast at the
window's end and the level.`+onlineHelp)
	o := addOnlineFlags(fs)
	var scopes stringList
	fs.Var(&scopes, "scope", "only `SCOPE`: fleet, team, agent, run or model (repeatable)")
	out := fs.output("table", "json")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	c, err := o.client(e)
	if err != nil {
		return err
	}
	var resp decisionapi.BudgetsResponse
	err = getPages(e, c, decisionapi.PathBudgets, url.Values{}, func(page *decisionapi.BudgetsResponse) string {
		scopes := append(resp.Scopes, page.Scopes...)
		resp, resp.Scopes = *page, scopes
		return page.NextCursor
	})
	if err != nil {
		return err
	}
	resp.NextCursor = ""
	if len(scopes) > 0 {
		resp.Scopes = slices.DeleteFunc(resp.Scopes, func(s decisionapi.ScopeBudget) bool {
			return !slices.Contains(scopes, s.Scope)
		})
	}
	if *out == "json" {
		if err := writeJSON(e.stdout, resp); err != nil {
			return ioErr(err)
		}
		return nil
	}
	fmt.Fprintf(e.stdout, "policy %s, fleet level %s\n\n", cell(resp.PolicyVersion), cell(string(resp.Fleet.Name)))
	t := newTable(e.stdout)
	budgetHeader(t)
	for _, s := range resp.Scopes {
		budgetRow(t, s.Scope, s.BudgetStatus)
	}
	t.Flush()
	return nil
}

func approvalsList(e *env, path string, args []string) error {
	fs := newFlags(e, path, "[--state STATE]", `
Lists approval requests (GET /v1/approvals), oldest first. Reviewer role.`+onlineHelp)
	o := addOnlineFlags(fs)
	state := fs.String("state", "pending", "`STATE`: pending, approved, denied, expired, consumed or all")
	out := fs.output("table", "json")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	q := url.Values{}
	if *state != "all" {
		if _, err := decisionapi.ParseApprovalState(*state); err != nil || *state == "" {
			return usageErr("--state %q: want pending, approved, denied, expired, consumed or all", *state)
		}
		q.Set("state", *state)
	}
	c, err := o.client(e)
	if err != nil {
		return err
	}
	var resp decisionapi.ApprovalList
	err = getPages(e, c, decisionapi.PathApprovals, q, func(page *decisionapi.ApprovalList) string {
		resp.Approvals = append(resp.Approvals, page.Approvals...)
		return page.NextCursor
	})
	if err != nil {
		return err
	}
	if *out == "json" {
		if err := writeJSON(e.stdout, resp); err != nil {
			return ioErr(err)
		}
		return nil
	}
	if len(resp.Approvals) == 0 {
		fmt.Fprintf(e.stdout, "no approvals (state %s)\n", *state)
		return nil
	}
	t := newTable(e.stdout)
	row(t, "ID", "STATE", "AGENT", "ACTION", "ESTIMATE", "RULE", "REQUESTED BY", "CREATED", "EXPIRES")
	for _, a := range resp.Approvals {
		row(t, a.ApprovalID, string(a.State), a.AgentID, a.Action, usdFloat(a.EstimatedCostUSD), a.RuleID,
			a.RequestedBy, formatTime(a.CreatedAt), formatTime(a.ExpiresAt))
	}
	t.Flush()
	return nil
}

// getPages fetches every page of the list at path (the query q plus limit and cursor) and hands
// each to add, which keeps its items and returns its next_cursor.
func getPages[P any](e *env, c *client, path string, q url.Values, add func(page *P) string) error {
	return followPages(q, func(q url.Values) (string, error) {
		var page P
		if err := c.do(e.ctx, http.MethodGet, path, q, nil, &page); err != nil {
			return "", err
		}
		return add(&page), nil
	})
}

// maxListPages bounds the pages one list command follows, against a server whose list never ends.
const maxListPages = 10000

// followPages fetches every page of a list endpoint in the largest pages the API allows: fetch
// gets the page of the query (q plus limit and cursor) and returns its next_cursor.
func followPages(q url.Values, fetch func(q url.Values) (next string, err error)) error {
	cursor := ""
	for pages := 0; ; pages++ {
		pq := url.Values{}
		for k, v := range q {
			pq[k] = v
		}
		pq.Set(decisionapi.QueryLimit, strconv.Itoa(decisionapi.MaxListLimit))
		if cursor != "" {
			pq.Set(decisionapi.QueryCursor, cursor)
		}
		next, err := fetch(pq)
		if err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		if next == cursor || pages+1 >= maxListPages {
			return fmt.Errorf("the server's list does not end: page %d repeats or passes %d pages", pages+1, maxListPages)
		}
		cursor = next
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func approvalsGet(e *env, path string, args []string) error {
	fs := newFlags(e, path, "ID", `Shows one approval request (GET /v1/approvals/{id}).`+onlineHelp)
	o := addOnlineFlags(fs)
	out := fs.output("table", "json")
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	return approvalCall(e, fs, o, *out, http.MethodGet, decisionapi.PathApproval, pos[0], nil)
}

func approvalsApprove(e *env, path string, args []string) error {
	fs := newFlags(e, path, "ID [constraint flags] [--cost-cap USD] [--comment TEXT]", `
Approves a pending approval request (POST /v1/approvals/{id}/approve), optionally with tighter
constraints, which merge tighter-of into the decision, and a lower cost cap. Reviewer role; the
server records the reviewer's identity.`+onlineHelp)
	o := addOnlineFlags(fs)
	var runtime, retries, concurrent, tokens, toolCalls, depth optInt
	fs.Var(&runtime, "max-runtime-sec", "deadline of the action in `N` seconds")
	fs.Var(&retries, "max-retries", "`N` retries allowed")
	fs.Var(&concurrent, "max-concurrent", "`N` such actions at once")
	fs.Var(&tokens, "max-tokens", "`N` output tokens per LLM call")
	fs.Var(&toolCalls, "max-tool-calls", "`N` tool calls per run")
	fs.Var(&depth, "max-depth", "agent recursion depth `N` per run")
	rate := fs.String("rate-limit", "", "`N/period` such actions, e.g. 20/hour")
	costCap := fs.String("cost-cap", "", "deny the action if its estimate exceeds `USD`")
	comment := fs.String("comment", "", "`TEXT` recorded with the approval")
	out := fs.output("table", "json")
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	req := decisionapi.ApproveRequest{Comment: *comment, Constraints: decisionapi.Constraints{
		MaxRuntimeSec: runtime.ptr(), MaxRetries: retries.ptr(), MaxConcurrent: concurrent.ptr(),
		RateLimit: *rate, MaxTokens: tokens.ptr(), MaxToolCalls: toolCalls.ptr(), MaxDepth: depth.ptr(),
	}}
	if *costCap != "" {
		n, err := parseUSDFlag("cost-cap", *costCap)
		if err != nil {
			return err
		}
		v := n.USD()
		req.CostCapUSD = &v
	}
	if err := req.Validate(); err != nil {
		return usageErr("%s: invalid approval: %v", path, err)
	}
	return approvalCall(e, fs, o, *out, http.MethodPost, decisionapi.PathApprove, pos[0], req)
}

func approvalsDeny(e *env, path string, args []string) error {
	fs := newFlags(e, path, "ID --reason TEXT", `
Denies a pending approval request (POST /v1/approvals/{id}/deny). The reason is required: it is
recorded in the evidence and shown to the agent. Reviewer role.`+onlineHelp)
	o := addOnlineFlags(fs)
	reason := fs.String("reason", "", "why the action is denied (`TEXT`, required)")
	out := fs.output("table", "json")
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if strings.TrimSpace(*reason) == "" {
		return usageErr("%s: --reason is required", path)
	}
	req := decisionapi.DenyRequest{Reason: *reason}
	if err := req.Validate(); err != nil {
		return usageErr("%s: invalid denial: %v", path, err)
	}
	return approvalCall(e, fs, o, *out, http.MethodPost, decisionapi.PathDeny, pos[0], req)
}

// approvalCall calls an approval endpoint and prints the approval it answers with.
func approvalCall(e *env, fs *flagSet, o *onlineOpts, out, method, pattern, id string, body any) error {
	if err := decisionapi.ValidateID("approval id", id); err != nil {
		return usageErr("%s: %v", fs.path, err)
	}
	c, err := o.client(e)
	if err != nil {
		return err
	}
	var a decisionapi.Approval
	if err := c.do(e.ctx, method, pathOf(pattern, id), nil, body, &a); err != nil {
		return err
	}
	if out == "json" {
		if err := writeJSON(e.stdout, a); err != nil {
			return ioErr(err)
		}
		return nil
	}
	printApproval(e.stdout, a)
	return nil
}

func printApproval(w io.Writer, a decisionapi.Approval) {
	t := newTable(w)
	row(t, "approval:", a.ApprovalID)
	row(t, "state:", string(a.State))
	row(t, "agent:", a.AgentID)
	row(t, "action:", a.Action)
	if a.Team != "" {
		row(t, "team:", a.Team)
	}
	if a.RunID != "" {
		row(t, "run:", a.RunID)
	}
	row(t, "estimate:", usdFloat(a.EstimatedCostUSD))
	if a.Items > 0 {
		row(t, "items:", strconv.FormatInt(a.Items, 10))
	}
	if len(a.RiskTags) > 0 {
		row(t, "risk tags:", strings.Join(a.RiskTags, ","))
	}
	row(t, "rule:", a.RuleID)
	row(t, "reason:", a.Reason)
	row(t, "requested by:", a.RequestedBy)
	row(t, "created:", formatTime(a.CreatedAt))
	row(t, "expires:", formatTime(a.ExpiresAt))
	if a.Reviewer != "" {
		row(t, "reviewer:", a.Reviewer)
		row(t, "decided:", formatTime(a.DecidedAt))
	}
	switch {
	case a.Comment != "" && a.State == decisionapi.ApprovalDenied:
		// The server keeps the reviewer's --reason of a denial in comment.
		row(t, "deny reason:", a.Comment)
	case a.Comment != "":
		row(t, "comment:", a.Comment)
	}
	if !a.Constraints.IsZero() {
		row(t, "constraints:", formatConstraints(a.Constraints))
	}
	if a.CostCapUSD != nil {
		row(t, "cost cap:", usdFloat(*a.CostCapUSD))
	}
	if a.EvidenceID != "" {
		row(t, "evidence:", a.EvidenceID)
	}
	t.Flush()
}
