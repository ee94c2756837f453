package deploytest

import (
	"fmt"
	"path/filepath"
	"regexp"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/internal/costmetrics"
	"github.com/agentcost/agentcost/internal/policy"
)

// ruleFile is the part of a Prometheus rule file the checks read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// ruleTestFile is the part of a promtool rule test file the checks read.
type ruleTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		AlertRuleTest []struct {
			EvalTime  string           `yaml:"eval_time"`
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func loadYAML(t *testing.T, path string, v any) {
	t.Helper()
	if err := yaml.Unmarshal(readFile(t, path), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestPromtool runs promtool's own checks: rule syntax, the rules' unit tests, and the example
// Prometheus configuration (which loads the rules as well).
func TestPromtool(t *testing.T) {
	tool := promtool(t)
	dir := deployPath(t, "prometheus")
	tests := []struct {
		name string
		args []string
	}{
		{"check rules", []string{"check", "rules", "agentcost-rules.yaml"}},
		{"test rules", []string{"test", "rules", "agentcost-rules_test.yaml"}},
		{"check config", []string{"check", "config", "prometheus.yml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(dir, tool, tt.args...)
			if err != nil {
				t.Fatalf("promtool %v: %v\n%s", tt.args, err, out)
			}
		})
	}
}

// TestAlertRules checks what promtool does not: every metric is one the distribution exposes
// (internal/costmetrics and the budget receiver's health counters),
// with labels it has; every alert has a severity and both annotations; the alerts the deployment
// needs exist; label values match the policy's names; and the unit tests exercise every alert both
// firing and quiet.
func TestAlertRules(t *testing.T) {
	var rules ruleFile
	loadYAML(t, deployPath(t, "prometheus", "agentcost-rules.yaml"), &rules)

	alerts := map[string]string{} // alert name -> expr
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: rule %q is not an alert", g.Name, r.Record)
				continue
			}
			if _, dup := alerts[r.Alert]; dup {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			alerts[r.Alert] = r.Expr
			for _, p := range checkExpr(r.Expr, knownRuleMetrics()) {
				t.Errorf("alert %s: %s", r.Alert, p)
			}
			// Annotations may query Prometheus too.
			for key, text := range r.Annotations {
				for _, name := range metricRefs(text) {
					if !knownRuleMetrics()[name] {
						t.Errorf("alert %s: annotation %s queries unknown metric %s", r.Alert, key, name)
					}
				}
			}
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
			}
			for _, key := range []string{"summary", "description"} {
				if r.Annotations[key] == "" {
					t.Errorf("alert %s: annotation %s is missing", r.Alert, key)
				}
			}
			for _, m := range selectorMatchers(r.Expr) {
				if m.label == "scope" && !isScope(m.value) {
					t.Errorf("alert %s: scope %q is none of the policy's scopes", r.Alert, m.value)
				}
			}
		}
	}

	// The alerts the deployment relies on, by what they must watch.
	required := []struct {
		alert string
		expr  *regexp.Regexp
	}{
		{"AgentcostAnomalies", regexp.MustCompile(`sum by \(agent, level\)[\s\S]*` + costmetrics.NameAnomalies)},
		{"AgentcostAgentBudgetHigh", regexp.MustCompile(regexp.QuoteMeta(fmt.Sprintf(`%s{scope="%s"} >= 0.8`, costmetrics.NameBudgetUtil, policy.ScopeAgent)))},
		{"AgentcostFleetThrottled", regexp.MustCompile(regexp.QuoteMeta(fmt.Sprintf(`%s >= %d`, costmetrics.NameFleetLevel, policy.FleetThrottled)))},
		{"AgentcostFleetPaused", regexp.MustCompile(regexp.QuoteMeta(fmt.Sprintf(`%s == %d`, costmetrics.NameFleetLevel, policy.FleetPaused)))},
		{"AgentcostUnpricedSpans", regexp.MustCompile(costmetrics.NameUnpriced)},
		{"AgentcostBudgetForecastOverLimit", regexp.MustCompile(costmetrics.NameForecast + ` > ` + costmetrics.NameBudgetLimit)},
		{"AgentcostBookingErrors", regexp.MustCompile(costmetrics.NameBookErrors)},
	}
	for _, r := range required {
		expr, ok := alerts[r.alert]
		if !ok {
			t.Errorf("alert %s is missing", r.alert)
			continue
		}
		if !r.expr.MatchString(expr) {
			t.Errorf("alert %s: expr %q does not match %s", r.alert, expr, r.expr)
		}
	}

	// up{job=...} must name a job the example Prometheus configuration scrapes.
	var prom struct {
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	loadYAML(t, deployPath(t, "prometheus", "prometheus.yml"), &prom)
	jobs := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		jobs[sc.JobName] = true
	}
	jobRE := regexp.MustCompile(`\bup\{job="([^"]+)"\}`)
	for name, expr := range alerts {
		for _, m := range jobRE.FindAllStringSubmatch(expr, -1) {
			if !jobs[m[1]] {
				t.Errorf("alert %s watches job %q, which prometheus.yml does not scrape", name, m[1])
			}
		}
	}

	// Every alert is tested firing and quiet.
	var tests ruleTestFile
	loadYAML(t, deployPath(t, "prometheus", "agentcost-rules_test.yaml"), &tests)
	if len(tests.RuleFiles) != 1 || filepath.Base(tests.RuleFiles[0]) != "agentcost-rules.yaml" {
		t.Errorf("rule test file loads %v, want [agentcost-rules.yaml]", tests.RuleFiles)
	}
	firing, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTest {
			if _, ok := alerts[at.Alertname]; !ok {
				t.Errorf("rule test at %s names unknown alert %s", at.EvalTime, at.Alertname)
			}
			if len(at.ExpAlerts) > 0 {
				firing[at.Alertname] = true
			} else {
				quiet[at.Alertname] = true
			}
		}
	}
	for name := range alerts {
		if !firing[name] {
			t.Errorf("alert %s: no rule test where it fires", name)
		}
		if !quiet[name] {
			t.Errorf("alert %s: no rule test where it stays quiet", name)
		}
	}
}

// isScope reports whether s names a policy budget scope.
func isScope(s string) bool {
	for sc := policy.Scope(0); sc < policy.NumScopes; sc++ {
		if sc.String() == s {
			return true
		}
	}
	return false
}
