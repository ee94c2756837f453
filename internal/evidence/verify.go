package evidence

import (
	"fmt"
	"os"
)

// ProblemKind classifies what Verify found wrong.
type ProblemKind string

// The problems Verify reports.
const (
	// ProblemEdited is a record whose content does not match its hash.
	ProblemEdited ProblemKind = "edited"
	// ProblemChainBreak is a record whose hash does not match its successor's prev_hash although
	// their seqs are consecutive: it was altered and re-hashed, or replaced. Also a first record
	// whose prev_hash is not the genesis value.
	ProblemChainBreak ProblemKind = "chain_break"
	// ProblemDeleted is a gap in seq: records missing before the reported one.
	ProblemDeleted ProblemKind = "deleted"
	// ProblemReordered is a record that appears after a record with a higher seq.
	ProblemReordered ProblemKind = "reordered"
	// ProblemDuplicate is a seq that appears twice.
	ProblemDuplicate ProblemKind = "duplicate"
	// ProblemMissingFile is a missing evidence file before the last one.
	ProblemMissingFile ProblemKind = "missing_file"
	// ProblemForeignChain is a record of another chain.
	ProblemForeignChain ProblemKind = "foreign_chain"
	// ProblemMalformed is a line that is not an evidence record.
	ProblemMalformed ProblemKind = "malformed"
	// ProblemTorn is a half-written line at the end of the last file, left by a crash; the Writer
	// truncates it when it next opens the directory.
	ProblemTorn ProblemKind = "torn"
)

// Problem is one finding of Verify, with where it is.
type Problem struct {
	Kind ProblemKind
	// File is the evidence file's name within the directory.
	File string
	// Line is the 1-based line in File; 0 for a missing file.
	Line int
	// Seq is the seq of the record concerned; 0 when unknown.
	Seq    uint64
	Detail string
}

