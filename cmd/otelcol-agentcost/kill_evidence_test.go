package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/testutil/collectortest"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// lockedBuffer collects a child's output safely.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestKill9KeepsTheEvidenceChain: decisions write evidence (fsync always) from 8 concurrent agents
// while the collector is killed with SIGKILL. On restart the chain continues — a half-written last
// line, which a kill between write and newline leaves (injected here so the test does not depend on
// the kill's timing), is truncated and reported in the log — and the whole chain verifies; every
// decision the API answered is in it, and so is its reservation (answered from the reservation
// journal, which the flusher may not have applied to the ledger file before the kill). It runs in
// each durability level of the ledger: "process" answers reservations before their fsync, and must
// lose none of them to kill -9 all the same.
func TestKill9KeepsTheEvidenceChain(t *testing.T) {
	for _, durability := range []string{ledger.DurabilityPower, ledger.DurabilityProcess} {
		t.Run(durability, func(t *testing.T) { testKill9KeepsTheEvidenceChain(t, durability) })
	}
}

func testKill9KeepsTheEvidenceChain(t *testing.T, durability string) {
	bin := buildBinary(t)
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(`version: v1
budgets:
  default_agent: {limit_usd: 1000, window: hour}
rules:
  - id: constrained
    match: {topics: ["job.**"]}
    decision: allow_with_constraints
    constraints: {max_tokens: 2000}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	api := collectortest.Endpoint(t)
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`
extensions:
  budgetledger: {directory: %[1]s/ledger, durability: %[5]s, evidence: {directory: %[1]s/evidence, sync: always}}
receivers:
  budget: {endpoint: %[2]s, policy_file: %[3]s}
exporters:
  costledger: {}
  prometheus: {endpoint: %[4]s, translation_strategy: UnderscoreEscapingWithoutSuffixes, without_scope_info: true, metric_expiration: 1h}
service:
  telemetry: {metrics: {level: none}}
  extensions: [budgetledger]
  pipelines:
    metrics: {receivers: [budget], exporters: [prometheus]}
`, dir, api, policy, collectortest.Endpoint(t), durability)), 0o600); err != nil {
		t.Fatal(err)
	}
	evDir := filepath.Join(dir, "evidence")

	child := startChild(t, bin, config)
	waitListening(t, api)
	var answered atomic.Int64
	var ids, decisions sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, code := decideQuiet("http://"+api, decisionapi.DecisionRequest{AgentID: fmt.Sprintf("agent-%d", g), Action: "job.load.step", EstimatedCostUSD: 0.01})
				if code != http.StatusOK {
					return // the collector is gone
				}
				answered.Add(1)
				ids.Store(resp.EvidenceID, true)
				decisions.Store(resp.DecisionID, true)
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	_ = child.Process.Signal(syscall.SIGKILL)
	_, _ = child.Process.Wait()
	close(stop)
	wg.Wait()
	if answered.Load() < 10 {
		t.Fatalf("only %d decisions answered before the kill", answered.Load())
	}

	files, _ := filepath.Glob(filepath.Join(evDir, "evidence-*.jsonl"))
	if len(files) == 0 {
		t.Fatal("no evidence written")
	}
	last := files[len(files)-1]
	f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"seq":999999,"kind":"decision","evidence_id":"torn`)
	f.Close()

	var log lockedBuffer
	cmd := exec.Command(bin, "--config", config)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	waitListening(t, api)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_, _ = cmd.Process.Wait()
	if !strings.Contains(log.String(), "half-written record") {
		t.Errorf("the torn line was not reported at start:\n%s", log.String())
	}

	rep, err := evidence.Verify(evDir)
	if err != nil || !rep.OK() {
		t.Fatalf("evidence chain after kill -9 does not verify: %+v %v", rep, err)
	}
	inChain := map[string]bool{}
	if err := evidence.Scan(evDir, func(r evidence.Record) error { inChain[r.EvidenceID] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	missing := 0
	ids.Range(func(k, _ any) bool {
		if !inChain[k.(string)] {
			missing++
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d answered decisions have no evidence record after kill -9 (fsync always)", missing)
	}

	// Every answered decision's reservation is in the ledger, open, exactly once.
	l := openLedger(t, filepath.Join(dir, "ledger"), "", "")
	lost, settled := 0, 0
	decisions.Range(func(k, _ any) bool {
		s, err := l.Release(t.Context(), ledger.ReleaseRequest{ID: k.(string)})
		switch {
		case errors.Is(err, ledger.ErrNotFound):
			lost++
		case err != nil:
			t.Fatalf("releasing %s: %v", k, err)
		case s.AlreadySettled:
			settled++
		}
		return true
	})
	if lost > 0 || settled > 0 {
		t.Fatalf("of %d answered decisions, %d reservations are lost and %d were already settled after kill -9", answered.Load(), lost, settled)
	}
	t.Logf("%d decisions answered before SIGKILL; chain of %d records verifies; every reservation recovered (replayed from the journal at restart: %v)",
		answered.Load(), len(inChain), strings.Contains(log.String(), "recovered from the journal"))
}

// decideQuiet posts a decision and returns its answer and status; a transport error is status 0.
func decideQuiet(base string, req decisionapi.DecisionRequest) (decisionapi.DecisionResponse, int) {
	var out decisionapi.DecisionResponse
	body, _ := json.Marshal(req)
	resp, err := http.Post(base+decisionapi.PathDecisions, "application/json", bytes.NewReader(body))
	if err != nil {
		return out, 0
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		_ = json.NewDecoder(resp.Body).Decode(&out)
	}
	return out, resp.StatusCode
}
