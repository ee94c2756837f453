package budgetreceiver

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/notify"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Formats of notifications.webhooks[].format.
const (
	FormatJSON  = notify.FormatJSON
	FormatSlack = notify.FormatSlack
)

// Metrics of the notifications.
const (
	NameBudgetLevel       = "agentcost_budget_level"
	NameNotifications     = "agentcost_notifications_total"
	NameNotificationsOutq = "agentcost_notification_outbox_events"

	HelpBudgetLevel       = "Each budget scope's level: 0 normal, 1 warn (its warn_at reached), 2 throttle, 3 pause (fleet), 4 exhausted."
	HelpNotifications     = "Notification deliveries by outcome: delivered, retried (a failed attempt scheduled again), failed (given up), dropped (outbox full) and enqueue_error (the ledger could not store it)."
	HelpNotificationsOutq = "Notifications waiting in the ledger's outbox (all replicas), at most notifications.outbox.max_events."
)

// NotificationsConfig sends events to people through webhooks. With no webhooks nothing is sent
// and nothing is stored.
type NotificationsConfig struct {
	// Webhooks are the targets; every event goes to each webhook subscribed to its type.
	Webhooks []WebhookConfig `mapstructure:"webhooks"`
	// Outbox bounds and paces the durable outbox in the ledger.
	Outbox OutboxConfig `mapstructure:"outbox"`
	// Retry paces redeliveries of a failed delivery: exponential backoff with jitter (the
	// collector's retry settings; default 5s initial, x1.5, at most 30s apart, for 5m; after
	// max_elapsed_time the event is given up and counted failed). enabled: false gives up at the
	// first failure.
	Retry configretry.BackOffConfig `mapstructure:"retry"`
}

// WebhookConfig is one webhook: the collector's HTTP client settings (endpoint, timeout, tls,
// headers, proxy_url...), a name, the signing secret, the format and the event types.
type WebhookConfig struct {
	// Name identifies the webhook in metrics and logs (required, unique).
	Name string `mapstructure:"name"`
	// ClientConfig is the HTTP client: endpoint (the URL events are POSTed to, required),
	// timeout (default 10s), tls and the rest of confighttp's client settings.
	confighttp.ClientConfig `mapstructure:",squash"`
	// SecretFile holds the HMAC-SHA256 key of the X-Agentcost-Signature header (surrounding
	// whitespace trimmed). Empty sends no signature (for a Slack incoming webhook, whose URL is
	// the secret).
	SecretFile string `mapstructure:"secret_file"`
	// Format is json (default: the versioned event) or slack ({"text": ...}).
	Format string `mapstructure:"format"`
	// Events are the event types sent (default: every type).
	Events []string `mapstructure:"events"`
}

// OutboxConfig configures the notification outbox.
type OutboxConfig struct {
	// MaxEvents bounds the events waiting in the outbox (default 10000, one per event and
	// webhook); past it a new event is dropped and counted, so a dead endpoint never grows the
	// ledger without bound.
	MaxEvents int `mapstructure:"max_events"`
	// PollInterval is how often the outbox is checked for events due (default 1s).
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// Lease is how long a replica holds the events it claimed while it delivers them (default 1m);
	// when it dies, another delivers them after the lease. It must exceed every webhook's timeout.
	Lease time.Duration `mapstructure:"lease"`
}

// defaultWebhookTimeout bounds a delivery whose webhook sets no timeout.
const defaultWebhookTimeout = 10 * time.Second

func defaultNotifications() NotificationsConfig {
	return NotificationsConfig{
		Outbox: OutboxConfig{MaxEvents: 10000, PollInterval: time.Second, Lease: time.Minute},
		Retry:  configretry.NewDefaultBackOffConfig(),
	}
}

