package budgetreceiver

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// send sends one request with full control of its headers (Host included) and returns the status
// and the body, checked against api/openapi.yaml.
func (e *env) send(method, path string, body []byte, headers ...string) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.exchange(req, path, headers...)
}

// reserved is the agent's reserved dollars in GET /v1/budgets (0 when the agent has no scope).
func (e *env) reserved(token, agent string) float64 {
	e.t.Helper()
	status, body := e.do(http.MethodGet, decisionapi.PathBudgets, token, nil)
	if status != http.StatusOK {
		e.t.Fatalf("budgets: %d %s", status, body)
	}
	var b struct {
		Scopes []struct {
			Scope       string  `json:"scope"`
			ID          string  `json:"id"`
			ReservedUSD float64 `json:"reserved_usd"`
		} `json:"scopes"`
	}
	mustUnmarshal(e.t, body, &b)
	for _, s := range b.Scopes {
		if s.Scope == "agent" && s.ID == agent {
			return s.ReservedUSD
		}
	}
	return 0
}

// TestOpenAPIRefusesCrossSite is finding 5: on the open API (no access, the shipped single-node
// setup) a web page must not be able to spend. A cross-site text/plain POST, a foreign Origin and
// a rebinding Host are refused and reserve nothing; local clients (loopback Host with a port, no
// Origin or a loopback one) are served.
func TestOpenAPIRefusesCrossSite(t *testing.T) {
	e := startEnv(t, testPolicy)
	_, port, _ := net.SplitHostPort(e.r.addr.String())
	decision := []byte(`{"agent_id":"research-agent","action":"job.research","estimated_cost_usd":9.99}`)
	small := []byte(`{"agent_id":"research-agent","action":"job.research","estimated_cost_usd":0.01}`)
	const json = "application/json"
	cases := []struct {
		name    string
		body    []byte
		headers []string
		status  int
		code    decisionapi.Code
		names   string // what the message must name
	}{
		{"the review's request", decision, []string{"Origin", "https://evil.example", "Content-Type", "text/plain"}, 403, decisionapi.CodeForbidden, "Origin"},
		{"foreign origin with JSON", decision, []string{"Origin", "https://evil.example", "Content-Type", json}, 403, decisionapi.CodeForbidden, "Origin"},
		{"null origin", decision, []string{"Origin", "null", "Content-Type", json}, 403, decisionapi.CodeForbidden, "Origin"},
		{"origin on a loopback look-alike", decision, []string{"Origin", "http://localhost.evil.example", "Content-Type", json}, 403, decisionapi.CodeForbidden, "Origin"},
		{"rebinding Host", decision, []string{"Host", "evil.example", "Content-Type", json}, 403, decisionapi.CodeForbidden, "Host"},
		{"rebinding Host with the port", decision, []string{"Host", "evil.example:" + port, "Content-Type", json}, 403, decisionapi.CodeForbidden, "Host"},
		{"text/plain from a local client", decision, []string{"Content-Type", "text/plain"}, 415, decisionapi.CodeUnsupportedMediaType, "Content-Type"},
		{"form body", decision, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, decisionapi.CodeUnsupportedMediaType, "Content-Type"},
		{"no Content-Type", decision, nil, 415, decisionapi.CodeUnsupportedMediaType, "Content-Type"},
		{"JSON in another charset", decision, []string{"Content-Type", "application/json; charset=latin1"}, 415, decisionapi.CodeUnsupportedMediaType, "Content-Type"},

		{"localhost with the port", small, []string{"Host", "localhost:" + port, "Content-Type", json}, 200, "", ""},
		{"127.0.0.1 with the port", small, []string{"Content-Type", json}, 200, "", ""},
		{"[::1] with the port", small, []string{"Host", "[::1]:" + port, "Content-Type", "application/json; charset=utf-8"}, 200, "", ""},
		{"a loopback origin", small, []string{"Origin", "http://localhost:3000", "Content-Type", json}, 200, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.send(http.MethodPost, decisionapi.PathDecisions, tc.body, tc.headers...)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if status != 200 {
				if ae := apiError(t, body); ae.Code != tc.code || !strings.Contains(ae.Message, tc.names) {
					t.Errorf("error %+v, want code %s naming %s", ae, tc.code, tc.names)
				}
			}
		})
	}
	// Nothing refused reserved anything: the four allowed decisions reserved $0.01 each.
	if got := e.reserved("", "research-agent"); got != 0.04 {
		t.Errorf("research-agent reserved $%v, want $0.04", got)
	}
	// Reads are refused to a rebinding Host too (the budgets would leak to the page).
	if status, body := e.send(http.MethodGet, decisionapi.PathBudgets, nil, "Host", "evil.example"); status != 403 {
		t.Errorf("GET budgets with a rebinding Host: %d %s", status, body)
	}
	// A body-less release needs no Content-Type.
	d := e.decide("", decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.research", EstimatedCostUSD: 0.01})
	if status, body := e.send(http.MethodPost, "/v1/leases/"+d.LeaseID+"/release", nil); status != 200 {
		t.Errorf("body-less release: %d %s", status, body)
	}
}

