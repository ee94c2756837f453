package ledger

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	bolt "go.etcd.io/bbolt"
)

// OutboxEvent is one notification waiting in the ledger's durable outbox for delivery.
type OutboxEvent struct {
	// ID identifies the event; enqueuing an id already in the outbox changes nothing, so a
	// receiver deduplicates deliveries by it.
	ID string `json:"id"`
	// Type is the event type (see internal/notify).
	Type string `json:"type"`
	// Body is the event as delivered, opaque to the ledger.
	Body []byte `json:"body"`
	// CreatedAt is when the event was enqueued.
	CreatedAt time.Time `json:"created_at"`
	// Attempts counts the claims of the event so far, this one included (set by ClaimOutbox).
	Attempts int `json:"-"`
}

// Outbox is the ledger's durable notification outbox: events are stored before whatever caused
// them is answered, and delivered at least once, by one claimer at a time (across Redis replicas
// too), until acknowledged. Both backends implement it.
type Outbox interface {
	// EnqueueOutbox stores events durably (an event whose id is present is skipped). When the
	// outbox already holds maxEvents events a new event is not stored but counted in dropped.
	EnqueueOutbox(ctx context.Context, events []OutboxEvent, maxEvents int) (dropped int, err error)
	// ClaimOutbox leases up to limit events due at now: each is hidden from every other claim until
	// now+lease (when its claimer died, it is claimed again) and its Attempts is incremented.
	ClaimOutbox(ctx context.Context, limit int, lease time.Duration, now time.Time) ([]OutboxEvent, error)
	// AckOutbox removes a delivered (or abandoned) event. An unknown id is not an error.
	AckOutbox(ctx context.Context, id string) error
	// RetryOutbox makes a claimed event due again at when. An unknown id is not an error.
	RetryOutbox(ctx context.Context, id string, when time.Time) error
	// OutboxLen returns the number of events in the outbox.
	OutboxLen(ctx context.Context) (int, error)
}

var (
	_ Outbox = (*Embedded)(nil)
	_ Outbox = (*Redis)(nil)
)

func validateOutbox(events []OutboxEvent) error {
	for _, ev := range events {
		if ev.ID == "" {
			return errors.New("outbox event id is empty")
		}
		if ev.Type == "" {
			return fmt.Errorf("outbox event %q has no type", ev.ID)
		}
	}
	return nil
}

// Embedded storage: bucket outbox holds id → JSON outboxRecord; bucket outbox_due holds
// due (8, Unix nanoseconds) | id → nothing, the claim order, and under outboxCountKey (shorter
// than any due key) the number of entries. Both are created on first use so that the fixed
// bucket list of the other operations stays as it is.
var (
	bucketOutbox    = []byte("outbox")
	bucketOutboxDue = []byte("outbox_due")
	outboxCountKey  = []byte("n")
)

func outboxCount(due *bolt.Bucket) int {
	if v := due.Get(outboxCountKey); len(v) == 8 {
		return int(binary.BigEndian.Uint64(v))
	}
	return 0
}

func putOutboxCount(due *bolt.Bucket, n int) error {
	return due.Put(outboxCountKey, binary.BigEndian.AppendUint64(nil, uint64(max(n, 0))))
}

type outboxRecord struct {
	Event    OutboxEvent `json:"event"`
	Due      int64       `json:"due"`
	Attempts int         `json:"attempts"`
}

func outboxDueKey(due int64, id string) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(due)), id...)
}

func outboxBuckets(t *txn) (*bolt.Bucket, *bolt.Bucket, error) {
	ob, err := t.tx.CreateBucketIfNotExists(bucketOutbox)
	if err != nil {
		return nil, nil, err
	}
	due, err := t.tx.CreateBucketIfNotExists(bucketOutboxDue)
	return ob, due, err
}

