// Package baseline keeps exponentially weighted moving averages (EWMA) of cost per key and applies
// agentcost's anomaly rule: once a key is warm, a cost at or above the absolute floor and at or
// above multiplier × its baseline is anomalous. The processor keys baselines by agent and model (one
// LLM call), the budget receiver by agent and action topic (one settled action).
//
// All arithmetic on amounts is exact integer arithmetic on money.Nanos: the smoothing factor and the
// multiplier are held as integer parts per million and every average is rounded once, half-even,
// by money.Acc.
package baseline

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/agentcost/agentcost/internal/money"
)

// ppm is the fixed-point scale of the smoothing factor and the multiplier. It equals
// money.FemtosPerNano so that money.Acc performs the scaled division and its rounding.
const ppm = money.FemtosPerNano

// defaultShards is the number of independently locked shards of a Store: enough that 2–8 goroutines
// observing different keys rarely meet on one mutex.
const defaultShards = 16

// Config configures a Store. Start from DefaultConfig; a zero field is not replaced by its default.
type Config struct {
	// Alpha is the EWMA smoothing factor in (0, 1]: the weight of a new observation.
	Alpha float64
	// WarmUp is the number of observations of a key before any observation of it can be flagged.
	WarmUp int64
	// Multiplier is how many times its baseline a cost must reach to be anomalous (at least 1).
	Multiplier float64
	// Floor is the absolute floor: a cost below it is never anomalous.
	Floor money.Nanos
	// MaxKeys bounds the number of keys kept; beyond it the least recently observed keys are evicted.
	MaxKeys int
}

// DefaultConfig returns the default configuration: alpha 0.2, a warm-up of 10 observations, the
// 3x multiplier, a $0.01 floor and at most 100,000 keys.
func DefaultConfig() Config {
	return Config{
		Alpha:      0.2,
		WarmUp:     10,
		Multiplier: 3,
		Floor:      money.NanosPerUSD / 100,
		MaxKeys:    100_000,
	}
}

// maxMultiplier bounds Multiplier so that multiplier × baseline stays exact in 128 bits.
const maxMultiplier = 1_000_000

// Validate reports the first invalid field, naming it.
func (c Config) Validate() error {
	switch {
	case math.IsNaN(c.Alpha) || c.Alpha <= 0 || c.Alpha > 1:
		return fmt.Errorf("alpha must be in (0, 1], got %v", c.Alpha)
	case math.Round(c.Alpha*ppm) < 1:
		return fmt.Errorf("alpha must be at least 0.000001, got %v", c.Alpha)
	case c.WarmUp < 0:
		return fmt.Errorf("warm_up must not be negative, got %d", c.WarmUp)
	case math.IsNaN(c.Multiplier) || c.Multiplier < 1 || c.Multiplier > maxMultiplier:
		return fmt.Errorf("multiplier must be in [1, %d], got %v", maxMultiplier, c.Multiplier)
	case c.Floor < 0:
		return fmt.Errorf("floor must not be negative, got %s USD", c.Floor)
	case c.MaxKeys < 1:
		return fmt.Errorf("max_keys must be at least 1, got %d", c.MaxKeys)
	}
	return nil
}

// Result is the outcome of one observation.
type Result struct {
	// Baseline is the key's average before this observation (zero for a new key).
	Baseline money.Nanos
	// Ratio is cost / Baseline, for display; zero for a new key. A zero baseline counts as one
	// nano-dollar so that the ratio stays finite.
	Ratio float64
	// Anomalous reports that the key was warm, the cost reached the floor and the cost was at least
	// multiplier × Baseline.
	Anomalous bool
	// Warm reports that the key had at least max(WarmUp, 1) observations before this one.
	Warm bool
	// Count is the number of observations of the key, this one included.
	Count int64
}

// Store holds the baselines. It is safe for concurrent use; Observe on a key already present does
// not allocate.
type Store struct {
	alpha   int64 // ppm
	mult    int64 // ppm
	warmUp  int64
	floor   money.Nanos
	maxKeys int64

	seed   maphash.Seed
	shards []shard
	mask   uint64

	keys      atomic.Int64
	evictions atomic.Uint64
}

type shard struct {
	mu   sync.Mutex
	m    map[string]*entry
	head *entry   // most recently observed
	tail *entry   // least recently observed
	_    [96]byte // keeps shards on separate cache lines
}

type entry struct {
	key        string
	avg        money.Nanos
	count      int64
	prev, next *entry
}

