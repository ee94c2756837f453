package baseline

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/agentcost/agentcost/internal/money"
)

const usd = money.NanosPerUSD

func mustNew(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// warm observes cost n times under key, so that its baseline is exactly cost.
func warm(s *Store, key string, cost money.Nanos, n int) {
	for range n {
		s.Observe(key, cost)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"alpha zero", func(c *Config) { c.Alpha = 0 }, "alpha"},
		{"alpha above one", func(c *Config) { c.Alpha = 1.5 }, "alpha"},
		{"alpha below a millionth", func(c *Config) { c.Alpha = 1e-9 }, "alpha"},
		{"negative warm-up", func(c *Config) { c.WarmUp = -1 }, "warm_up"},
		{"multiplier below one", func(c *Config) { c.Multiplier = 0.5 }, "multiplier"},
		{"multiplier huge", func(c *Config) { c.Multiplier = 1e9 }, "multiplier"},
		{"negative floor", func(c *Config) { c.Floor = -1 }, "floor"},
		{"no keys", func(c *Config) { c.MaxKeys = 0 }, "max_keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.edit(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tt.field+" ") {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tt.field)
			}
			if _, err := New(cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestWarmUp(t *testing.T) {
	cfg := DefaultConfig()
	s := mustNew(t, cfg)
	// Nine $1 calls, then a $100 call as the tenth: still warming up, so not flagged.
	warm(s, "k", usd, int(cfg.WarmUp)-1)
	r := s.Observe("k", 100*usd)
	if r.Anomalous || r.Warm || r.Count != cfg.WarmUp {
		t.Fatalf("tenth observation = %+v, want unflagged and not warm", r)
	}
	// The unflagged spike entered the average in full (the EWMA phase starts at 1/alpha = 5).
	wantBase := money.Nanos(usd*8/10 + 100*usd*2/10)
	r = s.Observe("k", 3*wantBase)
	if !r.Warm || !r.Anomalous || r.Baseline != wantBase || r.Count != cfg.WarmUp+1 {
		t.Fatalf("eleventh observation = %+v, want anomalous against baseline %d", r, wantBase)
	}

	// With no warm-up the second observation can already be flagged, never the first.
	cfg.WarmUp = 0
	s = mustNew(t, cfg)
	if r := s.Observe("k", 100*usd); r.Anomalous || r.Warm || r.Count != 1 {
		t.Fatalf("first observation = %+v", r)
	}
	if r := s.Observe("k", 300*usd); !r.Anomalous || r.Ratio != 3 {
		t.Fatalf("second observation = %+v, want anomalous with ratio 3", r)
	}
}

func TestMultiplierBoundaries(t *testing.T) {
	tests := []struct {
		name       string
		multiplier float64
		base       money.Nanos
		cost       money.Nanos
		want       bool
	}{
		{"exactly 3x", 3, usd, 3 * usd, true},
		{"one nano below 3x", 3, usd, 3*usd - 1, false},
		{"3x of an odd baseline", 3, 333_333_333, 999_999_999, true},
		{"below 3x of an odd baseline", 3, 333_333_333, 999_999_998, false},
		// 2.5 × 333,333,333 = 833,333,332.5: the first whole nano at or above it is flagged.
		{"2.5x rounds up to the next nano", 2.5, 333_333_333, 833_333_333, true},
		{"2.5x one nano short", 2.5, 333_333_333, 833_333_332, false},
		{"far above", 3, usd, 1000 * usd, true},
		{"equal to baseline", 3, usd, usd, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Multiplier = tt.multiplier
			s := mustNew(t, cfg)
			warm(s, "k", tt.base, int(cfg.WarmUp))
			r := s.Observe("k", tt.cost)
			if r.Anomalous != tt.want {
				t.Fatalf("Observe(%d) against %d = %+v, want anomalous=%v", tt.cost, tt.base, r, tt.want)
			}
			if r.Baseline != tt.base {
				t.Fatalf("baseline = %d, want %d", r.Baseline, tt.base)
			}
			if want := float64(tt.cost) / float64(tt.base); r.Ratio != want {
				t.Fatalf("ratio = %v, want %v", r.Ratio, want)
			}
		})
	}
}

func TestFloor(t *testing.T) {
	const base = money.Nanos(usd / 1000) // $0.001
	tests := []struct {
		name  string
		floor money.Nanos
		cost  money.Nanos
		want  bool
	}{
		{"10x but below the default floor", DefaultConfig().Floor, DefaultConfig().Floor - 1, false},
		{"at the default floor", DefaultConfig().Floor, DefaultConfig().Floor, true},
		{"3x with no floor", 0, 3 * base, true},
		{"3x under a higher floor", usd, 3 * base, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Floor = tt.floor
			s := mustNew(t, cfg)
			warm(s, "k", base, int(cfg.WarmUp))
			if r := s.Observe("k", tt.cost); r.Anomalous != tt.want {
				t.Fatalf("Observe(%d) = %+v, want anomalous=%v", tt.cost, r, tt.want)
			}
		})
	}
}

func TestAverage(t *testing.T) {
	s := mustNew(t, DefaultConfig())
	// Mean phase: the first observations weigh 1/n, so four calls of $1..$4 average $2.50 to within
	// the millionth in which weights are held.
	for i := range 4 {
		s.Observe("mean", money.Nanos(i+1)*usd)
	}
	got, n, _ := s.Lookup("mean")
	if diff := got - 5*usd/2; n != 4 || diff < -2500 || diff > 2500 {
		t.Fatalf("mean of $1..$4 = %d after %d, want 2500000000 ± 2500", got, n)
	}

	// After warm-up, exact: an in-band call moves the baseline by alpha × its deviation clipped to
	// ±5% of the baseline: from $1, $1.02 gives 1 + 0.2 × 0.02 = $1.004; $1.40 (in the 1.5x band)
	// moves it by the clipped 0.2 × 0.0502 = $0.01004; $0.80 by −0.2 × 0.05070200.
	warm(s, "ewma", usd, 10)
	for _, step := range []struct{ cost, want money.Nanos }{
		{1_020_000_000, 1_004_000_000},
		{1_400_000_000, 1_014_040_000},
		{800_000_000, 1_003_899_600},
		{2 * usd, 1_003_899_600}, // beyond the band: the baseline does not move
	} {
		if r := s.Observe("ewma", step.cost); r.Anomalous {
			t.Fatalf("Observe(%d) flagged", step.cost)
		}
		if got, _, _ := s.Lookup("ewma"); got != step.want {
			t.Fatalf("after %d: baseline %d, want %d", step.cost, got, step.want)
		}
	}

	// A negative cost counts as zero.
	warm(s, "neg", usd, 10)
	s.Observe("neg", -5*usd)
	if got, _, _ := s.Lookup("neg"); got != usd {
		t.Fatalf("after a negative cost (zero, beyond the band) baseline = %d, want %d", got, usd)
	}
}

func TestAnomalyDoesNotMoveTheBaseline(t *testing.T) {
	cfg := DefaultConfig()
	s := mustNew(t, cfg)
	warm(s, "k", usd, int(cfg.WarmUp))

	// One 100x spike: flagged, and the baseline does not chase it.
	if r := s.Observe("k", 100*usd); !r.Anomalous || r.Ratio != 100 || r.LevelShift {
		t.Fatalf("spike = %+v", r)
	}
	if got, _, _ := s.Lookup("k"); got != usd {
		t.Fatalf("baseline after one spike = %d, want %d", got, usd)
	}

	// A sustained shift to $10 becomes the new normal: the flag clears within shift_calls + a few
	// and the level shift is reported once.
	cleared, shifts := -1, 0
	for i := range 60 {
		r := s.Observe("k", 10*usd)
		if r.LevelShift {
			shifts++
		}
		if !r.Anomalous && cleared < 0 {
			cleared = i
		}
	}
	if cleared < 0 || cleared > 10 || shifts != 1 || s.LevelShifts() != 1 {
		t.Fatalf("sustained $10 calls cleared the flag after %d calls with %d level shifts, want within 10 and one", cleared, shifts)
	}
	if got, _, _ := s.Lookup("k"); got < 9_990_000_000 || got > 10_010_000_000 {
		t.Fatalf("baseline after the shift = %d, want ≈ $10", got)
	}
}

func TestZeroBaselineRatioIsFinite(t *testing.T) {
	s := mustNew(t, DefaultConfig())
	warm(s, "free", 0, 10)
	r := s.Observe("free", usd)
	if !r.Anomalous || r.Ratio != float64(usd) {
		t.Fatalf("$1 after $0 calls = %+v, want anomalous with ratio %d", r, usd)
	}
}

func TestEvictionLRU(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxKeys = 3
	s, err := newStore(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		s.Observe(k, usd)
	}
	s.Observe("a", usd) // a is now the most recent; b the least
	s.Lookup("b")       // a lookup is not a use
	if s.Len() != 3 || s.Evictions() != 0 {
		t.Fatalf("at the bound: len %d evictions %d, want 3 and 0", s.Len(), s.Evictions())
	}
	s.Observe("d", usd)
	if s.Len() != 3 || s.Evictions() != 1 {
		t.Fatalf("past the bound: len %d evictions %d, want 3 and 1", s.Len(), s.Evictions())
	}
	for k, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
		if _, _, ok := s.Lookup(k); ok != want {
			t.Errorf("key %q present = %v, want %v", k, ok, want)
		}
	}
}

