package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// verifyResult is the JSON output of `evidence verify`.
type verifyResult struct {
	Dir          string          `json:"dir"`
	OK           bool            `json:"ok"`
	Files        int             `json:"files"`
	Records      int             `json:"records"`
	ChainID      string          `json:"chain_id,omitempty"`
	LastSeq      uint64          `json:"last_seq"`
	LastHash     string          `json:"last_hash,omitempty"`
	Problems     []verifyProblem `json:"problems"`
	ProblemCount int             `json:"problem_count"`
	// Anchor is the chain's head as anchored in the ledger (with --ledger or --redis).
	Anchor *ledger.EvidenceAnchor `json:"anchor,omitempty"`
}

type verifyProblem struct {
	Kind   string `json:"kind"`
	File   string `json:"file"`
	Line   int    `json:"line,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	Detail string `json:"detail"`
}

func evidenceVerify(e *env, path string, args []string) error {
	fs := newFlags(e, path, "[DIR] [--config collector.yaml | --ledger DIR | --redis HOST:PORT] [--expect-seq N --expect-hash HASH]", `
Checks the hash chain of an evidence directory: every record's hash, seq continuity, prev_hash links
across files, one chain id and no missing file. Each problem is printed as
"file:line (seq N): kind: detail" and the exit code is 1 when there is any.

A chain alone cannot show that records were cut from its end. The budgetledger extension anchors
each chain's durable head (seq and hash) in the ledger: --ledger (the embedded ledger's directory;
stop the collector first, the file has one user) or --redis checks the chain against its anchor.
--config takes both from the collector's configuration (its budgetledger extension's ledger,
password and TLS included, and evidence.directory when DIR is not given). --expect-seq and
--expect-hash compare with a copy kept elsewhere (the logs pipeline receives every record).`)
	expectSeq := fs.Uint64("expect-seq", 0, "the chain must reach at least seq `N`")
	expectHash := fs.String("expect-hash", "", "the record with --expect-seq (or the last record) must have this `HASH`")
	ledgerDir := fs.String("ledger", "", "check against the anchor in the embedded ledger in `DIR` (the budgetledger extension's directory)")
	redisAddr := fs.String("redis", "", "check against the anchor in the Redis ledger at `HOST:PORT`")
	prefix := fs.String("key-prefix", "agentcost:", "Redis key `PREFIX`")
	coll := addCollectorFlags(fs)
	out := fs.output("table", "json")
	pos, err := fs.parse(args, 0, 1)
	if err != nil {
		return err
	}
	if (*ledgerDir != "") && (*redisAddr != "") || coll.set() && (*ledgerDir != "" || *redisAddr != "") {
		return usageErr("%s: give at most one of --config, --ledger and --redis", path)
	}
	var ledgerCfg *ledger.Config
	switch {
	case coll.set():
		ext, err := coll.load(e.ctx)
		if err != nil {
			return err
		}
		ledgerCfg = &ext.Config
		if len(pos) == 0 {
			pos = []string{ext.Evidence.Directory}
		}
	case *redisAddr != "":
		cfg := ledger.NewDefaultConfig()
		cfg.Backend, cfg.Redis.Endpoint, cfg.Redis.KeyPrefix = ledger.BackendRedis, *redisAddr, *prefix
		ledgerCfg = &cfg
	case *ledgerDir != "":
		cfg := ledger.NewDefaultConfig()
		cfg.Directory = *ledgerDir
		ledgerCfg = &cfg
	}
	if len(pos) == 0 {
		return usageErr("%s: missing argument (usage: %s %s)", path, path, fs.synopsis)
	}
	dir := pos[0]
	rep, err := evidence.Verify(dir)
	if err != nil {
		return ioErr(fmt.Errorf("verifying %s: %w", dir, err))
	}
	res := verifyResult{Dir: dir, Files: rep.Files, Records: rep.Records, ChainID: rep.ChainID,
		LastSeq: rep.LastSeq, LastHash: rep.LastHash, Problems: []verifyProblem{}, ProblemCount: rep.ProblemCount}
	for _, p := range rep.Problems {
		res.Problems = append(res.Problems, verifyProblem{Kind: string(p.Kind), File: p.File, Line: p.Line, Seq: p.Seq, Detail: p.Detail})
	}
	if *expectSeq > 0 || *expectHash != "" {
		if p := checkExpected(dir, rep, *expectSeq, *expectHash); p != nil {
			res.Problems = append(res.Problems, *p)
			res.ProblemCount++
		}
	}
	if ledgerCfg != nil {
		anchor, p, err := checkAnchored(e.ctx, dir, rep, *ledgerCfg)
		if err != nil {
			return ioErr(err)
		}
		res.Anchor = anchor
		if p != nil {
			res.Problems = append(res.Problems, *p)
			res.ProblemCount++
		}
	}
	res.OK = res.ProblemCount == 0

	if *out == "json" {
		if err := writeJSON(e.stdout, res); err != nil {
			return ioErr(err)
		}
	} else {
		for _, p := range res.Problems {
			loc := p.File
			if p.Line > 0 {
				loc += ":" + strconv.Itoa(p.Line)
			}
			fmt.Fprintf(e.stdout, "%s (seq %d): %s: %s\n", loc, p.Seq, p.Kind, cell(p.Detail))
		}
		if more := res.ProblemCount - len(res.Problems); more > 0 {
			fmt.Fprintf(e.stdout, "... and %d more\n", more)
		}
		status := "ok"
		if !res.OK {
			status = fmt.Sprintf("BROKEN: %d problem(s)", res.ProblemCount)
		}
		fmt.Fprintf(e.stdout, "%s: %d file(s), %d record(s), chain %s, last seq %d, last hash %s: %s\n",
			dir, res.Files, res.Records, cell(res.ChainID), res.LastSeq, cell(res.LastHash), status)
	}
	if !res.OK {
		return findings()
	}
	return nil
}

// checkAnchored reads the chain's anchor from the ledger and compares the chain with it.
func checkAnchored(ctx context.Context, dir string, rep evidence.VerifyReport, cfg ledger.Config) (*ledger.EvidenceAnchor, *verifyProblem, error) {
	redis := cfg.Backend == ledger.BackendRedis
	if !redis {
		// Opening would create an empty ledger: a missing file is an error, not "no anchor".
		if _, err := os.Stat(filepath.Join(cfg.Directory, ledger.FileName)); err != nil {
			return nil, nil, fmt.Errorf("opening the ledger: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	l, err := ledger.Open(ctx, cfg, ledger.Settings{})
	if err != nil {
		return nil, nil, fmt.Errorf("opening the ledger: %w", err)
	}
	defer l.Close()
	an, ok := l.(ledger.EvidenceAnchorer)
	if !ok {
		return nil, nil, fmt.Errorf("the %s ledger keeps no evidence anchors", cfg.Backend)
	}
	var a ledger.EvidenceAnchor
	found := false
	if rep.ChainID != "" {
		if a, found, err = an.EvidenceAnchor(ctx, rep.ChainID); err != nil {
			return nil, nil, err
		}
	}
	if !found {
		all, err := an.EvidenceAnchors(ctx)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case rep.Records > 0:
			return nil, &verifyProblem{Kind: "unanchored", File: dir, Seq: rep.LastSeq,
				Detail: fmt.Sprintf("the ledger holds no anchor of chain %s", rep.ChainID)}, nil
		case !redis && len(all) > 0:
			return nil, &verifyProblem{Kind: "truncated", File: dir,
				Detail: fmt.Sprintf("the directory holds no record but the ledger anchors chain %s at seq %d: the evidence files were removed", all[0].ChainID, all[0].Seq)}, nil
		}
		return nil, nil, nil
	}
	return &a, checkExpected(dir, rep, a.Seq, a.Hash), nil
}

// checkExpected compares the chain with a seq and hash kept elsewhere; records cut from the end of
// the chain show only this way.
func checkExpected(dir string, rep evidence.VerifyReport, seq uint64, hash string) *verifyProblem {
	if seq == 0 {
		if hash != "" && rep.LastHash != hash {
			return &verifyProblem{Kind: "unexpected_last_hash", File: dir, Seq: rep.LastSeq,
				Detail: fmt.Sprintf("last record's hash is %s, expected %s", rep.LastHash, hash)}
		}
		return nil
	}
	if rep.LastSeq < seq {
		return &verifyProblem{Kind: "truncated", File: dir, Seq: rep.LastSeq,
			Detail: fmt.Sprintf("chain ends at seq %d, expected at least seq %d: records were removed from its end", rep.LastSeq, seq)}
	}
	if hash == "" {
		return nil
	}
	var found string
	errStop := errors.New("stop")
	err := evidence.Scan(dir, func(r evidence.Record) error {
		if r.Seq == seq {
			found = r.Hash
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return &verifyProblem{Kind: "malformed", File: dir, Seq: seq, Detail: err.Error()}
	}
	if found != hash {
		return &verifyProblem{Kind: "unexpected_hash", File: dir, Seq: seq,
			Detail: fmt.Sprintf("record seq %d has hash %q, expected %s", seq, found, hash)}
	}
	return nil
}

func evidenceTail(e *env, path string, args []string) error {
	fs := newFlags(e, path, "[DIR | --config collector.yaml] [-f] [-n N] [--kind KIND]", `
