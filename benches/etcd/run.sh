#!/usr/bin/env bash
# Aurigraph's 3-node cluster against etcd, in one run on one machine (docs/PERFORMANCE.md,
# "Cluster against etcd"). Each round, one after the other:
#   (a) one `aurigraph start` node + `aurigraph load`,
#   (b) a 3-node `aurigraph cluster up` + the same `aurigraph load` against its leader,
#   (c) 3 etcd members on loopback + benches/etcd/client (puts of a transfer's size, the same
#       concurrency), against the leader.
# Every system gets fresh data folders each round; fsync stays on everywhere (defaults).
# Prints each round's figures, then a table of medians and the ratios.
#
# Settings (environment): ROUNDS (3), DURATION (seconds, 8), RATE (50000), SENDERS (1024),
# CONNECTIONS (4), ETCD_CLIENTS (concurrent puts, a list: "256 1024 4096"), ETCD_TARGET
# (leader|all, leader), VALUE_SIZE (158: a signed one-recipient transfer), KEY_SIZE (32: a
# transaction hash), BUILD (1: build both binaries first), KEEP (1: keep the work folder),
# ports: SINGLE_PORT (17600), CLUSTER_BASE (17611), ETCD_CLIENT_BASE (23790), ETCD_PEER_BASE
# (23800); CARGO_TARGET_DIR (/var/tmp/aurigraph-ci-target), CLIENT_TARGET_DIR
# (/var/tmp/aurigraph-etcd-client-target).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
RATE=${RATE:-50000}
SENDERS=${SENDERS:-1024}
CONNECTIONS=${CONNECTIONS:-4}
ETCD_CLIENTS=${ETCD_CLIENTS:-"256 1024 4096"}
ETCD_TARGET=${ETCD_TARGET:-leader}
KEY_SIZE=${KEY_SIZE:-32}
VALUE_SIZE=${VALUE_SIZE:-158}
BUILD=${BUILD:-1}
KEEP=${KEEP:-0}
SINGLE_PORT=${SINGLE_PORT:-17600}
CLUSTER_BASE=${CLUSTER_BASE:-17611}
ETCD_CLIENT_BASE=${ETCD_CLIENT_BASE:-23790}
ETCD_PEER_BASE=${ETCD_PEER_BASE:-23800}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/aurigraph-ci-target}
CLIENT_TARGET_DIR=${CLIENT_TARGET_DIR:-/var/tmp/aurigraph-etcd-client-target}
AURIGRAPH=$CARGO_TARGET_DIR/release/aurigraph
ETCD_LOAD=$CLIENT_TARGET_DIR/release/etcd-put-load
export ETCDCTL_API=3

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# --- what it needs -------------------------------------------------------------------------
SUDO=
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
need_apt=()
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v etcdctl >/dev/null || need_apt+=(etcd-client)
command -v jq >/dev/null || need_apt+=(jq)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
    log "installing ${need_apt[*]}"
    $SUDO apt-get install -y "${need_apt[@]}" >/dev/null ||
        { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y "${need_apt[@]}" >/dev/null; }
fi
if [ "$BUILD" = 1 ]; then
    log "building aurigraph (release)"
    (cd "$ROOT" && cargo build --locked --release -p aurigraph-cli --bin aurigraph)
    log "building the etcd client (benches/etcd/client, its own workspace)"
    CARGO_TARGET_DIR=$CLIENT_TARGET_DIR cargo build --locked --release \
        --manifest-path "$ROOT/benches/etcd/client/Cargo.toml"
fi
for b in "$AURIGRAPH" "$ETCD_LOAD"; do
    [ -x "$b" ] || { log "missing $b (run with BUILD=1)"; exit 1; }
done

# --- processes and their cleanup -----------------------------------------------------------
WORK=$(mktemp -d /var/tmp/aurigraph-etcd-bench.XXXXXX)
PIDS=()
CLUSTERS=()

# SIGTERM, then SIGKILL after 10 s; reaps them.
stop_pids() {
    local p i
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "$@"; do
        for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    local keep=()
    for p in "${PIDS[@]}"; do
        case " $* " in *" $p "*) ;; *) keep+=("$p") ;; esac
    done
    PIDS=("${keep[@]}")
}

