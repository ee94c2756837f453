package evidence

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

var epoch = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func fixedClock() func() time.Time { return func() time.Time { return epoch } }

func decision(i int) Record {
	retries := int64(0)
	tokens := int64(50_000)
	return Record{
		Kind:             KindDecision,
		EvidenceID:       fmt.Sprintf("ev-%04d", i),
		RunID:            "run-1",
		AgentID:          "research-agent",
		Action:           "job.research.company",
		EstimatedCostUSD: USD(150_225),
		Decision:         "allow_with_constraints",
		RuleID:           "throttle-llm-calls",
		Reason:           "LLM calls throttled to prevent runaway spend",
		PolicyVersion:    "v1.9.0",
		Constraints:      &decisionapi.Constraints{MaxRetries: &retries, MaxTokens: &tokens, RateLimit: "20/hour"},
		DecisionID:       fmt.Sprintf("dec-%04d", i),
		TraceID:          "4bf92f3577b34da6a3ce929d0e0e4736",
	}
}

func open(t testing.TB, dir string, opts Options) (*Writer, OpenReport) {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedClock()
	}
	w, rep, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w, rep
}

func appendN(t testing.TB, w *Writer, from, n int) []Appended {
	t.Helper()
	var out []Appended
	for i := from; i < from+n; i++ {
		a, err := w.Append(decision(i))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func closeW(t testing.TB, w *Writer) {
	t.Helper()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// hashOfLine computes a line's hash as the package contract states it: SHA-256 of the line without
// its trailing hash member, closed with "}".
func hashOfLine(t testing.TB, line []byte) string {
	t.Helper()
	i := bytes.LastIndex(line, []byte(`,"hash":"`))
	if i < 0 {
		t.Fatalf("line has no hash member: %s", line)
	}
	sum := sha256.Sum256(append(slices.Clip(line[:i]), '}'))
	return hex.EncodeToString(sum[:])
}

func readLinesOf(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func writeLines(t testing.TB, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o640); err != nil {
		t.Fatal(err)
	}
}

func mustVerify(t testing.TB, dir string) VerifyReport {
	t.Helper()
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestAppendReopenResume(t *testing.T) {
	dir := t.TempDir()
	w, rep := open(t, dir, Options{})
	if !rep.NewChain || rep.LastSeq != 0 || rep.Truncated != nil || rep.File != filepath.Join(dir, FileName(1)) {
		t.Fatalf("first open report = %+v", rep)
	}
	first := appendN(t, w, 0, 3)
	closeW(t, w)

	for i, a := range first {
		if a.Record.Seq != uint64(i+1) || a.Record.ChainID != rep.ChainID {
			t.Fatalf("record %d: seq %d chain %q", i, a.Record.Seq, a.Record.ChainID)
		}
		wantPrev := genesisHash
		if i > 0 {
			wantPrev = first[i-1].Record.Hash
		}
		if a.Record.PrevHash != wantPrev {
			t.Fatalf("record %d prev_hash %s, want %s", i, a.Record.PrevHash, wantPrev)
		}
	}
	lines := readLinesOf(t, filepath.Join(dir, FileName(1)))
	for i, line := range lines {
		if got := hashOfLine(t, bytes.TrimSuffix(line, []byte("\n"))); got != first[i].Record.Hash {
			t.Fatalf("line %d hash %s, written record says %s", i+1, got, first[i].Record.Hash)
		}
		if int64(len(bytes.Join(lines[:i], nil))) != first[i].Offset {
			t.Fatalf("record %d offset %d does not match its line", i, first[i].Offset)
		}
	}
	if !bytes.HasPrefix(lines[0], []byte(`{"seq":1,"chain_id":"`+rep.ChainID+`","prev_hash":"`+genesisHash+`","kind":"decision"`)) {
		t.Fatalf("line 1 does not start with the chain fields: %s", lines[0])
	}

	w, rep2 := open(t, dir, Options{})
	if rep2.NewChain || rep2.ChainID != rep.ChainID || rep2.LastSeq != 3 || rep2.Truncated != nil {
		t.Fatalf("reopen report = %+v, want chain %s at seq 3", rep2, rep.ChainID)
	}
	next := appendN(t, w, 3, 1)[0]
	closeW(t, w)
	if next.Record.Seq != 4 || next.Record.PrevHash != first[2].Record.Hash {
		t.Fatalf("after reopen: seq %d prev %s, want 4 and %s", next.Record.Seq, next.Record.PrevHash, first[2].Record.Hash)
	}
	if v := mustVerify(t, dir); !v.OK() || v.Records != 4 || v.LastSeq != 4 || v.LastHash != next.Record.Hash || v.ChainID != rep.ChainID {
		t.Fatalf("Verify = %+v", v)
	}
}

func TestRecordJSON(t *testing.T) {
	zero := int64(0)
	rec := Record{
		Kind:                KindApproval,
		EvidenceID:          "ev-1",
		Time:                time.Date(2026, 3, 2, 11, 0, 0, 0, time.FixedZone("CET", 3600)),
		ApprovalID:          "apr-1",
		Reviewer:            "alice@example.com",
		Outcome:             "approved",
		ModifiedConstraints: &decisionapi.Constraints{MaxRetries: &zero},
		CostCapUSD:          USD(12*money.NanosPerUSD + 5),
	}
	w, _ := open(t, t.TempDir(), Options{})
	a, err := w.Append(rec)
	closeW(t, w)
	if err != nil {
		t.Fatal(err)
	}
	line := readLinesOf(t, a.File)[0]
	for _, want := range []string{
		`"cost_cap_usd":12.000000005`,
		`"modified_constraints":{"max_retries":0}`,
		`"time":"2026-03-02T10:00:00Z"`,
	} {
		if !bytes.Contains(line, []byte(want)) {
			t.Errorf("line lacks %s: %s", want, line)
		}
	}
	for _, absent := range []string{"actual_cost_usd", "estimated_cost_usd", "tokens", "anomaly", "decision\""} {
		if bytes.Contains(line, []byte(absent)) {
			t.Errorf("approval line carries %s: %s", absent, line)
		}
	}
	var back Record
	if err := json.Unmarshal(line, &back); err != nil {
		t.Fatal(err)
	}
	if back.CostCapUSD != rec.CostCapUSD || *back.ModifiedConstraints.MaxRetries != 0 || !back.Time.Equal(rec.Time) || back.Hash != a.Record.Hash {
		t.Fatalf("round trip = %+v", back)
	}

	var u USD
	for in, want := range map[string]money.Nanos{`0.000150225`: 150_225, `"1.5"`: 1_500_000_000, `1e-9`: 1} {
		if err := json.Unmarshal([]byte(in), &u); err != nil || u.Nanos() != want {
			t.Errorf("USD from %s = %d, %v; want %d", in, u, err, want)
		}
	}
	if err := json.Unmarshal([]byte(`-1`), &u); err == nil {
		t.Error("a negative amount decoded without error")
	}
}

func TestAppendRejectsInvalidRecords(t *testing.T) {
	w, _ := open(t, t.TempDir(), Options{})
	tests := []struct {
		name string
		edit func(*Record)
		want string
	}{
		{"no kind", func(r *Record) { r.Kind = "" }, "kind"},
		{"unknown kind", func(r *Record) { r.Kind = "audit" }, "kind"},
		{"no evidence id", func(r *Record) { r.EvidenceID = "" }, "evidence_id"},
		{"negative estimate", func(r *Record) { r.EstimatedCostUSD = -1 }, "estimated_cost_usd"},
		{"infinite ratio", func(r *Record) { r.Anomaly = &Anomaly{Ratio: math.Inf(1)} }, "encoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := decision(1)
			tt.edit(&rec)
			if _, err := w.Append(rec); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Append = %v, want an error about %s", err, tt.want)
			}
		})
	}
	// Rejected records take no seq.
	if a, err := w.Append(decision(1)); err != nil || a.Record.Seq != 1 {
		t.Fatalf("first valid append: seq %d, %v", a.Record.Seq, err)
	}
	closeW(t, w)
	if _, err := w.Append(decision(2)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close = %v, want ErrClosed", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		opts  Options
		field string
	}{
		{Options{Sync: "sometimes"}, "sync"},
		{Options{Sync: SyncInterval, SyncInterval: -time.Second}, "sync_interval"},
		{Options{MaxFileBytes: -1}, "max_file_bytes"},
	}
	for _, tt := range tests {
		if _, _, err := Open(t.TempDir(), tt.opts); err == nil || !strings.Contains(err.Error(), tt.field+" ") {
			t.Errorf("Open(%+v) = %v, want an error naming %s", tt.opts, err, tt.field)
		}
	}
}

func TestOneWriterPerDirectory(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{})
	if _, _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open = %v, want the directory in use", err)
	}
	closeW(t, w)
	w, _ = open(t, dir, Options{})
	closeW(t, w)
}

