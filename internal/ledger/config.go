package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/config/configopaque"
	"go.opentelemetry.io/collector/config/configtls"
	"go.uber.org/zap"
)

// The backend names of Config.Backend.
const (
	BackendEmbedded = "embedded"
	BackendRedis    = "redis"
)

// The durability levels of Config.Durability: what an answered reservation survives.
const (
	// DurabilityPower fsyncs a reservation before it is answered: it survives a power cut.
	DurabilityPower = "power"
	// DurabilityProcess answers a reservation once it is written to the operating system (the page
	// cache): it survives kill -9 of the collector; a power cut or kernel crash can lose the
	// reservations of the last sync_interval, which the syncer fsyncs within that interval.
	DurabilityProcess = "process"
)

// Config configures a ledger; its mapstructure keys are the budgetledger extension's YAML keys.
type Config struct {
	// Backend is "embedded" (default) or "redis".
	Backend string `mapstructure:"backend"`
	// Durability is what an answered decision's reservation survives on the embedded backend:
	// "power" (default: fsynced before the answer) or "process" (in the page cache before the
	// answer, fsynced within sync_interval). Every other write of the embedded backend (bookings,
	// settlements, approvals, freezes) is fsynced before it is answered in both. The Redis backend
	// acknowledges what the Redis server holds in memory; its durability is the server's
	// appendfsync and redis.wait_for_replicas (see docs/design.md, "Durability").
	Durability string `mapstructure:"durability"`
	// SyncInterval bounds, with durability "process", how long an answered reservation may stay
	// unsynced (default 100ms).
	SyncInterval time.Duration `mapstructure:"sync_interval"`
	// Directory holds the embedded backend's file (ledger.db).
	Directory string `mapstructure:"directory"`
	// Redis configures the Redis backend.
	Redis RedisConfig `mapstructure:"redis"`
	// TimeZone is the IANA time zone that aligns every window (default UTC).
	TimeZone string `mapstructure:"time_zone"`
	// IdempotencyHorizon is how long a booked span's id is remembered (default 48h). A span booked
	// again after the horizon counts again.
	IdempotencyHorizon time.Duration `mapstructure:"idempotency_horizon"`
	// SettledRetention is how long a settled reservation is kept after its settlement (default 15m):
	// a repeated release within it answers the first settlement, one after it is not found. Spans
	// of a settled action are booked as ordinary spend either way, so it bounds only how long a
	// release can be retried; it is what each decision leaves in the ledger.
	SettledRetention time.Duration `mapstructure:"settled_retention"`
	// RunRetention is how long a run's lifetime counter is kept after its last activity (default 7 days).
	RunRetention time.Duration `mapstructure:"run_retention"`
	// ApprovalRetention is how long an approval is kept after it expires (default 7 days).
	ApprovalRetention time.Duration `mapstructure:"approval_retention"`
	// SnapshotLimit bounds the number of states one Snapshot returns (default 10000).
	SnapshotLimit int `mapstructure:"snapshot_limit"`
	// MaintenanceInterval is how often the embedded backend prunes ended windows and expired records
	// (default 1m).
	MaintenanceInterval time.Duration `mapstructure:"maintenance_interval"`
}

// The modes of RedisConfig.Mode.
const (
	RedisModeSingle   = "single"
	RedisModeSentinel = "sentinel"
	RedisModeCluster  = "cluster"
)

