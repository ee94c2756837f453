package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

const (
	filePrefix = "evidence-"
	fileSuffix = ".jsonl"
	hashHexLen = 2 * sha256.Size
	// hashMemberLen is the length of the trailing `,"hash":"<64 hex>"}` of a line.
	hashMemberLen = len(`,"hash":"`) + hashHexLen + len(`"}`)
	// maxLineBytes bounds one record line when reading.
	maxLineBytes = 16 << 20
)

// genesisHash is the prev_hash of a chain's first record.
var genesisHash = strings.Repeat("0", hashHexLen)

// FileName returns the name of the n-th evidence file of a directory, from 1.
func FileName(n int) string {
	return fmt.Sprintf("%s%06d%s", filePrefix, n, fileSuffix)
}

// parseFileName returns the number of an evidence file name, or false for any other name.
func parseFileName(name string) (int, bool) {
	digits, ok := strings.CutPrefix(name, filePrefix)
	if !ok {
		return 0, false
	}
	digits, ok = strings.CutSuffix(digits, fileSuffix)
	if !ok || len(digits) < 6 {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 1 || FileName(n) != name {
		return 0, false
	}
	return n, true
}

// listFiles returns the numbers of the evidence files in dir, ascending.
func listFiles(dir string) ([]int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing evidence directory: %w", err)
	}
	var nums []int
	for _, e := range ents {
		if n, ok := parseFileName(e.Name()); ok && e.Type().IsRegular() {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

// parsedLine is one record line, decoded, with its recomputed hash.
type parsedLine struct {
	rec      Record
	computed string // hex SHA-256 of the line without its hash member
}

// parseLine decodes a record line (without its newline) and recomputes its hash.
func parseLine(line []byte) (parsedLine, error) {
	n := len(line)
	if n < hashMemberLen+2 || !bytes.HasPrefix(line[n-hashMemberLen:], []byte(`,"hash":"`)) ||
		!bytes.HasSuffix(line, []byte(`"}`)) {
		return parsedLine{}, errors.New("line does not end with a hash member")
	}
	stored := line[n-hashMemberLen+len(`,"hash":"`) : n-2]
	for _, c := range stored {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return parsedLine{}, errors.New("hash is not lowercase hex")
		}
	}
	var p parsedLine
	if err := json.Unmarshal(line, &p.rec); err != nil {
		return parsedLine{}, fmt.Errorf("decoding record: %w", err)
	}
	if p.rec.Hash != string(stored) {
		return parsedLine{}, errors.New("hash member is ambiguous")
	}
	h := sha256.New()
	h.Write(line[:n-hashMemberLen])
	h.Write([]byte{'}'})
	p.computed = hex.EncodeToString(h.Sum(nil))
	return p, nil
}

// lastCompleteLine returns the last newline-terminated line of the first size bytes of f (without
// its newline) and the offset just past that newline. ok is false when there is no complete line.
// It reads backwards in chunks, holding at most one chunk and the line.
func lastCompleteLine(f io.ReaderAt, size int64) (line []byte, end int64, ok bool, err error) {
	nl, err := lastNewline(f, size, 0)
	if err != nil || nl < 0 {
		return nil, 0, false, err
	}
	start, err := lastNewline(f, nl, max(nl-maxLineBytes, 0))
	if err != nil {
		return nil, 0, false, err
	}
	if start < 0 && nl > maxLineBytes {
		return nil, 0, false, fmt.Errorf("last line is longer than %d bytes", maxLineBytes)
	}
	line = make([]byte, nl-(start+1))
	if _, err := f.ReadAt(line, start+1); err != nil {
		return nil, 0, false, err
	}
	return line, nl + 1, true, nil
}

// lastNewline returns the offset of the last '\n' in [from, to) of f, or -1.
func lastNewline(f io.ReaderAt, to, from int64) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for pos := to; pos > from; {
		start := max(pos-chunk, from)
		part := buf[:pos-start]
		if _, err := f.ReadAt(part, start); err != nil {
			return -1, err
		}
		if i := bytes.LastIndexByte(part, '\n'); i >= 0 {
			return start + int64(i), nil
		}
		pos = start
	}
	return -1, nil
}

// readLines calls fn for every complete line of r from its start, with its 1-based number and the
// offset just past it, and returns the bytes of an unterminated last line.
func readLines(r io.Reader, fn func(line []byte, num int, end int64) error) (tail []byte, err error) {
	br := newLineReader(r)
	var off int64
	for num := 1; ; num++ {
		line, err := br.next()
		if err == io.EOF {
			return line, nil
		}
		if err != nil {
			return nil, err
		}
		off += int64(len(line)) + 1
		if err := fn(line, num, off); err != nil {
			return nil, err
		}
	}
}

// lineReader splits a stream into lines without a length limit below maxLineBytes.
type lineReader struct {
	r    io.Reader
	buf  []byte
	head int
	eof  bool
}

func newLineReader(r io.Reader) *lineReader { return &lineReader{r: r, buf: make([]byte, 0, 64<<10)} }

// next returns the next line without its newline; at the end it returns the unterminated rest
// (possibly empty) with io.EOF. The line is valid until the next call.
func (l *lineReader) next() ([]byte, error) {
	for {
		if i := bytes.IndexByte(l.buf[l.head:], '\n'); i >= 0 {
			line := l.buf[l.head : l.head+i]
			l.head += i + 1
			return line, nil
		}
		if l.eof {
			rest := l.buf[l.head:]
			l.head = len(l.buf)
			return rest, io.EOF
		}
		if len(l.buf)-l.head > maxLineBytes {
			return nil, fmt.Errorf("line longer than %d bytes", maxLineBytes)
		}
		// Compact, grow and refill.
		n := copy(l.buf, l.buf[l.head:])
		l.buf, l.head = l.buf[:n], 0
		if cap(l.buf)-n < 32<<10 {
			l.buf = slices.Grow(l.buf, cap(l.buf))
		}
		m, err := l.r.Read(l.buf[n:cap(l.buf)])
		l.buf = l.buf[:n+m]
		if err == io.EOF {
			l.eof = true
		} else if err != nil {
			return nil, err
		}
	}
}

func filePath(dir string, n int) string { return filepath.Join(dir, FileName(n)) }
