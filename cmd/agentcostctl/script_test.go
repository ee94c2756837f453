package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/agentcost/agentcost/extension/budgetledgerextension"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
)

// The transcript tests: testdata/script/*.txtar are sessions of the real CLI, run by testscript
// with agentcostctl as a command (TestMain makes the test binary the CLI). Each run of the CLI
// leaves its transcript (arguments, stdout, stderr, exit code), and TestREADMESessions checks that
// every session README.md shows is one of them, output and exit code included.

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"agentcostctl": scriptMain})
}

// transcript is one run of the CLI inside a script.
type transcript struct {
	Args   []string `json:"args"`
	Stdout string   `json:"stdout"`
	Stderr string   `json:"stderr"`
	Code   int      `json:"code"`
}

// scriptMain is agentcostctl as the scripts exec it: the real CLI, its exit code left in
// $WORK/.agentcostctl-exit for the exitcode command, its transcript in $AGENTCOSTCTL_TRANSCRIPTS.
func scriptMain() {
	var stdout, stderr bytes.Buffer
	code := run(os.Args[1:], io.MultiWriter(os.Stdout, &stdout), io.MultiWriter(os.Stderr, &stderr))
	if work := os.Getenv("WORK"); work != "" {
		_ = os.WriteFile(filepath.Join(work, ".agentcostctl-exit"), []byte(strconv.Itoa(code)), 0o600)
	}
	if dir := os.Getenv("AGENTCOSTCTL_TRANSCRIPTS"); dir != "" {
		var id [8]byte
		_, _ = rand.Read(id[:])
		data, _ := json.Marshal(transcript{Args: os.Args[1:], Stdout: stdout.String(), Stderr: stderr.String(), Code: code})
		_ = os.WriteFile(filepath.Join(dir, hex.EncodeToString(id[:])+".json"), data, 0o600)
	}
	os.Exit(code)
}

// repoFiles are copied from the repository into each script's $WORK at the same paths, so the
// sessions run on the shipped files and cannot drift from them; the embedded upstream price map
// is copied as prices.json.
var repoFiles = []string{"deploy/single-node/policy.yaml", "deploy/single-node/config.yaml"}

// scriptParams runs testdata/script, recording transcripts into dir (none when empty).
func scriptParams(t *testing.T, dir string, extraEnv ...string) testscript.Params {
	return testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		Setup: func(env *testscript.Env) error {
			for _, f := range repoFiles {
				data, err := os.ReadFile(filepath.Join("..", "..", f))
				if err != nil {
					return err
				}
				dst := filepath.Join(env.WorkDir, f)
				if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(dst, data, 0o644); err != nil {
					return err
				}
			}
			upstream, err := filepath.Glob(filepath.Join("..", "..", "internal", "pricing", "data", "litellm-model-prices-*.json"))
			if err != nil || len(upstream) != 1 {
				return fmt.Errorf("the embedded upstream price map: %v %v", upstream, err)
			}
			data, err := os.ReadFile(upstream[0])
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(env.WorkDir, "prices.json"), data, 0o644); err != nil {
				return err
			}
			if dir != "" {
				env.Setenv("AGENTCOSTCTL_TRANSCRIPTS", dir)
			}
			for i := 0; i+1 < len(extraEnv); i += 2 {
				env.Setenv(extraEnv[i], extraEnv[i+1])
			}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode":           cmdExitCode,
			"mkevidence":         cmdMkEvidence,
			"collector-evidence": cmdCollectorEvidence,
			"collector-book":     cmdCollectorBook,
			"editline":           cmdEditLine,
			"deleteline":         cmdDeleteLine,
			"cutlines":           cmdCutLines,
			"capture":            cmdCapture,
		},
	}
}

// exitcode N: the last agentcostctl exited with code N.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: exitcode N")
	}
	data, err := os.ReadFile(filepath.Join(ts.Getenv("WORK"), ".agentcostctl-exit"))
	ts.Check(err)
	got := strings.TrimSpace(string(data))
	if got != args[0] {
		ts.Fatalf("agentcostctl exited %s, want %s", got, args[0])
	}
}

// tsFatal adapts a script to the fixture helpers' Helper/Fatal.
type tsFatal struct{ ts *testscript.TestScript }

func (f tsFatal) Helper()           {}
func (f tsFatal) Fatal(args ...any) { f.ts.Fatalf("%s", fmt.Sprint(args...)) }

// mkevidence DIR: the fixture chain (fixtureActions) written by the real evidence Writer.
func cmdMkEvidence(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: mkevidence DIR")
	}
	writeChain(tsFatal{ts}, ts.MkAbs(args[0]), evidence.Options{}, fixtureActions())
}

