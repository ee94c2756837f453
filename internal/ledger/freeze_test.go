package ledger_test

import (
	"testing"

	"github.com/agentcost/agentcost/internal/ledger/ledgertest"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
)

func TestEmbeddedFreezes(t *testing.T) { ledgertest.RunFreezes(t, embeddedBackend()) }

func TestRedisFreezes(t *testing.T) { ledgertest.RunFreezes(t, redisBackend(redistest.Start(t))) }
