package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/notify"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// TestKill9DeliversPendingNotifications: decisions that ask for approval are answered while the
// webhook is down, so their notifications wait in the ledger's outbox; the collector is killed
// with SIGKILL, the webhook comes back, and after the restart every approval request the API
// answered reaches the webhook, signed (receivers deduplicate by event id: at least once).
func TestKill9DeliversPendingNotifications(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	secret := []byte("kill-test-secret")
	sink := newWebhookSink(t, secret)

	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(`version: v1
budgets:
  default_agent: {limit_usd: 1000, window: hour}
approvals: {max_pending_per_agent: 1000}
rules:
  - id: ask
    match: {topics: ["job.**"]}
    decision: require_approval
    reason: every job needs a person
`), 0o600); err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	api := collectortest.Endpoint(t)
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`
extensions:
  budgetledger: {directory: %[1]s/ledger, evidence: {directory: %[1]s/evidence}}
receivers:
  budget:
    endpoint: %[2]s
    policy_file: %[3]s
    notifications:
      webhooks:
        - {name: ops, endpoint: %[5]s, secret_file: %[6]s, timeout: 1s}
      outbox: {poll_interval: 20ms, lease: 5s}
      retry: {initial_interval: 20ms, max_interval: 100ms, max_elapsed_time: 0}
exporters:
  costledger: {}
  prometheus: {endpoint: %[4]s, translation_strategy: UnderscoreEscapingWithoutSuffixes, without_scope_info: true, metric_expiration: 1h}
service:
  telemetry: {metrics: {level: none}}
  extensions: [budgetledger]
  pipelines:
    metrics: {receivers: [budget], exporters: [prometheus]}
`, dir, api, policy, collectortest.Endpoint(t), sink.URL, secretFile)), 0o600); err != nil {
		t.Fatal(err)
	}

	child := startChild(t, bin, config)
	waitListening(t, api)
	const n = 40
	var answered []string
	for i := range n {
		body, _ := json.Marshal(decisionapi.DecisionRequest{AgentID: "agent-" + fmt.Sprint(i%4), Action: "job.run", EstimatedCostUSD: 0.5})
		resp, err := http.Post("http://"+api+decisionapi.PathDecisions, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var d decisionapi.DecisionResponse
		err = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if err != nil || d.ApprovalID == "" {
			t.Fatalf("decision %d: %v %+v", i, err, d)
		}
		answered = append(answered, d.ApprovalID)
	}
	// Every delivery so far failed; kill the collector with the notifications pending.
	for sink.tried.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	_ = child.Process.Signal(syscall.SIGKILL)
	_, _ = child.Process.Wait()
	sink.down.Store(false)

	startChild(t, bin, config)
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := map[string]bool{}
		for _, ev := range sink.accepted() {
			if ev.Approval != nil {
				got[ev.Approval.ID] = true
			}
		}
		missing := 0
		for _, id := range answered {
			if !got[id] {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d approval requests answered before the kill never reached the webhook", missing, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sink.badSig.Load() != 0 {
		t.Fatalf("%d deliveries failed signature verification", sink.badSig.Load())
	}
	t.Logf("kill -9 with %d notifications pending: all delivered after restart (%d delivery attempts in all)", n, sink.tried.Load())
}

// webhookSink is a test webhook: down (503) until down is cleared, it counts delivery attempts,
// verifies signatures when it has a secret (401 and counted otherwise), and keeps every event it
// accepted.
type webhookSink struct {
	*httptest.Server
	down          atomic.Bool
	tried, badSig atomic.Int64
	mu            sync.Mutex
	events        []notify.Event
}

// newWebhookSink starts a webhook sink, down; secret nil accepts unsigned deliveries.
func newWebhookSink(t *testing.T, secret []byte) *webhookSink {
	s := &webhookSink{}
	s.down.Store(true)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.tried.Add(1)
		if s.down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if secret != nil {
			if err := notify.Verify(secret, r.Header.Get(notify.HeaderSignature), r.Header.Get(notify.HeaderTimestamp), body, time.Now(), 5*time.Minute); err != nil {
				s.badSig.Add(1)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		var ev notify.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.events = append(s.events, ev)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s
}

// accepted returns a copy of the events the sink accepted so far.
func (s *webhookSink) accepted() []notify.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]notify.Event(nil), s.events...)
}
