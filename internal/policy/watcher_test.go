package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

type recorder struct {
	mu      sync.Mutex
	errs    []error
	reloads []*Policy
}

func (r *recorder) onError(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }
func (r *recorder) onReload(p *Policy) {
	r.mu.Lock()
	r.reloads = append(r.reloads, p)
	r.mu.Unlock()
}

func (r *recorder) counts() (errs, reloads int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.errs), len(r.reloads)
}

func TestWatcherReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	overlay := filepath.Join(dir, "timeouts.yaml")
	writeFile(t, path, "version: v1\npolicy_version: one\n")
	writeFile(t, overlay, "topics: {job.a: {timeout_seconds: 10}}\n")
	var rec recorder
	w, err := NewWatcher(WatcherConfig{Path: path, Overlays: []string{overlay}, OnError: rec.onError, OnReload: rec.onReload})
	if err != nil {
		t.Fatal(err)
	}
	if w.Policy().Version() != "one" {
		t.Fatalf("initial version %q", w.Policy().Version())
	}

	// Unchanged files: no swap.
	if swapped, err := w.Reload(); swapped || err != nil {
		t.Fatalf("unchanged: %v %v", swapped, err)
	}

	// A valid change is swapped in.
	writeFile(t, path, "version: v1\npolicy_version: two\n")
	if swapped, err := w.Reload(); !swapped || err != nil || w.Policy().Version() != "two" {
		t.Fatalf("valid change: %v %v %q", swapped, err, w.Policy().Version())
	}

	// An invalid change keeps the old policy and is reported once.
	writeFile(t, path, "version: v1\npolicy_version: three\nrules: [{id: r, decision: nope}]\n")
	for range 3 {
		if swapped, err := w.Reload(); swapped || err == nil || w.Policy().Version() != "two" {
			t.Fatalf("invalid change: swapped %v, err %v, version %q", swapped, err, w.Policy().Version())
		}
	}
	if errs, _ := rec.counts(); errs != 1 {
		t.Fatalf("%d error reports for one bad file, want 1", errs)
	}
	if msg := rec.errs[0].Error(); !strings.Contains(msg, "keeping version two") || !strings.Contains(msg, `policy.yaml:3: rules[0].decision: "nope"`) {
		t.Errorf("report %q", msg)
	}

	// An overlay change alone reloads; the policy file is fixed at the same time.
	writeFile(t, path, "version: v1\npolicy_version: three\n")
	writeFile(t, overlay, "topics: {job.a: {timeout_seconds: 5}}\n")
	if swapped, err := w.Reload(); !swapped || err != nil {
		t.Fatalf("fixed: %v %v", swapped, err)
	}
	if ts, _ := w.Policy().Topic("job.a"); ts.TimeoutSeconds != LimitOf(5) {
		t.Errorf("overlay not reloaded: %+v", ts)
	}

	// A vanished overlay is an error; the policy stays.
	if err := os.Remove(overlay); err != nil {
		t.Fatal(err)
	}
	if swapped, err := w.Reload(); swapped || err == nil || w.Policy().Version() != "three" {
		t.Fatalf("missing overlay: %v %v", swapped, err)
	}
	if errs, reloads := rec.counts(); errs != 2 || reloads != 2 {
		t.Errorf("%d errors, %d reloads; want 2, 2", errs, reloads)
	}
}

func TestWatcherRejectsInvalidStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, "version: v9\n")
	if _, err := NewWatcher(WatcherConfig{Path: path}); err == nil || !strings.Contains(err.Error(), "policy.yaml:1: version") {
		t.Fatalf("invalid start: %v", err)
	}
}

func TestWatcherRunPolls(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	writeFile(t, path, "version: v1\npolicy_version: one\n")
	reloaded := make(chan *Policy, 1)
	w, err := NewWatcher(WatcherConfig{Path: path, Interval: 10 * time.Millisecond, OnReload: func(p *Policy) { reloaded <- p }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	writeFile(t, path, "version: v1\npolicy_version: two\n")
	select {
	case p := <-reloaded:
		if p.Version() != "two" || w.Policy() != p {
			t.Errorf("reloaded %q, current %q", p.Version(), w.Policy().Version())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reload")
	}
	cancel()
	<-done
}
