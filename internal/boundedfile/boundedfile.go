// Package boundedfile reads the files the distribution loads (policy and overlay files, price
// files, token files) with a byte bound checked before anything is parsed, so that an oversized
// file costs at most limit+1 bytes of memory and no parsing.
package boundedfile

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// DefaultLimit is the bound every loaded file shares unless configured otherwise: 64 MiB (the full
// upstream LiteLLM price map is under 2 MB; a policy is a few KB).
const DefaultLimit = 64 << 20

// TooLargeError reports a file above the limit.
type TooLargeError struct {
	// Path is the file.
	Path string
	// Size is its size as far as it was read or stated: at least Limit+1.
	Size int64
	// Limit is the bound it exceeded.
	Limit int64
}

// Error names the file, its size and the limit.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("file %q is %d bytes, above the limit of %d bytes", e.Path, e.Size, e.Limit)
}

// ErrTooLarge is matched by every *TooLargeError (errors.Is).
var ErrTooLarge = errors.New("file above the size limit")

// Is makes errors.Is(err, ErrTooLarge) hold.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Read returns the content of the file at path when it holds at most limit bytes (limit <= 0 means
// DefaultLimit). It stats the file first and refuses a larger one without reading it, and reads at
// most limit+1 bytes in any case (a file that grows while it is read, or a pipe, is still bounded).
func Read(path string, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode().IsRegular() && st.Size() > limit {
		return nil, &TooLargeError{Path: path, Size: st.Size(), Limit: limit}
	}
	capHint := limit + 1
	if st.Mode().IsRegular() && st.Size() < capHint {
		capHint = st.Size() + 1
	}
	buf := make([]byte, 0, capHint)
	for {
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, &TooLargeError{Path: path, Size: int64(len(buf)), Limit: limit}
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(buf) == cap(buf) {
			// The file grew (or is not regular): grow up to limit+1.
			next := min(int64(cap(buf))*2+512, limit+1)
			nb := make([]byte, len(buf), next)
			copy(nb, buf)
			buf = nb
		}
	}
}
