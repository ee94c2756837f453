package policy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentcost/agentcost/internal/boundedfile"
)

// DefaultWatchInterval is how often a Watcher polls when WatcherConfig.Interval is zero.
const DefaultWatchInterval = 5 * time.Second

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	// Path is the policy file.
	Path string
	// Overlays are the overlay files, later ones winning.
	Overlays []string
	// Interval is the polling period (DefaultWatchInterval when zero).
	Interval time.Duration
	// MaxFileBytes bounds each policy and overlay file (boundedfile.DefaultLimit when zero or
	// negative). A larger file is refused by its size, before it is read or parsed.
	MaxFileBytes int64
	// OnError is told about a reload that failed (unreadable or invalid files); the old policy
	// stays in force. It is called once per distinct failure, not on every poll.
	OnError func(error)
	// OnReload is told about each newly swapped-in policy.
	OnReload func(*Policy)
	// Check, when set, vets a parsed policy against what only the caller knows (the receiver:
	// that every degrade target is in its price table); an error rejects the policy like a parse
	// error does.
	Check func(*Policy) error
}

// Watcher keeps the current policy and hot-reloads it when its files change. It polls: each
// poll reads the files and compares their SHA-256 with the last content examined, so a change
// within the same mtime second is not missed. A valid new policy is swapped in atomically; an
// invalid one leaves the old policy in force and is reported.
//
// Every file is bounded by MaxFileBytes, checked on its size before it is read. A rejected set of
// files (too large, unreadable content or invalid) is remembered by each file's size and
// modification time: while those stay the same the files are neither read nor parsed again.
type Watcher struct {
	cfg     WatcherConfig
	current atomic.Pointer[Policy]

	mu        sync.Mutex // serializes Reload
	lastSum   [sha256.Size]byte
	sumErr    error // why the content at lastSum was not loaded; nil when it is in force
	lastErr   string
	rejected  []fileStamp // the stamps of the files last rejected; nil when none is
	rejectErr error       // why they were rejected
	parses    atomic.Int64
}

// fileStamp is what a poll compares to skip a rejected file: its size and modification time.
type fileStamp struct {
	size  int64
	mtime time.Time
}

// NewWatcher loads the policy; it fails when the initial files are invalid.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultWatchInterval
	}
	w := &Watcher{cfg: cfg}
	data, sum, err := w.read()
	if err != nil {
		return nil, err
	}
	w.parses.Add(1)
	p, err := Parse(cfg.Path, data[0].Data, data[1:]...)
	if err == nil && cfg.Check != nil {
		err = cfg.Check(p)
	}
	if err != nil {
		return nil, err
	}
	w.current.Store(p)
	w.lastSum = sum
	return w, nil
}

// Policy returns the policy in force. It never returns nil.
func (w *Watcher) Policy() *Policy { return w.current.Load() }

// Reload checks the files now. It reports whether a new policy was swapped in, and the error
// when the files could not be read or are invalid (the old policy then stays).
func (w *Watcher) Reload() (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	stamps := w.stamps()
	if w.rejected != nil && stamps != nil && slices.Equal(stamps, w.rejected) {
		return false, w.rejectErr // unchanged since it was rejected (and reported)
	}
	w.rejected, w.rejectErr = nil, nil
	data, sum, err := w.read()
	if err != nil {
		err = fmt.Errorf("reloading policy %q (keeping version %s): %w", w.cfg.Path, w.Policy().Version(), err)
		if errors.Is(err, boundedfile.ErrTooLarge) {
			w.rejected, w.rejectErr = stamps, err
		}
		w.report(err)
		return false, err
	}
	if sum == w.lastSum {
		if w.sumErr == nil {
			w.lastErr = ""
		} else {
			w.rejected, w.rejectErr = stamps, w.sumErr
		}
		return false, w.sumErr // already reported
	}
	w.parses.Add(1)
	p, err := Parse(w.cfg.Path, data[0].Data, data[1:]...)
	if err == nil && w.cfg.Check != nil {
		err = w.cfg.Check(p)
	}
	if err != nil {
		err = fmt.Errorf("reloading policy %q (keeping version %s): %w", w.cfg.Path, w.Policy().Version(), err)
		w.lastSum, w.sumErr = sum, err
		w.rejected, w.rejectErr = stamps, err
		w.report(err)
		return false, err
	}
	w.lastSum, w.sumErr, w.lastErr = sum, nil, ""
	w.current.Store(p)
	if w.cfg.OnReload != nil {
		w.cfg.OnReload(p)
	}
	return true, nil
}

// Run polls until ctx is done.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = w.Reload()
		}
	}
}

func (w *Watcher) report(err error) {
	if err.Error() == w.lastErr {
		return
	}
	w.lastErr = err.Error()
	if w.cfg.OnError != nil {
		w.cfg.OnError(err)
	}
}

// read returns the policy file followed by its overlays, and the SHA-256 over all of them.
func (w *Watcher) read() ([]Source, [sha256.Size]byte, error) {
	paths := append([]string{w.cfg.Path}, w.cfg.Overlays...)
	srcs := make([]Source, len(paths))
	h := sha256.New()
	for i, path := range paths {
		data, err := boundedfile.Read(path, w.cfg.MaxFileBytes)
		if err != nil {
			return nil, [sha256.Size]byte{}, fmt.Errorf("reading policy file %q: %w", path, err)
		}
		srcs[i] = Source{Name: path, Data: data}
		hashPart(h, []byte(path))
		hashPart(h, data)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return srcs, sum, nil
}

// stamps returns the size and modification time of the policy file and each overlay, or nil when
// one cannot be stated (the read that follows reports why).
func (w *Watcher) stamps() []fileStamp {
	out := make([]fileStamp, 0, 1+len(w.cfg.Overlays))
	for _, path := range append([]string{w.cfg.Path}, w.cfg.Overlays...) {
		st, err := os.Stat(path)
		if err != nil {
			return nil
		}
		out = append(out, fileStamp{size: st.Size(), mtime: st.ModTime()})
	}
	return out
}
