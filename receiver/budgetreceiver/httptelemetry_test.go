package budgetreceiver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/confighttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// The decision API's confighttp server records no http.server.* metrics (the receiver counts and
// times decisions itself), while the same server built with the collector's settings as they come
// does: the test sees the difference, so it would see the wrapper's metrics come back.
func TestHTTPTelemetryDropsServerMetrics(t *testing.T) {
	for _, c := range []struct {
		name    string
		quiet   bool
		metrics bool
	}{{"collector settings", false, true}, {"decision API", true, false}} {
		t.Run(c.name, func(t *testing.T) {
			reader := sdkmetric.NewManualReader()
			set := componenttest.NewNopTelemetrySettings()
			set.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			if c.quiet {
				set = httpTelemetry(set)
			}
			cfg := confighttp.NewDefaultServerConfig()
			srv, err := cfg.ToServer(context.Background(), map[component.ID]component.Component{}, set,
				http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }))
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			srv.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/decisions", nil))
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					names = append(names, m.Name)
				}
			}
			if got := len(names) > 0; got != c.metrics {
				t.Errorf("metrics recorded: %v, want some: %v", names, c.metrics)
			}
		})
	}
}
