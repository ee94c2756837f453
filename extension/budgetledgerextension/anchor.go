package budgetledgerextension

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/agentcost/agentcost/internal/evidence"
	"github.com/agentcost/agentcost/internal/ledger"
)

// anchorer keeps the evidence chain's head anchored in the ledger. The writer offers each durable
// head (one offer per shared fsync, never blocking the append); one goroutine writes the latest
// to the ledger, at most once per interval, so a burst of appends costs one ledger write. What
// can be cut from the chain's end without the anchor noticing is therefore what became durable in
// the last interval plus one ledger write.
type anchorer struct {
	an       ledger.EvidenceAnchorer
	interval time.Duration
	log      *zap.Logger

	mu    sync.Mutex
	head  evidence.Head
	dirty bool

	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	started   bool
	closeOnce sync.Once

	errs    atomic.Int64
	written atomic.Int64
	lastErr string // guarded by mu
}

func newAnchorer(an ledger.EvidenceAnchorer, interval time.Duration, log *zap.Logger) *anchorer {
	return &anchorer{an: an, interval: interval, log: log, wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
}

// offer records a durable head; it never blocks.
func (a *anchorer) offer(h evidence.Head) {
	if h.Seq == 0 {
		return
	}
	a.mu.Lock()
	if h.ChainID != a.head.ChainID || h.Seq > a.head.Seq {
		a.head, a.dirty = h, true
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *anchorer) start() {
	a.started = true
	go a.run()
}

func (a *anchorer) run() {
	defer close(a.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-a.wake:
		}
		a.flush(context.Background())
		t.Reset(a.interval)
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
	}
}

// flush writes the latest head when it has not been written yet.
func (a *anchorer) flush(ctx context.Context) {
	a.mu.Lock()
	h, dirty := a.head, a.dirty
	a.dirty = false
	a.mu.Unlock()
	if !dirty {
		return
	}
	err := a.an.SetEvidenceAnchor(ctx, ledger.EvidenceAnchor{ChainID: h.ChainID, Seq: h.Seq, Hash: h.Hash}, false)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.errs.Add(1)
		if !a.dirty { // retry with the next wake-up unless a newer head is waiting anyway
			a.dirty = true
		}
		if err.Error() != a.lastErr {
			a.lastErr = err.Error()
			a.log.Warn("Anchoring the evidence chain's head in the ledger failed; it is retried with the next record",
				zap.String("chain_id", h.ChainID), zap.Uint64("seq", h.Seq), zap.Error(err))
		}
		return
	}
	a.lastErr = ""
	a.written.Add(1)
}

// close stops the goroutine and anchors final, the head of the closed (so durable) writer. Only
// the first call does anything.
func (a *anchorer) close(final evidence.Head) {
	a.closeOnce.Do(func() {
		close(a.stop)
		if a.started {
			<-a.done
		}
		a.offer(final)
		a.flush(context.Background())
	})
}

// checkAnchor compares the chain found in the evidence directory with the ledger's anchors. It
// returns a description of the problem when the directory's chain ends behind its anchor (records
// were cut from its end, or its last record replaced), or when the embedded backend's ledger
// anchors chains but the directory holds none (the evidence files were removed).
func checkAnchor(ctx context.Context, an ledger.EvidenceAnchorer, rep evidence.OpenReport, single bool) (string, error) {
	if !rep.NewChain {
		a, ok, err := an.EvidenceAnchor(ctx, rep.ChainID)
		if err != nil || !ok {
			return "", err
		}
		switch {
		case rep.LastSeq < a.Seq:
			return fmt.Sprintf("chain %s ends at seq %d but the ledger anchored seq %d (hash %s): records %d to %d are missing",
				rep.ChainID, rep.LastSeq, a.Seq, a.Hash, rep.LastSeq+1, a.Seq), nil
		case rep.LastSeq == a.Seq && rep.LastHash != a.Hash:
			return fmt.Sprintf("chain %s ends at seq %d with hash %s but the ledger anchored hash %s for it: the last record was replaced",
				rep.ChainID, rep.LastSeq, rep.LastHash, a.Hash), nil
		}
		return "", nil
	}
	if !single {
		return "", nil // several processes share a Redis ledger, each with its own chain
	}
	all, err := an.EvidenceAnchors(ctx)
	if err != nil || len(all) == 0 {
		return "", err
	}
	var chains []string
	for _, a := range all {
		chains = append(chains, fmt.Sprintf("%s at seq %d", a.ChainID, a.Seq))
	}
	return fmt.Sprintf("the directory holds no record but the ledger anchors chain %s: the evidence files were removed",
		strings.Join(chains, ", ")), nil
}