// TestTokensAllowAnyHost: with access configured the bearer token is the protection (a browser
// cannot attach it cross-site), so any Host and Origin are served; the JSON content type is still
// required.
func TestTokensAllowAnyHost(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	body := []byte(`{"agent_id":"research-agent","action":"job.research","estimated_cost_usd":0.01}`)
	auth := "Bearer " + researchToken
	if status, out := e.send(http.MethodPost, decisionapi.PathDecisions, body, "Authorization", auth, "Host", "agentcost.internal:4320",
		"Origin", "https://console.example", "Content-Type", "application/json"); status != 200 {
		t.Errorf("named Host with a token: %d %s", status, out)
	}
	if status, out := e.send(http.MethodPost, decisionapi.PathDecisions, body, "Authorization", auth, "Content-Type", "text/plain"); status != 415 {
		t.Errorf("text/plain with a token: %d %s", status, out)
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	n      atomic.Int64
	remain int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.remain <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), c.remain))
	for i := range p[:n] {
		p[i] = ' '
	}
	c.remain -= int64(n)
	c.n.Add(int64(n))
	return n, nil
}

// TestOversizeBodyRefusedUpFront: a 10 MB body announced with Expect: 100-continue gets a clean
// 413 before the client sends any of it, and the connection is closed rather than drained; a
// client that sends the headers without waiting gets the 413 too. The server stays healthy.
func TestOversizeBodyRefusedUpFront(t *testing.T) {
	e := startEnv(t, testPolicy, withAccess)
	const size = 10 << 20
	body := &countingReader{remain: size}
	req, err := http.NewRequest(http.MethodPost, e.base+decisionapi.PathDecisions, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Expect", "100-continue")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+researchToken)
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Minute}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("10 MB with Expect: 100-continue: %v, want a 413", err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || apiError(t, data).Code != decisionapi.CodeBodyTooLarge {
		t.Fatalf("status %d %s, want 413 body_too_large", resp.StatusCode, data)
	}
	checkResponse(t, http.MethodPost, decisionapi.PathDecisions, resp.StatusCode, data)
	if n := body.n.Load(); n != 0 {
		t.Errorf("the client sent %d body bytes; the server should refuse before asking for them", n)
	}
	if !resp.Close {
		t.Error("the connection is kept alive after refusing an unread body")
	}

	// Without Expect, on a raw connection: the headers alone get the 413.
	conn, err := net.Dial("tcp", e.r.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{",
		decisionapi.PathDecisions, researchToken, size)
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	raw, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("raw 10 MB request: %v", err)
	}
	raw.Body.Close()
	if raw.StatusCode != http.StatusRequestEntityTooLarge || !raw.Close {
		t.Errorf("raw 10 MB request: status %d, close %v; want 413 and Connection: close", raw.StatusCode, raw.Close)
	}

	// A body over the limit without a Content-Length (chunked) is cut at the limit.
	chunked := &countingReader{remain: 1 << 20}
	req, err = http.NewRequest(http.MethodPost, e.base+decisionapi.PathDecisions, io.NopCloser(chunked))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+researchToken)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("chunked 1 MB: %v, want a 413", err)
	}
	data, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked 1 MB: %d %s, want 413", resp.StatusCode, data)
	}
	// The server still decides.
	e.decide(researchToken, decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.research", EstimatedCostUSD: 0.01})
}