func TestRotationKeepsTheChain(t *testing.T) {
	dir := t.TempDir()
	const maxBytes = 2000
	w, rep := open(t, dir, Options{MaxFileBytes: maxBytes})
	written := appendN(t, w, 0, 20)
	closeW(t, w)

	nums, err := listFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(nums) < 3 {
		t.Fatalf("20 records of ~%d bytes in files of %d bytes made %d files", len(readLinesOf(t, written[0].File)[0]), maxBytes, len(nums))
	}
	var prevLast string
	for i, n := range nums {
		if n != i+1 {
			t.Fatalf("files %v are not numbered from 1", nums)
		}
		path := filepath.Join(dir, FileName(n))
		st, _ := os.Stat(path)
		if st.Size() > maxBytes {
			t.Fatalf("%s is %d bytes, above %d", path, st.Size(), maxBytes)
		}
		lines := readLinesOf(t, path)
		var firstRec Record
		if err := json.Unmarshal(lines[0], &firstRec); err != nil {
			t.Fatal(err)
		}
		if i > 0 && firstRec.PrevHash != prevLast {
			t.Fatalf("%s starts with prev_hash %s, the previous file ends with %s", path, firstRec.PrevHash, prevLast)
		}
		if firstRec.ChainID != rep.ChainID {
			t.Fatalf("%s is on chain %s, want %s", path, firstRec.ChainID, rep.ChainID)
		}
		prevLast = hashOfLine(t, bytes.TrimSuffix(lines[len(lines)-1], []byte("\n")))
	}
	if v := mustVerify(t, dir); !v.OK() || v.Records != 20 || v.Files != len(nums) || v.LastHash != written[19].Record.Hash {
		t.Fatalf("Verify = %+v", v)
	}

	// Reopening continues in the last file, then rotates on.
	w, rep2 := open(t, dir, Options{MaxFileBytes: maxBytes})
	if rep2.File != filepath.Join(dir, FileName(nums[len(nums)-1])) || rep2.LastSeq != 20 {
		t.Fatalf("reopen report = %+v", rep2)
	}
	appendN(t, w, 20, 10)
	closeW(t, w)
	if v := mustVerify(t, dir); !v.OK() || v.Records != 30 {
		t.Fatalf("Verify after reopen = %+v", v)
	}
}

