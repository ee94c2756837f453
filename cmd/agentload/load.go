package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Config is one load run.
type Config struct {
	// URL is the decision API's base URL, e.g. http://localhost:4320.
	URL string
	// Token is sent as the bearer token; with access configured it must be the one agent's.
	Token string
	// Agents is the number of distinct agent ids the requests cycle through (agent-0 ...).
	Agents int
	// AgentPrefix starts every agent id (default "load-agent-").
	AgentPrefix string
	// Action is the action topic of every request.
	Action string
	// EstimatedCostUSD is every request's estimate.
	EstimatedCostUSD float64
	// Concurrency is the number of requests in flight.
	Concurrency int
	// Duration ends the run; Requests, when positive, ends it after that many decisions first.
	Duration time.Duration
	Requests int
	// Release releases each allowed lease (untimed) so that reservations do not pile up.
	Release bool
}

// Result is what a run measured. Latencies are those of the decision calls only.
type Result struct {
	Elapsed   time.Duration
	Latencies []time.Duration // sorted
	Errors    int
	// Decisions counts the answers by decision.
	Decisions map[decisionapi.Decision]int
	// FirstError is the first failure, for the report.
	FirstError error
}

// Rate is decisions per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(len(r.Latencies)) / r.Elapsed.Seconds()
}

// Quantile returns the q-quantile of the decision latency (nearest rank).
func (r Result) Quantile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(r.Latencies))+0.5) - 1
	return r.Latencies[min(max(i, 0), len(r.Latencies)-1)]
}

// String reports the run on one line.
func (r Result) String() string {
	s := fmt.Sprintf("%d decisions in %s: %.0f/s, p50 %s, p99 %s, errors %d",
		len(r.Latencies), r.Elapsed.Round(time.Millisecond), r.Rate(), r.Quantile(0.5), r.Quantile(0.99), r.Errors)
	for _, d := range decisionapi.Decisions() {
		if n := r.Decisions[d]; n > 0 {
			s += ", " + string(d) + " " + strconv.Itoa(n)
		}
	}
	if r.FirstError != nil {
		s += " (first error: " + r.FirstError.Error() + ")"
	}
	return s
}

// Run sends decision requests until the duration or the request count is reached.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Concurrency < 1 || cfg.Agents < 1 || cfg.Action == "" {
		return Result{}, fmt.Errorf("concurrency, agents and action must be set")
	}
	if cfg.AgentPrefix == "" {
		cfg.AgentPrefix = "load-agent-"
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: cfg.Concurrency, MaxIdleConnsPerHost: cfg.Concurrency}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var (
		mu   sync.Mutex
		res  = Result{Decisions: map[decisionapi.Decision]int{}}
		next int
		wg   sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil || (cfg.Requests > 0 && next >= cfg.Requests) {
			return 0, false
		}
		next++
		return next - 1, true
	}
	start := time.Now()
	for range cfg.Concurrency {
		wg.Go(func() {
			var lat []time.Duration
			defer func() {
				mu.Lock()
				res.Latencies = append(res.Latencies, lat...)
				mu.Unlock()
			}()
			for {
				n, ok := take()
				if !ok {
					return
				}
				req := decisionapi.DecisionRequest{
					AgentID: cfg.AgentPrefix + strconv.Itoa(n%cfg.Agents), Action: cfg.Action, EstimatedCostUSD: cfg.EstimatedCostUSD,
				}
				began := time.Now()
				var out answer
				err := call(ctx, client, cfg, decisionapi.PathDecisions, req, &out)
				took := time.Since(began)
				if err == nil && cfg.Release && out.LeaseID != "" {
					err = call(ctx, client, cfg, "/v1/leases/"+out.LeaseID+"/release", decisionapi.ReleaseRequest{}, nil)
				}
				mu.Lock()
				if err != nil {
					if ctx.Err() == nil {
						res.Errors++
						if res.FirstError == nil {
							res.FirstError = err
						}
					}
				} else {
					res.Decisions[out.Decision]++
				}
				mu.Unlock()
				if err == nil {
					lat = append(lat, took)
				}
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.Latencies)
	return res, nil
}

// answer is what the generator reads of a decision response. The rest (budget states, constraints)
// is left undecoded so that the generator's own JSON work, which shares the machine with the
// server, does not grow with the size of the server's answer.
type answer struct {
	Decision decisionapi.Decision `json:"decision"`
	LeaseID  string               `json:"lease_id"`
	RuleID   string               `json:"rule_id"`
	Reason   string               `json:"reason"`
}

func call(ctx context.Context, client *http.Client, cfg Config, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// BareHandler is the comparison point: a net/http handler that decodes a decision request as
// strictly as the receiver does and answers a fixed allow, with no policy and no ledger.
func BareHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+decisionapi.PathDecisions, func(w http.ResponseWriter, r *http.Request) {
		var req decisionapi.DecisionRequest
		if err := decisionapi.Decode(r.Body, decisionapi.DefaultBodyLimit, &req); err != nil {
			decisionapi.WriteError(w, err)
			return
		}
		if err := req.Validate(); err != nil {
			decisionapi.WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(decisionapi.DecisionResponse{Decision: decisionapi.DecisionAllow, DecisionID: "dec_bare", PolicyVersion: "bare"})
	})
	return mux
}
