package main

import (
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/otelcol"
)

// TestDeploySentinelOverlayValidates: replica.yaml with the sentinel.yaml overlay, as
// deploy/multi-replica/README.md runs it, validates (issue 18).
func TestDeploySentinelOverlayValidates(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	for k, v := range map[string]string{
		"REPLICA": "a", "OTLP_GRPC": "localhost:4317", "BUDGET_API": "localhost:4320", "METRICS": "localhost:9464",
		"TELEMETRY_PORT": "8888", "REDIS": "localhost:6379", "TOKENS": "./secrets", "SENTINELS": "localhost:26379",
	} {
		t.Setenv(k, v)
	}
	cmd := otelcol.NewCommand(settings())
	cmd.SetArgs([]string{"validate", "--config", "deploy/multi-replica/replica.yaml", "--config", "deploy/multi-replica/sentinel.yaml"})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("replica.yaml + sentinel.yaml do not validate: %v", err)
	}
}
