package decide

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"github.com/agentcost/agentcost/internal/access"
	"github.com/agentcost/agentcost/internal/policy"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Idempotency works on the ledger's PutIfAbsent, which cannot overwrite: the first request with a
// key claims it (naming its decision id and a hash of the request), decides, and stores its answer
// under a second record named by the decision id. A repeat finds the claim and reads the answer
// with a probe: a PutIfAbsent of a one-millisecond sentinel, which returns the answer when it is
// there and otherwise vanishes before it can be in the way (the writer retries past a live one).
const (
	// idemWait bounds how long a repeat waits for the first request's answer.
	idemWait = 5 * time.Second
	// idemAbandoned is the age of a claim without an answer that is taken as abandoned.
	idemAbandoned = 2 * time.Minute
	// idemDecideTimeout bounds a claimed decision, which runs detached from its request so that a
	// client that gave up still leaves an answer for its retry.
	idemDecideTimeout = 30 * time.Second
	idemPoll          = 20 * time.Millisecond
	probeTTL          = time.Millisecond
)

// probeSentinel is the value of a probe; no JSON answer starts with it.
var probeSentinel = []byte{0}

type idemClaim struct {
	DecisionID  string    `json:"decision_id"`
	RequestHash string    `json:"request_hash"`
	At          time.Time `json:"at"`
}

// idemAnswer is a stored answer: the response, or the API error the first request got.
type idemAnswer struct {
	Response      *decisionapi.DecisionResponse `json:"response,omitempty"`
	Status        int                           `json:"status,omitempty"`
	Error         *decisionapi.APIError         `json:"error,omitempty"`
	RetryAfterSec int64                         `json:"retry_after_sec,omitempty"`
}

func (a idemAnswer) result() (decisionapi.DecisionResponse, error) {
	if a.Error != nil {
		ae := *a.Error
		ae.Status, ae.RetryAfterSec = a.Status, a.RetryAfterSec
		return decisionapi.DecisionResponse{}, &ae
	}
	if a.Response == nil {
		return decisionapi.DecisionResponse{}, decisionapi.NewError(decisionapi.CodeInternal, "stored answer is empty")
	}
	return *a.Response, nil
}

// idemClaimKey returns the claim record's key: the caller's subject (the agent on an open API) and
// the idempotency key, so that two agents never share a key.
func idemClaimKey(c Caller, req *decisionapi.DecisionRequest) string {
	owner := "subject:" + strconv.Quote(c.Subject)
	if c.Role == access.RoleOpen {
		owner = "agent:" + strconv.Quote(req.AgentID)
	}
	return "decision-idem/" + owner + "/" + strconv.Quote(req.IdempotencyKey)
}

func idemAnswerKey(decisionID string) string { return "decision-answer/" + decisionID }

func requestHash(req *decisionapi.DecisionRequest, traceID string) string {
	b, _ := json.Marshal(struct {
		Req   *decisionapi.DecisionRequest `json:"r"`
		Trace string                       `json:"t,omitempty"`
	}{req, traceID})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// idempotent answers a request that carries an idempotency key.
func (e *Engine) idempotent(ctx context.Context, c Caller, req *decisionapi.DecisionRequest, traceID string) (decisionapi.DecisionResponse, error) {
	claim := idemClaim{DecisionID: newID("dec"), RequestHash: requestHash(req, traceID), At: e.cfg.Now()}
	raw, _ := json.Marshal(claim)
	key := idemClaimKey(c, req)
	cctx, cancel := e.boundLedger(ctx) // the claim is bounded like a decision's ledger calls
	defer cancel()
	existing, created, err := e.ledger.PutIfAbsent(cctx, key, raw, e.cfg.IdempotencyTTL)
	if err != nil {
		// Without the ledger there is nothing to be idempotent against, and nothing is reserved.
		return e.fail(cctx, &action{caller: c, req: req, p: e.cfg.Policy(), now: e.now(), id: claim.DecisionID,
			evidenceID: claim.DecisionID, traceID: traceID, preq: requestOf(req)}, ledgerErr("idempotency claim", err))
	}
	if created {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), idemDecideTimeout)
		defer cancel()
		resp, err := e.decide(dctx, c, req, traceID, claim.DecisionID)
		e.storeAnswer(dctx, claim.DecisionID, resp, err)
		return resp, err
	}
	var first idemClaim
	if err := json.Unmarshal(existing, &first); err != nil || first.DecisionID == "" {
		return decisionapi.DecisionResponse{}, decisionapi.NewError(decisionapi.CodeConflict, "idempotency_key %q holds an unreadable record", req.IdempotencyKey)
	}
	if first.RequestHash != claim.RequestHash {
		return decisionapi.DecisionResponse{}, decisionapi.NewError(decisionapi.CodeConflict,
			"idempotency_key %q was used with a different request", req.IdempotencyKey)
	}
	return e.awaitAnswer(ctx, req.IdempotencyKey, first)
}

