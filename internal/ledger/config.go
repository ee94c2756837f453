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

// Config configures a ledger; its mapstructure keys are the budgetledger extension's YAML keys.
type Config struct {
	// Backend is "embedded" (default) or "redis".
	Backend string `mapstructure:"backend"`
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

// RedisConfig configures the connection to Redis.
type RedisConfig struct {
	// Endpoint is host:port of the Redis server.
	Endpoint string `mapstructure:"endpoint"`
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

// NewDefaultConfig returns the default configuration: the embedded backend in ./data/ledger, UTC.
func NewDefaultConfig() Config {
	return Config{
		Backend:             BackendEmbedded,
		Directory:           "./data/ledger",
		TimeZone:            "UTC",
		IdempotencyHorizon:  48 * time.Hour,
		SettledRetention:    15 * time.Minute,
		RunRetention:        7 * 24 * time.Hour,
		ApprovalRetention:   7 * 24 * time.Hour,
		SnapshotLimit:       10000,
		MaintenanceInterval: time.Minute,
		Redis: RedisConfig{
			Endpoint:     "localhost:6379",
			KeyPrefix:    "agentcost:",
			DialTimeout:  5 * time.Second,
			ReadTimeout:  3 * time.Second,
			WriteTimeout: 3 * time.Second,
		},
	}
}

// Validate checks the configuration; each error names the YAML key at fault.
func (c *Config) Validate() error {
	var errs []error
	switch c.Backend {
	case BackendEmbedded:
		if strings.TrimSpace(c.Directory) == "" {
			errs = append(errs, errors.New("directory: required for the embedded backend"))
		}
	case BackendRedis:
		if strings.TrimSpace(c.Redis.Endpoint) == "" {
			errs = append(errs, errors.New("redis.endpoint: required for the redis backend"))
		} else if !strings.Contains(c.Redis.Endpoint, ":") {
			errs = append(errs, fmt.Errorf("redis.endpoint: %q is not host:port", c.Redis.Endpoint))
		}
		if c.Redis.DB < 0 {
			errs = append(errs, fmt.Errorf("redis.db: %d is negative", c.Redis.DB))
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
	if _, err := c.location(); err != nil {
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

func (c *Config) location() (*time.Location, error) {
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
