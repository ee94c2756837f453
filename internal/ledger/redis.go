package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/pkg/decisionapi"
)

// anomalyTTL is how long Redis keeps an agent's last anomaly time.
const anomalyTTL = 30 * 24 * time.Hour

// bookAttempts bounds how often Book re-reads reservations that changed under it.
const bookAttempts = 8

// bookChunk bounds the spends one script books, so that one huge batch does not block the server
// for long. Each chunk is atomic and idempotent, so a batch that fails half way is booked exactly
// once when retried.
const bookChunk = 1000

// Redis is the Redis backend: every compound mutation is one Lua script, so several collector
// processes sharing a server (and key prefix) share one truth. Keys carry TTLs that outlive their
// windows, so the keyspace stays bounded without maintenance.
type Redis struct {
	// client is a *redis.Client in single and sentinel mode, a *redis.ClusterClient in cluster mode.
	client redis.UniversalClient
	cfg    Config
	cal    calendar
	log    *zap.Logger
	prefix string

	closeOnce sync.Once
	closeErr  error
}

var _ Ledger = (*Redis)(nil)

// OpenRedis connects to the Redis that cfg.Redis names (by its mode) and checks that it answers.
func OpenRedis(ctx context.Context, cfg Config, set Settings) (*Redis, error) {
	cfg = cfg.withDefaults()
	cfg.Backend = BackendRedis
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	set = set.withDefaults()
	loc, _ := cfg.Location()
	client, where, err := newRedisClient(ctx, cfg.Redis)
	if err != nil {
		return nil, err
	}
	prefix := cfg.Redis.KeyPrefix
	if cfg.Redis.Mode == RedisModeCluster {
		prefix = clusterPrefix(prefix)
	}
	set.Logger.Info("Ledger opened", zap.String("backend", BackendRedis), zap.String("mode", cfg.Redis.Mode), zap.String("endpoint", where),
		zap.Int("db", cfg.Redis.DB), zap.String("key_prefix", prefix), zap.String("time_zone", loc.String()),
		zap.Int("wait_for_replicas", cfg.Redis.WaitForReplicas.Replicas))
	return &Redis{client: client, cfg: cfg, cal: calendar{loc}, log: set.Logger, prefix: prefix}, nil
}

// Location returns the time zone that aligns every window.
func (r *Redis) Location() *time.Location { return r.cal.loc }

// Close closes the connection pool.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() { r.closeErr = r.client.Close() })
	return r.closeErr
}

func (r *Redis) wrap(err error) error {
	if errors.Is(err, redis.ErrClosed) {
		return ErrClosed
	}
	return err
}

// Key names. Free-form ids come last, or length-prefixed when two meet.

func (r *Redis) counterKey(k counter) string {
	return r.prefix + "c:" + string(k.Window) + ":" + strconv.FormatInt(k.Start, 10) + ":" + string(k.Scope) + ":" + k.ID
}

func (r *Redis) indexKey(w Window, start int64) string {
	return r.prefix + "ix:" + string(w) + ":" + strconv.FormatInt(start, 10)
}

func (r *Redis) spanKey(trace, span string) string {
	return r.prefix + "sp:" + strconv.Itoa(len(trace)) + ":" + trace + ":" + span
}

// callKey holds an LLM span's call key; childCallsKey is the set of call keys of a span's
// booked LLM children (the same-call rule, Spend.CallKey).
func (r *Redis) callKey(trace, span string) string {
	return r.prefix + "cs:" + strconv.Itoa(len(trace)) + ":" + trace + ":" + span
}

func (r *Redis) childCallsKey(trace, parent string) string {
	return r.prefix + "cc:" + strconv.Itoa(len(trace)) + ":" + trace + ":" + parent
}

func (r *Redis) resKey(id string) string      { return r.prefix + "res:" + id }
func (r *Redis) traceKey(trace string) string { return r.prefix + "rt:" + trace }
func (r *Redis) expiryKey() string            { return r.prefix + "resexp" }
func (r *Redis) leaseKey(key string) string   { return r.prefix + "ls:" + key }
func (r *Redis) rateKey(key string) string    { return r.prefix + "rl:" + key }
func (r *Redis) putKey(key string) string     { return r.prefix + "id:" + key }
func (r *Redis) approvalKey(id string) string { return r.prefix + "ap:" + id }
func (r *Redis) approvalIndexKey() string     { return r.prefix + "aps" }

// approvalPendingKey is agent's set of pending approval ids scored by expiry (µs).
func (r *Redis) approvalPendingKey(agent string) string { return r.prefix + "app:" + agent }
func (r *Redis) totalsKey() string                      { return r.prefix + "totals" }

func (r *Redis) anomalyKey(agent string, l AnomalyLevel) string {
	return r.prefix + "an:" + string(l) + ":" + agent
}

func ms(d time.Duration) string { return strconv.FormatInt(max(d.Milliseconds(), 1), 10) }
func itoa(v int64) string       { return strconv.FormatInt(v, 10) }

// keyList collects the KEYS of one script call; indexes are 1-based as in Lua.
type keyList struct {
	keys []string
	idx  map[string]int
}

func (l *keyList) add(k string) int {
	if l.idx == nil {
		l.idx = map[string]int{}
	}
	if i, ok := l.idx[k]; ok {
		return i
	}
	l.keys = append(l.keys, k)
	l.idx[k] = len(l.keys)
	return len(l.keys)
}

// luaCounter is a counter that receives spend (or a reservation) in a script.
type luaCounter struct {
	K   int    `json:"k"`
	TTL string `json:"ttl"`
	X   int    `json:"x"`
	M   string `json:"m"`
	Lim string `json:"lim"`
	ttl time.Duration
}