func TestEvictionSharded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxKeys = 5
	s := mustNew(t, cfg)
	const inserted = 40
	for i := range inserted {
		s.Observe(fmt.Sprintf("key-%d", i), usd)
		if s.Len() > cfg.MaxKeys {
			t.Fatalf("after %d inserts len = %d, above the bound %d", i+1, s.Len(), cfg.MaxKeys)
		}
	}
	if s.Len() != cfg.MaxKeys || s.Evictions() != inserted-uint64(cfg.MaxKeys) {
		t.Fatalf("len %d evictions %d, want %d and %d", s.Len(), s.Evictions(), cfg.MaxKeys, inserted-cfg.MaxKeys)
	}
	if _, _, ok := s.Lookup(fmt.Sprintf("key-%d", inserted-1)); !ok {
		t.Fatal("the most recent key was evicted")
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	cfg := DefaultConfig()
	src := mustNew(t, cfg)
	for i := range 50 {
		key := fmt.Sprintf("agent-%d/model", i)
		for j := range i%13 + 1 {
			src.Observe(key, money.Nanos((i+1)*(j+3))*1_234_567)
		}
	}
	b, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	dst := mustNew(t, cfg)
	dst.Observe("stale", usd) // replaced by the restore
	if err := dst.Restore(b); err != nil {
		t.Fatal(err)
	}
	if dst.Len() != src.Len() {
		t.Fatalf("restored %d keys, want %d", dst.Len(), src.Len())
	}
	if _, _, ok := dst.Lookup("stale"); ok {
		t.Fatal("restore kept a key absent from the snapshot")
	}
	for i := range 50 {
		key := fmt.Sprintf("agent-%d/model", i)
		wb, wn, _ := src.Lookup(key)
		gb, gn, ok := dst.Lookup(key)
		if !ok || gb != wb || gn != wn {
			t.Fatalf("%s: restored (%d, %d, %v), want (%d, %d)", key, gb, gn, ok, wb, wn)
		}
		cost := 3*wb + 7
		if w, g := src.Observe(key, cost), dst.Observe(key, cost); w != g {
			t.Fatalf("%s: after restore Observe = %+v, original store gives %+v", key, g, w)
		}
	}
}

