package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
)

// FileStats describes the embedded ledger file's content: what retention keeps.
type FileStats struct {
	// Keys counts the keys of each bucket (counters, kv, expiry, reservations, leases, ...).
	Keys map[string]int
	// Bytes is the size of ledger.db (bbolt reuses freed pages; the file does not shrink).
	Bytes int64
	// InUseBytes is the part of the file the tree uses (pages × page size minus free pages).
	InUseBytes int64
}

// FileStats counts the keys of every bucket in one read transaction and reports the file's size.
func (e *Embedded) FileStats(ctx context.Context) (FileStats, error) {
	st := FileStats{Keys: map[string]int{}}
	err := e.view(ctx, func(t *txn) error {
		for i, name := range allBuckets {
			st.Keys[string(name)] = t.bucket(i).Stats().KeyN
		}
		info := t.tx.DB().Info()
		s := t.tx.DB().Stats()
		st.InUseBytes = t.tx.Size() - int64(s.FreePageN+s.PendingPageN)*int64(info.PageSize)
		return nil
	})
	if err != nil {
		return FileStats{}, err
	}
	fi, err := os.Stat(filepath.Join(e.cfg.Directory, FileName))
	if err != nil {
		return FileStats{}, fmt.Errorf("reading the ledger file's size: %w", err)
	}
	st.Bytes = fi.Size()
	return st, nil
}

// maxPruneRounds bounds the Prune transactions of one maintenance tick: with pruneBatch records of
// each kind per transaction, up to 16 × 10,000 expired records a minute (about 2,600 a second), so
// pruning keeps up with a steady decision rate instead of falling behind it.
const maxPruneRounds = 16

// pruneAll prunes until nothing due is left in the expiry index, at most maxPruneRounds
// transactions, applying journaled reservations between them so that decisions do not wait.
func (e *Embedded) pruneAll() {
	now := e.now()
	for range maxPruneRounds {
		if err := e.Prune(context.Background(), now); err != nil {
			e.log.Warn("Pruning the ledger failed", zap.Error(err))
			return
		}
		if !e.expiryDue(now) {
			return
		}
		select {
		case <-e.stop:
			return
		default:
		}
		e.flushPending()
	}
}

// expiryDue reports whether the expiry index still holds a record due at now.
func (e *Embedded) expiryDue(now time.Time) bool {
	due := false
	_ = e.view(context.Background(), func(t *txn) error {
		k, _ := t.expiry().Cursor().First()
		due = len(k) >= 8 && int64(binary.BigEndian.Uint64(k[:8])) <= at(now).UnixNano()
		return nil
	})
	return due
}
