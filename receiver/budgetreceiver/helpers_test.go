package budgetreceiver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"

	"github.com/agentcost/agentcost/api/openapicheck"
	"github.com/agentcost/agentcost/extension/agentauthextension"
	"github.com/agentcost/agentcost/extension/budgetledgerextension"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/sharedcomponent"
	"github.com/agentcost/agentcost/pkg/decisionapi"
	"github.com/agentcost/agentcost/receiver/budgetreceiver/internal/metadata"
)

// testPolicy is the policy of most tests. Budgets use the month window so that a test does not
// straddle a window boundary in practice.
const testPolicy = `version: v1
policy_version: test-1
default_decision: allow
budgets:
  fleet: {limit_usd: 100, window: month, throttle_at: 0.80, pause_at: 0.95}
  agents: {research-agent: {limit_usd: 10, window: month}}
  default_agent: {limit_usd: 5, window: month}
  teams: {growth: {limit_usd: 50, window: month}}
  runs: {limit_usd: 3}
  per_action_max_usd: 8
agents:
  billing-agent: {critical: true}
rules:
  - id: limit-concurrency
    match: {topics: ["job.concurrent"]}
    decision: allow_with_constraints
    constraints: {max_concurrent: 2, max_runtime_sec: 60}
    reason: two at a time
  - id: limit-rate
    match: {topics: ["job.rated"]}
    decision: allow_with_constraints
    constraints: {rate_limit: "2/hour"}
    reason: two an hour
  - id: cap-tokens
    match: {topics: ["job.generate"]}
    decision: allow_with_constraints
    constraints: {max_tokens: 1000}
  - id: approve-batch
    match: {topics: ["job.batch"]}
    decision: require_approval
    reason: batches need a human
  - id: throttle-anomalous
    match: {anomaly_within: 10m}
    decision: throttle
    reason: the agent misbehaved recently
`

// Tokens of the test access configuration.
const (
	researchToken = "agent-token-research-0001"
	draftingToken = "agent-token-drafting-0002"
	reviewerToken = "reviewer-token-alice-0003"
	billingToken  = "agent-token-billing-0004"
	// forwarderToken is an OTLP-only token: the decision API refuses it.
	forwarderToken = "forwarder-token-tier1-0005"
)

// accessTokens is the test token list, inline (withAccess) or in an agentauth extension
// (withSharedAccess).
var accessTokens = []TokenConfig{
	{Token: researchToken, Role: RoleAgent, Subject: "research-agent"},
	{Token: draftingToken, Role: RoleAgent, Subject: "drafting-agent"},
	{Token: reviewerToken, Role: RoleReviewer, Subject: "alice@example.com"},
	{Token: billingToken, Role: RoleAgent, Subject: "billing-agent"},
	{Token: forwarderToken, Role: RoleForwarder, Subject: "tier1"},
}

// withSharedAccess makes the API use the token list of an agentauth extension, which startEnv
// starts on the host.
var withSharedAccess = func(cfg *Config) {
	id := component.MustNewID("agentauth")
	cfg.Access = &AccessConfig{Authenticator: &id}
}

var withAccess = func(cfg *Config) {
	cfg.Access = &AccessConfig{Tokens: accessTokens}
}

// env is a started budget receiver on a real budgetledger extension in a temporary directory.
type env struct {
	t          *testing.T
	base       string
	dir        string
	policyPath string
	ledger     ledger.Ledger
	metrics    *consumertest.MetricsSink
	logs       *consumertest.LogsSink
	r          *budgetReceiver
	// logged holds everything the receiver and the extension logged.
	logged *observer.ObservedLogs
	// stops shut the receiver (and a storage extension) down, last started first.
	stops []func()
}

// stop shuts the env's receiver down now (it is also done at the end of the test).
func (e *env) stop() {
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	e.stops = nil
}

type testHost struct {
	component.Host
	exts map[component.ID]component.Component
}

func (h testHost) GetExtensions() map[component.ID]component.Component { return h.exts }

