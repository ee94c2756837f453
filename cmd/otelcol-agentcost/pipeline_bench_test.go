package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/agentcost/agentcost/internal/testutil/collectortest"
)

// pipelineBatch is a 1,000-span OTLP request: 30% GenAI LLM spans over 10 models and 5 agents,
// the rest HTTP spans; ids vary per request.
func pipelineBatch(req int) ptrace.Traces {
	models := []string{"gpt-4o", "gpt-4o-mini", "gpt-5.4-mini", "o3", "claude-sonnet-4-5", "claude-haiku-4-5", "gemini-2.5-pro", "gemini-2.5-flash", "deepseek-chat", "gpt-4.1"}
	td := ptrace.NewTraces()
	for r := 0; r < 5; r++ {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "agent-"+strconv.Itoa(r))
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		for i := 0; i < 200; i++ {
			s := spans.AppendEmpty()
			s.SetTraceID(pcommon.TraceID([16]byte{byte(req), byte(req >> 8), byte(req >> 16), byte(r), byte(i)}))
			s.SetSpanID(pcommon.SpanID([8]byte{byte(i), byte(r), byte(req), byte(req >> 8), byte(req >> 16)}))
			s.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Now()))
			s.SetEndTimestamp(pcommon.NewTimestampFromTime(time.Now()))
			a := s.Attributes()
			if i%10 < 3 {
				m := models[(i+r)%len(models)]
				s.SetName("chat " + m)
				a.PutStr("gen_ai.operation.name", "chat")
				a.PutStr("gen_ai.request.model", m)
				a.PutInt("gen_ai.usage.input_tokens", int64(1000+i))
				a.PutInt("gen_ai.usage.output_tokens", int64(100+i))
			} else {
				s.SetName("GET /v1/items")
				a.PutStr("http.request.method", "GET")
				a.PutInt("http.response.status_code", 200)
			}
		}
	}
	return td
}

// runPipelineLoad drives a forwarding collector — otlp → [agentcost] → otlp_grpc, the DESIGN.md path
// to the user's tracing backend — with `senders` concurrent OTLP/gRPC clients for the given number
// of requests and returns spans per second. The backend is a second in-process collector whose
// capture exporter checks that every span sent arrived. Clients, collector and backend share the
// machine's cores, as they would on one node.
func runPipelineLoad(tb testing.TB, withProcessor bool, requests, senders int) float64 {
	tb.Helper()
	capture := &collectortest.Capture{}
	backend := collectortest.Endpoint(tb)
	collectortest.Run(tb, withCapture(capture), fmt.Sprintf(`
receivers:
  otlp: {protocols: {grpc: {endpoint: %s}}}
exporters:
  capture: {}
service:
  telemetry: {metrics: {level: none}, logs: {level: warn}}
  pipelines:
    traces: {receivers: [otlp], exporters: [capture]}
`, backend))
	endpoint := collectortest.Endpoint(tb)
	processors := "[]"
	if withProcessor {
		processors = "[agentcost]"
	}
	collectortest.Run(tb, withCapture(&collectortest.Capture{}), fmt.Sprintf(`
receivers:
  otlp: {protocols: {grpc: {endpoint: %s}}}
processors:
  agentcost: {}
exporters:
  otlp_grpc:
    endpoint: %s
    tls: {insecure: true}
    compression: none
    sending_queue: {enabled: false}
service:
  telemetry: {metrics: {level: none}, logs: {level: warn}}
  pipelines:
    traces: {receivers: [otlp], processors: %s, exporters: [otlp_grpc]}
`, endpoint, backend, processors))
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	reqs := make([]ptraceotlp.ExportRequest, requests)
	for i := range reqs {
		reqs[i] = ptraceotlp.NewExportRequestFromTraces(pipelineBatch(i))
	}
	var wg sync.WaitGroup
	work := make(chan int)
	start := time.Now()
	for s := 0; s < senders; s++ {
		wg.Go(func() {
			for i := range work {
				if _, err := client.Export(context.Background(), reqs[i]); err != nil {
					tb.Errorf("export %d: %v", i, err)
				}
			}
		})
	}
	for i := range reqs {
		work <- i
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	if got := len(capture.Spans()); got != requests*1000 {
		tb.Fatalf("exporter received %d spans, sent %d", got, requests*1000)
	}
	return float64(requests*1000) / elapsed.Seconds()
}

// BenchmarkOTLPPipeline measures OTLP/gRPC pipeline throughput with and without the agentcost
// processor in one run (target: with ≥ 90% of without). Every span is checked to arrive.
//
//	go test -run x -bench OTLPPipeline -benchtime 1x ./cmd/otelcol-agentcost/
func BenchmarkOTLPPipeline(b *testing.B) {
	const requests, senders = 400, 8
	var without, with float64
	for i := 0; i < b.N; i++ {
		without += runPipelineLoad(b, false, requests, senders)
		with += runPipelineLoad(b, true, requests, senders)
	}
	b.ReportMetric(without/float64(b.N), "spans/s_without")
	b.ReportMetric(with/float64(b.N), "spans/s_with")
	b.ReportMetric(with/without, "ratio")
}

// TestOTLPPipelineLoadLosesNothing is the load test's correctness half: a short run at 4 senders
// with the processor delivers every span, priced.
func TestOTLPPipelineLoadLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("load run; skipped with -short")
	}
	runPipelineLoad(t, true, 40, 4)
}
