package costmetrics

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agentcost/agentcost/internal/ledger"
)

// Metrics is one registry with the span-side families and the mirror of the metrics pipeline.
type Metrics struct {
	reg    *prometheus.Registry
	labels *bounded

	spend      *prometheus.CounterVec
	tokens     *prometheus.CounterVec
	anomalies  *prometheus.CounterVec
	unpriced   *prometheus.CounterVec
	malformed  *prometheus.CounterVec
	overflow   *prometheus.CounterVec
	bookErrors prometheus.Counter
	duplicates prometheus.Counter
	sameCalls  *prometheus.CounterVec
	sameUSD    *prometheus.CounterVec
	mismatched prometheus.Counter
	refused    *prometheus.CounterVec

	// Mirror re-exposes the metrics pipeline.
	Mirror *Mirror
}

// New creates the registry. maxValues bounds the distinct values of each label (agent, team,
// model, provider); values past it are reported as Overflow and counted.
func New(maxValues int) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), labels: newBounded(maxValues)}
	m.spend = prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameSpend, Help: HelpSpend}, []string{"agent", "team", "model", "provider"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameTokens, Help: HelpTokens}, []string{"agent", "model", "type"})
	m.anomalies = prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameAnomalies, Help: HelpAnomalies}, []string{"agent", "level"})
	m.unpriced = prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameUnpriced, Help: HelpUnpriced}, []string{"model"})
	m.overflow = prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameOverflow, Help: HelpOverflow}, []string{"label"})
	m.bookErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: NameBookErrors, Help: HelpBookErrors})
	m.duplicates = prometheus.NewCounter(prometheus.CounterOpts{Name: NameDuplicates, Help: HelpDuplicates})
	m.sameCalls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameSameCalls, Help: HelpSameCalls}, []string{"agent", "model"})
	m.sameUSD = prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameSameCallUSD, Help: HelpSameCallUSD}, []string{"agent", "model"})
	m.mismatched = prometheus.NewCounter(prometheus.CounterOpts{Name: NameMismatched, Help: HelpMismatched})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameRefused, Help: HelpRefused}, []string{"reason"})
	m.malformed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: NameMalformed, Help: HelpMalformed}, []string{"reason"})
	m.reg.MustRegister(m.malformed)
	m.Mirror = NewMirror(m.labels.limit)
	m.reg.MustRegister(m.spend, m.tokens, m.anomalies, m.unpriced, m.overflow, m.bookErrors, m.duplicates, m.Mirror,
		m.mismatched, m.refused, m.sameCalls, m.sameUSD)
	return m
}

// Handler serves the registry in the Prometheus text format, or OpenMetrics (with exemplars) when
// the scraper asks for it.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Registry returns the registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// RecordSpend counts one booked spend, with its trace id as the exemplar of the dollars.
func (m *Metrics) RecordSpend(s ledger.Spend, provider string) {
	agent := m.bound("agent", s.Agent)
	model := m.bound("model", s.Model)
	c := m.spend.WithLabelValues(agent, m.bound("team", s.Team), model, m.bound("provider", provider))
	if ea, ok := c.(prometheus.ExemplarAdder); ok && s.TraceID != "" {
		ea.AddWithExemplar(s.Cost.USD(), prometheus.Labels{"trace_id": s.TraceID})
	} else {
		c.Add(s.Cost.USD())
	}
	for _, t := range [...]struct {
		typ string
		n   int64
	}{{"input", s.Tokens.Input}, {"output", s.Tokens.Output}, {"cache_read", s.Tokens.CacheRead}, {"cache_write", s.Tokens.CacheWrite}, {"reasoning", s.Tokens.Reasoning}} {
		if t.n > 0 {
			m.tokens.WithLabelValues(agent, model, t.typ).Add(float64(t.n))
		}
	}
	if s.Anomaly {
		m.anomalies.WithLabelValues(agent, "call").Inc()
	}
	if s.Escalating {
		m.anomalies.WithLabelValues(agent, "escalation").Inc()
	}
}

// RecordUnpriced counts a span whose model matched no price.
func (m *Metrics) RecordUnpriced(model string) {
	m.unpriced.WithLabelValues(m.bound("model", model)).Inc()
}

// RecordMalformed counts a span the processor could not price because its usage was malformed.
// The reason comes from the span, so its values are bounded like the other labels.
func (m *Metrics) RecordMalformed(reason string) {
	m.malformed.WithLabelValues(m.bound("reason", reason)).Inc()
}

// RecordBookError counts a failed booking attempt.
func (m *Metrics) RecordBookError() { m.bookErrors.Inc() }

// RecordDuplicates counts spans that were already booked.
func (m *Metrics) RecordDuplicates(n int) { m.duplicates.Add(float64(n)) }

// RecordSameCall counts a priced span the ledger did not book because its direct parent or child
// was booked for the same provider call, with the cost it carried.
func (m *Metrics) RecordSameCall(s ledger.Spend) {
	agent, model := m.bound("agent", s.Agent), m.bound("model", s.Model)
	m.sameCalls.WithLabelValues(agent, model).Inc()
	m.sameUSD.WithLabelValues(agent, model).Add(s.Cost.USD())
}

// RecordMismatched counts booked spans whose decision id named another agent's or run's
// reservation.
func (m *Metrics) RecordMismatched(n int) { m.mismatched.Add(float64(n)) }

// RecordRefused counts priced spans not booked, by reason (invalid_cost, cost_over_limit).
func (m *Metrics) RecordRefused(reason string, n int) {
	m.refused.WithLabelValues(reason).Add(float64(n))
}

func (m *Metrics) bound(label, value string) string {
	v, overflowed := m.labels.value(label, value)
	if overflowed {
		m.overflow.WithLabelValues(label).Inc()
	}
	return v
}

// bounded keeps, per label, the set of values seen, up to a limit.
type bounded struct {
	limit int
	mu    sync.Mutex
	seen  map[string]map[string]struct{}
}

func newBounded(limit int) *bounded {
	return &bounded{limit: limit, seen: map[string]map[string]struct{}{}}
}

// value returns v if the label has room for it (or already has it), else Overflow.
func (b *bounded) value(label, v string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	set := b.seen[label]
	if set == nil {
		set = map[string]struct{}{}
		b.seen[label] = set
	}
	if _, ok := set[v]; ok {
		return v, false
	}
	if len(set) >= b.limit {
		return Overflow, true
	}
	set[v] = struct{}{}
	return v, false
}
