package policy

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
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
	// OnError is told about a reload that failed (unreadable or invalid files); the old policy
	// stays in force. It is called once per distinct failure, not on every poll.
	OnError func(error)
	// OnReload is told about each newly swapped-in policy.
	OnReload func(*Policy)
}

// Watcher keeps the current policy and hot-reloads it when its files change. It polls: each
// poll reads the files and compares their SHA-256 with the last content examined, so a change
// within the same mtime second is not missed. A valid new policy is swapped in atomically; an
// invalid one leaves the old policy in force and is reported.
type Watcher struct {
	cfg     WatcherConfig
	current atomic.Pointer[Policy]

	mu      sync.Mutex // serializes Reload
	lastSum [sha256.Size]byte
	sumErr  error // why the content at lastSum was not loaded; nil when it is in force
	lastErr string
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
	p, err := Parse(cfg.Path, data[0].Data, data[1:]...)
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
	data, sum, err := w.read()
	if err != nil {
		w.report(err)
		return false, err
	}
	if sum == w.lastSum {
		if w.sumErr == nil {
			w.lastErr = ""
		}
		return false, w.sumErr // already reported
	}
	p, err := Parse(w.cfg.Path, data[0].Data, data[1:]...)
	if err != nil {
		err = fmt.Errorf("reloading policy %q (keeping version %s): %w", w.cfg.Path, w.Policy().Version(), err)
		w.lastSum, w.sumErr = sum, err
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
		data, err := os.ReadFile(path)
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
