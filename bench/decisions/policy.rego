# The article's rules (bench/decisions/policy.yaml) in Rego, for the OPA side of
# bench/decisions/run.sh. OPA is stateless here: it evaluates the rules, the derived tags, the
# per-action cap and the topic timeouts, but keeps no budgets, reservations, approvals, rate
# limits or evidence, which agentcost does on every decision it is compared with.
package agentcost

import rego.v1

per_action_max_usd := 100

derived contains "high-cost" if input.estimated_cost_usd >= 5

derived contains "batch" if input.items >= 100

tags := {t | some t in object.get(input, "risk_tags", [])} | derived

topic_in(patterns) if {
	some p in patterns
	glob.match(p, ["."], input.action)
}

has_all(required) if {
	every t in required {
		t in tags
	}
}

timeouts := {
	"job.research.company": {"timeout_seconds": 120, "max_retries": 1},
	"job.draft.email": {"timeout_seconds": 60, "max_retries": 1},
	"job.enrich.contacts": {"timeout_seconds": 30, "max_retries": 0},
	"job.generate.report": {"timeout_seconds": 180, "max_retries": 1},
}

# The first matching rule, in the YAML's order.
rule := {"id": "deny-unbounded-loop", "decision": "deny", "reason": "Unbounded recursive agent loops blocked by policy", "constraints": {}} if {
	topic_in(["job.*.recursive-search", "job.*.agent-loop"])
	has_all(["unbounded"])
} else := {"id": "approve-expensive-batch", "decision": "require_approval", "reason": "Batch LLM operations estimated at $20 or more need review", "constraints": {"max_runtime_sec": 600}} if {
	topic_in(["job.*.batch-generate", "job.*.bulk-enrich"])
	input.estimated_cost_usd >= 20
} else := {"id": "throttle-llm-calls", "decision": "allow_with_constraints", "reason": "LLM calls throttled to prevent runaway spend", "constraints": {"max_concurrent": 3, "rate_limit": "20/hour", "max_runtime_sec": 120, "max_tokens": 50000}} if {
	topic_in(["job.*.generate", "job.*.synthesize", "job.*.research", "job.research.*"])
	has_all(["high-cost"])
} else := {"id": "growth-team-depth", "decision": "allow_with_constraints", "reason": "Growth agents keep tool use and recursion bounded", "constraints": {"max_tool_calls": 40, "max_depth": 4, "max_retries": 2}} if {
	input.team == "growth"
	input.estimated_cost_usd <= 5
} else := {"id": "allow-cached-reads", "decision": "allow", "reason": "Read operations and cached results pass through", "constraints": {}} if {
	topic_in(["job.*.read", "job.*.get", "job.*.list", "**.cached"])
} else := {"id": "", "decision": "allow", "reason": "", "constraints": {}}

# The per-action cap is stricter than any rule.
decision := {"decision": "deny", "rule_id": "budget.per_action_max", "reason": "estimate above the per-action maximum"} if {
	input.estimated_cost_usd > per_action_max_usd
} else := {
	"decision": rule.decision,
	"rule_id": rule.id,
	"reason": rule.reason,
	"constraints": object.union(rule.constraints, object.get(timeouts, input.action, {})),
}
