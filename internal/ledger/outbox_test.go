package ledger_test

import (
	"testing"

	"github.com/agentcost/agentcost/internal/ledger/ledgertest"
	"github.com/agentcost/agentcost/internal/testutil/redistest"
)

func TestOutboxEmbedded(t *testing.T) {
	ledgertest.RunOutbox(t, embeddedBackend())
}

func TestOutboxRedis(t *testing.T) {
	ledgertest.RunOutbox(t, redisBackend(redistest.Start(t)))
}
