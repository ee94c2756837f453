package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/collector/config/configopaque"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/ledger/ledgertest"
	"github.com/agentcost/agentcost/internal/money"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
)

// haBackend opens ledgers through configure (which sets the mode and its addresses), each Open
// under a key prefix of its own.
func haBackend(name string, configure func(*ledger.Config)) ledgertest.Backend {
	return ledgertest.Backend{
		Name:   name,
		Shared: true,
		Open: func(t testing.TB, cfg ledger.Config) (ledger.Ledger, func() ledger.Ledger) {
			cfg.Backend = ledger.BackendRedis
			configure(&cfg)
			cfg.Redis.KeyPrefix = fmt.Sprintf("test%d:", prefixes.Add(1))
			open := func() ledger.Ledger {
				l, err := ledger.Open(context.Background(), cfg, ledger.Settings{})
				if err != nil {
					t.Fatalf("opening the %s ledger: %v", name, err)
				}
				t.Cleanup(func() { _ = l.Close() })
				return l
			}
			return open(), open
		},
	}
}

func sentinelBackend(s *redistest.SentinelSetup, wait int) ledgertest.Backend {
	return haBackend("redis-sentinel", func(cfg *ledger.Config) {
		cfg.Redis.Mode, cfg.Redis.MasterName, cfg.Redis.SentinelAddresses = ledger.RedisModeSentinel, s.MasterName, s.Sentinels
		cfg.Redis.Password, cfg.Redis.SentinelPassword = configopaque.String(s.Password), configopaque.String(s.SentinelPassword)
		cfg.Redis.WaitForReplicas = ledger.WaitForReplicasConfig{Replicas: wait, Timeout: time.Second}
	})
}

func clusterBackend(c *redistest.Cluster) ledgertest.Backend {
	return haBackend("redis-cluster", func(cfg *ledger.Config) {
		cfg.Redis.Mode, cfg.Redis.Addresses = ledger.RedisModeCluster, c.Addrs()
	})
}

// TestRedisSentinel runs the behaviour suite through password-protected sentinels and data nodes,
// with every mutation waiting for the replica; a wrong sentinel password does not open.
func TestRedisSentinel(t *testing.T) {
	s := redistest.StartSentinelWithPasswords(t, "data-pass", "sentinel-pass")
	ledgertest.Run(t, sentinelBackend(s, 1))

	cfg := ledgertest.BaseConfig()
	cfg.Backend, cfg.Redis.Mode, cfg.Redis.MasterName, cfg.Redis.SentinelAddresses = ledger.BackendRedis, ledger.RedisModeSentinel, s.MasterName, s.Sentinels
	cfg.Redis.Password, cfg.Redis.SentinelPassword = "data-pass", "wrong-pass"
	if l, err := ledger.Open(context.Background(), cfg, ledger.Settings{}); err == nil {
		_ = l.Close()
		t.Error("opened through sentinels with a wrong sentinel_password")
	} else if strings.Contains(err.Error(), "wrong-pass") {
		t.Errorf("the error shows the password: %v", err)
	}
}

