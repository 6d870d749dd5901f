#!/usr/bin/env bash
# One node (`aurigraph start`, release, defaults, fsync on, a fresh data dir) driven over gRPC
# by `aurigraph load` (its own signing done before the clock) at each rate in RATES, one after
# the other, each against a fresh node. Prints the tool's report lines and the node's own
# admission-to-commit quantiles (`aurigraph_node_commit_latency_seconds`, read from /metrics
# after the run and interpolated within its 25 % buckets).
#
#   BUILD=1 RATES="25000 40000 50000" DURATION=8s ./benches/grpc/run.sh
#
# BUILD=0 uses the binary already built (AURIGRAPH=path to use another one); CORES="0-1"
# pins node and tool to those cores with taskset.
set -euo pipefail
cd "$(dirname "$0")/../.."
RATES=${RATES:-"25000 40000 50000"}
DURATION=${DURATION:-8s}
PORT=${PORT:-17990}
TARGET=${CARGO_TARGET_DIR:-target}
if [ "${BUILD:-1}" = 1 ]; then
  cargo build --locked --release -p aurigraph-cli --bin aurigraph >&2
fi
BIN=${AURIGRAPH:-$TARGET/release/aurigraph}
PIN=()
if [ -n "${CORES:-}" ]; then PIN=(taskset -c "$CORES"); fi

quantiles() {
  python3 - "$1" <<'PY'
import re, sys
buckets = []
for line in open(sys.argv[1]):
    m = re.match(r'aurigraph_node_commit_latency_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
    if m:
        le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
        buckets.append((le, float(m.group(2))))
buckets.sort()
total = buckets[-1][1] if buckets else 0
def q(p):
    want, lo, seen = p * total, 0.0, 0.0
    for le, c in buckets:
        if c >= want:
            if le == float("inf"):
                return lo
            return lo + (le - lo) * (want - seen) / max(c - seen, 1e-9)
        lo, seen = le, c
    return lo
print("submit-to-commit (node, %d tx): p50 %.1f ms, p90 %.1f ms, p99 %.1f ms"
      % (total, q(0.5) * 1e3, q(0.9) * 1e3, q(0.99) * 1e3))
PY
}

for RATE in $RATES; do
  DIR=$(mktemp -d)
  "${PIN[@]}" "$BIN" start --data-dir "$DIR" --listen "127.0.0.1:$PORT" >"$DIR/node.log" 2>&1 &
  NODE=$!
  for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$PORT/v1/head" >/dev/null 2>&1 && break
    sleep 0.2
  done
  echo "== rate $RATE tx/s for $DURATION, $(nproc) cores${CORES:+ (pinned to $CORES)}, $(uptime | sed 's/.*load/load/')"
  "${PIN[@]}" "$BIN" load --node "http://127.0.0.1:$PORT" --rate "$RATE" --duration "$DURATION" --quiet \
    | grep -E "offered|committed  |request latency" | sed 's/[│┆]/ /g; s/  */ /g'
  curl -s "http://127.0.0.1:$PORT/metrics" >"$DIR/metrics.txt"
  quantiles "$DIR/metrics.txt"
  kill "$NODE"
  wait "$NODE" 2>/dev/null || true
  rm -rf "$DIR"
done
