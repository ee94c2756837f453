package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/agentcost/agentcost/internal/testutil/browsertest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// consolePolicy budgets research-agent by name (so its row is listed before any spend) and parks
// job.batch for a reviewer.
const consolePolicy = `version: v1
default_decision: allow
budgets:
  fleet: {limit_usd: 100, window: month}
  agents: {research-agent: {limit_usd: 10, window: month}}
  runs: {limit_usd: 3}
rules:
  - id: approve-batch
    match: {topics: ["job.batch"]}
    decision: require_approval
    reason: batches need a human
`

const consoleReviewerToken = "e2e-console-reviewer-alice-token"

// consoleCall sends a request with a bearer token to the decision API, decodes a 200 answer into
// out, and returns the status and body.
func consoleCall(t *testing.T, method, url, token string, in, out any) (int, string) {
	t.Helper()
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, raw)
		}
	}
	return resp.StatusCode, string(raw)
}

// TestEndToEndConsoleInBrowser drives the reviewer console in headless Chromium against the whole
// collector with tokens: the reviewer signs in, approves a parked job.batch with a cost cap and a
// tighter max_runtime_sec; the agent's next decision with that approval_id is allowed under the
// reviewer's constraint; then an LLM span of that action sent over OTLP is booked by the pipeline,
// research-agent's budget bar moves on the budgets page without a reload, and the run (not listed
// by GET /v1/budgets) is looked up by id and shows the span's spend.
func TestEndToEndConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test is not short")
	}
	ctx := browsertest.Start(t)
	dir := t.TempDir()
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(consolePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	fc := startFullCollector(t, fullOptions{policy: policyPath, console: true,
		tokens: []accessToken{{e2eResearchToken, "agent", "research-agent"}, {consoleReviewerToken, "reviewer", "alice@example.com"}}})
	api := "http://" + fc.api

	browsertest.Run(t, ctx, "sign in as the reviewer",
		chromedp.Navigate(api+"/console/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), consoleReviewerToken),
		chromedp.Click(chromedp.CSS("#signin-button")),
		browsertest.WaitJS(`document.body.dataset.loaded === "approvals"`),
	)

	var parked decisionapi.DecisionResponse
	if status, body := consoleCall(t, http.MethodPost, api+decisionapi.PathDecisions, e2eResearchToken,
		decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.batch", EstimatedCostUSD: 1.25}, &parked); status != http.StatusOK || parked.Decision != decisionapi.DecisionRequireApproval {
		t.Fatalf("job.batch: %d %s; want require_approval", status, body)
	}
	row := fmt.Sprintf(`#pending tr[data-approval-id=%q]`, parked.ApprovalID)
	browsertest.Run(t, ctx, "approve with a cost cap and a tighter max runtime",
		chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.SendKeys(chromedp.CSS("#cap-"+parked.ApprovalID), "1"),
		chromedp.SendKeys(chromedp.CSS("#max-runtime-sec-"+parked.ApprovalID), "30"),
		chromedp.Click(chromedp.CSS(row+" button.approve")),
		chromedp.WaitNotPresent(chromedp.CSS(row)),
	)
	var a decisionapi.Approval
	if status, body := consoleCall(t, http.MethodGet, api+"/v1/approvals/"+parked.ApprovalID, consoleReviewerToken, nil, &a); status != http.StatusOK ||
		a.State != decisionapi.ApprovalApproved || a.Reviewer != "alice@example.com" || a.CostCapUSD == nil || *a.CostCapUSD != 1 ||
		a.Constraints.MaxRuntimeSec == nil || *a.Constraints.MaxRuntimeSec != 30 || a.Constraints.MaxTokens != nil {
		t.Fatalf("approval after the console approved it: %d %s; want approved by alice, cap $1, max_runtime_sec 30 only", status, body)
	}
	var d decisionapi.DecisionResponse
	if status, body := consoleCall(t, http.MethodPost, api+decisionapi.PathDecisions, e2eResearchToken,
		decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.batch", RunID: "run-console", EstimatedCostUSD: 1, ApprovalID: parked.ApprovalID}, &d); status != http.StatusOK ||
		!d.Decision.Allowed() || d.Constraints.MaxRuntimeSec == nil || *d.Constraints.MaxRuntimeSec > 30 {
		t.Fatalf("decision with the approved approval_id: %d %s; want allowed with max_runtime_sec <= 30", status, body)
	}

	spent := `#budgets tr[data-scope="agent:research-agent"] td.spent`
	browsertest.Run(t, ctx, "open the budgets page",
		chromedp.Click(chromedp.CSS("#nav-budgets")),
		browsertest.WaitJS(`document.body.dataset.loaded === "budgets"`),
		chromedp.WaitVisible(chromedp.CSS(spent)),
	)
	before := browsertest.Value[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).textContent`, spent))
	// $0.035 of gpt-4o (10k in, 1k out), booked by the traces pipeline when the export returns.
	exportSpans(t, fc.otlp, []sdktrace.ReadOnlySpan{actionSpan("console1", time.Now(), "research-agent", d.DecisionID, "run-console")})
	browsertest.Run(t, ctx, "see research-agent's bar move after the span is booked",
		browsertest.WaitJS(fmt.Sprintf(`(() => { const c = document.querySelector(%q); return !!c && c.textContent !== %q; })()`, spent, before)),
	)
	after := browsertest.Value[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).textContent`, spent))
	width := browsertest.Value[float64](t, ctx, `parseFloat(document.querySelector('#budgets tr[data-scope="agent:research-agent"] .bar span').style.width)`)
	if before != "$0" || after != "$0.035" || width <= 0 {
		t.Errorf("research-agent spent went from %q to %q (bar %v%%); want $0 then $0.035 booked over OTLP and a visible bar", before, after, width)
	}

	// GET /v1/budgets lists no runs: the page says so and looks a run up by id.
	if hint := browsertest.Text(t, ctx, "#runs-hint"); !strings.Contains(hint, "Runs are not listed") {
		t.Errorf("runs hint = %q; want the page to say runs are not listed", hint)
	}
	runSpent := `#run-budget tr[data-scope="run:run-console"] td.spent`
	browsertest.Run(t, ctx, "look the run up by id",
		chromedp.SendKeys(chromedp.CSS("#run-id"), "run-console"),
		chromedp.Click(chromedp.CSS("#run-button")),
		chromedp.WaitVisible(chromedp.CSS(runSpent)),
	)
	runRow := browsertest.Text(t, ctx, `#run-budget tr[data-scope="run:run-console"]`)
	if got := browsertest.Text(t, ctx, runSpent); got != "$0.035" || !strings.Contains(runRow, "$3") {
		t.Errorf("run-console row %q (spent %q); want the span's $0.035 booked to the run, of its $3 limit", runRow, got)
	}
}
