// Package baseline keeps per-key cost baselines and applies agentcost's anomaly rules: once a key is
// warm, a cost at or above the absolute floor and at or above multiplier × its baseline is anomalous,
// and a key whose cost per observation climbs steadily is escalating. The processor keys baselines by
// agent and model (one LLM call), the budget receiver by agent and action topic (one settled action).
//
// The estimator has two speeds, so that it neither chases a runaway nor stays blind to a real change:
//
//   - The baseline proper is a robust moving level. An observation within the shift band (by default
//     between 1/1.5 and 1.5 times the baseline) moves it by alpha × its deviation, the deviation
//     clipped to ±clip × baseline (so at most 1% per observation at the defaults); an observation
//     beyond the band does not move it at all. A loop whose context grows — each call a little
//     dearer than the last — therefore leaves the baseline behind and reaches multiplier × baseline
//     within a few calls of reaching multiplier × its pre-loop cost, where an ordinary EWMA would
//     follow the climb and never fire. Slow drift (well under 1% per observation) is learned.
//   - A fast EWMA (fast_alpha) follows every observation. When it has stayed beyond the band for
//     shift_calls consecutive observations and the recent costs are not climbing, the change is a
//     new level: the baseline jumps to the fast average and Result.LevelShift reports it. A climb
//     is never learned as a level: it keeps being flagged.
//   - Escalation: when the fast average and the observation are both at least escalation_ratio ×
//     the baseline and the least-squares slope of the logarithm of the last escalation_calls costs
//     shows a growth of at least escalation_growth per observation, the observation is escalating —
//     reported before a creeping loop reaches the multiplier.
//
// Amounts are exact integer arithmetic on money.Nanos: the weights and ratios are held as integer
// parts per million and every update is rounded once, half-even, by money.Acc. Only the escalation
// slope, a flag and not an amount, is computed in floating point.
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

// maxEscalationCalls bounds EscalationCalls: the recent costs are kept in a fixed ring per key.
const maxEscalationCalls = 16

// Config configures a Store. Start from DefaultConfig; a zero field is not replaced by its default.
type Config struct {
	// Alpha is the weight of an in-band observation's (clipped) deviation from the baseline, in (0, 1].
	Alpha float64
	// WarmUp is the number of observations of a key before any observation of it can be flagged.
	// While warming up, the baseline is the plain mean of the observations (then the EWMA phase).
	WarmUp int64
	// Multiplier is how many times its baseline a cost must reach to be anomalous (at least 1).
	Multiplier float64
	// Floor is the absolute floor: a cost below it is never anomalous nor escalating.
	Floor money.Nanos
	// MaxKeys bounds the number of keys kept; beyond it the least recently observed keys are evicted.
	MaxKeys int

	// Clip bounds the deviation an in-band observation moves the baseline by, as a fraction of the
	// baseline, in (0, 1].
	Clip float64
	// ShiftBand is the band around the baseline, a factor above 1: observations beyond it do not
	// move the baseline, and a fast average beyond it for ShiftCalls observations is a new level.
	ShiftBand float64
	// ShiftCalls is how many consecutive observations the fast average must stay beyond ShiftBand
	// before the change is learned as a new level (at least 1).
	ShiftCalls int
	// FastAlpha is the smoothing factor of the fast average, in (0, 1].
	FastAlpha float64

	// EscalationCalls is the number of recent observations whose trend decides escalation, in
	// [3, 16]; 0 turns escalation off.
	EscalationCalls int
	// EscalationGrowth is the least growth per observation, as a fraction (0.02 is 2% per call), of
	// the trend that is escalating.
	EscalationGrowth float64
	// EscalationRatio is how many times its baseline both the fast average and the cost must be for
	// a climb to be escalating (at least 1).
	EscalationRatio float64
}

