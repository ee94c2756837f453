package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/pricing"
	"github.com/agentcost/agentcost/internal/sim"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// The combined load test's knobs, read from the environment so that the same test runs short in CI
// and long by hand:
//
//	AGENTCOST_LOAD_DURATION=30s AGENTCOST_LOAD_RATE=200 AGENTCOST_LOAD_SENDERS=3 AGENTCOST_LOAD_SPAN_RATE=20000 \
//	  go test -run CombinedLoad -v ./cmd/otelcol-agentcost/
const (
	envLoadDuration = "AGENTCOST_LOAD_DURATION"  // how long load is offered (default 10s)
	envLoadRate     = "AGENTCOST_LOAD_RATE"      // steady agent actions per second (default 150)
	envLoadSenders  = "AGENTCOST_LOAD_SENDERS"   // concurrent OTLP batch senders (default 2)
	envLoadSpanRate = "AGENTCOST_LOAD_SPAN_RATE" // batch spans per second of all senders (default 0: back to back)
)

// loadOptions is one combined load run.
type loadOptions struct {
	Duration time.Duration
	// Rate is the steady scenario's actions per second over Agents agents.
	Rate   float64
	Agents int
	// Senders send 1,000-span OTLP batches for Duration: SpanRate spans per second together, or
	// back to back when SpanRate is 0.
	Senders  int
	SpanRate float64
}

func loadOptionsFromEnv(tb testing.TB) loadOptions {
	tb.Helper()
	o := loadOptions{Duration: 10 * time.Second, Rate: 150, Agents: 10, Senders: 2}
	if v := os.Getenv(envLoadDuration); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			tb.Fatalf("%s=%q: want a positive duration such as 10s", envLoadDuration, v)
		}
		o.Duration = d
	}
	if v := os.Getenv(envLoadRate); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			tb.Fatalf("%s=%q: want a positive number of actions per second", envLoadRate, v)
		}
		o.Rate = r
	}
	if v := os.Getenv(envLoadSenders); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			tb.Fatalf("%s=%q: want a number of senders (0 turns the OTLP batch load off)", envLoadSenders, v)
		}
		o.Senders = n
	}
	if v := os.Getenv(envLoadSpanRate); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 {
			tb.Fatalf("%s=%q: want spans per second (0: back to back)", envLoadSpanRate, v)
		}
		o.SpanRate = r
	}
	return o
}

// loadResult is what a combined load run measured.
type loadResult struct {
	Wall time.Duration
	// Decisions is the decisions answered, DecisionsPerSec their rate; P50 and P99 their round trip.
	Decisions       int
	DecisionsPerSec float64
	P50, P99        time.Duration
	// SteadySpans and BatchSpans are the spans acknowledged by the collector from each load.
	SteadySpans, BatchSpans int64
	// CollectorCPU is the child's user + system CPU time over the load; GeneratorCPU the test
	// process's (agents and senders).
	CollectorCPU, GeneratorCPU time.Duration
	// PeakRSS is the child's VmHWM, RSS its VmRSS at the end of the load, in bytes.
	PeakRSS, RSS int64
	// Booked is the fleet's spend in the ledger after the run; Expected the cost of every LLM
	// span acknowledged.
	Booked, Expected money.Nanos
}

