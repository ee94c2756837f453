//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package evidence

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir opens dir's lock file; on this platform it takes no lock, so one writer per directory
// is up to the deployment.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("opening evidence lock file: %w", err)
	}
	return f, nil
}

// syncDir is a no-op where directories cannot be synced.
func syncDir(string) error { return nil }
