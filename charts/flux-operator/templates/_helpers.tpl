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
RBAC rules, shared by the ClusterRoles (all namespaces) and the per-namespace Roles.
Every verb is listed: no wildcards.
*/}}

{{/* kopf, cluster-scoped objects: always granted cluster-wide. */}}
{{- define "flux-operator.rules.frameworkCluster" -}}
# kopf scans CRDs to resolve the Execution resource.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
# kopf follows namespaces to start and stop its per-namespace watches.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
# Peering objects are optional (the operator runs standalone); kopf uses them if they exist.
- apiGroups: ["kopf.dev"]
  resources: ["clusterkopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}

{{/* kopf, namespaced objects. */}}
{{- define "flux-operator.rules.frameworkNamespaced" -}}
# kopf posts handler progress and errors as events on the Executions.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}

{{/* What the operator itself does. */}}
{{- define "flux-operator.rules.application" -}}
# create: child Executions requested by runners and runs of Schedules; delete: ttlSecondsAfterFinished
# and Schedule history limits.
- apiGroups: ["workflows.flux.dev"]
  resources: ["executions"]
  verbs: ["get", "list", "watch", "patch", "update", "create", "delete"]
# patch: suspend on ctx.unschedule; the status is the operator's alone.
- apiGroups: ["workflows.flux.dev"]
  resources: ["schedules"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["workflows.flux.dev"]
  resources: ["schedules/status"]
  verbs: ["get", "patch"]
# Executions carry a blockOwnerDeletion ownerReference to their Schedule.
- apiGroups: ["workflows.flux.dev"]
  resources: ["schedules/finalizers"]
  verbs: ["update"]
# The operator owns every status key except checkpoint and spawnRequests; holding get and
# patch here also lets it grant them to runners (RBAC escalation prevention).
- apiGroups: ["workflows.flux.dev"]
  resources: ["executions/status"]
  verbs: ["get", "patch", "update"]
# Owner references with blockOwnerDeletion (pods, runner RBAC, children) need this where the
# OwnerReferencesPermissionEnforcement admission plugin runs (OpenShift, hardened clusters).
- apiGroups: ["workflows.flux.dev"]
  resources: ["executions/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "create", "delete"]
# One ServiceAccount, Role and RoleBinding per execution, for its runner.
- apiGroups: [""]
  resources: ["serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "delete", "patch"]
{{- end }}

{{/* The subject every binding grants to. */}}
{{- define "flux-operator.subjects" -}}
- kind: ServiceAccount
  name: {{ include "flux-operator.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}
