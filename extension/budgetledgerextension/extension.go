package budgetledgerextension

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.uber.org/zap"

	"github.com/agentcost/agentcost/extension/budgetledgerextension/internal/metadata"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
)

// Provider is what the costledger exporter and the budget receiver get from the extension.
type Provider interface {
	// Ledger is the budget ledger; valid between Start and Shutdown.
	Ledger() ledger.Ledger
	// Evidence is the process's one cost-evidence writer; valid between Start and Shutdown.
	Evidence() *evidence.Writer
	// Location is the time zone that aligns every budget window.
	Location() *time.Location
	// OnBooked registers hook to run after every successful Book by the costledger exporter,
	// before it acknowledges the spans; the returned function unregisters it. The budget receiver
	// registers the budget-level notifications this way (the ledger knows no limits).
	OnBooked(hook BookedHook) (unregister func())
	// Booked runs the registered hooks, all of them, and joins their errors; the costledger
	// exporter calls it after a successful Book and fails the export (to be retried) on an error.
	Booked(ctx context.Context, spends []ledger.Spend, res ledger.BookResult) error
	// BookFailed counts a batch whose booking (or whose OnBooked hooks) failed in this process;
	// the costledger exporter calls it, and the budget receiver publishes BookErrors as
	// agentcost_booking_errors_total (a failed booking cannot be counted in the ledger itself).
	BookFailed()
	// BookErrors returns how many times BookFailed was called since the extension started.
	BookErrors() int64
}

// BookedHook is told of a successful Book: the spends of the call and its result. It runs before
// the spans are acknowledged; an error fails the export, which is retried (booking is
// idempotent, so the retry books nothing twice and runs the hook again).
type BookedHook func(ctx context.Context, spends []ledger.Spend, res ledger.BookResult) error

// Find returns the budgetledger extension id names in host, for components that reference it by
// their `ledger` setting.
func Find(host component.Host, id component.ID) (Provider, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("ledger: extension %q is not configured (add it under extensions and service::extensions)", id)
	}
	p, ok := ext.(Provider)
	if !ok {
		return nil, fmt.Errorf("ledger: extension %q is not a budgetledger extension", id)
	}
	return p, nil
}

type budgetLedger struct {
	cfg       *Config
	logger    *zap.Logger
	loc       *time.Location
	telemetry component.TelemetrySettings
	metrics   *metadata.TelemetryBuilder

	ledger   ledger.Ledger
	evidence *evidence.Writer
	anchor   *anchorer // nil when the backend stores no anchors
	// truncated is 1 after a start over a chain behind its anchor (accept_truncated_chain).
	truncated atomic.Int64

	bookErrors atomic.Int64

	hooksMu  sync.RWMutex
	hooks    map[uint64]BookedHook
	nextHook uint64
}

var _ Provider = (*budgetLedger)(nil)

func newBudgetLedger(set extension.Settings, cfg *Config) (*budgetLedger, error) {
	loc, err := cfg.Location()
	if err != nil {
		return nil, err
	}
	return &budgetLedger{cfg: cfg, logger: set.Logger, loc: loc, telemetry: set.TelemetrySettings}, nil
}

// Start opens the ledger backend and the evidence writer; a backend that cannot be opened fails
// start-up.
func (b *budgetLedger) Start(ctx context.Context, _ component.Host) error {
	l, err := ledger.Open(ctx, b.cfg.Config, ledger.Settings{Logger: b.logger})
	if err != nil {
		return fmt.Errorf("opening the %s ledger: %w", b.cfg.Backend, err)
	}
	opts := b.cfg.evidenceOptions()
	an, _ := l.(ledger.EvidenceAnchorer)
	var anch *anchorer
	if an != nil {
		anch = newAnchorer(an, b.cfg.Evidence.AnchorInterval, b.logger)
		opts.OnDurable = anch.offer
	}
	w, report, err := evidence.Open(b.cfg.Evidence.Directory, opts)
	if err != nil {
		_ = l.Close()
		return fmt.Errorf("opening evidence directory %q: %w", b.cfg.Evidence.Directory, err)
	}
	if t := report.Truncated; t != nil {
		b.logger.Warn("Evidence file ended in a half-written record after a crash; it was truncated",
			zap.String("file", t.File), zap.Int64("bytes_dropped", t.Bytes))
	}
	if anch != nil {
		if err := b.checkAnchor(ctx, an, report); err != nil {
			_, _ = w.Close(), l.Close()
			return err
		}
		anch.start()
	}
	b.ledger, b.evidence, b.anchor = l, w, anch
	tb, err := metadata.NewTelemetryBuilder(b.telemetry)
	if err == nil {
		var stats func() ledger.Stats
		if sr, ok := l.(ledger.StatsReporter); ok {
			stats = sr.Stats
		}
		err = registerTelemetry(tb, stats, b.anchorStats)
	}
	if err != nil {
		tb.Shutdown()
		_ = w.Close()
		if anch != nil {
			anch.close(w.Head())
		}
		_ = l.Close()
		b.ledger, b.evidence, b.anchor = nil, nil, nil
		return fmt.Errorf("creating the ledger's telemetry: %w", err)
	}
	b.metrics = tb
	fields := []zap.Field{zap.String("backend", b.cfg.Backend), zap.String("time_zone", b.loc.String()),
		zap.String("evidence_chain", report.ChainID), zap.Uint64("evidence_last_seq", report.LastSeq)}
	if b.cfg.Backend == ledger.BackendRedis {
		switch r := b.cfg.Redis; r.Mode {
		case ledger.RedisModeSentinel:
			fields = append(fields, zap.String("redis_mode", r.Mode), zap.String("redis_master_name", r.MasterName),
				zap.Strings("redis_sentinel_addresses", r.SentinelAddresses))
		case ledger.RedisModeCluster:
			fields = append(fields, zap.String("redis_mode", r.Mode), zap.Strings("redis_addresses", r.Addresses))
		default:
			fields = append(fields, zap.String("redis_endpoint", r.Endpoint))
		}
	} else {
		fields = append(fields, zap.String("directory", b.cfg.Directory))
	}
	b.logger.Info("Budget ledger started", fields...)
	return nil
}