// chainFixture writes 15 records over several files and returns the directory and its lines.
func chainFixture(t *testing.T) (string, [][][]byte) {
	t.Helper()
	dir := t.TempDir()
	w, _ := open(t, dir, Options{MaxFileBytes: 4000, Sync: SyncNever})
	appendN(t, w, 0, 15)
	closeW(t, w)
	nums, _ := listFiles(dir)
	files := make([][][]byte, len(nums))
	for i, n := range nums {
		files[i] = readLinesOf(t, filepath.Join(dir, FileName(n)))
	}
	if len(files) < 3 || len(files[1]) < 3 {
		t.Fatalf("fixture has %d files; the middle one %d lines", len(files), len(files[1]))
	}
	return dir, files
}

// rehash replaces a line's hash member with the hash of its (edited) content, as a forger would.
func rehash(t *testing.T, line []byte) []byte {
	body := bytes.TrimSuffix(line, []byte("\n"))
	i := bytes.LastIndex(body, []byte(`,"hash":"`))
	return fmt.Appendf(nil, `%s,"hash":"%s"}`+"\n", body[:i], hashOfLine(t, body))
}

func TestVerifyDetectsTampering(t *testing.T) {
	type want struct {
		kind ProblemKind
		file int // index of the file in the fixture
		line int // 1-based; 0 for a missing file
		seq  func(files [][][]byte) uint64
	}
	seqAt := func(f, l int) func([][][]byte) uint64 {
		return func(files [][][]byte) uint64 { return seqOfLine(files[f][l-1]) }
	}
	none := func([][][]byte) uint64 { return 0 }
	tests := []struct {
		name   string
		tamper func(t *testing.T, dir string, files [][][]byte)
		want   []want
	}{
		{
			name: "edited field",
			tamper: func(t *testing.T, dir string, files [][][]byte) {
				files[1][1] = bytes.Replace(files[1][1], []byte(`"estimated_cost_usd":0.000150225`), []byte(`"estimated_cost_usd":0.000000001`), 1)
				writeLines(t, filepath.Join(dir, FileName(2)), files[1])
			},
			want: []want{{ProblemEdited, 1, 2, seqAt(1, 2)}},
		},
		{
			name: "edited and re-hashed",
			tamper: func(t *testing.T, dir string, files [][][]byte) {
				files[1][1] = rehash(t, bytes.Replace(files[1][1], []byte(`research-agent`), []byte(`innocent-agent`), 1))
				writeLines(t, filepath.Join(dir, FileName(2)), files[1])
			},
			want: []want{{ProblemChainBreak, 1, 2, seqAt(1, 2)}},
		},
		{
			name: "deleted record",
			tamper: func(t *testing.T, dir string, files [][][]byte) {
				writeLines(t, filepath.Join(dir, FileName(2)), slices.Delete(slices.Clone(files[1]), 1, 2))
			},
			want: []want{{ProblemDeleted, 1, 2, seqAt(1, 3)}},
		},
		{
			name: "deleted first record of a file",
			tamper: func(t *testing.T, dir string, files [][][]byte) {
				writeLines(t, filepath.Join(dir, FileName(2)), files[1][1:])
			},
			want: []want{{ProblemDeleted, 1, 1, seqAt(1, 2)}},
		},
		{
			name: "deleted first record of the chain",
			tamper: func(t *testing.T, dir string, files [][][]byte) {
				writeLines(t, filepath.Join(dir, FileName(1)), files[0][1:])
			},
			want: []want{{ProblemDeleted, 0, 1, seqAt(0, 2)}},
		},
		{
			name: "swapped records",
			tamper: func(t *testing.T, dir string, files [][][]byte) {
				l := slices.Clone(files[1])
				l[0], l[1] = l[1], l[0]
				writeLines(t, filepath.Join(dir, FileName(2)), l)
			},
			// The record that now comes second (line 2) is out of order.
			want: []want{{ProblemReordered, 1, 2, seqAt(1, 1)}},
		},
		{
			name: "record moved to a later file",
			tamper: func(t *testing.T, dir string, files [][][]byte) {
				moved := files[0][0]
				writeLines(t, filepath.Join(dir, FileName(1)), files[0][1:])
				writeLines(t, filepath.Join(dir, FileName(3)), append(slices.Clone(files[2]), moved))
			},
			want: []want{{ProblemReordered, 2, -1, seqAt(0, 1)}},
		},
		{
			name: "duplicated record",
			tamper: func(t *testing.T, dir string, files [][][]byte) {
				l := slices.Insert(slices.Clone(files[1]), 2, files[1][1])
				writeLines(t, filepath.Join(dir, FileName(2)), l)
			},
			want: []want{{ProblemDuplicate, 1, 3, seqAt(1, 2)}},
		},
		{
			name: "missing middle file",
			tamper: func(t *testing.T, dir string, files [][][]byte) {
				os.Remove(filepath.Join(dir, FileName(2)))
			},
			want: []want{{ProblemMissingFile, 1, 0, none}},
		},
		{
			name: "missing first file",
			tamper: func(t *testing.T, dir string, files [][][]byte) {
				os.Remove(filepath.Join(dir, FileName(1)))
			},
			want: []want{{ProblemMissingFile, 0, 0, none}},
		},
		{
			name: "junk line",
			tamper: func(t *testing.T, dir string, files [][][]byte) {
				writeLines(t, filepath.Join(dir, FileName(2)), slices.Insert(slices.Clone(files[1]), 1, []byte("hello\n")))
			},
			want: []want{{ProblemMalformed, 1, 2, none}},
		},
		{
			name: "record from another chain",
			tamper: func(t *testing.T, dir string, files [][][]byte) {
				var r Record
				json.Unmarshal(files[1][1], &r)
				files[1][1] = rehash(t, bytes.Replace(files[1][1], []byte(r.ChainID), []byte("OTHERCHAIN"), 1))
				writeLines(t, filepath.Join(dir, FileName(2)), files[1])
			},
			want: []want{{ProblemForeignChain, 1, 2, seqAt(1, 2)}, {ProblemChainBreak, 1, 2, seqAt(1, 2)}},
		},
		{
			name: "torn last line",
			tamper: func(t *testing.T, dir string, files [][][]byte) {
				last := len(files) - 1
				path := filepath.Join(dir, FileName(last+1))
				writeLines(t, path, append(slices.Clone(files[last]), []byte(`{"seq":99,"chain_i`)))
			},
			want: []want{{ProblemTorn, -1, -1, none}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, files := chainFixture(t)
			if v := mustVerify(t, dir); !v.OK() {
				t.Fatalf("fixture does not verify: %v", v.Problems)
			}
			orig := make([][][]byte, len(files))
			for i := range files {
				orig[i] = slices.Clone(files[i])
			}
			tt.tamper(t, dir, files)
			v := mustVerify(t, dir)
			for _, p := range v.Problems {
				t.Log(p)
			}
			if v.OK() || v.ProblemCount != len(v.Problems) || len(v.Problems) != len(tt.want) {
				t.Fatalf("Verify found %d problems, want %d:\n%v", v.ProblemCount, len(tt.want), v.Problems)
			}
			for i, w := range tt.want {
				p := v.Problems[i]
				fi := w.file
				if fi < 0 {
					fi = len(orig) - 1
				}
				line := w.line
				if line < 0 { // the line after the last original line of that file
					line = len(orig[fi]) + 1
				}
				wantP := Problem{Kind: w.kind, File: FileName(fi + 1), Line: line, Seq: w.seq(orig)}
				if p.Kind != wantP.Kind || p.File != wantP.File || p.Line != wantP.Line || p.Seq != wantP.Seq {
					t.Errorf("problem %d = %v, want %s at %s:%d seq %d", i, p, wantP.Kind, wantP.File, wantP.Line, wantP.Seq)
				}
			}
		})
	}
}

