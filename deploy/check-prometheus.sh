#!/usr/bin/env bash
# Checks the Prometheus alerting rules of deploy/prometheus/:
#   1. promtool check rules / check config (syntax, templates),
#   2. promtool test rules (alerts_test.yml: every rule fires in one test, stays quiet in another),
#   3. live: a real `aurigraph start` node on a free 127.0.0.1 port, a real `prometheus` scraping
#      it every 1 s with the REAL alerts.yml loaded; the node is stopped and the check waits for
#      AurigraphNodeUnresponsive to fire on GET /api/v1/alerts (its `for:` is 30 s).
#      Before that, a guard rollback: the node watches a plugins folder holding the
#      fault-injected plugin deploy/prometheus/testdata/fault-trap-after-warmup.wasm (passes the
#      warm-up, traps on real blocks; WAT source and gen script next to it); the check loads it
#      as the `ordering` candidate (admin API), routes 100 % of decisions to it, sends a little
#      load, and waits for the guard's rollback and for AurigraphGuardRollback to fire.
# Installs Debian's `prometheus` package (promtool + server) when either is missing (needs root or
# sudo). Uses the release binary $CARGO_TARGET_DIR/release/aurigraph (default target dir
# /var/tmp/aurigraph-ci-target), building it when missing; AURIGRAPH_BIN overrides.
# Env: FIRE_TIMEOUT (s, default 60): longest wait for the alert after the node stopped;
#      ROLLBACK_TIMEOUT (s, default 30): longest wait for the rollback and its alert.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RULES="$ROOT/deploy/prometheus/alerts.yml"
TESTS="$ROOT/deploy/prometheus/alerts_test.yml"
EXAMPLE="$ROOT/deploy/prometheus/prometheus.yml"
ALERT=AurigraphNodeUnresponsive
FIRE_TIMEOUT=${FIRE_TIMEOUT:-60}
ROLLBACK_ALERT=AurigraphGuardRollback
ROLLBACK_TIMEOUT=${ROLLBACK_TIMEOUT:-30}
FAULT_PLUGIN="$ROOT/deploy/prometheus/testdata/fault-trap-after-warmup.wasm"
FAULT_NAME=fault-trap-after-warmup FAULT_VERSION=1.0.0 FAULT_SLOT=ordering
START=$SECONDS

log() { printf '[check-prometheus %3ds] %s\n' "$((SECONDS - START))" "$*"; }
die() { log "FAIL: $*"; exit 1; }

# ---------------------------------------------------------------- tools
# shellcheck source=deploy/lib.sh
. "$ROOT/deploy/lib.sh"
ensure_prometheus
command -v curl >/dev/null || die "curl is needed"
log "using $(promtool --version 2>&1 | head -n1)"

# ---------------------------------------------------------------- static checks
log "promtool check rules deploy/prometheus/alerts.yml"
promtool check rules "$RULES"
log "promtool check config deploy/prometheus/prometheus.yml (example scrape config)"
promtool check config "$EXAMPLE"
log "promtool test rules deploy/prometheus/alerts_test.yml"
promtool test rules "$TESTS"

