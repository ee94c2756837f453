package ledger

import (
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// groupCommit commits concurrent writers of the embedded backend together: one bbolt transaction,
// one fsync. A lone writer commits at once (no added latency, unlike bbolt's timer-based Batch);
// writers that arrive while a commit is running wait and share the next one. Each writer returns
// only once the transaction holding its writes is durable.
//
// As with bolt.DB.Batch, a writer's fn may run more than once (when another fn of its group fails,
// the group is retried without it), so every fn resets what it reports before it reads.
type groupCommit struct {
	mu      sync.Mutex
	pending []*commitCall
	running bool

	// before, when set, runs first in every transaction (the embedded backend applies the
	// journaled reservations there); its result goes to after once the transaction committed.
	before func(*txn) (uint64, error)
	after  func(uint64)
	// stats, when set, counts the transactions and their time.
	stats *statCounters
}

type commitCall struct {
	fn   func(*txn) error
	done chan error
}

// maxGroup bounds the writers of one transaction.
const maxGroup = 256

// errSolo tells a writer whose fn failed inside a group to run alone, so that its error is its own.
var errSolo = errors.New("run alone")

func (g *groupCommit) do(db *bolt.DB, fn func(*txn) error) error {
	c := &commitCall{fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, c)
	if !g.running {
		g.running = true
		go g.run(db)
	}
	g.mu.Unlock()
	if err := <-c.done; err != errSolo {
		return err
	}
	return g.update(db, func(t *txn) error { return safely(fn, t) })
}

// update runs one transaction: the before hook, then body; after runs once it committed.
func (g *groupCommit) update(db *bolt.DB, body func(*txn) error) error {
	var hooked uint64
	began := time.Now()
	defer func() {
		if g.stats != nil {
			g.stats.commits.Add(1)
			g.stats.commitNanos.Add(int64(time.Since(began)))
		}
	}()
	err := db.Update(func(tx *bolt.Tx) error {
		t := newTxn(tx)
		if g.before != nil {
			v, err := g.before(t)
			if err != nil {
				return err
			}
			hooked = v
		}
		return body(t)
	})
	if err == nil && g.after != nil {
		g.after(hooked)
	}
	return err
}

// run commits groups until no writer is waiting.
func (g *groupCommit) run(db *bolt.DB) {
	for {
		g.mu.Lock()
		group := g.pending
		if len(group) > maxGroup {
			group = group[:maxGroup]
		}
		g.pending = g.pending[len(group):]
		if len(group) == 0 {
			g.running = false
			g.pending = nil
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		g.commitGroup(db, group)
	}
}

func (g *groupCommit) commitGroup(db *bolt.DB, group []*commitCall) {
	for len(group) > 0 {
		failed := -1
		err := g.update(db, func(t *txn) error {
			for i, c := range group {
				if err := safely(c.fn, t); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, c := range group {
				c.done <- err
			}
			return
		}
		group[failed].done <- errSolo
		group = append(group[:failed:failed], group[failed+1:]...)
	}
}

// safely runs fn, turning a panic into an error so that one writer cannot take the group down.
func safely(fn func(*txn) error, t *txn) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("ledger transaction panicked: %v", p)
		}
	}()
	return fn(t)
}