// spendCounter declares a counter (and for calendar windows its scope index) in keys.
func (r *Redis) spendCounter(keys *keyList, k counter, t time.Time) luaCounter {
	c := luaCounter{K: keys.add(r.counterKey(k)), ttl: k.ttl(t, r.cfg.RunRetention)}
	c.TTL = ms(c.ttl)
	if k.Window != Lifetime {
		c.X = keys.add(r.indexKey(k.Window, k.Start))
		c.M = string(k.Scope) + ":" + k.ID
	}
	return c
}

type bookPlan struct {
	// TotalsKey is the KEYS index of the totals hash (TotalFields[0] is TotalDuplicates), Now
	// the Unix nanoseconds recorded as the totals' start when none is.
	TotalsKey int `json:"tk"`
	// TotalFields are the totals hash fields the spends' totals name by index.
	TotalFields []string      `json:"tf"`
	Now         string        `json:"now"`
	IdemTTL     string        `json:"it"`
	AnomalyTTL  string        `json:"at"`
	Spends      []luaSpend    `json:"sp"`
	Counters    []luaCounter  `json:"ct"`
	Res         []luaRes      `json:"rs"`
	Traces      []luaTraceIdx `json:"tr"`
}

type luaSpend struct {
	I  int      `json:"i"`
	C  string   `json:"c"`
	K  []int    `json:"k"`
	D  int      `json:"d"`
	T  int      `json:"t"`
	O  int64    `json:"o"`
	TK [5]int64 `json:"tk"`
	AN bool     `json:"an"`
	A  int      `json:"a"`
	AT string   `json:"at"`
	// The same-call rule (Spend.CallKey): F is the call key ("" for none); CS and CC the span's
	// call key and child-call set; PC and PCC its parent's (0 for a root span).
	F   string `json:"f"`
	CS  int    `json:"cs"`
	CC  int    `json:"cc"`
	PC  int    `json:"pc"`
	PCC int    `json:"pcc"`
	// Unbooked marks a Spend.Unbooked spend: I is its idempotency key (0: counted on every
	// delivery) and Totals what it adds. Otherwise Totals is what the spend adds when booked,
	// SameTotals when it is the same call as a booked one.
	Unbooked   bool       `json:"u,omitempty"`
	Totals     []luaTotal `json:"nw,omitempty"`
	SameTotals []luaTotal `json:"sm,omitempty"`
}

// luaTotal is one totalDelta in a script: the 1-based index of the totals hash field in the
// plan's TotalFields and the amount as a decimal string (added exactly).
type luaTotal struct {
	F int    `json:"f"`
	N string `json:"n"`
}

// luaTotals converts deltas, declaring each field once in plan.TotalFields.
func (plan *bookPlan) luaTotals(fields map[string]int, ds []totalDelta) []luaTotal {
	out := make([]luaTotal, len(ds))
	for i, d := range ds {
		f, ok := fields[d.Key]
		if !ok {
			plan.TotalFields = append(plan.TotalFields, d.Key)
			f = len(plan.TotalFields)
			fields[d.Key] = f
		}
		out[i] = luaTotal{F: f, N: itoa(d.N)}
	}
	return out
}

type luaRes struct {
	K int   `json:"k"`
	C []int `json:"c"`
}

type luaTraceIdx struct {
	K  int    `json:"k"`
	ID string `json:"id"`
}

// Book implements Ledger. It reads the candidate reservations (decision ids and trace index) in one
// pipelined round trip, then books the batch in one script that declares every key it touches; if
// the trace index changed in between, it reads again. Batches above 1000 spends are booked in
// chunks of 1000, each atomic.
func (r *Redis) Book(ctx context.Context, spends []Spend) (BookResult, error) {
	for i := range spends {
		if err := spends[i].validate(); err != nil {
			return BookResult{}, fmt.Errorf("spend %d: %w", i, err)
		}
	}
	var total BookResult
	for chunk := range slices.Chunk(spends, bookChunk) {
		res, err := r.bookChunk(ctx, chunk)
		total.Booked += res.Booked
		total.Duplicates += res.Duplicates
		total.Matched += res.Matched
		total.Mismatched += res.Mismatched
		total.SameCall += res.SameCall
		total.SameCallCost = money.AddSat(total.SameCallCost, res.SameCallCost)
		total.New = append(total.New, res.New...)
		total.Same = append(total.Same, res.Same...)
		if err != nil {
			return total, fmt.Errorf("booking %d spends: %w", len(spends), err)
		}
	}
	return total, nil
}

func (r *Redis) bookChunk(ctx context.Context, spends []Spend) (BookResult, error) {
	for range bookAttempts {
		res, retry, err := r.bookOnce(ctx, spends)
		if err != nil {
			return BookResult{}, r.wrap(err)
		}
		if !retry {
			return res, nil
		}
	}
	return BookResult{}, fmt.Errorf("reservations kept changing, gave up after %d attempts", bookAttempts)
}

// bookCand is a reservation a spend may commit against: its counter keys and its owner (the
// agent and run a spend must share to commit).
type bookCand struct {
	id    string
	keys  []string
	owner *reservation
}

// bookOnce books spends in one script: it reads the candidate reservations, plans the script and
// runs it. retry is true when the trace index changed between the read and the script.
func (r *Redis) bookOnce(ctx context.Context, spends []Spend) (res BookResult, retry bool, err error) {
	byDecision, byTrace, err := r.bookCandidates(ctx, spends)
	if err != nil {
		return BookResult{}, false, err
	}
	plan, keys, mismatched := r.planBook(spends, byDecision, byTrace)
	arg, err := json.Marshal(plan)
	if err != nil {
		return BookResult{}, false, err
	}
	reply, err := r.run(ctx, bookScript, keys.keys, arg).Slice()
	if err != nil {
		return BookResult{}, false, err
	}
	if len(reply) == 1 && reply[0] == "retry" {
		return BookResult{}, true, nil
	}
	res, err = decodeBookReply(reply, spends, mismatched)
	return res, false, err
}

