package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// spanBatch is the number of spans of one OTLP request of SendSpans.
const spanBatch = 100

// SpanResult is what SendSpans sent.
type SpanResult struct {
	// Spans counts the spans of acknowledged requests; Failed the requests that were not.
	Spans, Failed int64
	FirstError    error
}

// SendSpans exports spans over OTLP/HTTP (protobuf) to endpoint (e.g. http://localhost:4318) at
// rate spans per second, in requests of spanBatch, until ctx ends. A third of the spans are LLM
// calls the ledger books (a few agents' chat spans with token counts), the rest plain HTTP client
// spans; every span has its own id, so each LLM span is booked once.
func SendSpans(ctx context.Context, endpoint string, rate float64) SpanResult {
	var res SpanResult
	if rate <= 0 {
		return res
	}
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	every := time.Duration(float64(time.Second) * spanBatch / rate)
	td := spanTemplate()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	start := time.Now()
	for seq := uint64(0); ; seq++ {
		due := start.Add(time.Duration(seq) * every)
		select {
		case <-ctx.Done():
			wg.Wait()
			return res
		case <-time.After(time.Until(due)):
		}
		// Requests are sent concurrently, so that a slow answer does not lower the rate.
		setSpanIDs(td, seq)
		body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		wg.Go(func() {
			if err == nil {
				err = postSpans(context.WithoutCancel(ctx), client, endpoint, body)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Failed++
				if res.FirstError == nil {
					res.FirstError = err
				}
				return
			}
			res.Spans += spanBatch
		})
	}
}

func postSpans(ctx context.Context, client *http.Client, endpoint string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/v1/traces", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/v1/traces: %d %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// spanTemplate is one request's spans: spanBatch spans over 5 agents (resources).
func spanTemplate() ptrace.Traces {
	td := ptrace.NewTraces()
	for r := range 5 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "span-agent-"+strconv.Itoa(r))
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		for i := range spanBatch / 5 {
			s := spans.AppendEmpty()
			a := s.Attributes()
			if i%3 == 0 {
				s.SetName("chat gpt-4o-mini")
				s.SetKind(ptrace.SpanKindClient)
				a.PutStr("gen_ai.operation.name", "chat")
				a.PutStr("gen_ai.provider.name", "openai")
				a.PutStr("gen_ai.request.model", "gpt-4o-mini")
				a.PutInt("gen_ai.usage.input_tokens", int64(200+i))
				a.PutInt("gen_ai.usage.output_tokens", int64(20+i))
			} else {
				s.SetName("GET /v1/items")
				s.SetKind(ptrace.SpanKindClient)
				a.PutStr("http.request.method", "GET")
				a.PutInt("http.response.status_code", 200)
			}
		}
	}
	return td
}

// setSpanIDs gives every span of td an id unique to (seq, index) and the current time.
func setSpanIDs(td ptrace.Traces, seq uint64) {
	now := pcommon.NewTimestampFromTime(time.Now())
	n := uint64(0)
	for r := 0; r < td.ResourceSpans().Len(); r++ {
		spans := td.ResourceSpans().At(r).ScopeSpans().At(0).Spans()
		for i := 0; i < spans.Len(); i++ {
			var tid [16]byte
			binary.BigEndian.PutUint64(tid[:], seq)
			binary.BigEndian.PutUint64(tid[8:], n)
			var sid [8]byte
			binary.BigEndian.PutUint64(sid[:], seq*spanBatch+n+1)
			s := spans.At(i)
			s.SetTraceID(pcommon.TraceID(tid))
			s.SetSpanID(pcommon.SpanID(sid))
			s.SetStartTimestamp(now - 1e6)
			s.SetEndTimestamp(now)
			n++
		}
	}
}