// TestSlowBodiesHoldNoSlot is finding 3 at CI scale: 40 connections with one agent's token each
// announce a body and trickle it a byte at a time, past max_in_flight (16). A body is read before
// a slot is taken and read_timeout (2 s) ends each trickle, so another agent's decisions are
// answered 200 throughout. The per-caller share is set to the whole of max_in_flight here so that
// only the body-first order is under test.
func TestSlowBodiesHoldNoSlot(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for the 2 s read_timeout")
	}
	e := startEnv(t, testPolicy, withAccess, func(cfg *Config) {
		cfg.MaxInFlight = 16
		cfg.MaxInFlightPerCaller = 16
		cfg.ReadTimeout = 2 * time.Second
	})
	const slow = 40
	var wg sync.WaitGroup
	var open atomic.Int32
	cut := make(chan string, slow)
	for i := range slow {
		conn, err := net.Dial("tcp", e.r.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		size := 1000 // under max_request_bytes: the server has to wait for it
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{",
			decisionapi.PathDecisions, researchToken, size)
		open.Add(1)
		wg.Add(2)
		stop := make(chan struct{})
		go func() { // one byte every 100 ms until the server answers
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		}()
		go func() {
			defer wg.Done()
			defer close(stop)
			defer open.Add(-1)
			// Generous: the server must end the trickle itself, long before this.
			_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			switch {
			case err != nil && isTimeout(err):
				cut <- fmt.Sprintf("slow connection %d was never cut: %v", i, err)
			case err != nil:
				cut <- "" // reset after the server gave up on it
			default:
				resp.Body.Close()
				if resp.StatusCode != http.StatusRequestTimeout {
					cut <- fmt.Sprintf("slow connection %d answered %d, want 408", i, resp.StatusCode)
				} else {
					cut <- ""
				}
			}
		}()
	}
	decided := 0
	for open.Load() > 0 {
		status, body := e.do(http.MethodPost, decisionapi.PathDecisions, draftingToken,
			decisionapi.DecisionRequest{AgentID: "drafting-agent", Action: "job.draft", EstimatedCostUSD: 0.001})
		if status != http.StatusOK {
			t.Fatalf("drafting-agent's decision %d while %d slow bodies trickle: %d %s", decided, open.Load(), status, body)
		}
		decided++
	}
	wg.Wait()
	close(cut)
	for msg := range cut {
		if msg != "" {
			t.Error(msg)
		}
	}
	if decided < 2 {
		t.Errorf("only %d decisions ran while the slow bodies trickled", decided)
	}
	t.Logf("%d decisions answered 200 while %d slow bodies trickled", decided, slow)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestPerCallerShare: one token's requests hold at most max_in_flight_per_caller slots however
// many connections it opens; past its share it gets 429 while another token is still served, and
// its share frees as its requests finish.
func TestPerCallerShare(t *testing.T) {
	creds, err := access.Load("access.tokens", accessTokens)
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(nil, creds, 1024, 8, newStats(time.Now(), decide.FailClosed.String()))
	s.setLimits(requestLimits{}) // the default share: a quarter of 8
	release := make(chan struct{})
	entered := make(chan struct{}, 16)
	mux := http.NewServeMux()
	s.route(mux, "/test/block", endpoint{http.MethodGet, agents, func(*http.Request, decide.Caller) (any, error) {
		entered <- struct{}{}
		<-release
		return map[string]bool{"ok": true}, nil
	}})
	s.route(mux, "/test/quick", endpoint{http.MethodGet, agents, func(*http.Request, decide.Caller) (any, error) {
		return map[string]bool{"ok": true}, nil
	}})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path, token string) int {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}} // a new connection each time
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	statuses := make(chan int, 6)
	for range 6 {
		go func() { statuses <- get("/test/block", researchToken) }()
	}
	// Two get in and block; the other four are refused.
	for range 2 {
		<-entered
	}
	for range 4 {
		if st := <-statuses; st != http.StatusTooManyRequests {
			t.Fatalf("research-agent's request past its share: %d, want 429", st)
		}
	}
	if st := get("/test/quick", researchToken); st != http.StatusTooManyRequests {
		t.Errorf("research-agent with its share taken: %d, want 429", st)
	}
	if st := get("/test/quick", draftingToken); st != http.StatusOK {
		t.Errorf("drafting-agent while research-agent holds its share: %d, want 200", st)
	}
	close(release)
	for range 2 {
		if st := <-statuses; st != http.StatusOK {
			t.Errorf("a blocked request: %d, want 200", st)
		}
	}
	if st := get("/test/quick", researchToken); st != http.StatusOK {
		t.Errorf("research-agent after its requests finished: %d, want 200", st)
	}
}

