package budgetreceiver

import (
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/agentcost/agentcost/internal/costmetrics"
	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
	"github.com/agentcost/agentcost/receiver/budgetreceiver/internal/metadata"
)

// Metrics of the receiver's own beyond the shared names of internal/costmetrics.
const (
	NamePolicyReloadErrors = "agentcost_policy_reload_errors_total"
	NameLedgerUnavailable  = "agentcost_ledger_unavailable_total"
	NameTokenCapBreaches   = "agentcost_token_cap_breaches_total"
	NameReportedClipped    = "agentcost_reported_cost_clipped_total"
	NameEvidenceErrors     = "agentcost_evidence_errors_total"
	NameEvidenceDropped    = "agentcost_evidence_logs_dropped_total"
	NameTaskErrors         = "agentcost_receiver_task_errors_total"

	HelpPolicyReloadErrors = "Policy reloads that failed validation or reading; the policy in force stayed."
	HelpLedgerUnavailable  = "Decisions answered under the ledger_unavailable fail mode (label fail_mode) because the ledger failed."
	HelpTokenCapBreaches   = "Settled actions with a matched span whose output tokens exceeded the decision's max_tokens."
	HelpReportedClipped    = "Lease releases whose actual_cost_usd was above the policy's bound on a reported cost and was clipped to it."
	HelpEvidenceErrors     = "Cost-evidence records that could not be written."
	HelpEvidenceDropped    = "Cost-evidence records not sent to the logs pipeline because its queue was full."
	HelpTaskErrors         = "Failures of the budget receiver's background tasks, by task: settle, notify_expired_approvals, midflight, read_budgets, notify_budget_levels, read_totals, publish."
)

// The task label values of agentcost_receiver_task_errors_total.
const (
	taskSettle          = "settle"
	taskNotifyApprovals = "notify_expired_approvals"
	taskMidflight       = "midflight"
	taskReadBudgets     = "read_budgets"
	taskNotifyLevels    = "notify_budget_levels"
	taskReadTotals      = "read_totals"
	taskPublish         = "publish"
)

// tasks lists the task label values, in the order they are published.
var tasks = []string{taskSettle, taskNotifyApprovals, taskMidflight, taskReadBudgets, taskNotifyLevels, taskReadTotals, taskPublish}

// maxAgentLabels bounds the agent label values of the receiver's per-agent counters.
const maxAgentLabels = 1000

// durationBounds are the bucket bounds of agentcost_decision_duration_seconds.
var durationBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

type decisionKey struct{ decision, rule string }

// stats accumulates the receiver's cumulative metrics between publications.
type stats struct {
	start    time.Time
	failMode string

	mu                sync.Mutex
	decisions         map[decisionKey]uint64
	durCounts         []uint64
	durSum            float64
	durCount          uint64
	anomalies         map[string]uint64
	runAnomalies      map[string]uint64
	tokenCaps         map[string]uint64
	clipped           map[string]uint64
	ledgerUnavailable [2]uint64 // by decide.FailMode: fail_closed, fail_open
	reloadErrors      uint64
	evidenceErrors    uint64
	evidenceDropped   uint64
	taskErrors        map[string]uint64
}

func newStats(start time.Time, failMode string) *stats {
	return &stats{
		start: start, failMode: failMode,
		decisions: map[decisionKey]uint64{}, durCounts: make([]uint64, len(durationBounds)+1),
		anomalies: map[string]uint64{}, runAnomalies: map[string]uint64{}, tokenCaps: map[string]uint64{}, clipped: map[string]uint64{},
		taskErrors: map[string]uint64{},
	}
}

// ruleLabel is the rule label of a decision: its rule id, or default_decision.
func ruleLabel(ruleID string) string {
	if ruleID == "" {
		return "default_decision"
	}
	return ruleID
}

func (s *stats) decided(d policy.Decision, ruleID string) {
	s.mu.Lock()
	s.decisions[decisionKey{d.String(), ruleLabel(ruleID)}]++
	s.mu.Unlock()
}

func (s *stats) decisionDuration(d time.Duration) {
	sec := d.Seconds()
	i := sort.SearchFloat64s(durationBounds, sec) // first bound >= sec: buckets are (prev, bound]
	s.mu.Lock()
	s.durCounts[i]++
	s.durSum += sec
	s.durCount++
	s.mu.Unlock()
}

// countAgent adds one to m[agent], folding agents past the bound into the overflow value.
func countAgent(m map[string]uint64, agent string) {
	if _, ok := m[agent]; !ok && len(m) >= maxAgentLabels {
		agent = costmetrics.Overflow
	}
	m[agent]++
}

