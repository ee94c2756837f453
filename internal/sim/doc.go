// Package sim is agentsim's simulated agent fleet: the plan arithmetic of the article "Agent
// FinOps: Stop AI Agents from Burning $10K" (3 agents × 5 sub-calls × 50K tokens at $0.015 per
// 1K = $11.25 per round, $225 per batch, $2,250 per day), agents that act through pkg/guard and
// report their LLM calls as OpenTelemetry GenAI spans, and the two scenarios:
//
//   - runaway: the article's fleet on a compressed clock with one agent stuck in a loop, run
//     governed (every action asks the decision API first) or ungoverned, reported side by side
//     with what the same plan costs ungoverned;
//   - steady: mixed normal traffic at a fixed rate, for load tests (throughput, decision latency,
//     spans sent, errors).
//
// Amounts are exact money.Nanos computed with the collector's own price table code
// (internal/pricing), so the plan and the collector price the same tokens identically.
package sim
