package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/agentcost/agentcost/internal/money"
)

// defaultOpenSpendLimit is OpenSpend's limit when the caller passes none.
const defaultOpenSpendLimit = 1000

func (r *reservation) openSpend() OpenSpend {
	return OpenSpend{ID: r.ID, TraceID: r.TraceID, Agent: r.Agent, Team: r.Team, RunID: r.RunID, Action: r.Action,
		Metadata: maps.Clone(r.Metadata), Estimate: r.Estimate, Matched: r.Matched, Spans: r.Spans,
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}
}

// OpenSpend implements Ledger: one read transaction over the open-reservation index. Journaled
// reservations not yet applied to the file have matched nothing (Book applies them first). A
// record is decoded only once peekOpenSpend saw it open with matched spans, so that the
// mid-flight check's pass over many open reservations neither allocates nor feeds the GC for the
// ones without spans.
func (e *Embedded) OpenSpend(ctx context.Context, limit int) ([]OpenSpend, error) {
	if limit <= 0 {
		limit = defaultOpenSpendLimit
	}
	var out []OpenSpend
	err := e.view(ctx, func(t *txn) error {
		out = nil
		c := t.resOpen().Cursor()
		for k, _ := c.First(); len(k) >= 8 && len(out) < limit; k, _ = c.Next() {
			v := t.res().Get(k[8:])
			if spans, settled, ok := peekOpenSpend(v); v == nil || ok && (settled || spans == 0) {
				continue
			}
			r, err := decodeReservationRecord(v)
			if err != nil {
				return fmt.Errorf("decoding reservation %q: %w", k[8:], err)
			}
			if r.Settled || r.Spans == 0 {
				continue
			}
			out = append(out, r.openSpend())
		}
		return nil
	})
	return out, err
}

// OpenSpend implements Ledger: the open reservations are paged through the expiry index, each
// page's matched fields read in one pipeline.
func (r *Redis) OpenSpend(ctx context.Context, limit int) ([]OpenSpend, error) {
	if limit <= 0 {
		limit = defaultOpenSpendLimit
	}
	const batch = 256
	var out []OpenSpend
	for start := int64(0); len(out) < limit; start += batch {
		ids, err := r.client.ZRange(ctx, r.expiryKey(), start, start+batch-1).Result()
		if err != nil {
			return out, fmt.Errorf("listing open reservations: %w", r.wrap(err))
		}
		if len(ids) == 0 {
			break
		}
		pipe := r.client.Pipeline()
		cmds := make([]*redis.SliceCmd, len(ids))
		for i, id := range ids {
			cmds[i] = pipe.HMGet(ctx, r.resKey(id), "state", "matched", "spans", "info")
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return out, fmt.Errorf("reading open reservations: %w", r.wrap(err))
		}
		for _, cmd := range cmds {
			v := cmd.Val()
			if len(v) != 4 || v[0] != "open" {
				continue
			}
			str := func(x any) string { s, _ := x.(string); return s }
			spans, _ := strconv.ParseInt(str(v[2]), 10, 64)
			if spans == 0 {
				continue
			}
			matched, _ := strconv.ParseInt(str(v[1]), 10, 64)
			res := &reservation{}
			if err := json.Unmarshal([]byte(str(v[3])), res); err != nil {
				return out, fmt.Errorf("decoding reservation: %w", err)
			}
			res.Matched, res.Spans = money.Nanos(matched), spans
			out = append(out, res.openSpend())
			if len(out) == limit {
				break
			}
		}
		if len(ids) < batch {
			break
		}
	}
	return out, nil
}
