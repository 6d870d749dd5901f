#!/usr/bin/env bash
# Checks the Grafana dashboard deploy/grafana/aurigraph.json:
#   1. types: `tsc --noEmit` (strict) against Grafana's published schema (npm @grafana/schema,
#      versions pinned in deploy/grafana/package.json), in two layers (see dashboard.ts):
#      the JSON as imported (deploy/grafana/tsconfig.json), and the same JSON as an object literal
#      `satisfies AurigraphDashboard` (literal unions, enums, excess properties at every level);
#   2. PromQL: every panel query (`targets[].expr`) and every variable query
#      (`label_values(SELECTOR, label)`) has the dashboard's variables replaced by concrete values
#      and is parsed by Prometheus' own parser (`promtool check rules` on a generated rule file
#      with one recording rule per expression);
#   3. metric names: every name the expressions use that starts with aurigraph_ or process_ is in
#      a real scrape of a running cluster (3 validators from $AURIGRAPH_BIN, driven with a few
#      hundred transfers, a refused and a dropped transaction so the families created on first use
#      appear), and every label those selectors match on exists on that metric. Other names
#      (Prometheus' `up`, node-exporter's node_*) are external: listed, not checked.
# Installs the npm packages into /var/tmp/aurigraph-tools/grafana (never into the repository)
# when missing or not the pinned versions, and Debian's `prometheus` package when promtool is
# missing (needs root or sudo), as deploy/check-prometheus.sh does.
# Env: AURIGRAPH_BIN (default /var/tmp/aurigraph-ci-target/debug/aurigraph, built when missing),
#      GRAFANA_TOOLS (default /var/tmp/aurigraph-tools/grafana).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR="$ROOT/deploy/grafana"
DASH="$DIR/aurigraph.json"
TOOLS=${GRAFANA_TOOLS:-/var/tmp/aurigraph-tools/grafana}
TARGET=${CARGO_TARGET_DIR:-/var/tmp/aurigraph-ci-target}
BIN=${AURIGRAPH_BIN:-$TARGET/debug/aurigraph}
START=$SECONDS

log() { printf '[check-grafana %3ds] %s\n' "$((SECONDS - START))" "$*"; }
die() { log "FAIL: $*"; exit 1; }

