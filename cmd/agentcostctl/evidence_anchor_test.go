package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/agentcost/agentcost/extension/budgetledgerextension"
	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
)

// TestEvidenceVerifyAgainstAnchor: the collector's budgetledger extension writes ten records
// and stops; `evidence verify --ledger` accepts the chain, then fails it once its last three
// lines are deleted (which the chain alone cannot show).
func TestEvidenceVerifyAgainstAnchor(t *testing.T) {
	dir := t.TempDir()
	f := budgetledgerextension.NewFactory()
	cfg := f.CreateDefaultConfig().(*budgetledgerextension.Config)
	cfg.Directory = filepath.Join(dir, "ledger")
	cfg.Evidence.Directory = filepath.Join(dir, "evidence")
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	w := ext.(budgetledgerextension.Provider).Evidence()
	for i := range 10 {
		if _, err := w.Append(evidence.Record{Kind: evidence.KindDecision, EvidenceID: fmt.Sprintf("ev-%d", i), AgentID: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ext.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	code, js, _ := runCLI(t, "evidence", "verify", cfg.Evidence.Directory, "--ledger", cfg.Directory, "-o", "json")
	var res verifyResult
	if err := json.Unmarshal([]byte(js), &res); err != nil {
		t.Fatal(err)
	}
	if code != exitOK || res.Anchor == nil || res.Anchor.Seq != 10 || res.Anchor.Hash != res.LastHash {
		t.Fatalf("intact chain against its anchor: exit %d, %+v", code, res)
	}

	files, _ := filepath.Glob(filepath.Join(cfg.Evidence.Directory, "*.jsonl"))
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if err := os.WriteFile(files[0], bytes.Join(lines[:len(lines)-1-3], nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCLI(t, "evidence", "verify", cfg.Evidence.Directory); code != exitOK {
		t.Fatalf("the cut chain alone verifies ok (the finding); got exit %d\n%s", code, out)
	}
	code, out, _ := runCLI(t, "evidence", "verify", cfg.Evidence.Directory, "--ledger", cfg.Directory)
	if want := "truncated: chain ends at seq 7, expected at least seq 10"; code != exitFindings || !strings.Contains(out, want) {
		t.Fatalf("cut chain against its anchor: exit %d, output %q, want %q", code, out, want)
	}

	// The files replaced by an empty one, as a collector started over an emptied directory leaves.
	if err := os.WriteFile(files[0], nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runCLI(t, "evidence", "verify", cfg.Evidence.Directory, "--ledger", cfg.Directory)
	if code != exitFindings || !strings.Contains(out, "the evidence files were removed") {
		t.Fatalf("emptied directory against the anchor: exit %d, output %q", code, out)
	}
}

// TestEvidenceVerifyAgainstRedisAnchor: the same check against a Redis ledger's anchor.
func TestEvidenceVerifyAgainstRedisAnchor(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	f := budgetledgerextension.NewFactory()
	cfg := f.CreateDefaultConfig().(*budgetledgerextension.Config)
	cfg.Backend, cfg.Redis.Endpoint, cfg.Redis.KeyPrefix = "redis", srv.Addr, "verify:"
	cfg.Evidence.Directory = filepath.Join(dir, "evidence")
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := ext.(budgetledgerextension.Provider).Evidence().Append(evidence.Record{Kind: evidence.KindDecision, EvidenceID: fmt.Sprintf("ev-%d", i), AgentID: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ext.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	args := []string{"evidence", "verify", cfg.Evidence.Directory, "--redis", srv.Addr, "--key-prefix", "verify:"}
	if code, out, _ := runCLI(t, args...); code != exitOK {
		t.Fatalf("intact chain: exit %d\n%s", code, out)
	}
	files, _ := filepath.Glob(filepath.Join(cfg.Evidence.Directory, "*.jsonl"))
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if err := os.WriteFile(files[0], bytes.Join(lines[:len(lines)-2], nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runCLI(t, args...); code != exitFindings || !strings.Contains(out, "chain ends at seq 3, expected at least seq 4") {
		t.Fatalf("cut chain: exit %d\n%s", code, out)
	}
}
