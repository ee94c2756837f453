package sim

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agentcost/agentcost/internal/costmetrics"
)

// ReadAnomalies reads agentcost_anomalies_total of one level ("call" or "action") per agent from
// a Prometheus text endpoint (the costledger exporter's /metrics).
func ReadAnomalies(ctx context.Context, hc *http.Client, url, level string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("reading metrics %q: %w", url, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading metrics %q: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading metrics %q: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("parsing metrics from %q: %w", url, err)
	}
	out := map[string]float64{}
	fam, ok := families[costmetrics.NameAnomalies]
	if !ok {
		return out, nil
	}
	for _, m := range fam.GetMetric() {
		var agent, lvl string
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "agent":
				agent = l.GetValue()
			case "level":
				lvl = l.GetValue()
			}
		}
		if lvl != level {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			out[agent] += m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			out[agent] += m.GetUntyped().GetValue()
		}
	}
	return out, nil
}
