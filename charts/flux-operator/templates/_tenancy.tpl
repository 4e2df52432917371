{{/*
Multi-tenancy (README "Multi-tenancy"): the operator's user name, exempt from the admission policies in
templates/admission-policies.yaml, and the platform's limits, rendered once for the TenancyPolicy and once
for the operator's --tenancy-policy flag.
*/}}
{{- define "flux-operator.operatorUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "flux-operator.serviceAccountName" . }}
{{- end }}

{{/* The `tenancy` values that are set (null means unset: the field then needs `create pods`). */}}
{{- define "flux-operator.tenancyLimits" -}}
{{- $limits := dict }}
{{- range $key, $value := .Values.tenancy }}
{{- if not (kindIs "invalid" $value) }}
{{- $_ := set $limits $key $value }}
{{- end }}
{{- end }}
{{- toJson $limits }}
{{- end }}
