package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/config/configretry"
	"go.uber.org/zap"

	"github.com/agentcost/agentcost/internal/ledger"
)

// The delivery formats.
const (
	// FormatJSON delivers the Event as JSON.
	FormatJSON = "json"
	// FormatSlack delivers {"text": ...}, what a Slack incoming webhook (and Mattermost, Rocket.Chat,
	// Teams' Slack-compatible connectors) accepts.
	FormatSlack = "slack"
)

// Webhook is one delivery target.
type Webhook struct {
	// Name identifies the webhook in the outbox, metrics and logs; unique.
	Name string
	// URL is where events are POSTed.
	URL string
	// Secret keys the HMAC-SHA256 signature; empty sends no signature.
	Secret []byte
	// Format is FormatJSON or FormatSlack.
	Format string
	// Events are the event types delivered; empty delivers every type.
	Events []string
	// Client sends the requests (timeouts, TLS); nil uses a client with a 10s timeout.
	Client *http.Client
}

func (w *Webhook) wants(typ string) bool { return len(w.Events) == 0 || slices.Contains(w.Events, typ) }

// Settings configures a Notifier.
type Settings struct {
	// Outbox is the ledger's outbox.
	Outbox ledger.Outbox
	// Webhooks are the targets.
	Webhooks []Webhook
	// MaxEvents bounds the outbox (default 10000); an event that would pass it is dropped and
	// counted, so that a dead endpoint cannot grow the ledger without bound.
	MaxEvents int
	// PollInterval is how often the outbox is checked for due events (default 1s).
	PollInterval time.Duration
	// Lease is how long a claimed event stays hidden from other replicas while it is delivered
	// (default 1m); it must exceed a delivery's timeout.
	Lease time.Duration
	// Batch bounds the events one claim takes (default 100).
	Batch int
	// Retry paces redeliveries; with Enabled false a failed delivery is dropped.
	Retry configretry.BackOffConfig
	// ApproveHint says how to approve, in a Slack message (default: the agentcostctl command and
	// the API call).
	ApproveHint func(id string) string
	// Logger logs failed deliveries (never a secret).
	Logger *zap.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Stats counts what a Notifier did since it started.
type Stats struct {
	// Enqueued events (one per event and webhook).
	Enqueued int64
	// Delivered events (a 2xx answer).
	Delivered int64
	// Retried failed deliveries scheduled again.
	Retried int64
	// Failed events given up: a 4xx answer other than 408 and 429, or retries past
	// max_elapsed_time.
	Failed int64
	// Dropped events not stored because the outbox was full.
	Dropped int64
	// EnqueueErrors counts events the outbox could not store (the ledger failed).
	EnqueueErrors int64
}

// Notifier writes events to the outbox and delivers them.
type Notifier struct {
	set   Settings
	hooks []Webhook
	log   *zap.Logger

	enqueued, delivered, retried, failed, dropped, enqueueErrors atomic.Int64
}

// New returns a Notifier; Run delivers.
func New(set Settings) (*Notifier, error) {
	if set.Outbox == nil {
		return nil, errors.New("notify: no outbox")
	}
	if set.MaxEvents <= 0 {
		set.MaxEvents = 10000
	}
	if set.PollInterval <= 0 {
		set.PollInterval = time.Second
	}
	if set.Lease <= 0 {
		set.Lease = time.Minute
	}
	if set.Batch <= 0 {
		set.Batch = 100
	}
	if set.Logger == nil {
		set.Logger = zap.NewNop()
	}
	if set.Now == nil {
		set.Now = time.Now
	}
	if set.ApproveHint == nil {
		set.ApproveHint = DefaultApproveHint
	}
	hooks := slices.Clone(set.Webhooks)
	names := map[string]bool{}
	for i := range hooks {
		h := &hooks[i]
		if h.Name == "" || strings.Contains(h.Name, "|") || names[h.Name] {
			return nil, fmt.Errorf("notify: webhook name %q is empty, repeated or holds '|'", h.Name)
		}
		names[h.Name] = true
		if h.Format == "" {
			h.Format = FormatJSON
		}
		if h.Client == nil {
			h.Client = &http.Client{Timeout: 10 * time.Second}
		}
	}
	return &Notifier{set: set, hooks: hooks, log: set.Logger}, nil
}

// DefaultApproveHint names the agentcostctl command and the API call that approve id.
func DefaultApproveHint(id string) string {
	return fmt.Sprintf("*Approve:* `agentcostctl approvals approve %s` (or deny), or `POST /v1/approvals/%s/approve` with a reviewer token\n", id, id)
}

// Stats returns the counts so far.
func (n *Notifier) Stats() Stats {
	return Stats{Enqueued: n.enqueued.Load(), Delivered: n.delivered.Load(), Retried: n.retried.Load(),
		Failed: n.failed.Load(), Dropped: n.dropped.Load(), EnqueueErrors: n.enqueueErrors.Load()}
}

// envelope is an outbox entry's body: the webhook it goes to and the event.
type envelope struct {
	Webhook string `json:"webhook"`
	Event   Event  `json:"event"`
}

// Emit stores ev in the outbox, once for every webhook subscribed to its type, and returns once
// it is durable. ev.ID must be unique per event (the same id twice is stored once); a zero Time
// is now. A full outbox drops the event (counted), which is not an error: notifications never
// block the operation that caused them.
func (n *Notifier) Emit(ctx context.Context, ev Event) error {
	if n == nil {
		return nil
	}
	ev.Schema = Schema
	if ev.Time.IsZero() {
		ev.Time = n.set.Now()
	}
	ev.Time = ev.Time.UTC()
	var entries []ledger.OutboxEvent
	for _, h := range n.hooks {
		if !h.wants(ev.Type) {
			continue
		}
		body, err := json.Marshal(envelope{Webhook: h.Name, Event: ev})
		if err != nil {
			return fmt.Errorf("encoding event %q: %w", ev.ID, err)
		}
		entries = append(entries, ledger.OutboxEvent{ID: h.Name + "|" + ev.ID, Type: ev.Type, Body: body, CreatedAt: n.set.Now()})
	}
	if len(entries) == 0 {
		return nil
	}
	dropped, err := n.set.Outbox.EnqueueOutbox(ctx, entries, n.set.MaxEvents)
	if err != nil {
		n.enqueueErrors.Add(int64(len(entries)))
		return fmt.Errorf("storing event %q in the outbox: %w", ev.ID, err)
	}
	if dropped > 0 {
		n.dropped.Add(int64(dropped))
		n.log.Warn("Notification outbox full; event dropped", zap.String("event_id", ev.ID),
			zap.String("type", ev.Type), zap.Int("dropped", dropped), zap.Int("max_events", n.set.MaxEvents))
	}
	n.enqueued.Add(int64(len(entries) - dropped))
	return nil
}

// Run delivers due events every PollInterval until ctx is done.
func (n *Notifier) Run(ctx context.Context) {
	t := time.NewTicker(n.set.PollInterval)
	defer t.Stop()
	for {
		if _, err := n.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			n.log.Debug("Delivering notifications failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// DeliverDue claims the due events (batch by batch, until none is due) and delivers them, each
// webhook's in order, the webhooks concurrently. It returns how many were delivered.
func (n *Notifier) DeliverDue(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		evs, err := n.set.Outbox.ClaimOutbox(ctx, n.set.Batch, n.set.Lease, n.set.Now())
		if err != nil {
			return total, err
		}
		if len(evs) == 0 {
			return total, nil
		}
		byHook := map[string][]ledger.OutboxEvent{}
		for _, ev := range evs {
			name, _, _ := strings.Cut(ev.ID, "|")
			byHook[name] = append(byHook[name], ev)
		}
		var (
			wg sync.WaitGroup
			ok atomic.Int64
		)
		for name, evs := range byHook {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, ev := range evs {
					if n.deliverOne(ctx, name, ev) {
						ok.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		total += int(ok.Load())
		if len(evs) < n.set.Batch {
			return total, nil
		}
	}
	return total, ctx.Err()
}

// deliverOne delivers one claimed entry and acknowledges or reschedules it.
func (n *Notifier) deliverOne(ctx context.Context, name string, ob ledger.OutboxEvent) bool {
	var env envelope
	if err := json.Unmarshal(ob.Body, &env); err != nil {
		n.failed.Add(1)
		n.log.Error("Undecodable notification dropped", zap.String("outbox_id", ob.ID), zap.Error(err))
		_ = n.set.Outbox.AckOutbox(ctx, ob.ID)
		return false
	}
	i := slices.IndexFunc(n.hooks, func(h Webhook) bool { return h.Name == name })
	if i < 0 {
		// A webhook removed from the configuration: its pending events go nowhere.
		n.failed.Add(1)
		n.log.Warn("Notification for a webhook no longer configured dropped", zap.String("webhook", name), zap.String("event_id", env.Event.ID))
		_ = n.set.Outbox.AckOutbox(ctx, ob.ID)
		return false
	}
	h := &n.hooks[i]
	permanent, err := n.post(ctx, h, env.Event)
	if err != nil && ctx.Err() != nil {
		// Shutting down: hand the event back, due now, for the next start (or another replica)
		// instead of leaving it claimed until its lease ends.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = n.set.Outbox.RetryOutbox(rctx, ob.ID, n.set.Now())
		return false
	}
	if err == nil {
		n.delivered.Add(1)
		if err := n.set.Outbox.AckOutbox(ctx, ob.ID); err != nil {
			// Not acknowledged: it is delivered again after its lease, and deduplicated by id.
			n.log.Debug("Acknowledging a delivered notification failed", zap.String("event_id", env.Event.ID), zap.Error(err))
		}
		return true
	}
	now := n.set.Now()
	r := n.set.Retry
	giveUp := permanent || !r.Enabled || (r.MaxElapsedTime > 0 && now.Sub(ob.CreatedAt) >= r.MaxElapsedTime)
	if giveUp {
		n.failed.Add(1)
		n.log.Warn("Notification delivery failed; giving up", zap.String("webhook", h.Name), zap.String("event_id", env.Event.ID),
			zap.String("type", env.Event.Type), zap.Int("attempts", ob.Attempts), zap.Error(err))
		_ = n.set.Outbox.AckOutbox(ctx, ob.ID)
		return false
	}
	n.retried.Add(1)
	delay := Backoff(r, ob.Attempts, rand.Float64())
	n.log.Debug("Notification delivery failed; retrying", zap.String("webhook", h.Name), zap.String("event_id", env.Event.ID),
		zap.Int("attempts", ob.Attempts), zap.Duration("retry_in", delay), zap.Error(err))
	if err := n.set.Outbox.RetryOutbox(ctx, ob.ID, now.Add(delay)); err != nil {
		n.log.Debug("Rescheduling a notification failed; it is retried after its lease", zap.Error(err))
	}
	return false
}

// Backoff returns the delay before attempt attempts+1 after attempts failed ones: initial_interval
// times multiplier^(attempts-1), at most max_interval, spread by ±randomization_factor (u is a
// uniform random number in [0, 1)).
func Backoff(r configretry.BackOffConfig, attempts int, u float64) time.Duration {
	d := float64(r.InitialInterval) * math.Pow(max(r.Multiplier, 1), float64(max(attempts-1, 0)))
	if r.MaxInterval > 0 {
		d = min(d, float64(r.MaxInterval))
	}
	f := min(max(r.RandomizationFactor, 0), 1)
	d = d * (1 - f + 2*f*u)
	return max(time.Duration(d), time.Millisecond)
}

// maxErrorBody bounds what a failed delivery's answer contributes to the log.
const maxErrorBody = 256

// post sends ev to h; permanent says a retry cannot help (a 4xx other than 408 and 429).
func (n *Notifier) post(ctx context.Context, h *Webhook, ev Event) (permanent bool, err error) {
	var body []byte
	if h.Format == FormatSlack {
		body, err = json.Marshal(map[string]string{"text": slackText(ev, n.set.ApproveHint)})
	} else {
		body, err = json.Marshal(ev)
	}
	if err != nil {
		return true, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return true, fmt.Errorf("webhook %q: %w", h.Name, err)
	}
	now := n.set.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "agentcost-notify/1")
	req.Header.Set(HeaderEventID, ev.ID)
	req.Header.Set(HeaderEventType, ev.Type)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	if len(h.Secret) > 0 {
		req.Header.Set(HeaderSignature, Sign(h.Secret, now, body))
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		// The URL can be a secret (a Slack webhook's is): keep it out of the error.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return false, fmt.Errorf("webhook %q: %w", h.Name, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	permanent = resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests
	return permanent, fmt.Errorf("webhook %q answered %d: %s", h.Name, resp.StatusCode, strings.TrimSpace(string(snippet)))
}