cleanup() {
    set +e
    local d
    for d in "${CLUSTERS[@]}"; do "$AURIGRAPH" cluster down --dir "$d" >/dev/null 2>&1; done
    [ ${#PIDS[@]} -eq 0 ] || stop_pids "${PIDS[@]}"
    if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ok() { # URL SECONDS
    local i
    for i in $(seq $(($2 * 10))); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    log "no answer from $1 after $2 s"
    return 1
}

# aurigraph load against URL, its JSON report in FILE.
run_load() { # URL FILE
    (cd "$(dirname "$2")" && "$AURIGRAPH" load --node "$1" --rate "$RATE" \
        --duration "${DURATION}s" --senders "$SENDERS" --connections "$CONNECTIONS" \
        --json --quiet >"$2" 2>"$2.err") ||
        { log "aurigraph load against $1 failed:"; tail -5 "$2.err" >&2; return 1; }
}

RESULTS=$WORK/results.tsv # round system rate p50 p99 count loadavg
printf 'round\tsystem\trate\tp50_ms\tp99_ms\tcount\tloadavg\n' >"$RESULTS"

record_load() { # ROUND SYSTEM FILE LOADAVG
    local row
    row=$(jq -r '[.committed.rate, .request_latency.p50_ms, .request_latency.p99_ms,
        .committed.transactions, .acknowledged.transactions] | @tsv' "$3")
    read -r rate p50 p99 committed acked <<<"$row"
    [ "$committed" = "$acked" ] || log "$2: committed $committed of $acked acknowledged"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$rate" "$p50" "$p99" "$committed" "$4" \
        >>"$RESULTS"
    log "$2: committed $committed at $rate tx/s, request p50 $p50 ms, p99 $p99 ms (load $4)"
}

# (a) one node.
single() { # ROUND
    local dir=$WORK/r$1/single pid
    mkdir -p "$dir"
    "$AURIGRAPH" start --data-dir "$dir/data" --listen "127.0.0.1:$SINGLE_PORT" \
        >"$dir/node.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_ok "http://127.0.0.1:$SINGLE_PORT/readyz" 60
    run_load "http://127.0.0.1:$SINGLE_PORT" "$dir/load.json"
    record_load "$1" "aurigraph-1" "$dir/load.json" "$(loadavg)"
    stop_pids "$pid"
}

# (b) three validators, the load against the leader.
cluster() { # ROUND
    local dir=$WORK/r$1/cluster leader i roots
    mkdir -p "$dir"
    CLUSTERS+=("$dir/c")
    "$AURIGRAPH" cluster up --nodes 3 --dir "$dir/c" --base-port "$CLUSTER_BASE" >"$dir/up.txt"
    leader=$(awk '/\(leader\)$/ {for (i = 1; i <= NF; i++) if ($i ~ /^http:/) print $i}' \
        "$dir/up.txt")
    [ -n "$leader" ] || { log "no leader in $dir/up.txt"; cat "$dir/up.txt" >&2; exit 1; }
    run_load "$leader" "$dir/load.json"
    record_load "$1" "aurigraph-3" "$dir/load.json" "$(loadavg)"
    # Every replica at one height with one state root.
    for i in $(seq 50); do
        roots=$(for p in 0 1 2; do
            curl -fsS "http://127.0.0.1:$((CLUSTER_BASE + p))/v1/cluster" |
                jq -r '"\(.height) \(.state_root)"'
        done | sort -u)
        [ "$(wc -l <<<"$roots")" = 1 ] && break
        sleep 0.2
    done
    log "cluster replicas (height root): $(tr '\n' ';' <<<"$roots")"
    "$AURIGRAPH" cluster down --dir "$dir/c" >/dev/null
    CLUSTERS=()
}

# (c) three etcd members on loopback, durable defaults; the client against the leader.
etcd3() { # ROUND
    local dir=$WORK/r$1/etcd i ic="" eps="" pids=() target c out
    mkdir -p "$dir"
    for i in 1 2 3; do
        ic+="${ic:+,}m$i=http://127.0.0.1:$((ETCD_PEER_BASE + i))"
        eps+="${eps:+,}http://127.0.0.1:$((ETCD_CLIENT_BASE + i))"
    done
    for i in 1 2 3; do
        etcd --name "m$i" --data-dir "$dir/m$i" \
            --listen-client-urls "http://127.0.0.1:$((ETCD_CLIENT_BASE + i))" \
            --advertise-client-urls "http://127.0.0.1:$((ETCD_CLIENT_BASE + i))" \
            --listen-peer-urls "http://127.0.0.1:$((ETCD_PEER_BASE + i))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PEER_BASE + i))" \
            --initial-cluster "$ic" --initial-cluster-token "bench-r$1" \
            --initial-cluster-state new --logger zap --log-level warn \
            >"$dir/m$i.log" 2>&1 &
        pids+=($!)
        PIDS+=($!)
    done
    for i in $(seq 100); do
        etcdctl --endpoints "$eps" endpoint health >/dev/null 2>&1 && break
        sleep 0.2
    done
    etcdctl --endpoints "$eps" endpoint health >/dev/null 2>&1 ||
        { log "etcd not healthy: $dir/m*.log"; exit 1; }
    # `endpoint status -w simple`: ENDPOINT, ID, VERSION, DB SIZE, IS LEADER, ...
    target=$(etcdctl --endpoints "$eps" endpoint status -w simple |
        awk -F', ' '$5 == "true" {print $1}')
    [ "$ETCD_TARGET" = all ] && target=$eps
    for c in $ETCD_CLIENTS; do
        out=$("$ETCD_LOAD" --endpoints "$target" --clients "$c" --connections "$CONNECTIONS" \
            --duration "$DURATION" --key-size "$KEY_SIZE" --value-size "$VALUE_SIZE")
        echo "$out" >"$dir/load-$c.json"
        read -r rate p50 p99 puts errors <<<"$(jq -r \
            '[.puts_per_s, .p50_ms, .p99_ms, .puts, .errors] | @tsv' <<<"$out")"
        [ "$errors" = 0 ] || log "etcd-$c: $errors failed puts (not counted)"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "etcd-3/c$c" "$rate" "$p50" "$p99" "$puts" \
            "$(loadavg)" >>"$RESULTS"
        log "etcd-3, $c clients: $puts puts at $rate puts/s, p50 $p50 ms, p99 $p99 ms"
    done
    stop_pids "${pids[@]}"
}

log "work folder $WORK; $(nproc) CPUs; load $(loadavg)"
for r in $(seq "$ROUNDS"); do
    log "round $r of $ROUNDS"
    single "$r"
    cluster "$r"
    etcd3 "$r"
done

# --- medians and ratios --------------------------------------------------------------------
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan";
    else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
col() { awk -F'\t' -v s="$1" -v c="$2" '$2 == s {print $c}' "$RESULTS"; }
# Per round: rate of A / rate of B; then their median.
ratio() {
    awk -F'\t' -v a="$1" -v b="$2" '$2 == a {x[$1]=$3} $2 == b {y[$1]=$3}
        END {for (r in x) if (r in y && y[r] > 0) print x[r]/y[r]}' "$RESULTS" | median
}

systems="aurigraph-1 aurigraph-3"
for c in $ETCD_CLIENTS; do systems+=" etcd-3/c$c"; done
echo
echo "Per round (rate: committed tx/s or acknowledged puts/s; latency in ms):"
column -t -s$'\t' "$RESULTS"
echo
echo "Medians of $ROUNDS rounds (duration ${DURATION}s each; aurigraph: --rate $RATE" \
    "--senders $SENDERS --connections $CONNECTIONS; etcd: $KEY_SIZE-byte keys," \
    "$VALUE_SIZE-byte values, $CONNECTIONS connections, target $ETCD_TARGET):"
printf '%-14s %12s %10s %10s %10s\n' system rate p50_ms p99_ms count
for s in $systems; do
    printf '%-14s %12.0f %10.1f %10.1f %10.0f\n' "$s" "$(col "$s" 3 | median)" \
        "$(col "$s" 4 | median)" "$(col "$s" 5 | median)" "$(col "$s" 6 | median)"
done
echo
echo "Ratios (median of the per-round ratios):"
printf '  3-node cluster / single node: %.2fx\n' "$(ratio aurigraph-3 aurigraph-1)"
best=""
for c in $ETCD_CLIENTS; do
    x=$(ratio aurigraph-3 "etcd-3/c$c")
    printf '  3-node cluster / etcd 3 members (%s clients): %.2fx\n' "$c" "$x"
    if [ -z "$best" ] || awk -v x="$x" -v b="$best" 'BEGIN {exit !(x < b)}'; then best=$x; fi
done
if awk -v b="$best" 'BEGIN {exit !(b >= 3)}'; then verdict="met"; else verdict="NOT met"; fi
printf '  goal >= 3x against etcd (its best concurrency here): %.2fx, %s\n' "$best" "$verdict"
