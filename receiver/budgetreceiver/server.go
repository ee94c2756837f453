package budgetreceiver

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/agentcost/agentcost/internal/decide"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// server serves the decision API over the engine: authentication, the role table, bounded strict
// bodies and JSON answers. It logs nothing per request and never a token.
type server struct {
	engine   *decide.Engine
	creds    []storedCredential // nil: the API is open
	maxBody  int64
	inFlight chan struct{}
	stats    *stats
}

// storedCredential keeps a token's SHA-256, compared in constant time.
type storedCredential struct {
	sum    [sha256.Size]byte
	caller decide.Caller
}

func newServer(engine *decide.Engine, creds []credential, maxBody int64, maxInFlight int, st *stats) *server {
	s := &server{engine: engine, maxBody: maxBody, inFlight: make(chan struct{}, maxInFlight), stats: st}
	for _, c := range creds {
		s.creds = append(s.creds, storedCredential{sum: sha256.Sum256([]byte(c.token)), caller: c.caller})
	}
	return s
}

// roles is the set of roles an endpoint admits; RoleOpen callers pass every endpoint.
type roles uint8

const (
	agents roles = 1 << iota
	reviewers
)

func (r roles) admit(role decide.Role) bool {
	switch role {
	case decide.RoleAgent:
		return r&agents != 0
	case decide.RoleReviewer:
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
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeNotFound, "no endpoint %s", r.URL.Path))
	})
	return mux
}

// route serves ep at path: authenticate (401), check the method (405), the role (403) and the
// in-flight bound (429), then answer with JSON.
func (s *server) route(mux *http.ServeMux, path string, ep endpoint) {
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		begin := time.Now()
		caller, ok := s.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="agentcost"`)
			decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeUnauthorized, "a valid bearer token is required"))
			return
		}
		if r.Method != ep.method {
			w.Header().Set("Allow", ep.method)
			decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeMethodNotAllowed, "%s %s is not supported; use %s", r.Method, path, ep.method))
			return
		}
		if !ep.roles.admit(caller.Role) {
			decisionapi.WriteError(w, decisionapi.NewError(decisionapi.CodeForbidden, "the %s role may not %s %s", caller.Role, r.Method, path))
			return
		}
		select {
		case s.inFlight <- struct{}{}:
			defer func() { <-s.inFlight }()
		default:
			ae := decisionapi.NewError(decisionapi.CodeRateLimited, "too many requests in flight")
			ae.RetryAfterSec = 1
			decisionapi.WriteError(w, ae)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
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

// authenticate maps the bearer token to its caller, comparing against every token in constant
// time. On an open API every request is a RoleOpen caller.
func (s *server) authenticate(r *http.Request) (decide.Caller, bool) {
	if s.creds == nil {
		return decide.Caller{Role: decide.RoleOpen}, true
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return decide.Caller{}, false
	}
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range s.creds {
		if subtle.ConstantTimeCompare(sum[:], s.creds[i].sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return decide.Caller{}, false
	}
	return s.creds[found].caller, true
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

func (s *server) budgets(r *http.Request, _ decide.Caller) (any, error) {
	return s.engine.Budgets(r.Context())
}

func (s *server) listApprovals(r *http.Request, c decide.Caller) (any, error) {
	return s.engine.ListApprovals(r.Context(), c, r.URL.Query().Get("state"))
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
