package budgetreceiver

import (
	"context"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/testutil/browsertest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// updateScreenshots makes the browser test write its screenshots to docs/console/.
var updateScreenshots = flag.Bool("update", false, "write the console screenshots to docs/console/")

// The browser helpers live in internal/testutil/browsertest, shared with the collector's test.
var (
	browser = browsertest.Start
	run     = browsertest.Run
	text    = browsertest.Text
	waitJS  = browsertest.WaitJS
)

// value evaluates a JavaScript expression in the page (browsertest.Value).
func value[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	return browsertest.Value[T](t, ctx, expr)
}

// screenshot writes the page to docs/console/<name>.png when the test runs with -update.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if !*updateScreenshots {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, browsertest.StepLimit)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "..", "docs", "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleInBrowser drives the reviewer console in headless Chromium against a started
// receiver: sign in as the reviewer; a pending approval a decision created appears; approving it
// lets the agent's next decision with that approval_id through; another is denied with a reason;
// a budget bar moves after spend is booked; a freeze is created, denies the agent, and is lifted;
// an agent token is refused by the console.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test is not short")
	}
	e := startEnv(t, testPolicy, withAccess, withConsole)
	ctx := browser(t)

	run(t, ctx, "sign in",
		chromedp.Navigate(e.base+"/console/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), reviewerToken),
		chromedp.Click(chromedp.CSS("#signin-button")),
		waitJS(`document.body.dataset.loaded === "approvals"`),
	)
	stored := value[string](t, ctx, `sessionStorage.getItem("agentcost.token") + "|" + location.href`)
	if !strings.HasPrefix(stored, reviewerToken+"|") || strings.Contains(stored[len(reviewerToken):], reviewerToken) {
		t.Fatalf("token storage and URL = %q; want the token in session storage only", stored)
	}

	batch := func(token, agent string) decisionapi.DecisionResponse {
		d := e.decide(token, decisionapi.DecisionRequest{AgentID: agent, Action: "job.batch", EstimatedCostUSD: 1.25})
		if d.Decision != decisionapi.DecisionRequireApproval || d.ApprovalID == "" {
			t.Fatalf("%s job.batch = %+v; want require_approval", agent, d)
		}
		return d
	}
	first := batch(researchToken, "research-agent")
	second := batch(draftingToken, "drafting-agent")
	row := func(id string) string { return fmt.Sprintf(`#pending tr[data-approval-id=%q]`, id) }
	run(t, ctx, "see both pending approvals (polling, no reload)",
		chromedp.WaitVisible(chromedp.CSS(row(first.ApprovalID))),
		chromedp.WaitVisible(chromedp.CSS(row(second.ApprovalID))),
	)
	rowText := text(t, ctx, row(first.ApprovalID))
	for _, want := range []string{"research-agent", "job.batch", "$1.25", "approve-batch", "batches need a human"} {
		if !strings.Contains(rowText, want) {
			t.Errorf("pending row %q lacks %q", rowText, want)
		}
	}
	screenshot(t, ctx, "approvals")

	run(t, ctx, "approve the first with a cost cap",
		chromedp.SendKeys(chromedp.CSS("#cap-"+first.ApprovalID), "1"),
		chromedp.Click(chromedp.CSS(row(first.ApprovalID)+" button.approve")),
		chromedp.WaitNotPresent(chromedp.CSS(row(first.ApprovalID))),
	)
	status, body := e.do(http.MethodGet, "/v1/approvals/"+first.ApprovalID, reviewerToken, nil)
	var a decisionapi.Approval
	mustUnmarshal(t, body, &a)
	if status != http.StatusOK || a.State != decisionapi.ApprovalApproved || a.Reviewer != "alice@example.com" || a.CostCapUSD == nil || *a.CostCapUSD != 1 {
		t.Fatalf("approval after the console approved it: %d %+v", status, a)
	}
	d := e.decide(researchToken, decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.batch", EstimatedCostUSD: 1, ApprovalID: first.ApprovalID})
	if d.Decision != decisionapi.DecisionAllow && d.Decision != decisionapi.DecisionAllowWithConstraints {
		t.Fatalf("decision with the approved approval_id = %+v; want allowed", d)
	}
	actual := 0.8
	e.release(researchToken, d.LeaseID, decisionapi.ReleaseRequest{ActualCostUSD: &actual})
	if a.EvidenceID == "" {
		t.Fatalf("approved approval %+v has no evidence_id", a)
	}
	run(t, ctx, "open the approved action's evidence from the resolved list",
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#resolved tr[data-approval-id=%q] a`, first.ApprovalID))),
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#resolved tr[data-approval-id=%q] a`, first.ApprovalID))),
		waitJS(`document.body.dataset.loaded === "action" && !!document.querySelector('#action-records tr[data-kind="settlement"]')`),
	)
	kinds := value[string](t, ctx, `Array.from(document.querySelectorAll("#action-records tbody tr")).map(r => r.dataset.kind).join(",")`)
	verified := text(t, ctx, "#action-verified")
	settled := text(t, ctx, `#action-records tr[data-kind="settlement"]`)
	if kinds != "decision,approval,decision,settlement" || !strings.HasPrefix(verified, "Chain verified") || !strings.Contains(settled, "$0.8") || !strings.Contains(value[string](t, ctx, "location.hash"), a.EvidenceID) {
		t.Errorf("action page: kinds %q, verified %q, settlement row %q; want the decision, approval, allowed decision and settlement of %s, verified", kinds, verified, settled, a.EvidenceID)
	}
	screenshot(t, ctx, "action")
	run(t, ctx, "back to the approvals", chromedp.Click(chromedp.CSS("#nav-approvals")), waitJS(`document.body.dataset.loaded === "approvals"`))

	run(t, ctx, "a constraint that is not a whole number is refused in the page, nothing sent",
		chromedp.SendKeys(chromedp.CSS("#max-tokens-"+second.ApprovalID), "1.5"),
		chromedp.Click(chromedp.CSS(row(second.ApprovalID)+" button.approve")),
		waitJS(`document.getElementById("error").textContent.includes("max_tokens must be a whole number")`),
	)
	if status, body := e.do(http.MethodGet, "/v1/approvals/"+second.ApprovalID, reviewerToken, nil); status != http.StatusOK || !strings.Contains(string(body), `"state":"pending"`) {
		t.Fatalf("approval after a refused constraint: %d %s; want still pending", status, body)
	}

	run(t, ctx, "deny the second with a reason, from the keyboard (Tab from the reason field to Approve, Tab to Deny, Enter)",
		chromedp.SendKeys(chromedp.CSS("#reason-"+second.ApprovalID), "not this week"),
		chromedp.KeyEvent("\t"),
		chromedp.KeyEvent("\t"),
		waitJS(fmt.Sprintf(`document.activeElement === document.querySelector('%s button.deny')`, row(second.ApprovalID))),
		chromedp.KeyEvent("\r"),
		chromedp.WaitNotPresent(chromedp.CSS(row(second.ApprovalID))),
		waitJS(fmt.Sprintf(`(() => { const r = document.querySelector('#resolved tr[data-approval-id=%q]'); return !!r && r.textContent.includes("denied") && r.textContent.includes("alice@example.com"); })()`, second.ApprovalID)),
	)
	status, body = e.do(http.MethodGet, "/v1/approvals/"+second.ApprovalID, reviewerToken, nil)
	mustUnmarshal(t, body, &a)
	if status != http.StatusOK || a.State != decisionapi.ApprovalDenied || a.Reviewer != "alice@example.com" {
		t.Fatalf("approval after the console denied it: %d %+v", status, a)
	}
	status, body = e.do(http.MethodPost, decisionapi.PathDecisions, draftingToken, decisionapi.DecisionRequest{AgentID: "drafting-agent", Action: "job.batch", EstimatedCostUSD: 1, ApprovalID: second.ApprovalID})
	if status != http.StatusConflict || !strings.Contains(string(body), "denied") {
		t.Fatalf("decision with the denied approval_id: %d %s; want 409 naming the denial", status, body)
	}

	spent := `#budgets tr[data-scope="agent:research-agent"] td.spent`
	run(t, ctx, "open the budgets page",
		chromedp.Click(chromedp.CSS("#nav-budgets")),
		waitJS(`document.body.dataset.loaded === "budgets"`),
		chromedp.WaitVisible(chromedp.CSS(spent)),
	)
	before := value[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).textContent`, spent))
	e.book(ledger.Spend{Agent: "research-agent", Model: "gpt-4o", Cost: money.Nanos(2 * money.NanosPerUSD)})
	run(t, ctx, "see the research agent's bar move after spend is booked",
		waitJS(fmt.Sprintf(`(() => { const c = document.querySelector(%q); return !!c && c.textContent !== %q; })()`, spent, before)),
	)
	after := value[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).textContent`, spent))
	level := value[string](t, ctx, `document.querySelector('#budgets tr[data-scope="agent:research-agent"] td.level').textContent`)
	if before != "$0.8" || after != "$2.8" || level == "" {
		t.Errorf("research-agent spent went from %q to %q (level %q); want $0.8 (the settled action) then $2.8 and a level in text", before, after, level)
	}
	width := value[float64](t, ctx, `parseFloat(document.querySelector('#budgets tr[data-scope="agent:research-agent"] .bar span').style.width)`)
	var budgets decisionapi.BudgetsResponse
	status, body = e.do(http.MethodGet, decisionapi.PathBudgets, reviewerToken, nil)
	mustUnmarshal(t, body, &budgets)
	want := -1.0
	for _, sc := range budgets.Scopes {
		if sc.Scope == "agent" && sc.ID == "research-agent" {
			want = min(100, sc.Utilization*100)
		}
	}
	if status != http.StatusOK || want <= 0 || math.Abs(width-want) > 0.05 {
		t.Errorf("research-agent bar width = %v%%; want %v%%, its utilization from GET /v1/budgets", width, want)
	}
	screenshot(t, ctx, "budgets")

	frozen := `#freezes tr[data-freeze-id]`
	run(t, ctx, "freeze the drafting agent",
		chromedp.Click(chromedp.CSS("#nav-freezes")),
		waitJS(`document.body.dataset.loaded === "freezes"`),
		chromedp.SetValue(chromedp.CSS("#freeze-scope"), "agent"),
		chromedp.SendKeys(chromedp.CSS("#freeze-id"), "drafting-agent"),
		chromedp.SendKeys(chromedp.CSS("#freeze-reason"), "runaway loop"),
		chromedp.Click(chromedp.CSS("#freeze-button")),
		chromedp.WaitVisible(chromedp.CSS(frozen+" button.lift")),
	)
	d = e.decide(draftingToken, decisionapi.DecisionRequest{AgentID: "drafting-agent", Action: "job.research", EstimatedCostUSD: 0.1})
	if d.Decision != decisionapi.DecisionDeny || d.RuleID != decisionapi.RuleFreeze {
		t.Fatalf("decision of the frozen agent = %+v; want deny by the freeze", d)
	}
	screenshot(t, ctx, "freezes")
	run(t, ctx, "lift the freeze",
		chromedp.Click(chromedp.CSS(frozen+" button.lift")),
		chromedp.WaitNotPresent(chromedp.CSS(frozen+" button.lift")),
		waitJS(`document.querySelector("#freezes tr[data-freeze-id] td.state").textContent.startsWith("lifted")`),
	)
	d = e.decide(draftingToken, decisionapi.DecisionRequest{AgentID: "drafting-agent", Action: "job.research", EstimatedCostUSD: 0.1})
	if d.Decision != decisionapi.DecisionAllow {
		t.Fatalf("decision after the lift = %+v; want allow", d)
	}

	run(t, ctx, "an agent token is refused",
		chromedp.Click(chromedp.CSS("#signout")),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), researchToken),
		chromedp.Click(chromedp.CSS("#signin-button")),
		waitJS(`document.getElementById("error").textContent.includes("agent token")`),
	)
	msg := value[string](t, ctx, `(sessionStorage.getItem("agentcost.token") || "") + "|" + document.getElementById("page-approvals").hidden`)
	if msg != "|true" {
		t.Errorf("after an agent token: storage|pages hidden = %q; want the token dropped and no page shown", msg)
	}
}