// bookCandidates reads, in two pipelined round trips, the open reservations the spends' decision
// ids name and those their traces are indexed to, with their owners.
func (r *Redis) bookCandidates(ctx context.Context, spends []Spend) (byDecision, byTrace map[string]bookCand, err error) {
	decisions := map[string]*redis.SliceCmd{}
	traces := map[string]*redis.SliceCmd{}
	pipe := r.client.Pipeline()
	for _, sp := range spends {
		if sp.Unbooked != "" {
			continue
		}
		if sp.DecisionID != "" && decisions[sp.DecisionID] == nil {
			decisions[sp.DecisionID] = pipe.HMGet(ctx, r.resKey(sp.DecisionID), "state", "keys", "info")
		}
		if traces[sp.TraceID] == nil {
			traces[sp.TraceID] = pipe.HMGet(ctx, r.traceKey(sp.TraceID), "id", "c")
		}
	}
	if len(decisions)+len(traces) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, err
		}
	}
	byDecision = map[string]bookCand{}
	for id, cmd := range decisions {
		v := cmd.Val()
		if len(v) == 3 && v[0] == "open" {
			keys, err := decodeKeys(v[1])
			if err != nil {
				return nil, nil, fmt.Errorf("reservation %q: %w", id, err)
			}
			owner, err := decodeOwner(v[2])
			if err != nil {
				return nil, nil, fmt.Errorf("reservation %q: %w", id, err)
			}
			byDecision[id] = bookCand{id, keys, owner}
		}
	}
	byTrace = map[string]bookCand{}
	owners := map[string]*redis.StringCmd{}
	pipe = r.client.Pipeline()
	for trace, cmd := range traces {
		v := cmd.Val()
		if len(v) == 2 {
			if id, ok := v[0].(string); ok {
				keys, err := decodeKeys(v[1])
				if err != nil {
					return nil, nil, fmt.Errorf("trace index %q: %w", trace, err)
				}
				byTrace[trace] = bookCand{id: id, keys: keys}
				if owners[id] == nil {
					owners[id] = pipe.HGet(ctx, r.resKey(id), "info")
				}
			}
		}
	}
	if len(owners) > 0 {
		// The owner is immutable, so reading it apart from the script is safe; the script checks
		// that the trace index still names the same reservation.
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, err
		}
		for trace, c := range byTrace {
			owner, err := decodeOwner(owners[c.id].Val())
			if err != nil {
				return nil, nil, fmt.Errorf("reservation %q: %w", c.id, err)
			}
			c.owner = owner
			byTrace[trace] = c
		}
	}
	return byDecision, byTrace, nil
}

// planBook builds the book script's plan, declaring every key it touches; mismatched tells, per
// spend, whether its decision id names a reservation it may not commit against.
func (r *Redis) planBook(spends []Spend, byDecision, byTrace map[string]bookCand) (bookPlan, *keyList, []bool) {
	keys := &keyList{}
	mismatched := make([]bool, len(spends))
	plan := bookPlan{IdemTTL: ms(r.cfg.IdempotencyHorizon), AnomalyTTL: ms(anomalyTTL),
		Spends: make([]luaSpend, 0, len(spends)), Counters: []luaCounter{}, Res: []luaRes{}, Traces: []luaTraceIdx{},
		TotalsKey: keys.add(r.totalsKey()), TotalFields: []string{duplicateKey}, Now: itoa(time.Now().UnixNano())}
	fields := map[string]int{duplicateKey: 1}
	counterIdx := map[counter]int{}
	resIdx := map[string]int{}
	declareRes := func(c bookCand) int {
		if j, ok := resIdx[c.id]; ok {
			return j
		}
		lr := luaRes{K: keys.add(r.resKey(c.id)), C: make([]int, 0, len(c.keys))}
		for _, k := range c.keys {
			lr.C = append(lr.C, keys.add(k))
		}
		plan.Res = append(plan.Res, lr)
		resIdx[c.id] = len(plan.Res)
		return len(plan.Res)
	}
	traceDeclared := map[string]bool{}
	for i, sp := range spends {
		if sp.Unbooked != "" {
			ls := luaSpend{Unbooked: true, K: []int{}, Totals: plan.luaTotals(fields, unbookedTotals(sp))}
			if sp.identified() {
				ls.I = keys.add(r.spanKey(sp.TraceID, unbookedSpanID(sp.SpanID, sp.Unbooked)))
			}
			plan.Spends = append(plan.Spends, ls)
			continue
		}
		sp.Time = at(sp.Time)
		ls := luaSpend{I: keys.add(r.spanKey(sp.TraceID, sp.SpanID)), C: itoa(int64(sp.Cost)), K: []int{},
			O: sp.Tokens.Output, AN: sp.Anomaly,
			TK: [5]int64{sp.Tokens.Input, sp.Tokens.Output, sp.Tokens.CacheRead, sp.Tokens.CacheWrite, sp.Tokens.Reasoning}}
		for _, k := range r.cal.bookCounters(sp.Agent, sp.Team, sp.Model, sp.Run(), sp.Time) {
			j, ok := counterIdx[k]
			if !ok {
				plan.Counters = append(plan.Counters, r.spendCounter(keys, k, sp.Time))
				j = len(plan.Counters)
				counterIdx[k] = j
			} else if ttl := k.ttl(sp.Time, r.cfg.RunRetention); ttl > plan.Counters[j-1].ttl {
				plan.Counters[j-1].ttl, plan.Counters[j-1].TTL = ttl, ms(ttl)
			}
			ls.K = append(ls.K, j)
		}
		if c, ok := byDecision[sp.DecisionID]; ok {
			if c.owner.accepts(sp) {
				ls.D = declareRes(c)
			} else {
				mismatched[i] = true
			}
		}
		if !traceDeclared[sp.TraceID] {
			traceDeclared[sp.TraceID] = true
			plan.Traces = append(plan.Traces, luaTraceIdx{K: keys.add(r.traceKey(sp.TraceID)), ID: byTrace[sp.TraceID].id})
		}
		if c, ok := byTrace[sp.TraceID]; ok && c.owner.accepts(sp) {
			ls.T = declareRes(c)
		}
		if sp.flagged() && sp.Agent != "" {
			ls.A, ls.AT = keys.add(r.anomalyKey(sp.Agent, LevelCall)), itoa(micros(sp.Time))
		}
		if sp.CallKey != "" {
			ls.F = sp.CallKey
			ls.CS, ls.CC = keys.add(r.callKey(sp.TraceID, sp.SpanID)), keys.add(r.childCallsKey(sp.TraceID, sp.SpanID))
			if sp.ParentSpanID != "" {
				ls.PC, ls.PCC = keys.add(r.callKey(sp.TraceID, sp.ParentSpanID)), keys.add(r.childCallsKey(sp.TraceID, sp.ParentSpanID))
			}
		}
		ls.Totals, ls.SameTotals = plan.luaTotals(fields, bookedTotals(sp, mismatched[i])), plan.luaTotals(fields, sameCallTotals(sp))
		plan.Spends = append(plan.Spends, ls)
	}
	return plan, keys, mismatched
}

