package budgetreceiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// server serves the decision API over the engine: authentication, the role table, bounded strict
// bodies and JSON answers. It logs nothing per request and never a token.
type server struct {
	engine  *decide.Engine
	creds   *access.Set // nil: the API is open
	maxBody int64
	slots   *slots
	limits  requestLimits
	stats   *stats

	// leaseSlots bound the lease checks (GET /v1/leases/{id}) apart from slots, so that a running
	// action's watcher never eats into its agent's share of the decision API (freeze.go).
	leaseSlots *slots

	// evidenceDir is this replica's evidence chain (GET /v1/evidence/{id}); empty: none kept.
	evidenceDir string
}

// requestLimits are the request-flow settings of the server beyond newServer's arguments.
type requestLimits struct {
	// perCaller bounds one caller's requests in flight (max_in_flight_per_caller); 0 means a
	// quarter of max_in_flight, at least 1.
	perCaller int
	// anyHost skips the open API's Host check: a unix socket cannot be reached by a browser.
	anyHost bool
	// origins are the Origins the open API accepts besides loopback ones (cors.allowed_origins,
	// exact entries only).
	origins []string
	// console serves the reviewer console at /console/ (console.enabled).
	console bool
}

// setLimits applies the request-flow settings; call it before serving.
func (s *server) setLimits(l requestLimits) {
	s.limits = l
	s.slots.setPerCaller(l.perCaller)
}

func newServer(engine *decide.Engine, creds *access.Set, maxBody int64, maxInFlight int, st *stats) *server {
	return &server{engine: engine, creds: creds, maxBody: maxBody, slots: newSlots(maxInFlight, 0), leaseSlots: newLeaseSlots(maxInFlight), stats: st}
}

// roles is the set of roles an endpoint admits; RoleOpen callers pass every endpoint.
type roles uint8

const (
	agents roles = 1 << iota
	reviewers
)

func (r roles) admit(role access.Role) bool {
	switch role {
	case access.RoleAgent:
		return r&agents != 0
	case access.RoleReviewer:
		return r&reviewers != 0
	}
	return true
}

// endpoint is one method of one path.
type endpoint struct {
	method string
	roles  roles
	serve  func(r *http.Request, c decide.Caller) (any, error)
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	s.route(mux, decisionapi.PathDecisions, endpoint{http.MethodPost, agents, s.decide})
	s.route(mux, decisionapi.PathLeaseRelease, endpoint{http.MethodPost, agents, s.release})
	s.route(mux, decisionapi.PathBudgets, endpoint{http.MethodGet, agents | reviewers, s.budgets})
	s.route(mux, decisionapi.PathApprovals, endpoint{http.MethodGet, reviewers, s.listApprovals})
	s.route(mux, decisionapi.PathApproval, endpoint{http.MethodGet, agents | reviewers, s.approval})
	s.route(mux, decisionapi.PathApprove, endpoint{http.MethodPost, reviewers, s.approve})
	s.route(mux, decisionapi.PathDeny, endpoint{http.MethodPost, reviewers, s.deny})
	s.route(mux, decisionapi.PathExplain, endpoint{http.MethodPost, agents | reviewers, s.explain})
	s.routeFreezes(mux)
	s.route(mux, decisionapi.PathEvidence, endpoint{http.MethodGet, reviewers, s.evidence})
	if s.limits.console {
		s.routeConsole(mux)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeNotFound, "no endpoint %s", r.URL.Path))
	})
	return mux
}

