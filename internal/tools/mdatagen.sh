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
# v0.159.0's output builds and passes against the v0.165 APIs; docs/telemetry.md ("Generated
# metadata") lists where it differs from what v0.165 would generate.
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