func (s *stats) actionAnomaly(agent string) {
	s.mu.Lock()
	countAgent(s.anomalies, agent)
	s.mu.Unlock()
}

func (s *stats) runAnomaly(agent string) {
	s.mu.Lock()
	countAgent(s.runAnomalies, agent)
	s.mu.Unlock()
}

func (s *stats) tokenCapBreach(agent string) {
	s.mu.Lock()
	countAgent(s.tokenCaps, agent)
	s.mu.Unlock()
}

func (s *stats) reportedClipped(agent string) {
	s.mu.Lock()
	countAgent(s.clipped, agent)
	s.mu.Unlock()
}

func (s *stats) add(field *uint64) {
	s.mu.Lock()
	*field++
	s.mu.Unlock()
}

func (s *stats) policyReloadFailed() { s.add(&s.reloadErrors) }
func (s *stats) ledgerFailed(mode decide.FailMode) {
	if mode == decide.FailOpen {
		s.add(&s.ledgerUnavailable[1])
	} else {
		s.add(&s.ledgerUnavailable[0])
	}
}
func (s *stats) evidenceFailed() { s.add(&s.evidenceErrors) }
func (s *stats) taskFailed(task string) {
	s.mu.Lock()
	s.taskErrors[task]++
	s.mu.Unlock()
}
func (s *stats) evidenceLogsDropped() { s.add(&s.evidenceDropped) }

// recorder feeds the engine's reports to the stats and the evidence logs.
type recorder struct {
	stats   *stats
	emitter *emitter
}

var _ decide.Recorder = recorder{}

func (r recorder) Decided(d policy.Decision, ruleID string) { r.stats.decided(d, ruleID) }
func (r recorder) LedgerUnavailable(mode decide.FailMode)   { r.stats.ledgerFailed(mode) }
func (r recorder) ActionAnomaly(agent string)               { r.stats.actionAnomaly(agent) }
func (r recorder) RunAnomaly(agent string)                  { r.stats.runAnomaly(agent) }
func (r recorder) TokenCapBreach(agent string)              { r.stats.tokenCapBreach(agent) }
func (r recorder) EvidenceFailed()                          { r.stats.evidenceFailed() }
func (r recorder) ReportedCostClipped(agent string)         { r.stats.reportedClipped(agent) }
func (r recorder) Evidence(rec evidence.Record) {
	if !r.emitter.add(rec) {
		r.stats.evidenceLogsDropped()
	}
}