// decodeBookReply reads the book script's reply: booked, duplicates, matched and the mask of
// each spend's outcome ('1' booked, '0' duplicate, 's' same call, 'u' unbooked).
func decodeBookReply(reply []any, spends []Spend, mismatched []bool) (BookResult, error) {
	if len(reply) != 4 {
		return BookResult{}, fmt.Errorf("unexpected reply %v", reply)
	}
	mask, _ := reply[3].(string)
	if len(mask) != len(spends) {
		return BookResult{}, fmt.Errorf("unexpected booking mask of %d spends for %d", len(mask), len(spends))
	}
	res := BookResult{Booked: asInt(reply[0]), Duplicates: asInt(reply[1]), Matched: asInt(reply[2]),
		New: make([]bool, len(mask)), Same: make([]bool, len(mask))}
	for i := range mask {
		res.New[i] = mask[i] == '1'
		if res.New[i] && mismatched[i] {
			res.Mismatched++
		}
		if mask[i] == 's' {
			res.Same[i] = true
			res.SameCall++
			res.SameCallCost = money.AddSat(res.SameCallCost, spends[i].Cost)
		}
	}
	return res, nil
}

// decodeOwner reads the agent and run of a reservation from its "info" field (a reservation
// without one owns nothing and accepts every spend).
func decodeOwner(v any) (*reservation, error) {
	owner := &reservation{}
	s, _ := v.(string)
	if s == "" {
		return owner, nil
	}
	if err := json.Unmarshal([]byte(s), owner); err != nil {
		return nil, fmt.Errorf("decoding reservation: %w", err)
	}
	return &reservation{Agent: owner.Agent, RunID: owner.RunID}, nil
}

func decodeKeys(v any) ([]string, error) {
	s, _ := v.(string)
	if s == "" {
		return nil, nil
	}
	var keys []string
	if err := json.Unmarshal([]byte(s), &keys); err != nil {
		return nil, fmt.Errorf("decoding counter keys: %w", err)
	}
	return keys, nil
}

func asInt(v any) int {
	switch x := v.(type) {
	case int64:
		return int(x)
	case string:
		n, _ := strconv.Atoi(x)
		return n
	}
	return 0
}