// String formats the problem as "file:line (seq N): kind: detail".
func (p Problem) String() string {
	loc := p.File
	if p.Line > 0 {
		loc = fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	if p.Seq > 0 {
		loc = fmt.Sprintf("%s (seq %d)", loc, p.Seq)
	}
	return fmt.Sprintf("%s: %s: %s", loc, p.Kind, p.Detail)
}

// maxProblems bounds the problems a VerifyReport lists; ProblemCount counts them all.
const maxProblems = 1000

// VerifyReport is the result of Verify.
type VerifyReport struct {
	// Files and Records count the evidence files and the record lines read.
	Files   int
	Records int
	// ChainID is the chain id of the first record.
	ChainID string
	// LastSeq and LastHash are those of the last record read.
	LastSeq  uint64
	LastHash string
	// Problems lists the first 1000 problems in the order found; ProblemCount counts all.
	Problems     []Problem
	ProblemCount int
}

// OK reports that Verify found no problem.
func (r VerifyReport) OK() bool { return r.ProblemCount == 0 }

// Verify walks every evidence file of dir in order and checks the chain: each record's hash, seq
// continuity, prev_hash links (across files too), one chain id, and no missing file. It reports each
// problem with its file, line and seq. The error is for a directory it cannot read, not for a
// broken chain.
//
// A hash chain alone cannot show that records were removed from its end: compare LastSeq and
// LastHash with a copy kept elsewhere (the budget receiver also emits every record to a logs
// pipeline).
func Verify(dir string) (VerifyReport, error) {
	nums, err := listFiles(dir)
	if err != nil {
		return VerifyReport{}, err
	}
	if len(nums) == 0 {
		return VerifyReport{}, fmt.Errorf("no evidence files in %q", dir)
	}
	v := &verifier{succWait: map[uint64]link{}, predWait: map[uint64]link{}, missingProblem: -1}
	expect := 1
	for i, n := range nums {
		if n > expect {
			detail := "file is missing"
			if n-1 > expect {
				detail = fmt.Sprintf("files %s to %s are missing", FileName(expect), FileName(n-1))
			}
			v.missingProblem = v.add(Problem{Kind: ProblemMissingFile, File: FileName(expect), Detail: detail})
			v.afterMissing = true
		}
		expect = n + 1
		if err := v.file(filePath(dir, n), FileName(n), i == len(nums)-1); err != nil {
			return VerifyReport{}, err
		}
	}
	v.finish()
	v.rep.Files = len(nums)
	return v.rep, nil
}

type location struct {
	file string
	line int
}

// link is one end of a prev_hash link waiting for the other.
type link struct {
	hash string // the record's hash (succWait) or its prev_hash (predWait)
	at   location
}

// gap is a range of seqs not seen, first noticed at the record after it.
type gap struct {
	from, to uint64
	at       location
	next     uint64 // the seq of the record after the gap
	// explained gaps follow a missing file, which is reported instead.
	explained bool
}

type verifier struct {
	rep    VerifyReport
	maxSeq uint64
	gaps   []gap
	// succWait holds records whose successor has not been seen yet, by seq; predWait records whose
	// predecessor has not, by seq. In an intact chain each holds at most the last record.
	succWait, predWait map[uint64]link
	// afterMissing is set between a missing file and the next record, which explains the seq gap;
	// missingProblem is the index of that file's problem, which the record completes (or -1).
	afterMissing   bool
	missingProblem int
}

func (v *verifier) add(p Problem) int {
	v.rep.ProblemCount++
	if len(v.rep.Problems) >= maxProblems {
		return -1
	}
	v.rep.Problems = append(v.rep.Problems, p)
	return len(v.rep.Problems) - 1
}

func (v *verifier) file(path, name string, last bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening evidence file: %w", err)
	}
	defer f.Close()
	lines := 0
	tail, err := readLines(f, func(line []byte, num int, _ int64) error {
		lines = num
		v.line(line, location{name, num})
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if len(tail) > 0 {
		p := Problem{Kind: ProblemTorn, File: name, Line: lines + 1,
			Detail: fmt.Sprintf("%d bytes without a newline at the end of the last file (an interrupted append)", len(tail))}
		if !last {
			p.Kind, p.Detail = ProblemMalformed, fmt.Sprintf("%d bytes without a newline at the end of a file the chain has moved past", len(tail))
		}
		v.add(p)
	}
	return nil
}

func (v *verifier) line(line []byte, at location) {
	p, err := parseLine(line)
	if err != nil {
		v.add(Problem{Kind: ProblemMalformed, File: at.file, Line: at.line, Detail: err.Error()})
		return
	}
	rec := p.rec
	v.rep.Records++
	if v.rep.ChainID == "" {
		v.rep.ChainID = rec.ChainID
	} else if rec.ChainID != v.rep.ChainID {
		v.add(Problem{Kind: ProblemForeignChain, File: at.file, Line: at.line, Seq: rec.Seq,
			Detail: fmt.Sprintf("chain_id %q, not %q", rec.ChainID, v.rep.ChainID)})
	}
	edited := p.computed != rec.Hash
	seq := rec.Seq
	if edited {
		v.add(Problem{Kind: ProblemEdited, File: at.file, Line: at.line, Seq: seq,
			Detail: "the record's content does not match its hash"})
		// Its fields are not to be trusted: it stands where it is.
		seq = v.maxSeq + 1
	} else if seq == 0 {
		v.add(Problem{Kind: ProblemMalformed, File: at.file, Line: at.line, Detail: "record has no seq"})
		return
	}
	if v.afterMissing && v.missingProblem >= 0 && seq > v.maxSeq+1 {
		v.rep.Problems[v.missingProblem].Detail += fmt.Sprintf(" (records seq %d to %d)", v.maxSeq+1, seq-1)
	}

	switch {
	case seq == v.maxSeq+1:
		v.maxSeq = seq
	case seq > v.maxSeq+1:
		v.gaps = append(v.gaps, gap{from: v.maxSeq + 1, to: seq - 1, at: at, next: seq, explained: v.afterMissing})
		v.maxSeq = seq
	case v.fillGap(seq):
		v.add(Problem{Kind: ProblemReordered, File: at.file, Line: at.line, Seq: seq,
			Detail: fmt.Sprintf("appears after seq %d", v.maxSeq)})
	default:
		v.add(Problem{Kind: ProblemDuplicate, File: at.file, Line: at.line, Seq: seq,
			Detail: "this seq appeared before"})
		v.afterMissing, v.missingProblem = false, -1
		return
	}
	v.afterMissing, v.missingProblem = false, -1
	v.rep.LastSeq, v.rep.LastHash = seq, rec.Hash

	// The link to the predecessor (an edited record's prev_hash proves nothing).
	switch pred, ok := v.succWait[seq-1]; {
	case seq == 1:
		if rec.PrevHash != genesisHash && !edited {
			v.add(Problem{Kind: ProblemChainBreak, File: at.file, Line: at.line, Seq: seq,
				Detail: "the first record's prev_hash is not the genesis value"})
		}
	case ok:
		delete(v.succWait, seq-1)
		if rec.PrevHash != pred.hash && !edited {
			v.chainBreak(seq-1, pred.at, seq, at)
		}
	default:
		v.predWait[seq] = link{hash: rec.PrevHash, at: at}
	}
	// The link to the successor, if it came first.
	if succ, ok := v.predWait[seq+1]; ok {
		delete(v.predWait, seq+1)
		if succ.hash != rec.Hash {
			v.chainBreak(seq, at, seq+1, succ.at)
		}
	} else {
		v.succWait[seq] = link{hash: rec.Hash, at: at}
	}
}

func (v *verifier) chainBreak(seq uint64, at location, succ uint64, succAt location) {
	v.add(Problem{Kind: ProblemChainBreak, File: at.file, Line: at.line, Seq: seq,
		Detail: fmt.Sprintf("its hash is not the prev_hash of seq %d (%s:%d): it was altered and re-hashed, or replaced",
			succ, succAt.file, succAt.line)})
}

// fillGap removes seq from the gaps it falls in and reports whether it did.
func (v *verifier) fillGap(seq uint64) bool {
	for i, g := range v.gaps {
		if seq < g.from || seq > g.to {
			continue
		}
		switch {
		case g.from == g.to:
			v.gaps = append(v.gaps[:i], v.gaps[i+1:]...)
		case seq == g.from:
			v.gaps[i].from++
		case seq == g.to:
			v.gaps[i].to--
		default:
			rest := g
			rest.from = seq + 1
			v.gaps[i].to = seq - 1
			v.gaps = append(v.gaps[:i+1], append([]gap{rest}, v.gaps[i+1:]...)...)
		}
		return true
	}
	return false
}

func (v *verifier) finish() {
	for _, g := range v.gaps {
		if g.explained {
			continue
		}
		detail := fmt.Sprintf("record seq %d is missing before this record", g.from)
		if g.to > g.from {
			detail = fmt.Sprintf("records seq %d to %d are missing before this record", g.from, g.to)
		}
		v.add(Problem{Kind: ProblemDeleted, File: g.at.file, Line: g.at.line, Seq: g.next, Detail: detail})
	}
}
