// Package collectortest runs a real collector in-process for end-to-end tests: the distribution's
// factories plus a capture exporter, from a YAML configuration.
package collectortest

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// CaptureType is the component type of the capture exporter.
var CaptureType = component.MustNewType("capture")

// Capture is what the capture exporter received.
type Capture struct {
	mu    sync.Mutex
	sinks []*consumertest.TracesSink
}

// Spans returns every span the capture exporter has received so far.
func (c *Capture) Spans() []ptrace.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []ptrace.Span
	for _, s := range c.sinks {
		for _, td := range s.AllTraces() {
			for i := 0; i < td.ResourceSpans().Len(); i++ {
				sss := td.ResourceSpans().At(i).ScopeSpans()
				for j := 0; j < sss.Len(); j++ {
					for k := 0; k < sss.At(j).Spans().Len(); k++ {
						out = append(out, sss.At(j).Spans().At(k))
					}
				}
			}
		}
	}
	return out
}

// CaptureFactory returns an exporter factory (type "capture") that keeps what it receives in c.
func CaptureFactory(c *Capture) exporter.Factory {
	type cfg struct{}
	return exporter.NewFactory(CaptureType, func() component.Config { return &cfg{} },
		exporter.WithTraces(func(_ context.Context, _ exporter.Settings, _ component.Config) (exporter.Traces, error) {
			sink := new(consumertest.TracesSink)
			c.mu.Lock()
			c.sinks = append(c.sinks, sink)
			c.mu.Unlock()
			return &captureExporter{TracesSink: sink}, nil
		}, component.StabilityLevelDevelopment))
}

type captureExporter struct {
	*consumertest.TracesSink
}

func (*captureExporter) Start(context.Context, component.Host) error { return nil }
func (*captureExporter) Shutdown(context.Context) error              { return nil }
func (*captureExporter) Capabilities() consumer.Capabilities         { return consumer.Capabilities{} }

// FreePort returns a free TCP port on the loopback interface.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Endpoint returns "127.0.0.1:<free port>".
func Endpoint(t testing.TB) string {
	return "127.0.0.1:" + strconv.Itoa(FreePort(t))
}

// Run starts a collector with the given factories and YAML configuration, waits until it runs, and
// shuts it down when the test ends.
func Run(t testing.TB, factories func() (otelcol.Factories, error), config string) *otelcol.Collector {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	col, err := otelcol.NewCollector(otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{Command: "otelcol-agentcost-test", Version: "test"},
		Factories: factories,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			URIs:              []string{"file:" + path},
			ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory()},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- col.Run(context.Background()) }()
	deadline := time.Now().Add(30 * time.Second)
	for col.GetState() != otelcol.StateRunning {
		select {
		case err := <-done:
			t.Fatalf("collector stopped during start-up: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("collector did not start within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		col.Shutdown()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("collector run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("collector did not stop within 30s")
		}
	})
	return col
}
