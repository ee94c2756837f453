package budgetreceiver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/notify"
	"github.com/agentcost/agentcost/pkg/decisionapi"
	"github.com/agentcost/agentcost/pkg/guard"
)

// hookSink is a local webhook receiver that verifies every signature. While down it answers 503.
type hookSink struct {
	t      *testing.T
	secret []byte
	down   atomic.Bool
	failed atomic.Int64
	mu     sync.Mutex
	events []notify.Event
	texts  []string
	srv    *httptest.Server
}

func newHookSink(t *testing.T, secret string) *hookSink {
	s := &hookSink{t: t, secret: []byte(secret)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if s.down.Load() {
			s.failed.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if len(s.secret) > 0 {
			if err := notify.Verify(s.secret, r.Header.Get(notify.HeaderSignature), r.Header.Get(notify.HeaderTimestamp), body, time.Now(), 5*time.Minute); err != nil {
				t.Errorf("delivery signature: %v", err)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("delivery body %s: %v", body, err)
		}
		if text, ok := m["text"].(string); ok {
			s.texts = append(s.texts, text)
		} else {
			var ev notify.Event
			mustUnmarshal(t, body, &ev)
			s.events = append(s.events, ev)
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// wait waits (bounded) until the sink holds an event fn accepts.
func (s *hookSink) wait(what string, fn func(notify.Event) bool) notify.Event {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		for _, ev := range s.events {
			if fn(ev) {
				s.mu.Unlock()
				return ev
			}
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			s.t.Fatalf("no %s delivered", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *hookSink) count(fn func(notify.Event) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ev := range s.events {
		if fn(ev) {
			n++
		}
	}
	return n
}

// withWebhook sends every notification to sink, signed with a secret from a file.
func withWebhook(t *testing.T, sink *hookSink, format string) func(*Config) {
	secretFile := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(secretFile, append(sink.secret, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(cfg *Config) {
		w := WebhookConfig{Name: "ops", Format: format}
		w.Endpoint = sink.srv.URL
		if len(sink.secret) > 0 {
			w.SecretFile = secretFile
		}
		cfg.Notifications.Webhooks = append(cfg.Notifications.Webhooks, w)
		cfg.Notifications.Outbox.PollInterval = 10 * time.Millisecond
		cfg.Notifications.Retry.InitialInterval = 10 * time.Millisecond
		cfg.Notifications.Retry.MaxInterval = 50 * time.Millisecond
		cfg.Notifications.Retry.MaxElapsedTime = 0
	}
}

// TestNotificationsApprovalLifecycle: an approval request is stored in the outbox before the
// decision answers, a dead endpoint does not hold decisions up, and once the endpoint answers
// the request and its resolution arrive signed, once each, with what a reviewer needs.
func TestNotificationsApprovalLifecycle(t *testing.T) {
	sink := newHookSink(t, "hook-secret-1")
	sink.down.Store(true)
	e := startEnv(t, testPolicy, withAccess, withWebhook(t, sink, FormatJSON))
	ob := e.ledger.(ledger.Outbox)

	req := research("job.batch", 2)
	req.Team, req.RunID = "growth", "run-9"
	d := e.decide(researchToken, req)
	if d.Decision != decisionapi.DecisionRequireApproval || d.ApprovalID == "" {
		t.Fatalf("decision %+v", d)
	}
	// The endpoint is down: the event waits in the ledger's outbox, already stored when the
	// answer came back.
	if n, err := ob.OutboxLen(context.Background()); err != nil || n != 1 {
		t.Fatalf("outbox holds %d events (%v) right after the answer, want 1", n, err)
	}
	// Decisions go on while the endpoint is dead.
	for range 5 {
		if d := e.decide(researchToken, research("job.research", 0.01)); d.Decision != decisionapi.DecisionAllow {
			t.Fatalf("decision with a dead webhook: %+v", d)
		}
	}
	status, body := e.do(http.MethodPost, "/v1/approvals/"+d.ApprovalID+"/deny", reviewerToken, decisionapi.DenyRequest{Reason: "too big"})
	if status != http.StatusOK {
		t.Fatalf("deny: %d %s", status, body)
	}
	// The notifier keeps trying the dead endpoint (bounded wait), then the endpoint comes back.
	for deadline := time.Now().Add(10 * time.Second); sink.failed.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the dead endpoint was never tried")
		}
	}
	sink.down.Store(false)

	isReq := func(ev notify.Event) bool { return ev.Type == notify.TypeApprovalRequested }
	isRes := func(ev notify.Event) bool { return ev.Type == notify.TypeApprovalResolved }
	got := sink.wait("approval.requested", isReq)
	a := got.Approval
	if got.Schema != notify.Schema || a == nil || a.ID != d.ApprovalID || a.Agent != "research-agent" || a.Action != "job.batch" ||
		a.EstimateUSD != "2" || a.RuleID != "approve-batch" || a.Reason != "batches need a human" || a.Team != "growth" || a.RunID != "run-9" {
		t.Fatalf("approval.requested %+v %+v", got, a)
	}
	res := sink.wait("approval.resolved", isRes)
	if res.Approval.State != "denied" || res.Approval.Reviewer != "alice@example.com" || res.Approval.Note != "too big" {
		t.Fatalf("approval.resolved %+v", res.Approval)
	}
	waitOutboxEmpty(t, ob)
	if n, m := sink.count(isReq), sink.count(isRes); n != 1 || m != 1 {
		t.Fatalf("delivered %d requests and %d resolutions, want one each", n, m)
	}
	// The counters reach the metrics pipeline.
	e.waitMetric(NameNotifications, func(v float64) bool { return v >= 2 }, "outcome", "delivered")
	e.waitMetric(NameNotifications, func(v float64) bool { return v >= 1 }, "outcome", "retried")
	e.waitMetric(NameNotificationsOutq, func(v float64) bool { return v == 0 })
}

func waitOutboxEmpty(t *testing.T, ob ledger.Outbox) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := ob.OutboxLen(context.Background())
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox still holds %d events (%v)", n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNotificationsBudgetLevelOncePerCrossing: booked spend exhausts an agent's budget; the
// crossing is notified once (not per publish or per decision) within publish_interval.
func TestNotificationsBudgetLevelOncePerCrossing(t *testing.T) {
	sink := newHookSink(t, "s")
	e := startEnv(t, testPolicy, withAccess, withWebhook(t, sink, FormatJSON))
	e.book(ledger.Spend{Agent: "research-agent", Team: "growth", Model: "m", Cost: 10 * money.NanosPerUSD})
	isLevel := func(ev notify.Event) bool {
		return ev.Type == notify.TypeBudgetLevel && ev.Budget.Scope == "agent" && ev.Budget.ID == "research-agent"
	}
	got := sink.wait("budget.level", isLevel)
	if got.Budget.Level != "exhausted" || got.Budget.LimitUSD != "10" || got.Budget.Window != "month" {
		t.Fatalf("budget.level %+v", got.Budget)
	}
	// Decisions denied on the exhausted budget and more publishes do not notify again.
	for range 3 {
		e.decide(researchToken, research("job.research", 1))
	}
	publishes := len(e.metrics.AllMetrics())
	for len(e.metrics.AllMetrics()) < publishes+5 {
		time.Sleep(10 * time.Millisecond)
	}
	waitOutboxEmpty(t, e.ledger.(ledger.Outbox))
	if n := sink.count(isLevel); n != 1 {
		t.Fatalf("%d budget.level events for one crossing, want 1", n)
	}
}

// TestNotificationsSlackApprovalMessage: the slack format names agent, action, estimate, rule,
// reason and how to approve.
func TestNotificationsSlackApprovalMessage(t *testing.T) {
	sink := newHookSink(t, "")
	e := startEnv(t, testPolicy, withAccess, withWebhook(t, sink, FormatSlack))
	d := e.decide(researchToken, research("job.batch", 2))
	deadline := time.Now().Add(10 * time.Second)
	for {
		sink.mu.Lock()
		texts := append([]string(nil), sink.texts...)
		sink.mu.Unlock()
		if len(texts) > 0 {
			for _, want := range []string{"research-agent", "job.batch", "$2", "approve-batch", "batches need a human",
				"agentcostctl approvals approve " + d.ApprovalID, "/v1/approvals/" + d.ApprovalID + "/approve"} {
				if !strings.Contains(texts[0], want) {
					t.Errorf("slack message lacks %q:\n%s", want, texts[0])
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no slack message delivered")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNotificationsConfigErrorsNameKeys: every invalid setting is reported under its key, and
// the endpoint (which may hold a secret) is never repeated.
func TestNotificationsConfigErrorsNameKeys(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	cfg.PolicyFile = "policy.yaml"
	w := WebhookConfig{Name: "ops", Format: "xml", Events: []string{"approval.requested", "nope"}}
	w.Endpoint = "ftp://hooks.example.com/T000/B000/XXXXSECRET"
	cfg.Notifications.Webhooks = []WebhookConfig{w, {Name: "ops"}}
	cfg.Notifications.Outbox.MaxEvents = 0
	cfg.Notifications.Outbox.Lease = time.Second
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid notifications validated")
	}
	for _, want := range []string{"notifications.webhooks[0].endpoint", "notifications.webhooks[0].format", "notifications.webhooks[0].events[1]",
		"notifications.webhooks[1].name", "notifications.webhooks[1].endpoint", "notifications.outbox.max_events", "notifications.webhooks[1].timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "XXXXSECRET") {
		t.Errorf("error repeats the webhook URL: %v", err)
	}
	// Without webhooks the section is not checked: notifications are off.
	cfg.Notifications.Webhooks = nil
	if err := cfg.Validate(); err != nil {
		t.Fatalf("no webhooks: %v", err)
	}
}

// TestWarnAtLevel: an agent budget past its warn_at reads level warn in the API and in
// agentcost_budget_level, notifies once, and changes no decision.
func TestWarnAtLevel(t *testing.T) {
	sink := newHookSink(t, "s")
	policy := strings.Replace(testPolicy, "agents: {research-agent: {limit_usd: 10, window: month}}",
		"agents: {research-agent: {limit_usd: 10, window: month, warn_at: 0.5}}", 1)
	e := startEnv(t, policy, withAccess, withWebhook(t, sink, FormatJSON))
	e.book(ledger.Spend{Agent: "research-agent", Team: "growth", Model: "m", Cost: 6 * money.NanosPerUSD})
	got := sink.wait("budget.level warn", func(ev notify.Event) bool {
		return ev.Type == notify.TypeBudgetLevel && ev.Budget.ID == "research-agent"
	})
	if got.Budget.Level != "warn" || got.Budget.Scope != "agent" {
		t.Fatalf("budget.level %+v", got.Budget)
	}
	e.waitMetric(NameBudgetLevel, func(v float64) bool { return v == 1 }, "scope", "agent", "id", "research-agent")
	status, body := e.do(http.MethodGet, decisionapi.PathBudgets, reviewerToken, nil)
	if status != http.StatusOK || !strings.Contains(string(body), `"id":"research-agent"`) {
		t.Fatalf("budgets: %d %s", status, body)
	}
	var budgets decisionapi.BudgetsResponse
	mustUnmarshal(t, body, &budgets)
	for _, s := range budgets.Scopes {
		if s.Scope == "agent" && s.ID == "research-agent" && s.Level != decisionapi.LevelWarn {
			t.Fatalf("research-agent level %q, want warn", s.Level)
		}
	}
	// warn changes no decision: $3 more still fits the $10 limit.
	if d := e.decide(researchToken, research("job.research", 3)); d.Decision != decisionapi.DecisionAllow {
		t.Fatalf("decision at warn: %+v", d)
	}
	// Crossing on to exhausted notifies again, once.
	e.book(ledger.Spend{Agent: "research-agent", Team: "growth", Model: "m", Cost: 4 * money.NanosPerUSD})
	sink.wait("budget.level exhausted", func(ev notify.Event) bool {
		return ev.Type == notify.TypeBudgetLevel && ev.Budget.ID == "research-agent" && ev.Budget.Level == "exhausted"
	})
}

// TestNotificationsApprovalExpired: an approval left unanswered past approval_ttl is notified as
// expired, once.
func TestNotificationsApprovalExpired(t *testing.T) {
	sink := newHookSink(t, "s")
	e := startEnv(t, testPolicy, withAccess, withWebhook(t, sink, FormatJSON), func(cfg *Config) {
		cfg.ApprovalTTL = 300 * time.Millisecond
	})
	d := e.decide(researchToken, research("job.batch", 2))
	isExpired := func(ev notify.Event) bool {
		return ev.Type == notify.TypeApprovalExpired && ev.Approval.ID == d.ApprovalID
	}
	got := sink.wait("approval.expired", isExpired)
	if got.Approval.State != "expired" || got.Approval.Agent != "research-agent" {
		t.Fatalf("approval.expired %+v", got.Approval)
	}
	// More settle rounds do not notify it again.
	publishes := len(e.metrics.AllMetrics())
	for len(e.metrics.AllMetrics()) < publishes+5 {
		time.Sleep(10 * time.Millisecond)
	}
	waitOutboxEmpty(t, e.ledger.(ledger.Outbox))
	if n := sink.count(isExpired); n != 1 {
		t.Fatalf("approval.expired delivered %d times, want once", n)
	}
}

// TestGuardRunsOnceTheNotifiedPersonApproves: the guard client waits on require_approval; the
// webhook tells a person, who approves from what the notification names; the guarded action
// then runs.
func TestGuardRunsOnceTheNotifiedPersonApproves(t *testing.T) {
	sink := newHookSink(t, "s")
	e := startEnv(t, testPolicy, withAccess, withWebhook(t, sink, FormatJSON))
	c, err := guard.New(e.base, guard.WithAgent("research-agent"), guard.WithToken(researchToken),
		guard.WithPollInterval(20*time.Millisecond), guard.WithMaxApprovalWait(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	approved := make(chan string, 1)
	go func() {
		// The person: reads the notification and approves what it names.
		for range 3000 {
			sink.mu.Lock()
			var id string
			for _, ev := range sink.events {
				if ev.Type == notify.TypeApprovalRequested {
					id = ev.Approval.ID
				}
			}
			sink.mu.Unlock()
			if id != "" {
				req, _ := http.NewRequest(http.MethodPost, e.base+"/v1/approvals/"+id+"/approve", strings.NewReader(`{"comment":"go"}`))
				req.Header.Set("Authorization", "Bearer "+reviewerToken)
				req.Header.Set("Content-Type", "application/json")
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
				approved <- id
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		close(approved)
	}()
	ran := false
	err = c.Run(context.Background(), guard.Action{Name: "job.batch", EstimatedCostUSD: 2}, func(context.Context, *guard.Decision) error {
		ran = true
		return nil
	})
	id, ok := <-approved
	if err != nil || !ran || !ok {
		t.Fatalf("guarded action: ran %v, err %v, approved %q", ran, err, id)
	}
	sink.wait("approval.resolved", func(ev notify.Event) bool {
		return ev.Type == notify.TypeApprovalResolved && ev.Approval.ID == id && ev.Approval.State == "approved"
	})
}
