package costledgerexporter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/agentcost/agentcost/extension/budgetledgerextension"
	"github.com/agentcost/agentcost/internal/booking"
	"github.com/agentcost/agentcost/internal/costmetrics"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/sharedcomponent"
)

// costLedger is one pipeline's instance of the exporter; the traces and metrics instances of one
// exporter ID share a metricsServer.
type costLedger struct {
	cfg    *Config
	set    exporter.Settings
	server *sharedcomponent.Component[*metricsServer]
	ledger ledger.Ledger
	// booked runs the budgetledger extension's OnBooked hooks after a successful Book.
	booked func(ctx context.Context, spends []ledger.Spend, res ledger.BookResult) error
}

func newCostLedger(set exporter.Settings, cfg *Config) *costLedger {
	return &costLedger{cfg: cfg, set: set}
}

func (e *costLedger) startTraces(ctx context.Context, host component.Host) error {
	p, err := budgetledgerextension.Find(host, e.cfg.Ledger)
	if err != nil {
		return err
	}
	e.ledger, e.booked = p.Ledger(), p.Booked
	return e.start(ctx, host)
}

func (e *costLedger) startMetrics(ctx context.Context, host component.Host) error {
	return e.start(ctx, host)
}

func (e *costLedger) start(ctx context.Context, host component.Host) error {
	e.server = servers.LoadOrStore(e.cfg, func() *metricsServer { return newMetricsServer(e.set, e.cfg) })
	return e.server.Start(ctx, host)
}

func (e *costLedger) shutdown(ctx context.Context) error {
	if e.server == nil {
		return nil
	}
	err := e.server.Shutdown(ctx)
	e.server = nil
	return err
}

// pushTraces books the batch's priced spans. It returns only once the booking is durable, so the
// pipeline acknowledges nothing the ledger has not kept; an error makes exporterhelper retry (or
// keep the batch in its persistent queue), and booking is idempotent on (trace id, span id).
func (e *costLedger) pushTraces(ctx context.Context, td ptrace.Traces) error {
	maxCost, _ := money.FromUSD(e.cfg.MaxCostUSDPerSpan) // validated
	b := booking.FromTracesWithin(td, maxCost)
	m := e.server.Unwrap().metrics
	for _, u := range b.Unpriced {
		m.RecordUnpriced(u.Model)
	}
	for _, reason := range b.Malformed {
		m.RecordMalformed(reason)
	}
	if b.Invalid > 0 {
		m.RecordRefused("invalid_cost", b.Invalid)
		e.set.Logger.Debug("Priced spans with an unreadable cost were not booked", zap.Int("spans", b.Invalid))
	}
	if b.OverLimit > 0 {
		m.RecordRefused("cost_over_limit", b.OverLimit)
		e.set.Logger.Debug("Priced spans above max_cost_usd_per_span were not booked", zap.Int("spans", b.OverLimit))
	}
	if len(b.Spends) == 0 {
		return nil
	}
	res, err := e.ledger.Book(ctx, b.Spends)
	if err != nil {
		m.RecordBookError()
		return fmt.Errorf("booking %d spans: %w", len(b.Spends), err)
	}
	for i, s := range b.Spends {
		if res.IsSameCall(i) {
			m.RecordSameCall(s) // another span of the same provider call was booked
			continue
		}
		if !res.IsNew(i) {
			continue // booked before (a redelivery): already counted
		}
		m.RecordSpend(s, b.Providers[i])
	}
	if res.Duplicates > 0 {
		m.RecordDuplicates(res.Duplicates)
	}
	if res.Mismatched > 0 {
		m.RecordMismatched(res.Mismatched)
	}
	// The hooks (the budget receiver's level notifications) run before the spans are
	// acknowledged; a failure makes the batch retried, and the retry books nothing twice.
	if e.booked != nil {
		if err := e.booked(ctx, b.Spends, res); err != nil {
			m.RecordBookError()
			return fmt.Errorf("after booking %d spans: %w", len(b.Spends), err)
		}
	}
	return nil
}

// pushMetrics keeps the latest budget-state points for the /metrics endpoint.
func (e *costLedger) pushMetrics(_ context.Context, md pmetric.Metrics) error {
	e.server.Unwrap().metrics.Mirror.Update(md)
	return nil
}

// metricsServer is the one /metrics endpoint of an exporter configuration, shared by its traces
// and metrics instances through servers.
type metricsServer struct {
	set     exporter.Settings
	cfg     *Config
	metrics *costmetrics.Metrics
	server  *http.Server
	done    chan struct{}
}

// servers holds each configuration's endpoint, shared by its traces and metrics pipelines.
var servers = sharedcomponent.NewMap[*Config, *metricsServer]()

func newMetricsServer(set exporter.Settings, cfg *Config) *metricsServer {
	return &metricsServer{set: set, cfg: cfg, metrics: costmetrics.New(cfg.MaxLabelValues), done: make(chan struct{})}
}

// Start listens and serves the endpoint.
func (s *metricsServer) Start(ctx context.Context, host component.Host) error {
	mux := http.NewServeMux()
	mux.Handle(s.cfg.Path, s.metrics.Handler())
	ln, err := s.cfg.ToListener(ctx)
	if err != nil {
		return fmt.Errorf("endpoint: listening on %q: %w", s.cfg.NetAddr.Endpoint, err)
	}
	s.server, err = s.cfg.ToServer(ctx, host.GetExtensions(), s.set.TelemetrySettings, mux)
	if err != nil {
		_ = ln.Close()
		return err
	}
	go func() {
		defer close(s.done)
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	}()
	s.set.Logger.Info("Prometheus endpoint started", zap.String("endpoint", addr(ln)), zap.String("path", s.cfg.Path))
	return nil
}

// Shutdown stops the endpoint, if it started.
func (s *metricsServer) Shutdown(ctx context.Context) error {
	if s.server == nil {
		return nil
	}
	err := s.server.Shutdown(ctx)
	<-s.done
	s.set.Logger.Info("Prometheus endpoint stopped")
	return err
}

func addr(ln net.Listener) string { return ln.Addr().String() }