// TestCombinedLoad drives a child collector — otlp → agentcost → costledger, the budget receiver
// deciding on the embedded ledger — with agentsim's steady scenario (decisions, then LLM spans
// over OTLP) and, at the same time, 1,000-span OTLP batches (back to back or paced). Every decision is
// answered, every action runs and settles on its spans, every OTLP request is acknowledged, and
// the ledger books exactly the cost of the LLM spans sent: nothing lost, nothing counted twice.
// It reports throughput, decision latency and the collector's CPU and peak RSS.
func TestCombinedLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a load for several seconds; skipped with -short")
	}
	o := loadOptionsFromEnv(t)
	r := runCombinedLoad(t, o)
	spanRate := "full speed"
	if o.SpanRate > 0 {
		spanRate = strconv.FormatFloat(o.SpanRate, 'f', -1, 64) + " spans/s"
	}
	t.Logf("combined load for %s (%.0f actions/s asked over %d agents, %d OTLP senders at %s):",
		o.Duration, o.Rate, o.Agents, o.Senders, spanRate)
	t.Logf("  decisions: %d, %.1f/s, p50 %.2f ms, p99 %.2f ms", r.Decisions, r.DecisionsPerSec,
		ms(r.P50), ms(r.P99))
	t.Logf("  spans: %.0f/s in all (%d steady + %d in batches over %.1f s)",
		float64(r.SteadySpans+r.BatchSpans)/r.Wall.Seconds(), r.SteadySpans, r.BatchSpans, r.Wall.Seconds())
	t.Logf("  collector: %.2f cores (%.1f s CPU), peak RSS %.0f MiB (%.0f MiB at the end); load generator %.2f cores",
		r.CollectorCPU.Seconds()/r.Wall.Seconds(), r.CollectorCPU.Seconds(), mib(r.PeakRSS), mib(r.RSS),
		r.GeneratorCPU.Seconds()/r.Wall.Seconds())
	t.Logf("  ledger: booked %s USD = the %s USD of the LLM spans sent", r.Booked, r.Expected)
}

// BenchmarkCombinedLoad is TestCombinedLoad with its figures as benchmark metrics; one iteration
// is one run of AGENTCOST_LOAD_DURATION:
//
//	go test -run x -bench CombinedLoad -benchtime 1x ./cmd/otelcol-agentcost/
func BenchmarkCombinedLoad(b *testing.B) {
	o := loadOptionsFromEnv(b)
	var r loadResult
	for i := 0; i < b.N; i++ {
		r = runCombinedLoad(b, o)
	}
	b.ReportMetric(r.DecisionsPerSec, "decisions/s")
	b.ReportMetric(ms(r.P50), "p50_ms")
	b.ReportMetric(ms(r.P99), "p99_ms")
	b.ReportMetric(float64(r.SteadySpans+r.BatchSpans)/r.Wall.Seconds(), "spans/s")
	b.ReportMetric(r.CollectorCPU.Seconds()/r.Wall.Seconds(), "cores")
	b.ReportMetric(mib(r.PeakRSS), "peak_RSS_MiB")
}

// Prices the expected spend is worked out from, in nano-dollars per token: gpt-4o costs $2.50 per
// 1M input and $10 per 1M output tokens; agentsim's sim-llm $15 per 1M either way.
const (
	gpt4oInputNanos  = 2_500
	gpt4oOutputNanos = 10_000
	simLLMNanos      = 15_000
)

// Tokens of each steady call.
const steadyInputTokens, steadyOutputTokens = 2_000, 500

