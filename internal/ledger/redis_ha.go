package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrNotReplicated is returned by a mutation that the Redis primary applied but fewer replicas than
// redis.wait_for_replicas.replicas acknowledged within its timeout: the write was not acknowledged
// and may be lost by a failover. Bookings are idempotent and can be retried as they are; a
// reservation that failed so may still hold its estimate until its TTL expires.
var ErrNotReplicated = errors.New("not acknowledged by enough Redis replicas")

// newRedisClient builds the client of cfg.Mode (never guessed from the other settings) and checks
// that Redis answers. It returns the client and a description of where it connected for the log.
func newRedisClient(ctx context.Context, cfg RedisConfig) (redis.UniversalClient, string, error) {
	// One set of options for every mode; the mode picks go-redis' explicit conversion (Simple,
	// Failover, Cluster), never its guess from which options are set.
	opts := &redis.UniversalOptions{
		MasterName:               cfg.MasterName,
		SentinelUsername:         cfg.SentinelUsername,
		SentinelPassword:         string(cfg.SentinelPassword),
		Username:                 cfg.Username,
		Password:                 string(cfg.Password),
		DB:                       cfg.DB,
		DialTimeout:              cfg.DialTimeout,
		ReadTimeout:              cfg.ReadTimeout,
		WriteTimeout:             cfg.WriteTimeout,
		ContextTimeoutEnabled:    true, // a caller's deadline (a decision's ledger timeout) bounds a command too
		PoolSize:                 cfg.PoolSize,
		Protocol:                 2,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if cfg.TLS != nil {
		tlsCfg, err := cfg.TLS.LoadTLSConfig(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("redis.tls: %w", err)
		}
		opts.TLSConfig = tlsCfg
	}
	var client redis.UniversalClient
	var where string
	switch cfg.Mode {
	case RedisModeSentinel:
		opts.Addrs = cfg.SentinelAddresses
		client = redis.NewFailoverClient(opts.Failover())
		where = "master " + cfg.MasterName + " via sentinels " + strings.Join(cfg.SentinelAddresses, ",")
	case RedisModeCluster:
		opts.Addrs = cfg.Addresses
		client = redis.NewClusterClient(opts.Cluster())
		where = "cluster " + strings.Join(cfg.Addresses, ",")
	default:
		opts.Addrs = []string{cfg.Endpoint}
		client = redis.NewClient(opts.Simple())
		where = cfg.Endpoint
	}
	if err := client.Ping(ctx).Err(); err != nil {
		_ = client.Close()
		return nil, "", fmt.Errorf("connecting to redis (%s mode) at %s: %w", cfg.Mode, where, err)
	}
	return client, where, nil
}

// run runs a mutation script. With redis.wait_for_replicas set it sends the script and WAIT in one
// pipeline on one connection to the primary that owns the ledger's keys, so that WAIT counts the
// replicas that acknowledged this very write, and fails with ErrNotReplicated when too few did.
func (r *Redis) run(ctx context.Context, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	w := r.cfg.Redis.WaitForReplicas
	if w.Replicas <= 0 {
		return s.Run(ctx, r.client, keys, args...)
	}
	failed := func(err error) *redis.Cmd {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	}
	var node *redis.Client
	switch c := r.client.(type) {
	case *redis.Client:
		node = c
	case *redis.ClusterClient:
		n, err := c.MasterForKey(ctx, r.prefix)
		if err != nil {
			return failed(fmt.Errorf("finding the primary of the ledger's slot: %w", err))
		}
		node = n
	default:
		return failed(fmt.Errorf("redis client %T cannot wait for replicas", r.client))
	}
	for attempt := range 2 {
		pipe := node.Pipeline()
		var cmd *redis.Cmd
		if attempt == 0 {
			cmd = s.EvalSha(ctx, pipe, keys, args...)
		} else {
			cmd = s.Eval(ctx, pipe, keys, args...) // loads the script for the next EVALSHA too
		}
		acked := redis.NewIntCmd(ctx, "wait", w.Replicas, w.Timeout.Milliseconds())
		_ = pipe.Process(ctx, acked)
		_, _ = pipe.Exec(ctx)
		if attempt == 0 && redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			continue
		}
		if cmd.Err() != nil && !errors.Is(cmd.Err(), redis.Nil) {
			return cmd
		}
		n, err := acked.Result()
		if err != nil {
			return failed(fmt.Errorf("waiting for %d replicas: %w", w.Replicas, err))
		}
		if n < int64(w.Replicas) {
			return failed(fmt.Errorf("%d of %d replicas acknowledged within %v: %w", n, w.Replicas, w.Timeout, ErrNotReplicated))
		}
		return cmd
	}
	return failed(errors.New("script not loaded"))
}