// RedisConfig configures the connection to Redis.
type RedisConfig struct {
	// Mode is how the ledger finds its Redis: "single" (default; one server at endpoint),
	// "sentinel" (the primary that sentinel_addresses report for master_name, followed across
	// failovers) or "cluster" (Redis Cluster seeded by addresses). It is explicit: the client never
	// guesses the mode from the other settings.
	Mode string `mapstructure:"mode"`
	// Endpoint is host:port of the Redis server (single mode).
	Endpoint string `mapstructure:"endpoint"`
	// MasterName is the name under which the sentinels monitor the primary (sentinel mode).
	MasterName string `mapstructure:"master_name"`
	// SentinelAddresses are the host:port of the sentinels (sentinel mode); one that answers is enough.
	SentinelAddresses []string `mapstructure:"sentinel_addresses"`
	// SentinelUsername and SentinelPassword authenticate to the sentinels (sentinel mode), when they
	// require it; the password is never logged. Username and Password authenticate to the data nodes.
	SentinelUsername string              `mapstructure:"sentinel_username"`
	SentinelPassword configopaque.String `mapstructure:"sentinel_password"`
	// Addresses are host:port seeds of a Redis Cluster (cluster mode); the client discovers the rest.
	// In cluster mode key_prefix is wrapped in a hash tag ("agentcost:" becomes "{agentcost}:") unless
	// it has one, so every key of the ledger lives in one slot, on one primary.
	Addresses []string `mapstructure:"addresses"`
	// WaitForReplicas, when replicas is above 0, answers a booking, reservation, settlement,
	// approval or idempotency record only once that many replicas acknowledged it (Redis WAIT), so
	// that a failover to an acknowledging replica loses nothing that was answered.
	WaitForReplicas WaitForReplicasConfig `mapstructure:"wait_for_replicas"`
	// Username and Password authenticate (ACL user or requirepass); the password is never logged.
	Username string              `mapstructure:"username"`
	Password configopaque.String `mapstructure:"password"`
	// DB is the Redis database number.
	DB int `mapstructure:"db"`
	// KeyPrefix starts every key the ledger writes (default "agentcost:"); ledgers with the same
	// prefix on the same server share one truth.
	KeyPrefix string `mapstructure:"key_prefix"`
	// TLS, when set, encrypts the connection.
	TLS *configtls.ClientConfig `mapstructure:"tls"`
	// DialTimeout, ReadTimeout and WriteTimeout bound each connection attempt and command.
	DialTimeout  time.Duration `mapstructure:"dial_timeout"`
	ReadTimeout  time.Duration `mapstructure:"read_timeout"`
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// PoolSize is the connection pool size (default 10 per CPU).
	PoolSize int `mapstructure:"pool_size"`
}

// WaitForReplicasConfig configures Redis WAIT after every mutation of the ledger.
type WaitForReplicasConfig struct {
	// Replicas is how many replicas must acknowledge a write before it is answered (0: do not wait).
	Replicas int `mapstructure:"replicas"`
	// Timeout bounds the wait (default 100ms); a write that fewer replicas acknowledged within it
	// fails with ErrNotReplicated, although the primary applied it.
	Timeout time.Duration `mapstructure:"timeout"`
}

// NewDefaultConfig returns the default configuration: the embedded backend in ./data/ledger, UTC.
func NewDefaultConfig() Config {
	return Config{
		Backend:             BackendEmbedded,
		Durability:          DurabilityPower,
		SyncInterval:        100 * time.Millisecond,
		Directory:           "./data/ledger",
		TimeZone:            "UTC",
		IdempotencyHorizon:  48 * time.Hour,
		SettledRetention:    15 * time.Minute,
		RunRetention:        7 * 24 * time.Hour,
		ApprovalRetention:   7 * 24 * time.Hour,
		SnapshotLimit:       10000,
		MaintenanceInterval: time.Minute,
		Redis: RedisConfig{
			Mode:         RedisModeSingle,
			Endpoint:     "localhost:6379",
			KeyPrefix:    "agentcost:",
			DialTimeout:  5 * time.Second,
			ReadTimeout:  3 * time.Second,
			WriteTimeout: 3 * time.Second,
		},
	}
}

// maxSyncInterval bounds sync_interval: what a power cut can take in durability "process".
const maxSyncInterval = 10 * time.Second

