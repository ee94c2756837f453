package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

func TestScheduleKeepsWeights(t *testing.T) {
	order := schedule(BenchMix)
	counts := map[int]int{}
	for _, i := range order {
		counts[i]++
	}
	for i, k := range BenchMix {
		if counts[i] != k.Weight {
			t.Errorf("%s: %d of %d slots, want %d", k.Name, counts[i], len(order), k.Weight)
		}
	}
	// Spread: no kind of 10% or more fills 10 consecutive slots alone.
	for s := 0; s+10 <= len(order); s++ {
		same := true
		for _, i := range order[s : s+10] {
			same = same && i == order[s]
		}
		if same {
			t.Fatalf("slots %d..%d are all %s", s, s+9, BenchMix[order[s]].Name)
		}
	}
}

func TestRunOpenCountsOnlyExpectedDecisions(t *testing.T) {
	srv := httptest.NewServer(BareHandler()) // answers allow to everything
	defer srv.Close()
	mix := []Kind{
		{Name: "allow", Action: "job.a", EstimatedCostUSD: 0.01, Expect: decisionapi.DecisionAllow, Weight: 3},
		{Name: "deny", Action: "job.b", EstimatedCostUSD: 0.01, Expect: decisionapi.DecisionDeny, Weight: 1},
	}
	res, err := RunOpen(context.Background(), OpenConfig{URL: srv.URL, Agents: 10, Rate: 400, Duration: 500 * time.Millisecond, Mix: mix})
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 200 {
		t.Errorf("sent %d, want 200 (400/s for 0.5 s)", res.Sent)
	}
	if got := res.Unexpected["deny"]; got != 50 {
		t.Errorf("unexpected deny answers %d, want 50: %v", got, res)
	}
	if len(res.Latencies) != 150 || res.Unexpected["allow"] != 0 {
		t.Errorf("counted %d allow answers (unexpected %d), want 150: %v", len(res.Latencies), res.Unexpected["allow"], res)
	}
	if n := len(res.ByKind["allow"]); n != 150 || len(res.ByKind["deny"]) != 0 || !strings.Contains(res.String(), "by kind: allow p50 ") {
		t.Errorf("by kind: %d allow latencies, %d deny, want 150 and 0: %v", n, len(res.ByKind["deny"]), res)
	}
	if res.Elapsed < 497*time.Millisecond { // the 200th request is due at 497.5 ms
		t.Errorf("elapsed %s: requests were not paced", res.Elapsed)
	}
}

func TestSendSpansPacesUniqueSpans(t *testing.T) {
	var (
		mu  sync.Mutex
		ids = map[[8]byte]bool{}
		dup int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil || r.URL.Path != "/v1/traces" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		rss := req.Traces().ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			spans := rss.At(i).ScopeSpans().At(0).Spans()
			for j := 0; j < spans.Len(); j++ {
				id := [8]byte(spans.At(j).SpanID())
				dup += map[bool]int{true: 1}[ids[id]]
				ids[id] = true
			}
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 450*time.Millisecond)
	defer cancel()
	res := SendSpans(ctx, srv.URL, 2000) // 20 requests of 100 a second: 9 or 10 within 450 ms
	if res.Failed != 0 || res.FirstError != nil {
		t.Fatalf("failed requests %d: %v", res.Failed, res.FirstError)
	}
	if res.Spans < 800 || res.Spans > 1000 {
		t.Errorf("%d spans acknowledged in 450 ms at 2000/s", res.Spans)
	}
	if dup != 0 || int64(len(ids)) != res.Spans {
		t.Errorf("%d distinct span ids of %d acknowledged, %d repeated", len(ids), res.Spans, dup)
	}
}
