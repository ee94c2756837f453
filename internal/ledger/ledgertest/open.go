package ledgertest

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
)

// NewEmbedded opens an empty embedded ledger in a temporary directory for another package's tests;
// it is closed at test cleanup. Background maintenance is off, so tests may use made-up times.
func NewEmbedded(tb testing.TB, tune ...func(*ledger.Config)) *ledger.Embedded {
	tb.Helper()
	cfg := BaseConfig()
	cfg.Directory = filepath.Join(tb.TempDir(), "ledger")
	for _, f := range tune {
		f(&cfg)
	}
	l, err := ledger.OpenEmbedded(cfg, ledger.Settings{})
	if err != nil {
		tb.Fatalf("opening the embedded ledger: %v", err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	return l
}

var redisPrefixes atomic.Int64

// NewRedis opens an empty Redis ledger under a key prefix of its own on srv (see
// redistest.Start); it is closed at test cleanup.
func NewRedis(tb testing.TB, srv *redistest.Server, tune ...func(*ledger.Config)) *ledger.Redis {
	tb.Helper()
	cfg := BaseConfig()
	cfg.Backend = ledger.BackendRedis
	cfg.Redis.Endpoint = srv.Addr
	cfg.Redis.KeyPrefix = fmt.Sprintf("t%d-%d:", time.Now().UnixNano(), redisPrefixes.Add(1))
	for _, f := range tune {
		f(&cfg)
	}
	l, err := ledger.OpenRedis(tb.Context(), cfg, ledger.Settings{})
	if err != nil {
		tb.Fatalf("opening the redis ledger: %v", err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	return l
}
