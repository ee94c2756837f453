// Package promtest runs the contrib prometheus exporter as agentcost's shipped configurations set
// it up, for tests that check what a Prometheus scrape of the metrics pipeline shows.
package promtest

import (
	"context"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/prometheusexporter"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"

	"github.com/agentcost/agentcost/internal/testutil/collectortest"
)

// Settings are the prometheus exporter settings of the shipped configurations (less the
// endpoint): metric names kept as agentcost names them, no scope labels.
var Settings = map[string]any{
	"translation_strategy": "UnderscoreEscapingWithoutSuffixes",
	"without_scope_info":   true,
	"metric_expiration":    "1h",
}

// Exporter starts a prometheus exporter with Settings (and overrides) on a free port, stopped at
// cleanup, and returns it with its scrape URL.
func Exporter(t testing.TB, overrides ...map[string]any) (exporter.Metrics, string) {
	t.Helper()
	f := prometheusexporter.NewFactory()
	cfg := f.CreateDefaultConfig()
	endpoint := collectortest.Endpoint(t)
	settings := map[string]any{"endpoint": endpoint}
	for k, v := range Settings {
		settings[k] = v
	}
	for _, o := range overrides {
		for k, v := range o {
			settings[k] = v
		}
	}
	if err := confmap.NewFromStringMap(settings).Unmarshal(cfg); err != nil {
		t.Fatalf("prometheus exporter settings: %v", err)
	}
	exp, err := f.CreateMetrics(context.Background(), exportertest.NewNopSettings(f.Type()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp, "http://" + endpoint + "/metrics"
}

// Scrape fetches url and parses the Prometheus text exposition.
func Scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parsing the exposition: %v\n%s", err, body)
	}
	return families
}

// Gatherer serves a scrape's families to client_golang's testutil comparisons.
func Gatherer(families map[string]*dto.MetricFamily) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		out := make([]*dto.MetricFamily, 0, len(families))
		for _, f := range families {
			out = append(out, f)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
		return out, nil
	})
}
