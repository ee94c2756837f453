package budgetreceiver

import (
	"context"
	"errors"
	"fmt"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"net"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"

	"github.com/agentcost/agentcost/extension/budgetledgerextension"
	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/baseline"
	"github.com/agentcost/agentcost/internal/costmetrics"
	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/notify"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/internal/pricing"
	"github.com/agentcost/agentcost/internal/sharedcomponent"
)

// budgetReceiver is one receiver ID's single instance: the collector creates it once for a
// metrics pipeline and once for a logs pipeline, and both get this one object (through
// receivers), which serves one HTTP server.
type budgetReceiver struct {
	cfg *Config
	set receiver.Settings

	mu      sync.Mutex
	metrics consumer.Metrics
	logs    consumer.Logs
	running bool

	stats *stats
	// provider is the budgetledger extension: the ledger's totals and the booking errors.
	provider budgetledgerextension.Provider
	// totals publishes the ledger's totals with the label bound.
	totals  *costmetrics.Publisher
	emitter *emitter
	watcher *policy.Watcher
	engine  *decide.Engine
	server  *http.Server
	addr    net.Addr
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	served  chan struct{}
	keeper  *baseline.Keeper
	// notifier delivers notifications (nil without webhooks); outbox is the ledger's outbox.
	notifier *notify.Notifier
	outbox   ledger.Outbox
	// unhook unregisters the budget-level check of booked spend (nil without notifications).
	unhook func()

	// api is the decision API's handler state (in-flight bounds), kept for tests.
	api *server
}

// actionBaselinesKey is the storage key of the per-action baseline snapshot. The per-agent run
// baselines are kept in memory only.
const actionBaselinesKey = "agentcost.action_baselines.v1"

// receivers holds each configuration's receiver, shared by its metrics and logs pipelines.
var receivers = sharedcomponent.NewMap[*Config, *budgetReceiver]()

// shared returns the receiver of cfg, creating it for the first pipeline.
func shared(set receiver.Settings, cfg *Config) *sharedcomponent.Component[*budgetReceiver] {
	return receivers.LoadOrStore(cfg, func() *budgetReceiver { return &budgetReceiver{cfg: cfg, set: set} })
}

func (r *budgetReceiver) setMetrics(next consumer.Metrics) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.metrics = next
}

func (r *budgetReceiver) setLogs(next consumer.Logs) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = next
}

// Start starts the receiver (once: receivers shares the first call's outcome with the other
// pipeline): it finds the ledger, loads the tokens and the policy, and serves the decision API.
func (r *budgetReceiver) Start(ctx context.Context, host component.Host) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.start(ctx, host)
}

func (r *budgetReceiver) start(ctx context.Context, host component.Host) error {
	provider, err := budgetledgerextension.Find(host, r.cfg.Ledger)
	if err != nil {
		return err
	}
	var creds *access.Set
	if r.cfg.Access != nil {
		if creds, err = r.cfg.Access.load(host); err != nil {
			return err
		}
	}
	r.stats = newStats(time.Now(), r.cfg.LedgerUnavailable.Decisions)
	r.provider, r.totals = provider, costmetrics.NewPublisher(r.cfg.MaxLabelValues)
	r.emitter = newEmitter(r.logs, r.set.Logger)
	prices, err := r.cfg.Prices.load(r.cfg.MaxFileBytes)
	if err != nil {
		return err
	}
	if r.watcher, err = r.watchPolicy(prices); err != nil {
		return fmt.Errorf("policy_file: %w", err)
	}
	baselines, err := r.startEngine(ctx, host, provider, prices)
	if err != nil {
		return err
	}
	if err := r.serve(ctx, host, provider, creds, baselines); err != nil {
		return err
	}
	r.runBackground(provider)
	r.running = true
	r.logStarted(creds)
	return nil
}