func startEnv(t *testing.T, policyYAML string, tune ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, policyPath: filepath.Join(dir, "policy.yaml"),
		metrics: new(consumertest.MetricsSink), logs: new(consumertest.LogsSink)}
	if err := os.WriteFile(e.policyPath, []byte(policyYAML), 0o600); err != nil {
		t.Fatal(err)
	}

	core, logged := observer.New(zapcore.DebugLevel)
	e.logged = logged
	tel := componenttest.NewNopTelemetrySettings()
	tel.Logger = zap.New(core)

	extID := component.MustNewID("budgetledger")
	extFactory := budgetledgerextension.NewFactory()
	extCfg := extFactory.CreateDefaultConfig().(*budgetledgerextension.Config)
	extCfg.Directory = filepath.Join(dir, "ledger")
	extCfg.Evidence.Directory = filepath.Join(dir, "evidence")
	ext, err := extFactory.Create(ctx, extension.Settings{ID: extID, TelemetrySettings: tel}, extCfg)
	if err != nil {
		t.Fatal(err)
	}
	host := testHost{Host: componenttest.NewNopHost(), exts: map[component.ID]component.Component{extID: ext}}
	// A tune that sets baseline.storage gets a file_storage extension whose directory is the same
	// for every env of one test, so that a second env is a restart of the first.
	probe := NewFactory().CreateDefaultConfig().(*Config)
	for _, fn := range tune {
		fn(probe)
	}
	if id := probe.Baseline.Storage; id != nil {
		storageDir := filepath.Join(os.TempDir(), "agentcost-receiver-"+strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(storageDir, 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(storageDir) })
		fsf := filestorage.NewFactory()
		fsCfg := fsf.CreateDefaultConfig().(*filestorage.Config)
		fsCfg.Directory = storageDir
		fs, err := fsf.Create(ctx, extension.Settings{ID: *id, TelemetrySettings: tel}, fsCfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := fs.Start(ctx, host); err != nil {
			t.Fatal(err)
		}
		e.stops = append(e.stops, func() { _ = fs.Shutdown(ctx) })
		host.exts[*id] = fs
	}
	if a := probe.Access; a != nil && a.Authenticator != nil {
		af := agentauthextension.NewFactory()
		acfg := af.CreateDefaultConfig().(*agentauthextension.Config)
		acfg.Tokens = accessTokens
		auth, err := af.Create(ctx, extension.Settings{ID: *a.Authenticator, TelemetrySettings: tel}, acfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := auth.Start(ctx, host); err != nil {
			t.Fatal(err)
		}
		e.stops = append(e.stops, func() { _ = auth.Shutdown(ctx) })
		host.exts[*a.Authenticator] = auth
	}
	if err := ext.Start(ctx, host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ext.Shutdown(ctx) })
	e.ledger = ext.(budgetledgerextension.Provider).Ledger()

	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.NetAddr.Endpoint = "127.0.0.1:0"
	cfg.PolicyFile = e.policyPath
	cfg.PolicyReloadInterval = 20 * time.Millisecond
	cfg.PublishInterval = 20 * time.Millisecond
	cfg.SettleInterval = 20 * time.Millisecond
	for _, fn := range tune {
		fn(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	set := receiver.Settings{ID: component.NewID(metadata.Type), TelemetrySettings: tel}
	mr, err := f.CreateMetrics(ctx, set, cfg, e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	lr, err := f.CreateLogs(ctx, set, cfg, e.logs)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []component.Component{mr, lr} {
		if err := c.Start(ctx, host); err != nil {
			t.Fatal(err)
		}
	}
	e.stops = append(e.stops, func() {
		for _, c := range []component.Component{mr, lr} {
			if err := c.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		}
	})
	t.Cleanup(e.stop)
	e.r = mr.(*sharedcomponent.Component[*budgetReceiver]).Unwrap()
	e.base = "http://" + e.r.addr.String()
	return e
}

// do sends a request and checks the answer against api/openapi.yaml. body is JSON-encoded unless
// it is []byte. headers are name, value pairs.
func (e *env) do(method, path, token string, body any, headers ...string) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.exchange(req, path, headers...)
}

// exchange sets headers (name, value pairs; Host sets the request's host) on req, sends it and
// returns the status and the body, checked against api/openapi.yaml.
func (e *env) exchange(req *http.Request, path string, headers ...string) (int, []byte) {
	e.t.Helper()
	for i := 0; i+1 < len(headers); i += 2 {
		if strings.EqualFold(headers[i], "Host") {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	checkResponse(e.t, req.Method, path, resp.StatusCode, data)
	return resp.StatusCode, data
}

// checkResponse checks an answer against api/openapi.yaml. A 405 answers a method the document
// does not list for the path, so its body is checked against the error schema alone.
func checkResponse(t *testing.T, method, path string, status int, body []byte) {
	t.Helper()
	if status == http.StatusMethodNotAllowed {
		doc, err := openapicheck.Default()
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("405 body: %v", err)
		}
		if err := doc.Validate("ErrorResponse", v); err != nil {
			t.Errorf("405 body does not match ErrorResponse: %v\nbody: %s", err, body)
		}
		return
	}
	if err := openapicheck.CheckResponse(method, path, status, body); err != nil {
		t.Errorf("response does not match api/openapi.yaml: %v\nbody: %s", err, body)
	}
}

// decide posts a decision request and expects a 200.
func (e *env) decide(token string, req decisionapi.DecisionRequest, headers ...string) decisionapi.DecisionResponse {
	e.t.Helper()
	status, body := e.do(http.MethodPost, decisionapi.PathDecisions, token, req, headers...)
	if status != http.StatusOK {
		e.t.Fatalf("decide %+v: status %d: %s", req, status, body)
	}
	var out decisionapi.DecisionResponse
	mustUnmarshal(e.t, body, &out)
	return out
}

// release releases a lease and expects a 200.
func (e *env) release(token, leaseID string, req decisionapi.ReleaseRequest) decisionapi.ReleaseResponse {
	e.t.Helper()
	status, body := e.do(http.MethodPost, "/v1/leases/"+leaseID+"/release", token, req)
	if status != http.StatusOK {
		e.t.Fatalf("release %s: status %d: %s", leaseID, status, body)
	}
	var out decisionapi.ReleaseResponse
	mustUnmarshal(e.t, body, &out)
	return out
}

// apiError decodes an error answer.
func apiError(t *testing.T, body []byte) decisionapi.APIError {
	t.Helper()
	var er decisionapi.ErrorResponse
	mustUnmarshal(t, body, &er)
	return er.Error
}

func mustUnmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
}

// usd parses a decimal dollar amount.
func usd(t *testing.T, s string) money.Nanos {
	t.Helper()
	n, err := money.ParseUSD(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// book books one priced span.
func (e *env) book(s ledger.Spend) {
	e.t.Helper()
	if s.TraceID == "" {
		s.TraceID = strings.Repeat("ab", 16)
	}
	if s.SpanID == "" {
		s.SpanID = randomHex(8)
	}
	if s.Time.IsZero() {
		s.Time = time.Now()
	}
	if _, err := e.ledger.Book(context.Background(), []ledger.Spend{s}); err != nil {
		e.t.Fatal(err)
	}
}

// evidence returns the evidence records the logs pipeline received so far.
func (e *env) evidence() []evidence.Record {
	var out []evidence.Record
	for _, ld := range e.logs.AllLogs() {
		rls := ld.ResourceLogs()
		for i := 0; i < rls.Len(); i++ {
			sls := rls.At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					lr := lrs.At(k)
					var rec evidence.Record
					mustUnmarshal(e.t, []byte(lr.Body().Str()), &rec)
					if kind, _ := lr.Attributes().Get("kind"); kind.Str() != string(rec.Kind) {
						e.t.Errorf("log record attribute kind %q, body kind %q", kind.Str(), rec.Kind)
					}
					if id, _ := lr.Attributes().Get("evidence_id"); id.Str() != rec.EvidenceID {
						e.t.Errorf("log record attribute evidence_id %q, body %q", id.Str(), rec.EvidenceID)
					}
					out = append(out, rec)
				}
			}
		}
	}
	return out
}

// waitEvidence waits until the logs pipeline has a record matching fn.
func (e *env) waitEvidence(what string, fn func(evidence.Record) bool) evidence.Record {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, rec := range e.evidence() {
			if fn(rec) {
				return rec
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no evidence record: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metric returns the value of the newest published point of name whose attributes include attrs
// (name, value pairs).
func (e *env) metric(name string, attrs ...string) (float64, bool) {
	all := e.metrics.AllMetrics()
	for i := len(all) - 1; i >= 0; i-- {
		if v, ok := findPoint(all[i], name, attrs...); ok {
			return v, true
		}
	}
	return 0, false
}

// waitMetric waits until the newest point of name with attrs satisfies fn.
func (e *env) waitMetric(name string, fn func(float64) bool, attrs ...string) float64 {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, ok := e.metric(name, attrs...)
		if ok && fn(v) {
			return v
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("metric %s%v: last value %v (found %v)", name, attrs, v, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func findPoint(md pmetric.Metrics, name string, attrs ...string) (float64, bool) {
	match := func(m pcommon.Map) bool {
		for i := 0; i+1 < len(attrs); i += 2 {
			if v, ok := m.Get(attrs[i]); !ok || v.AsString() != attrs[i+1] {
				return false
			}
		}
		return true
	}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Name() != name {
					continue
				}
				var dps pmetric.NumberDataPointSlice
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					dps = m.Gauge().DataPoints()
				case pmetric.MetricTypeSum:
					dps = m.Sum().DataPoints()
				case pmetric.MetricTypeHistogram:
					hdps := m.Histogram().DataPoints()
					for p := 0; p < hdps.Len(); p++ {
						if match(hdps.At(p).Attributes()) {
							return float64(hdps.At(p).Count()), true
						}
					}
					continue
				}
				for p := 0; p < dps.Len(); p++ {
					dp := dps.At(p)
					if !match(dp.Attributes()) {
						continue
					}
					if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
						return float64(dp.IntValue()), true
					}
					return dp.DoubleValue(), true
				}
			}
		}
	}
	return 0, false
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