// requestOf is the policy request of a validated wire request (its estimate is valid).
func requestOf(req *decisionapi.DecisionRequest) policy.Request {
	return policy.Request{
		RunID: req.RunID, AgentID: req.AgentID, Action: req.Action, RiskTags: req.RiskTags,
		EstimatedCost: nanos(req.EstimatedCostUSD), Items: req.Items, Team: req.Team, ApprovalID: req.ApprovalID,
		Model: req.Model,
	}
}

// storeAnswer keeps the answer of a claimed decision for its repeats. Server-side failures are not
// kept: a repeat then finds no answer and, once the claim is abandoned, is told to use a new key.
func (e *Engine) storeAnswer(ctx context.Context, decisionID string, resp decisionapi.DecisionResponse, err error) {
	var ans idemAnswer
	if err != nil {
		ae := decisionapi.AsAPIError(err)
		if ae.Status >= 500 || ctx.Err() != nil {
			return
		}
		ans = idemAnswer{Status: ae.Status, Error: ae, RetryAfterSec: ae.RetryAfterSec}
	} else {
		ans.Response = &resp
	}
	raw, _ := json.Marshal(ans)
	for range 200 {
		existing, created, perr := e.ledger.PutIfAbsent(ctx, idemAnswerKey(decisionID), raw, e.cfg.IdempotencyTTL)
		if perr != nil {
			e.warnLedger("idempotency answer", perr)
			return
		}
		if created || !bytes.Equal(existing, probeSentinel) {
			return
		}
		time.Sleep(probeTTL + time.Millisecond) // a repeat's probe is in the way
	}
}

// awaitAnswer returns the stored answer of the claim's decision, waiting a little for one still
// being decided.
func (e *Engine) awaitAnswer(ctx context.Context, idemKey string, claim idemClaim) (decisionapi.DecisionResponse, error) {
	deadline := time.Now().Add(e.idemWait)
	for {
		existing, created, err := e.ledger.PutIfAbsent(ctx, idemAnswerKey(claim.DecisionID), probeSentinel, probeTTL)
		if err != nil {
			e.warnLedger("idempotency answer", err)
			return decisionapi.DecisionResponse{}, e.unavailableError(err)
		}
		if !created && !bytes.Equal(existing, probeSentinel) {
			var ans idemAnswer
			if err := json.Unmarshal(existing, &ans); err != nil {
				return decisionapi.DecisionResponse{}, decisionapi.NewError(decisionapi.CodeConflict, "idempotency_key %q holds an unreadable answer", idemKey)
			}
			return ans.result()
		}
		if e.cfg.Now().Sub(claim.At) > idemAbandoned {
			return decisionapi.DecisionResponse{}, decisionapi.NewError(decisionapi.CodeConflict,
				"the first request with idempotency_key %q did not finish; use a new key", idemKey)
		}
		if time.Now().After(deadline) {
			ae := decisionapi.NewError(decisionapi.CodeUnavailable, "the first request with idempotency_key %q is still being decided", idemKey)
			ae.RetryAfterSec = 1
			return decisionapi.DecisionResponse{}, ae
		}
		select {
		case <-ctx.Done():
			return decisionapi.DecisionResponse{}, ctx.Err()
		case <-time.After(idemPoll):
		}
	}
}