func seqOfLine(line []byte) uint64 {
	var r Record
	json.Unmarshal(line, &r)
	return r.Seq
}

func TestTornLastLineIsTruncated(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{})
	written := appendN(t, w, 0, 3)
	closeW(t, w)

	path := filepath.Join(dir, FileName(1))
	st, _ := os.Stat(path)
	partial := []byte(`{"seq":4,"chain_id":"abc","prev_hash":"00`)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.Write(partial)
	f.Close()

	w, rep := open(t, dir, Options{})
	want := Truncation{File: path, Offset: st.Size(), Bytes: int64(len(partial))}
	if rep.Truncated == nil || *rep.Truncated != want {
		t.Fatalf("Truncated = %+v, want %+v", rep.Truncated, want)
	}
	if rep.LastSeq != 3 {
		t.Fatalf("resumed at seq %d, want 3", rep.LastSeq)
	}
	a := appendN(t, w, 3, 1)[0]
	closeW(t, w)
	if a.Record.Seq != 4 || a.Record.PrevHash != written[2].Record.Hash || a.Offset != st.Size() {
		t.Fatalf("appended after truncation: %+v", a)
	}
	if v := mustVerify(t, dir); !v.OK() || v.Records != 4 {
		t.Fatalf("Verify = %+v", v)
	}
}