func runCombinedLoad(tb testing.TB, o loadOptions) loadResult {
	tb.Helper()
	bin := buildBinary(tb)
	dir := tb.TempDir()
	prices, err := filepath.Abs("../agentsim/sim-prices.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	policyPath := filepath.Join(dir, "policy.yaml")
	// Budgets far above what a run spends (about $10 a second): every decision allows and reserves.
	if err := os.WriteFile(policyPath, []byte(`version: v1
policy_version: load-1
default_decision: allow
budgets:
  fleet: {limit_usd: 1000000, window: day}
  default_agent: {limit_usd: 100000, window: day}
`), 0o600); err != nil {
		tb.Fatal(err)
	}
	grpcEndpoint, apiEndpoint := collectortest.Endpoint(tb), collectortest.Endpoint(tb)
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`
extensions:
  budgetledger: {directory: %[1]s/ledger, evidence: {directory: %[1]s/evidence}}
receivers:
  otlp: {protocols: {grpc: {endpoint: %[2]s}}}
  budget: {endpoint: %[3]s, policy_file: %[4]s, settle_interval: 100ms}
processors:
  agentcost: {prices: {files: [%[5]q]}}
exporters:
  costledger: {}
  prometheus: {endpoint: %[6]s, translation_strategy: UnderscoreEscapingWithoutSuffixes, without_scope_info: true, metric_expiration: 1h}
service:
  telemetry: {metrics: {level: none}, logs: {level: warn}}
  extensions: [budgetledger]
  pipelines:
    traces: {receivers: [otlp], processors: [agentcost], exporters: [costledger]}
    metrics: {receivers: [budget], exporters: [prometheus]}
`, dir, grpcEndpoint, apiEndpoint, policyPath, prices, collectortest.Endpoint(tb))), 0o600); err != nil {
		tb.Fatal(err)
	}

	child := exec.Command(bin, "--config", config)
	child.Stdout, child.Stderr = os.Stderr, os.Stderr
	if err := child.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := false
	tb.Cleanup(func() {
		if !exited {
			_ = child.Process.Kill()
			_, _ = child.Process.Wait()
		}
	})
	waitListening(tb, grpcEndpoint)
	waitListening(tb, apiEndpoint)

	pricer := simPricer(tb, prices)
	callCost, err := pricer.Cost(steadyInputTokens, steadyOutputTokens)
	if err != nil {
		tb.Fatal(err)
	}
	if want := money.Nanos((steadyInputTokens + steadyOutputTokens) * simLLMNanos); callCost != want {
		tb.Fatalf("sim-llm prices a call at %s USD, want %s USD ($15 per 1M tokens); sim-prices.yaml changed?", callCost, want)
	}
	exp, err := sim.NewOTLPExporter(context.Background(), grpcEndpoint)
	if err != nil {
		tb.Fatal(err)
	}

	pid := child.Process.Pid
	cpu0, self0 := processCPU(tb, strconv.Itoa(pid)), processCPU(tb, "self")
	start := time.Now()
	var (
		wg      sync.WaitGroup
		batches loadBatches
		steady  *sim.Report
		runErr  error
	)
	for s := range o.Senders {
		var every time.Duration
		if o.SpanRate > 0 {
			every = time.Duration(float64(o.Senders*batchSpans) / o.SpanRate * float64(time.Second))
		}
		wg.Go(func() { batches.send(tb, grpcEndpoint, s, every, start.Add(o.Duration)) })
	}
	steady, runErr = sim.RunSteady(context.Background(), sim.SteadyOptions{
		Fleet:  sim.FleetConfig{DecisionURL: "http://" + apiEndpoint, Pricer: pricer, Exporter: exp, FlushPerAction: true},
		Agents: o.Agents, Team: "load", Rate: o.Rate, Duration: o.Duration, Concurrency: 32, Seed: 1,
		InputTokens: steadyInputTokens, OutputTokens: steadyOutputTokens, RunPrefix: "load",
	})
	wg.Wait()
	wall := time.Since(start)
	cpu1, self1 := processCPU(tb, strconv.Itoa(pid)), processCPU(tb, "self")
	peak, rss := processMemory(tb, pid)
	if runErr != nil {
		tb.Fatal(runErr)
	}

	// The steady agents: every action decided (allow), ran, and settled on its own spans.
	r := steady
	if r.Errors != 0 || r.SpansFailed != 0 {
		tb.Fatalf("steady: %d errors %q, %d spans failed", r.Errors, r.ErrorSamples, r.SpansFailed)
	}
	if r.Plan.Actions == 0 || r.Outcomes[sim.StatusRan] != r.Plan.Actions || r.Decisions["allow"] != r.Plan.Actions {
		tb.Fatalf("steady: %d actions planned, outcomes %v, decisions %v; want every action allowed once and run",
			r.Plan.Actions, r.Outcomes, r.Decisions)
	}
	if r.DecisionLatency == nil || r.DecisionLatency.Count != r.Plan.Actions {
		tb.Fatalf("steady: latency %+v for %d actions", r.DecisionLatency, r.Plan.Actions)
	}
	if r.SpansSent != int64(r.Ran.Actions+r.Ran.Calls) {
		tb.Fatalf("steady: %d spans acknowledged, want %d (one per action, one per call)", r.SpansSent, r.Ran.Actions+r.Ran.Calls)
	}
	steadyCost := money.Nanos(r.Ran.Calls) * callCost
	if r.Ran.Cost != steadyCost {
		tb.Fatalf("steady: agentsim says %s USD ran, %d calls at %s USD are %s USD", r.Ran.Cost, r.Ran.Calls, callCost, steadyCost)
	}
	if s := r.Settled; s == nil || s.Actions != r.Ran.Actions || s.Cost != steadyCost ||
		s.BySource[decisionapi.SourceSpans]+s.BySource[decisionapi.SourceNone] != r.Ran.Actions {
		tb.Fatalf("steady: settled %+v; want all %d actions settled on their spans at %s USD", r.Settled, r.Ran.Actions, steadyCost)
	}
	// The batch senders: every request acknowledged (send fails the test otherwise).
	if batches.requests.Load() == 0 && o.Senders > 0 {
		tb.Fatal("no OTLP batch was acknowledged")
	}

	// Stop the collector (SIGTERM drains the pipelines) and read what the ledger booked.
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatal(err)
	}
	if err := child.Wait(); err != nil {
		tb.Errorf("collector exit after SIGTERM: %v", err)
	}
	exited = true
	booked, reserved := fleetDaySpend(tb, filepath.Join(dir, "ledger"), start, time.Now())
	expected := steadyCost + money.Nanos(batches.requests.Load())*batchCost
	if booked != expected {
		tb.Errorf("ledger booked %s USD; the LLM spans sent cost %s USD (%d steady calls at %s, %d batches at %s)",
			booked, expected, r.Ran.Calls, callCost, batches.requests.Load(), batchCost)
	}
	if reserved != 0 {
		tb.Errorf("ledger holds %s USD reserved after every lease was released", reserved)
	}
	return loadResult{
		Wall: wall, Decisions: r.DecisionLatency.Count, DecisionsPerSec: float64(r.DecisionLatency.Count) / wall.Seconds(),
		P50: msDuration(r.DecisionLatency.P50Ms), P99: msDuration(r.DecisionLatency.P99Ms),
		SteadySpans: r.SpansSent, BatchSpans: batches.requests.Load() * batchSpans,
		CollectorCPU: cpu1 - cpu0, GeneratorCPU: self1 - self0, PeakRSS: peak, RSS: rss,
		Booked: booked, Expected: expected,
	}
}