// New returns an empty Store for a valid cfg.
func New(cfg Config) (*Store, error) {
	return newStore(cfg, defaultShards)
}

func newStore(cfg Config, shards int) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid baseline config: %w", err)
	}
	s := &Store{
		alpha:   int64(math.Round(cfg.Alpha * ppm)),
		mult:    int64(math.Round(cfg.Multiplier * ppm)),
		warmUp:  max(cfg.WarmUp, 1),
		floor:   cfg.Floor,
		maxKeys: int64(cfg.MaxKeys),
		seed:    maphash.MakeSeed(),
		shards:  make([]shard, shards),
		mask:    uint64(shards - 1),
	}
	for i := range s.shards {
		s.shards[i].m = make(map[string]*entry)
	}
	return s, nil
}

// Observe records cost for key and reports whether it is anomalous. A negative cost counts as zero.
//
// During warm-up the baseline is the plain mean of the observations (the weight of the n-th is
// max(alpha, 1/n)); after it, the usual EWMA. An anomalous cost does update the baseline, but damped:
// it enters the average capped at multiplier × baseline, so one spike moves the baseline by at most
// alpha × (multiplier − 1) of itself (×1.4 at the defaults), while a sustained shift compounds
// observation by observation until it is no longer anomalous and becomes the new normal.
func (s *Store) Observe(key string, cost money.Nanos) Result {
	cost = max(cost, 0)
	i := maphash.String(s.seed, key) & s.mask
	sh := &s.shards[i]
	sh.mu.Lock()
	e, ok := sh.m[key]
	if !ok {
		e = &entry{key: strings.Clone(key), avg: cost, count: 1}
		sh.m[e.key] = e
		sh.pushFront(e)
		evictedHere := false
		if s.keys.Add(1) > s.maxKeys && sh.tail != e {
			sh.evictTail()
			evictedHere = true
		}
		sh.mu.Unlock()
		if evictedHere {
			s.keys.Add(-1)
			s.evictions.Add(1)
		} else if s.keys.Load() > s.maxKeys {
			s.evictElsewhere(int(i))
		}
		return Result{Count: 1}
	}
	sh.moveToFront(e)
	r := Result{Baseline: e.avg, Ratio: ratio(cost, e.avg), Warm: e.count >= s.warmUp, Count: e.count + 1}
	in := cost
	if r.Warm && cost >= s.floor && s.atLeastMultiple(cost, e.avg) {
		r.Anomalous = true
		in = s.capped(e.avg, cost)
	}
	e.count++
	e.avg = s.blend(e.avg, in, e.count)
	sh.mu.Unlock()
	return r
}

// Lookup returns key's baseline and observation count without counting as a use of the key.
func (s *Store) Lookup(key string) (baseline money.Nanos, count int64, ok bool) {
	sh := &s.shards[maphash.String(s.seed, key)&s.mask]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, found := sh.m[key]; found {
		return e.avg, e.count, true
	}
	return 0, 0, false
}

// Len returns the number of keys held.
func (s *Store) Len() int { return int(s.keys.Load()) }

// Evictions returns how many keys were evicted to respect MaxKeys since the Store was created,
// snapshot entries dropped by Restore included.
func (s *Store) Evictions() uint64 { return s.evictions.Load() }

// blend returns the average after the n-th observation in.
func (s *Store) blend(avg, in money.Nanos, n int64) money.Nanos {
	w := s.alpha
	if n < ppm && n*s.alpha < ppm { // still in the mean phase: 1/n > alpha
		w = (ppm + n/2) / n
	}
	var acc money.Acc
	acc.Add(int64(avg), money.Rate(ppm-w))
	acc.Add(int64(in), money.Rate(w))
	out, ok := acc.Nanos()
	if !ok { // unreachable: a weighted mean never exceeds its larger operand
		return in
	}
	return out
}

// atLeastMultiple reports cost ≥ multiplier × avg, exactly.
func (s *Store) atLeastMultiple(cost, avg money.Nanos) bool {
	chi, clo := bits.Mul64(uint64(cost), ppm)
	ahi, alo := bits.Mul64(uint64(avg), uint64(s.mult))
	return chi > ahi || (chi == ahi && clo >= alo)
}

// capped returns multiplier × avg rounded half-even, never above cost (which is at least that much).
func (s *Store) capped(avg, cost money.Nanos) money.Nanos {
	var acc money.Acc
	acc.Add(int64(avg), money.Rate(s.mult))
	c, ok := acc.Nanos()
	if !ok || c > cost {
		return cost
	}
	return c
}