# Every alert has a severity P0/P1/P2, a summary, a description and a runbook section.
mapfile -t ALERTS < <(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$RULES")
[ "${#ALERTS[@]}" -gt 0 ] || die "no alerts found in $RULES"
for a in "${ALERTS[@]}"; do
    block=$(awk -v a="$a" '$0 ~ "- alert: "a"$" {on=1; next} on && /- alert:/ {exit} on' "$RULES")
    grep -Eq 'severity: P[012]$' <<<"$block" || die "$a: no severity P0|P1|P2"
    for k in summary description runbook_url; do
        grep -q "^ *$k:" <<<"$block" || die "$a: no $k annotation"
    done
    anchor=$(tr '[:upper:]' '[:lower:]' <<<"$a")
    grep -q "runbook_url: \"docs/runbook.md#$anchor\"" <<<"$block" || die "$a: runbook_url is not docs/runbook.md#$anchor"
    grep -q "^## $a\$" "$ROOT/docs/runbook.md" || die "$a: no '## $a' section in docs/runbook.md"
    # (promtool itself checks what the tests expect; this only catches an alert left untested.)
    grep -q "alertname: $a\$" "$TESTS" || die "$a: no unit test"
done
log "${#ALERTS[@]} alerts: each has severity, summary, description, runbook section, unit tests"

# ---------------------------------------------------------------- live check
TARGET=${CARGO_TARGET_DIR:-/var/tmp/aurigraph-ci-target}
BIN=${AURIGRAPH_BIN:-$TARGET/release/aurigraph}
if [ ! -x "$BIN" ]; then
    log "building $BIN (cargo build --locked --release -p aurigraph-cli --bin aurigraph)"
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --locked --release -p aurigraph-cli --bin aurigraph)
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/check-prometheus.XXXXXX")
NODE_PID="" PROM_PID=""
cleanup() {
    local rc=$?
    for pid in $PROM_PID $NODE_PID; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [ "$rc" -ne 0 ]; then
        for f in node.log prometheus.log load.log; do
            [ -s "$TMP/$f" ] && { echo "---- last lines of $f"; tail -n 20 "$TMP/$f"; }
        done
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nothing listens on (and that we did not hand out already).
free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        [ "$p" = "${1:-}" ] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}
NODE_PORT=$(free_port) || die "no free port"
PROM_PORT=$(free_port "$NODE_PORT") || die "no free port"
NODE="127.0.0.1:$NODE_PORT"
PROM="http://127.0.0.1:$PROM_PORT"

wait_for() { # SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2; shift 2
    local end=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || die "timed out after ${limit}s waiting for $what"
        sleep 0.5
    done
}

# The node's own config: an admin token (the policy verbs), an empty models folder and a
# plugins folder holding only the fault-injected plugin, polled every 200 ms.
[ -s "$FAULT_PLUGIN" ] || die "fixture $FAULT_PLUGIN missing (deploy/prometheus/testdata/gen-fault-plugin.sh)"
mkdir -p "$TMP/models" "$TMP/plugins"
cp "$FAULT_PLUGIN" "$TMP/plugins/"
TOKEN="check-prometheus-$RANDOM$RANDOM$RANDOM"
cat >"$TMP/node.toml" <<CFG
[admin]
token = "$TOKEN"
[policies]
models_dir = "$TMP/models"
plugins_dir = "$TMP/plugins"
watch_interval_ms = 200
CFG
log "starting aurigraph node on $NODE ($BIN)"
"$BIN" start --config "$TMP/node.toml" --data-dir "$TMP/node" --listen "$NODE" >"$TMP/node.log" 2>&1 &
NODE_PID=$!
wait_for 30 "the node's /healthz" curl -fsS "http://$NODE/healthz"
curl -fsS "http://$NODE/metrics" >"$TMP/metrics.txt" || die "GET /metrics failed"

# Every aurigraph_* and process_* name the rules use (expressions and descriptions) is in the
# node's exposition, except the families created on first use (no series on an idle standalone
# node). The aurigraph_raft_* families are registered on every node (a standalone node reports
# them as 0: term 0, is_leader 0, quorum_ok 0), so they are checked here too; only the per-peer
# replication lag needs a cluster leader. Other names (node-exporter's node_*, `up`) are external.
LAZY="aurigraph_node_submissions_total aurigraph_raft_replication_lag_entries"
mapfile -t USED < <(grep -v '^ *#' "$RULES" | grep -Eo '\b(aurigraph|process)_[a-z_]*' | sort -u)
for m in "${USED[@]}"; do
    case " $LAZY " in *" $m "*) log "metric $m: created on first use (not on an idle node)"; continue ;; esac
    grep -Eq "^$m(_bucket|_sum|_count)?[ {]" "$TMP/metrics.txt" || die "rule metric $m is not in the node's /metrics"
done
log "every aurigraph_*/process_* metric the rules use is in the node's /metrics (${#USED[@]} names)"

