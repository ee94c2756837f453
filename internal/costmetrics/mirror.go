package costmetrics

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// staleAfter drops mirrored series not refreshed for this long (the receiver re-publishes its state
// on an interval, so a series that stops coming belongs to a scope that no longer exists).
const staleAfter = 10 * time.Minute

// Mirror re-exposes a metrics pipeline's latest points unchanged: the metric name, its description
// as help, and the data point attributes as labels. Gauges and non-monotonic sums are gauges,
// monotonic cumulative sums counters, histograms histograms. It is an unchecked collector.
type Mirror struct {
	maxSeries int
	mu        sync.Mutex
	families  map[string]*family
	dropped   int
	now       func() time.Time
}

type family struct {
	help   string
	kind   prometheus.ValueType // CounterValue, GaugeValue; histogram when isHist
	isHist bool
	series map[string]*series
}

type series struct {
	labels  []string // names
	values  []string
	value   float64
	count   uint64
	sum     float64
	buckets map[float64]uint64
	updated time.Time
}

// NewMirror creates a mirror keeping at most maxSeries series per metric.
func NewMirror(maxSeries int) *Mirror {
	return &Mirror{maxSeries: maxSeries, families: map[string]*family{}, now: time.Now}
}

// Update stores the points of md, replacing earlier points of the same series.
func (m *Mirror) Update(md pmetric.Metrics) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m.update(ms.At(k), now)
			}
		}
	}
}

func (m *Mirror) update(mt pmetric.Metric, now time.Time) {
	name := mt.Name()
	switch mt.Type() {
	case pmetric.MetricTypeGauge:
		dps := mt.Gauge().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			m.put(name, mt.Description(), prometheus.GaugeValue, false, dps.At(i).Attributes(), now).value = number(dps.At(i))
		}
	case pmetric.MetricTypeSum:
		kind := prometheus.GaugeValue
		if mt.Sum().IsMonotonic() {
			kind = prometheus.CounterValue
		}
		dps := mt.Sum().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			m.put(name, mt.Description(), kind, false, dps.At(i).Attributes(), now).value = number(dps.At(i))
		}
	case pmetric.MetricTypeHistogram:
		dps := mt.Histogram().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			dp := dps.At(i)
			s := m.put(name, mt.Description(), prometheus.UntypedValue, true, dp.Attributes(), now)
			s.count, s.sum = dp.Count(), dp.Sum()
			s.buckets = map[float64]uint64{}
			var cum uint64
			bounds := dp.ExplicitBounds()
			for b := 0; b < bounds.Len() && b < dp.BucketCounts().Len(); b++ {
				cum += dp.BucketCounts().At(b)
				s.buckets[bounds.At(b)] = cum
			}
		}
	}
}

func number(dp pmetric.NumberDataPoint) float64 {
	if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
		return float64(dp.IntValue())
	}
	return dp.DoubleValue()
}

// put returns the series of the point, creating it (unless the family is at its bound).
func (m *Mirror) put(name, help string, kind prometheus.ValueType, hist bool, attrs pcommon.Map, now time.Time) *series {
	f := m.families[name]
	if f == nil {
		f = &family{help: help, kind: kind, isHist: hist, series: map[string]*series{}}
		m.families[name] = f
	}
	names := make([]string, 0, attrs.Len())
	for k := range attrs.All() {
		names = append(names, k)
	}
	sort.Strings(names)
	values := make([]string, len(names))
	for i, k := range names {
		v, _ := attrs.Get(k)
		values[i] = v.AsString()
	}
	key := strings.Join(names, "\x00") + "\x01" + strings.Join(values, "\x00")
	s := f.series[key]
	if s == nil {
		if len(f.series) >= m.maxSeries {
			m.dropped++
			return &series{} // written to and forgotten: the family is at its bound
		}
		s = &series{labels: names, values: values}
		f.series[key] = s
	}
	s.updated = now
	return s
}

// Dropped returns how many series were refused at the bound.
func (m *Mirror) Dropped() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dropped
}

// Describe sends nothing: the mirror is an unchecked collector whose families come from the pipeline.
func (m *Mirror) Describe(chan<- *prometheus.Desc) {}

// Collect emits the latest point of every live series.
func (m *Mirror) Collect(ch chan<- prometheus.Metric) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, f := range m.families {
		for key, s := range f.series {
			if now.Sub(s.updated) > staleAfter {
				delete(f.series, key)
				continue
			}
			desc := prometheus.NewDesc(name, f.help, s.labels, nil)
			var (
				metric prometheus.Metric
				err    error
			)
			if f.isHist {
				metric, err = prometheus.NewConstHistogram(desc, s.count, s.sum, s.buckets, s.values...)
			} else {
				metric, err = prometheus.NewConstMetric(desc, f.kind, s.value, s.values...)
			}
			if err == nil {
				ch <- metric
			}
		}
	}
}