// DefaultConfig returns the default configuration: alpha 0.2 with a 5% clip, a warm-up of 10
// observations, the 3x multiplier, a $0.01 floor, at most 100,000 keys; a new level is learned after
// 8 observations beyond 1.5x (fast alpha 0.3); escalation over 8 observations growing 2% each, at
// 1.75x the baseline.
func DefaultConfig() Config {
	return Config{
		Alpha:            0.2,
		WarmUp:           10,
		Multiplier:       3,
		Floor:            money.NanosPerUSD / 100,
		MaxKeys:          100_000,
		Clip:             0.05,
		ShiftBand:        1.5,
		ShiftCalls:       8,
		FastAlpha:        0.3,
		EscalationCalls:  8,
		EscalationGrowth: 0.02,
		EscalationRatio:  1.75,
	}
}

// maxMultiplier bounds Multiplier so that multiplier × baseline stays exact in 128 bits.
const maxMultiplier = 1_000_000

// Validate reports the first invalid field, naming it.
func (c Config) Validate() error {
	fraction := func(v float64) bool { return !math.IsNaN(v) && v > 0 && v <= 1 && math.Round(v*ppm) >= 1 }
	factor := func(v float64) bool { return !math.IsNaN(v) && v >= 1 && v <= maxMultiplier }
	switch {
	case !fraction(c.Alpha):
		return fmt.Errorf("alpha must be in [0.000001, 1], got %v", c.Alpha)
	case c.WarmUp < 0:
		return fmt.Errorf("warm_up must not be negative, got %d", c.WarmUp)
	case !factor(c.Multiplier):
		return fmt.Errorf("multiplier must be in [1, %d], got %v", maxMultiplier, c.Multiplier)
	case c.Floor < 0:
		return fmt.Errorf("floor must not be negative, got %s USD", c.Floor)
	case c.MaxKeys < 1:
		return fmt.Errorf("max_keys must be at least 1, got %d", c.MaxKeys)
	case !fraction(c.Clip):
		return fmt.Errorf("clip must be in [0.000001, 1], got %v", c.Clip)
	case !factor(c.ShiftBand) || c.ShiftBand == 1:
		return fmt.Errorf("shift_band must be above 1 and at most %d, got %v", maxMultiplier, c.ShiftBand)
	case c.ShiftCalls < 1:
		return fmt.Errorf("shift_calls must be at least 1, got %d", c.ShiftCalls)
	case !fraction(c.FastAlpha):
		return fmt.Errorf("fast_alpha must be in [0.000001, 1], got %v", c.FastAlpha)
	case c.EscalationCalls != 0 && (c.EscalationCalls < 3 || c.EscalationCalls > maxEscalationCalls):
		return fmt.Errorf("escalation_calls must be 0 (off) or in [3, %d], got %d", maxEscalationCalls, c.EscalationCalls)
	case c.EscalationCalls != 0 && (math.IsNaN(c.EscalationGrowth) || c.EscalationGrowth <= 0 || c.EscalationGrowth > 10):
		return fmt.Errorf("escalation_growth must be in (0, 10], got %v", c.EscalationGrowth)
	case c.EscalationCalls != 0 && !factor(c.EscalationRatio):
		return fmt.Errorf("escalation_ratio must be in [1, %d], got %v", maxMultiplier, c.EscalationRatio)
	}
	return nil
}

// Result is the outcome of one observation.
type Result struct {
	// Baseline is the key's baseline before this observation (zero for a new key).
	Baseline money.Nanos
	// Ratio is cost / Baseline, for display; zero for a new key. A zero baseline counts as one
	// nano-dollar so that the ratio stays finite.
	Ratio float64
	// Anomalous reports that the key was warm, the cost reached the floor and the cost was at least
	// multiplier × Baseline.
	Anomalous bool
	// Escalating reports that the key was warm, the cost reached the floor, and the recent costs
	// climb steadily (see the package documentation).
	Escalating bool
	// LevelShift reports that this observation completed a sustained change of level: the baseline
	// moved from Baseline to NewBaseline.
	LevelShift bool
	// NewBaseline is the baseline after this observation.
	NewBaseline money.Nanos
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

	clip       int64 // ppm
	band       int64 // ppm
	shiftCalls int32
	fastAlpha  int64 // ppm
	escCalls   int
	escSlope   float64 // least slope of ln(cost) per observation
	escRatio   int64   // ppm

	seed   maphash.Seed
	shards []shard
	mask   uint64

	keys      atomic.Int64
	evictions atomic.Uint64
	shifts    atomic.Uint64
}

