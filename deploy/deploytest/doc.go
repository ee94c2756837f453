// Package deploytest checks the deployment artefacts under deploy/: the Prometheus alerting rules
// and their unit tests (with promtool), the Grafana dashboard's queries against the metric names
// the distribution exposes, the Dockerfile's basic facts, and the Kubernetes manifests. It builds
// the real otelcol-agentcost binary, validates the image's and the ConfigMap's collector
// configurations with it and starts the collector on each. It holds tests only.
package deploytest