func TestRestoreKeepsRecencyAndBound(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxKeys = 2
	src, _ := newStore(cfg, 1)
	src.Observe("old", usd)
	src.Observe("mid", usd)
	src.Observe("old", usd) // order, least recent first: mid, old
	b, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := newStore(cfg, 1)
	if err := dst.Restore(b); err != nil {
		t.Fatal(err)
	}
	dst.Observe("new", usd)
	if _, _, ok := dst.Lookup("mid"); ok {
		t.Fatal("the least recently used key survived the restore and a new insert")
	}

	// A snapshot larger than MaxKeys keeps its most recent entries and counts the rest as evicted.
	big := []byte(`{"version":1,"entries":[{"key":"a","baseline_nanos":1,"count":1},` +
		`{"key":"b","baseline_nanos":2,"count":1},{"key":"c","baseline_nanos":3,"count":1}]}`)
	small, _ := newStore(cfg, 1)
	if err := small.Restore(big); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := small.Lookup("a"); ok || small.Len() != 2 || small.Evictions() != 1 {
		t.Fatalf("len %d evictions %d, a kept=%v; want 2, 1, false", small.Len(), small.Evictions(), ok)
	}
}

func TestRestoreRejectsCorruptSnapshots(t *testing.T) {
	s := mustNew(t, DefaultConfig())
	warm(s, "k", usd, 3)
	good, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data string
		want string
	}{
		{"empty", "", "decoding"},
		{"truncated", string(good[:len(good)/2]), "decoding"},
		{"not an object", `[1,2]`, "decoding"},
		{"no version", `{"entries":[]}`, "no version"},
		{"future version", `{"version":3,"entries":[]}`, "version 3"},
		{"negative fast average", `{"version":2,"entries":[{"key":"x","baseline_nanos":1,"count":1,"fast_nanos":-1}]}`, "fast_nanos"},
		{"negative baseline", `{"version":1,"entries":[{"key":"x","baseline_nanos":-1,"count":1}]}`, "baseline_nanos"},
		{"zero count", `{"version":1,"entries":[{"key":"x","baseline_nanos":1,"count":0}]}`, "count"},
		{"duplicate key", `{"version":1,"entries":[{"key":"x","baseline_nanos":1,"count":1},{"key":"x","baseline_nanos":1,"count":1}]}`, "duplicate"},
		{"overflowing baseline", `{"version":1,"entries":[{"key":"x","baseline_nanos":99999999999999999999,"count":1}]}`, "decoding"},
		{"wrong type", `{"version":1,"entries":[{"key":7,"baseline_nanos":1,"count":1}]}`, "decoding"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Restore([]byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Restore = %v, want an error mentioning %q", err, tt.want)
			}
			if b, n, ok := s.Lookup("k"); !ok || b != usd || n != 3 || s.Len() != 1 {
				t.Fatal("a rejected snapshot changed the store")
			}
		})
	}
	var doc map[string]any
	if err := json.Unmarshal(good, &doc); err != nil || doc["version"] != float64(2) {
		t.Fatalf("snapshot is not versioned JSON: %s", good)
	}
}

