#!/usr/bin/env bash
# Blocks in flight, paired: one `cluster up` folder of three validators, `max_blocks_in_flight`
# set to 1 then 4 in the three configs and the cluster started again, alternating, two rounds;
# `aurigraph load --rate $RATE --duration 8s --senders 1024 --connections 4` against the leader
# each time (docs/PERFORMANCE.md, "Cluster against etcd"). RATE defaults to 50000. Uses the
# release binary in $CARGO_TARGET_DIR (default /var/tmp/aurigraph-ci-target); needs jq.
set -euo pipefail
A=${CARGO_TARGET_DIR:-/var/tmp/aurigraph-ci-target}/release/aurigraph
W=$(mktemp -d /var/tmp/depth-ab.XXXX)
trap '"$A" cluster down --dir "$W/c" >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
"$A" cluster up --nodes 3 --dir "$W/c" --base-port 18611 >"$W/up.txt"
"$A" cluster down --dir "$W/c" >/dev/null
for round in 1 2; do
    for depth in 1 4; do
        for i in 1 2 3; do
            f="$W/c/node-$i/aurigraph.toml"
            if grep -q max_blocks_in_flight "$f"; then
                sed -i "s/^max_blocks_in_flight = .*/max_blocks_in_flight = $depth/" "$f"
            else
                sed -i "s/^\[cluster\]/[cluster]\nmax_blocks_in_flight = $depth/" "$f"
            fi
        done
        "$A" cluster up --dir "$W/c" >"$W/up.txt"
        leader=$(awk '/\(leader\)$/ {for (i = 1; i <= NF; i++) if ($i ~ /^http:/) print $i}' "$W/up.txt")
        (cd "$W" && "$A" load --node "$leader" --rate "${RATE:-50000}" --duration 8s --senders 1024 \
            --connections 4 --json --quiet >"$W/l.json" 2>"$W/l.err")
        echo "round $round depth $depth: $(jq -r '"\(.committed.rate) tx/s p50 \(.request_latency.p50_ms) p99 \(.request_latency.p99_ms) committed \(.committed.transactions) acked \(.acknowledged.transactions)"' "$W/l.json") load $(cut -d' ' -f1-3 /proc/loadavg)"
        "$A" cluster down --dir "$W/c" >/dev/null
    done
done