// A load batch: 1,000 spans over 5 resources, 30% of them gpt-4o calls.
const batchSpans = 1000

// batchCost is the cost of one load batch's LLM spans, from their token counts and gpt-4o's prices.
var batchCost = func() money.Nanos {
	var c money.Nanos
	for range 5 {
		for i := range 200 {
			if in, out, llm := batchTokens(i); llm {
				c += money.Nanos(in*gpt4oInputNanos + out*gpt4oOutputNanos)
			}
		}
	}
	return c
}()

// batchTokens is the usage of span i of a resource in a load batch; llm is false for the HTTP spans.
func batchTokens(i int) (in, out int64, llm bool) {
	return int64(1000 + i), int64(100 + i), i%10 < 3
}

// loadBatches counts the acknowledged OTLP batch requests.
type loadBatches struct {
	requests atomic.Int64
}

// send exports a batch every interval (back to back when 0) until the deadline; each request's
// span ids are unique in the run (sender and sequence number), so the ledger must book every LLM
// span once.
func (lb *loadBatches) send(tb testing.TB, endpoint string, sender int, every time.Duration, deadline time.Time) {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Error(err)
		return
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	td := loadBatch()
	due := time.Now()
	for seq := uint32(0); ; seq++ {
		time.Sleep(time.Until(due))
		if !time.Now().Before(deadline) {
			return
		}
		due = due.Add(every)
		setBatchIDs(td, byte(sender), seq)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
		cancel()
		if err != nil {
			tb.Errorf("sender %d, batch %d not acknowledged: %v", sender, seq, err)
			return
		}
		lb.requests.Add(1)
	}
}

