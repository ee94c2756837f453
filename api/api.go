// Package api holds the OpenAPI document of agentcost's decision API (openapi.yaml), embedded so
// that tests and tools validate against the same bytes that are published.
package api

import _ "embed"

// OpenAPI is the OpenAPI 3.0 document of the decision API, as YAML.
//
//go:embed openapi.yaml
var OpenAPI []byte