// route serves ep at path: authenticate (401), refuse a cross-site request to an open API (403),
// check the method (405) and the role (403), read the whole body (415 for a body that is not JSON,
// 413 beyond the limit, 408 past read_timeout), take an in-flight slot (429), then answer with
// JSON. The body is read before a slot is taken, so a slow body holds no slot; and one caller holds
// at most its share of the slots, so it cannot starve the others.
func (s *server) route(mux *http.ServeMux, path string, ep endpoint) {
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		begin := time.Now()
		caller, ok := s.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="agentcost"`)
			decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeUnauthorized, "a valid bearer token is required"))
			return
		}
		if caller.Role == access.RoleOpen {
			if err := s.checkOpen(r); err != nil {
				decisionapi.WriteError(w, err)
				return
			}
		}
		if !methodAllowed(r.Method, ep.method) {
			w.Header().Set("Allow", ep.method)
			decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeMethodNotAllowed, "%s %s is not supported; use %s", r.Method, path, ep.method))
			return
		}
		if !ep.roles.admit(caller.Role) {
			decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeForbidden, "the %s role may not %s %s", caller.Role, r.Method, path))
			return
		}
		body, err := s.readBody(w, r)
		if err != nil {
			decisionapi.WriteError(w, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sl := s.slotsFor(path)
		if !sl.acquire(caller) {
			ae := decisionapi.NewError(decisionapi.CodeRateLimited, "too many requests in flight")
			ae.RetryAfterSec = 1
			decisionapi.WriteError(w, ae)
			return
		}
		defer sl.release(caller)
		out, err := ep.serve(r, caller)
		if path == decisionapi.PathDecisions {
			s.stats.decisionDuration(time.Since(begin))
		}
		if err != nil {
			decisionapi.WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(out)
	})
}

// readBody reads the whole request body, bounded by maxBody. A request with a body must say it is
// JSON (415). A declared Content-Length over the limit is refused before anything is read, so a
// client waiting on Expect: 100-continue gets the 413 instead of a 100 and never sends the body;
// the connection is then closed rather than drained. A body still arriving at read_timeout is 408.
func (s *server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if err := requireJSON(r.Header.Get("Content-Type")); err != nil {
		w.Header().Set("Connection", "close")
		return nil, err
	}
	if r.ContentLength > s.maxBody {
		w.Header().Set("Connection", "close")
		return nil, decisionapi.NewError(decisionapi.CodeBodyTooLarge, "request body of %d bytes exceeds %d bytes", r.ContentLength, s.maxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err == nil {
		return body, nil
	}
	w.Header().Set("Connection", "close")
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return nil, decisionapi.NewError(decisionapi.CodeBodyTooLarge, "request body exceeds %d bytes", mbe.Limit)
	case errors.As(err, &ne) && ne.Timeout():
		return nil, decisionapi.NewError(decisionapi.CodeRequestTimeout, "the request body did not arrive within the server's read_timeout")
	}
	return nil, decisionapi.NewError(decisionapi.CodeInvalidJSON, "reading the request body failed after %d bytes", len(body))
}

// requireJSON accepts application/json, with an optional utf-8 charset, as a body's Content-Type.
// Anything else is 415: a browser sends text/plain, form and multipart bodies cross-site without
// a preflight, but not JSON.
func requireJSON(contentType string) error {
	mt, params, err := mime.ParseMediaType(contentType)
	if err == nil && mt == "application/json" {
		if cs, ok := params["charset"]; !ok || strings.EqualFold(cs, "utf-8") {
			return nil
		}
	}
	if contentType == "" {
		return decisionapi.NewError(decisionapi.CodeUnsupportedMediaType, "a request with a body needs the header Content-Type: application/json")
	}
	return decisionapi.NewError(decisionapi.CodeUnsupportedMediaType, "the Content-Type header %q is not application/json", contentType)
}

// checkOpen refuses what a web page could make a browser send to an open API (no access
// tokens): a request from a foreign Origin (cross-site) or naming a Host that is not a loopback
// name (DNS rebinding: a hostile name resolving to 127.0.0.1). Clients that are not browsers send
// no Origin and the loopback Host they dialled.
func (s *server) checkOpen(r *http.Request) error {
	if origin := r.Header.Get("Origin"); origin != "" && !s.allowedOrigin(origin) {
		return decisionapi.NewError(decisionapi.CodeForbidden,
			"the Origin header %q is refused: an open API (no access tokens) accepts requests from loopback origins only", origin)
	}
	if !s.limits.anyHost && r.Host != "" && !loopbackHost(r.Host) {
		return decisionapi.NewError(decisionapi.CodeForbidden,
			"the Host header %q is refused: an open API (no access tokens) answers localhost and loopback addresses only", r.Host)
	}
	return nil
}

// allowedOrigin reports whether origin is a loopback origin (http or https) or one listed in
// cors.allowed_origins.
func (s *server) allowedOrigin(origin string) bool {
	for _, o := range s.limits.origins {
		if o == origin {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Path != "" || u.User != nil {
		return false
	}
	return loopbackHost(u.Host)
}

// loopbackHost reports whether a Host value (host or host:port) names this machine: localhost or
// a loopback IP address.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// slots bounds the requests served at once, in total and per caller (the token's role and
// subject, however many connections it opens). The open API's one caller is held to the total.
type slots struct {
	mu        sync.Mutex
	max       int
	perCaller int
	total     int
	held      map[slotKey]int
}

// slotKey is whom a slot is held for: the caller's role and subject.
type slotKey struct {
	role    access.Role
	subject string
}

func keyOf(c decide.Caller) slotKey { return slotKey{c.Role, c.Subject} }

func newSlots(maxInFlight, perCaller int) *slots {
	s := &slots{max: maxInFlight, held: map[slotKey]int{}}
	s.setPerCaller(perCaller)
	return s
}

// setPerCaller sets one caller's share; 0 means a quarter of the total, at least 1.
func (s *slots) setPerCaller(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		n = max(1, s.max/4)
	}
	s.perCaller = min(n, s.max)
}

// acquire takes a slot for c, reporting false when every slot, or c's share of them, is taken.
func (s *slots) acquire(c decide.Caller) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= s.max {
		return false
	}
	if c.Role != access.RoleOpen {
		k := keyOf(c)
		if s.held[k] >= s.perCaller {
			return false
		}
		s.held[k]++
	}
	s.total++
	return true
}

// release gives back a slot acquire took for c.
func (s *slots) release(c decide.Caller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if c.Role != access.RoleOpen {
		k := keyOf(c)
		if n := s.held[k] - 1; n > 0 {
			s.held[k] = n
		} else {
			delete(s.held, k)
		}
	}
}

// authenticate maps the bearer token to its caller through the token list's constant-time lookup.
// On an open API every request is a RoleOpen caller. A forwarder token (OTLP only) is not a
// credential of the API: it is answered 401 like an unknown token.
func (s *server) authenticate(r *http.Request) (decide.Caller, bool) {
	if s.creds == nil {
		return decide.Caller{Role: access.RoleOpen}, true
	}
	token, ok := access.BearerToken(r.Header.Get("Authorization"))
	if !ok {
		return decide.Caller{}, false
	}
	id, ok := s.creds.Lookup(token)
	switch {
	case !ok:
		return decide.Caller{}, false
	case id.Role == access.RoleAgent:
		return decide.Caller{Role: access.RoleAgent, Subject: id.Subject, Teams: id.Teams}, true
	case id.Role == access.RoleReviewer:
		return decide.Caller{Role: access.RoleReviewer, Subject: id.Subject}, true
	}
	return decide.Caller{}, false
}

func (s *server) decode(r *http.Request, v any) error {
	return decisionapi.Decode(r.Body, s.maxBody, v)
}

func (s *server) decide(r *http.Request, c decide.Caller) (any, error) {
	var req decisionapi.DecisionRequest
	if err := s.decode(r, &req); err != nil {
		return nil, err
	}
	return s.engine.Decide(r.Context(), c, req, r.Header.Get("traceparent"))
}

func (s *server) release(r *http.Request, c decide.Caller) (any, error) {
	var req decisionapi.ReleaseRequest
	if err := s.decode(r, &req); err != nil {
		return nil, err
	}
	return s.engine.Release(r.Context(), c, r.PathValue("id"), req)
}

func (s *server) budgets(r *http.Request, c decide.Caller) (any, error) {
	page, err := decisionapi.ParseListParams(r.URL.Query())
	if err != nil {
		return nil, err
	}
	switch order := r.URL.Query().Get(decisionapi.QueryOrder); order {
	case "", decisionapi.OrderScope:
		return s.engine.Budgets(r.Context(), c, page)
	case decisionapi.OrderUtilization:
		return s.engine.BudgetsByUtilization(r.Context(), c, page)
	default:
		return nil, (&decisionapi.FieldError{Field: decisionapi.QueryOrder,
			Message: "must be " + decisionapi.OrderScope + " or " + decisionapi.OrderUtilization + ", got " + strconv.Quote(order)}).APIError()
	}
}

func (s *server) listApprovals(r *http.Request, c decide.Caller) (any, error) {
	page, err := decisionapi.ParseListParams(r.URL.Query())
	if err != nil {
		return nil, err
	}
	return s.engine.ListApprovals(r.Context(), c, r.URL.Query().Get("state"), page)
}

func (s *server) approval(r *http.Request, c decide.Caller) (any, error) {
	return s.engine.Approval(r.Context(), c, r.PathValue("id"))
}

func (s *server) approve(r *http.Request, c decide.Caller) (any, error) {
	var req decisionapi.ApproveRequest
	if err := s.decode(r, &req); err != nil {
		return nil, err
	}
	return s.engine.Approve(r.Context(), c, r.PathValue("id"), req)
}

func (s *server) deny(r *http.Request, c decide.Caller) (any, error) {
	var req decisionapi.DenyRequest
	if err := s.decode(r, &req); err != nil {
		return nil, err
	}
	return s.engine.Deny(r.Context(), c, r.PathValue("id"), req)
}

func (s *server) explain(r *http.Request, c decide.Caller) (any, error) {
	var req decisionapi.DecisionRequest
	if err := s.decode(r, &req); err != nil {
		return nil, err
	}
	return s.engine.Explain(r.Context(), c, req)
}