type shard struct {
	mu   sync.Mutex
	m    map[string]*entry
	head *entry   // most recently observed
	tail *entry   // least recently observed
	_    [96]byte // keeps shards on separate cache lines
}

type entry struct {
	key   string
	avg   money.Nanos // the baseline
	fast  money.Nanos // the fast average
	count int64
	run   int32 // consecutive observations with fast beyond the band on side dir
	dir   int8  // +1 above the band, -1 below, 0 within
	pos   uint8 // next slot of recent
	// recent holds the latest costs (nano-dollars, as float32: they only feed the trend).
	recent     [maxEscalationCalls]float32
	prev, next *entry
}

// New returns an empty Store for a valid cfg.
func New(cfg Config) (*Store, error) {
	return newStore(cfg, defaultShards)
}

func toPPM(v float64) int64 { return int64(math.Round(v * ppm)) }

func newStore(cfg Config, shards int) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid baseline config: %w", err)
	}
	s := &Store{
		alpha:      toPPM(cfg.Alpha),
		mult:       toPPM(cfg.Multiplier),
		warmUp:     max(cfg.WarmUp, 1),
		floor:      cfg.Floor,
		maxKeys:    int64(cfg.MaxKeys),
		clip:       toPPM(cfg.Clip),
		band:       toPPM(cfg.ShiftBand),
		shiftCalls: int32(min(cfg.ShiftCalls, math.MaxInt32)),
		fastAlpha:  toPPM(cfg.FastAlpha),
		escCalls:   cfg.EscalationCalls,
		escSlope:   math.Log1p(cfg.EscalationGrowth),
		escRatio:   toPPM(cfg.EscalationRatio),
		seed:       maphash.MakeSeed(),
		shards:     make([]shard, shards),
		mask:       uint64(shards - 1),
	}
	for i := range s.shards {
		s.shards[i].m = make(map[string]*entry)
	}
	return s, nil
}

// Observe records cost for key and reports whether it is anomalous, escalating, or completes a
// level shift. A negative cost counts as zero.
func (s *Store) Observe(key string, cost money.Nanos) Result {
	cost = max(cost, 0)
	i := maphash.String(s.seed, key) & s.mask
	sh := &s.shards[i]
	sh.mu.Lock()
	e, ok := sh.m[key]
	if !ok {
		e = &entry{key: strings.Clone(key), avg: cost, fast: cost, count: 1}
		e.push(cost)
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
		return Result{Count: 1, NewBaseline: cost}
	}
	sh.moveToFront(e)
	r := s.observe(e, cost)
	sh.mu.Unlock()
	if r.LevelShift {
		s.shifts.Add(1)
	}
	return r
}

// Check judges cost, a running total, against key's baseline without observing it: Anomalous when
// the key is warm, the cost reaches the floor and multiplier × the baseline. It does not move the
// key in the eviction order. A key not present reports a zero Result.
func (s *Store) Check(key string, cost money.Nanos) Result {
	cost = max(cost, 0)
	sh := &s.shards[maphash.String(s.seed, key)&s.mask]
	sh.mu.Lock()
	e, ok := sh.m[key]
	var avg money.Nanos
	var count int64
	if ok {
		avg, count = e.avg, e.count
	}
	sh.mu.Unlock()
	if !ok {
		return Result{}
	}
	r := Result{Baseline: avg, Ratio: ratio(cost, avg), Warm: count >= s.warmUp, Count: count, NewBaseline: avg}
	r.Anomalous = r.Warm && cost >= s.floor && atLeast(cost, avg, s.mult)
	return r
}