// EnqueueOutbox implements Outbox.
func (e *Embedded) EnqueueOutbox(ctx context.Context, events []OutboxEvent, maxEvents int) (int, error) {
	if err := validateOutbox(events); err != nil {
		return 0, err
	}
	var dropped int
	err := e.update(ctx, func(t *txn) error {
		dropped = 0
		ob, due, err := outboxBuckets(t)
		if err != nil {
			return err
		}
		n := outboxCount(due)
		for _, ev := range events {
			if ob.Get([]byte(ev.ID)) != nil {
				continue
			}
			if maxEvents > 0 && n >= maxEvents {
				dropped++
				continue
			}
			ev.CreatedAt = at(ev.CreatedAt)
			rec := outboxRecord{Event: ev, Due: ev.CreatedAt.UnixNano()}
			v, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if err := ob.Put([]byte(ev.ID), v); err != nil {
				return err
			}
			if err := due.Put(outboxDueKey(rec.Due, ev.ID), nil); err != nil {
				return err
			}
			n++
		}
		return putOutboxCount(due, n)
	})
	return dropped, err
}

// ClaimOutbox implements Outbox.
func (e *Embedded) ClaimOutbox(ctx context.Context, limit int, lease time.Duration, now time.Time) ([]OutboxEvent, error) {
	now = at(now)
	if limit <= 0 {
		limit = 100
	}
	var out []OutboxEvent
	err := e.update(ctx, func(t *txn) error {
		out = out[:0]
		ob, due, err := outboxBuckets(t)
		if err != nil {
			return err
		}
		var keys [][]byte
		c := due.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < limit; k, _ = c.Next() {
			if len(k) < 8 {
				continue // the count
			}
			if int64(binary.BigEndian.Uint64(k)) > now.UnixNano() {
				break
			}
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := due.Delete(k); err != nil {
				return err
			}
			id := k[8:]
			v := ob.Get(id)
			if v == nil {
				continue
			}
			var rec outboxRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("outbox event %q: %w", id, err)
			}
			rec.Attempts++
			rec.Due = now.Add(lease).UnixNano()
			nv, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if err := ob.Put(id, nv); err != nil {
				return err
			}
			if err := due.Put(outboxDueKey(rec.Due, string(id)), nil); err != nil {
				return err
			}
			ev := rec.Event
			ev.Attempts = rec.Attempts
			out = append(out, ev)
		}
		return nil
	})
	return out, err
}

// moveOutbox removes (when remove) or reschedules event id.
func (e *Embedded) moveOutbox(ctx context.Context, id string, remove bool, when time.Time) error {
	return e.update(ctx, func(t *txn) error {
		ob, due, err := outboxBuckets(t)
		if err != nil {
			return err
		}
		v := ob.Get([]byte(id))
		if v == nil {
			return nil
		}
		var rec outboxRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("outbox event %q: %w", id, err)
		}
		if err := due.Delete(outboxDueKey(rec.Due, id)); err != nil {
			return err
		}
		if remove {
			if err := ob.Delete([]byte(id)); err != nil {
				return err
			}
			return putOutboxCount(due, outboxCount(due)-1)
		}
		rec.Due = when.UnixNano()
		nv, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if err := ob.Put([]byte(id), nv); err != nil {
			return err
		}
		return due.Put(outboxDueKey(rec.Due, id), nil)
	})
}

// AckOutbox implements Outbox.
func (e *Embedded) AckOutbox(ctx context.Context, id string) error {
	return e.moveOutbox(ctx, id, true, time.Time{})
}

// RetryOutbox implements Outbox.
func (e *Embedded) RetryOutbox(ctx context.Context, id string, when time.Time) error {
	return e.moveOutbox(ctx, id, false, at(when))
}

// OutboxLen implements Outbox.
func (e *Embedded) OutboxLen(ctx context.Context) (int, error) {
	var n int
	err := e.view(ctx, func(t *txn) error {
		if b := t.tx.Bucket(bucketOutboxDue); b != nil {
			n = outboxCount(b)
		}
		return nil
	})
	return n, err
}

// Redis storage: hash ob:ev holds id → JSON event, hash ob:att id → attempts, sorted set ob:due
// id by due time (ms). Every operation is one script over the three keys.
func (r *Redis) outboxKeys() []string {
	return []string{r.prefix + "ob:ev", r.prefix + "ob:due", r.prefix + "ob:att"}
}

