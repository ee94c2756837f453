package deploytest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/agentcost/agentcost/internal/costmetrics"
	"github.com/agentcost/agentcost/receiver/budgetreceiver"
)

// repoRoot is the repository root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

// deployPath is a path under deploy/.
func deployPath(t *testing.T, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{repoRoot(t), "deploy"}, elem...)...)
}

// readFile reads a file or fails the test.
func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// requireTool returns the path of a command-line tool. Without it the test is skipped, loudly,
// unless CI=true, where a missing tool fails the test: CI installs it (.ci/run).
func requireTool(t *testing.T, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found in PATH (%s)", name, install)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI=true, so this is a failure, not a skip", msg)
	}
	t.Skipf("SKIPPED: %s; these checks did not run", msg)
	return ""
}

// promtool is the path of promtool, from Debian's prometheus package.
func promtool(t *testing.T) string {
	t.Helper()
	return requireTool(t, "promtool", "apt-get install prometheus")
}

// run runs a command in dir and returns its combined output.
func run(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

// TestMain removes the collector binary the tests build.
func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// collectorBinary builds ./cmd/otelcol-agentcost once per test process and returns its path.
func collectorBinary(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	goTool := requireTool(t, "go", "the Go toolchain")
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "deploytest-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "otelcol-agentcost")
		var out string
		out, buildErr = run(root, goTool, "build", "-o", binPath, "./cmd/otelcol-agentcost")
		if buildErr != nil {
			buildErr = fmt.Errorf("go build ./cmd/otelcol-agentcost: %w\n%s", buildErr, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// knownMetrics are the metric names a Prometheus scrape of the metrics pipeline can return:
// the costmetrics names, with the decision-latency histogram only as its _bucket, _sum and _count
// series (the bare histogram name is no series).
func knownMetrics() map[string]bool {
	known := map[string]bool{}
	for _, name := range []string{
		costmetrics.NameSpend, costmetrics.NameTokens, costmetrics.NameAnomalies, costmetrics.NameUnpriced,
		costmetrics.NameOverflow, costmetrics.NameBookErrors, costmetrics.NameDuplicates,
		costmetrics.NameBudgetSpent, costmetrics.NameBudgetLimit, costmetrics.NameBudgetUtil,
		costmetrics.NameForecast, costmetrics.NameFleetLevel, costmetrics.NameDecisions,
	} {
		known[name] = true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		known[costmetrics.NameDecisionDur+suffix] = true
	}
	return known
}

// knownRuleMetrics are knownMetrics plus the budget receiver's own health counters, which the
// alerting rules watch too (the dashboard keeps to the costmetrics names).
func knownRuleMetrics() map[string]bool {
	known := knownMetrics()
	for _, name := range []string{
		budgetreceiver.NameLedgerUnavailable, budgetreceiver.NamePolicyReloadErrors,
		budgetreceiver.NameEvidenceErrors, budgetreceiver.NameEvidenceDropped, budgetreceiver.NameTokenCapBreaches,
		budgetreceiver.NameReportedClipped, costmetrics.NameRefused, costmetrics.NameMalformed,
		budgetreceiver.NameFreezesActive, budgetreceiver.NameBudgetLevel, budgetreceiver.NameNotifications,
		budgetreceiver.NameNotificationsOutq, budgetreceiver.NameTaskErrors,
	} {
		known[name] = true
	}
	return known
}

// metricLabels are the labels of each metric (DESIGN.md "Metrics" and the budget receiver's
// contract), plus le for the histogram's buckets. job and instance come from the scrape.
var metricLabels = map[string][]string{
	costmetrics.NameSpend:                   {"agent", "team", "model", "provider"},
	costmetrics.NameTokens:                  {"agent", "model", "type"},
	costmetrics.NameAnomalies:               {"agent", "level"},
	costmetrics.NameUnpriced:                {"model"},
	costmetrics.NameOverflow:                {"label"},
	costmetrics.NameBookErrors:              {},
	costmetrics.NameDuplicates:              {},
	costmetrics.NameBudgetSpent:             {"scope", "id", "window"},
	costmetrics.NameBudgetLimit:             {"scope", "id", "window"},
	costmetrics.NameBudgetUtil:              {"scope", "id", "window"},
	costmetrics.NameForecast:                {"scope", "id", "window"},
	costmetrics.NameFleetLevel:              {},
	costmetrics.NameDecisions:               {"decision", "rule"},
	costmetrics.NameDecisionDur + "_bucket": {"le"},
	costmetrics.NameDecisionDur + "_sum":    {},
	costmetrics.NameDecisionDur + "_count":  {},

	budgetreceiver.NameLedgerUnavailable:  {"fail_mode"},
	budgetreceiver.NamePolicyReloadErrors: {},
	budgetreceiver.NameEvidenceErrors:     {},
	budgetreceiver.NameEvidenceDropped:    {},
	budgetreceiver.NameTokenCapBreaches:   {"agent"},
	budgetreceiver.NameReportedClipped:    {"agent"},
	budgetreceiver.NameFreezesActive:      {},
	budgetreceiver.NameBudgetLevel:        {"scope", "id", "window"},
	budgetreceiver.NameNotifications:      {"outcome"},
	budgetreceiver.NameNotificationsOutq:  {},
	budgetreceiver.NameTaskErrors:         {"task"},
	costmetrics.NameRefused:               {"reason"},
	costmetrics.NameMalformed:             {"reason"},
}

// collectorMetricLabels are the labels of the collector's own telemetry (job agentcost-collector)
// that alerting rules group by; the otelcol_ names are not checked against the metrics pipeline's scrape.
var collectorMetricLabels = map[string][]string{
	"otelcol_processor_agentcost_spans_agent_overridden": {"sender", "reason"},
}

// scrapeLabels are the labels Prometheus adds to every scraped series.
var scrapeLabels = []string{"job", "instance"}

var (
	metricRE   = regexp.MustCompile(`\bagentcost_[A-Za-z0-9_]*`)
	selectorRE = regexp.MustCompile(`\b(agentcost_[A-Za-z0-9_]*)\s*\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')`)
	groupingRE = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
)

// metricRefs returns the agentcost_* identifiers in a PromQL expression, sorted and unique.
func metricRefs(expr string) []string {
	seen := map[string]bool{}
	for _, m := range metricRE.FindAllString(expr, -1) {
		seen[m] = true
	}
	refs := make([]string, 0, len(seen))
	for m := range seen {
		refs = append(refs, m)
	}
	sort.Strings(refs)
	return refs
}

// matcher is one label matcher of a selector, such as scope="agent".
type matcher struct {
	metric, label, value string
}

// selectorMatchers returns the label matchers of the agentcost_* selectors in expr.
func selectorMatchers(expr string) []matcher {
	var ms []matcher
	for _, sel := range selectorRE.FindAllStringSubmatch(expr, -1) {
		for _, m := range matcherRE.FindAllStringSubmatch(sel[2], -1) {
			ms = append(ms, matcher{metric: sel[1], label: m[1], value: m[3][1 : len(m[3])-1]})
		}
	}
	return ms
}

// groupingLabels returns the labels of every by (...) and without (...) clause in expr.
func groupingLabels(expr string) [][]string {
	var groups [][]string
	for _, g := range groupingRE.FindAllStringSubmatch(expr, -1) {
		var labels []string
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
		groups = append(groups, labels)
	}
	return groups
}

// checkExpr reports the problems of one PromQL expression: agentcost_* names not in known,
// matchers on labels their metric does not have, and grouping labels none of the expression's
// metrics has.
func checkExpr(expr string, known map[string]bool) []string {
	var problems []string
	exprLabels := map[string]bool{}
	for _, l := range scrapeLabels {
		exprLabels[l] = true
	}
	for _, name := range metricRefs(expr) {
		if !known[name] {
			problems = append(problems, fmt.Sprintf("unknown metric %s", name))
			continue
		}
		for _, l := range metricLabels[name] {
			exprLabels[l] = true
		}
	}
	for name, labels := range collectorMetricLabels {
		if regexp.MustCompile(`\b` + name + `\b`).MatchString(expr) {
			for _, l := range labels {
				exprLabels[l] = true
			}
		}
	}
	for _, m := range selectorMatchers(expr) {
		if !hasLabel(m.metric, m.label) {
			problems = append(problems, fmt.Sprintf("%s has no label %q", m.metric, m.label))
		}
	}
	for _, group := range groupingLabels(expr) {
		for _, l := range group {
			if !exprLabels[l] {
				problems = append(problems, fmt.Sprintf("grouping label %q is on none of the expression's metrics", l))
			}
		}
	}
	return problems
}

// hasLabel reports whether a series of metric carries label.
func hasLabel(metric, label string) bool {
	for _, l := range append(append([]string{}, scrapeLabels...), metricLabels[metric]...) {
		if l == label {
			return true
		}
	}
	return false
}