Prints the last evidence records of a directory, one line each (table) or as JSON lines. With -f it
keeps following the chain across rotations until interrupted. --config takes the directory from the
collector's configuration (its budgetledger extension's evidence.directory).`)
	follow := fs.Bool("f", false, "follow: keep printing records as they are appended")
	n := fs.Int("n", 10, "print the last `N` records (0 with -f: only new ones)")
	var kinds stringList
	fs.Var(&kinds, "kind", "only records of `KIND`: decision, approval or settlement (repeatable)")
	coll := addCollectorFlags(fs)
	out := fs.output("table", "json")
	pos, err := fs.parse(args, 0, 1)
	if err != nil {
		return err
	}
	if pos, err = evidenceDirArg(e, fs, coll, pos); err != nil {
		return err
	}
	if *n < 0 {
		return usageErr("-n %d: must not be negative", *n)
	}
	for _, k := range kinds {
		switch evidence.Kind(k) {
		case evidence.KindDecision, evidence.KindApproval, evidence.KindSettlement, evidence.KindFreeze, evidence.KindUnfreeze:
		default:
			return usageErr("--kind %q: want decision, approval, settlement, freeze or unfreeze", k)
		}
	}
	wanted := func(r evidence.Record) bool {
		if len(kinds) == 0 {
			return true
		}
		for _, k := range kinds {
			if evidence.Kind(k) == r.Kind {
				return true
			}
		}
		return false
	}
	emit := func(r evidence.Record) error {
		if *out == "json" {
			return writeJSONLine(e.stdout, r)
		}
		_, err := fmt.Fprintln(e.stdout, formatRecord(r))
		return err
	}
	dir := pos[0]

	ring := newRing[evidence.Record](*n)
	var lastSeq uint64
	err = evidence.Scan(dir, func(r evidence.Record) error {
		lastSeq = r.Seq
		if wanted(r) {
			ring.add(r)
		}
		return nil
	})
	if err != nil {
		return ioErr(fmt.Errorf("reading %s: %w", dir, err))
	}
	if !*follow {
		for _, r := range ring.items() {
			if err := emit(r); err != nil {
				return ioErr(err)
			}
		}
		return nil
	}

	// Follow from the start and print the wanted records from the oldest of the last N on, then
	// every new one: nothing appended between the scan and Follow's start is lost or repeated.
	from := uint64(math.MaxUint64)
	if items := ring.items(); len(items) > 0 {
		from = items[0].Seq
	}
	err = evidence.Follow(e.ctx, dir, evidence.FollowOptions{FromStart: true, Poll: 250 * time.Millisecond}, func(r evidence.Record) error {
		if !wanted(r) || r.Seq < from && r.Seq <= lastSeq {
			return nil
		}
		return emit(r)
	})
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return ioErr(fmt.Errorf("following %s: %w", dir, err))
	}
	return nil
}

// formatRecord is the one-line form of a record: time, seq, kind, evidence id and its kind's
// fields.
func formatRecord(r evidence.Record) string {
	parts := []string{r.Time.UTC().Format(time.RFC3339), "#" + strconv.FormatUint(r.Seq, 10), string(r.Kind), r.EvidenceID}
	kv := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	kv("agent", r.AgentID)
	kv("team", r.Team)
	kv("run", r.RunID)
	kv("action", r.Action)
	switch r.Kind {
	case evidence.KindDecision:
		kv("decision", r.Decision)
		kv("rule", r.RuleID)
		kv("estimate", usd(r.EstimatedCostUSD.Nanos()))
		kv("policy", r.PolicyVersion)
		kv("policy_sha256", r.PolicySHA256)
		if r.Constraints != nil {
			kv("constraints", "{"+formatEvidenceConstraints(*r.Constraints)+"}")
		}
	case evidence.KindApproval:
		kv("approval", r.ApprovalID)
		kv("outcome", r.Outcome)
		kv("reviewer", r.Reviewer)
		if r.CostCapUSD > 0 {
			kv("cost_cap", usd(r.CostCapUSD.Nanos()))
		}
		if r.ModifiedConstraints != nil {
			kv("constraints", "{"+formatEvidenceConstraints(*r.ModifiedConstraints)+"}")
		}
	case evidence.KindSettlement:
		kv("actual", usd(r.ActualCostUSD.Nanos()))
		kv("source", string(r.CostSource))
		kv("spans", strconv.FormatInt(r.SpansMatched, 10))
		if r.Tokens != nil {
			kv("tokens", fmt.Sprintf("%d/%d", r.Tokens.Input, r.Tokens.Output))
		}
		if r.Anomaly != nil && r.Anomaly.Anomalous {
			kv("anomaly", strconv.FormatFloat(r.Anomaly.Ratio, 'f', 1, 64)+"x")
		}
		if r.TokenCapBreach {
			kv("token_cap_breach", "true")
		}
	case evidence.KindFreeze, evidence.KindUnfreeze:
		kv("freeze", r.FreezeID)
		kv("scope", strings.TrimSuffix(r.Scope+":"+r.ScopeID, ":"))
		kv("reviewer", r.Reviewer)
		kv("reason", r.Reason)
	}
	for i, p := range parts {
		parts[i] = cell(p)
	}
	return strings.Join(parts, "  ")
}

func formatEvidenceConstraints(c decisionapi.Constraints) string {
	s := formatConstraints(c)
	if s == "-" {
		return ""
	}
	return s
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// ring keeps the last n items added.
type ring[T any] struct {
	n    int
	buf  []T
	next int
	full bool
}

func newRing[T any](n int) *ring[T] { return &ring[T]{n: n, buf: make([]T, 0, min(n, 1024))} }

func (r *ring[T]) add(v T) {
	if r.n == 0 {
		return
	}
	if len(r.buf) < r.n {
		r.buf = append(r.buf, v)
		return
	}
	r.buf[r.next] = v
	r.next = (r.next + 1) % r.n
	r.full = true
}

func (r *ring[T]) items() []T {
	if !r.full {
		return r.buf
	}
	return append(append([]T{}, r.buf[r.next:]...), r.buf[:r.next]...)
}

// evidenceDirArg returns the evidence directory argument: the one given, else with --config the
// budgetledger extension's evidence.directory. Both at once is a usage error.
func evidenceDirArg(e *env, fs *flagSet, coll collectorFlags, pos []string) ([]string, error) {
	switch {
	case coll.set() && len(pos) > 0:
		return nil, usageErr("%s: give DIR or --config, not both", fs.path)
	case coll.set():
		ext, err := coll.load(e.ctx)
		if err != nil {
			return nil, err
		}
		return []string{ext.Evidence.Directory}, nil
	case len(pos) == 0:
		return nil, usageErr("%s: missing argument (usage: %s %s)", fs.path, fs.path, fs.synopsis)
	}
	return pos, nil
}
