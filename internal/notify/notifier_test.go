package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/config/configretry"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/notify"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
)

// sink is a local webhook receiver: it verifies signatures, fails the first failN deliveries
// with 503, and records what it accepted by event id.
type sink struct {
	t      *testing.T
	secret []byte
	mu     sync.Mutex
	failN  int
	status int // answered instead of 503 while failing
	calls  int
	got    map[string]int
	bodies []map[string]any
	srv    *httptest.Server
}

func newSink(t *testing.T, secret string, failN int) *sink {
	s := &sink{t: t, secret: []byte(secret), failN: failN, status: http.StatusServiceUnavailable, got: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.failN > 0 {
		s.failN--
		w.WriteHeader(s.status)
		return
	}
	if len(s.secret) > 0 {
		if err := notify.Verify(s.secret, r.Header.Get(notify.HeaderSignature), r.Header.Get(notify.HeaderTimestamp), body, time.Now(), 5*time.Minute); err != nil {
			s.t.Errorf("signature: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		s.t.Errorf("body %q: %v", body, err)
	}
	s.bodies = append(s.bodies, m)
	s.got[r.Header.Get(notify.HeaderEventID)]++
	w.WriteHeader(http.StatusNoContent)
}

func (s *sink) snapshot() (calls int, got map[string]int, bodies []map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	got = map[string]int{}
	for k, v := range s.got {
		got[k] = v
	}
	return s.calls, got, append([]map[string]any(nil), s.bodies...)
}

func openEmbedded(t *testing.T, dir string) ledger.Ledger {
	t.Helper()
	cfg := ledger.NewDefaultConfig()
	cfg.Backend = ledger.BackendEmbedded
	cfg.Directory = dir
	l, err := ledger.Open(context.Background(), cfg, ledger.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func fastRetry() configretry.BackOffConfig {
	r := configretry.NewDefaultBackOffConfig()
	r.InitialInterval = time.Millisecond
	r.MaxInterval = 4 * time.Millisecond
	return r
}

// clock is a test clock that a test moves forward.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func approvalEvent(id string) notify.Event {
	return notify.Event{ID: id, Type: notify.TypeApprovalRequested, Approval: &notify.Approval{
		ID: "ap-" + id, State: "pending", Agent: "coder", Team: "platform", Action: "deploy", EstimateUSD: "1.25",
		RuleID: "deploys-need-approval", Reason: "deploys need a person", ExpiresAt: time.Now().Add(time.Hour)}}
}

// drain delivers until nothing is due, moving the clock past every retry.
func drain(t *testing.T, n *notify.Notifier, c *clock, rounds int) {
	t.Helper()
	for range rounds {
		if _, err := n.DeliverDue(context.Background()); err != nil {
			t.Fatal(err)
		}
		c.add(time.Second)
	}
}

func TestSignedDeliveryThroughFailingSink(t *testing.T) {
	l := openEmbedded(t, filepath.Join(t.TempDir(), "l"))
	s := newSink(t, "s3cret", 3)
	c := &clock{t: time.Now()}
	n, err := notify.New(notify.Settings{Outbox: l.(ledger.Outbox), Retry: fastRetry(), Now: c.now,
		Webhooks: []notify.Webhook{{Name: "ops", URL: s.srv.URL, Secret: []byte("s3cret")}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"e1", "e2"} {
		if err := n.Emit(ctx, approvalEvent(id)); err != nil {
			t.Fatal(err)
		}
	}
	// The same event again (a retried request) is stored once.
	if err := n.Emit(ctx, approvalEvent("e1")); err != nil {
		t.Fatal(err)
	}
	drain(t, n, c, 10)
	calls, got, bodies := s.snapshot()
	if got["e1"] != 1 || got["e2"] != 1 || len(got) != 2 {
		t.Fatalf("sink accepted %v, want e1 and e2 once", got)
	}
	if calls != 5 {
		t.Fatalf("sink saw %d calls, want 3 failed + 2 delivered", calls)
	}
	st := n.Stats()
	if st.Delivered != 2 || st.Retried != 3 || st.Failed != 0 {
		t.Fatalf("stats %+v", st)
	}
	b := bodies[0]
	if b["schema"] != notify.Schema || b["type"] != notify.TypeApprovalRequested {
		t.Fatalf("body %v", b)
	}
	ap := b["approval"].(map[string]any)
	if ap["agent"] != "coder" || ap["estimate_usd"] != "1.25" || ap["rule_id"] != "deploys-need-approval" {
		t.Fatalf("approval %v", ap)
	}
	if ln, _ := l.(ledger.Outbox).OutboxLen(ctx); ln != 0 {
		t.Fatalf("outbox holds %d after delivery", ln)
	}
}

func TestWrongSecretFailsVerification(t *testing.T) {
	body := []byte(`{"id":"x"}`)
	now := time.Now()
	sig := notify.Sign([]byte("right"), now, body)
	tsv := func(t time.Time) string { return jsonInt(t.Unix()) }
	if err := notify.Verify([]byte("right"), sig, tsv(now), body, now, time.Minute); err != nil {
		t.Fatalf("right secret: %v", err)
	}
	if err := notify.Verify([]byte("wrong"), sig, tsv(now), body, now, time.Minute); err == nil {
		t.Fatal("a wrong secret verified")
	}
	if err := notify.Verify([]byte("right"), sig, tsv(now), []byte(`{"id":"y"}`), now, time.Minute); err == nil {
		t.Fatal("a changed body verified")
	}
	if err := notify.Verify([]byte("right"), sig, tsv(now), body, now.Add(time.Hour), time.Minute); err == nil {
		t.Fatal("a replay an hour later verified")
	}
}

func jsonInt(v int64) string { b, _ := json.Marshal(v); return string(b) }

func TestPermanentFailureAndGiveUp(t *testing.T) {
	l := openEmbedded(t, filepath.Join(t.TempDir(), "l"))
	bad := newSink(t, "", 1000)
	bad.status = http.StatusBadRequest
	dead := newSink(t, "", 1000)
	c := &clock{t: time.Now()}
	r := fastRetry()
	r.MaxElapsedTime = 5 * time.Second
	n, err := notify.New(notify.Settings{Outbox: l.(ledger.Outbox), Retry: r, Now: c.now, Webhooks: []notify.Webhook{
		{Name: "bad", URL: bad.srv.URL}, {Name: "dead", URL: dead.srv.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Emit(context.Background(), approvalEvent("e1")); err != nil {
		t.Fatal(err)
	}
	drain(t, n, c, 10)
	badCalls, _, _ := bad.snapshot()
	deadCalls, _, _ := dead.snapshot()
	if badCalls != 1 {
		t.Fatalf("a 400 was tried %d times, want once", badCalls)
	}
	if deadCalls < 3 || deadCalls > 6 {
		t.Fatalf("a dead sink was tried %d times within max_elapsed_time 5s at 1s steps", deadCalls)
	}
	if st := n.Stats(); st.Failed != 2 || st.Delivered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBoundedOutboxCountsDrops(t *testing.T) {
	l := openEmbedded(t, filepath.Join(t.TempDir(), "l"))
	dead := newSink(t, "", 1<<30)
	n, err := notify.New(notify.Settings{Outbox: l.(ledger.Outbox), Retry: fastRetry(), MaxEvents: 5,
		Webhooks: []notify.Webhook{{Name: "dead", URL: dead.srv.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if err := n.Emit(context.Background(), approvalEvent(string(rune('a'+i)))); err != nil {
			t.Fatalf("emit %d: %v", i, err)
		}
	}
	if st := n.Stats(); st.Dropped != 7 || st.Enqueued != 5 {
		t.Fatalf("stats %+v, want 5 enqueued and 7 dropped", st)
	}
	if ln, _ := l.(ledger.Outbox).OutboxLen(context.Background()); ln != 5 {
		t.Fatalf("outbox holds %d, want 5", ln)
	}
}

func TestSlackFormatNamesEverything(t *testing.T) {
	l := openEmbedded(t, filepath.Join(t.TempDir(), "l"))
	s := newSink(t, "", 0)
	n, err := notify.New(notify.Settings{Outbox: l.(ledger.Outbox), Retry: fastRetry(),
		Webhooks: []notify.Webhook{{Name: "slack", URL: s.srv.URL, Format: notify.FormatSlack, Events: []string{notify.TypeApprovalRequested}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := n.Emit(ctx, approvalEvent("e1")); err != nil {
		t.Fatal(err)
	}
	// Not subscribed: never stored.
	if err := n.Emit(ctx, notify.Event{ID: "f1", Type: notify.TypeFreeze, Freeze: &notify.Freeze{Scope: "agent", ID: "coder", Frozen: true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	_, got, bodies := s.snapshot()
	if len(got) != 1 || len(bodies) != 1 {
		t.Fatalf("sink got %v", got)
	}
	text, _ := bodies[0]["text"].(string)
	for _, want := range []string{"coder", "deploy", "$1.25", "deploys-need-approval", "deploys need a person",
		"agentcostctl approvals approve ap-e1", "POST /v1/approvals/ap-e1/approve"} {
		if !strings.Contains(text, want) {
			t.Errorf("slack text lacks %q:\n%s", want, text)
		}
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	r := configretry.NewDefaultBackOffConfig() // 5s initial, x1.5, 30s max, ±50%
	if d := notify.Backoff(r, 1, 0.5); d != 5*time.Second {
		t.Fatalf("first retry %v, want 5s at the middle of the jitter", d)
	}
	if d := notify.Backoff(r, 3, 0.5); d != 11250*time.Millisecond {
		t.Fatalf("third retry %v, want 11.25s", d)
	}
	if d := notify.Backoff(r, 30, 0.5); d != 30*time.Second {
		t.Fatalf("capped retry %v, want 30s", d)
	}
	if lo, hi := notify.Backoff(r, 1, 0), notify.Backoff(r, 1, 0.999999); lo != 2500*time.Millisecond || hi < 7499*time.Millisecond {
		t.Fatalf("jitter range [%v, %v], want [2.5s, 7.5s)", lo, hi)
	}
}

// TestOneDeliveryPerEventAcrossRedisReplicas runs two notifiers over one Redis outbox at once:
// every event reaches the sink exactly once.
func TestOneDeliveryPerEventAcrossRedisReplicas(t *testing.T) {
	srv := redistest.Start(t)
	s := newSink(t, "k", 0)
	cfg := ledger.NewDefaultConfig()
	cfg.Backend = ledger.BackendRedis
	cfg.Redis.Endpoint = srv.Addr
	cfg.Redis.KeyPrefix = "notify-replicas:"
	var ns []*notify.Notifier
	for range 2 {
		l, err := ledger.Open(context.Background(), cfg, ledger.Settings{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		n, err := notify.New(notify.Settings{Outbox: l.(ledger.Outbox), Retry: fastRetry(), Batch: 5,
			Webhooks: []notify.Webhook{{Name: "ops", URL: s.srv.URL, Secret: []byte("k")}}})
		if err != nil {
			t.Fatal(err)
		}
		ns = append(ns, n)
	}
	const events = 100
	for i := range events {
		if err := ns[i%2].Emit(context.Background(), approvalEvent(jsonInt(int64(i)))); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for _, n := range ns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.DeliverDue(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	_, got, _ := s.snapshot()
	if len(got) != events {
		t.Fatalf("sink got %d events, want %d", len(got), events)
	}
	for id, c := range got {
		if c != 1 {
			t.Fatalf("event %s delivered %d times, want once", id, c)
		}
	}
	if a, b := ns[0].Stats().Delivered, ns[1].Stats().Delivered; a+b != events {
		t.Fatalf("delivered %d + %d", a, b)
	}
}

// TestShutdownHandsClaimedEventsBack: a delivery cut short by shutdown leaves its event due at
// once, not claimed until its lease ends.
func TestShutdownHandsClaimedEventsBack(t *testing.T) {
	l := openEmbedded(t, filepath.Join(t.TempDir(), "l"))
	ob := l.(ledger.Outbox)
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	n, err := notify.New(notify.Settings{Outbox: ob, Retry: fastRetry(), Lease: time.Hour,
		Webhooks: []notify.Webhook{{Name: "slow", URL: slow.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Emit(context.Background(), approvalEvent("e1")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _, _ = n.DeliverDue(ctx) }()
	<-entered
	cancel()
	<-done
	got, err := ob.ClaimOutbox(context.Background(), 10, time.Minute, time.Now())
	if err != nil || len(got) != 1 {
		t.Fatalf("after shutdown the event is not due again: %+v, %v", got, err)
	}
	if st := n.Stats(); st.Retried != 0 || st.Failed != 0 {
		t.Fatalf("a shutdown counted as a failure: %+v", st)
	}
}
