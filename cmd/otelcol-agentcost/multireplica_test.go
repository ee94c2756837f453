package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.yaml.in/yaml/v3"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

const replicaPolicy = `version: v1
budgets:
  fleet: {limit_usd: 1000, window: day}
  agents:
    budget-agent: {limit_usd: 1, window: hour}
  default_agent: {limit_usd: 100, window: hour}
rules:
  - id: one-at-a-time
    match: {topics: ["job.lease"]}
    decision: allow_with_constraints
    constraints: {max_concurrent: 1, max_runtime_sec: 300}
  - id: two-per-hour
    match: {topics: ["job.rate"]}
    decision: allow_with_constraints
    constraints: {rate_limit: "2/hour"}
  - id: review
    match: {topics: ["job.batch"]}
    decision: require_approval
  - id: cool-down
    match: {anomaly_within: 10m}
    decision: throttle
`

type replica struct {
	name string
	api  string // http://host:port
	otlp string
	// tokens are the bearer tokens by subject (agent id, or "reviewer"); nil for an open API.
	tokens   map[string]string
	evidence string
	cmd      *exec.Cmd
}

// startReplica runs deploy/multi-replica/replica.yaml as a child process with its own ports and
// directories, on the shared Redis.
func startReplica(t *testing.T, bin, dir, name, redisAddr, policy string) *replica {
	t.Helper()
	r := &replica{name: name, otlp: collectortest.Endpoint(t), evidence: filepath.Join(dir, "data", name, "evidence")}
	apiEndpoint := collectortest.Endpoint(t)
	r.api = "http://" + apiEndpoint
	config, err := os.ReadFile(filepath.Join("..", "..", "deploy", "multi-replica", "replica.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	config = bytes.ReplaceAll(config, []byte("./deploy/single-node/policy.yaml"), []byte(policy))
	// The shipped token list (token files in $TOKENS), plus an agent token for each agent the test
	// decides for: a second configuration replaces the list with both.
	tokensDir := filepath.Join(dir, "secrets")
	r.tokens = replicaTokens(t, config, tokensDir)
	path := filepath.Join(dir, "replica-"+name+".yaml")
	if err := os.WriteFile(path, config, 0o600); err != nil {
		t.Fatal(err)
	}
	overlay := filepath.Join(dir, "replica-tokens.yaml")
	cmd := exec.Command(bin, "--config", path, "--config", overlay)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TOKENS="+tokensDir, "REPLICA="+name, "OTLP_GRPC="+r.otlp, "BUDGET_API="+apiEndpoint,
		"METRICS="+collectortest.Endpoint(t), "REDIS="+redisAddr, fmt.Sprintf("TELEMETRY_PORT=%d", collectortest.FreePort(t)))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.cmd = cmd
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	waitListening(t, apiEndpoint)
	waitListening(t, r.otlp)
	return r
}

// asForwarder sends OTLP with the first tier's forwarder token, as the load balancer does.
func (r *replica) asForwarder() otlptracegrpc.Option {
	return otlptracegrpc.WithHeaders(map[string]string{"authorization": "Bearer " + r.tokens["tier1"]})
}

func (r *replica) stop(t *testing.T) {
	t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	_, _ = r.cmd.Process.Wait()
}

// replicaAgents are the agents TestReplicasActAsOneSystem decides for; each gets an agent token.
var replicaAgents = []string{"budget-agent", "lease-agent", "rate-agent", "approval-agent", "spiky-agent", "midflight-agent"}

// replicaTokens writes a random token file for every token_file of the agentauth list in config
// (the files $TOKENS names), and dir/../replica-tokens.yaml: that list plus an inline agent token
// for each of replicaAgents. It returns the tokens by subject ("reviewer" for the reviewer's,
// "tier1" for the forwarder's).
func replicaTokens(t *testing.T, config []byte, dir string) map[string]string {
	t.Helper()
	var doc struct {
		Extensions struct {
			AgentAuth struct {
				Tokens []map[string]any `yaml:"tokens"`
			} `yaml:"agentauth"`
		} `yaml:"extensions"`
	}
	if err := yaml.Unmarshal(config, &doc); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	list := doc.Extensions.AgentAuth.Tokens
	if len(list) == 0 {
		t.Fatal("replica.yaml: extensions.agentauth.tokens is empty")
	}
	for _, e := range list {
		file, _ := e["token_file"].(string)
		tok := filepath.Base(file) + "-test-token-0001" // the same for every replica of a test
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(file)), []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		subject, _ := e["subject"].(string)
		if e["role"] == "reviewer" {
			subject = "reviewer"
		}
		tokens[subject] = tok
	}
	for _, agent := range replicaAgents {
		tok := agent + "-test-token-0001"
		tokens[agent] = tok
		list = append(list, map[string]any{"token": tok, "role": "agent", "subject": agent})
	}
	overlay, err := yaml.Marshal(map[string]any{"extensions": map[string]any{"agentauth": map[string]any{"tokens": list}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "replica-tokens.yaml"), overlay, 0o600); err != nil {
		t.Fatal(err)
	}
	return tokens
}

// postJSONAs posts body with the bearer token (none when empty) and decodes a 2xx answer into out.
func postJSONAs(t *testing.T, url, token string, body any, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s: %v: %s", url, err, data)
		}
	}
	return resp.StatusCode
}

