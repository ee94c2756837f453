package ledger_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/agentcost/agentcost/internal/ledger"
	"github.com/agentcost/agentcost/internal/ledger/ledgertest"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
)

func embeddedBackend() ledgertest.Backend {
	return ledgertest.Backend{
		Name: "embedded",
		Open: func(t testing.TB, cfg ledger.Config) (ledger.Ledger, func() ledger.Ledger) {
			cfg.Backend = ledger.BackendEmbedded
			cfg.Directory = filepath.Join(t.TempDir(), "ledger")
			var last ledger.Ledger
			open := func() ledger.Ledger {
				if last != nil {
					if err := last.Close(); err != nil {
						t.Fatalf("closing: %v", err)
					}
				}
				l, err := ledger.Open(context.Background(), cfg, ledger.Settings{})
				if err != nil {
					t.Fatalf("opening the embedded ledger: %v", err)
				}
				t.Cleanup(func() { _ = l.Close() })
				last = l
				return l
			}
			return open(), open
		},
	}
}

var prefixes atomic.Int64

// redisBackend opens ledgers on srv, each Open under a key prefix of its own.
func redisBackend(srv *redistest.Server) ledgertest.Backend {
	return ledgertest.Backend{
		Name:   "redis",
		Shared: true,
		Open: func(t testing.TB, cfg ledger.Config) (ledger.Ledger, func() ledger.Ledger) {
			cfg.Backend = ledger.BackendRedis
			cfg.Redis.Endpoint = srv.Addr
			cfg.Redis.KeyPrefix = fmt.Sprintf("test%d:", prefixes.Add(1))
			open := func() ledger.Ledger {
				l, err := ledger.Open(context.Background(), cfg, ledger.Settings{})
				if err != nil {
					t.Fatalf("opening the redis ledger: %v", err)
				}
				t.Cleanup(func() { _ = l.Close() })
				return l
			}
			return open(), open
		},
	}
}

func TestEmbedded(t *testing.T) {
	ledgertest.Run(t, embeddedBackend())
}

func TestRedis(t *testing.T) {
	ledgertest.Run(t, redisBackend(redistest.Start(t)))
}
