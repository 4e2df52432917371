{{/* Generated from api/flux_api/policy.py by `make crds`. Do not edit by hand. */}}
{{- define "flux-operator.rules.admissionCheck" -}}
- apiGroups:
  - admissionregistration.k8s.io
  resources:
  - validatingadmissionpolicies
  resourceNames:
  - flux-runner-writes-only-its-own-status
  - flux-runner-writes-progress-only-from-its-pod
  - flux-operator-owned-metadata
  - flux-operator-owned-runner-objects
  - flux-runner-accounts-only-for-runners
  - flux-tenant-secrets
  - flux-tenant-configmaps
  - flux-tenant-pod-settings
  - flux-ttl-needs-delete
  - flux-deletes-need-delete
  - flux-signal-sender-is-the-requester
  - flux-cancel-cannot-be-undone
  - flux-runner-pod-access-needs-its-rights
  - flux-runner-pod-images-are-fixed
  - flux-operator-makes-only-runners
  verbs:
  - get
- apiGroups:
  - admissionregistration.k8s.io
  resources:
  - validatingadmissionpolicybindings
  resourceNames:
  - flux-runner-writes-only-its-own-status
  - flux-runner-writes-progress-only-from-its-pod
  - flux-operator-owned-metadata
  - flux-operator-owned-runner-objects
  - flux-runner-accounts-only-for-runners
  - flux-tenant-secrets
  - flux-tenant-configmaps
  - flux-tenant-pod-settings
  - flux-ttl-needs-delete
  - flux-deletes-need-delete
  - flux-signal-sender-is-the-requester
  - flux-cancel-cannot-be-undone
  - flux-runner-pod-access-needs-its-rights
  - flux-runner-pod-images-are-fixed
  - flux-operator-makes-only-runners
  verbs:
  - get
- apiGroups:
  - workflows.flux.dev
  resources:
  - tenancypolicies
  resourceNames:
  - flux-tenancy
  verbs:
  - get
{{- end }}