func ratio(cost, avg money.Nanos) float64 {
	return float64(cost) / float64(max(avg, 1))
}

// evictElsewhere evicts the least recently used key of the first non-empty shard after skip, for an
// insert whose own shard held nothing else to evict.
func (s *Store) evictElsewhere(skip int) {
	for k := 1; k < len(s.shards); k++ {
		sh := &s.shards[(skip+k)&int(s.mask)]
		sh.mu.Lock()
		if sh.tail != nil {
			sh.evictTail()
			sh.mu.Unlock()
			s.keys.Add(-1)
			s.evictions.Add(1)
			return
		}
		sh.mu.Unlock()
	}
}

func (sh *shard) pushFront(e *entry) {
	e.prev, e.next = nil, sh.head
	if sh.head != nil {
		sh.head.prev = e
	}
	sh.head = e
	if sh.tail == nil {
		sh.tail = e
	}
}

func (sh *shard) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		sh.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		sh.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (sh *shard) moveToFront(e *entry) {
	if sh.head == e {
		return
	}
	sh.unlink(e)
	sh.pushFront(e)
}

func (sh *shard) evictTail() {
	e := sh.tail
	sh.unlink(e)
	delete(sh.m, e.key)
}

// snapshotVersion is the version of the format Snapshot writes.
const snapshotVersion = 1

type snapshotDoc struct {
	Version int             `json:"version"`
	Entries []snapshotEntry `json:"entries"`
}

type snapshotEntry struct {
	Key      string `json:"key"`
	Baseline int64  `json:"baseline_nanos"`
	Count    int64  `json:"count"`
}

// Snapshot serialises every baseline as versioned JSON, least recently used first within each shard,
// for persistence through the collector's storage extension. Each shard is copied under its own
// lock, so a snapshot taken during concurrent observation is consistent per key.
func (s *Store) Snapshot() ([]byte, error) {
	doc := snapshotDoc{Version: snapshotVersion, Entries: make([]snapshotEntry, 0, s.Len())}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for e := sh.tail; e != nil; e = e.prev {
			doc.Entries = append(doc.Entries, snapshotEntry{Key: e.key, Baseline: int64(e.avg), Count: e.count})
		}
		sh.mu.Unlock()
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding baseline snapshot: %w", err)
	}
	return b, nil
}

// Restore replaces every baseline with those of a snapshot made by Snapshot. The snapshot is fully
// checked before anything changes: a corrupt or unsupported snapshot is an error and leaves the
// Store as it was. When it holds more than MaxKeys entries, the earliest ones are dropped and counted
// as evictions.
func (s *Store) Restore(b []byte) error {
	var doc struct {
		Version *int            `json:"version"`
		Entries []snapshotEntry `json:"entries"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("decoding baseline snapshot: %w", err)
	}
	if doc.Version == nil {
		return errors.New("baseline snapshot has no version")
	}
	if *doc.Version != snapshotVersion {
		return fmt.Errorf("baseline snapshot version %d is not supported (want %d)", *doc.Version, snapshotVersion)
	}
	seen := make(map[string]struct{}, len(doc.Entries))
	for i, e := range doc.Entries {
		switch {
		case e.Baseline < 0:
			return fmt.Errorf("baseline snapshot entry %d (key %q): baseline_nanos must not be negative", i, e.Key)
		case e.Count < 1:
			return fmt.Errorf("baseline snapshot entry %d (key %q): count must be at least 1", i, e.Key)
		}
		if _, dup := seen[e.Key]; dup {
			return fmt.Errorf("baseline snapshot entry %d: duplicate key %q", i, e.Key)
		}
		seen[e.Key] = struct{}{}
	}
	entries := doc.Entries
	dropped := 0
	if len(entries) > int(s.maxKeys) {
		dropped = len(entries) - int(s.maxKeys)
		entries = entries[dropped:]
	}

	for i := range s.shards {
		s.shards[i].mu.Lock()
	}
	for i := range s.shards {
		sh := &s.shards[i]
		clear(sh.m)
		sh.head, sh.tail = nil, nil
	}
	for _, se := range entries {
		sh := &s.shards[maphash.String(s.seed, se.Key)&s.mask]
		e := &entry{key: se.Key, avg: money.Nanos(se.Baseline), count: se.Count}
		sh.m[e.key] = e
		sh.pushFront(e)
	}
	s.keys.Store(int64(len(entries)))
	s.evictions.Add(uint64(dropped))
	for i := range s.shards {
		s.shards[i].mu.Unlock()
	}
	return nil
}