command -v python3 >/dev/null || die "python3 is needed"
command -v curl >/dev/null || die "curl is needed"
{ command -v node >/dev/null && command -v npm >/dev/null; } || die "node and npm are needed"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/check-grafana.XXXXXX")
CLUSTER="$TMP/cluster"
cleanup() {
    local rc=$?
    if [ -f "$CLUSTER/cluster.json" ]; then
        "$BIN" cluster down --dir "$CLUSTER" >/dev/null 2>&1 || true
    fi
    # Whatever `cluster down` left: only the processes this script's cluster started.
    for f in "$CLUSTER"/node-*/pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    if [ "$rc" -ne 0 ]; then
        for f in "$CLUSTER"/node-1/node.log "$TMP/load.log"; do
            [ -s "$f" ] && { echo "---- last lines of ${f#"$TMP"/}"; tail -n 20 "$f"; }
        done
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$DASH" || die "$DASH is not valid JSON"

# ---------------------------------------------------------------- 1. types
if ! cmp -s "$DIR/package.json" "$TOOLS/package.json" || [ ! -x "$TOOLS/node_modules/.bin/tsc" ] ||
    [ ! -f "$TOOLS/node_modules/@grafana/schema/package.json" ]; then
    log "installing the pinned npm packages into $TOOLS"
    mkdir -p "$TOOLS"
    cp "$DIR/package.json" "$TOOLS/package.json"
    rm -f "$TOOLS/package-lock.json"
    npm install --prefix "$TOOLS" --no-audit --no-fund --ignore-scripts --loglevel=error >"$TMP/npm.log" 2>&1 ||
        { cat "$TMP/npm.log"; die "npm install failed"; }
fi
TSC="$TOOLS/node_modules/.bin/tsc"
version_of() { node -p "require('$TOOLS/node_modules/$1/package.json').version"; }
log "typescript $(version_of typescript), @grafana/schema $(version_of @grafana/schema) (from $TOOLS)"
[ "$TOOLS" = /var/tmp/aurigraph-tools/grafana ] || die "tsconfig.json points at /var/tmp/aurigraph-tools/grafana; GRAFANA_TOOLS=$TOOLS is not supported"

log "tsc --noEmit -p deploy/grafana/tsconfig.json (layer 1: the JSON as imported, schema.ts, dashboard.ts)"
"$TSC" --noEmit -p "$DIR/tsconfig.json" || die "deploy/grafana does not type-check"

# Layer 2: the JSON as an object literal, checked with `satisfies` (see dashboard.ts).
mkdir -p "$TMP/ts"
{
    echo "import type { AurigraphDashboard } from '$DIR/schema';"
    echo "const dashboard = ("
    cat "$DASH"
    echo ") satisfies AurigraphDashboard;"
    echo "export default dashboard;"
} >"$TMP/ts/literal.ts"
printf '{"extends": "%s", "files": ["%s"]}\n' "$DIR/tsconfig.json" "$TMP/ts/literal.ts" >"$TMP/ts/tsconfig.json"
log "tsc --noEmit (layer 2: aurigraph.json as an object literal 'satisfies AurigraphDashboard')"
"$TSC" --noEmit -p "$TMP/ts/tsconfig.json" || die "aurigraph.json does not satisfy the schema (line numbers: +2 to the JSON's)"
log "types OK: $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); p=d["panels"]; print("schemaVersion %s, %d rows, %d panels, %d variables" % (d["schemaVersion"], sum(x["type"]=="row" for x in p), sum(x["type"]!="row" for x in p), len(d["templating"]["list"])))' "$DASH")"

# ---------------------------------------------------------------- 2. PromQL
# shellcheck source=deploy/lib.sh
. "$ROOT/deploy/lib.sh"
ensure_prometheus
log "using $(promtool --version 2>&1 | head -n1)"

# Writes $TMP/rules.yml (JSON is YAML), $TMP/exprs.tsv (where, expression) and $TMP/names.tsv
# (metric, where, label names the selector matches on).
python3 - "$DASH" "$TMP" <<'PY'
import json, re, sys

dash = json.load(open(sys.argv[1]))
tmp = sys.argv[2]

# Concrete values for the dashboard's variables and Grafana's built-in ones.
values = {
    "__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600",
    "__range_ms": "3600000", "__interval_ms": "15000", "__rate_interval_ms": "60000",
    "job": "aurigraph", "instance": "127.0.0.1:7601", "slot": "ordering",
    "node_job": "node", "node_instance": "127.0.0.1:9100", "data_mount": "/",
    "datasource": "prometheus",
}
declared = {v["name"] for v in dash["templating"]["list"]}
missing = sorted(declared - set(values))
if missing:
    sys.exit(f"variables with no test value in check-grafana.sh: {missing}")

def subst(expr, where):
    def one(m):
        name = m.group(1) or m.group(2)
        name = name.split(":")[0]  # ${var:format}
        if name not in values:
            sys.exit(f"{where}: unknown variable ${name} in: {expr}")
        if not name.startswith("__") and name not in declared:
            sys.exit(f"{where}: ${name} is not a variable of the dashboard")
        return values[name]
    return re.sub(r"\$\{([A-Za-z0-9_:]+)\}|\$([A-Za-z_][A-Za-z0-9_]*)", one, expr)

exprs = []  # (where, original, concrete)
panels = []
for p in dash["panels"]:
    panels.append(p)
    panels.extend(p.get("panels", []))
for p in panels:
    for t in p.get("targets", []):
        where = f'panel {p["id"]} "{p.get("title", "")}" {t["refId"]}'
        if not t.get("expr", "").strip():
            sys.exit(f"{where}: empty expr")
        exprs.append((where, t["expr"], subst(t["expr"], where)))
for v in dash["templating"]["list"]:
    if v["type"] != "query":
        continue
    q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
    m = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*", q)
    if not m:
        sys.exit(f"variable {v['name']}: only label_values(SELECTOR, label) is checked: {q}")
    where = f"variable ${v['name']}"
    exprs.append((where, m.group(1), subst(m.group(1), where)))

rules = {"groups": [{"name": "grafana-dashboard-aurigraph", "rules": [
    {"record": f"dashboard:expr_{i}", "expr": c} for i, (_, _, c) in enumerate(exprs)]}]}
json.dump(rules, open(f"{tmp}/rules.yml", "w"), indent=1)
with open(f"{tmp}/exprs.tsv", "w") as f:
    for i, (w, o, _) in enumerate(exprs):
        f.write(f"dashboard:expr_{i}\t{w}\t{o}\n")

# Metric names: identifiers that are neither functions, keywords, label names nor durations.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "bool", "offset", "inf", "nan", "atan2", "start", "end"}
names = {}
for w, _, c in exprs:
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', c)          # strings
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)  # label lists
    s = re.sub(r"\[[^\]]*\]", "", s)                                           # ranges
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?", s):
        tok, sel = m.group(1), m.group(2) or ""
        rest = s[m.end():].lstrip()
        if tok.lower() in KEYWORDS or (rest.startswith("(") and not sel):
            continue
        if re.fullmatch(r"[0-9].*", tok):
            continue
        # labels the selector matches on, from the concrete expression
        labels = set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", sel))
        names.setdefault(tok, {}).setdefault(w, set()).update(labels)
    # a selector with no metric name ({__name__=...}) is not used in this dashboard
    if re.search(r"(^|[^A-Za-z0-9_:}])\{", s):
        sys.exit(f"{w}: a selector without a metric name is not checked: {c}")
