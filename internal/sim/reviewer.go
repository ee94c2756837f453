package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// Reviewer approves the fleet's pending approvals through the decision API, as a human reviewer
// would with agentcostctl: GET /v1/approvals?state=pending, then POST /v1/approvals/{id}/approve
// with a reviewer token. It approves only approvals whose run id starts with its prefix, so it
// never approves another client's actions.
type Reviewer struct {
	base      string
	token     string
	runPrefix string
	interval  time.Duration
	http      *http.Client

	mu       sync.Mutex
	approved []string
	errs     []error
}

// NewReviewer returns a reviewer of the decision API at base.
func NewReviewer(base, token, runPrefix string, interval time.Duration, hc *http.Client) *Reviewer {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	return &Reviewer{base: strings.TrimRight(base, "/"), token: token, runPrefix: runPrefix, interval: interval, http: hc}
}

// Run reviews until ctx ends.
func (r *Reviewer) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.ReviewOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// maxReviewPages bounds the pages of pending approvals one review reads.
const maxReviewPages = 100

// ReviewOnce approves every pending approval of the fleet once, following the list's cursor.
func (r *Reviewer) ReviewOnce(ctx context.Context) {
	cursor := ""
	for range maxReviewPages {
		var list decisionapi.ApprovalList
		path := decisionapi.PathApprovals + "?state=pending&limit=1000"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := r.call(ctx, http.MethodGet, path, nil, &list); err != nil {
			r.fail(err)
			return
		}
		r.approve(ctx, list.Approvals)
		if cursor = list.NextCursor; cursor == "" {
			return
		}
	}
}

// approve approves the fleet's pending approvals among aps.
func (r *Reviewer) approve(ctx context.Context, aps []decisionapi.Approval) {
	for _, ap := range aps {
		if ap.State != decisionapi.ApprovalPending || !strings.HasPrefix(ap.RunID, r.runPrefix+"-") {
			continue
		}
		body := decisionapi.ApproveRequest{Comment: "approved by the agentsim auto-reviewer"}
		var out decisionapi.Approval
		path := "/v1/approvals/" + url.PathEscape(ap.ApprovalID) + "/approve"
		if err := r.call(ctx, http.MethodPost, path, body, &out); err != nil {
			r.fail(err)
			continue
		}
		r.mu.Lock()
		r.approved = append(r.approved, ap.ApprovalID)
		r.mu.Unlock()
	}
}

// Approved returns the approvals this reviewer approved.
func (r *Reviewer) Approved() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.approved...)
}

// Errors returns the failures of the reviewer's calls, except a context's end.
func (r *Reviewer) Errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

func (r *Reviewer) fail(err error) {
	if err == context.Canceled || err == context.DeadlineExceeded {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) < 100 {
		r.errs = append(r.errs, err)
	}
}

func (r *Reviewer) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+path, body)
	if err != nil {
		return fmt.Errorf("reviewer: %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("reviewer: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxProbedBody))
	if err != nil {
		return fmt.Errorf("reviewer: %s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("reviewer: %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("reviewer: %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}