func loadBatch() ptrace.Traces {
	td := ptrace.NewTraces()
	now := pcommon.NewTimestampFromTime(time.Now())
	for r := range 5 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "batch-agent-"+strconv.Itoa(r))
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		for i := range 200 {
			s := spans.AppendEmpty()
			s.SetStartTimestamp(now)
			s.SetEndTimestamp(now)
			a := s.Attributes()
			if in, out, llm := batchTokens(i); llm {
				s.SetName("chat gpt-4o")
				s.SetKind(ptrace.SpanKindClient)
				a.PutStr("gen_ai.operation.name", "chat")
				a.PutStr("gen_ai.provider.name", "openai")
				a.PutStr("gen_ai.request.model", "gpt-4o")
				a.PutInt("gen_ai.usage.input_tokens", in)
				a.PutInt("gen_ai.usage.output_tokens", out)
			} else {
				s.SetName("GET /v1/items")
				a.PutStr("http.request.method", "GET")
				a.PutInt("http.response.status_code", 200)
			}
		}
	}
	return td
}

// setBatchIDs gives every span of td a trace and span id unique to (sender, seq, resource, index),
// and the current time.
func setBatchIDs(td ptrace.Traces, sender byte, seq uint32) {
	now := pcommon.NewTimestampFromTime(time.Now())
	for r := 0; r < td.ResourceSpans().Len(); r++ {
		spans := td.ResourceSpans().At(r).ScopeSpans().At(0).Spans()
		for i := 0; i < spans.Len(); i++ {
			id := [8]byte{'L', sender, byte(seq >> 24), byte(seq >> 16), byte(seq >> 8), byte(seq), byte(r), byte(i)}
			var tid [16]byte
			copy(tid[:], id[:])
			s := spans.At(i)
			s.SetTraceID(pcommon.TraceID(tid))
			s.SetSpanID(pcommon.SpanID(id))
			s.SetStartTimestamp(now)
			s.SetEndTimestamp(now)
		}
	}
}

func simPricer(tb testing.TB, prices string) *sim.Pricer {
	tb.Helper()
	layer, err := pricing.LoadFile(prices)
	if err != nil {
		tb.Fatal(err)
	}
	table, err := pricing.Build(layer)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := sim.NewPricer(table, "sim-llm", "sim")
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// fleetDaySpend reads the fleet's spent and reserved amounts over the day windows from `from` to
// `to` (two when the run crossed midnight).
func fleetDaySpend(tb testing.TB, dir string, from, to time.Time) (spent, reserved money.Nanos) {
	tb.Helper()
	ctx := context.Background()
	l := openLedger(tb, dir, "", "")
	defer l.Close()
	var seen time.Time
	for _, at := range []time.Time{from, to} {
		st, err := l.State(ctx, ledger.ScopeFleet, "fleet", ledger.Day, at)
		if err != nil {
			tb.Fatal(err)
		}
		if st.Start.Equal(seen) {
			continue
		}
		seen = st.Start
		spent += st.Spent
		reserved += st.Reserved
	}
	return spent, reserved
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on Linux.
const clockTicks = 100

// processCPU returns the user + system CPU time of a process ("self" or a pid) from
// /proc/<pid>/stat.
func processCPU(tb testing.TB, pid string) time.Duration {
	tb.Helper()
	raw, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		tb.Fatalf("reading the CPU time of %s: %v", pid, err)
	}
	// The command name (field 2) may hold spaces; the fields after it start at state (field 3).
	i := strings.LastIndexByte(string(raw), ')')
	fields := strings.Fields(string(raw[i+1:]))
	if len(fields) < 13 {
		tb.Fatalf("/proc/%s/stat: %d fields after the command, want utime and stime (fields 14, 15)", pid, len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			tb.Fatalf("/proc/%s/stat: CPU time %q: %v", pid, f, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// processMemory returns a process's peak and current resident set size (VmHWM, VmRSS) in bytes.
func processMemory(tb testing.TB, pid int) (peak, rss int64) {
	tb.Helper()
	path := fmt.Sprintf("/proc/%d/status", pid)
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("reading the memory of %d: %v", pid, err)
	}
	kib := func(key string) int64 {
		for line := range strings.SplitSeq(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, key+":"); ok {
				n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					tb.Fatalf("%s: %s %q: %v", path, key, v, err)
				}
				return n * 1024
			}
		}
		tb.Fatalf("%s has no %s line", path, key)
		return 0
	}
	return kib("VmHWM"), kib("VmRSS")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func msDuration(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }
