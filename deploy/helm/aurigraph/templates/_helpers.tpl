{{/* The chart's name. */}}
{{- define "aurigraph.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's base name; role suffixes (-validator-headless, the longest) are added to it. */}}
{{- define "aurigraph.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "aurigraph.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "aurigraph.labels" -}}
helm.sh/chart: {{ include "aurigraph.chart" . }}
app.kubernetes.io/name: {{ include "aurigraph.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aurigraph
{{- end -}}

{{/* Selector labels of one role: (dict "root" $ "role" "validator"). */}}
{{- define "aurigraph.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aurigraph.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{/* The StatefulSet or Deployment (and client Service) of a role: (dict "root" $ "role" "validator"). */}}
{{- define "aurigraph.roleName" -}}
{{- printf "%s-%s" (include "aurigraph.fullname" .root) .role -}}
{{- end -}}

{{/* The headless Service of a role: the validators' stable DNS names; every pod's scrape target. */}}
{{- define "aurigraph.headlessName" -}}
{{- printf "%s-%s-headless" (include "aurigraph.fullname" .root) .role -}}
{{- end -}}

{{/* host:port of a pod: (dict "root" $ "role" "validator" "ordinal" 0). */}}
{{- define "aurigraph.podAddr" -}}
{{- $root := .root -}}
{{- printf "%s-%d.%s.%s.svc.%s:%d" (include "aurigraph.roleName" .) (int .ordinal) (include "aurigraph.headlessName" .) $root.Release.Namespace $root.Values.clusterDomain (int $root.Values.port) -}}
{{- end -}}

{{/* The Secret holding the admin token and the cluster secret. */}}
{{- define "aurigraph.secretName" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecret -}}
{{- else -}}
{{- printf "%s-auth" (include "aurigraph.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "aurigraph.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "aurigraph.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "aurigraph.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Validators needed for a quorum: floor(n/2)+1. */}}
{{- define "aurigraph.quorum" -}}
{{- add (div (int .Values.validators.replicas) 2) 1 -}}
{{- end -}}

{{/*
One node's TOML: (dict "root" $ "role" "validator" "nodeId" 1 "bootstrap" true), or a
learner's template: (dict "root" $ "role" "business" "nodeId" "@NODE_ID@" "bootstrap" false),
whose @NODE_ID@ and @NODE_ADDR@ the pod's `identity` init container replaces (sed).
data_dir and listen are also set by AURIGRAPH_DATA_DIR and AURIGRAPH_LISTEN in the pod (the
image sets defaults for both); the secrets come only from the environment.
*/}}
{{- define "aurigraph.toml" -}}
{{- $v := .root.Values -}}
{{- $learnerTemplate := eq (toString .nodeId) "@NODE_ID@" -}}
# Rendered by the aurigraph Helm chart for node {{ .nodeId }} ({{ .role }}).
{{- if $learnerTemplate }}
# Reached by the other nodes at @NODE_ADDR@ (the pod IP; what the join step registers).
{{- end }}
data_dir = "/var/lib/aurigraph/data"
listen = "0.0.0.0:{{ int $v.port }}"

[genesis]
chain_id = {{ int64 $v.genesis.chainId }}
dev_accounts = {{ int64 $v.genesis.devAccounts }}
dev_balance = {{ int64 $v.genesis.devBalance }}
allocations = [
{{- range $i, $a := $v.genesis.allocations }}
{{- if $i }},{{ end }} { address = {{ $a.address | quote }}, balance = {{ int64 $a.balance }} }
{{- end }} ]

[storage]
sync = {{ $v.node.sync }}

[block]
interval_ms = {{ int64 $v.node.blockIntervalMs }}

[policies]
models_dir = "/opt/aurigraph/models"
plugins_dir = "/opt/aurigraph/plugins"

[cluster]
node_id = {{ if $learnerTemplate }}{{ .nodeId }}{{ else }}{{ int64 .nodeId }}{{ end }}
role = {{ .role | quote }}
bootstrap = {{ .bootstrap }}
members = [
{{- range $i, $e := until (int $v.validators.replicas) }}
{{- if $i }},{{ end }} { id = {{ add $i 1 }}, addr = {{ include "aurigraph.podAddr" (dict "root" $.root "role" "validator" "ordinal" $i) | quote }} }
{{- end }} ]
heartbeat_ms = {{ int64 $v.cluster.heartbeatMs }}
election_min_ms = {{ int64 $v.cluster.electionMinMs }}
election_max_ms = {{ int64 $v.cluster.electionMaxMs }}
snapshot_logs = {{ int64 $v.cluster.snapshotLogs }}
snapshot_keep_logs = {{ int64 $v.cluster.snapshotKeepLogs }}
slim_keep_blocks = {{ int64 $v.slim.keepBlocks }}
max_blocks_in_flight = {{ int64 $v.cluster.maxBlocksInFlight }}

[scaling]
current_replicas = {{ int64 $v.business.replicas }}
min_replicas = {{ int64 $v.scaling.hpa.minReplicas }}
max_replicas = {{ int64 $v.scaling.hpa.maxReplicas }}
capacity_tps_per_core = {{ printf "%f" (float64 $v.scaling.capacityTpsPerCore) }}
cores_per_replica = {{ printf "%f" (float64 $v.scaling.coresPerReplica) }}
burst_headroom = {{ printf "%f" (float64 $v.scaling.burstHeadroom) }}
rolling_update_headroom = {{ printf "%f" (float64 $v.scaling.rollingUpdateHeadroom) }}
scale_up_step = {{ int64 $v.scaling.scaleUpStep }}
scale_up_cooldown_s = {{ int64 $v.scaling.scaleUpCooldownSeconds }}
scale_down_step = {{ int64 $v.scaling.scaleDownStep }}
scale_down_cooldown_s = {{ int64 $v.scaling.scaleDownCooldownSeconds }}
{{- with $v.node.extraToml }}

{{ . }}
{{- end }}
{{- end -}}
