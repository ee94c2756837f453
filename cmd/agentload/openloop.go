package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Kind is one kind of decision request in a mixed stream, with the decision the benchmark policy
// (bench/decisions/policy.yaml) answers it with.
type Kind struct {
	// Name names the kind in the report.
	Name string
	// Action and EstimatedCostUSD are the request's.
	Action           string
	EstimatedCostUSD float64
	// Expect is the decision an answer must carry to count.
	Expect decisionapi.Decision
	// Weight is the kind's share of the stream, relative to the others'.
	Weight int
}

// BenchMix is the mixed stream of the open-loop benchmark against bench/decisions/policy.yaml:
// mostly allowed actions that reserve, some with constraints, reads, approvals and refusals.
var BenchMix = []Kind{
	{Name: "allow", Action: "job.research.competitors", EstimatedCostUSD: 0.001, Expect: decisionapi.DecisionAllow, Weight: 60},
	{Name: "read", Action: "job.crm.read", EstimatedCostUSD: 0.001, Expect: decisionapi.DecisionAllow, Weight: 15},
	{Name: "constrained", Action: "job.research.company", EstimatedCostUSD: 6, Expect: decisionapi.DecisionAllowWithConstraints, Weight: 10},
	{Name: "approval", Action: "job.reports.batch-generate", EstimatedCostUSD: 25, Expect: decisionapi.DecisionRequireApproval, Weight: 10},
	{Name: "deny", Action: "job.research.company", EstimatedCostUSD: 150, Expect: decisionapi.DecisionDeny, Weight: 5},
}

// OpenConfig is one open-loop run: requests are sent at a fixed arrival rate whatever the answers'
// latency, and each latency is measured from the request's intended send time, so that a stalled
// server is charged for every request that should have been sent meanwhile (no coordinated
// omission).
type OpenConfig struct {
	// URL, Token, Agents and AgentPrefix are as in Config.
	URL, Token  string
	Agents      int
	AgentPrefix string
	// Rate is the arrival rate, decisions per second.
	Rate float64
	// Duration is how long requests are sent.
	Duration time.Duration
	// Mix is the request stream, cycled in proportion to the weights.
	Mix []Kind
}

// OpenResult is what an open-loop run measured.
type OpenResult struct {
	Sent      int
	Elapsed   time.Duration
	Latencies []time.Duration // sorted, of the answers that counted
	// ByKind holds the counted answers' latencies by kind name, sorted.
	ByKind map[string][]time.Duration
	// Unexpected counts the answers that were not 2xx with the kind's expected decision, by kind.
	Unexpected map[string]int
	FirstError error
}

// Quantile returns the q-quantile of the counted answers' latency (nearest rank).
func (r OpenResult) Quantile(q float64) time.Duration {
	return Result{Latencies: r.Latencies}.Quantile(q)
}

// String reports the run on one line.
func (r OpenResult) String() string {
	bad := 0
	var kinds []string
	for k, n := range r.Unexpected {
		bad += n
		kinds = append(kinds, k+" "+strconv.Itoa(n))
	}
	slices.Sort(kinds)
	s := fmt.Sprintf("open loop: %d sent in %s (%.0f/s), %d expected answers, p50 %s, p99 %s, p99.9 %s, max %s, unexpected %d",
		r.Sent, r.Elapsed.Round(time.Millisecond), float64(r.Sent)/r.Elapsed.Seconds(), len(r.Latencies),
		r.Quantile(0.5), r.Quantile(0.99), r.Quantile(0.999), r.Quantile(1), bad)
	if len(kinds) > 0 {
		s += " (" + strings.Join(kinds, ", ") + ")"
	}
	if r.FirstError != nil {
		s += " (first error: " + r.FirstError.Error() + ")"
	}
	names := slices.Sorted(maps.Keys(r.ByKind))
	if len(names) > 0 {
		s += "\nby kind:"
		for _, k := range names {
			kr := Result{Latencies: r.ByKind[k]}
			s += fmt.Sprintf(" %s p50 %s p99 %s;", k, kr.Quantile(0.5).Round(10*time.Microsecond), kr.Quantile(0.99).Round(10*time.Microsecond))
		}
	}
	return s
}

// schedule returns the kind index of each of n consecutive requests: the mix's weights spread
// evenly over every window of their sum.
func schedule(mix []Kind) []int {
	var out []int
	for i, k := range mix {
		for range k.Weight {
			out = append(out, i)
		}
	}
	// Interleave: a stride coprime with the length visits every slot once.
	n := len(out)
	stride := 1
	for s := 7; s < n; s++ {
		if gcd(s, n) == 1 {
			stride = s
			break
		}
	}
	spread := make([]int, n)
	for i := range n {
		spread[i] = out[(i*stride)%n]
	}
	return spread
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// RunOpen sends the mixed stream at cfg.Rate for cfg.Duration, then waits for the answers.
func RunOpen(ctx context.Context, cfg OpenConfig) (OpenResult, error) {
	if cfg.Rate <= 0 || cfg.Agents < 1 || cfg.Duration <= 0 || len(cfg.Mix) == 0 {
		return OpenResult{}, fmt.Errorf("rate, agents, duration and mix must be set")
	}
	if cfg.AgentPrefix == "" {
		cfg.AgentPrefix = "load-agent-"
	}
	order := schedule(cfg.Mix)
	if len(order) == 0 {
		return OpenResult{}, fmt.Errorf("the mix's weights must not all be 0")
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	lc := Config{URL: cfg.URL, Token: cfg.Token}
	var (
		mu  sync.Mutex
		res = OpenResult{Unexpected: map[string]int{}, ByKind: map[string][]time.Duration{}}
		wg  sync.WaitGroup
	)
	every := time.Duration(float64(time.Second) / cfg.Rate)
	start := time.Now()
	for n := 0; ; n++ {
		due := start.Add(time.Duration(n) * every)
		if due.Sub(start) >= cfg.Duration || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Until(due))
		k := cfg.Mix[order[n%len(order)]]
		req := decisionapi.DecisionRequest{AgentID: cfg.AgentPrefix + strconv.Itoa(n%cfg.Agents), Action: k.Action, EstimatedCostUSD: k.EstimatedCostUSD}
		res.Sent++
		wg.Go(func() {
			var out answer
			err := call(ctx, client, lc, decisionapi.PathDecisions, req, &out)
			took := time.Since(due)
			if err == nil && out.Decision != k.Expect {
				err = fmt.Errorf("%s: decision %q (rule %q: %s), want %q", k.Name, out.Decision, out.RuleID, out.Reason, k.Expect)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Unexpected[k.Name]++
				if res.FirstError == nil {
					res.FirstError = err
				}
				return
			}
			res.Latencies = append(res.Latencies, took)
			res.ByKind[k.Name] = append(res.ByKind[k.Name], took)
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.Latencies)
	for _, l := range res.ByKind {
		slices.Sort(l)
	}
	return res, nil
}
