package main

import (
	"cmp"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/money"
)

// reportDims are the dimensions `report --by` groups by, in display order.
var reportDims = []string{"team", "agent", "run", "action", "model"}

// reportRow is one group of settled actions.
type reportRow struct {
	Key               map[string]string `json:"key"`
	Actions           int64             `json:"actions"`
	ActualCostUSD     evidence.USD      `json:"actual_cost_usd"`
	EstimatedCostUSD  evidence.USD      `json:"estimated_cost_usd"`
	InputTokens       int64             `json:"input_tokens"`
	OutputTokens      int64             `json:"output_tokens"`
	Anomalies         int64             `json:"anomalies"`
	TokenCapBreaches  int64             `json:"token_cap_breaches"`
	WithoutDecision   int64             `json:"without_decision,omitempty"`
	actual, estimated money.Nanos
}

type reportResult struct {
	Evidence string      `json:"evidence"`
	By       []string    `json:"by"`
	Since    time.Time   `json:"since,omitzero"`
	Until    time.Time   `json:"until"`
	Rows     []reportRow `json:"rows"`
	Total    reportRow   `json:"total"`
}

// decisionFacts are the fields of a decision record a settlement is attributed by.
type decisionFacts struct {
	agent, team, run, action string
	estimate                 money.Nanos
}

