package pricing

import (
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
)

const (
	cacheShards          = 16
	defaultCacheCapacity = 4096
)

// lookupCache remembers how raw (model, provider) names resolved, misses included, so a span never
// repeats the matching rules. It is sharded to keep lock contention low and bounded: a full shard
// drops an arbitrary name to make room, and the drops are counted.
type lookupCache struct {
	seed      maphash.Seed
	perShard  int
	evictions atomic.Uint64
	shards    [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[cacheKey]Hit
	_  [40]byte // keep shards on separate cache lines
}

type cacheKey struct {
	model, provider string
}

func newLookupCache(capacity int) *lookupCache {
	per := capacity / cacheShards
	if per < 1 {
		per = 1
	}
	c := &lookupCache{seed: maphash.MakeSeed(), perShard: per}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]Hit)
	}
	return c
}

func (c *lookupCache) shard(model string) *cacheShard {
	return &c.shards[maphash.String(c.seed, model)%cacheShards]
}

// get returns the cached resolution; ok is false when the names were never resolved (a cached
// miss is ok with a nil entry).
func (c *lookupCache) get(model, provider string) (h Hit, ok bool) {
	s := c.shard(model)
	s.mu.RLock()
	h, ok = s.m[cacheKey{model, provider}]
	s.mu.RUnlock()
	return h, ok
}

func (c *lookupCache) put(model, provider string, e Hit) {
	// Span attribute strings may share memory with a large request buffer: keep copies.
	k := cacheKey{strings.Clone(model), strings.Clone(provider)}
	s := c.shard(model)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; ok {
		return
	}
	if len(s.m) >= c.perShard {
		for old := range s.m {
			delete(s.m, old)
			c.evictions.Add(1)
			break
		}
	}
	s.m[k] = e
}

func (c *lookupCache) stats() CacheStats {
	st := CacheStats{Capacity: c.perShard * cacheShards, Evictions: c.evictions.Load()}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		st.Entries += len(s.m)
		s.mu.RUnlock()
	}
	return st
}