// watchPolicy loads the policy and watches its files for changes; a reload that fails keeps the
// policy in force and is counted.
func (r *budgetReceiver) watchPolicy(prices *pricing.Table) (*policy.Watcher, error) {
	log := r.set.Logger
	return policy.NewWatcher(policy.WatcherConfig{
		Check:        func(p *policy.Policy) error { return p.CheckModels(prices.Knows) },
		Path:         r.cfg.PolicyFile,
		Overlays:     r.cfg.PolicyOverlays,
		Interval:     r.cfg.PolicyReloadInterval,
		MaxFileBytes: r.cfg.MaxFileBytes,
		OnError: func(err error) {
			r.stats.policyReloadFailed()
			log.Error("Policy reload failed; the policy in force stays", zap.Error(err))
		},
		OnReload: func(p *policy.Policy) {
			log.Info("Policy reloaded", zap.String("policy_version", p.Version()), zap.String("policy_hash", p.Hash()))
		},
	})
}

// startEngine builds the decision engine over the ledger, the evidence writer, the baselines, the
// fail mode and the notifier; it returns the per-action baselines, which the keeper persists.
func (r *budgetReceiver) startEngine(ctx context.Context, host component.Host, provider budgetledgerextension.Provider, prices *pricing.Table) (*baseline.Store, error) {
	bcfg, err := r.cfg.Baseline.config()
	if err != nil {
		return nil, err
	}
	baselines, err := baseline.New(bcfg)
	if err != nil {
		return nil, err
	}
	runBaselines, err := baseline.New(bcfg)
	if err != nil {
		return nil, err
	}
	failMode, _ := decide.ParseFailMode(r.cfg.LedgerUnavailable.Decisions) // validated
	failOpen, err := policy.CompileTopics(r.cfg.LedgerUnavailable.FailOpenTopics)
	if err != nil {
		return nil, fmt.Errorf("ledger_unavailable.fail_open_topics: %w", err)
	}
	failClosed, err := policy.CompileTopics(r.cfg.LedgerUnavailable.FailClosedTopics)
	if err != nil {
		return nil, fmt.Errorf("ledger_unavailable.fail_closed_topics: %w", err)
	}
	r.notifier, err = newNotifier(ctx, r.cfg.Notifications, provider.Ledger(), host, r.set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	r.outbox, _ = provider.Ledger().(ledger.Outbox)
	var appender decide.EvidenceAppender
	if w := provider.Evidence(); w != nil {
		appender = w
	}
	r.engine, err = decide.New(ctx, decide.Config{
		Policy:         r.watcher.Policy,
		Ledger:         provider.Ledger(),
		Evidence:       appender,
		Location:       provider.Location(),
		Baselines:      baselines,
		RunBaselines:   runBaselines,
		RunIdle:        r.cfg.RunIdle,
		ApprovalTTL:    r.cfg.ApprovalTTL,
		ReservationTTL: r.cfg.ReservationTTL,
		IdempotencyTTL: r.cfg.IdempotencyTTL,
		FailMode:       failMode,
		FailOpenTopics: failOpen, FailClosedTopics: failClosed,
		RetryAfter:    r.cfg.LedgerUnavailable.RetryAfter,
		LedgerTimeout: r.cfg.LedgerUnavailable.Timeout,
		Recorder:      recorder{stats: r.stats, emitter: r.emitter},
		Notifier:      r.notifierOrNil(),
		Logger:        r.set.Logger,
		Prices:        prices,
	})
	return baselines, err
}

// serve listens on the endpoint and serves the decision API, once the per-action baselines are
// restored from storage.
func (r *budgetReceiver) serve(ctx context.Context, host component.Host, provider budgetledgerextension.Provider, creds *access.Set, baselines *baseline.Store) error {
	srv := newServer(r.engine, creds, r.cfg.bodyLimit(), r.cfg.MaxInFlight, r.stats)
	srv.setLimits(r.cfg.requestLimits())
	if w := provider.Evidence(); w != nil {
		srv.evidenceDir = w.Dir()
	}
	r.api = srv
	ln, err := r.cfg.ToListener(ctx)
	if err != nil {
		return fmt.Errorf("endpoint: listening on %q: %w", r.cfg.NetAddr.Endpoint, err)
	}
	r.server, err = r.cfg.ToServer(ctx, host.GetExtensions(), httpTelemetry(r.set.TelemetrySettings), srv.handler())
	if err != nil {
		_ = ln.Close()
		return err
	}
	// Restore the per-action baselines before the first request is served.
	if id := r.cfg.Baseline.Storage; id != nil {
		if r.keeper, err = baseline.StartKeeper(ctx, host, *id, component.KindReceiver, r.set.ID, baselines,
			actionBaselinesKey, time.Minute, r.set.Logger); err != nil {
			_ = ln.Close()
			return err
		}
	}
	r.addr = ln.Addr()
	r.served = make(chan struct{})
	go func() {
		defer close(r.served)
		if err := r.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	}()
	return nil
}

// runBackground starts the evidence emitter, the policy watcher, the settle, mid-flight and
// publish tickers, and the notifier with its check of booked spend.
func (r *budgetReceiver) runBackground(provider budgetledgerextension.Provider) {
	bg, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.emitter.start()
	r.wg.Add(4)
	go func() { defer r.wg.Done(); r.watcher.Run(bg) }()
	go func() { defer r.wg.Done(); r.every(bg, r.cfg.SettleInterval, r.settle) }()
	go func() { defer r.wg.Done(); r.every(bg, r.cfg.MidflightInterval, r.midflight) }()
	go func() { defer r.wg.Done(); r.every(bg, r.cfg.PublishInterval, r.publish) }()
	if r.notifier != nil {
		r.wg.Add(1)
		go func() { defer r.wg.Done(); r.notifier.Run(bg) }()
		// A level crossed by booked spend is notified before the exporter acknowledges the spans.
		r.unhook = provider.OnBooked(func(ctx context.Context, spends []ledger.Spend, _ ledger.BookResult) error {
			_, err := r.engine.NotifyBooked(ctx, spends)
			return err
		})
	}
}

// logStarted logs the start, and warns when the API is open.
func (r *budgetReceiver) logStarted(creds *access.Set) {
	log := r.set.Logger
	p := r.watcher.Policy()
	log.Info("Budget receiver started",
		zap.String("endpoint", r.addr.String()),
		zap.String("policy_version", p.Version()),
		zap.String("policy_hash", p.Hash()),
		zap.String("ledger", r.cfg.Ledger.String()),
		zap.Int("tokens", creds.Len()),
		zap.String("ledger_unavailable.decisions", r.cfg.LedgerUnavailable.Decisions))
	if r.cfg.Access == nil {
		log.Warn("The decision API is open: no access tokens are configured, so anyone who can reach the loopback endpoint may decide, release and approve",
			zap.String("endpoint", r.addr.String()))
	}
}

// every runs fn every interval until ctx is done.
func (r *budgetReceiver) every(ctx context.Context, interval time.Duration, fn func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

// failed counts a failure of a background task (label task) and logs it at debug; a failure
// because the receiver is stopping is neither.
func (r *budgetReceiver) failed(ctx context.Context, task, msg string, err error, fields ...zap.Field) {
	if err == nil || ctx.Err() != nil {
		return
	}
	r.stats.taskFailed(task)
	r.set.Logger.Debug(msg, append(fields, zap.String("task", task), zap.Error(err))...)
}

// settle settles the reservations past their TTL.
func (r *budgetReceiver) settle(ctx context.Context) {
	n, err := r.engine.ExpireDue(ctx)
	r.failed(ctx, taskSettle, "Settling expired reservations failed", err, zap.Int("settled", n))
	_, err = r.engine.NotifyExpiredApprovals(ctx)
	r.failed(ctx, taskNotifyApprovals, "Notifying expired approvals failed", err)
}

// midflight flags the open actions and running runs whose running totals crossed their baselines
// (see decide.Engine.CheckMidFlight).
func (r *budgetReceiver) midflight(ctx context.Context) {
	_, err := r.engine.CheckMidFlight(ctx)
	r.failed(ctx, taskMidflight, "Mid-flight anomaly check failed", err)
}

// maxPublishedScopes bounds the budget scopes one publish sends (the fleet, teams and agents by
// id, in that order), as the ledger's snapshot_limit bounded them before the listing was paged.
const maxPublishedScopes = 10000

// publish sends the budget state, the ledger's totals and the receiver's own metrics to the
// metrics pipeline. The totals are the ledger's whole cumulative counts, re-published on every
// interval, so a series of an idle agent stays (no exporter expires it) and every replica
// publishes the same values.
func (r *budgetReceiver) publish(ctx context.Context) {
	next := r.metrics // set at creation, before Start
	if next == nil && r.notifier == nil {
		return
	}
	budgets, truncated, err := r.engine.AllBudgets(ctx, maxPublishedScopes)
	r.failed(ctx, taskReadBudgets, "Reading budget state for the metrics pipeline failed", err)
	if truncated {
		r.set.Logger.Debug("Publishing the first budgets only", zap.Int("scopes", len(budgets.Scopes)))
	}
	if err == nil {
		_, nerr := r.engine.NotifyBudgetLevels(ctx, budgets)
		r.failed(ctx, taskNotifyLevels, "Notifying budget level crossings failed", nerr)
	}
	if next == nil {
		return
	}
	now := time.Now()
	totals, terr := r.provider.Ledger().Totals(ctx)
	r.failed(ctx, taskReadTotals, "Reading the ledger's totals for the metrics pipeline failed", terr)
	md := r.stats.metrics(now, budgets, err == nil)
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	if terr == nil {
		r.totals.Append(ms, totals, now)
	}
	r.stats.appendBookErrors(ms, r.provider.BookErrors(), now)
	notificationMetrics(ctx, md, r.notifier, r.outbox, r.stats.start, now)
	if n, err := r.engine.ActiveFreezes(ctx); err == nil {
		appendFreezeGauge(md, now, n)
	}
	r.failed(ctx, taskPublish, "The metrics pipeline refused budget metrics", next.ConsumeMetrics(ctx, md))
}

// Shutdown stops the receiver (on the last pipeline's call, through receivers): it drains the HTTP
// server, stops the tickers and the policy watcher, and flushes the evidence logs.
func (r *budgetReceiver) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running {
		return nil
	}
	r.running = false
	if r.unhook != nil {
		r.unhook()
		r.unhook = nil
	}
	err := r.server.Shutdown(ctx)
	<-r.served
	r.cancel()
	r.wg.Wait()
	r.emitter.stop()
	if r.keeper != nil {
		err = errors.Join(err, r.keeper.Stop(ctx))
		r.keeper = nil
	}
	r.set.Logger.Info("Budget receiver stopped")
	return err
}

// notifierOrNil returns the notifier as the engine takes it: a nil interface without webhooks.
func (r *budgetReceiver) notifierOrNil() decide.Notifier {
	if r.notifier == nil {
		return nil
	}
	return r.notifier
}

// httpTelemetry is what confighttp's otelhttp wrapper of the decision API gets: the collector's
// tracer provider (server spans when the service's traces are configured) but a no-op meter
// provider. The receiver counts decisions and times them itself
// (agentcost_decisions_total, agentcost_decision_duration_seconds), so otelhttp's
// http.server.* histograms, three per request with their attributes, would only repeat them on the
// hot path.
func httpTelemetry(set component.TelemetrySettings) component.TelemetrySettings {
	set.MeterProvider = metricnoop.NewMeterProvider()
	return set
}