func asNanos(v any) money.Nanos {
	s, _ := v.(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return money.Nanos(n)
}

type reservePlan struct {
	ID       string       `json:"id"`
	Estimate string       `json:"est"`
	Checks   []luaCounter `json:"ch"`
	Fields   []string     `json:"f"`
	RecTTL   string       `json:"rttl"`
	Expires  string       `json:"exp"`
	Trace    bool         `json:"tr"`
	Keys     string       `json:"keys"`
}

// reservationFields returns the hash fields of a new reservation (its immutable part as JSON in
// field "info", the mutable parts as fields the scripts update) and its counter keys as JSON.
func (r *Redis) reservationFields(res *reservation, counterKeys []string) ([]string, string, error) {
	info, err := json.Marshal(res)
	if err != nil {
		return nil, "", err
	}
	keys, err := json.Marshal(counterKeys)
	if err != nil {
		return nil, "", err
	}
	return []string{
		"state", "open", "est", itoa(int64(res.Estimate)), "rem", itoa(int64(res.Estimate)),
		"exp", itoa(micros(res.ExpiresAt)), "trace", res.TraceID, "keys", string(keys), "info", string(info),
		"matched", "0", "spans", "0", "maxout", "0",
	}, string(keys), nil
}

// Reserve implements Ledger.
func (r *Redis) Reserve(ctx context.Context, req ReserveRequest) (Reservation, error) {
	checks, err := r.cal.prepareReserve(&req)
	if err != nil {
		return Reservation{}, err
	}
	res := newReservation(req, checks)
	var keys keyList
	keys.add(r.resKey(req.ID))
	if req.TraceID != "" {
		keys.add(r.traceKey(req.TraceID))
	} else {
		keys.keys = append(keys.keys, r.resKey(req.ID))
	}
	keys.add(r.expiryKey())
	plan := reservePlan{ID: req.ID, Estimate: itoa(int64(req.Estimate)), Trace: req.TraceID != "",
		Expires: itoa(micros(res.ExpiresAt)), RecTTL: ms(req.TTL + r.cfg.IdempotencyHorizon)}
	counterKeys := make([]string, 0, len(checks))
	for _, ch := range checks {
		c := r.spendCounter(&keys, ch.counter, req.Time)
		if ch.counter.Window != Lifetime {
			// Keep the counter until the reservation can no longer be released into it.
			c.TTL = ms(max(c.ttl, req.TTL+time.Hour))
		}
		if !ch.Unlimited {
			c.Lim = itoa(int64(ch.Limit))
		}
		plan.Checks = append(plan.Checks, c)
		counterKeys = append(counterKeys, r.counterKey(ch.counter))
	}
	if plan.Checks == nil {
		plan.Checks = []luaCounter{}
	}
	if plan.Fields, plan.Keys, err = r.reservationFields(res, counterKeys); err != nil {
		return Reservation{}, err
	}
	arg, err := json.Marshal(plan)
	if err != nil {
		return Reservation{}, err
	}
	reply, err := r.run(ctx, reserveScript, keys.keys, arg).Slice()
	if err != nil {
		return Reservation{}, fmt.Errorf("reserving %q: %w", req.ID, r.wrap(err))
	}
	switch reply[0] {
	case "exists":
		return Reservation{}, fmt.Errorf("reservation %q: %w", req.ID, ErrExists)
	case "exhausted":
		ch := checks[asInt(reply[1])-1]
		return Reservation{}, &ExhaustedError{Scope: ch.Scope, ID: ch.ID, Window: ch.Window, Spent: asNanos(reply[2]),
			Reserved: asNanos(reply[3]), Estimate: req.Estimate, Limit: ch.Limit}
	}
	out := Reservation{ID: res.ID, TraceID: res.TraceID, Estimate: res.Estimate, CreatedAt: res.CreatedAt, ExpiresAt: res.ExpiresAt}
	for i, ch := range checks {
		out.Usage = append(out.Usage, usage(ch, asNanos(reply[1+2*i]), asNanos(reply[2+2*i]), r.cal.loc))
	}
	return out, nil
}

// decodeReservation rebuilds a reservation from its hash fields.
func decodeReservation(m map[string]string) (*reservation, error) {
	res := &reservation{}
	if err := json.Unmarshal([]byte(m["info"]), res); err != nil {
		return nil, fmt.Errorf("decoding reservation: %w", err)
	}
	n := func(f string) int64 { v, _ := strconv.ParseInt(m[f], 10, 64); return v }
	res.Remaining, res.Matched = money.Nanos(n("rem")), money.Nanos(n("matched"))
	res.Spans, res.MaxOutput, res.Anomalous = n("spans"), n("maxout"), n("anom")
	res.Tokens = Tokens{Input: n("tin"), Output: n("tout"), CacheRead: n("tcr"), CacheWrite: n("tcw"), Reasoning: n("trs")}
	if m["state"] == "settled" {
		res.Settled = true
		res.Source, res.Reason = decisionapi.CostSource(m["source"]), SettleReason(m["reason"])
		res.Reported, res.HasReported = money.Nanos(n("reported")), m["hasrep"] == "1"
		res.SettledAt, _ = time.Parse(time.RFC3339Nano, m["settled"])
	}
	return res, nil
}

func pairs(reply []any) map[string]string {
	m := make(map[string]string, len(reply)/2)
	for i := 0; i+1 < len(reply); i += 2 {
		k, _ := reply[i].(string)
		v, _ := reply[i+1].(string)
		m[k] = v
	}
	return m
}

type settlePlan struct {
	ID          string       `json:"id"`
	Reason      SettleReason `json:"reason"`
	Now         string       `json:"now"`
	Reported    string       `json:"rep"`
	HasReported bool         `json:"hasrep"`
	ResCounters []int        `json:"rc"`
	Book        []luaCounter `json:"bc"`
	SettledTTL  string       `json:"sttl"`
	At          string       `json:"at"`
	Trace       bool         `json:"tr"`
}

// settle runs the settle script for the reservation whose fields were read as m. It returns the
// settlement, whether this call settled it, and ErrNotFound when the reservation vanished.
func (r *Redis) settle(ctx context.Context, m map[string]string, reason SettleReason, reported money.Nanos, hasReported bool, now time.Time) (Settlement, bool, error) {
	res, err := decodeReservation(m)
	if err != nil {
		return Settlement{}, false, err
	}
	if res.Settled {
		s := res.settlement()
		s.AlreadySettled = true
		return s, false, nil
	}
	var keys keyList
	keys.add(r.resKey(res.ID))
	if res.TraceID != "" {
		keys.add(r.traceKey(res.TraceID))
	} else {
		keys.keys = append(keys.keys, r.resKey(res.ID))
	}
	keys.add(r.expiryKey())
	plan := settlePlan{ID: res.ID, Reason: reason, Now: itoa(micros(now)), Reported: itoa(int64(reported)),
		HasReported: hasReported, ResCounters: []int{}, Book: []luaCounter{}, Trace: res.TraceID != "",
		SettledTTL: ms(r.cfg.SettledRetention), At: now.UTC().Format(time.RFC3339Nano)}
	ck, err := decodeKeys(m["keys"])
	if err != nil {
		return Settlement{}, false, err
	}
	for _, k := range ck {
		plan.ResCounters = append(plan.ResCounters, keys.add(k))
	}
	if hasReported && reported > 0 && res.Spans == 0 {
		for _, k := range r.cal.bookCounters(res.Agent, res.Team, "", res.RunID, now) {
			plan.Book = append(plan.Book, r.spendCounter(&keys, k, now))
		}
	}
	arg, err := json.Marshal(plan)
	if err != nil {
		return Settlement{}, false, err
	}
	reply, err := r.run(ctx, settleScript, keys.keys, arg).Slice()
	if err != nil {
		return Settlement{}, false, r.wrap(err)
	}
	switch reply[0] {
	case "notfound":
		return Settlement{}, false, fmt.Errorf("reservation %q: %w", res.ID, ErrNotFound)
	case "notdue":
		return Settlement{}, false, nil
	}
	final, err := decodeReservation(pairs(reply[1:]))
	if err != nil {
		return Settlement{}, false, err
	}
	s := final.settlement()
	s.AlreadySettled = reply[0] != "ok"
	return s, reply[0] == "ok", nil
}

// Release implements Ledger.
func (r *Redis) Release(ctx context.Context, req ReleaseRequest) (Settlement, error) {
	if err := validateRelease(&req); err != nil {
		return Settlement{}, err
	}
	m, err := r.client.HGetAll(ctx, r.resKey(req.ID)).Result()
	if err != nil {
		return Settlement{}, fmt.Errorf("releasing %q: %w", req.ID, r.wrap(err))
	}
	if len(m) == 0 {
		return Settlement{}, fmt.Errorf("reservation %q: %w", req.ID, ErrNotFound)
	}
	est, _ := strconv.ParseInt(m["est"], 10, 64)
	reported, clipped := clipReported(req, money.Nanos(est))
	s, settled, err := r.settle(ctx, m, ReasonReleased, reported, req.HasReported, req.Time)
	if settled && req.HasReported {
		s.ReportedClaimed, s.ReportedClipped = req.ReportedCost, clipped && s.Source == decisionapi.SourceReported
	}
	return s, err
}

// ExpireDue implements Ledger. Each expired reservation is settled by one script call; a replica
// whose call finds it already settled does not return it.
func (r *Redis) ExpireDue(ctx context.Context, now time.Time) ([]Settlement, error) {
	now = at(now)
	var out []Settlement
	const batch = 256
	for range 100 {
		ids, err := r.client.ZRangeArgs(ctx, redis.ZRangeArgs{Key: r.expiryKey(), Start: "-inf",
			Stop: itoa(micros(now)), ByScore: true, Count: batch}).Result()
		if err != nil {
			return out, fmt.Errorf("listing due reservations: %w", r.wrap(err))
		}
		pipe := r.client.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(ids))
		for i, id := range ids {
			cmds[i] = pipe.HGetAll(ctx, r.resKey(id))
		}
		if len(ids) > 0 {
			if _, err := pipe.Exec(ctx); err != nil {
				return out, fmt.Errorf("reading due reservations: %w", r.wrap(err))
			}
		}
		for i, id := range ids {
			m := cmds[i].Val()
			if len(m) == 0 {
				if err := r.client.ZRem(ctx, r.expiryKey(), id).Err(); err != nil {
					return out, r.wrap(err)
				}
				continue
			}
			s, mine, err := r.settle(ctx, m, ReasonExpired, 0, false, now)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return out, fmt.Errorf("expiring %q: %w", id, err)
			}
			if mine {
				out = append(out, s)
			}
		}
		if len(ids) < batch {
			break
		}
	}
	return out, nil
}