with open(f"{tmp}/names.tsv", "w") as f:
    for n in sorted(names):
        labels = sorted(set().union(*names[n].values()))
        f.write(f"{n}\t{len(names[n])}\t{','.join(labels)}\n")
PY
NEXPR=$(wc -l <"$TMP/exprs.tsv")
log "promtool check rules: $NEXPR expressions ($(grep -c $'\tpanel ' "$TMP/exprs.tsv") panel queries, $(grep -c $'\tvariable ' "$TMP/exprs.tsv") variable queries), variables substituted"
if ! promtool check rules "$TMP/rules.yml" >"$TMP/promtool.out" 2>&1; then
    cat "$TMP/promtool.out"
    # map the generated rule names back to the panels
    grep -o 'dashboard:expr_[0-9]*' "$TMP/promtool.out" | sort -u | while read -r r; do
        grep "^$r"$'\t' "$TMP/exprs.tsv"
    done
    die "a dashboard expression is not valid PromQL"
fi
sed 's/^/    /' "$TMP/promtool.out"
log "PromQL OK: every expression parses"

# ---------------------------------------------------------------- 3. metric names vs a real scrape
if [ ! -x "$BIN" ]; then
    log "building $BIN (cargo build --locked -p aurigraph-cli --bin aurigraph)"
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --locked -p aurigraph-cli --bin aurigraph)
fi
free_base() { # three consecutive free ports
    local p ok
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000)) ok=1
        for q in $p $((p + 1)) $((p + 2)); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$q") 2>/dev/null; then ok=""; break; fi
        done
        [ -n "$ok" ] && { echo "$p"; return 0; }
    done
    return 1
}
BASE=$(free_base) || die "no free ports"
NODE="http://127.0.0.1:$BASE"
log "starting a 3-validator cluster on 127.0.0.1:$BASE-$((BASE + 2)) ($BIN)"
"$BIN" cluster up --nodes 3 --dir "$CLUSTER" --base-port "$BASE" >"$TMP/cluster.log" 2>&1 ||
    { cat "$TMP/cluster.log"; die "cluster up failed"; }