// metrics builds one publication: the budget gauges (when budgets could be read) and every
// cumulative counter and histogram.
func (s *stats) metrics(now time.Time, budgets decisionapi.BudgetsResponse, haveBudgets bool) pmetric.Metrics {
	md := pmetric.NewMetrics()
	sm := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(metadata.ScopeName)
	ms := sm.Metrics()
	ts := pcommon.NewTimestampFromTime(now)
	start := pcommon.NewTimestampFromTime(s.start)

	if haveBudgets {
		spent := gauge(ms, costmetrics.NameBudgetSpent, costmetrics.HelpBudgetSpent, "USD")
		limit := gauge(ms, costmetrics.NameBudgetLimit, costmetrics.HelpBudgetLimit, "USD")
		util := gauge(ms, costmetrics.NameBudgetUtil, costmetrics.HelpBudgetUtil, "1")
		forecast := gauge(ms, costmetrics.NameForecast, costmetrics.HelpForecast, "USD")
		levels := gauge(ms, NameBudgetLevel, HelpBudgetLevel, "1")
		for _, sc := range budgets.Scopes {
			id := sc.ID
			if sc.Scope == "fleet" {
				id = "fleet"
			}
			for _, p := range []struct {
				dps pmetric.NumberDataPointSlice
				v   float64
			}{{spent, sc.SpentUSD + sc.ReservedUSD}, {limit, sc.LimitUSD}, {util, sc.Utilization}, {forecast, sc.ForecastUSD},
				{levels, budgetLevelValue(sc.Level)}} {
				dp := p.dps.AppendEmpty()
				dp.SetTimestamp(ts)
				dp.SetDoubleValue(p.v)
				dp.Attributes().PutStr("scope", sc.Scope)
				dp.Attributes().PutStr("id", id)
				dp.Attributes().PutStr("window", sc.Window)
			}
		}
		level := gauge(ms, costmetrics.NameFleetLevel, costmetrics.HelpFleetLevel, "1").AppendEmpty()
		level.SetTimestamp(ts)
		level.SetIntValue(int64(budgets.Fleet.Level))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	counter := func(name, help string) pmetric.NumberDataPointSlice { return costmetrics.Sum(ms, name, help, "1") }
	point := func(dps pmetric.NumberDataPointSlice, v uint64, attrs ...string) {
		dp := dps.AppendEmpty()
		dp.SetStartTimestamp(start)
		dp.SetTimestamp(ts)
		dp.SetIntValue(int64(v))
		for i := 0; i+1 < len(attrs); i += 2 {
			dp.Attributes().PutStr(attrs[i], attrs[i+1])
		}
	}
	if len(s.decisions) > 0 {
		dps := counter(costmetrics.NameDecisions, costmetrics.HelpDecisions)
		for _, k := range sortedKeys(s.decisions, func(a, b decisionKey) bool {
			return a.decision < b.decision || a.decision == b.decision && a.rule < b.rule
		}) {
			point(dps, s.decisions[k], "decision", k.decision, "rule", k.rule)
		}
	}
	if s.durCount > 0 {
		m := ms.AppendEmpty()
		m.SetName(costmetrics.NameDecisionDur)
		m.SetDescription(costmetrics.HelpDecisionDur)
		m.SetUnit("s")
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
		dp := h.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(start)
		dp.SetTimestamp(ts)
		dp.SetCount(s.durCount)
		dp.SetSum(s.durSum)
		dp.ExplicitBounds().FromRaw(durationBounds)
		dp.BucketCounts().FromRaw(s.durCounts)
	}
	if len(s.anomalies)+len(s.runAnomalies) > 0 {
		dps := counter(costmetrics.NameAnomalies, costmetrics.HelpAnomalies)
		for _, agent := range sortedKeys(s.anomalies, func(a, b string) bool { return a < b }) {
			point(dps, s.anomalies[agent], "agent", agent, "level", "action")
		}
		for _, agent := range sortedKeys(s.runAnomalies, func(a, b string) bool { return a < b }) {
			point(dps, s.runAnomalies[agent], "agent", agent, "level", "run")
		}
	}
	if len(s.clipped) > 0 {
		dps := counter(NameReportedClipped, HelpReportedClipped)
		for _, agent := range sortedKeys(s.clipped, func(a, b string) bool { return a < b }) {
			point(dps, s.clipped[agent], "agent", agent)
		}
	}
	if len(s.tokenCaps) > 0 {
		dps := counter(NameTokenCapBreaches, HelpTokenCapBreaches)
		for _, agent := range sortedKeys(s.tokenCaps, func(a, b string) bool { return a < b }) {
			point(dps, s.tokenCaps[agent], "agent", agent)
		}
	}
	unavailable := counter(NameLedgerUnavailable, HelpLedgerUnavailable)
	point(unavailable, s.ledgerUnavailable[0], "fail_mode", decide.FailClosed.String())
	point(unavailable, s.ledgerUnavailable[1], "fail_mode", decide.FailOpen.String())
	point(counter(NamePolicyReloadErrors, HelpPolicyReloadErrors), s.reloadErrors)
	point(counter(NameEvidenceErrors, HelpEvidenceErrors), s.evidenceErrors)
	point(counter(NameEvidenceDropped, HelpEvidenceDropped), s.evidenceDropped)
	taskErrors := counter(NameTaskErrors, HelpTaskErrors)
	for _, task := range tasks {
		point(taskErrors, s.taskErrors[task], "task", task)
	}
	return md
}

// appendBookErrors appends agentcost_booking_errors_total: the bookings that failed in this
// process (the budgetledger extension counts them for the costledger exporter).
func (s *stats) appendBookErrors(ms pmetric.MetricSlice, n int64, now time.Time) {
	dp := costmetrics.Sum(ms, costmetrics.NameBookErrors, costmetrics.HelpBookErrors, "1").AppendEmpty()
	dp.SetStartTimestamp(pcommon.NewTimestampFromTime(s.start))
	dp.SetTimestamp(pcommon.NewTimestampFromTime(now))
	dp.SetIntValue(n)
}

func gauge(ms pmetric.MetricSlice, name, help, unit string) pmetric.NumberDataPointSlice {
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetDescription(help)
	m.SetUnit(unit)
	return m.SetEmptyGauge().DataPoints()
}

func sortedKeys[K comparable, V any](m map[K]V, less func(a, b K) bool) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return less(keys[i], keys[j]) })
	return keys
}
