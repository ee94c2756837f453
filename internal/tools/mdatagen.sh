#!/bin/sh
# mdatagen.sh METADATA_YAML: regenerates a component's metadata code from its metadata.yaml with
# go.opentelemetry.io/collector/cmd/mdatagen, the generator the collector's own components use.
#
# Each component's metadata.yaml has a `//go:generate` line in its doc.go that calls this script, so
# `go generate ./processor/... ./exporter/... ./receiver/... ./extension/...` regenerates them all.
# The generated files are committed; CI does not regenerate.
#
# The module proxy serves mdatagen only up to v0.159.0 (v0.160-v0.165 are missing), and
# `go install ...@v0.159.0` fails on its @latest lookup, so this script builds v0.159.0 from the
# module cache: download the module, drop the `replace` lines (they point into the collector's
# monorepo) and build it. The binary is cached in $(go env GOPATH)/bin/mdatagen-v0.159.0.
#
# v0.159.0's output builds and passes against the v0.165 APIs. Run over the collector's own v0.165
# components (batchprocessor, memorylimiterprocessor, otlpreceiver, otlphttpexporter) and contrib
# v0.165.1's filestorage and healthcheckv2 extensions, it writes what they ship, but for:
#   - a processor's lifecycle test: v0.165 also checks that the next consumer gets the very
#     context given to the processor; agentcostprocessor's TestComponentContextPropagation does so
#     by hand;
#   - an exporter declaring `sending_queue:` in metadata.yaml (v0.165 only) gets a generated
#     default-queue test; costledger declares none (exporter_test.go checks its queue defaults);
#   - v0.165 schema keys (`tests::skip_context_propagation`, `config:` schemas) that v0.159
#     rejects; none is used here;
#   - import grouping in generated tests (gofmt-equal code).
set -eu

version=v0.159.0
bin="$(go env GOPATH)/bin/mdatagen-$version"

if [ ! -x "$bin" ]; then
	dir=$(GOFLAGS= go mod download -json "go.opentelemetry.io/collector/cmd/mdatagen@$version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ -z "$dir" ]; then
		echo "mdatagen.sh: go mod download of mdatagen@$version gave no directory" >&2
		exit 1
	fi
	src=$(mktemp -d)
	trap 'rm -rf "$src"' EXIT
	cp -R "$dir"/. "$src"
	chmod -R u+w "$src"
	sed -i.orig '/^replace /d' "$src/go.mod"
	mkdir -p "$(dirname "$bin")"
	(cd "$src" && GOFLAGS=-mod=mod go build -o "$bin" .)
fi

exec "$bin" "$@"
