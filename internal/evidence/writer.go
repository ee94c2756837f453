package evidence

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// SyncPolicy says when the Writer fsyncs.
type SyncPolicy string

// The fsync policies.
const (
	// SyncAlways fsyncs before Append returns; concurrent appends share one fsync.
	SyncAlways SyncPolicy = "always"
	// SyncInterval fsyncs in the background every Options.SyncInterval. A process crash loses
	// nothing (every record is written to the file before Append returns); an OS crash or power
	// loss can lose the last interval.
	SyncInterval SyncPolicy = "interval"
	// SyncNever leaves flushing to the OS, except on rotation and Close.
	SyncNever SyncPolicy = "never"
)

// Options configure a Writer. Zero fields take their defaults.
type Options struct {
	// Sync is the fsync policy; default always.
	Sync SyncPolicy
	// SyncInterval is the fsync period of the interval policy; default 1s.
	SyncInterval time.Duration
	// MaxFileBytes is the size past which the Writer continues the chain in a new file; default
	// 64 MiB. A single record larger than it gets a file of its own.
	MaxFileBytes int64
	// Now is the clock that stamps records without a time; default time.Now.
	Now func() time.Time
	// OnDurable, when set, is told the chain's head each time records become durable: after each
	// fsync under SyncAlways and SyncInterval (one call per shared fsync), after each append under
	// SyncNever (a process crash keeps what was written). It is called without the Writer's locks
	// but on the appending goroutine, so it must not block (the budgetledger extension hands the
	// head to a goroutine that anchors it in the ledger).
	OnDurable func(Head)
}

// Head is the last record of a chain: what the ledger anchors.
type Head struct {
	// ChainID is the chain's id.
	ChainID string
	// Seq is the last record's seq; 0 for a chain without records.
	Seq uint64
	// Hash is the last record's hash (the genesis hash for a chain without records).
	Hash string
}

