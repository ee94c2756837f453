package ledger

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"
)

// FreezeScope is what a freeze stops: the whole fleet, one team, one agent or one run.
type FreezeScope string

// The freeze scopes.
const (
	FreezeFleet FreezeScope = "fleet"
	FreezeTeam  FreezeScope = "team"
	FreezeAgent FreezeScope = "agent"
	FreezeRun   FreezeScope = "run"
)

// ParseFreezeScope parses a scope name.
func ParseFreezeScope(s string) (FreezeScope, error) {
	switch sc := FreezeScope(s); sc {
	case FreezeFleet, FreezeTeam, FreezeAgent, FreezeRun:
		return sc, nil
	}
	return "", fmt.Errorf("unknown freeze scope %q (want fleet, team, agent or run)", s)
}

// FreezeState is where a freeze is: active until lifted or past its expiry.
type FreezeState string

// The freeze states.
const (
	FreezeActive  FreezeState = "active"
	FreezeLifted  FreezeState = "lifted"
	FreezeExpired FreezeState = "expired"
)

// Freeze is an emergency brake a reviewer put on a scope: while active, every decision in the
// scope is denied and every running action in it is told to stop (lease checks).
type Freeze struct {
	ID    string      `json:"id"`
	Scope FreezeScope `json:"scope"`
	// ScopeID is the team, agent or run id; empty for the fleet.
	ScopeID   string    `json:"scope_id,omitempty"`
	Reason    string    `json:"reason"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt, when set, ends the freeze without a lift.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	LiftedBy  string    `json:"lifted_by,omitempty"`
	LiftedAt  time.Time `json:"lifted_at,omitzero"`
}

// StateAt returns the freeze's state at now.
func (f Freeze) StateAt(now time.Time) FreezeState {
	switch {
	case !f.LiftedAt.IsZero():
		return FreezeLifted
	case !f.ExpiresAt.IsZero() && !now.Before(f.ExpiresAt):
		return FreezeExpired
	}
	return FreezeActive
}

// Applies reports whether the freeze covers an action of agent, team and run.
func (f Freeze) Applies(agent, team, run string) bool {
	switch f.Scope {
	case FreezeFleet:
		return true
	case FreezeTeam:
		return team != "" && f.ScopeID == team
	case FreezeAgent:
		return agent != "" && f.ScopeID == agent
	case FreezeRun:
		return run != "" && f.ScopeID == run
	}
	return false
}

// Cursor returns the cursor that lists the freezes after f (creation time, then id).
func (f Freeze) Cursor() ApprovalCursor {
	return ApprovalCursor{CreatedMicros: micros(f.CreatedAt), ID: f.ID}
}

func (f Freeze) validate() error {
	if f.ID == "" {
		return errors.New("freeze id is empty")
	}
	if _, err := ParseFreezeScope(string(f.Scope)); err != nil {
		return err
	}
	switch {
	case f.Scope == FreezeFleet && f.ScopeID != "":
		return errors.New("a fleet freeze has no scope id")
	case f.Scope != FreezeFleet && f.ScopeID == "":
		return fmt.Errorf("a %s freeze needs a scope id", f.Scope)
	case f.CreatedAt.IsZero():
		return errors.New("freeze creation time is not set")
	case !f.ExpiresAt.IsZero() && !f.ExpiresAt.After(f.CreatedAt):
		return errors.New("freeze expires before it is created")
	}
	return nil
}

// LeaseInfo is what a lease check reads: the reservation behind the lease and the freezes active
// at the time of the read, in one read.
type LeaseInfo struct {
	ID        string
	Agent     string
	Team      string
	RunID     string
	Action    string
	CreatedAt time.Time
	ExpiresAt time.Time
	Settled   bool
	Reason    SettleReason
	SettledAt time.Time
	// Freezes are the freezes active at the read (every scope; the caller matches them).
	Freezes []Freeze
}

// Freezer stores freezes. Both backends implement it (see Ledger).
type Freezer interface {
	// CreateFreeze stores a new active freeze. An existing ID returns ErrExists.
	CreateFreeze(ctx context.Context, f Freeze) (Freeze, error)
	// LiftFreeze lifts an active freeze; by is the reviewer. An unknown ID returns ErrNotFound, a
	// freeze already lifted or expired a *FreezeStateError (errors.Is ErrConflict).
	LiftFreeze(ctx context.Context, id, by string, now time.Time) (Freeze, error)
	// ListFreezes returns up to limit freezes (limit <= 0: 1000) after the cursor in creation
	// order; activeOnly keeps those active at now.
	ListFreezes(ctx context.Context, activeOnly bool, after ApprovalCursor, limit int, now time.Time) ([]Freeze, error)
	// LeaseInfo reads the reservation id (ErrNotFound when unknown or forgotten) and the active
	// freezes in one read transaction (embedded) or one round trip (Redis).
	LeaseInfo(ctx context.Context, id string, now time.Time) (LeaseInfo, error)
}

// FreezeStateError is returned when lifting a freeze that is not active.
type FreezeStateError struct {
	ID    string
	State FreezeState
}

func (e *FreezeStateError) Error() string {
	return fmt.Sprintf("freeze %q is %s: cannot lift", e.ID, e.State)
}

// Is makes every FreezeStateError match ErrConflict.
func (e *FreezeStateError) Is(target error) bool { return target == ErrConflict }

// activeFreezes keeps the freezes active at now, in creation order.
func activeFreezes(fs []Freeze, now time.Time) []Freeze {
	fs = slices.DeleteFunc(fs, func(f Freeze) bool { return f.StateAt(now) != FreezeActive })
	sortFreezes(fs)
	return fs
}

func sortFreezes(fs []Freeze) {
	slices.SortFunc(fs, func(a, b Freeze) int {
		if c := cmp.Compare(micros(a.CreatedAt), micros(b.CreatedAt)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// pageFreezes keeps, in creation order, the first limit freezes after the cursor.
func pageFreezes(fs []Freeze, activeOnly bool, after ApprovalCursor, limit int, now time.Time) []Freeze {
	if limit <= 0 {
		limit = 1000
	}
	fs = slices.DeleteFunc(fs, func(f Freeze) bool {
		return (!after.IsZero() && f.Cursor().compare(after) <= 0) || (activeOnly && f.StateAt(now) != FreezeActive)
	})
	sortFreezes(fs)
	if len(fs) > limit {
		fs = fs[:limit]
	}
	return fs
}

func decodeFreezes[T string | []byte](vals []T) ([]Freeze, error) {
	out := make([]Freeze, 0, len(vals))
	for _, v := range vals {
		var f Freeze
		if err := json.Unmarshal([]byte(v), &f); err != nil {
			return nil, fmt.Errorf("decoding freeze: %w", err)
		}
		out = append(out, f)
	}
	return out, nil
}

func leaseInfoOf(r *reservation) LeaseInfo {
	return LeaseInfo{ID: r.ID, Agent: r.Agent, Team: r.Team, RunID: r.RunID, Action: r.Action,
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, Settled: r.Settled, Reason: r.Reason, SettledAt: r.SettledAt}
}

// --- embedded ---

// Embedded buckets of freezes, created on the first freeze: every freeze by id (JSON), and the
// ids of the active ones (unlifted; expired ones are pruned when a freeze is created), which
// every decision reads.
var (
	bucketFreezes       = []byte("freezes")
	bucketFreezesActive = []byte("freezes_active")
)

// activeFreezesTx reads the active freezes at now (none when no freeze was ever created).
func activeFreezesTx(t *txn, now time.Time) ([]Freeze, error) {
	act, all := t.tx.Bucket(bucketFreezesActive), t.tx.Bucket(bucketFreezes)
	if act == nil || all == nil {
		return nil, nil
	}
	var vals [][]byte
	err := act.ForEach(func(k, _ []byte) error {
		if v := all.Get(k); v != nil {
			vals = append(vals, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	fs, err := decodeFreezes(vals)
	if err != nil {
		return nil, err
	}
	return activeFreezes(fs, now), nil
}

// newFreezeRecord readies a freeze to be created (its creation time set, no lift) and encodes it.
func newFreezeRecord(f Freeze) (Freeze, []byte, error) {
	f.CreatedAt = at(f.CreatedAt)
	f.LiftedBy, f.LiftedAt = "", time.Time{}
	if err := f.validate(); err != nil {
		return Freeze{}, nil, err
	}
	v, err := json.Marshal(f)
	return f, v, err
}

func freezeBuckets(t *txn) (all, act *bolt.Bucket, err error) {
	if all, err = t.tx.CreateBucketIfNotExists(bucketFreezes); err != nil {
		return nil, nil, err
	}
	act, err = t.tx.CreateBucketIfNotExists(bucketFreezesActive)
	return all, act, err
}

// CreateFreeze implements Freezer.
func (e *Embedded) CreateFreeze(ctx context.Context, f Freeze) (Freeze, error) {
	f, v, err := newFreezeRecord(f)
	if err != nil {
		return Freeze{}, err
	}
	err = e.update(ctx, func(t *txn) error {
		all, act, err := freezeBuckets(t)
		if err != nil {
			return err
		}
		if all.Get([]byte(f.ID)) != nil {
			return fmt.Errorf("freeze %q: %w", f.ID, ErrExists)
		}
		// Prune the active index of freezes that expired.
		var stale [][]byte
		_ = act.ForEach(func(k, _ []byte) error {
			var old Freeze
			if v := all.Get(k); v == nil || json.Unmarshal(v, &old) != nil || old.StateAt(f.CreatedAt) != FreezeActive {
				stale = append(stale, slices.Clone(k))
			}
			return nil
		})
		for _, k := range stale {
			if err := act.Delete(k); err != nil {
				return err
			}
		}
		if err := all.Put([]byte(f.ID), v); err != nil {
			return err
		}
		return act.Put([]byte(f.ID), nil)
	})
	if err != nil {
		return Freeze{}, err
	}
	return f, nil
}

// LiftFreeze implements Freezer.
func (e *Embedded) LiftFreeze(ctx context.Context, id, by string, now time.Time) (Freeze, error) {
	now = at(now)
	var out Freeze
	err := e.update(ctx, func(t *txn) error {
		all, act, err := freezeBuckets(t)
		if err != nil {
			return err
		}
		v := all.Get([]byte(id))
		if v == nil {
			return fmt.Errorf("freeze %q: %w", id, ErrNotFound)
		}
		var f Freeze
		if err := json.Unmarshal(v, &f); err != nil {
			return fmt.Errorf("decoding freeze %q: %w", id, err)
		}
		if st := f.StateAt(now); st != FreezeActive {
			out = f
			return &FreezeStateError{ID: id, State: st}
		}
		f.LiftedBy, f.LiftedAt = by, now
		nv, err := json.Marshal(f)
		if err != nil {
			return err
		}
		if err := all.Put([]byte(id), nv); err != nil {
			return err
		}
		out = f
		return act.Delete([]byte(id))
	})
	return out, err
}

// ListFreezes implements Freezer.
func (e *Embedded) ListFreezes(ctx context.Context, activeOnly bool, after ApprovalCursor, limit int, now time.Time) ([]Freeze, error) {
	now = at(now)
	var fs []Freeze
	err := e.view(ctx, func(t *txn) error {
		fs = nil
		b := t.tx.Bucket(bucketFreezes)
		if b == nil {
			return nil
		}
		var vals [][]byte
		if err := b.ForEach(func(_, v []byte) error { vals = append(vals, v); return nil }); err != nil {
			return err
		}
		var err error
		fs, err = decodeFreezes(vals)
		return err
	})
	if err != nil {
		return nil, err
	}
	return pageFreezes(fs, activeOnly, after, limit, now), nil
}

// LeaseInfo implements Freezer: one read transaction. A reservation still in the journal (granted
// a moment ago, not yet applied to the file) is read from the pending set, where it is open.
func (e *Embedded) LeaseInfo(ctx context.Context, id string, now time.Time) (LeaseInfo, error) {
	now = at(now)
	var out LeaseInfo
	e.pending.mu.RLock()
	defer e.pending.mu.RUnlock()
	err := e.view(ctx, func(t *txn) error {
		r, err := t.reservation(id)
		if err != nil {
			return err
		}
		if r == nil && e.pending.has(id) {
			r = e.pending.find(id)
		}
		if r == nil {
			return fmt.Errorf("reservation %q: %w", id, ErrNotFound)
		}
		out = leaseInfoOf(r)
		out.Freezes, err = activeFreezesTx(t, now)
		return err
	})
	return out, err
}

// find returns the pending reservation id, or nil. The caller holds mu (read).
func (p *pendingSet) find(id string) *reservation {
	for i := len(p.entries) - 1; i >= 0; i-- {
		if p.entries[i].res.ID == id {
			return p.entries[i].res
		}
	}
	return nil
}

// --- Redis ---

// freezesKey is the hash of every freeze (id → JSON); freezesActiveKey the hash of the active
// ones, which every decision reads.
func (r *Redis) freezesKey() string       { return r.prefix + "fz" }
func (r *Redis) freezesActiveKey() string { return r.prefix + "fza" }

// freezeCreateScript: KEYS all, active; ARGV id, json, stale ids... → 1 created, 0 exists.
var freezeCreateScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
for i = 3, #ARGV do redis.call('HDEL', KEYS[2], ARGV[i]) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
`)