// Validate checks the configuration; each error names the YAML key at fault.
func (c *Config) Validate() error {
	var errs []error
	switch c.Backend {
	case BackendEmbedded:
		if strings.TrimSpace(c.Directory) == "" {
			errs = append(errs, errors.New("directory: required for the embedded backend"))
		}
	case BackendRedis:
		errs = append(errs, c.Redis.validateMode()...)
		if c.Redis.DB < 0 {
			errs = append(errs, fmt.Errorf("redis.db: %d is negative", c.Redis.DB))
		}
		if c.Redis.WaitForReplicas.Replicas < 0 {
			errs = append(errs, fmt.Errorf("redis.wait_for_replicas.replicas: %d is negative", c.Redis.WaitForReplicas.Replicas))
		}
		if w := c.Redis.WaitForReplicas; w.Timeout < 0 {
			errs = append(errs, fmt.Errorf("redis.wait_for_replicas.timeout: %v is negative", w.Timeout))
		} else if w.Replicas > 0 && c.Redis.ReadTimeout > 0 && w.Timeout >= c.Redis.ReadTimeout {
			errs = append(errs, fmt.Errorf("redis.wait_for_replicas.timeout: %v is not below redis.read_timeout %v", w.Timeout, c.Redis.ReadTimeout))
		}
		if c.Redis.PoolSize < 0 {
			errs = append(errs, fmt.Errorf("redis.pool_size: %d is negative", c.Redis.PoolSize))
		}
		for key, d := range map[string]time.Duration{
			"redis.dial_timeout": c.Redis.DialTimeout, "redis.read_timeout": c.Redis.ReadTimeout, "redis.write_timeout": c.Redis.WriteTimeout,
		} {
			if d < 0 {
				errs = append(errs, fmt.Errorf("%s: %v is negative", key, d))
			}
		}
		if c.Redis.TLS != nil {
			if err := c.Redis.TLS.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("redis.tls: %w", err))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("backend: %q is not %q or %q", c.Backend, BackendEmbedded, BackendRedis))
	}
	switch c.Durability {
	case "", DurabilityPower, DurabilityProcess:
	default:
		errs = append(errs, fmt.Errorf("durability: %q is not %q or %q", c.Durability, DurabilityPower, DurabilityProcess))
	}
	if c.SyncInterval < 0 || c.SyncInterval > maxSyncInterval {
		errs = append(errs, fmt.Errorf("sync_interval: %v is not between 0 and %v", c.SyncInterval, maxSyncInterval))
	}
	if _, err := c.Location(); err != nil {
		errs = append(errs, err)
	}
	for key, d := range map[string]time.Duration{
		"idempotency_horizon": c.IdempotencyHorizon, "run_retention": c.RunRetention, "settled_retention": c.SettledRetention,
		"approval_retention": c.ApprovalRetention, "maintenance_interval": c.MaintenanceInterval,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s: %v is negative", key, d))
		}
	}
	if c.SnapshotLimit < 0 {
		errs = append(errs, fmt.Errorf("snapshot_limit: %d is negative", c.SnapshotLimit))
	}
	return errors.Join(errs...)
}

// validateMode checks the settings of the Redis mode; endpoint is required in single mode only.
func (r *RedisConfig) validateMode() []error {
	var errs []error
	hostPorts := func(key string, addrs []string) {
		if len(addrs) == 0 {
			errs = append(errs, fmt.Errorf("redis.%s: required in %s mode", key, r.Mode))
		}
		for _, a := range addrs {
			if !strings.Contains(a, ":") {
				errs = append(errs, fmt.Errorf("redis.%s: %q is not host:port", key, a))
			}
		}
	}
	switch r.Mode {
	case "", RedisModeSingle:
		if strings.TrimSpace(r.Endpoint) == "" {
			errs = append(errs, errors.New("redis.endpoint: required for the redis backend in single mode"))
		} else if !strings.Contains(r.Endpoint, ":") {
			errs = append(errs, fmt.Errorf("redis.endpoint: %q is not host:port", r.Endpoint))
		}
	case RedisModeSentinel:
		if strings.TrimSpace(r.MasterName) == "" {
			errs = append(errs, errors.New("redis.master_name: required in sentinel mode"))
		}
		hostPorts("sentinel_addresses", r.SentinelAddresses)
	case RedisModeCluster:
		hostPorts("addresses", r.Addresses)
		if r.DB != 0 {
			errs = append(errs, fmt.Errorf("redis.db: %d, but Redis Cluster has database 0 only (leave db unset in cluster mode)", r.DB))
		}
		if p := r.KeyPrefix; strings.Contains(p, "{") && clusterPrefix(p) != p {
			errs = append(errs, fmt.Errorf("redis.key_prefix: %q has a \"{\" but no non-empty hash tag", p))
		}
	default:
		errs = append(errs, fmt.Errorf("redis.mode: %q is not %q, %q or %q", r.Mode, RedisModeSingle, RedisModeSentinel, RedisModeCluster))
	}
	if r.Mode != RedisModeSentinel && (len(r.SentinelAddresses) > 0 || r.MasterName != "") {
		errs = append(errs, fmt.Errorf("redis.sentinel_addresses, redis.master_name: set, but redis.mode is %q (set mode: sentinel)", r.modeName()))
	}
	if r.Mode != RedisModeCluster && len(r.Addresses) > 0 {
		errs = append(errs, fmt.Errorf("redis.addresses: set, but redis.mode is %q (set mode: cluster)", r.modeName()))
	}
	return errs
}