// Validate reports the first invalid option, naming it.
func (o Options) Validate() error {
	switch o.Sync {
	case "", SyncAlways, SyncInterval, SyncNever:
	default:
		return fmt.Errorf("sync must be always, interval or never, got %q", o.Sync)
	}
	if o.SyncInterval < 0 {
		return fmt.Errorf("sync_interval must not be negative, got %s", o.SyncInterval)
	}
	if o.MaxFileBytes < 0 {
		return fmt.Errorf("max_file_bytes must not be negative, got %d", o.MaxFileBytes)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Sync == "" {
		o.Sync = SyncAlways
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = time.Second
	}
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = 64 << 20
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// OpenReport tells what Open found.
type OpenReport struct {
	// ChainID is the chain the Writer continues (or started).
	ChainID string
	// NewChain reports that the directory held no record, so a new chain was started.
	NewChain bool
	// LastSeq is the seq of the last complete record found (0 for a new chain).
	LastSeq uint64
	// LastHash is that record's hash (empty for a new chain).
	LastHash string
	// File is the path of the file the next record goes to.
	File string
	// Truncated describes the half-written last line removed after a crash; nil when there was none.
	Truncated *Truncation
}

// Truncation describes a half-written line removed from the end of an evidence file.
type Truncation struct {
	// File is the path of the truncated file.
	File string
	// Offset is the file's new size: where the removed bytes began.
	Offset int64
	// Bytes is how many bytes were removed.
	Bytes int64
}

// Appended is the outcome of one Append.
type Appended struct {
	// Record is the record as written, chain fields and hash included.
	Record Record
	// File is the path of the file it was written to.
	File string
	// Offset is where its line begins in File.
	Offset int64
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("evidence writer is closed")

// Writer appends records to the hash chain of one directory. It is safe for concurrent use; one
// Writer per directory (Open locks the directory).
type Writer struct {
	dir  string
	opts Options
	lock *os.File

	mu       sync.Mutex
	f        *os.File
	fileNum  int
	size     int64 // of the current file
	seq      uint64
	prevHash string
	chainID  string
	written  uint64 // bytes written since Open, across files: the sync generation
	buf      []byte
	err      error // sticky: the chain can no longer be extended safely
	closed   bool

	syncMu sync.Mutex
	synced uint64 // generation known durable; guarded by syncMu

	stop chan struct{}
	done chan struct{}
}

// Open opens the evidence directory dir (creating it if needed) and resumes its chain from the last
// complete record, or starts a new chain when it holds none. A half-written last line, left by a
// crash in the middle of an append, is truncated and reported. Open does not verify the chain; see
// Verify.
func Open(dir string, opts Options) (*Writer, OpenReport, error) {
	if err := opts.Validate(); err != nil {
		return nil, OpenReport{}, fmt.Errorf("invalid evidence options: %w", err)
	}
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, OpenReport{}, fmt.Errorf("creating evidence directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, OpenReport{}, err
	}
	w := &Writer{dir: dir, opts: opts, lock: lock}
	rep, err := w.resume()
	if err != nil {
		lock.Close()
		return nil, OpenReport{}, err
	}
	if opts.Sync == SyncInterval {
		w.stop, w.done = make(chan struct{}), make(chan struct{})
		go w.syncLoop()
	}
	return w, rep, nil
}

// resume finds the chain's state and opens the file to append to.
func (w *Writer) resume() (OpenReport, error) {
	nums, err := listFiles(w.dir)
	if err != nil {
		return OpenReport{}, err
	}
	var rep OpenReport
	if len(nums) == 0 {
		nums = []int{1}
	}
	last := nums[len(nums)-1]
	f, err := os.OpenFile(filePath(w.dir, last), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return OpenReport{}, fmt.Errorf("opening evidence file: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()

	// Walk back from the last file to the last complete record; only the last file may end in a
	// half-written line, and it is cut at its last newline.
	for i := len(nums) - 1; i >= 0; i-- {
		path := filePath(w.dir, nums[i])
		line, end, found, size, err := lastLineOf(path)
		if err != nil {
			return OpenReport{}, err
		}
		if i == len(nums)-1 && end < size {
			if err := f.Truncate(end); err != nil {
				return OpenReport{}, fmt.Errorf("truncating the half-written end of %s: %w", path, err)
			}
			if err := f.Sync(); err != nil {
				return OpenReport{}, fmt.Errorf("syncing %s: %w", path, err)
			}
			rep.Truncated = &Truncation{File: path, Offset: end, Bytes: size - end}
		}
		if !found {
			continue
		}
		p, err := parseLine(line)
		if err != nil {
			return OpenReport{}, fmt.Errorf("resuming the evidence chain: last record of %s (ending at offset %d): %w", path, end, err)
		}
		if p.rec.Seq == 0 || p.rec.ChainID == "" {
			return OpenReport{}, fmt.Errorf("resuming the evidence chain: last record of %s (ending at offset %d) has no seq or chain_id", path, end)
		}
		w.seq, w.prevHash, w.chainID = p.rec.Seq, p.rec.Hash, p.rec.ChainID
		break
	}
	if w.chainID == "" {
		w.chainID, w.prevHash, rep.NewChain = rand.Text(), genesisHash, true
	}
	st, err := f.Stat()
	if err != nil {
		return OpenReport{}, fmt.Errorf("opening evidence file: %w", err)
	}
	if rep.NewChain && w.opts.Sync != SyncNever {
		if err := syncDir(w.dir); err != nil {
			return OpenReport{}, fmt.Errorf("syncing evidence directory: %w", err)
		}
	}
	w.f, w.fileNum, w.size = f, last, st.Size()
	rep.ChainID, rep.LastSeq, rep.File = w.chainID, w.seq, f.Name()
	if w.seq > 0 {
		rep.LastHash = w.prevHash
	}
	ok = true
	return rep, nil
}

// lastLineOf returns the last complete line of the file at path, the offset past it and the size.
func lastLineOf(path string) (line []byte, end int64, found bool, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, false, 0, fmt.Errorf("opening evidence file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, false, 0, fmt.Errorf("reading %s: %w", path, err)
	}
	line, end, found, err = lastCompleteLine(f, st.Size())
	if err != nil {
		return nil, 0, false, 0, fmt.Errorf("reading the end of %s: %w", path, err)
	}
	return line, end, found, st.Size(), nil
}

// Dir returns the directory the Writer's chain is kept in (read it with Scan and Verify).
func (w *Writer) Dir() string { return w.dir }

// ChainID returns the id of the Writer's chain.
func (w *Writer) ChainID() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.chainID
}

// Append chains rec and writes it as one line. It assigns seq, chain_id, prev_hash and hash
// (ignoring any the caller set) and the time when rec has none. Under SyncAlways it returns once
// the record is durable. After a failed write that could not be undone, or a failed fsync, every
// later Append fails: reopen the directory.
func (w *Writer) Append(rec Record) (Appended, error) {
	if err := rec.validate(); err != nil {
		return Appended{}, fmt.Errorf("invalid evidence record: %w", err)
	}
	rec.Seq, rec.ChainID, rec.PrevHash, rec.Hash = 0, "", "", ""
	if rec.Time.IsZero() {
		rec.Time = w.opts.Now()
	}
	rec.Time = rec.Time.UTC()
	body, err := json.Marshal(&rec)
	if err != nil {
		return Appended{}, fmt.Errorf("encoding evidence record: %w", err)
	}
	if len(body) > maxLineBytes-1024 {
		return Appended{}, fmt.Errorf("evidence record is %d bytes, above the limit of %d", len(body), maxLineBytes-1024)
	}

	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return Appended{}, ErrClosed
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return Appended{}, err
	}
	seq, prev := w.seq+1, w.prevHash
	b := append(w.buf[:0], `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"chain_id":"`...)
	b = append(b, w.chainID...)
	b = append(b, `","prev_hash":"`...)
	b = append(b, prev...)
	b = append(b, `",`...)
	b = append(b, body[1:]...)
	sum := sha256.Sum256(b)
	hash := hex.EncodeToString(sum[:])
	b = append(b[:len(b)-1], `,"hash":"`...)
	b = append(b, hash...)
	b = append(b, "\"}\n"...)
	w.buf = b

	if w.size > 0 && w.size+int64(len(b)) > w.opts.MaxFileBytes {
		if err := w.rotateLocked(); err != nil {
			w.mu.Unlock()
			return Appended{}, err
		}
	}
	off := w.size
	if _, err := w.f.Write(b); err != nil {
		werr := fmt.Errorf("writing evidence record seq %d to %s: %w", seq, w.f.Name(), err)
		if terr := w.f.Truncate(off); terr != nil {
			w.err = fmt.Errorf("%w; undoing the partial write failed: %v", werr, terr)
		}
		w.mu.Unlock()
		return Appended{}, werr
	}
	w.size += int64(len(b))
	w.written += uint64(len(b))
	w.seq, w.prevHash = seq, hash
	gen, file, chainID := w.written, w.f.Name(), w.chainID
	w.mu.Unlock()

	rec.Seq, rec.ChainID, rec.PrevHash, rec.Hash = seq, chainID, prev, hash
	out := Appended{Record: rec, File: file, Offset: off}
	switch {
	case w.opts.Sync == SyncAlways:
		if err := w.syncTo(gen); err != nil {
			return out, err
		}
	case w.opts.Sync == SyncNever && w.opts.OnDurable != nil:
		w.opts.OnDurable(Head{ChainID: chainID, Seq: seq, Hash: hash})
	}
	return out, nil
}

// rotateLocked continues the chain in the next file. The caller holds w.mu.
func (w *Writer) rotateLocked() error {
	next := w.fileNum + 1
	path := filePath(w.dir, next)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("rotating evidence to %s: %w", path, err)
	}
	if w.opts.Sync != SyncNever {
		// The old file is durable before the chain moves on (a pending syncTo that finds it closed
		// relies on this), and so is the new file's name.
		if err := w.f.Sync(); err != nil {
			f.Close()
			os.Remove(path)
			w.err = fmt.Errorf("syncing %s before rotation: %w", w.f.Name(), err)
			return w.err
		}
		if err := syncDir(w.dir); err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("syncing evidence directory: %w", err)
		}
	}
	w.f.Close()
	w.f, w.fileNum, w.size = f, next, 0
	return nil
}

// syncTo returns once every byte of generation gen is durable, sharing one fsync among the
// appends waiting for it.
func (w *Writer) syncTo(gen uint64) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if w.synced >= gen {
		return nil
	}
	w.mu.Lock()
	f, target, broken := w.f, w.written, w.err
	head := Head{ChainID: w.chainID, Seq: w.seq, Hash: w.prevHash}
	w.mu.Unlock()
	if broken != nil {
		return broken
	}
	// A file closed meanwhile was synced by the rotation or Close that closed it.
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		err = fmt.Errorf("syncing %s: %w", f.Name(), err)
		w.mu.Lock()
		if w.err == nil {
			w.err = err
		}
		w.mu.Unlock()
		return err
	}
	w.synced = target
	if w.opts.OnDurable != nil && head.Seq > 0 {
		w.opts.OnDurable(head)
	}
	return nil
}

// Head returns the chain's head: its last record written (durable once Sync or Close returned).
func (w *Writer) Head() Head {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Head{ChainID: w.chainID, Seq: w.seq, Hash: w.prevHash}
}

// Sync makes every record appended so far durable, whatever the policy.
func (w *Writer) Sync() error {
	w.mu.Lock()
	gen, closed := w.written, w.closed
	w.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return w.syncTo(gen)
}

func (w *Writer) syncLoop() {
	defer close(w.done)
	t := time.NewTicker(w.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			gen := w.written
			w.mu.Unlock()
			_ = w.syncTo(gen) // a failure is sticky and surfaces at the next Append
		}
	}
}

// Close fsyncs and closes the current file and releases the directory. Closing twice is a no-op.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	if w.stop != nil {
		close(w.stop)
		<-w.done
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.lock.Close()
	if err != nil {
		return fmt.Errorf("closing evidence file %s: %w", w.f.Name(), err)
	}
	return nil
}
