package costledgerexporter

import (
	"testing"

	"go.opentelemetry.io/collector/component"
)

// ledgerHost is the host of the generated lifecycle test (metadata.yaml tests::host): a started
// budgetledger extension in a temporary directory, shut down when the test ends.
func ledgerHost(t *testing.T) component.Host {
	h, _ := startLedger(t)
	return h
}