// Shutdown flushes the evidence writer and closes the ledger.
func (b *budgetLedger) Shutdown(context.Context) error {
	var errs error
	if b.metrics != nil {
		b.metrics.Shutdown()
	}
	if b.evidence != nil {
		errs = errors.Join(errs, b.evidence.Close())
		if b.anchor != nil {
			b.anchor.close(b.evidence.Head()) // the closed writer's head is durable
		}
	}
	if b.ledger != nil {
		errs = errors.Join(errs, b.ledger.Close())
	}
	b.logger.Info("Budget ledger stopped")
	return errs
}

func (b *budgetLedger) Ledger() ledger.Ledger      { return b.ledger }
func (b *budgetLedger) Evidence() *evidence.Writer { return b.evidence }
func (b *budgetLedger) Location() *time.Location   { return b.loc }

// OnBooked registers hook (see Provider).
func (b *budgetLedger) OnBooked(hook BookedHook) func() {
	b.hooksMu.Lock()
	defer b.hooksMu.Unlock()
	if b.hooks == nil {
		b.hooks = map[uint64]BookedHook{}
	}
	b.nextHook++
	id := b.nextHook
	b.hooks[id] = hook
	return func() {
		b.hooksMu.Lock()
		defer b.hooksMu.Unlock()
		delete(b.hooks, id)
	}
}

// Booked runs the registered hooks (see Provider).
func (b *budgetLedger) Booked(ctx context.Context, spends []ledger.Spend, res ledger.BookResult) error {
	b.hooksMu.RLock()
	hooks := make([]BookedHook, 0, len(b.hooks))
	for _, h := range b.hooks {
		hooks = append(hooks, h)
	}
	b.hooksMu.RUnlock()
	var errs error
	for _, h := range hooks {
		errs = errors.Join(errs, h(ctx, spends, res))
	}
	return errs
}

// BookFailed implements Provider.
func (b *budgetLedger) BookFailed() { b.bookErrors.Add(1) }

// BookErrors implements Provider.
func (b *budgetLedger) BookErrors() int64 { return b.bookErrors.Load() }

// checkAnchor refuses a start over an evidence chain that ends behind the head anchored in the
// ledger, unless evidence.accept_truncated_chain is set: then the start is logged as an error,
// counted in the evidence_chain_truncated gauge and the anchor is reset to the chain's head.
func (b *budgetLedger) checkAnchor(ctx context.Context, an ledger.EvidenceAnchorer, rep evidence.OpenReport) error {
	problem, err := checkAnchor(ctx, an, rep, b.cfg.Backend != ledger.BackendRedis)
	if err != nil {
		return fmt.Errorf("reading the evidence chain's anchor from the ledger: %w", err)
	}
	if problem == "" {
		return nil
	}
	dir := b.cfg.Evidence.Directory
	if !b.cfg.Evidence.AcceptTruncatedChain {
		return fmt.Errorf("evidence directory %q: %s; restore the missing evidence, or set "+
			"evidence.accept_truncated_chain to start anyway", dir, problem)
	}
	b.truncated.Store(1)
	b.logger.Error("Evidence chain is behind its anchor in the ledger; starting anyway because evidence.accept_truncated_chain is set",
		zap.String("directory", dir), zap.String("problem", problem))
	if rep.LastSeq > 0 {
		a := ledger.EvidenceAnchor{ChainID: rep.ChainID, Seq: rep.LastSeq, Hash: rep.LastHash}
		if err := an.SetEvidenceAnchor(ctx, a, true); err != nil {
			return fmt.Errorf("resetting the evidence chain's anchor: %w", err)
		}
	}
	return nil
}

// anchorStats reads what the evidence instruments report.
func (b *budgetLedger) anchorStats() anchorStats {
	s := anchorStats{chainTruncated: b.truncated.Load()}
	if b.anchor != nil {
		s.anchorErrors, s.anchorWrites = b.anchor.errs.Load(), b.anchor.written.Load()
	}
	return s
}
