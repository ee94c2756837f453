package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/money"
)

// expectedGroups works the report out from the fixture: settled actions in [from, to), grouped by
// key.
type expectedGroup struct {
	actions           int
	actual, estimated money.Nanos
	in, out           int64
	anomalies         int
}

func expectedReport(t *testing.T, acts []fixtureAction, from, to time.Time, key func(fixtureAction) string) (map[string]*expectedGroup, expectedGroup) {
	groups := map[string]*expectedGroup{}
	var total expectedGroup
	for _, a := range acts {
		if a.settled.IsZero() || a.settled.Before(from) || !a.settled.Before(to) {
			continue
		}
		g := groups[key(a)]
		if g == nil {
			g = &expectedGroup{}
			groups[key(a)] = g
		}
		for _, x := range []*expectedGroup{g, &total} {
			x.actions++
			x.actual += mustUSD(t, a.actual)
			if !a.noDecision {
				x.estimated += mustUSD(t, a.estimate)
			}
			x.in += a.tokensIn
			x.out += a.tokensOut
			if a.anomalous {
				x.anomalies++
			}
		}
	}
	return groups, total
}

func TestReport(t *testing.T) {
	acts := append(fixtureActions(), fixtureAction{id: "ev-7", agent: "legacy-agent", action: "job.cleanup",
		actual: "0.000000001", settled: t0.Add(100 * time.Minute), noDecision: true})
	dir := t.TempDir()
	writeChain(t, dir, evidence.Options{}, acts)
	until := t0.Add(3 * time.Hour)

	t.Run("by agent, whole range", func(t *testing.T) {
		code, out, errOut := runCLI(t, "report", "--evidence", dir, "--by", "agent", "--until", until.Format(time.RFC3339))
		if code != exitOK {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		groups, total := expectedReport(t, acts, time.Time{}, until, func(a fixtureAction) string { return a.agent })
		if len(groups) != 4 {
			t.Fatalf("fixture has %d agents with settlements, want 4", len(groups))
		}
		for agent, g := range groups {
			f := lineWith(t, out, agent+" ")
			tokens := strconv.FormatInt(g.in, 10) + "/" + strconv.FormatInt(g.out, 10)
			want := []string{agent, strconv.Itoa(g.actions), usd(g.actual), percent(float64(g.actual) / float64(total.actual)),
				usd(g.estimated), tokens, strconv.Itoa(g.anomalies), "0"}
			if strings.Join(f, " ") != strings.Join(want, " ") {
				t.Errorf("row %q, want %q", f, want)
			}
		}
		if f := lineWith(t, out, "TOTAL "); f[1] != strconv.Itoa(total.actions) || f[2] != usd(total.actual) || f[4] != usd(total.estimated) {
			t.Errorf("total row %q, want %d actions, %s actual, %s estimated", f, total.actions, usd(total.actual), usd(total.estimated))
		}
		// research-agent: 0.123456789 + 0.876543211 + 0.3, exactly.
		if f := lineWith(t, out, "research-agent "); f[2] != "$1.3" {
			t.Errorf("research-agent actual %s, want $1.3", f[2])
		}
		if !strings.Contains(errOut, "1 settlement(s) had no decision record") {
			t.Errorf("stderr lacks the note on settlements without decision: %q", errOut)
		}
	})

	t.Run("time range, by team and agent, csv", func(t *testing.T) {
		// [09:10, 10:30) holds the settlements of ev-2 (09:12), ev-3 (09:21) and ev-4 (10:05).
		from, to := t0.Add(10*time.Minute), t0.Add(90*time.Minute)
		code, out, errOut := runCLI(t, "report", "--evidence", dir, "--by", "team,agent", "-o", "csv",
			"--since", from.Format(time.RFC3339), "--until", "2026-03-02T10:30:00")
		if code != exitOK {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		groups, _ := expectedReport(t, acts, from, to, func(a fixtureAction) string { return a.team + "," + a.agent })
		if got := strings.Join(rows[0], ","); got != "team,agent,actions,actual_cost_usd,estimated_cost_usd,input_tokens,output_tokens,anomalies,token_cap_breaches" {
			t.Errorf("header %q", got)
		}
		if len(rows)-1 != len(groups) || len(groups) != 3 {
			t.Fatalf("%d rows, want %d groups:\n%s", len(rows)-1, len(groups), out)
		}
		for _, r := range rows[1:] {
			g := groups[r[0]+","+r[1]]
			if g == nil {
				t.Fatalf("unexpected row %q", r)
			}
			if r[2] != strconv.Itoa(g.actions) || r[3] != g.actual.String() || r[4] != g.estimated.String() {
				t.Errorf("row %q, want %d actions, %s actual, %s estimated", r, g.actions, g.actual, g.estimated)
			}
		}
		// Sorted by actual cost, largest first: billing-agent's $1.75 leads.
		if rows[1][1] != "billing-agent" {
			t.Errorf("first row %q, want billing-agent", rows[1])
		}
	})

	t.Run("json by action", func(t *testing.T) {
		code, out, _ := runCLI(t, "report", "--evidence", dir, "--by", "action", "-o", "json", "--until", until.Format(time.RFC3339))
		if code != exitOK {
			t.Fatalf("exit %d", code)
		}
		var res struct {
			Rows []struct {
				Key           map[string]string `json:"key"`
				Actions       int               `json:"actions"`
				ActualCostUSD evidence.USD      `json:"actual_cost_usd"`
			} `json:"rows"`
			Total struct {
				ActualCostUSD   evidence.USD `json:"actual_cost_usd"`
				WithoutDecision int          `json:"without_decision"`
			} `json:"total"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatal(err)
		}
		groups, total := expectedReport(t, acts, time.Time{}, until, func(a fixtureAction) string { return a.action })
		if len(res.Rows) != len(groups) {
			t.Fatalf("%d rows, want %d", len(res.Rows), len(groups))
		}
		for _, r := range res.Rows {
			g := groups[r.Key["action"]]
			if g == nil || r.Actions != g.actions || r.ActualCostUSD.Nanos() != g.actual {
				t.Errorf("row %+v, want %+v", r, g)
			}
		}
		if res.Total.ActualCostUSD.Nanos() != total.actual || res.Total.WithoutDecision != 1 {
			t.Errorf("total %+v, want %s and one settlement without decision", res.Total, total.actual)
		}
	})

	usage := []struct {
		name string
		args []string
		want string
	}{
		{"by model needs the ledger", []string{"--by", "model"}, "--by model needs the ledger"},
		{"unknown dimension", []string{"--by", "planet"}, `--by "planet"`},
		{"repeated dimension", []string{"--by", "agent,agent"}, "agent given twice"},
		{"empty range", []string{"--since", "2026-03-02", "--until", "2026-03-01"}, "is not before"},
		{"bad time", []string{"--since", "yesterday"}, `--since "yesterday"`},
		{"csv only for report", []string{"-o", "xml"}, `--output "xml"`},
	}
	for _, tt := range usage {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, append([]string{"report", "--evidence", dir}, tt.args...)...)
			if code != exitUsage || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, exitUsage, tt.want)
			}
		})
	}
	if code, _, _ := runCLI(t, "report", "--by", "agent"); code != exitUsage {
		t.Errorf("without --evidence: exit %d, want %d", code, exitUsage)
	}
}

func TestParseTimeArg(t *testing.T) {
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	tests := []struct {
		in   string
		loc  *time.Location
		want time.Time
	}{
		{"2026-03-02T09:30:00Z", time.UTC, time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)},
		{"2026-03-02", time.UTC, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)},
		{"2026-03-02", berlin, time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)},
		{"2026-03-02T10:30", time.UTC, time.Date(2026, 3, 2, 10, 30, 0, 0, time.UTC)},
		{"24h", time.UTC, now.Add(-24 * time.Hour)},
		{"7d", time.UTC, now.Add(-7 * 24 * time.Hour)},
		{"2w", time.UTC, now.Add(-14 * 24 * time.Hour)},
	}
	for _, tt := range tests {
		got, err := parseTimeArg("since", tt.in, now, tt.loc)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseTimeArg(%q, %s) = %v, %v; want %v", tt.in, tt.loc, got, err, tt.want)
		}
	}
	for _, bad := range []string{"-5h", "x7d", "tomorrow", "2026-13-01"} {
		if _, err := parseTimeArg("since", bad, now, time.UTC); err == nil {
			t.Errorf("parseTimeArg(%q) succeeded, want an error", bad)
		}
	}
}

func TestReportWarnsOnBrokenChain(t *testing.T) {
	dir := t.TempDir()
	writeChain(t, dir, evidence.Options{}, fixtureActions())
	until := "--until=" + t0.Add(3*time.Hour).Format(time.RFC3339)
	if _, _, errOut := runCLI(t, "report", "--evidence", dir, until); strings.Contains(errOut, "warning") {
		t.Fatalf("intact chain: %q", errOut)
	}
	f := filepath.Join(dir, evidence.FileName(1))
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	// An edited settlement amount: the report still runs, and warns.
	b = bytes.Replace(b, []byte(`"actual_cost_usd":1.75`), []byte(`"actual_cost_usd":0.75`), 1)
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "report", "--evidence", dir, until)
	if code != exitOK || !strings.Contains(errOut, "has 1 problem(s)") || lineWith(t, out, "billing-agent ")[2] != "$0.75" {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}
