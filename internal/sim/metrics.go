package sim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/agentcost/agentcost/internal/costmetrics"
)

// ReadAnomalies reads agentcost_anomalies_total of one level ("call" or "action") per agent from
// a Prometheus text endpoint (the prometheus exporter on the budget receiver's metrics pipeline).
func ReadAnomalies(ctx context.Context, hc *http.Client, url, level string) (map[string]float64, error) {
	return readByAgent(ctx, hc, url, costmetrics.NameAnomalies, func(labels map[string]string) bool { return labels["level"] == level })
}

// ReadSpend reads agentcost_spend_usd_total per agent (summed over team, model and provider).
func ReadSpend(ctx context.Context, hc *http.Client, url string) (map[string]float64, error) {
	return readByAgent(ctx, hc, url, costmetrics.NameSpend, func(map[string]string) bool { return true })
}

// WaitSpend reads the published spend of agent until it exceeds prev or within has passed (the
// budget receiver publishes the ledger's totals every publish_interval), and returns the last
// value read.
func WaitSpend(ctx context.Context, hc *http.Client, url, agent string, prev float64, within time.Duration) float64 {
	deadline := time.Now().Add(within)
	for {
		m, err := ReadSpend(ctx, hc, url)
		if err == nil && m[agent] > prev || time.Now().After(deadline) || ctx.Err() != nil {
			return m[agent]
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readByAgent sums the counter name per agent label over the series keep accepts.
func readByAgent(ctx context.Context, hc *http.Client, url, name string, keep func(map[string]string) bool) (map[string]float64, error) {
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
	fam, ok := families[name]
	if !ok {
		return out, nil
	}
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if !keep(labels) {
			continue
		}
		switch {
		case m.GetCounter() != nil:
			out[labels["agent"]] += m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			out[labels["agent"]] += m.GetUntyped().GetValue()
		}
	}
	return out, nil
}