func TestTornFragmentAloneInANewFile(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{})
	written := appendN(t, w, 0, 2)
	closeW(t, w)
	// A crash right after rotation, mid-way through the new file's first line.
	path := filepath.Join(dir, FileName(2))
	os.WriteFile(path, []byte(`{"seq":3,"ch`), 0o640)

	w, rep := open(t, dir, Options{})
	if rep.Truncated == nil || rep.Truncated.File != path || rep.Truncated.Bytes != 12 || rep.Truncated.Offset != 0 {
		t.Fatalf("Truncated = %+v", rep.Truncated)
	}
	if rep.LastSeq != 2 || rep.File != path {
		t.Fatalf("report = %+v, want resume at seq 2 into %s", rep, path)
	}
	a := appendN(t, w, 2, 1)[0]
	closeW(t, w)
	if a.Record.PrevHash != written[1].Record.Hash || a.File != path {
		t.Fatalf("appended %+v", a)
	}
	if v := mustVerify(t, dir); !v.OK() || v.Records != 3 || v.Files != 2 {
		t.Fatalf("Verify = %+v", v)
	}
}

func TestOpenRefusesACorruptLastRecord(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{})
	appendN(t, w, 0, 2)
	closeW(t, w)
	path := filepath.Join(dir, FileName(1))
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("not a record\n")
	f.Close()
	if _, _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open = %v, want an error naming %s", err, path)
	}
}