// observe applies one observation to e; the caller holds e's shard lock.
func (s *Store) observe(e *entry, cost money.Nanos) Result {
	avg := e.avg
	r := Result{Baseline: avg, Ratio: ratio(cost, avg), Warm: e.count >= s.warmUp, Count: e.count + 1}
	e.count++
	e.push(cost)
	if !r.Warm {
		e.avg = meanPhase(avg, cost, e.count, s.alpha)
		e.fast = meanPhase(e.fast, cost, e.count, s.fastAlpha)
		r.NewBaseline = e.avg
		return r
	}
	e.fast = toward(e.fast, cost, s.fastAlpha)
	significant := cost >= s.floor
	r.Anomalous = significant && atLeast(cost, avg, s.mult)
	// The trend is computed only when a climb is plausible: the common path stays integer-only.
	rising := -1 // unknown
	isRising := func() bool {
		if rising < 0 {
			rising = 0
			if s.escCalls > 0 && e.count >= int64(s.escCalls) && e.slope(s.escCalls) >= s.escSlope {
				rising = 1
			}
		}
		return rising == 1
	}
	if s.escCalls > 0 && significant && atLeast(cost, avg, s.escRatio) && atLeast(e.fast, avg, s.escRatio) {
		r.Escalating = isRising()
	}

	dir := int8(0)
	switch {
	case atLeast(e.fast, avg, s.band) && e.fast > avg:
		dir = 1
	case atLeast(avg, e.fast, s.band) && avg > e.fast:
		dir = -1
	}
	switch {
	case dir == 0:
		e.dir, e.run = 0, 0
	case dir == e.dir:
		e.run = min(e.run+1, math.MaxInt32-1)
	default:
		e.dir, e.run = dir, 1
	}
	inBand := !(atLeast(cost, avg, s.band) && cost > avg) && !(atLeast(avg, cost, s.band) && avg > cost)
	switch {
	case dir != 0 && e.run >= s.shiftCalls && (dir < 0 || s.escCalls == 0 || !isRising()):
		e.avg = e.fast
		e.dir, e.run = 0, 0
		r.LevelShift = true
	case inBand:
		e.avg = s.step(avg, cost)
	}
	r.NewBaseline = e.avg
	return r
}

// Lookup returns key's baseline and observation count without counting as a use of the key.
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

// LevelShifts returns how many level shifts have been learned since the Store was created.
func (s *Store) LevelShifts() uint64 { return s.shifts.Load() }

// meanPhase returns the average after the n-th warm-up observation in: the plain mean while 1/n is
// above alpha, then the EWMA with weight alpha.
func meanPhase(avg, in money.Nanos, n, alpha int64) money.Nanos {
	w := alpha
	if n < ppm && n*alpha < ppm {
		w = (ppm + n/2) / n
	}
	return blend(avg, in, w)
}

// blend returns (1 − w) × avg + w × in, w in parts per million, rounded half-even.
func blend(avg, in money.Nanos, w int64) money.Nanos {
	var acc money.Acc
	acc.Add(int64(avg), money.Rate(ppm-w))
	acc.Add(int64(in), money.Rate(w))
	out, ok := acc.Nanos()
	if !ok { // unreachable: a weighted mean never exceeds its larger operand
		return in
	}
	return out
}

// step moves avg towards the in-band cost by alpha × the deviation clipped to ±clip × avg, rounded
// once, half-even.
func (s *Store) step(avg, cost money.Nanos) money.Nanos {
	d := cost - avg
	if d < 0 {
		d = -d
	}
	var move money.Nanos
	if atLeast(d, avg, s.clip) {
		move = mulDiv(avg, s.clip*s.alpha, ppm*ppm)
	} else {
		move = mulDiv(d, s.alpha, ppm)
	}
	if cost < avg {
		return avg - move
	}
	return avg + move
}