// freezeLiftScript: KEYS all, active; ARGV id, old json, new json → 1 lifted, 0 changed meanwhile.
var freezeLiftScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`)

// CreateFreeze implements Freezer.
func (r *Redis) CreateFreeze(ctx context.Context, f Freeze) (Freeze, error) {
	f, v, err := newFreezeRecord(f)
	if err != nil {
		return Freeze{}, err
	}
	args := []any{f.ID, string(v)}
	act, err := r.client.HGetAll(ctx, r.freezesActiveKey()).Result()
	if err != nil {
		return Freeze{}, fmt.Errorf("reading freezes: %w", r.wrap(err))
	}
	for id, js := range act {
		var old Freeze
		if json.Unmarshal([]byte(js), &old) != nil || old.StateAt(f.CreatedAt) != FreezeActive {
			args = append(args, id)
		}
	}
	n, err := r.run(ctx, freezeCreateScript, []string{r.freezesKey(), r.freezesActiveKey()}, args...).Int()
	if err != nil {
		return Freeze{}, fmt.Errorf("creating freeze %q: %w", f.ID, r.wrap(err))
	}
	if n == 0 {
		return Freeze{}, fmt.Errorf("freeze %q: %w", f.ID, ErrExists)
	}
	return f, nil
}

// LiftFreeze implements Freezer.
func (r *Redis) LiftFreeze(ctx context.Context, id, by string, now time.Time) (Freeze, error) {
	now = at(now)
	for range 10 {
		old, err := r.client.HGet(ctx, r.freezesKey(), id).Result()
		if errors.Is(err, redis.Nil) {
			return Freeze{}, fmt.Errorf("freeze %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return Freeze{}, fmt.Errorf("reading freeze %q: %w", id, r.wrap(err))
		}
		var f Freeze
		if err := json.Unmarshal([]byte(old), &f); err != nil {
			return Freeze{}, fmt.Errorf("decoding freeze %q: %w", id, err)
		}
		if st := f.StateAt(now); st != FreezeActive {
			return f, &FreezeStateError{ID: id, State: st}
		}
		f.LiftedBy, f.LiftedAt = by, now
		nv, err := json.Marshal(f)
		if err != nil {
			return Freeze{}, err
		}
		n, err := r.run(ctx, freezeLiftScript, []string{r.freezesKey(), r.freezesActiveKey()}, id, old, string(nv)).Int()
		if err != nil {
			return Freeze{}, fmt.Errorf("lifting freeze %q: %w", id, r.wrap(err))
		}
		if n == 1 {
			return f, nil
		}
	}
	return Freeze{}, fmt.Errorf("lifting freeze %q: changed concurrently too often", id)
}

// ListFreezes implements Freezer.
func (r *Redis) ListFreezes(ctx context.Context, activeOnly bool, after ApprovalCursor, limit int, now time.Time) ([]Freeze, error) {
	now = at(now)
	key := r.freezesKey()
	if activeOnly {
		key = r.freezesActiveKey()
	}
	vals, err := r.client.HVals(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("listing freezes: %w", r.wrap(err))
	}
	fs, err := decodeFreezes(vals)
	if err != nil {
		return nil, err
	}
	return pageFreezes(fs, activeOnly, after, limit, now), nil
}

// LeaseInfo implements Freezer.
func (r *Redis) LeaseInfo(ctx context.Context, id string, now time.Time) (LeaseInfo, error) {
	now = at(now)
	pipe := r.client.Pipeline()
	res := pipe.HGetAll(ctx, r.resKey(id))
	fz := pipe.HVals(ctx, r.freezesActiveKey())
	if _, err := pipe.Exec(ctx); err != nil {
		return LeaseInfo{}, fmt.Errorf("reading lease %q: %w", id, r.wrap(err))
	}
	if len(res.Val()) == 0 {
		return LeaseInfo{}, fmt.Errorf("reservation %q: %w", id, ErrNotFound)
	}
	rv, err := decodeReservation(res.Val())
	if err != nil {
		return LeaseInfo{}, err
	}
	out := leaseInfoOf(rv)
	fs, err := decodeFreezes(fz.Val())
	if err != nil {
		return LeaseInfo{}, err
	}
	out.Freezes = activeFreezes(fs, now)
	return out, nil
}