func TestConcurrentAppends(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncNever} {
		t.Run(string(policy), func(t *testing.T) {
			dir := t.TempDir()
			w, _ := open(t, dir, Options{Sync: policy, MaxFileBytes: 8 << 10})
			const workers, each = 8, 40
			seqs := make(chan uint64, workers*each)
			var wg sync.WaitGroup
			for g := range workers {
				wg.Go(func() {
					for i := range each {
						a, err := w.Append(decision(g*each + i))
						if err != nil {
							t.Error(err)
							return
						}
						seqs <- a.Record.Seq
					}
				})
			}
			wg.Wait()
			closeW(t, w)
			close(seqs)
			var got []uint64
			for s := range seqs {
				got = append(got, s)
			}
			slices.Sort(got)
			for i, s := range got {
				if s != uint64(i+1) {
					t.Fatalf("seqs handed out are not 1..%d: %v", workers*each, got)
				}
			}
			if v := mustVerify(t, dir); !v.OK() || v.Records != workers*each || v.Files < 2 {
				t.Fatalf("Verify = %+v", v)
			}
		})
	}
}

func TestSyncPolicies(t *testing.T) {
	t.Run("always", func(t *testing.T) {
		w, _ := open(t, t.TempDir(), Options{Sync: SyncAlways})
		defer closeW(t, w)
		appendN(t, w, 0, 3)
		if w.synced != w.written || w.written == 0 {
			t.Fatalf("after Append returned: synced %d of %d bytes", w.synced, w.written)
		}
	})
	t.Run("never", func(t *testing.T) {
		dir := t.TempDir()
		w, _ := open(t, dir, Options{Sync: SyncNever, MaxFileBytes: 1000})
		appendN(t, w, 0, 5)
		if w.synced != 0 {
			t.Fatalf("never policy synced %d bytes", w.synced)
		}
		if err := w.Sync(); err != nil || w.synced != w.written {
			t.Fatalf("explicit Sync: %v, synced %d of %d", err, w.synced, w.written)
		}
		closeW(t, w)
		if v := mustVerify(t, dir); !v.OK() || v.Records != 5 {
			t.Fatalf("Verify = %+v", v)
		}
	})
	t.Run("interval", func(t *testing.T) {
		dir := t.TempDir()
		w, _ := open(t, dir, Options{Sync: SyncInterval, SyncInterval: 5 * time.Millisecond})
		appendN(t, w, 0, 3)
		w.mu.Lock()
		gen := w.written
		w.mu.Unlock()
		deadline := time.Now().Add(10 * time.Second)
		for {
			w.syncMu.Lock()
			synced := w.synced
			w.syncMu.Unlock()
			if synced >= gen {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the background sync never ran: synced %d of %d", synced, gen)
			}
			time.Sleep(time.Millisecond)
		}
		closeW(t, w)
		if v := mustVerify(t, dir); !v.OK() || v.Records != 3 {
			t.Fatalf("Verify = %+v", v)
		}
	})
}