func report(e *env, path string, args []string) error {
	fs := newFlags(e, path, "(--evidence DIR | --config collector.yaml) [--by agent|team|run|action[,...]] [--since T] [--until T]", `
Chargeback of settled action costs over a time range, from the cost-evidence chain: each settlement
record's actual cost, attributed through the decision record of the same evidence_id (agent, team,
run, action; the settlement's own fields when the decision is missing). A settlement counts when its
time is in [--since, --until). Times are RFC 3339, a date (2026-03-02, midnight in --tz), or a
duration before now (24h, 7d, 2w). Amounts are exact; CSV has no total row.

--config takes the directory from the collector's configuration (its budgetledger extension's
evidence.directory).

--by model needs the ledger: settlement records do not carry the model (use ledger-report --by model).`)
	dir := fs.String("evidence", "", "evidence `DIR`")
	by := fs.String("by", "agent", "group by `DIMS`: agent, team, run or action, comma-separated")
	since := fs.String("since", "", "from `TIME` on (default: the beginning of the chain)")
	until := fs.String("until", "", "before `TIME` (default: now)")
	tz := fs.String("tz", "UTC", "time `ZONE` of dates without an offset")
	coll := addCollectorFlags(fs)
	out := fs.output("table", "csv", "json")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	switch {
	case *dir != "" && coll.set():
		return usageErr("%s: give --evidence or --config, not both", path)
	case coll.set():
		ext, err := coll.load(e.ctx)
		if err != nil {
			return err
		}
		*dir = ext.Evidence.Directory
	case *dir == "":
		return usageErr("%s: --evidence (or --config) is required", path)
	}
	dims, err := parseDims(*by)
	if err != nil {
		return err
	}
	loc, err := loadTZ(*tz)
	if err != nil {
		return err
	}
	now := time.Now().In(loc)
	from, err := parseTimeArg("since", *since, now, loc)
	if err != nil {
		return err
	}
	to := now
	if *until != "" {
		if to, err = parseTimeArg("until", *until, now, loc); err != nil {
			return err
		}
	}
	if !from.IsZero() && !from.Before(to) {
		return usageErr("--since %s is not before --until %s", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}

	res, err := buildReport(*dir, dims, from, to)
	if err != nil {
		return err
	}
	// A chargeback from a tampered chain would be silently wrong: say so, without failing.
	if rep, err := evidence.Verify(*dir); err == nil && !rep.OK() {
		fmt.Fprintf(e.stderr, "warning: the evidence chain in %s has %d problem(s); run 'agentcostctl evidence verify %s'\n",
			*dir, rep.ProblemCount, *dir)
	}
	switch *out {
	case "json":
		err = writeJSON(e.stdout, res)
	case "csv":
		err = writeReportCSV(e.stdout, res)
	default:
		err = writeReportTable(e.stdout, res)
		if err == nil && res.Total.WithoutDecision > 0 {
			fmt.Fprintf(e.stderr, "note: %d settlement(s) had no decision record in %s; they are attributed by their own fields\n",
				res.Total.WithoutDecision, *dir)
		}
	}
	if err != nil {
		return ioErr(err)
	}
	return nil
}

func parseDims(s string) ([]string, error) {
	var dims []string
	for d := range strings.SplitSeq(s, ",") {
		d = strings.TrimSpace(d)
		switch {
		case d == "model":
			return nil, usageErr("--by model needs the ledger: settlement evidence records carry no model " +
				"(use 'agentcostctl ledger-report --by model', or group by agent, team, run or action)")
		case !slices.Contains(reportDims, d):
			return nil, usageErr("--by %q: want agent, team, run or action", d)
		case slices.Contains(dims, d):
			return nil, usageErr("--by %q: %s given twice", s, d)
		}
		dims = append(dims, d)
	}
	return dims, nil
}

// parseTimeArg parses an RFC 3339 time, a date or date-time without offset (in loc), or a
// duration before now ("24h", "7d", "2w").
func parseTimeArg(flagName, s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	if u, ok := unit[s[len(s)-1]]; ok {
		if n, err := strconv.ParseInt(s[:len(s)-1], 10, 32); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * u), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usageErr("--%s %q: want an RFC 3339 time, a date (2006-01-02) or a duration before now (24h, 7d)", flagName, s)
}

// buildReport scans the chain once: decisions are indexed by evidence id (a decision precedes its
// settlement), settlements in [from, to) are grouped.
func buildReport(dir string, dims []string, from, to time.Time) (*reportResult, error) {
	decisions := map[string]decisionFacts{}
	groups := map[string]*reportRow{}
	res := &reportResult{Evidence: dir, By: dims, Since: from, Until: to, Rows: []reportRow{},
		Total: reportRow{Key: map[string]string{}}}
	err := evidence.Scan(dir, func(r evidence.Record) error {
		switch r.Kind {
		case evidence.KindDecision:
			decisions[r.EvidenceID] = decisionFacts{agent: r.AgentID, team: r.Team, run: r.RunID, action: r.Action,
				estimate: r.EstimatedCostUSD.Nanos()}
			return nil
		case evidence.KindSettlement:
		default:
			return nil
		}
		if r.Time.Before(from) || !r.Time.Before(to) {
			return nil
		}
		d, found := decisions[r.EvidenceID]
		facts := decisionFacts{
			agent: firstNonEmpty(d.agent, r.AgentID), team: firstNonEmpty(d.team, r.Team),
			run: firstNonEmpty(d.run, r.RunID), action: firstNonEmpty(d.action, r.Action),
			estimate: cmp.Or(d.estimate, r.EstimatedCostUSD.Nanos()),
		}
		key := make(map[string]string, len(dims))
		var id strings.Builder
		for _, dim := range dims {
			v := map[string]string{"agent": facts.agent, "team": facts.team, "run": facts.run, "action": facts.action}[dim]
			key[dim] = v
			id.WriteString(strconv.Quote(v))
		}
		g := groups[id.String()]
		if g == nil {
			g = &reportRow{Key: key}
			groups[id.String()] = g
		}
		for _, row := range []*reportRow{g, &res.Total} {
			if err := row.add(r, facts.estimate, found); err != nil {
				return fmt.Errorf("settlement seq %d: %w", r.Seq, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, ioErr(fmt.Errorf("reading %s: %w", dir, err))
	}
	for _, g := range groups {
		g.seal()
		res.Rows = append(res.Rows, *g)
	}
	res.Total.seal()
	slices.SortFunc(res.Rows, func(a, b reportRow) int {
		if c := cmp.Compare(b.actual, a.actual); c != 0 {
			return c
		}
		for _, d := range dims {
			if c := cmp.Compare(a.Key[d], b.Key[d]); c != 0 {
				return c
			}
		}
		return 0
	})
	return res, nil
}

func (row *reportRow) add(r evidence.Record, estimate money.Nanos, withDecision bool) error {
	var ok bool
	if row.actual, ok = addNanos(row.actual, r.ActualCostUSD.Nanos()); !ok {
		return fmt.Errorf("total actual cost overflows")
	}
	if row.estimated, ok = addNanos(row.estimated, estimate); !ok {
		return fmt.Errorf("total estimated cost overflows")
	}
	row.Actions++
	if r.Tokens != nil {
		row.InputTokens += r.Tokens.Input
		row.OutputTokens += r.Tokens.Output
	}
	if r.Anomaly != nil && r.Anomaly.Anomalous {
		row.Anomalies++
	}
	if r.TokenCapBreach {
		row.TokenCapBreaches++
	}
	if !withDecision {
		row.WithoutDecision++
	}
	return nil
}

func (row *reportRow) seal() {
	row.ActualCostUSD, row.EstimatedCostUSD = evidence.USD(row.actual), evidence.USD(row.estimated)
}

// addNanos adds two non-negative amounts, reporting overflow.
func addNanos(a, b money.Nanos) (money.Nanos, bool) {
	if b > 0 && a > math.MaxInt64-b {
		return 0, false
	}
	return a + b, true
}

func writeReportTable(w io.Writer, res *reportResult) error {
	since := "the beginning"
	if !res.Since.IsZero() {
		since = res.Since.Format(time.RFC3339)
	}
	fmt.Fprintf(w, "settled actions from %s to %s (%s)\n\n", since, res.Until.Format(time.RFC3339), res.Evidence)
	t := newTable(w)
	header := make([]string, 0, len(res.By)+7)
	for _, d := range res.By {
		header = append(header, strings.ToUpper(d))
	}
	row(t, append(header, "ACTIONS", "ACTUAL", "SHARE", "ESTIMATED", "TOKENS IN/OUT", "ANOMALIES", "TOKEN CAP BREACHES")...)
	line := func(r reportRow, keys []string) {
		share := "-"
		if res.Total.actual > 0 {
			share = percent(float64(r.actual) / float64(res.Total.actual))
		}
		row(t, append(keys, strconv.FormatInt(r.Actions, 10), usd(r.actual), share, usd(r.estimated),
			fmt.Sprintf("%d/%d", r.InputTokens, r.OutputTokens), strconv.FormatInt(r.Anomalies, 10),
			strconv.FormatInt(r.TokenCapBreaches, 10))...)
	}
	for _, r := range res.Rows {
		keys := make([]string, len(res.By))
		for i, d := range res.By {
			keys[i] = r.Key[d]
		}
		line(r, keys)
	}
	totalKeys := make([]string, len(res.By))
	totalKeys[0] = "TOTAL"
	for i := 1; i < len(totalKeys); i++ {
		totalKeys[i] = ""
	}
	line(res.Total, totalKeys)
	return t.Flush()
}

func writeReportCSV(w io.Writer, res *reportResult) error {
	cw := csv.NewWriter(w)
	header := append(slices.Clone(res.By), "actions", "actual_cost_usd", "estimated_cost_usd", "input_tokens",
		"output_tokens", "anomalies", "token_cap_breaches")
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, r := range res.Rows {
		rec := make([]string, 0, len(header))
		for _, d := range res.By {
			rec = append(rec, csvSafe(r.Key[d]))
		}
		rec = append(rec, strconv.FormatInt(r.Actions, 10), r.actual.String(), r.estimated.String(),
			strconv.FormatInt(r.InputTokens, 10), strconv.FormatInt(r.OutputTokens, 10),
			strconv.FormatInt(r.Anomalies, 10), strconv.FormatInt(r.TokenCapBreaches, 10))
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe defuses a value a spreadsheet would run as a formula (an agent id is agent-controlled).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