func (r *replica) decide(t *testing.T, req decisionapi.DecisionRequest) (decisionapi.DecisionResponse, int) {
	t.Helper()
	var resp decisionapi.DecisionResponse
	code := postJSONAs(t, r.api+decisionapi.PathDecisions, r.tokens[req.AgentID], req, &resp)
	return resp, code
}

// TestReplicasActAsOneSystem runs two collector processes on one redis-server and drives decisions
// and spans at both: budgets, leases, rate limits and approvals hold across them, spend booked on
// either is one total, and each replica's evidence chain verifies.
func TestReplicasActAsOneSystem(t *testing.T) {
	bin := buildBinary(t)
	redis := redistest.Start(t)
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(replicaPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startReplica(t, bin, dir, "a", redis.Addr, policy)
	b := startReplica(t, bin, dir, "b", redis.Addr, policy)
	both := []*replica{a, b}

	t.Run("no overspend across replicas", func(t *testing.T) {
		// 12 concurrent $0.30 actions against a $1/hour budget, alternating replicas: exactly 3 fit.
		var mu sync.Mutex
		allowed := 0
		var wg sync.WaitGroup
		for i := 0; i < 12; i++ {
			wg.Go(func() {
				resp, code := both[i%2].decide(t, decisionapi.DecisionRequest{AgentID: "budget-agent", Action: "job.spend", EstimatedCostUSD: 0.30})
				if code != http.StatusOK {
					t.Errorf("decision %d: HTTP %d", i, code)
				}
				if resp.Decision == decisionapi.DecisionAllow || resp.Decision == decisionapi.DecisionAllowWithConstraints {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if allowed != 3 {
			t.Fatalf("%d of 12 $0.30 actions allowed against $1 across two replicas, want exactly 3", allowed)
		}
	})

	t.Run("a lease taken on one replica is seen by the other", func(t *testing.T) {
		first, _ := a.decide(t, decisionapi.DecisionRequest{AgentID: "lease-agent", Action: "job.lease", EstimatedCostUSD: 0.01})
		if first.LeaseID == "" || first.Decision != decisionapi.DecisionAllowWithConstraints {
			t.Fatalf("first decision on a: %+v", first)
		}
		second, _ := b.decide(t, decisionapi.DecisionRequest{AgentID: "lease-agent", Action: "job.lease", EstimatedCostUSD: 0.01})
		if second.Decision != decisionapi.DecisionThrottle || second.RetryAfterSec <= 0 {
			t.Fatalf("second decision on b while a's lease is held: %+v", second)
		}
		// Released on the other replica, the slot is free again everywhere.
		if code := postJSONAs(t, b.api+"/v1/leases/"+first.LeaseID+"/release", b.tokens["lease-agent"], map[string]any{"actual_cost_usd": 0.01}, nil); code != http.StatusOK {
			t.Fatalf("release on b of a's lease: HTTP %d", code)
		}
		third, _ := a.decide(t, decisionapi.DecisionRequest{AgentID: "lease-agent", Action: "job.lease", EstimatedCostUSD: 0.01})
		if third.Decision != decisionapi.DecisionAllowWithConstraints {
			t.Fatalf("after release: %+v", third)
		}
	})

	t.Run("rate limits count across replicas", func(t *testing.T) {
		var got []decisionapi.Decision
		for _, r := range []*replica{a, b, a, b} {
			resp, _ := r.decide(t, decisionapi.DecisionRequest{AgentID: "rate-agent", Action: "job.rate", EstimatedCostUSD: 0.01})
			got = append(got, resp.Decision)
		}
		want := []decisionapi.Decision{decisionapi.DecisionAllowWithConstraints, decisionapi.DecisionAllowWithConstraints, decisionapi.DecisionThrottle, decisionapi.DecisionThrottle}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("2/hour across replicas gave %v, want %v", got, want)
		}
	})

	t.Run("an approval made on one replica is used once on either", func(t *testing.T) {
		req := decisionapi.DecisionRequest{AgentID: "approval-agent", Action: "job.batch", EstimatedCostUSD: 10}
		pending, _ := a.decide(t, req)
		if pending.Decision != decisionapi.DecisionRequireApproval || pending.ApprovalID == "" {
			t.Fatalf("decision on a: %+v", pending)
		}
		if code := postJSONAs(t, b.api+"/v1/approvals/"+pending.ApprovalID+"/approve", b.tokens["reviewer"], map[string]any{}, nil); code != http.StatusOK {
			t.Fatalf("approve on b: HTTP %d", code)
		}
		req.ApprovalID = pending.ApprovalID
		approved, _ := a.decide(t, req)
		if approved.Decision != decisionapi.DecisionAllow && approved.Decision != decisionapi.DecisionAllowWithConstraints {
			t.Fatalf("re-submitted with the approval on a: %+v", approved)
		}
		replay, code := b.decide(t, req)
		if code == http.StatusOK && (replay.Decision == decisionapi.DecisionAllow || replay.Decision == decisionapi.DecisionAllowWithConstraints) {
			t.Fatalf("the approval was used twice: %+v", replay)
		}
	})

	t.Run("spend booked on either replica is one total", func(t *testing.T) {
		ctx := context.Background()
		end := time.Now().UTC()
		for i, r := range both {
			exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(r.otlp), otlptracegrpc.WithInsecure(), r.asForwarder())
			if err != nil {
				t.Fatal(err)
			}
			for j := 0; j < 20; j++ {
				if err := exp.ExportSpans(ctx, []sdktrace.ReadOnlySpan{llmSpan(1000*(i+1)+j, end)}); err != nil {
					t.Fatal(err)
				}
			}
			_ = exp.Shutdown(ctx)
		}
		want := 40 * spanCost
		got := waitSpent(openLedger(t, "", redis.Addr, ""), ledger.ScopeAgent, "research-agent", end, want, 20*time.Second)
		if got != want {
			t.Fatalf("research-agent spent %s USD across replicas, want %s", got, want)
		}
	})

	t.Run("an anomaly learnt on one replica throttles the agent on the other", func(t *testing.T) {
		// Per-call baselines live in the replica that sees the agent's spans (the first tier routes
		// each agent to one replica); the anomaly they flag is recorded in the shared ledger, so
		// anomaly_within acts on every replica.
		ctx := context.Background()
		exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(a.otlp), otlptracegrpc.WithInsecure(), a.asForwarder())
		if err != nil {
			t.Fatal(err)
		}
		end := time.Now().UTC()
		for j := 0; j < 11; j++ {
			out := 1_000
			if j == 10 {
				out = 10_000 // $0.125 against a $0.035 baseline: 3.6x
			}
			if err := exp.ExportSpans(ctx, []sdktrace.ReadOnlySpan{agentSpan(5000+j, end, "spiky-agent", 10_000, out)}); err != nil {
				t.Fatal(err)
			}
		}
		_ = exp.Shutdown(ctx)
		var resp decisionapi.DecisionResponse
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if resp, _ = b.decide(t, decisionapi.DecisionRequest{AgentID: "spiky-agent", Action: "job.other", EstimatedCostUSD: 0.01}); resp.Decision == decisionapi.DecisionThrottle {
				break
			}
		}
		if resp.Decision != decisionapi.DecisionThrottle || resp.RuleID != "cool-down" {
			t.Fatalf("decision on b after a per-call anomaly seen by a: %+v", resp)
		}
	})

	t.Run("spans through an edge collector are booked to the agent it authenticated", func(t *testing.T) {
		// deploy/multi-replica/edge.yaml in front of replica a: the agent's token at the edge, the
		// forwarder token from the edge to the replica.
		edgeHTTP := collectortest.Endpoint(t)
		edge := exec.Command(bin, "--config", filepath.Join("..", "..", "deploy", "multi-replica", "edge.yaml"))
		edge.Env = append(os.Environ(), "TOKENS="+filepath.Join(dir, "secrets"), "EDGE_OTLP_GRPC="+collectortest.Endpoint(t),
			"EDGE_OTLP_HTTP="+edgeHTTP, "UPSTREAM="+a.otlp, "FORWARDER_TOKEN="+a.tokens["tier1"])
		edge.Stdout, edge.Stderr = os.Stderr, os.Stderr
		if err := edge.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = edge.Process.Kill(); _, _ = edge.Process.Wait() })
		waitListening(t, edgeHTTP)
		l := openLedger(t, "", redis.Addr, "")
		now := time.Now()
		before, err := l.State(context.Background(), ledger.ScopeAgent, "research-agent", ledger.Day, now)
		if err != nil {
			t.Fatal(err)
		}
		teamBefore, err := l.State(context.Background(), ledger.ScopeTeam, "research", ledger.Day, now)
		if err != nil {
			t.Fatal(err)
		}
		if got := postTraces(t, edgeHTTP, "", authSpans(5, "victim", nil, 40)); got != http.StatusUnauthorized {
			t.Errorf("edge without a token: status %d, want 401", got)
		}
		// The spans also claim the victim team: the shipped token lists teams [research], which the
		// edge carries and the replica enforces.
		if got := postTraces(t, edgeHTTP, a.tokens["research-agent"], authSpans(5, "victim",
			map[string]any{"agentcost.auth.subject": "victim", "agentcost.team": "victim", "agentcost.auth.teams": []any{"victim"}}, 41)); got != http.StatusOK {
			t.Fatalf("edge with the agent's token: status %d", got)
		}
		want := before.Spent + 5*35_000_000
		if got := waitSpent(l, ledger.ScopeAgent, "research-agent", now, want, 20*time.Second); got != want {
			t.Errorf("research-agent spent %v, want %v", got, want)
		}
		if st, err := l.State(context.Background(), ledger.ScopeAgent, "victim", ledger.Day, now); err != nil || st.Spent != 0 {
			t.Errorf("victim spent %v (%v), want 0", st.Spent, err)
		}
		if want := teamBefore.Spent + 5*35_000_000; waitSpent(l, ledger.ScopeTeam, "research", now, want, 20*time.Second) != want {
			t.Errorf("team research did not get the 5 spans claiming the victim team")
		}
		if st, err := l.State(context.Background(), ledger.ScopeTeam, "victim", ledger.Day, now); err != nil || st.Spent != 0 {
			t.Errorf("team victim spent %v (%v), want 0", st.Spent, err)
		}
	})

	var midflightDecision string
	t.Run("a mid-flight action flag is taken once across replicas", func(t *testing.T) {
		// Each replica learns the (agent, action) baseline from the actions it settles: five $0.05
		// actions on each. Then one action's spans, sent to a, cross 3x while its lease is open;
		// both replicas check it, one takes the flag, and b throttles the agent's next decision.
		for _, r := range both {
			for range 5 {
				d, _ := r.decide(t, decisionapi.DecisionRequest{AgentID: "midflight-agent", Action: "job.loop", EstimatedCostUSD: 0.05})
				if d.LeaseID == "" {
					t.Fatalf("warm-up decision on %s: %+v", r.name, d)
				}
				if code := postJSONAs(t, r.api+"/v1/leases/"+d.LeaseID+"/release", r.tokens["midflight-agent"], map[string]any{"actual_cost_usd": 0.05}, nil); code != http.StatusOK {
					t.Fatalf("warm-up release on %s: HTTP %d", r.name, code)
				}
			}
		}
		loop, _ := a.decide(t, decisionapi.DecisionRequest{AgentID: "midflight-agent", Action: "job.loop", EstimatedCostUSD: 0.05})
		if loop.LeaseID == "" {
			t.Fatalf("loop decision: %+v", loop)
		}
		midflightDecision = loop.DecisionID
		var spans []sdktrace.ReadOnlySpan
		for i := range 5 { // $0.175: 3.5x the $0.05 baseline
			spans = append(spans, actionSpan(fmt.Sprintf("mr%d", i), time.Now(), "midflight-agent", loop.DecisionID, ""))
		}
		exportSpans(t, a.otlp, spans, a.asForwarder())
		if !waitFor(15*time.Second, func() bool {
			d, _ := b.decide(t, decisionapi.DecisionRequest{AgentID: "midflight-agent", Action: "job.other", EstimatedCostUSD: 0.01})
			return d.Decision == decisionapi.DecisionThrottle && d.RuleID == "cool-down"
		}) {
			t.Fatal("b did not throttle the agent while its loop's lease (granted by a) was open")
		}
	})

	for _, r := range both {
		r.stop(t)
		rep, err := evidence.Verify(r.evidence)
		if err != nil || !rep.OK() {
			t.Errorf("replica %s evidence does not verify: %+v %v", r.name, rep, err)
		}
	}
	if midflightDecision != "" {
		if n := anomalyRecords(t, a.evidence, midflightDecision) + anomalyRecords(t, b.evidence, midflightDecision); n != 1 {
			t.Errorf("%d anomaly evidence records of the mid-flight action across both replicas, want exactly 1", n)
		}
	}
}