func TestScan(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{MaxFileBytes: 1500})
	written := appendN(t, w, 0, 9)
	closeW(t, w)
	nums, _ := listFiles(dir)
	last := filepath.Join(dir, FileName(nums[len(nums)-1]))
	f, _ := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":10,"tor`)
	f.Close()

	var got []Record
	if err := Scan(dir, func(r Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(written) {
		t.Fatalf("Scan read %d records, want %d", len(got), len(written))
	}
	for i, r := range got {
		if r.Seq != written[i].Record.Seq || r.Hash != written[i].Record.Hash || r.EvidenceID != written[i].Record.EvidenceID {
			t.Fatalf("record %d = seq %d %s, want seq %d %s", i, r.Seq, r.EvidenceID, written[i].Record.Seq, written[i].Record.EvidenceID)
		}
	}

	stop := errors.New("stop")
	n := 0
	if err := Scan(dir, func(Record) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Scan with a failing callback = %v after %d records", err, n)
	}

	first := filepath.Join(dir, FileName(1))
	lines := readLinesOf(t, first)
	writeLines(t, first, slices.Insert(lines, 1, []byte("junk\n")))
	if err := Scan(dir, func(Record) error { return nil }); err == nil || !strings.Contains(err.Error(), first+":2") {
		t.Fatalf("Scan over a junk line = %v, want an error at %s:2", err, first)
	}
}

func TestFollow(t *testing.T) {
	dir := t.TempDir()
	w, _ := open(t, dir, Options{MaxFileBytes: 1500, Sync: SyncNever})
	appendN(t, w, 0, 3)

	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan uint64, 100)
	done := make(chan error, 1)
	go func() {
		done <- Follow(ctx, dir, FollowOptions{Last: 2, Poll: 2 * time.Millisecond}, func(r Record) error {
			got <- r.Seq
			return nil
		})
	}()
	expect := func(want ...uint64) {
		t.Helper()
		for _, s := range want {
			select {
			case g := <-got:
				if g != s {
					t.Fatalf("Follow delivered seq %d, want %d", g, s)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("Follow did not deliver seq %d", s)
			}
		}
	}
	expect(2, 3)
	// Enough records to rotate at least twice while following.
	appendN(t, w, 3, 10)
	expect(4, 5, 6, 7, 8, 9, 10, 11, 12, 13)
	closeW(t, w)
	if nums, _ := listFiles(dir); len(nums) < 3 {
		t.Fatalf("only %d files: the test did not cross a rotation", len(nums))
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow returned %v, want context.Canceled", err)
	}
	select {
	case s := <-got:
		t.Fatalf("unexpected extra seq %d", s)
	default:
	}

	// From the start of an empty directory that fills later.
	dir = t.TempDir()
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() {
		done <- Follow(ctx, dir, FollowOptions{Poll: 2 * time.Millisecond}, func(r Record) error {
			got <- r.Seq
			return nil
		})
	}()
	time.Sleep(10 * time.Millisecond)
	w, _ = open(t, dir, Options{})
	appendN(t, w, 0, 2)
	closeW(t, w)
	expect(1, 2)
}

func BenchmarkAppend(b *testing.B) {
	for _, policy := range []SyncPolicy{SyncNever, SyncAlways} {
		b.Run(string(policy), func(b *testing.B) {
			w, _ := open(b, b.TempDir(), Options{Sync: policy})
			defer closeW(b, w)
			rec := decision(1)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.Append(rec); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
	b.Run("always-parallel", func(b *testing.B) {
		w, _ := open(b, b.TempDir(), Options{Sync: SyncAlways})
		defer closeW(b, w)
		rec := decision(1)
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := w.Append(rec); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}

func TestLastCompleteLine(t *testing.T) {
	long := strings.Repeat("x", 150_000) // spans three read chunks
	tests := []struct {
		data  string
		line  string
		found bool
	}{
		{"", "", false},
		{"torn", "", false},
		{"\n", "", true},
		{"a\n", "a", true},
		{"a\nb\n", "b", true},
		{"a\nbc", "a", true},
		{"a\n" + long + "\n" + long, long, true},
		{long + "\n", long, true},
		{long + "\nshort\n", "short", true},
	}
	for i, tt := range tests {
		line, end, found, err := lastCompleteLine(strings.NewReader(tt.data), int64(len(tt.data)))
		if err != nil || found != tt.found || string(line) != tt.line {
			t.Errorf("case %d: got %.20q found=%v err=%v, want %.20q found=%v", i, line, found, err, tt.line, tt.found)
			continue
		}
		if wantEnd := int64(strings.LastIndexByte(tt.data, '\n') + 1); found && end != wantEnd {
			t.Errorf("case %d: end %d, want %d", i, end, wantEnd)
		}
	}
}