// toward returns avg moved by w (parts per million) of the way to in, rounded half-even: the EWMA
// (1 − w) × avg + w × in.
func toward(avg, in money.Nanos, w int64) money.Nanos {
	if in >= avg {
		return avg + mulDiv(in-avg, w, ppm)
	}
	return avg - mulDiv(avg-in, w, ppm)
}

// mulDiv returns v × f / den rounded half-even, for non-negative v and f, and f ≤ den ≤ 10^12
// (the 128-bit product's high word then stays below den, so the division cannot overflow).
func mulDiv(v money.Nanos, f, den int64) money.Nanos {
	hi, lo := bits.Mul64(uint64(v), uint64(f))
	q, r := bits.Div64(hi, lo, uint64(den))
	if r > uint64(den)-r || (r == uint64(den)-r && q&1 == 1) {
		q++
	}
	return money.Nanos(q)
}

// atLeast reports a ≥ factor × b exactly, factor in parts per million.
func atLeast(a, b money.Nanos, factor int64) bool {
	chi, clo := bits.Mul64(uint64(a), ppm)
	bhi, blo := bits.Mul64(uint64(b), uint64(factor))
	return chi > bhi || (chi == bhi && clo >= blo)
}

// push records cost in the ring of recent costs.
func (e *entry) push(cost money.Nanos) {
	e.recent[e.pos] = float32(cost)
	e.pos = (e.pos + 1) % maxEscalationCalls
}

// slope returns the least-squares slope of ln(cost) over the last n observations (n ≤ the ring's
// size and ≤ count), per observation. A zero cost counts as one nano-dollar.
func (e *entry) slope(n int) float64 {
	var sumY, sumXY float64
	for k := range n {
		idx := (int(e.pos) - n + k + 2*maxEscalationCalls) % maxEscalationCalls
		y := math.Log(max(float64(e.recent[idx]), 1))
		sumY += y
		sumXY += float64(k) * y
	}
	fn := float64(n)
	xMean := (fn - 1) / 2
	sxx := fn * (fn*fn - 1) / 12
	return (sumXY - xMean*sumY) / sxx
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

// snapshotVersion is the version of the format Snapshot writes. Version 1 (baseline and count only)
// is still restored: its fast average starts at the baseline.
const snapshotVersion = 2

type snapshotDoc struct {
	Version int             `json:"version"`
	Entries []snapshotEntry `json:"entries"`
}

type snapshotEntry struct {
	Key      string `json:"key"`
	Baseline int64  `json:"baseline_nanos"`
	Count    int64  `json:"count"`
	Fast     *int64 `json:"fast_nanos,omitempty"`
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
			fast := int64(e.fast)
			doc.Entries = append(doc.Entries, snapshotEntry{Key: e.key, Baseline: int64(e.avg), Count: e.count, Fast: &fast})
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
	if *doc.Version != 1 && *doc.Version != snapshotVersion {
		return fmt.Errorf("baseline snapshot version %d is not supported (want 1 or %d)", *doc.Version, snapshotVersion)
	}
	seen := make(map[string]struct{}, len(doc.Entries))
	for i, e := range doc.Entries {
		switch {
		case e.Baseline < 0:
			return fmt.Errorf("baseline snapshot entry %d (key %q): baseline_nanos must not be negative", i, e.Key)
		case e.Count < 1:
			return fmt.Errorf("baseline snapshot entry %d (key %q): count must be at least 1", i, e.Key)
		case e.Fast != nil && *e.Fast < 0:
			return fmt.Errorf("baseline snapshot entry %d (key %q): fast_nanos must not be negative", i, e.Key)
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
		e := &entry{key: se.Key, avg: money.Nanos(se.Baseline), fast: money.Nanos(se.Baseline), count: se.Count}
		if se.Fast != nil {
			e.fast = money.Nanos(*se.Fast)
		}
		// The trend starts afresh: the recent costs are not kept, so the ring holds the baseline.
		for range maxEscalationCalls {
			e.push(e.avg)
		}
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