func (n *NotificationsConfig) validate() error {
	var errs error
	add := func(format string, args ...any) { errs = errors.Join(errs, fmt.Errorf(format, args...)) }
	if len(n.Webhooks) == 0 {
		return nil
	}
	names := map[string]bool{}
	for i, w := range n.Webhooks {
		key := fmt.Sprintf("notifications.webhooks[%d]", i)
		switch {
		case strings.TrimSpace(w.Name) == "" || strings.Contains(w.Name, "|"):
			add("%s.name: required, without '|'", key)
		case names[w.Name]:
			add("%s.name: %q is used by another webhook", key, w.Name)
		}
		names[w.Name] = true
		if u, err := url.Parse(w.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The URL may carry a secret (a Slack webhook's does): do not repeat it.
			add("%s.endpoint: required, an http or https URL", key)
		}
		if w.Format != "" && w.Format != FormatJSON && w.Format != FormatSlack {
			add("%s.format: %q is not json or slack", key, w.Format)
		}
		for j, ev := range w.Events {
			if !slices.Contains(notify.Types, ev) {
				add("%s.events[%d]: %q is not one of %s", key, j, ev, strings.Join(notify.Types, ", "))
			}
		}
		timeout := w.Timeout
		if timeout == 0 {
			timeout = defaultWebhookTimeout
		}
		if w.Timeout < 0 {
			add("%s.timeout: %v must not be negative", key, w.Timeout)
		} else if n.Outbox.Lease > 0 && timeout >= n.Outbox.Lease {
			add("%s.timeout: %v must be below notifications.outbox.lease (%v): a delivery still running when its lease ends may be repeated by another replica", key, timeout, n.Outbox.Lease)
		}
	}
	if n.Outbox.MaxEvents < 1 {
		add("notifications.outbox.max_events: %d must be at least 1", n.Outbox.MaxEvents)
	}
	if n.Outbox.PollInterval <= 0 {
		add("notifications.outbox.poll_interval: %v must be positive", n.Outbox.PollInterval)
	}
	if n.Outbox.Lease <= 0 {
		add("notifications.outbox.lease: %v must be positive", n.Outbox.Lease)
	}
	if n.Retry.Enabled {
		if n.Retry.InitialInterval <= 0 {
			add("notifications.retry.initial_interval: %v must be positive", n.Retry.InitialInterval)
		}
		if n.Retry.Multiplier < 1 {
			add("notifications.retry.multiplier: %v must be at least 1", n.Retry.Multiplier)
		}
		if n.Retry.RandomizationFactor < 0 || n.Retry.RandomizationFactor > 1 {
			add("notifications.retry.randomization_factor: %v must be between 0 and 1", n.Retry.RandomizationFactor)
		}
	}
	return errs
}

// newNotifier builds the notifier of cfg over the ledger l, or nil without webhooks.
func newNotifier(ctx context.Context, cfg NotificationsConfig, l ledger.Ledger, host component.Host, set component.TelemetrySettings) (*notify.Notifier, error) {
	if len(cfg.Webhooks) == 0 {
		return nil, nil
	}
	ob, ok := l.(ledger.Outbox)
	if !ok {
		return nil, fmt.Errorf("notifications: the ledger (%T) has no outbox", l)
	}
	hooks := make([]notify.Webhook, 0, len(cfg.Webhooks))
	for i, w := range cfg.Webhooks {
		key := fmt.Sprintf("notifications.webhooks[%d]", i)
		var secret []byte
		if w.SecretFile != "" {
			b, err := os.ReadFile(w.SecretFile)
			if err != nil {
				return nil, fmt.Errorf("%s.secret_file: %w", key, err)
			}
			if secret = []byte(strings.TrimSpace(string(b))); len(secret) == 0 {
				return nil, fmt.Errorf("%s.secret_file: %q is empty", key, w.SecretFile)
			}
		}
		cc := w.ClientConfig
		if cc.Timeout <= 0 {
			cc.Timeout = defaultWebhookTimeout
		}
		client, err := cc.ToClient(ctx, host.GetExtensions(), set)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		format := w.Format
		if format == "" {
			format = FormatJSON
		}
		hooks = append(hooks, notify.Webhook{Name: w.Name, URL: w.Endpoint, Secret: secret, Format: format,
			Events: w.Events, Client: client})
	}
	return notify.New(notify.Settings{
		Outbox: ob, Webhooks: hooks, MaxEvents: cfg.Outbox.MaxEvents, PollInterval: cfg.Outbox.PollInterval,
		Lease: cfg.Outbox.Lease, Retry: cfg.Retry, Logger: set.Logger,
	})
}

// notificationMetrics appends the notification counters and the outbox gauge to md.
func notificationMetrics(ctx context.Context, md pmetric.Metrics, n *notify.Notifier, ob ledger.Outbox, start, now time.Time) {
	if n == nil {
		return
	}
	rms := md.ResourceMetrics()
	if rms.Len() == 0 || rms.At(0).ScopeMetrics().Len() == 0 {
		return
	}
	ms := rms.At(0).ScopeMetrics().At(0).Metrics()
	ts := pcommon.NewTimestampFromTime(now)
	m := ms.AppendEmpty()
	m.SetName(NameNotifications)
	m.SetDescription(HelpNotifications)
	m.SetUnit("1")
	sum := m.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	st := n.Stats()
	for _, p := range []struct {
		outcome string
		v       int64
	}{{"delivered", st.Delivered}, {"retried", st.Retried}, {"failed", st.Failed}, {"dropped", st.Dropped}, {"enqueue_error", st.EnqueueErrors}} {
		dp := sum.DataPoints().AppendEmpty()
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		dp.SetTimestamp(ts)
		dp.SetIntValue(p.v)
		dp.Attributes().PutStr("outcome", p.outcome)
	}
	if ln, err := ob.OutboxLen(ctx); err == nil {
		dp := gauge(ms, NameNotificationsOutq, HelpNotificationsOutq, "1").AppendEmpty()
		dp.SetTimestamp(ts)
		dp.SetIntValue(int64(ln))
	}
}

// budgetLevelValue is a level as agentcost_budget_level reports it: its rank in
// decisionapi.BudgetLevels (0 normal, 1 warn, 2 throttle, 3 pause, 4 exhausted).
func budgetLevelValue(l decisionapi.BudgetLevel) float64 {
	return float64(max(slices.Index(decisionapi.BudgetLevels(), l), 0))
}