cat >"$TMP/prometheus.yml" <<CFG
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files:
  - $RULES
scrape_configs:
  - job_name: aurigraph
    static_configs:
      - targets: ["$NODE"]
CFG
log "starting prometheus on $PROM (scrape and evaluation every 1 s, rules: deploy/prometheus/alerts.yml)"
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --log.level=warn >"$TMP/prometheus.log" 2>&1 &
PROM_PID=$!
wait_for 30 "prometheus /-/ready" curl -fsS "$PROM/-/ready"

query() { curl -fsS -G "$PROM/api/v1/query" --data-urlencode "query=$1"; }
target_up() { query "up{job=\"aurigraph\",instance=\"$NODE\"} == 1" | grep -q '"result":\[{'; }
wait_for 30 "the node's target to be up in prometheus" target_up
log "target $NODE is up in prometheus"

rules=$(curl -fsS "$PROM/api/v1/rules")
loaded=$(grep -o '"type":"alerting"' <<<"$rules" | wc -l)
[ "$loaded" -eq "${#ALERTS[@]}" ] || die "prometheus loaded $loaded alerting rules, alerts.yml has ${#ALERTS[@]}"
if grep -q '"health":"err"' <<<"$rules"; then die "a rule fails to evaluate: $(grep -o '"lastError":"[^"]*"' <<<"$rules" | sort -u)"; fi
log "prometheus loaded $loaded alerting rules, all evaluating without error"

# GET /api/v1/alerts, one alert object per line ("state" follows "labels" and "annotations").
alerts_lines() { curl -fsS "$PROM/api/v1/alerts" | sed 's/{"labels":/\n&/g'; }
alert_line() { # ALERTNAME -> the alert object of our node, if active
    alerts_lines | grep "\"alertname\":\"$1\"" | grep "\"instance\":\"$NODE\"" | head -n1
}
alert_state() { alert_line "$1" | grep -o '"state":"[a-z]*"' | head -n1 | cut -d'"' -f4; }
firing_alerts() {
    local l
    l=$(alerts_lines | grep '"state":"firing"' | grep -o '"alertname":"[A-Za-z0-9_]*"' |
        cut -d'"' -f4 | sort -u | tr '\n' ' ')
    echo "${l:-(none)}"
}
sleep 2
[ -z "$(alert_state "$ALERT")" ] || die "$ALERT is already active while the node runs"
log "node running: $ALERT is not active (firing now: $(firing_alerts))"

# ---------------------------------------------------------------- live: guard rollback
# The fault-injected plugin answers the host's warm-up (1, 7 and 64 rows) and traps on every
# other batch: loaded as the candidate with 100 % canary, the first blocks' ordering decisions
# fail and the guard rolls it back (conclusive evidence: a handful of decisions).
[ -z "$(alert_state "$ROLLBACK_ALERT")" ] || die "$ROLLBACK_ALERT is already active before any rollout"
policy() { AURIGRAPH_NODE="http://$NODE" AURIGRAPH_ADMIN_TOKEN="$TOKEN" "$BIN" policy "$@"; }
registered() { policy load "$FAULT_SLOT" "$FAULT_NAME" "$FAULT_VERSION" --backend wasm; }
wait_for 15 "the node to register plugin $FAULT_NAME@$FAULT_VERSION and load it as the $FAULT_SLOT candidate" registered
policy canary "$FAULT_SLOT" 100 >/dev/null || die "policy canary $FAULT_SLOT 100 failed"
log "candidate wasm:$FAULT_NAME@$FAULT_VERSION loaded on slot $FAULT_SLOT, canary 100 % (admin API)"
rollbacks() { # the node's aurigraph_policy_rollbacks_total for the slot
    curl -fsS "http://$NODE/metrics" | sed -n "s/^aurigraph_policy_rollbacks_total{slot=\"$FAULT_SLOT\"} //p"
}
[ "$(rollbacks)" = 0 ] || die "aurigraph_policy_rollbacks_total{slot=\"$FAULT_SLOT\"} is '$(rollbacks)' before the load, not 0"
LOADED=$SECONDS
n=0
until [ "$(rollbacks)" != 0 ]; do
    [ "$((SECONDS - LOADED))" -lt "$ROLLBACK_TIMEOUT" ] || die "no rollback on slot $FAULT_SLOT ${ROLLBACK_TIMEOUT}s after the load started: $(policy status "$FAULT_SLOT" 2>&1 | tail -n 3)"
    n=$((n + 1))
    "$BIN" load --node "http://$NODE" --rate 200 --duration 1s --senders 8 --connections 1 \
        --transport rest >>"$TMP/load.log" 2>&1 || die "aurigraph load failed (burst $n)"
done
status=$(policy status "$FAULT_SLOT" 2>&1) || die "policy status $FAULT_SLOT failed: $status"
grep -q "guard: .*(wasm:$FAULT_NAME@$FAULT_VERSION)" <<<"$status" || die "the rollback was not the guard's: $status"
log "guard rolled wasm:$FAULT_NAME@$FAULT_VERSION back after $n load burst(s), $((SECONDS - LOADED))s: $(grep -o "guard: .*(wasm:$FAULT_NAME@$FAULT_VERSION)" <<<"$status" | head -n1)"
ROLLED=$SECONDS
state=""
while [ "$((SECONDS - ROLLED))" -lt "$ROLLBACK_TIMEOUT" ]; do
    state=$(alert_state "$ROLLBACK_ALERT" || true)
    [ "$state" = firing ] && break
    sleep 1
done
[ "$state" = firing ] || die "$ROLLBACK_ALERT not firing ${ROLLBACK_TIMEOUT}s after the rollback (state: '${state:-none}')"
line=$(alert_line "$ROLLBACK_ALERT")
grep -q "\"slot\":\"$FAULT_SLOT\"" <<<"$line" || die "$ROLLBACK_ALERT fired without slot $FAULT_SLOT: $line"
grep -q '"severity":"P1"' <<<"$line" || die "$ROLLBACK_ALERT fired without severity P1: $line"
grep -q '"runbook_url":"docs/runbook.md#aurigraphguardrollback"' <<<"$line" || die "$ROLLBACK_ALERT fired without its runbook_url: $line"
log "$ROLLBACK_ALERT FIRING $((SECONDS - ROLLED))s after the rollback (instance $NODE, slot $FAULT_SLOT, severity P1, runbook_url set)"
[ -z "$(alert_state "$ALERT")" ] || die "$ALERT is active while the node runs"

log "stopping the node (SIGTERM to pid $NODE_PID)"
kill "$NODE_PID"
for _ in $(seq 100); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
kill -9 "$NODE_PID" 2>/dev/null || true
wait "$NODE_PID" 2>/dev/null || true
NODE_PID=""
STOPPED=$SECONDS

state="" seen_pending=""
while [ "$((SECONDS - STOPPED))" -lt "$FIRE_TIMEOUT" ]; do
    state=$(alert_state "$ALERT" || true)
    if [ "$state" = pending ] && [ -z "$seen_pending" ]; then
        seen_pending=1
        log "$ALERT pending $((SECONDS - STOPPED))s after the node stopped"
    fi
    [ "$state" = firing ] && break
    sleep 1
done
[ "$state" = firing ] || die "$ALERT not firing ${FIRE_TIMEOUT}s after the node stopped (state: '${state:-none}')"
line=$(alert_line "$ALERT")
grep -q '"severity":"P2"' <<<"$line" || die "$ALERT fired without severity P2: $line"
grep -q '"runbook_url":"docs/runbook.md#aurigraphnodeunresponsive"' <<<"$line" || die "$ALERT fired without its runbook_url: $line"
log "$ALERT FIRING $((SECONDS - STOPPED))s after the node stopped (instance $NODE, severity P2, runbook_url set)"
log "firing now: $(firing_alerts)"
log "OK: rules valid, unit tests pass, live alerts fired ($ROLLBACK_ALERT, $ALERT); total $((SECONDS - START))s"