// outboxEnqueueScript: ARGV[1] the cap (0: none), then id, JSON, due (ms) triples. It returns the
// number of events dropped at the cap.
var outboxEnqueueScript = redis.NewScript(`
local cap = tonumber(ARGV[1])
local n = redis.call('HLEN', KEYS[1])
local dropped = 0
for i = 2, #ARGV, 3 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then
    if cap > 0 and n >= cap then
      dropped = dropped + 1
    else
      redis.call('HSET', KEYS[1], ARGV[i], ARGV[i+1])
      redis.call('ZADD', KEYS[2], ARGV[i+2], ARGV[i])
      n = n + 1
    end
  end
end
return dropped
`)

// outboxClaimScript: ARGV now (ms), limit, lease (ms). It returns id, attempts, JSON triples.
var outboxClaimScript = redis.NewScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
local until_ = tonumber(ARGV[1]) + tonumber(ARGV[3])
for _, id in ipairs(ids) do
  local v = redis.call('HGET', KEYS[1], id)
  if v then
    redis.call('ZADD', KEYS[2], until_, id)
    local a = redis.call('HINCRBY', KEYS[3], id, 1)
    table.insert(out, id)
    table.insert(out, a)
    table.insert(out, v)
  else
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[3], id)
  end
end
return out
`)

// outboxMoveScript: ARGV id, due (ms; empty removes the event).
var outboxMoveScript = redis.NewScript(`
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  return 1
end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
end
return 1
`)

// EnqueueOutbox implements Outbox.
func (r *Redis) EnqueueOutbox(ctx context.Context, events []OutboxEvent, maxEvents int) (int, error) {
	if err := validateOutbox(events); err != nil {
		return 0, err
	}
	if len(events) == 0 {
		return 0, nil
	}
	args := []any{max(maxEvents, 0)}
	for _, ev := range events {
		ev.CreatedAt = at(ev.CreatedAt)
		v, err := json.Marshal(ev)
		if err != nil {
			return 0, err
		}
		args = append(args, ev.ID, v, ev.CreatedAt.UnixMilli())
	}
	n, err := r.run(ctx, outboxEnqueueScript, r.outboxKeys(), args...).Int()
	if err != nil {
		return 0, fmt.Errorf("enqueuing %d outbox events: %w", len(events), r.wrap(err))
	}
	return n, nil
}

// ClaimOutbox implements Outbox.
func (r *Redis) ClaimOutbox(ctx context.Context, limit int, lease time.Duration, now time.Time) ([]OutboxEvent, error) {
	now = at(now)
	if limit <= 0 {
		limit = 100
	}
	reply, err := r.run(ctx, outboxClaimScript, r.outboxKeys(), now.UnixMilli(), limit, max(lease.Milliseconds(), 1)).Slice()
	if err != nil {
		return nil, fmt.Errorf("claiming outbox events: %w", r.wrap(err))
	}
	out := make([]OutboxEvent, 0, len(reply)/3)
	for i := 0; i+2 < len(reply); i += 3 {
		s, _ := reply[i+2].(string)
		var ev OutboxEvent
		if err := json.Unmarshal([]byte(s), &ev); err != nil {
			return nil, fmt.Errorf("outbox event %v: %w", reply[i], err)
		}
		ev.Attempts = asInt(reply[i+1])
		out = append(out, ev)
	}
	return out, nil
}

// AckOutbox implements Outbox.
func (r *Redis) AckOutbox(ctx context.Context, id string) error {
	if err := r.run(ctx, outboxMoveScript, r.outboxKeys(), id, "").Err(); err != nil {
		return fmt.Errorf("acknowledging outbox event %q: %w", id, r.wrap(err))
	}
	return nil
}

// RetryOutbox implements Outbox.
func (r *Redis) RetryOutbox(ctx context.Context, id string, when time.Time) error {
	if err := r.run(ctx, outboxMoveScript, r.outboxKeys(), id, strconv.FormatInt(at(when).UnixMilli(), 10)).Err(); err != nil {
		return fmt.Errorf("rescheduling outbox event %q: %w", id, r.wrap(err))
	}
	return nil
}

// OutboxLen implements Outbox.
func (r *Redis) OutboxLen(ctx context.Context) (int, error) {
	n, err := r.client.HLen(ctx, r.outboxKeys()[0]).Result()
	if err != nil {
		return 0, fmt.Errorf("counting outbox events: %w", r.wrap(err))
	}
	return int(n), nil
}
