package deploytest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/internal/costmetrics"
)

// dashboard is the part of a Grafana dashboard the checks read.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	} `json:"gridPos"`
	Targets []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // of a collapsed row
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// dashboardDatasource is the data source every panel and query uses: the dashboard's variable.
var dashboardDatasource = datasource{Type: "prometheus", UID: "${datasource}"}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data := readFile(t, deployPath(t, "grafana", "agentcost-dashboard.json"))
	if !json.Valid(data) {
		t.Fatal("agentcost-dashboard.json is not valid JSON")
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("agentcost-dashboard.json: %v", err)
	}
	return d
}

// allPanels flattens rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// dashboardExpr is one PromQL query of the dashboard and where it is.
type dashboardExpr struct {
	where string
	expr  string
}

func dashboardExprs(d dashboard) []dashboardExpr {
	var exprs []dashboardExpr
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			exprs = append(exprs, dashboardExpr{fmt.Sprintf("panel %d %q query %s", p.ID, p.Title, tg.RefID), tg.Expr})
		}
	}
	return exprs
}

// TestDashboard checks the dashboard's structure: unique panel ids, panels on the 24-column grid
// without overlaps, every query on the dashboard's Prometheus data source variable.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("uid %q, title %q, schemaVersion %d: all are required", d.UID, d.Title, d.SchemaVersion)
	}
	hasDSVar := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && string(v.Query) == `"prometheus"` {
			hasDSVar = true
		}
	}
	if !hasDSVar {
		t.Error("no datasource variable of type prometheus")
	}

	ids := map[int]string{}
	type rect struct {
		title      string
		x, y, w, h int
	}
	var rects []rect
	for _, p := range allPanels(d.Panels) {
		if prev, dup := ids[p.ID]; dup || p.ID == 0 {
			t.Errorf("panel %q: id %d is zero or also used by %q", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is off the 24-column grid", p.Title, g)
		}
		for _, r := range rects {
			if g.X < r.x+r.w && r.x < g.X+g.W && g.Y < r.y+r.h && r.y < g.Y+g.H {
				t.Errorf("panel %q overlaps panel %q", p.Title, r.title)
			}
		}
		rects = append(rects, rect{p.Title, g.X, g.Y, g.W, g.H})
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no queries", p.Title)
		}
		if p.Datasource == nil || *p.Datasource != dashboardDatasource {
			t.Errorf("panel %q: datasource %+v, want %+v", p.Title, p.Datasource, dashboardDatasource)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q query %s: empty expr", p.Title, tg.RefID)
			}
			if tg.Datasource == nil || *tg.Datasource != dashboardDatasource {
				t.Errorf("panel %q query %s: datasource %+v, want %+v", p.Title, tg.RefID, tg.Datasource, dashboardDatasource)
			}
		}
	}
}

// TestDashboardMetrics checks every query against the names (from internal/costmetrics) and labels
// the distribution exposes, and that the dashboard shows what an operator needs.
func TestDashboardMetrics(t *testing.T) {
	d := loadDashboard(t)
	exprs := dashboardExprs(d)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: query: %v", v.Name, err)
		}
		exprs = append(exprs, dashboardExpr{"variable " + v.Name, q.Query})
		if v.Definition != q.Query {
			t.Errorf("variable %s: definition %q differs from query %q", v.Name, v.Definition, q.Query)
		}
	}
	for _, e := range exprs {
		for _, p := range checkExpr(e.expr, knownMetrics()) {
			t.Errorf("%s: %s in %q", e.where, p, e.expr)
		}
		for _, m := range selectorMatchers(e.expr) {
			if m.label == "scope" && !strings.HasPrefix(m.value, "$") && !isScope(m.value) {
				t.Errorf("%s: scope %q is none of the policy's scopes", e.where, m.value)
			}
		}
	}

	// What the dashboard must show: a metric, grouped by these labels (nil: any query of it).
	required := []struct {
		what   string
		metric string
		by     []string
	}{
		{"spend per agent", costmetrics.NameSpend, []string{"agent"}},
		{"spend by model", costmetrics.NameSpend, []string{"model"}},
		{"spend by team", costmetrics.NameSpend, []string{"team"}},
		{"budget utilization", costmetrics.NameBudgetUtil, nil},
		{"fleet level", costmetrics.NameFleetLevel, nil},
		{"anomalies per agent and level", costmetrics.NameAnomalies, []string{"agent", "level"}},
		{"decisions by decision and rule", costmetrics.NameDecisions, []string{"decision", "rule"}},
		{"decision latency", costmetrics.NameDecisionDur + "_bucket", []string{"le"}},
		{"unpriced spans", costmetrics.NameUnpriced, nil},
	}
	for _, r := range required {
		if !anyExpr(exprs, r.metric, r.by) {
			t.Errorf("dashboard lacks %s: no query of %s grouped by %v", r.what, r.metric, r.by)
		}
	}
	quantiles := map[string]bool{}
	quantileRE := regexp.MustCompile(`histogram_quantile\(\s*([0-9.]+)\s*,[\s\S]*` + costmetrics.NameDecisionDur + `_bucket`)
	for _, e := range exprs {
		if m := quantileRE.FindStringSubmatch(e.expr); m != nil {
			quantiles[strings.TrimRight(strings.TrimRight(m[1], "0"), ".")] = true
		}
	}
	for _, q := range []string{"0.5", "0.99"} {
		if !quantiles[q] {
			t.Errorf("dashboard lacks the decision latency quantile %s (has %v)", q, quantiles)
		}
	}
}

// anyExpr reports whether some query uses metric, grouped by exactly the labels by (any grouping
// when by is nil).
func anyExpr(exprs []dashboardExpr, metric string, by []string) bool {
	for _, e := range exprs {
		uses := false
		for _, name := range metricRefs(e.expr) {
			uses = uses || name == metric
		}
		if !uses {
			continue
		}
		if by == nil {
			return true
		}
		for _, g := range groupingLabels(e.expr) {
			if strings.Join(g, ",") == strings.Join(by, ",") {
				return true
			}
		}
	}
	return false
}

// grafanaVars stand in for Grafana's variables so promtool can parse the queries.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m",
	"$__interval", "1m",
	"$__range", "1h",
	"$agent", ".*",
	"$team", ".*",
	"$scope", ".*",
)

// TestDashboardPromQL parses every panel query with promtool: they go into a temporary rule file
// as recording rules, with Grafana's variables replaced by values.
func TestDashboardPromQL(t *testing.T) {
	tool := promtool(t)
	var rules []map[string]string
	for i, e := range dashboardExprs(loadDashboard(t)) {
		expr := grafanaVars.Replace(e.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: unknown Grafana variable in %q", e.where, e.expr)
			continue
		}
		rules = append(rules, map[string]string{"record": fmt.Sprintf("dashboard:query_%d", i), "expr": expr})
	}
	data, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(filepath.Dir(path), tool, "check", "rules", path); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}
