package boundedfile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, n int) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(strings.Repeat("x", n)), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, n := range []int{0, 1, 99, 100} {
		data, err := Read(write("ok", n), 100)
		if err != nil || len(data) != n {
			t.Errorf("%d bytes under a limit of 100: %d bytes, %v", n, len(data), err)
		}
	}
	path := write("big", 101)
	_, err := Read(path, 100)
	var tl *TooLargeError
	if !errors.As(err, &tl) || !errors.Is(err, ErrTooLarge) || tl.Size != 101 || tl.Limit != 100 {
		t.Fatalf("101 bytes under a limit of 100: %v", err)
	}
	for _, want := range []string{path, "101 bytes", "100 bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if _, err := Read(filepath.Join(dir, "missing"), 100); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// Zero means the default limit.
	if data, err := Read(write("default", 1000), 0); err != nil || len(data) != 1000 {
		t.Errorf("default limit: %d bytes, %v", len(data), err)
	}
}

// TestReadUnsized reads a file that stat cannot size (a pipe): the bound holds on the bytes read.
func TestReadUnsized(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() {
		_, _ = w.Write([]byte(strings.Repeat("y", 5000)))
		w.Close()
	}()
	if _, err := os.Stat("/dev/fd/0"); err != nil {
		t.Skip("no /dev/fd")
	}
	path := "/dev/fd/" + strconv.Itoa(int(r.Fd()))
	_, err = Read(path, 1000)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("5000 bytes from a pipe under a limit of 1000: %v", err)
	}
}