// TestRedisCluster runs the behaviour suite on a three-primary Redis Cluster: every script's keys
// share the prefix's hash tag, else Redis answers CROSSSLOT.
func TestRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	ledgertest.Run(t, clusterBackend(c))

	// Every key of one ledger is in its prefix's hash-tag slot: one primary holds them all.
	cfg := ledgertest.BaseConfig()
	cfg.Backend, cfg.Redis.Mode, cfg.Redis.Addresses, cfg.Redis.KeyPrefix = ledger.BackendRedis, ledger.RedisModeCluster, c.Addrs(), "onetag:"
	l, err := ledger.Open(context.Background(), cfg, ledger.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Book(context.Background(), []ledger.Spend{{TraceID: "t", SpanID: "s", Time: time.Now(), Agent: "a", Team: "b", Model: "m", Cost: 5}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reserve(context.Background(), ledger.ReserveRequest{ID: "d", TraceID: "t2", Estimate: 1, TTL: time.Minute, Time: time.Now(),
		Checks: []ledger.Check{{Scope: ledger.ScopeFleet, Window: ledger.Day, Limit: 100}}}); err != nil {
		t.Fatal(err)
	}
	holding, total := 0, 0
	for _, addr := range c.Addrs() {
		rc := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, DisableIdentity: true})
		keys, err := rc.Keys(context.Background(), "*onetag*").Result()
		_ = rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if !strings.HasPrefix(k, "{onetag}:") {
				t.Errorf("key %q lacks the hash tag {onetag}", k)
			}
		}
		if len(keys) > 0 {
			holding++
		}
		total += len(keys)
	}
	if holding != 1 || total < 5 {
		t.Errorf("%d keys on %d of 3 primaries, want them all on 1 (one hash tag)", total, holding)
	}

	// wait_for_replicas in cluster mode runs on the slot's primary, which has no replica here.
	cfg.Redis.WaitForReplicas = ledger.WaitForReplicasConfig{Replicas: 1, Timeout: 20 * time.Millisecond}
	lw, err := ledger.Open(context.Background(), cfg, ledger.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer lw.Close()
	if _, err := lw.Book(context.Background(), []ledger.Spend{{TraceID: "t", SpanID: "s2", Time: time.Now(), Agent: "a", Cost: 5}}); !errors.Is(err, ledger.ErrNotReplicated) {
		t.Errorf("Book on a cluster without replicas, waiting for one: %v, want ErrNotReplicated", err)
	}
}

// TestRedisWaitForReplicasUnmet: with more replicas required than exist, a booking is applied by the
// primary but not acknowledged: it fails with ErrNotReplicated.
func TestRedisWaitForReplicasUnmet(t *testing.T) {
	srv := redistest.Start(t)
	cfg := ledgertest.BaseConfig()
	cfg.Backend, cfg.Redis.Endpoint, cfg.Redis.KeyPrefix = ledger.BackendRedis, srv.Addr, "unmet:"
	cfg.Redis.WaitForReplicas = ledger.WaitForReplicasConfig{Replicas: 1, Timeout: 20 * time.Millisecond}
	l, err := ledger.Open(context.Background(), cfg, ledger.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = l.Book(context.Background(), []ledger.Spend{{TraceID: "t", SpanID: "s", Time: time.Now(), Agent: "a", Cost: 5}})
	if !errors.Is(err, ledger.ErrNotReplicated) {
		t.Fatalf("Book without a replica: %v, want ErrNotReplicated", err)
	}
	_, err = l.Reserve(context.Background(), ledger.ReserveRequest{ID: "d", Estimate: 1, TTL: time.Minute, Time: time.Now(),
		Checks: []ledger.Check{{Scope: ledger.ScopeFleet, Window: ledger.Day, Limit: 100}}})
	if !errors.Is(err, ledger.ErrNotReplicated) {
		t.Fatalf("Reserve without a replica: %v, want ErrNotReplicated", err)
	}
}

// TestRedisModeValidation: each mode's settings are required, named by their YAML keys.
func TestRedisModeValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*ledger.RedisConfig)
		want string
	}{
		{"unknown mode", func(r *ledger.RedisConfig) { r.Mode = "ring" }, "redis.mode"},
		{"sentinel without master", func(r *ledger.RedisConfig) { r.Mode, r.SentinelAddresses = "sentinel", []string{"h:1"} }, "redis.master_name"},
		{"sentinel without sentinels", func(r *ledger.RedisConfig) { r.Mode, r.MasterName = "sentinel", "m" }, "redis.sentinel_addresses"},
		{"cluster without seeds", func(r *ledger.RedisConfig) { r.Mode = "cluster" }, "redis.addresses"},
		{"cluster with db", func(r *ledger.RedisConfig) { r.Mode, r.Addresses, r.DB = "cluster", []string{"h:1"}, 2 }, "redis.db"},
		{"bad seed", func(r *ledger.RedisConfig) { r.Mode, r.Addresses = "cluster", []string{"h"} }, "redis.addresses"},
		{"bad hash tag", func(r *ledger.RedisConfig) { r.Mode, r.Addresses, r.KeyPrefix = "cluster", []string{"h:1"}, "{}x:" }, "redis.key_prefix"},
		{"sentinel keys in single mode", func(r *ledger.RedisConfig) { r.MasterName = "m" }, "set mode: sentinel"},
		{"seeds in single mode", func(r *ledger.RedisConfig) { r.Addresses = []string{"h:1"} }, "set mode: cluster"},
		{"negative replicas", func(r *ledger.RedisConfig) { r.WaitForReplicas.Replicas = -1 }, "redis.wait_for_replicas.replicas"},
		{"wait beyond read timeout", func(r *ledger.RedisConfig) {
			r.WaitForReplicas = ledger.WaitForReplicasConfig{Replicas: 1, Timeout: 5 * time.Second}
		}, "redis.wait_for_replicas.timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ledger.NewDefaultConfig()
			cfg.Backend = ledger.BackendRedis
			tc.set(&cfg.Redis)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error naming %q", err, tc.want)
			}
		})
	}
	ok := ledger.NewDefaultConfig()
	ok.Backend = ledger.BackendRedis
	ok.Redis.Mode, ok.Redis.Addresses, ok.Redis.KeyPrefix = "cluster", []string{"h:1", "h:2"}, "{tenant}:ac:"
	if err := ok.Validate(); err != nil {
		t.Errorf("valid cluster config: %v", err)
	}
}

