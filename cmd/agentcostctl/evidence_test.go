package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// fixtureAction is one action of an evidence fixture: a decision record and, unless unsettled,
// a settlement record.
type fixtureAction struct {
	id, agent, team, run, action string
	estimate, actual             string // USD
	decided, settled             time.Time
	tokensIn, tokensOut          int64
	anomalous, noDecision        bool
}

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// fataler is what the fixture helpers need of a test or a script.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

func mustUSD(t fataler, s string) money.Nanos {
	t.Helper()
	n, err := money.ParseUSD(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// writeChain appends the actions' records to the evidence directory dir with a real Writer.
func writeChain(t fataler, dir string, opts evidence.Options, acts []fixtureAction) {
	t.Helper()
	w, _, err := evidence.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, a := range acts {
		if !a.noDecision {
			rec := evidence.Record{Kind: evidence.KindDecision, EvidenceID: a.id, Time: a.decided, AgentID: a.agent,
				Team: a.team, RunID: a.run, Action: a.action, EstimatedCostUSD: evidence.USD(mustUSD(t, a.estimate)),
				Decision: "allow_with_constraints", RuleID: "throttle-llm-calls", PolicyVersion: "v1.9.0"}
			if _, err := w.Append(rec); err != nil {
				t.Fatal(err)
			}
		}
		if a.settled.IsZero() {
			continue
		}
		rec := evidence.Record{Kind: evidence.KindSettlement, EvidenceID: a.id, Time: a.settled,
			ActualCostUSD: evidence.USD(mustUSD(t, a.actual)), CostSource: decisionapi.SourceSpans, SpansMatched: 2,
			Tokens: &evidence.Tokens{Input: a.tokensIn, Output: a.tokensOut}}
		if a.noDecision {
			rec.AgentID, rec.Action = a.agent, a.action
		}
		if a.anomalous {
			rec.Anomaly = &evidence.Anomaly{Anomalous: true, Ratio: 3.5, BaselineUSD: evidence.USD(mustUSD(t, "0.1"))}
		}
		if _, err := w.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
}

// fixtureActions are six actions of three agents over two hours.
func fixtureActions() []fixtureAction {
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	return []fixtureAction{
		{id: "ev-1", agent: "research-agent", team: "growth", run: "run-1", action: "job.company.research",
			estimate: "0.5", actual: "0.123456789", decided: at(0), settled: at(2), tokensIn: 1000, tokensOut: 200},
		{id: "ev-2", agent: "research-agent", team: "growth", run: "run-1", action: "job.company.research",
			estimate: "0.5", actual: "0.876543211", decided: at(10), settled: at(12), tokensIn: 3000, tokensOut: 500, anomalous: true},
		{id: "ev-3", agent: "drafting-agent", team: "growth", run: "run-2", action: "job.draft.email",
			estimate: "0.2", actual: "0.05", decided: at(20), settled: at(21), tokensIn: 400, tokensOut: 100},
		{id: "ev-4", agent: "billing-agent", team: "finance", run: "run-3", action: "job.invoice.generate",
			estimate: "2", actual: "1.75", decided: at(30), settled: at(65), tokensIn: 9000, tokensOut: 2000},
		{id: "ev-5", agent: "drafting-agent", team: "growth", run: "run-2", action: "job.draft.email",
			estimate: "0.2", decided: at(70)}, // never settled
		{id: "ev-6", agent: "research-agent", team: "growth", run: "run-4", action: "job.company.research",
			estimate: "0.5", actual: "0.3", decided: at(80), settled: at(95), tokensIn: 2000, tokensOut: 300},
	}
}

// recordCount is the number of records fixtureActions writes: a decision each and five settlements.
const recordCount = 11

func TestEvidenceVerify(t *testing.T) {
	newChain := func(t *testing.T) string {
		dir := t.TempDir()
		// Small files, so the chain spans several and verify checks the links across them.
		writeChain(t, dir, evidence.Options{MaxFileBytes: 2000}, fixtureActions())
		return dir
	}
	lines := func(t *testing.T, path string) [][]byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		ls := bytes.SplitAfter(b, []byte("\n"))
		return ls[:len(ls)-1] // the empty remainder after the last newline
	}
	seqOf := func(t *testing.T, line []byte) uint64 {
		var r evidence.Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		return r.Seq
	}

	t.Run("intact chain", func(t *testing.T) {
		dir := newChain(t)
		code, out, errOut := runCLI(t, "evidence", "verify", dir)
		if code != exitOK {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "evidence-*.jsonl"))
		want := fmt.Sprintf("%s: %d file(s), %d record(s), chain ", dir, len(files), recordCount)
		if len(files) < 2 || !strings.HasPrefix(out, want) || !strings.Contains(out, fmt.Sprintf("last seq %d", recordCount)) ||
			!strings.HasSuffix(out, ": ok\n") {
			t.Errorf("output %q, want prefix %q, last seq %d and ok (%d files)", out, want, recordCount, len(files))
		}
	})

	tamper := []struct {
		name  string
		edit  func(t *testing.T, ls [][]byte) [][]byte
		kind  evidence.ProblemKind
		line  int
		seqAt int // the line (before editing) whose seq the problem names
	}{
		{"edited agent", func(t *testing.T, ls [][]byte) [][]byte {
			ls[2] = bytes.Replace(ls[2], []byte(`"research-agent"`), []byte(`"innocent-agent"`), 1)
			if !bytes.Contains(ls[2], []byte("innocent-agent")) {
				t.Fatalf("fixture line 3 has no agent to edit: %s", ls[2])
			}
			return ls
		}, evidence.ProblemEdited, 3, 3},
		{"deleted record", func(t *testing.T, ls [][]byte) [][]byte {
			return append(ls[:1:1], ls[2:]...)
		}, evidence.ProblemDeleted, 2, 3},
	}
	for _, tt := range tamper {
		t.Run(tt.name, func(t *testing.T) {
			dir := newChain(t)
			first := filepath.Join(dir, evidence.FileName(1))
			ls := lines(t, first)
			wantSeq := seqOf(t, ls[tt.seqAt-1])
			if err := os.WriteFile(first, bytes.Join(tt.edit(t, ls), nil), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, _ := runCLI(t, "evidence", "verify", dir)
			if code != exitFindings {
				t.Fatalf("exit %d, want %d\n%s", code, exitFindings, out)
			}
			want := fmt.Sprintf("%s:%d (seq %d): %s: ", evidence.FileName(1), tt.line, wantSeq, tt.kind)
			if !strings.HasPrefix(out, want) || !strings.Contains(out, "BROKEN: 1 problem(s)") {
				t.Errorf("output:\n%s\nwant it to start with %q and report one problem", out, want)
			}

			_, js, _ := runCLI(t, "evidence", "verify", dir, "-o", "json")
			var res verifyResult
			if err := json.Unmarshal([]byte(js), &res); err != nil {
				t.Fatal(err)
			}
			if res.OK || len(res.Problems) != 1 || res.Problems[0].Kind != string(tt.kind) ||
				res.Problems[0].Line != tt.line || res.Problems[0].Seq != wantSeq {
				t.Errorf("json %+v, want one %s at line %d seq %d", res, tt.kind, tt.line, wantSeq)
			}
		})
	}

	t.Run("expected end of chain", func(t *testing.T) {
		dir := newChain(t)
		_, js, _ := runCLI(t, "evidence", "verify", dir, "-o", "json")
		var res verifyResult
		if err := json.Unmarshal([]byte(js), &res); err != nil {
			t.Fatal(err)
		}
		hashArg := "--expect-hash=" + res.LastHash
		if code, out, _ := runCLI(t, "evidence", "verify", dir, "--expect-seq", fmt.Sprint(recordCount), hashArg); code != exitOK {
			t.Errorf("matching seq and hash: exit %d\n%s", code, out)
		}
		code, out, _ := runCLI(t, "evidence", "verify", dir, "--expect-seq", fmt.Sprint(recordCount+2))
		if want := fmt.Sprintf("truncated: chain ends at seq %d, expected at least seq %d", recordCount, recordCount+2); code != exitFindings || !strings.Contains(out, want) {
			t.Errorf("cut chain: exit %d, output %q, want %q", code, out, want)
		}
		code, out, _ = runCLI(t, "evidence", "verify", dir, "--expect-seq", "3", hashArg)
		if code != exitFindings || !strings.Contains(out, "unexpected_hash: record seq 3 has hash") {
			t.Errorf("wrong hash: exit %d, output %q", code, out)
		}
	})

	t.Run("unreadable directory", func(t *testing.T) {
		code, _, errOut := runCLI(t, "evidence", "verify", filepath.Join(t.TempDir(), "missing"))
		if code != exitIO {
			t.Errorf("exit %d, want %d (%s)", code, exitIO, errOut)
		}
	})
}

func TestEvidenceTail(t *testing.T) {
	dir := t.TempDir()
	acts := fixtureActions()
	writeChain(t, dir, evidence.Options{}, acts)

	t.Run("last records", func(t *testing.T) {
		code, out, _ := runCLI(t, "evidence", "tail", dir, "-n", "2")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		// The last two records: ev-5's decision and ev-6's decision; ev-6's settlement is last.
		if code != exitOK || len(lines) != 2 {
			t.Fatalf("exit %d, %d lines:\n%s", code, len(lines), out)
		}
		want0 := fmt.Sprintf("%s  #%d  decision  ev-6  agent=research-agent  team=growth  run=run-4  action=job.company.research  decision=allow_with_constraints  rule=throttle-llm-calls  estimate=$0.5",
			acts[5].decided.Format(time.RFC3339), recordCount-1)
		if !strings.HasPrefix(lines[0], want0) {
			t.Errorf("line 1:\n%s\nwant prefix\n%s", lines[0], want0)
		}
		want1 := fmt.Sprintf("#%d  settlement  ev-6  actual=$0.3  source=spans  spans=2  tokens=2000/300", recordCount)
		if !strings.Contains(lines[1], want1) {
			t.Errorf("line 2:\n%s\nwant\n%s", lines[1], want1)
		}
	})

	t.Run("kind filter as json lines", func(t *testing.T) {
		code, out, _ := runCLI(t, "evidence", "tail", dir, "--kind", "settlement", "-n", "100", "-o", "json")
		if code != exitOK {
			t.Fatalf("exit %d", code)
		}
		var ids []string
		for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
			var r evidence.Record
			if err := json.Unmarshal([]byte(l), &r); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			if r.Kind != evidence.KindSettlement || r.Hash == "" {
				t.Errorf("record %+v, want a hashed settlement", r)
			}
			ids = append(ids, r.EvidenceID)
		}
		var want []string
		for _, a := range acts {
			if !a.settled.IsZero() {
				want = append(want, a.id)
			}
		}
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("settlements %v, want %v", ids, want)
		}
	})

	t.Run("follow", func(t *testing.T) {
		dir := t.TempDir()
		writeChain(t, dir, evidence.Options{}, acts[:2]) // four records
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		out := &syncBuffer{}
		done := make(chan int)
		go func() { done <- runContext(ctx, []string{"evidence", "tail", dir, "-f", "-n", "1"}, out, out) }()

		// The last existing record first, then each new one once.
		waitFor(t, out, "#4  settlement  ev-2")
		writeChain(t, dir, evidence.Options{}, acts[2:3])
		waitFor(t, out, "#6  settlement  ev-3")
		cancel()
		if code := <-done; code != exitOK {
			t.Fatalf("exit %d\n%s", code, out.String())
		}
		var seqs []string
		for l := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
			seqs = append(seqs, strings.Fields(l)[1])
		}
		if fmt.Sprint(seqs) != "[#4 #5 #6]" {
			t.Errorf("printed %v, want [#4 #5 #6]:\n%s", seqs, out.String())
		}
	})

	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{{"-n", "-1"}, {"--kind", "audit"}} {
			if code, _, _ := runCLI(t, append([]string{"evidence", "tail", dir}, args...)...); code != exitUsage {
				t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
			}
		}
	})
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until out contains want; the deadline only guards against a hang.
func waitFor(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output never contained %q:\n%s", want, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
