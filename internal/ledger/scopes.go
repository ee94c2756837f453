package ledger

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// validateActiveIDs checks an ActiveIDs call.
func validateActiveIDs(scope Scope, limit int) error {
	if scope != ScopeAgent && scope != ScopeTeam && scope != ScopeModel {
		return fmt.Errorf("active ids: scope %q is not agent, team or model", scope)
	}
	if limit <= 0 {
		return fmt.Errorf("active ids: limit %d is not positive", limit)
	}
	return nil
}

// mergeIDs sorts and dedupes ids and keeps the first limit.
func mergeIDs(ids []string, limit int) []string {
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > limit {
		ids = ids[:limit]
	}
	return ids
}

// ActiveIDs implements Ledger: a seek per calendar window into the counters of scope.
func (e *Embedded) ActiveIDs(ctx context.Context, scope Scope, after string, limit int, now time.Time) ([]string, error) {
	if err := validateActiveIDs(scope, limit); err != nil {
		return nil, err
	}
	now = at(now)
	// Apply the journaled reservations first, so that the counters they created are listed.
	if err := e.check(ctx); err != nil {
		return nil, err
	}
	if err := e.applyJournal(); err != nil {
		return nil, err
	}
	e.pending.mu.RLock()
	defer e.pending.mu.RUnlock()
	var ids []string
	err := e.view(ctx, func(t *txn) error {
		applied := t.appliedSeq()
		c := t.counters().Cursor()
		for _, w := range CalendarWindows {
			prefix := counterKey(e.cal.counter(scope, "", w, now))
			found := 0
			for k, v := c.Seek(append(bytes.Clone(prefix), after...)); k != nil && bytes.HasPrefix(k, prefix) && found < limit; k, v = c.Next() {
				key, ok := e.decodeCounterKey(k)
				if !ok || key.ID <= after {
					continue
				}
				if cv := e.pending.onto(decodeCounterValue(v), key, applied); cv.spent == 0 && cv.reserved == 0 {
					continue
				}
				ids = append(ids, key.ID)
				found++
			}
		}
		return nil
	})
	return mergeIDs(ids, limit), err
}

// ActiveIDs implements Ledger. A window's index is an unordered set, so each call scans the
// indexes of the current windows and reads the counters of the smallest candidates.
func (r *Redis) ActiveIDs(ctx context.Context, scope Scope, after string, limit int, now time.Time) ([]string, error) {
	if err := validateActiveIDs(scope, limit); err != nil {
		return nil, err
	}
	now = at(now)
	type cand struct {
		id string
		k  counter
	}
	var cands []cand
	for _, w := range CalendarWindows {
		win := r.cal.counter(scope, "", w, now)
		iter := r.client.SScan(ctx, r.indexKey(w, win.Start), 0, string(scope)+":*", 1000).Iterator()
		for iter.Next(ctx) {
			s, id, ok := strings.Cut(iter.Val(), ":")
			if !ok || Scope(s) != scope || id <= after {
				continue
			}
			k := win
			k.ID = id
			cands = append(cands, cand{id, k})
		}
		if err := iter.Err(); err != nil {
			return nil, fmt.Errorf("listing %s scopes: %w", scope, r.wrap(err))
		}
	}
	slices.SortFunc(cands, func(a, b cand) int { return strings.Compare(a.id, b.id) })
	var ids []string
	for len(cands) > 0 && len(ids) < limit {
		chunk := cands[:min(len(cands), 2*limit)]
		cands = cands[len(chunk):]
		pipe := r.client.Pipeline()
		cmds := make([]*redis.SliceCmd, len(chunk))
		for i, c := range chunk {
			cmds[i] = pipe.HMGet(ctx, r.counterKey(c.k), "s", "r")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("reading %s scopes: %w", scope, r.wrap(err))
		}
		for i, c := range chunk {
			v := cmds[i].Val()
			if asNanos(v[0]) != 0 || max(asNanos(v[1]), 0) != 0 {
				if len(ids) == 0 || ids[len(ids)-1] != c.id {
					ids = append(ids, c.id)
				}
			}
		}
	}
	return mergeIDs(ids, limit), nil
}