// State implements Ledger.
func (r *Redis) State(ctx context.Context, scope Scope, id string, window Window, now time.Time) (State, error) {
	res, err := r.Read(ctx, ReadRequest{States: []StateQuery{{Scope: scope, ID: id, Window: window}}, Time: now})
	if err != nil {
		return State{}, err
	}
	return res.States[0], nil
}

// Read implements Ledger: one pipeline of an HMGET per counter and a GET per anomaly level.
func (r *Redis) Read(ctx context.Context, req ReadRequest) (ReadResult, error) {
	now := at(req.Time)
	keys, err := r.cal.queryCounters(req.States, now)
	if err != nil {
		return ReadResult{}, err
	}
	pipe := r.client.Pipeline()
	counters := make([]*redis.SliceCmd, len(keys))
	for i, k := range keys {
		counters[i] = pipe.HMGet(ctx, r.counterKey(k), "s", "r")
	}
	var anomalies [len(anomalyLevels)]*redis.StringCmd
	if req.Agent != "" {
		for i, level := range anomalyLevels {
			anomalies[i] = pipe.Get(ctx, r.anomalyKey(req.Agent, level))
		}
	}
	var freezes *redis.StringSliceCmd
	if req.Freezes {
		freezes = pipe.HVals(ctx, r.freezesActiveKey())
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return ReadResult{}, fmt.Errorf("reading budget state: %w", r.wrap(err))
	}
	out := ReadResult{States: make([]State, len(keys))}
	for i, k := range keys {
		v, err := counters[i].Result()
		if err != nil {
			return ReadResult{}, fmt.Errorf("reading %s %q: %w", k.Scope, k.ID, r.wrap(err))
		}
		out.States[i] = stateOf(k, asNanos(v[0]), max(asNanos(v[1]), 0), now, r.cal.loc)
	}
	for i, dst := range [...]*time.Time{&out.LastCallAnomaly, &out.LastActionAnomaly, &out.LastRunAnomaly} {
		if anomalies[i] == nil {
			continue
		}
		if *dst, _, err = r.anomalyTime(anomalies[i]); err != nil {
			return ReadResult{}, fmt.Errorf("reading anomaly of %q: %w", req.Agent, err)
		}
	}
	if freezes != nil {
		fs, err := decodeFreezes(freezes.Val())
		if err != nil {
			return ReadResult{}, err
		}
		out.Freezes = activeFreezes(fs, now)
	}
	return out, nil
}

// Snapshot implements Ledger.
func (r *Redis) Snapshot(ctx context.Context, now time.Time) (Snapshot, error) {
	now = at(now)
	out := Snapshot{At: now}
	var refs []counter
	for _, w := range CalendarWindows {
		win := r.cal.counter("", "", w, now)
		iter := r.client.SScan(ctx, r.indexKey(w, win.Start), 0, "", 1000).Iterator()
		for iter.Next(ctx) {
			if len(refs) >= r.cfg.SnapshotLimit {
				out.Truncated = true
				break
			}
			scope, id, ok := strings.Cut(iter.Val(), ":")
			if !ok {
				continue
			}
			k := win
			k.Scope, k.ID = Scope(scope), id
			refs = append(refs, k)
		}
		if err := iter.Err(); err != nil {
			return out, fmt.Errorf("listing scopes: %w", r.wrap(err))
		}
		if out.Truncated {
			break
		}
	}
	pipe := r.client.Pipeline()
	cmds := make([]*redis.SliceCmd, len(refs))
	for i, k := range refs {
		cmds[i] = pipe.HMGet(ctx, r.counterKey(k), "s", "r")
	}
	if len(refs) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return out, fmt.Errorf("reading scopes: %w", r.wrap(err))
		}
	}
	for i, k := range refs {
		v := cmds[i].Val()
		if spent, reserved := asNanos(v[0]), max(asNanos(v[1]), 0); spent != 0 || reserved != 0 {
			out.States = append(out.States, stateOf(k, spent, reserved, now, r.cal.loc))
		}
	}
	slices.SortStableFunc(out.States, func(a, b State) int {
		return strings.Compare(string(a.Scope)+"\x00"+a.ID, string(b.Scope)+"\x00"+b.ID)
	})
	return out, nil
}

