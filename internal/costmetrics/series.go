package costmetrics

import (
	"sort"
	"strings"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Series flattens the gauges and sums of md into a map from `name{label=value,...}` (labels sorted
// by name, as a Prometheus exposition names a series) to the value: what tests and the simulator
// read a publication by.
func Series(md pmetric.Metrics) map[string]float64 {
	out := map[string]float64{}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				var dps pmetric.NumberDataPointSlice
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					dps = m.Gauge().DataPoints()
				case pmetric.MetricTypeSum:
					dps = m.Sum().DataPoints()
				default:
					continue
				}
				for d := 0; d < dps.Len(); d++ {
					dp := dps.At(d)
					labels := make([]string, 0, dp.Attributes().Len())
					for name, v := range dp.Attributes().All() {
						labels = append(labels, name+"="+v.AsString())
					}
					sort.Strings(labels)
					v := dp.DoubleValue()
					if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
						v = float64(dp.IntValue())
					}
					out[m.Name()+"{"+strings.Join(labels, ",")+"}"] = v
				}
			}
		}
	}
	return out
}
