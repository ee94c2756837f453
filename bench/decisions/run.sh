#!/bin/sh
# The decision-path benchmark: agentcost's POST /v1/decisions against OPA v1.22.3 answering the
# same rules (policy.rego), alternated, for the require-approval path and the allow path with a
# reservation; then an open-loop mixed stream at a fixed rate while spans are booked over OTLP, on
# the embedded ledger and on Redis (with and without replica acknowledgement). See
# docs/benchmarks.md ("Decision endpoint"). Needs go, wrk, python3; redis-server for the Redis rows.
#
#   bench/decisions/run.sh                  # about 5 minutes
#   BENCH_ROUNDS=1 BENCH_SECONDS=5 bench/decisions/run.sh   # a quick look
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${BENCH_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/agentcost-bench/bin}
mkdir -p "$bin"
if [ ! -x "$bin/opa" ] || ! "$bin/opa" version | grep -q '^Version: 1.22.3$'; then
	echo "installing OPA v1.22.3 into $bin (once)" >&2
	(cd "$bin" && GOFLAGS= GOBIN="$bin" go install github.com/open-policy-agent/opa@v1.22.3)
fi
(cd "$root" && go build -o "$bin/otelcol-agentcost" ./cmd/otelcol-agentcost && go build -o "$bin/agentload" ./cmd/agentload)
exec python3 "$here/bench.py" --bin "$bin" --root "$root" "$@"