// collector-evidence CONFIG N: start the budgetledger extension from the collector config CONFIG
// (as agentcostctl --config reads it), append N decision records and stop, as a collector run
// does: the evidence chain and its anchor in the ledger.
func cmdCollectorEvidence(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: collector-evidence CONFIG N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	ext := startLedgerExtension(ts, args[0])
	w := ext.(budgetledgerextension.Provider).Evidence()
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for i := range n {
		_, err := w.Append(evidence.Record{Kind: evidence.KindDecision, EvidenceID: fmt.Sprintf("ev-%d", i+1), Time: at.Add(time.Duration(i) * time.Minute),
			AgentID: "research-agent", Action: "job.research.company", Decision: "allow", PolicyVersion: "v1.9.0"})
		ts.Check(err)
	}
	ts.Check(ext.Shutdown(context.Background()))
}

// collector-book CONFIG: book three priced spans of 2026-11-28 into the ledger of the collector
// config CONFIG, as the costledger exporter does.
func cmdCollectorBook(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: collector-book CONFIG")
	}
	ext := startLedgerExtension(ts, args[0])
	l := ext.(budgetledgerextension.Provider).Ledger()
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	_, err := l.Book(context.Background(), []ledger.Spend{
		{TraceID: "t1", SpanID: "1", Time: at, Agent: "research-agent", Team: "growth", Model: "gpt-4o", Cost: 35_000_000},
		{TraceID: "t1", SpanID: "2", Time: at, Agent: "research-agent", Team: "growth", Model: "o3", Cost: 1_500_000_000},
		{TraceID: "t2", SpanID: "1", Time: at, Agent: "drafting-agent", Model: "gpt-4o", Cost: 2},
	})
	ts.Check(err)
	ts.Check(ext.Shutdown(context.Background()))
}

// editline FILE LINE OLD NEW: replace OLD by NEW on line LINE (1-based) of FILE.
func cmdEditLine(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 4 {
		ts.Fatalf("usage: editline FILE LINE OLD NEW")
	}
	editLines(ts, args[0], func(lines []string) []string {
		i, err := strconv.Atoi(args[1])
		ts.Check(err)
		if !strings.Contains(lines[i-1], args[2]) {
			ts.Fatalf("line %d of %s has no %q", i, args[0], args[2])
		}
		lines[i-1] = strings.Replace(lines[i-1], args[2], args[3], 1)
		return lines
	})
}

// deleteline FILE LINE: delete line LINE (1-based) of FILE.
func cmdDeleteLine(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: deleteline FILE LINE")
	}
	editLines(ts, args[0], func(lines []string) []string {
		i, err := strconv.Atoi(args[1])
		ts.Check(err)
		return append(lines[:i-1], lines[i:]...)
	})
}

// cutlines FILE N: delete the last N lines of FILE.
func cmdCutLines(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: cutlines FILE N")
	}
	editLines(ts, args[0], func(lines []string) []string {
		n, err := strconv.Atoi(args[1])
		ts.Check(err)
		return lines[:len(lines)-n]
	})
}

func editLines(ts *testscript.TestScript, file string, edit func([]string) []string) {
	path := ts.MkAbs(file)
	data, err := os.ReadFile(path)
	ts.Check(err)
	lines := strings.SplitAfter(string(data), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	ts.Check(os.WriteFile(path, []byte(strings.Join(edit(lines), "")), 0o600))
}

// startLedgerExtension starts the budgetledger extension configured in the collector config
// file, relative paths taken from the script's working directory.
func startLedgerExtension(ts *testscript.TestScript, config string) extension.Extension {
	cfg, err := loadLedgerExtension(context.Background(), ts.MkAbs(config), "")
	ts.Check(err)
	cfg.Directory = ts.MkAbs(cfg.Directory)
	cfg.Evidence.Directory = ts.MkAbs(cfg.Evidence.Directory)
	f := budgetledgerextension.NewFactory()
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	ts.Check(err)
	ts.Check(ext.Start(context.Background(), componenttest.NewNopHost()))
	return ext
}

// capture NAME REGEXP: set $NAME to the first group of REGEXP in the last command's stdout (an id
// the server chose, for the next command).
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: capture NAME REGEXP")
	}
	re, err := regexp.Compile(args[1])
	ts.Check(err)
	m := re.FindStringSubmatch(ts.ReadFile("stdout"))
	if len(m) < 2 {
		ts.Fatalf("no match of %q in stdout", args[1])
	}
	ts.Setenv(args[0], m[1])
}
