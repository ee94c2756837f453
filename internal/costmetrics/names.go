// Package costmetrics turns the ledger's cumulative totals into the pdata metrics the budget
// receiver sends into a metrics pipeline, with the label cardinality bound and its overflow series;
// the pipeline's exporter (prometheus, otlp_http, ...) decides how they are exposed.
package costmetrics

// Metric names and help texts of the metrics the budget receiver publishes.
const (
	NameSpend       = "agentcost_spend_usd_total"
	NameTokens      = "agentcost_tokens_total"
	NameAnomalies   = "agentcost_anomalies_total"
	NameUnpriced    = "agentcost_unpriced_spans_total"
	NameMalformed   = "agentcost_malformed_spans_total"
	NameOverflow    = "agentcost_label_overflow_total"
	NameBookErrors  = "agentcost_booking_errors_total"
	NameDuplicates  = "agentcost_duplicate_spans_total"
	NameMismatched  = "agentcost_mismatched_decision_spans_total"
	NameRefused     = "agentcost_refused_spans_total"
	NameBudgetSpent = "agentcost_budget_spent_usd"
	NameBudgetLimit = "agentcost_budget_limit_usd"
	NameBudgetUtil  = "agentcost_budget_utilization_ratio"
	NameForecast    = "agentcost_budget_forecast_usd"
	NameFleetLevel  = "agentcost_fleet_level"
	NameDecisions   = "agentcost_decisions_total"
	NameDecisionDur = "agentcost_decision_duration_seconds"

	HelpSpend       = "Dollars spent on LLM calls, from priced spans."
	HelpTokens      = "Tokens used by LLM calls, by type (input, output, cache_read, cache_write, reasoning)."
	HelpAnomalies   = "Anomalies flagged: level=call from the per-call baseline, level=escalation for calls whose cost climbs steadily, level=action from the per-action baseline."
	HelpUnpriced    = "Spans with token usage whose model matched no price."
	HelpMalformed   = "Model-call spans not priced because their usage was malformed (agentcost.malformed), by reason."
	HelpOverflow    = "Distinct label values replaced by the overflow value because a label reached its cardinality bound (max_label_values)."
	HelpBookErrors  = "Batches whose booking into the ledger failed in this collector (retried or queued by the exporter)."
	HelpDuplicates  = "Spans received again after they were booked; counted once in the ledger."
	HelpMismatched  = "Booked spans carrying the decision id of another agent's (or run's) reservation: booked as their own agent's spend, not settled into that action."
	HelpRefused     = "Priced spans the exporter did not book, by reason: invalid_cost (unreadable cost or ids) or cost_over_limit (above max_cost_usd_per_span)."
	HelpBudgetSpent = "Spent plus reserved in the current window of a budget scope."
	HelpBudgetLimit = "Limit of a budget scope in its window."
	HelpBudgetUtil  = "Utilization of a budget scope: (spent + reserved) / limit."
	HelpForecast    = "Projected spend of a budget scope at the end of its window at the current rate."
	HelpFleetLevel  = "Fleet degradation level: 0 normal, 1 throttle, 2 pause."
	HelpDecisions   = "Pre-execution decisions by decision and rule."
	HelpDecisionDur = "Latency of the decision endpoint."

	// Overflow is the label value that replaces values past a label's cardinality bound.
	Overflow = "__overflow__"
)

// The same-call families (the ledger's same-call rule, ledger.Spend.CallKey): NameSameCalls counts
// priced spans not booked because their direct parent or child in the trace was booked for the
// same provider call; NameSameCallUSD is the agentcost.cost_usd they carried, what a downstream
// sum over every span counts twice.
const (
	NameSameCalls   = "agentcost_duplicate_calls_total"
	NameSameCallUSD = "agentcost_duplicate_call_usd_total"

	HelpSameCalls   = "Priced LLM spans not booked because their direct parent or child span was booked for the same provider call (two instrumentations of one call)."
	HelpSameCallUSD = "The agentcost.cost_usd carried by spans counted in agentcost_duplicate_calls_total: subtract it from a sum of agentcost.cost_usd over every span."
)