func TestConcurrentObserve(t *testing.T) {
	cfg := DefaultConfig()
	s := mustNew(t, cfg)
	const workers, keys, rounds = 8, 16, 200
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				for k := range keys {
					s.Observe(fmt.Sprintf("k%d", (k+w)%keys), money.Nanos(r%7+1)*usd)
				}
			}
		})
	}
	wg.Wait()
	for k := range keys {
		_, n, ok := s.Lookup(fmt.Sprintf("k%d", k))
		if !ok || n != workers*rounds {
			t.Fatalf("k%d counted %d observations, want %d", k, n, workers*rounds)
		}
	}

	// Concurrent inserts past the bound: every distinct key is either held or counted as evicted.
	cfg.MaxKeys = 8
	s = mustNew(t, cfg)
	for w := range workers {
		wg.Go(func() {
			for i := range 300 {
				s.Observe(fmt.Sprintf("w%d-%d", w, i), usd)
			}
		})
	}
	wg.Wait()
	if s.Len() > cfg.MaxKeys || uint64(s.Len())+s.Evictions() != workers*300 {
		t.Fatalf("len %d + evictions %d, want len ≤ %d and a sum of %d", s.Len(), s.Evictions(), cfg.MaxKeys, workers*300)
	}
}

func TestObserveExistingKeyDoesNotAllocate(t *testing.T) {
	s := mustNew(t, DefaultConfig())
	warm(s, "agent/model", usd, 20)
	allocs := testing.AllocsPerRun(1000, func() { s.Observe("agent/model", 2*usd) })
	if allocs != 0 {
		t.Fatalf("Observe on an existing key allocates %v times", allocs)
	}
}

func BenchmarkObserve(b *testing.B) {
	s := mustNew(b, DefaultConfig())
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("agent-%d/gpt-5.4-mini", i)
		warm(s, keys[i], usd, 20)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			s.Observe(keys[i&63], money.Nanos(i&7+1)*usd/10)
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				s.Observe(keys[i&63], money.Nanos(i&7+1)*usd/10)
				i++
			}
		})
	})
}