// TestConsoleOpenModeBanner: on an open API (loopback, no tokens) the console needs no sign-in and
// says on the page that the API is open.
func TestConsoleOpenModeBanner(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test is not short")
	}
	e := startEnv(t, testPolicy, withConsole)
	ctx := browser(t)
	run(t, ctx, "open the console",
		chromedp.Navigate(e.base+"/console/#budgets"),
		waitJS(`document.body.dataset.loaded === "budgets"`),
	)
	banner := text(t, ctx, "#open-banner")
	if !strings.Contains(banner, "Open mode") {
		t.Fatalf("banner = %q; want the open-mode notice", banner)
	}
	if !value[bool](t, ctx, `document.getElementById("signin").hidden`) {
		t.Error("the open console asks for a sign-in")
	}
	// A write from the console's own (loopback) origin passes the open API's Origin check.
	run(t, ctx, "freeze from the open console",
		chromedp.Click(chromedp.CSS("#nav-freezes")),
		waitJS(`document.body.dataset.loaded === "freezes"`),
		chromedp.SetValue(chromedp.CSS("#freeze-scope"), "fleet"),
		chromedp.SendKeys(chromedp.CSS("#freeze-reason"), "maintenance"),
		chromedp.Click(chromedp.CSS("#freeze-button")),
		chromedp.WaitVisible(chromedp.CSS("#freezes tr[data-freeze-id] button.lift")),
	)
	if banner := text(t, ctx, "#open-banner"); !strings.Contains(banner, "Open mode") {
		t.Errorf("banner on the freezes page = %q", banner)
	}
	if d := e.decide("", decisionapi.DecisionRequest{AgentID: "research-agent", Action: "job.research", EstimatedCostUSD: 0.1}); d.RuleID != decisionapi.RuleFreeze {
		t.Errorf("decision under the fleet freeze made in the console = %+v; want denied by the freeze", d)
	}
}
