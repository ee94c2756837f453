package evidence

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// Scan calls fn with every record of dir, in file and line order, and stops at fn's first error,
// which it returns. A half-written last line of the last file is skipped; any other line that is
// not a record is an error naming its file and line. Scan does not check the chain; see Verify.
func Scan(dir string, fn func(Record) error) error {
	nums, err := listFiles(dir)
	if err != nil {
		return err
	}
	for i, n := range nums {
		path := filePath(dir, n)
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("opening evidence file: %w", err)
		}
		lines := 0
		tail, err := readLines(f, func(line []byte, num int, _ int64) error {
			lines = num
			var rec Record
			if err := json.Unmarshal(line, &rec); err != nil {
				return fmt.Errorf("%s:%d: decoding evidence record: %w", path, num, err)
			}
			return fn(rec)
		})
		f.Close()
		if err != nil {
			return err
		}
		if len(tail) > 0 && i < len(nums)-1 {
			return fmt.Errorf("%s:%d: line without a newline before the last file", path, lines+1)
		}
	}
	return nil
}

// FollowOptions configure Follow.
type FollowOptions struct {
	// Last is how many existing records to deliver before new ones; 0 delivers only records
	// appended after Follow starts.
	Last int
	// FromStart delivers every existing record first; it overrides Last.
	FromStart bool
	// Poll is how often to look for new records; default 500ms.
	Poll time.Duration
}

// Follow delivers the records of dir to fn as they are appended, across rotations, like tail -f,
// by polling. It returns fn's first error, a read error, or ctx.Err() once ctx is done.
func Follow(ctx context.Context, dir string, opts FollowOptions, fn func(Record) error) error {
	if opts.Poll <= 0 {
		opts.Poll = 500 * time.Millisecond
	}
	nums, err := listFiles(dir)
	if err != nil {
		return err
	}
	cur, off := 0, int64(0) // cur 0: no file yet; the first one to appear is read from its start
	switch {
	case len(nums) == 0:
	case opts.FromStart:
		cur = nums[0]
	default:
		cur, off, err = startOfLast(dir, nums, opts.Last)
		if err != nil {
			return err
		}
	}
	for {
		nums, err := listFiles(dir)
		if err != nil {
			return err
		}
		next := 0
		for _, n := range nums {
			if n > cur {
				next = n
				break
			}
		}
		progressed := false
		if cur > 0 {
			end, err := drain(filePath(dir, cur), off, fn)
			if err != nil {
				return err
			}
			progressed, off = end > off, end
		}
		// The writer moves to the next file only after the last line of this one is complete, so
		// once a later file exists, this one is fully drained.
		if next > 0 {
			cur, off = next, 0
			continue
		}
		if !progressed {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(opts.Poll):
			}
		} else if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// drain delivers the complete records of path from off and returns the offset past the last one.
func drain(path string, off int64, fn func(Record) error) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return off, fmt.Errorf("opening evidence file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return off, fmt.Errorf("reading %s: %w", path, err)
	}
	if st.Size() < off {
		return off, fmt.Errorf("evidence file %s shrank below offset %d", path, off)
	}
	end := off
	_, err = readLines(io.NewSectionReader(f, off, st.Size()-off), func(line []byte, _ int, e int64) error {
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("%s at offset %d: decoding evidence record: %w", path, end, err)
		}
		end = off + e
		return fn(rec)
	})
	return end, err
}

// startOfLast returns the file and offset where the last n complete records of dir begin; with n
// zero, the end of the last complete record.
func startOfLast(dir string, nums []int, n int) (int, int64, error) {
	for i := len(nums) - 1; i >= 0; i-- {
		path := filePath(dir, nums[i])
		f, err := os.Open(path)
		if err != nil {
			return 0, 0, fmt.Errorf("opening evidence file: %w", err)
		}
		ends := []int64{0}
		_, err = readLines(f, func(_ []byte, _ int, end int64) error {
			ends = append(ends, end)
			return nil
		})
		f.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("reading %s: %w", path, err)
		}
		lines := len(ends) - 1
		if lines >= n {
			return nums[i], ends[lines-n], nil
		}
		n -= lines
	}
	return nums[0], 0, nil
}
