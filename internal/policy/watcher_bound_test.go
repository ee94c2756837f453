package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/boundedfile"
)

// TestWatcherRejectsLargeFile replaces the policy by a file of comments above the default bound
// (the review's 101 MB): the reload is refused by its size, before parsing, the old policy stays,
// and polls while it stays in place neither parse nor report it again.
func TestWatcherRejectsLargeFile(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 101 MB file")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	writeFile(t, path, "version: v1\npolicy_version: one\n")
	var rec recorder
	w, err := NewWatcher(WatcherConfig{Path: path, OnError: rec.onError, OnReload: rec.onReload})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	block := []byte(strings.Repeat("# a comment line of a file that is only comments\n", 1<<20/50))
	for written := int64(0); written <= boundedfile.DefaultLimit+37<<20; written += int64(len(block)) {
		if _, err := f.Write(block); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	parses := w.parses.Load()
	for range 3 {
		swapped, err := w.Reload()
		if swapped || !errors.Is(err, boundedfile.ErrTooLarge) || !strings.Contains(err.Error(), path) {
			t.Fatalf("oversized policy: swapped %v, %v", swapped, err)
		}
	}
	if n := w.parses.Load() - parses; n != 0 {
		t.Errorf("the oversized file was parsed %d times", n)
	}
	if errs, reloads := rec.counts(); errs != 1 || reloads != 0 {
		t.Errorf("%d errors, %d reloads reported; want the one error", errs, reloads)
	}
	if w.Policy().Version() != "one" {
		t.Errorf("policy in force %q, want one", w.Policy().Version())
	}
	writeFile(t, path, "version: v1\npolicy_version: two\n")
	if swapped, err := w.Reload(); !swapped || err != nil || w.Policy().Version() != "two" {
		t.Fatalf("fixed file: swapped %v, %v, version %s", swapped, err, w.Policy().Version())
	}
}

// TestWatcherConfiguredBound applies MaxFileBytes to overlays too, at start and on reload.
func TestWatcherConfiguredBound(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	overlay := filepath.Join(dir, "timeouts.yaml")
	writeFile(t, path, "version: v1\npolicy_version: one\n")
	writeFile(t, overlay, "topics: {job.a: {timeout_seconds: 10}}\n"+strings.Repeat("#", 200)+"\n")
	if _, err := NewWatcher(WatcherConfig{Path: path, Overlays: []string{overlay}, MaxFileBytes: 100}); !errors.Is(err, boundedfile.ErrTooLarge) || !strings.Contains(err.Error(), overlay) {
		t.Fatalf("overlay above max_file_bytes at start: %v", err)
	}
	writeFile(t, overlay, "topics: {job.a: {timeout_seconds: 10}}\n")
	w, err := NewWatcher(WatcherConfig{Path: path, Overlays: []string{overlay}, MaxFileBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, overlay, "topics: {job.a: {timeout_seconds: 20}}\n"+strings.Repeat("#", 200)+"\n")
	if _, err := w.Reload(); !errors.Is(err, boundedfile.ErrTooLarge) {
		t.Fatalf("overlay above max_file_bytes on reload: %v", err)
	}
}

// TestWatcherRejectedNotReparsed keeps an invalid policy in place: it is parsed once, then left
// alone until its size or modification time changes.
func TestWatcherRejectedNotReparsed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	writeFile(t, path, "version: v1\npolicy_version: one\n")
	var rec recorder
	w, err := NewWatcher(WatcherConfig{Path: path, OnError: rec.onError})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "version: v1\npolicy_version: two\ndefault_decision: maybe\n")
	parses := w.parses.Load()
	for range 5 {
		if _, err := w.Reload(); err == nil {
			t.Fatal("invalid policy accepted")
		}
	}
	if n := w.parses.Load() - parses; n != 1 {
		t.Errorf("the invalid file was parsed %d times, want once", n)
	}
	// Touched but the same content: read again, not parsed (its hash is known).
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Reload(); err == nil {
		t.Fatal("invalid policy accepted after touch")
	}
	if n := w.parses.Load() - parses; n != 1 {
		t.Errorf("the touched invalid file was parsed %d times, want once", n)
	}
	if errs, _ := rec.counts(); errs != 1 {
		t.Errorf("%d errors reported, want 1", errs)
	}
	writeFile(t, path, "version: v1\npolicy_version: three\n")
	if swapped, err := w.Reload(); !swapped || err != nil {
		t.Fatalf("fixed file: %v %v", swapped, err)
	}
}

// TestWatcherTooLargeThenRestored: a file rejected by its size and then put back as the content in
// force is clean again (no lingering error).
func TestWatcherTooLargeThenRestored(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	const good = "version: v1\npolicy_version: one\n"
	writeFile(t, path, good)
	w, err := NewWatcher(WatcherConfig{Path: path, MaxFileBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, good+strings.Repeat("#", 200)+"\n")
	if _, err := w.Reload(); !errors.Is(err, boundedfile.ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	writeFile(t, path, good)
	if swapped, err := w.Reload(); swapped || err != nil {
		t.Fatalf("restored content in force: swapped %v, %v; want no swap and no error", swapped, err)
	}
}
