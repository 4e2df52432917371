{{/* Chart name, overridable. */}}
{{- define "flux-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name; names of every object. 63 chars is the DNS label limit.
A release already named after the chart is not repeated ("flux-operator", not "flux-operator-flux-operator").
*/}}
{{- define "flux-operator.fullname" -}}
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

{{- define "flux-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flux-operator.labels" -}}
helm.sh/chart: {{ include "flux-operator.chart" . }}
{{ include "flux-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Immutable in a Deployment's selector: never add keys here. */}}
{{- define "flux-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flux-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "flux-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "flux-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "flux-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "flux-operator.runnerImage" -}}
{{- default (printf "ghcr.io/flux-dev/flux-runner:%s" .Chart.AppVersion) .Values.runner.image }}
{{- end }}

{{/*
RBAC rules, shared by the ClusterRoles (cluster mode) and the per-namespace Roles (watchNamespaces).
Every verb is listed, no wildcards, each for a reason in the operator's code: these are the tables of
operator/flux_operator/startup.py, and tests/cluster/test_chart.py keeps the two identical.
*/}}

{{/* Cluster-scoped objects: always granted cluster-wide. */}}
{{- define "flux-operator.rules.cluster" -}}
# kopf's CRD observer: it notices the Execution CRD being installed or changed.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
# The opt-in watch (which namespaces carry workflows.flux.dev/enabled=true) and kopf's namespace observer.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- if and (gt (int .Values.metrics.port) 0) .Values.metrics.secure }}
# /metrics asks the API server who a scraper is and whether it may get /metrics (kube-rbac-proxy's way).
- apiGroups: ["authentication.k8s.io"]
  resources: ["tokenreviews"]
  verbs: ["create"]
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
{{- end }}
{{- end }}

{{/* What the operator does in a namespace it serves. */}}
{{- define "flux-operator.rules.application" -}}
# get: the one read after a status Conflict; list, watch: kopf; create: children and Schedule runs;
# patch: a cancel on a child or a replaced run; delete: ttlSecondsAfterFinished and history limits.
- apiGroups: ["workflows.flux.dev"]
  resources: ["executions"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# The operator owns every status key except the runner's; holding patch here also lets it grant that to
# runners (RBAC escalation prevention).
- apiGroups: ["workflows.flux.dev"]
  resources: ["executions/status"]
  verbs: ["patch"]
# get: after a status Conflict; list, watch: kopf; patch: suspend on ctx.unschedule.
- apiGroups: ["workflows.flux.dev"]
  resources: ["schedules"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["workflows.flux.dev"]
  resources: ["schedules/status"]
  verbs: ["patch"]
# list, watch: kopf; the usage each ConcurrencyLimit shows (active, queued) is the operator's to write.
- apiGroups: ["workflows.flux.dev"]
  resources: ["concurrencylimits"]
  verbs: ["list", "watch"]
- apiGroups: ["workflows.flux.dev"]
  resources: ["concurrencylimits/status"]
  verbs: ["patch"]
# create: one ExecutionProgress per execution, for its runner's progress (never watched); get and patch
# status: held so that it may grant them to that runner (RBAC escalation prevention).
- apiGroups: ["workflows.flux.dev"]
  resources: ["executionprogresses"]
  verbs: ["get", "create"]
- apiGroups: ["workflows.flux.dev"]
  resources: ["executionprogresses/status"]
  verbs: ["patch"]
# Owner references with blockOwnerDeletion (pods, runner RBAC, children, Schedule runs) need these where
# the OwnerReferencesPermissionEnforcement admission plugin runs (OpenShift, hardened clusters).
- apiGroups: ["workflows.flux.dev"]
  resources: ["executions/finalizers", "schedules/finalizers"]
  verbs: ["update"]
# get: whose is the object of that name, after a create met one (ownership goes by UID, never by name).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete"]
# One ServiceAccount, Role and RoleBinding per execution, for its runner; the garbage collector deletes them.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "create"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "create"]
{{- if .Values.runnerNetworkPolicy.enabled }}
# One NetworkPolicy per runner pod (--runner-egress), beside its RBAC.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create"]
{{- end }}
# The operator's Events (and its notices where it does not act) and kopf's.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* The operator's user name, as the API server sees its ServiceAccount. */}}
{{- define "flux-operator.operatorUser" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "flux-operator.serviceAccountName" .) }}
{{- end }}

{{/* NetworkPolicy egress to the API server (TCP, networkPolicy.apiServer), as JSON. */}}
{{- define "flux-operator.egress.apiServer" -}}
{{- $to := list }}
{{- range .Values.networkPolicy.apiServer.cidrs }}
{{- $to = append $to (dict "ipBlock" (dict "cidr" .)) }}
{{- end }}
{{- $ports := list }}
{{- range .Values.networkPolicy.apiServer.ports }}
{{- $ports = append $ports (dict "protocol" "TCP" "port" (int .)) }}
{{- end }}
{{- toJson (dict "to" $to "ports" $ports) }}
{{- end }}

{{/* NetworkPolicy egress to the cluster DNS (UDP and TCP, networkPolicy.dns), as JSON. */}}
{{- define "flux-operator.egress.dns" -}}
{{- $dns := .Values.networkPolicy.dns }}
{{- $ports := list }}
{{- range $dns.ports }}
{{- $ports = append $ports (dict "protocol" "UDP" "port" (int .)) }}
{{- $ports = append $ports (dict "protocol" "TCP" "port" (int .)) }}
{{- end }}
{{- toJson (dict "to" (list (dict "namespaceSelector" $dns.namespaceSelector "podSelector" $dns.podSelector)) "ports" $ports) }}
{{- end }}

{{/* What a runner pod may connect to: the API server and DNS, and with tracing the collector (--runner-egress). */}}
{{- define "flux-operator.runnerEgress" -}}
{{- $rules := list (fromJson (include "flux-operator.egress.apiServer" .)) (fromJson (include "flux-operator.egress.dns" .)) }}
{{- if .Values.tracing.enabled }}
{{- $rules = concat $rules .Values.tracing.egress }}
{{- end }}
{{- toJson $rules }}
{{- end }}

{{/* The subject every binding grants to. */}}
{{- define "flux-operator.subjects" -}}
- kind: ServiceAccount
  name: {{ include "flux-operator.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/*
The Lease the replicas elect their leader with: the operator's default name, so an upgrade from a chart that did
not pass it keeps one Lease (two names would elect two leaders while old and new pods overlap).
*/}}
{{- define "flux-operator.leaseName" -}}
flux-operator
{{- end }}
