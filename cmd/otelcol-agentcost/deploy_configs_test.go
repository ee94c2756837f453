package main

import (
	"path/filepath"
	"testing"

	"go.opentelemetry.io/collector/otelcol"
)

// TestDeployConfigsValidate runs `otelcol-agentcost validate` on the shipped configurations, from
// the repository root as the README's run command does.
func TestDeployConfigsValidate(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	for _, c := range []struct {
		path string
		env  map[string]string
	}{
		{path: "deploy/single-node/config.yaml"},
		{path: "deploy/multi-replica/replica.yaml", env: map[string]string{
			"REPLICA": "a", "OTLP_GRPC": "localhost:4317", "BUDGET_API": "localhost:4320",
			"METRICS": "localhost:9464", "TELEMETRY_PORT": "8888", "REDIS": "localhost:6379", "TOKENS": "./secrets",
		}},
		{path: "deploy/multi-replica/edge.yaml", env: map[string]string{
			"EDGE_OTLP_GRPC": "localhost:4317", "EDGE_OTLP_HTTP": "localhost:4318", "UPSTREAM": "localhost:5317",
			"TOKENS": "./secrets", "FORWARDER_TOKEN": "forwarder-token-0000",
		}},
	} {
		t.Run(c.path, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cmd := otelcol.NewCommand(settings())
			cmd.SetArgs([]string{"validate", "--config", c.path})
			if err := cmd.Execute(); err != nil {
				t.Fatalf("%s does not validate: %v", c.path, err)
			}
		})
	}
}