// AcquireLease implements Ledger.
func (r *Redis) AcquireLease(ctx context.Context, key string, limit int, ttl time.Duration, now time.Time) (string, bool, time.Duration, error) {
	if err := validateLease(key, limit, ttl); err != nil {
		return "", false, 0, err
	}
	now = at(now)
	id := newLeaseID()
	reply, err := leaseScript.Run(ctx, r.client, []string{r.leaseKey(key)},
		micros(now), limit, micros(now.Add(ttl)), id).Slice()
	if err != nil {
		return "", false, 0, fmt.Errorf("acquiring lease %q: %w", key, r.wrap(err))
	}
	if asInt(reply[0]) == 1 {
		return id, true, 0, nil
	}
	first, _ := strconv.ParseFloat(reply[1].(string), 64)
	return "", false, time.Duration(int64(first)-micros(now)) * time.Microsecond, nil
}

// ReleaseLease implements Ledger.
func (r *Redis) ReleaseLease(ctx context.Context, key, leaseID string) error {
	if err := r.client.ZRem(ctx, r.leaseKey(key), leaseID).Err(); err != nil {
		return fmt.Errorf("releasing lease %q: %w", key, r.wrap(err))
	}
	return nil
}

// AllowRate implements Ledger.
func (r *Redis) AllowRate(ctx context.Context, key string, limit int, per time.Duration, now time.Time) (bool, time.Duration, error) {
	if key == "" {
		return false, 0, errors.New("rate limit key is empty")
	}
	interval, period, err := gcraInterval(limit, per)
	if err != nil {
		return false, 0, err
	}
	reply, err := rateScript.Run(ctx, r.client, []string{r.rateKey(key)}, micros(at(now)), interval, period).Slice()
	if err != nil {
		return false, 0, fmt.Errorf("rate limit %q: %w", key, r.wrap(err))
	}
	wait, _ := strconv.ParseInt(reply[1].(string), 10, 64)
	return asInt(reply[0]) == 1, time.Duration(wait) * time.Microsecond, nil
}

// PutIfAbsent implements Ledger.
func (r *Redis) PutIfAbsent(ctx context.Context, key string, value []byte, ttl time.Duration) ([]byte, bool, error) {
	if key == "" {
		return nil, false, errors.New("idempotency key is empty")
	}
	if ttl <= 0 {
		return nil, false, fmt.Errorf("idempotency ttl %v is not positive", ttl)
	}
	reply, err := r.run(ctx, putScript, []string{r.putKey(key)}, value, ms(ttl)).Slice()
	if err != nil {
		return nil, false, fmt.Errorf("idempotency record %q: %w", key, r.wrap(err))
	}
	if asInt(reply[0]) == 1 {
		return nil, true, nil
	}
	v, _ := reply[1].(string)
	return []byte(v), false, nil
}

// CreateApproval implements Ledger.
func (r *Redis) CreateApproval(ctx context.Context, a Approval, maxPending int) (Approval, error) {
	a.CreatedAt = at(a.CreatedAt)
	if err := a.validate(); err != nil {
		return Approval{}, err
	}
	a.State, a.Decision, a.ConsumedAt = decisionapi.ApprovalPending, nil, time.Time{}
	v, err := json.Marshal(a)
	if err != nil {
		return Approval{}, err
	}
	ttl := a.ExpiresAt.Sub(a.CreatedAt) + r.cfg.ApprovalRetention
	keys := []string{r.approvalKey(a.ID), r.approvalIndexKey(), r.approvalPendingKey(a.Agent)}
	created, err := r.run(ctx, approvalCreateScript, keys,
		micros(a.ExpiresAt), v, ms(ttl), micros(a.CreatedAt), a.ID, max(maxPending, 0), ms(a.ExpiresAt.Sub(a.CreatedAt))).Int()
	if err != nil {
		return Approval{}, fmt.Errorf("creating approval %q: %w", a.ID, r.wrap(err))
	}
	switch created {
	case 0:
		return Approval{}, fmt.Errorf("approval %q: %w", a.ID, ErrExists)
	case -1:
		return Approval{}, &PendingCapError{Agent: a.Agent, Max: maxPending}
	}
	return a, nil
}

func decodeApproval(id string, m map[string]string) (Approval, error) {
	if len(m) == 0 {
		return Approval{}, fmt.Errorf("approval %q: %w", id, ErrNotFound)
	}
	var a Approval
	if err := json.Unmarshal([]byte(m["json"]), &a); err != nil {
		return Approval{}, fmt.Errorf("decoding approval %q: %w", id, err)
	}
	a.State = decisionapi.ApprovalState(m["state"])
	return a, nil
}

// GetApproval implements Ledger.
func (r *Redis) GetApproval(ctx context.Context, id string, now time.Time) (Approval, error) {
	m, err := r.client.HGetAll(ctx, r.approvalKey(id)).Result()
	if err != nil {
		return Approval{}, fmt.Errorf("reading approval %q: %w", id, r.wrap(err))
	}
	a, err := decodeApproval(id, m)
	if err != nil {
		return Approval{}, err
	}
	return a.effective(at(now)), nil
}