# Restart it with a short gapped-transaction TTL, so that a transaction behind a nonce gap is
# dropped (aurigraph_node_dropped_transactions_total appears only once one was).
"$BIN" cluster down --dir "$CLUSTER" >>"$TMP/cluster.log" 2>&1 || die "cluster down failed"
sed -i 's/^mempool_gapped_ttl_ms = .*/mempool_gapped_ttl_ms = 200/' "$CLUSTER"/node-*/aurigraph.toml
grep -q '^mempool_gapped_ttl_ms = 200$' "$CLUSTER/node-1/aurigraph.toml" || die "could not set block.mempool_gapped_ttl_ms"
"$BIN" cluster up --dir "$CLUSTER" >>"$TMP/cluster.log" 2>&1 || { cat "$TMP/cluster.log"; die "cluster up (restart) failed"; }
LEADER=$(sed -n 's/.*\(http:[^ ]*\) .*(leader).*/\1/p' "$TMP/cluster.log" | tail -n1)
LEADER=${LEADER:-$NODE}
log "cluster up, leader $LEADER; driving load (400 transfers), a refused and a dropped transaction"
"$BIN" load --node "$LEADER" --rate 400 --duration 1s --senders 8 --quiet >"$TMP/load.log" 2>&1 ||
    die "aurigraph load failed"
"$BIN" tx transfer --node "$LEADER" --from-dev 3 --to dev:4 --amount 1 --chain-id 999 >>"$TMP/load.log" 2>&1 || true
"$BIN" tx transfer --node "$LEADER" --from-dev 5 --to dev:4 --amount 1 --nonce 7 >>"$TMP/load.log" 2>&1 || true
for i in 0 1 2; do
    curl -fsS "http://127.0.0.1:$((BASE + i))/metrics" >"$TMP/metrics-$i.txt" || die "GET /metrics of node $((i + 1)) failed"
done
cat "$TMP"/metrics-*.txt >"$TMP/metrics.txt"
log "scraped /metrics of the 3 nodes: $(grep -vc '^#' "$TMP/metrics.txt") samples, $(grep -c '^# TYPE' "$TMP/metrics.txt") families"

# Families created on first use that this check cannot provoke on a healthy cluster: each must
# still be registered in the node's source (name, prefix and kind).
declare -A LAZY=(
    [aurigraph_node_block_failures_total]='node/src/metrics.rs:"block_failures" (counter family by code, aurigraph_node prefix): a failed block try'
)
# Labels Prometheus adds to every scraped series.
TARGET_LABELS="job instance"
internal=() external=() missing=() lazy=()
while IFS=$'\t' read -r name uses labels; do
    case "$name" in
        aurigraph_* | process_*) ;;
        *) external+=("$name"); continue ;;
    esac
    if ! grep -Eq "^${name}[ {]" "$TMP/metrics.txt"; then
        if [ -n "${LAZY[$name]:-}" ]; then
            fam=$(sed 's/^aurigraph_node_//; s/_total$//' <<<"$name")
            grep -q "\"$fam\"" "$ROOT/node/src/metrics.rs" || die "$name: not in the scrape and not registered in node/src/metrics.rs"
            lazy+=("$name")
            continue
        fi
        missing+=("$name (used by $uses expression(s))")
        continue
    fi
    for l in ${labels//,/ }; do
        case " $TARGET_LABELS __name__ " in *" $l "*) continue ;; esac
        grep -Eq "^$name\{([^}]*,)?$l=" "$TMP/metrics.txt" ||
            missing+=("$name: label '$l' (not on any of its series)")
    done
    internal+=("$name")
done <"$TMP/names.tsv"
if [ "${#missing[@]}" -gt 0 ]; then
    for m in "${missing[@]}"; do log "MISSING from the node's /metrics: $m"; done
    die "${#missing[@]} metric name(s) or label(s) the dashboard uses are not exported"
fi
log "metric names in the node's scrape (${#internal[@]}):"
printf '    %s\n' "${internal[@]}"
for m in "${lazy[@]}"; do log "created on first use, not provoked here (registered: ${LAZY[$m]}): $m"; done
log "external metric names, not checked against the node (${#external[@]}): ${external[*]}"
log "OK: types, $NEXPR PromQL expressions, ${#internal[@]} node metric names; total $((SECONDS - START))s"