// TestRedisSentinelFailover books and reserves from several goroutines with wait_for_replicas on,
// SIGKILLs the primary mid-load and keeps going: the client follows the sentinels to the promoted
// replica by itself. Every failed operation is retried as a caller (a persistent queue, an agent)
// would, until acknowledged. Afterwards booked spend equals acknowledged spend exactly, every
// acknowledged reservation is there, and no reservation was granted beyond the limit.
func TestRedisSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("failover test: -short")
	}
	s := redistest.StartSentinel(t)
	cfg := ledgertest.BaseConfig()
	cfg.Backend, cfg.Redis.KeyPrefix = ledger.BackendRedis, "failover:"
	cfg.Redis.Mode, cfg.Redis.MasterName, cfg.Redis.SentinelAddresses = ledger.RedisModeSentinel, s.MasterName, s.Sentinels
	cfg.Redis.WaitForReplicas = ledger.WaitForReplicasConfig{Replicas: 1, Timeout: 500 * time.Millisecond}
	cfg.Redis.DialTimeout, cfg.Redis.ReadTimeout, cfg.Redis.WriteTimeout = 500*time.Millisecond, time.Second, time.Second
	ctx := context.Background()
	var ledgers []ledger.Ledger
	for range 2 { // two collector replicas
		l, err := ledger.Open(ctx, cfg, ledger.Settings{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		ledgers = append(ledgers, l)
	}
	at := time.Now()
	const (
		workers   = 4
		perWorker = 150
		limit     = money.Nanos(60 * 1000) // room for 60 of the 1000-nano reservations
	)
	fleetLimit := []ledger.Check{{Scope: ledger.ScopeFleet, Window: ledger.Day, Limit: limit}}
	var (
		acked    atomic.Int64 // acknowledged booked nanos
		granted  sync.Map     // reservation id -> true (acknowledged grant)
		failures atomic.Int64
		done     atomic.Int64
		outage   struct {
			sync.Mutex
			first, last time.Time
		}
		longest atomic.Int64 // longest time from an operation's first attempt to its acknowledgement
	)
	noteDone := func(since time.Time) {
		d := int64(time.Since(since))
		for {
			cur := longest.Load()
			if d <= cur || longest.CompareAndSwap(cur, d) {
				return
			}
		}
	}
	noteFailure := func() {
		failures.Add(1)
		outage.Lock()
		now := time.Now()
		if outage.first.IsZero() {
			outage.first = now
		}
		outage.last = now
		outage.Unlock()
	}
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := ledgers[w%len(ledgers)]
			for i := range perWorker {
				if done.Add(1) == workers*perWorker/3 {
					close(killed)
				}
				sp := ledger.Spend{TraceID: fmt.Sprintf("t%d", w), SpanID: fmt.Sprintf("s%d", i), Time: at, Agent: "a", Cost: money.Nanos(1 + i)}
				began := time.Now()
				for attempt := 0; ; attempt++ {
					r, err := l.Book(ctx, []ledger.Spend{sp})
					if err == nil {
						noteDone(began)
						if r.Booked+r.Duplicates != 1 {
							t.Errorf("Book %v: %+v", sp.SpanID, r)
						}
						acked.Add(int64(sp.Cost))
						break
					}
					noteFailure()
					if attempt > 400 {
						t.Errorf("Book %s/%s never acknowledged: %v", sp.TraceID, sp.SpanID, err)
						return
					}
					time.Sleep(25 * time.Millisecond)
				}
				id := fmt.Sprintf("r%d-%d", w, i)
				began = time.Now()
				for attempt := 0; ; attempt++ {
					_, err := l.Reserve(ctx, ledger.ReserveRequest{ID: id, Estimate: 1000, TTL: time.Hour, Time: at, Checks: fleetLimit})
					var ex *ledger.ExhaustedError
					if err == nil || errors.Is(err, ledger.ErrExists) || errors.As(err, &ex) {
						noteDone(began)
					}
					if err == nil || errors.Is(err, ledger.ErrExists) {
						// ErrExists: an earlier attempt was applied but not acknowledged; it holds once.
						granted.Store(id, true)
						break
					}
					if errors.As(err, &ex) {
						break
					}
					noteFailure()
					if attempt > 400 {
						t.Errorf("Reserve %s never answered: %v", id, err)
						return
					}
					time.Sleep(25 * time.Millisecond)
				}
			}
		}()
	}
	<-killed
	killedAt := time.Now()
	if err := s.KillPrimary(); err != nil {
		t.Fatal(err)
	}
	promoted := s.WaitPromoted(t, 60*time.Second)
	// With one replica, the promoted primary has none: nothing is acknowledged (wait_for_replicas: 1)
	// until the dead node is back as its replica.
	s.RestartPrimaryAsReplica(t)
	replicated := time.Since(killedAt)
	wg.Wait()
	if t.Failed() {
		return
	}
	outage.Lock()
	window := outage.last.Sub(outage.first)
	outage.Unlock()
	t.Logf("failover: replica promoted %v after SIGKILL, dead node back as replica after %v; %d failed attempts (first to last %v); longest wait of one operation for its acknowledgement %v",
		promoted.Round(time.Millisecond), replicated.Round(time.Millisecond), failures.Load(), window.Round(time.Millisecond),
		time.Duration(longest.Load()).Round(time.Millisecond))

	// A fresh ledger, as a restarted collector, reads the promoted primary.
	l, err := ledger.Open(ctx, cfg, ledger.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	st, err := l.State(ctx, ledger.ScopeAgent, "a", ledger.Day, at)
	if err != nil {
		t.Fatal(err)
	}
	if st.Spent != money.Nanos(acked.Load()) {
		t.Errorf("booked %d nano-dollars after the failover, acknowledged %d", st.Spent, acked.Load())
	}
	n := 0
	granted.Range(func(k, _ any) bool {
		n++
		if _, err := l.Release(ctx, ledger.ReleaseRequest{ID: k.(string), Time: at}); err != nil {
			t.Errorf("acknowledged reservation %s: %v", k, err)
		}
		return true
	})
	if money.Nanos(n)*1000 > limit {
		t.Errorf("%d reservations of 1000 granted under a limit of %d", n, limit)
	}
	if n == 0 {
		t.Error("no reservation granted")
	}
	fleet, err := l.State(ctx, ledger.ScopeFleet, "", ledger.Day, at)
	if err != nil {
		t.Fatal(err)
	}
	if fleet.Reserved != 0 {
		t.Errorf("fleet reserved %d after releasing every acknowledged reservation: a grant was counted twice or lost", fleet.Reserved)
	}
}