// ListApprovals implements Ledger. It walks the index (id by created µs, which orders like
// ApprovalCursor) from the cursor in batches, reading each approval, until limit match.
func (r *Redis) ListApprovals(ctx context.Context, state decisionapi.ApprovalState, after ApprovalCursor, limit int, now time.Time) ([]Approval, error) {
	if _, err := decisionapi.ParseApprovalState(string(state)); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	now = at(now)
	const batch = 500
	var (
		out    []Approval
		gone   []any
		pos    = after
		min    = "-inf"
		offset int64
	)
	if !after.IsZero() {
		min = itoa(after.CreatedMicros)
	}
	for len(out) < limit {
		zs, err := r.client.ZRangeByScoreWithScores(ctx, r.approvalIndexKey(), &redis.ZRangeBy{Min: min, Max: "+inf", Offset: offset, Count: batch}).Result()
		if err != nil {
			return nil, fmt.Errorf("listing approvals: %w", r.wrap(err))
		}
		var ids []string
		for _, z := range zs {
			id, _ := z.Member.(string)
			if c := (ApprovalCursor{CreatedMicros: int64(z.Score), ID: id}); c.compare(pos) > 0 {
				ids = append(ids, id)
			}
		}
		pipe := r.client.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(ids))
		for i, id := range ids {
			cmds[i] = pipe.HGetAll(ctx, r.approvalKey(id))
		}
		if len(ids) > 0 {
			if _, err := pipe.Exec(ctx); err != nil {
				return nil, fmt.Errorf("listing approvals: %w", r.wrap(err))
			}
		}
		for i, id := range ids {
			a, err := decodeApproval(id, cmds[i].Val())
			if errors.Is(err, ErrNotFound) {
				gone = append(gone, id) // the record outlived its retention
				continue
			}
			if err != nil {
				return nil, err
			}
			if a = a.effective(now); (state == "" || a.State == state) && len(out) < limit {
				out = append(out, a)
			}
		}
		if len(zs) < batch {
			break
		}
		last := zs[len(zs)-1]
		id, _ := last.Member.(string)
		if lc := (ApprovalCursor{CreatedMicros: int64(last.Score), ID: id}); lc.compare(pos) > 0 {
			pos = lc
		}
		if next := itoa(int64(last.Score)); next == min {
			offset += batch // a whole batch created in one microsecond
		} else {
			min, offset = next, 0
		}
	}
	if len(gone) > 0 {
		if err := r.client.ZRem(ctx, r.approvalIndexKey(), gone...).Err(); err != nil {
			return nil, r.wrap(err)
		}
	}
	return pageApprovals(out, after, limit), nil
}

// ResolveApproval implements Ledger.
func (r *Redis) ResolveApproval(ctx context.Context, id string, res Resolution) (Approval, error) {
	if err := res.validate(); err != nil {
		return Approval{}, err
	}
	now := at(res.Time)
	return r.transition(ctx, id, now, func(a Approval) (Approval, error) { return a.resolve(res, now) })
}

// ConsumeApproval implements Ledger.
func (r *Redis) ConsumeApproval(ctx context.Context, id string, now time.Time) (Approval, error) {
	now = at(now)
	return r.transition(ctx, id, now, func(a Approval) (Approval, error) { return a.consume(now) })
}

// transition reads an approval, computes its next state and writes it with a compare-and-set on the
// stored state, so of two concurrent transitions exactly one wins.
func (r *Redis) transition(ctx context.Context, id string, now time.Time, fn func(Approval) (Approval, error)) (Approval, error) {
	for {
		a, err := r.GetApproval(ctx, id, now)
		if err != nil {
			return Approval{}, err
		}
		stored := a.State
		if a.State == decisionapi.ApprovalExpired {
			// The stored state is still pending or approved; expiry is computed, not written.
			m, err := r.client.HGet(ctx, r.approvalKey(id), "state").Result()
			if err != nil {
				return Approval{}, r.wrap(err)
			}
			stored = decisionapi.ApprovalState(m)
		}
		next, err := fn(a)
		if err != nil {
			return Approval{}, err
		}
		v, err := json.Marshal(next)
		if err != nil {
			return Approval{}, err
		}
		keys := []string{r.approvalKey(id), r.approvalPendingKey(a.Agent)}
		reply, err := r.run(ctx, approvalCASScript, keys, string(stored), string(next.State), v, id).StringSlice()
		if err != nil {
			return Approval{}, fmt.Errorf("updating approval %q: %w", id, r.wrap(err))
		}
		switch reply[0] {
		case "ok":
			return next, nil
		case "notfound":
			return Approval{}, fmt.Errorf("approval %q: %w", id, ErrNotFound)
		}
		// Another writer moved it first: read again and let fn refuse or retry.
	}
}

// RecordAnomaly implements Ledger.
func (r *Redis) RecordAnomaly(ctx context.Context, agent string, level AnomalyLevel, t time.Time) error {
	if err := level.validate(); err != nil {
		return err
	}
	if agent == "" {
		return errors.New("anomaly agent is empty")
	}
	err := anomalyScript.Run(ctx, r.client, []string{r.anomalyKey(agent, level)}, micros(at(t)), ms(anomalyTTL)).Err()
	if err != nil {
		return fmt.Errorf("recording anomaly of %q: %w", agent, r.wrap(err))
	}
	return nil
}

// LastAnomaly implements Ledger.
func (r *Redis) LastAnomaly(ctx context.Context, agent string, level AnomalyLevel) (time.Time, bool, error) {
	if err := level.validate(); err != nil {
		return time.Time{}, false, err
	}
	t, ok, err := r.anomalyTime(r.client.Get(ctx, r.anomalyKey(agent, level)))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("reading anomaly of %q: %w", agent, err)
	}
	return t, ok, nil
}

// anomalyTime reads an anomaly key's value: zero and false when the key does not exist.
func (r *Redis) anomalyTime(cmd *redis.StringCmd) (time.Time, bool, error) {
	v, err := cmd.Int64()
	switch {
	case errors.Is(err, redis.Nil):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, r.wrap(err)
	}
	return time.UnixMicro(v).In(r.cal.loc), true, nil
}
