{{/*
The chart name, or nameOverride. Kubernetes names are at most 63 characters.
*/}}
{{- define "db-backup-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources: fullnameOverride, else the release name when it
already contains the chart name (`helm install db-backup-operator ...` gives plain
`db-backup-operator`), else `<release>-<chart>`.
*/}}
{{- define "db-backup-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
`<chart>-<version>` for the helm.sh/chart label (`+` is not allowed in label values).
*/}}
{{- define "db-backup-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource of the release.
*/}}
{{- define "db-backup-operator.labels" -}}
helm.sh/chart: {{ include "db-backup-operator.chart" . }}
{{ include "db-backup-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ include "db-backup-operator.imageTag" . | trunc 63 | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: db-backup-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the operator's Pods: the Deployment's selector (immutable, so never
the version), the metrics Service and the PodDisruptionBudget.
*/}}
{{- define "db-backup-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "db-backup-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The operator's ServiceAccount name.
*/}}
{{- define "db-backup-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "db-backup-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: the name of an existing ServiceAccount is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image tag: image.tag, else the chart's appVersion.
*/}}
{{- define "db-backup-operator.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: `repo@sha256:...` when a digest is set,
else `repo:tag` (tag defaulting to the chart's appVersion).
Call with (dict "image" .Values.image "context" $).
*/}}
{{- define "db-backup-operator.imageReference" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .context.Chart.AppVersion .image.tag) }}
{{- end }}
{{- end }}

{{/*
A listen address for the operator: `$(POD_IP):<port>` (expanded by the kubelet from the
POD_IP env var) with listenOnPodIP, else `:<port>` (all interfaces).
Call with (dict "port" <port> "context" $).
*/}}
{{- define "db-backup-operator.bindAddress" -}}
{{- if .context.Values.listenOnPodIP }}
{{- printf "$(POD_IP):%d" (int .port) }}
{{- else }}
{{- printf ":%d" (int .port) }}
{{- end }}
{{- end }}

{{/*
Combinations values.schema.json cannot express, failed with a message naming the values.
*/}}
{{- define "db-backup-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicaCount: %d replicas need leaderElection.enabled=true, or every replica would run the backups" (int .Values.replicaCount)) }}
{{- end }}
{{- if eq (int .Values.metrics.port) (int .Values.health.port) }}
{{- fail (printf "metrics.port and health.port: both are %d; give them different ports" (int .Values.metrics.port)) }}
{{- end }}
{{- if and .Values.monitoring.serviceMonitor.enabled (not .Values.metrics.service.enabled) }}
{{- fail "monitoring.serviceMonitor.enabled: the ServiceMonitor selects the metrics Service; set metrics.service.enabled=true" }}
{{- end }}
{{- /* The operator refuses these at start, so the Pod would only crash-loop: refused at install instead. */}}
{{- if lt (int .Values.operator.kubeApiBurst) (int .Values.operator.kubeApiQps) }}
{{- fail (printf "operator.kubeApiBurst: %d is less than operator.kubeApiQps (%d); the burst must be at least the rate" (int .Values.operator.kubeApiBurst) (int .Values.operator.kubeApiQps)) }}
{{- end }}
{{- if .Values.leaderElection.enabled }}
{{- $lease := include "db-backup-operator.seconds" .Values.leaderElection.leaseDuration | float64 }}
{{- $renew := include "db-backup-operator.seconds" .Values.leaderElection.renewDeadline | float64 }}
{{- $retry := include "db-backup-operator.seconds" .Values.leaderElection.retryPeriod | float64 }}
{{- if lt $lease 1.0 }}
{{- fail (printf "leaderElection.leaseDuration: %s is less than 1 second (a Lease counts whole seconds)" .Values.leaderElection.leaseDuration) }}
{{- end }}
{{- if le $lease $renew }}
{{- fail (printf "leaderElection.leaseDuration: %s is not longer than leaderElection.renewDeadline (%s); a standby could take the Lease while the leader still counts it as held" .Values.leaderElection.leaseDuration .Values.leaderElection.renewDeadline) }}
{{- end }}
{{- if le $retry 0.0 }}
{{- fail (printf "leaderElection.retryPeriod: %s is not a positive duration" .Values.leaderElection.retryPeriod) }}
{{- end }}
{{- if le $renew (mulf $retry 1.2) }}
{{- fail (printf "leaderElection.renewDeadline: %s is not more than 1.2 x leaderElection.retryPeriod (%s); the leader would give up before its retries could renew" .Values.leaderElection.renewDeadline .Values.leaderElection.retryPeriod) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A duration as values.schema.json allows it ("15 seconds", "1.5 minutes", "500 millis"), in seconds.
*/}}
{{- define "db-backup-operator.seconds" -}}
{{- $parts := splitList " " . -}}
{{- $units := dict "nano" 0.000000001 "micro" 0.000001 "milli" 0.001 "second" 1.0 "minute" 60.0 "hour" 3600.0 "day" 86400.0 "week" 604800.0 -}}
{{- mulf (index $parts 0 | float64) (get $units (index $parts 1 | trimSuffix "s")) -}}
{{- end }}

{{/*
The namespaces where the operator reads Secret metadata (their opt-in annotation
backup.csyeteam03.xyz/usable-by): the target of every cross-namespace pair, and with
operator.requireSecretOptIn every namespace it serves. Sorted and deduplicated, as a JSON
list: `include "db-backup-operator.secretNamespaces" . | fromJsonArray`.
*/}}
{{- define "db-backup-operator.secretNamespaces" -}}
{{- $namespaces := list }}
{{- range .Values.operator.allowedNamespaces }}
{{- $namespaces = append $namespaces .to }}
{{- end }}
{{- if .Values.operator.requireSecretOptIn }}
{{- $namespaces = concat $namespaces .Values.operator.watchNamespaces }}
{{- end }}
{{- $namespaces | uniq | sortAlpha | toJson }}
{{- end }}
