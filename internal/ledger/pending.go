package ledger

import (
	"math"
	"sync"

	"github.com/agentcost/agentcost/internal/money"
)

// pendingSet holds the reservations that are durable in the journal but not yet applied to the
// bbolt file, with their reserved amounts per counter, so that limit checks and reads see them.
//
// The bbolt file records the sequence number of the last journal record it applied; an entry
// counts only while its sequence number is above that, so a reader that looks at the file and at
// the set under mu (read) never counts an entry twice or misses one, whenever the flusher commits.
type pendingSet struct {
	mu        sync.RWMutex
	entries   []pendingEntry // in sequence order
	ids       map[string]struct{}
	byCounter map[counter]*pendingCounter
}

type pendingEntry struct {
	seq uint64
	res *reservation
	rec []byte // res encoded (rescodec.go), as journaled and as the file stores it
}

// pendingCounter is one counter's pending reservations in sequence order, and their sum.
type pendingCounter struct {
	items []pendingAmount
	sum   money.Nanos
}

type pendingAmount struct {
	seq    uint64
	amount money.Nanos
}

// add records a journaled reservation and its encoding. The caller holds mu.
func (p *pendingSet) add(seq uint64, r *reservation, rec []byte) {
	if p.ids == nil {
		p.ids, p.byCounter = map[string]struct{}{}, map[counter]*pendingCounter{}
	}
	p.entries = append(p.entries, pendingEntry{seq: seq, res: r, rec: rec})
	p.ids[r.ID] = struct{}{}
	for _, k := range r.Counters {
		pc := p.byCounter[k]
		if pc == nil {
			pc = &pendingCounter{}
			p.byCounter[k] = pc
		}
		pc.items = append(pc.items, pendingAmount{seq: seq, amount: r.Estimate})
		pc.sum = money.AddSat(pc.sum, r.Estimate)
	}
}

// has reports whether a reservation id is pending. The caller holds mu (read).
func (p *pendingSet) has(id string) bool {
	_, ok := p.ids[id]
	return ok
}

// onto returns counter k's value v as the file has it (applied up to applied) with the pending
// reservations after applied added: the counter every check and read sees. The caller holds mu
// (read).
func (p *pendingSet) onto(v counterValue, k counter, applied uint64) counterValue {
	v.reserved = money.AddSat(v.reserved, p.reserved(k, applied))
	return v
}

// reserved returns what the pending reservations after applied add to counter k. The caller
// holds mu (read).
func (p *pendingSet) reserved(k counter, applied uint64) money.Nanos {
	pc := p.byCounter[k]
	if pc == nil {
		return 0
	}
	if pc.sum == math.MaxInt64 {
		var s money.Nanos
		for _, it := range pc.items {
			if it.seq > applied {
				s = money.AddSat(s, it.amount)
			}
		}
		return s
	}
	s := pc.sum
	for _, it := range pc.items {
		if it.seq > applied {
			break
		}
		s -= it.amount
	}
	return s
}

// after returns the entries after applied, in order. The caller holds mu (read).
func (p *pendingSet) after(applied uint64) []pendingEntry {
	i := 0
	for i < len(p.entries) && p.entries[i].seq <= applied {
		i++
	}
	return append([]pendingEntry(nil), p.entries[i:]...)
}

// len is the number of pending entries. The caller holds mu (read).
func (p *pendingSet) len() int { return len(p.entries) }

// count is the number of pending entries, taking mu.
func (p *pendingSet) count() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.entries)
}

// remove forgets the entries up to seq, which a committed transaction applied. The caller holds
// mu.
func (p *pendingSet) remove(seq uint64) {
	n := 0
	for n < len(p.entries) && p.entries[n].seq <= seq {
		e := p.entries[n]
		delete(p.ids, e.res.ID)
		for _, k := range e.res.Counters {
			pc := p.byCounter[k]
			if pc == nil || len(pc.items) == 0 {
				continue
			}
			pc.items = pc.items[1:]
			if len(pc.items) == 0 {
				delete(p.byCounter, k)
			} else if pc.sum != math.MaxInt64 {
				pc.sum -= e.res.Estimate
			}
		}
		n++
	}
	p.entries = append(p.entries[:0:0], p.entries[n:]...)
}