func (r *RedisConfig) modeName() string {
	if r.Mode == "" {
		return RedisModeSingle
	}
	return r.Mode
}

// clusterPrefix returns prefix with a hash tag: unchanged when it has one ("{x}..."), else with its
// part before a trailing colon wrapped ("agentcost:" -> "{agentcost}:").
func clusterPrefix(prefix string) string {
	if i := strings.IndexByte(prefix, '{'); i >= 0 {
		if j := strings.IndexByte(prefix[i+1:], '}'); j > 0 {
			return prefix
		}
	}
	base, colon := strings.CutSuffix(prefix, ":")
	if colon {
		return "{" + base + "}:"
	}
	return "{" + base + "}"
}

// Location loads the time zone that aligns every window: time_zone, UTC when empty. The error
// names the key.
func (c *Config) Location() (*time.Location, error) {
	if c.TimeZone == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("time_zone: unknown time zone %q: %w", c.TimeZone, err)
	}
	return loc, nil
}

// withDefaults fills zero durations and limits with the defaults.
func (c Config) withDefaults() Config {
	d := NewDefaultConfig()
	if c.Backend == "" {
		c.Backend = d.Backend
	}
	if c.Durability == "" {
		c.Durability = d.Durability
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = d.SyncInterval
	}
	if c.IdempotencyHorizon == 0 {
		c.IdempotencyHorizon = d.IdempotencyHorizon
	}
	if c.SettledRetention == 0 {
		c.SettledRetention = d.SettledRetention
	}
	if c.RunRetention == 0 {
		c.RunRetention = d.RunRetention
	}
	if c.ApprovalRetention == 0 {
		c.ApprovalRetention = d.ApprovalRetention
	}
	if c.SnapshotLimit == 0 {
		c.SnapshotLimit = d.SnapshotLimit
	}
	if c.MaintenanceInterval == 0 {
		c.MaintenanceInterval = d.MaintenanceInterval
	}
	if c.Redis.KeyPrefix == "" {
		c.Redis.KeyPrefix = d.Redis.KeyPrefix
	}
	if c.Redis.Mode == "" {
		c.Redis.Mode = RedisModeSingle
	}
	if c.Redis.WaitForReplicas.Replicas > 0 && c.Redis.WaitForReplicas.Timeout == 0 {
		c.Redis.WaitForReplicas.Timeout = 100 * time.Millisecond
	}
	return c
}

// Settings carries what a ledger needs from its host besides the configuration.
type Settings struct {
	// Logger receives start-up and maintenance messages; nil discards them.
	Logger *zap.Logger
	// Now is the clock of background maintenance; nil means time.Now. Tests that book at made-up
	// times set it so that pruning does not remove their windows.
	Now func() time.Time
}

func (s Settings) withDefaults() Settings {
	if s.Logger == nil {
		s.Logger = zap.NewNop()
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	return s
}

// Open validates cfg and opens the backend it names.
func Open(ctx context.Context, cfg Config, set Settings) (Ledger, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Backend == BackendRedis {
		return OpenRedis(ctx, cfg, set)
	}
	return OpenEmbedded(cfg, set)
}