// TestSlots checks the slot accounting: the total bound, the per-caller share, the open caller
// held to the total only, and release.
func TestSlots(t *testing.T) {
	a, b := decide.Caller{Role: access.RoleAgent, Subject: "a"}, decide.Caller{Role: access.RoleAgent, Subject: "b"}
	open := decide.Caller{Role: access.RoleOpen}
	s := newSlots(4, 0) // share: 1
	if !s.acquire(a) || s.acquire(a) || !s.acquire(b) {
		t.Fatal("share of one per caller not enforced")
	}
	first, second, third := s.acquire(open), s.acquire(open), s.acquire(open)
	if !first || !second || third {
		t.Fatalf("open caller: %v %v %v; want two slots, then the total (4) reached", first, second, third)
	}
	s.release(a)
	if s.acquire(b) {
		t.Error("b took a second slot")
	}
	s.release(open)
	if !s.acquire(a) {
		t.Error("a could not take its slot back")
	}
	s.setPerCaller(100)
	if s.perCaller != 4 {
		t.Errorf("share %d above the total", s.perCaller)
	}
}

// TestHTTPLimitsConfig: the hardening keys validate with messages naming them, the body limit
// in force is the smaller of max_request_bytes and max_request_body_size, and the open API's
// checks follow the transport and cors.allowed_origins.
func TestHTTPLimitsConfig(t *testing.T) {
	valid := func() *Config {
		cfg := createDefaultConfig().(*Config)
		cfg.PolicyFile = "policy.yaml"
		return cfg
	}
	for _, tc := range []struct {
		name string
		tune func(*Config)
		want string
	}{
		{"a per-caller share", func(c *Config) { c.MaxInFlight, c.MaxInFlightPerCaller = 16, 16 }, ""},
		{"a negative share", func(c *Config) { c.MaxInFlightPerCaller = -1 }, "max_in_flight_per_caller: -1"},
		{"a share above the total", func(c *Config) { c.MaxInFlight, c.MaxInFlightPerCaller = 16, 17 }, "max_in_flight_per_caller: 17"},
		{"no ledger timeout", func(c *Config) { c.LedgerUnavailable.Timeout = 0 }, "ledger_unavailable.timeout: 0s must be positive"},
	} {
		cfg := valid()
		tc.tune(cfg)
		err := cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.want)
		}
	}
	cfg := valid()
	if cfg.bodyLimit() != 64<<10 {
		t.Errorf("default body limit %d", cfg.bodyLimit())
	}
	cfg.MaxRequestBodySize = 4096
	if cfg.bodyLimit() != 4096 {
		t.Errorf("max_request_body_size 4096: body limit %d", cfg.bodyLimit())
	}
	cfg.MaxRequestBodySize = 1 << 30
	if cfg.bodyLimit() != 64<<10 {
		t.Errorf("max_request_body_size 1 GiB: body limit %d", cfg.bodyLimit())
	}
	cfg.CORS = configoptional.Some(confighttp.CORSConfig{AllowedOrigins: []string{"https://console.example", "https://*.example"}})
	l := cfg.requestLimits()
	if l.anyHost || len(l.origins) != 1 || l.origins[0] != "https://console.example" {
		t.Errorf("limits %+v, want the exact CORS origin only", l)
	}
	srv := &server{limits: l}
	for origin, want := range map[string]bool{
		"https://console.example": true, "http://localhost": true, "https://127.0.0.1:8443": true, "http://[::1]:3000": true,
		"https://a.example": false, "https://console.example.evil": false, "null": false, "file://": false,
		"http://localhost/path": false, "http://user@localhost": false,
	} {
		if got := srv.allowedOrigin(origin); got != want {
			t.Errorf("allowedOrigin(%q) = %v, want %v", origin, got, want)
		}
	}
	cfg.NetAddr.Transport = "unix"
	if l := cfg.requestLimits(); !l.anyHost {
		t.Error("a unix socket still checks Host")
	}
}
