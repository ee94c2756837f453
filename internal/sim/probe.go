package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// probe is an http.RoundTripper in front of the guard clients' transport: it times every
// decision request and reads every decision answer (the guard obeys them and returns only the
// last), so the fleet's report sees each answer, its latency and the fleet's budget level.
type probe struct {
	next  http.RoundTripper
	clock *Clock

	mu        sync.Mutex
	latencies []time.Duration
	answers   map[decisionapi.Decision]int
	rules     map[string]int
	levels    map[decisionapi.BudgetLevel]time.Duration
	failures  int
}

func newProbe(next http.RoundTripper, clock *Clock) *probe {
	return &probe{next: next, clock: clock, answers: map[decisionapi.Decision]int{}, rules: map[string]int{},
		levels: map[decisionapi.BudgetLevel]time.Duration{}}
}

// maxProbedBody bounds the decision answers the probe reads (the guard's own bound).
const maxProbedBody = 1 << 20

// probeKey carries an action's attempt log through the guard's requests.
type probeKey struct{}

// attempts logs the decision answers of one guarded action.
type attempts struct {
	mu        sync.Mutex
	answers   []decisionapi.Decision
	approvals []string
}

func (a *attempts) add(d decisionapi.DecisionResponse) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.answers = append(a.answers, d.Decision)
	if d.Decision == decisionapi.DecisionRequireApproval && d.ApprovalID != "" && !slices.Contains(a.approvals, d.ApprovalID) {
		a.approvals = append(a.approvals, d.ApprovalID)
	}
}

func (a *attempts) snapshot() ([]decisionapi.Decision, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.answers), slices.Clone(a.approvals)
}

func withAttempts(ctx context.Context, a *attempts) context.Context {
	return context.WithValue(ctx, probeKey{}, a)
}

func (p *probe) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, decisionapi.PathDecisions) {
		return p.next.RoundTrip(req)
	}
	start := time.Now()
	resp, err := p.next.RoundTrip(req)
	took := time.Since(start)
	if err != nil {
		p.fail(took)
		return resp, err
	}
	if resp.StatusCode != http.StatusOK {
		p.fail(took)
		return resp, nil
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxProbedBody+1))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var d decisionapi.DecisionResponse
	if rerr != nil || json.Unmarshal(body, &d) != nil || !d.Decision.Valid() {
		p.fail(took)
		return resp, nil // the guard reports the bad answer itself
	}
	p.record(took, d)
	if a, ok := req.Context().Value(probeKey{}).(*attempts); ok {
		a.add(d)
	}
	return resp, nil
}

func (p *probe) fail(took time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latencies = append(p.latencies, took)
	p.failures++
}

func (p *probe) record(took time.Duration, d decisionapi.DecisionResponse) {
	at := p.clock.Elapsed()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latencies = append(p.latencies, took)
	p.answers[d.Decision]++
	if d.RuleID != "" {
		p.rules[string(d.Decision)+" "+d.RuleID]++
	}
	if fleet, ok := d.Budget["fleet"]; ok {
		levels := []decisionapi.BudgetLevel{fleet.Level}
		if fleet.Level == decisionapi.LevelPause {
			levels = append(levels, decisionapi.LevelThrottle) // pause is past throttle_at too
		}
		for _, l := range levels {
			if first, seen := p.levels[l]; !seen || at < first {
				p.levels[l] = at
			}
		}
	}
}

// DecisionStats is what the fleet saw of the decision API: every answer, not only the last of
// each action.
type DecisionStats struct {
	// Latencies are the round trips of POST /v1/decisions, failed ones included.
	Latencies []time.Duration
	// Answers counts the answers by decision.
	Answers map[decisionapi.Decision]int
	// Rules counts the answers by "<decision> <rule_id>".
	Rules map[string]int
	// Levels holds, per fleet budget level, the simulated time it was first reported.
	Levels map[decisionapi.BudgetLevel]time.Duration
	// Failures counts requests that failed or got no valid answer.
	Failures int
}

func (p *probe) stats() DecisionStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return DecisionStats{Latencies: slices.Clone(p.latencies), Answers: maps.Clone(p.answers), Rules: maps.Clone(p.rules),
		Levels: maps.Clone(p.levels), Failures: p.failures}
}
