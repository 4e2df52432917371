"""The one classification of API failures that every role decides from."""

from __future__ import annotations

import pytest
from flux_api.errors import NOT_RECORDED_YET, Failure, classify, is_refusal, is_transient

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("status, kind", [
    (None, Failure.UNREACHABLE), (429, Failure.THROTTLED), (500, Failure.SERVER), (503, Failure.SERVER),
    (504, Failure.SERVER), (409, Failure.CONFLICT), (404, Failure.NOT_FOUND), (410, Failure.GONE),
    (401, Failure.UNAUTHORIZED), (403, Failure.DENIED), (400, Failure.INVALID), (422, Failure.INVALID),
    (413, Failure.TOO_LARGE), (418, Failure.OTHER),
])
def test_status_to_kind(status, kind) -> None:
    assert classify(status) is kind


def test_etcd_size_limit_is_too_large_not_a_server_hiccup() -> None:
    assert classify(500, "etcdserver: request is too large") is Failure.TOO_LARGE


def test_only_what_a_retry_can_fix_is_transient() -> None:
    assert {k for k in Failure if is_transient(k)} == {Failure.UNREACHABLE, Failure.THROTTLED, Failure.SERVER,
                                                       Failure.QUOTA, Failure.NOT_YET}


def test_a_full_quota_heals_but_other_refusals_do_not() -> None:
    """A ResourceQuota answers 403 too, but there is room again once other objects go."""
    quota = classify(403, 'pods "x-runner" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=1, '
                          'limited: pods=1')
    assert quota is Failure.QUOTA and is_transient(quota) and not is_refusal(quota)
    assert is_refusal(classify(403, 'pods "x" is forbidden: violates PodSecurity "restricted:latest"'))
    assert is_refusal(classify(422, 'Pod "x" is invalid: spec.tolerations[0].operator: Unsupported value'))
    assert {k for k in Failure if is_refusal(k)} == {Failure.DENIED, Failure.TERMINATING, Failure.INVALID,
                                                     Failure.TOO_LARGE}


def test_a_namespace_being_deleted_is_told_apart_from_a_policy_saying_no() -> None:
    """The NamespaceLifecycle plugin's 403: nothing new may be made there, and it never heals."""
    terminating = classify(403, 'events "a.cancelled" is forbidden: unable to create new content in namespace t-1 '
                                'because it is being terminated')
    assert terminating is Failure.TERMINATING and is_refusal(terminating) and not is_transient(terminating)
    assert classify(403, 'pods "x" is forbidden: User "u" cannot create resource "pods"') is Failure.FORBIDDEN


# Each 403 as the API server words it: the authorizer, admission (a policy, a webhook, Pod Security, a LimitRange)
# and a policy that lacks something for a moment.
RBAC_403 = ('executions.workflows.flux.dev "nightly-1" is forbidden: User "system:serviceaccount:flux:flux-operator" '
            'cannot create resource "executions" in API group "workflows.flux.dev" in the namespace "t-1"')
POLICY_403 = ("executions.workflows.flux.dev \"x\" is forbidden: ValidatingAdmissionPolicy 'flux-tenant-images' with "
              "binding 'flux-tenant-images' denied request: image registry.example/x is not allowed")
WEBHOOK_403 = 'admission webhook "validate.kyverno.svc" denied the request: pods must set runAsNonRoot'
NO_PARAMS_403 = ("ValidatingAdmissionPolicy 'flux-tenant-limits' with binding 'flux-tenant-limits' denied request: "
                 "failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction")
NOT_RECORDED_403 = ("executions.workflows.flux.dev \"x\" is forbidden: ValidatingAdmissionPolicy "
                    "'flux-runner-writes-only-its-own-status' with binding 'x' denied request: " + NOT_RECORDED_YET)


@pytest.mark.parametrize("message, kind", [
    (RBAC_403, Failure.FORBIDDEN),
    ('roles.rbac.authorization.k8s.io "flux-runner-x" is forbidden: user "system:serviceaccount:flux:flux-operator" '
     '(groups=["system:serviceaccounts"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:'
     '["workflows.flux.dev"], Resources:["executions/status"], Verbs:["patch"]}', Failure.FORBIDDEN),
    ('pods "x-runner" is forbidden: status unknown for quota: pods, resources: pods', Failure.NOT_YET),
    ("ValidatingAdmissionPolicy 'flux-tenant-limits' with binding 'x' denied request: failed to configure binding: "
     "failed to find resource referenced by paramKind: 'workflows.flux.dev/v1alpha1, Kind=TenancyPolicy'",
     Failure.NOT_YET),
    ('User "alice" cannot get path "/metrics"', Failure.FORBIDDEN),
    (POLICY_403, Failure.DENIED),
    (WEBHOOK_403, Failure.DENIED),
    ('pods "x" is forbidden: violates PodSecurity "restricted:latest": hostNetwork=true', Failure.DENIED),
    ('pods "x" is forbidden: maximum cpu usage per Container is 2, but limit is 4', Failure.DENIED),
    (NO_PARAMS_403, Failure.NOT_YET),
    (NOT_RECORDED_403, Failure.NOT_YET),
    ("forbidden", Failure.DENIED),
    ("", Failure.DENIED),
])
def test_each_403_is_told_by_who_said_it(message, kind) -> None:
    """Admission's no is for good; the authorizer's depends on a role that an upgrade may be changing; a policy
    missing its params or the runner pod's record says yes moments later. One the words do not place is taken
    for admission's, as every 403 was before."""
    assert classify(403, message) is kind


def test_an_rbac_403_is_neither_retried_blindly_nor_refused_for_good() -> None:
    """Whether to wait for a role or to give up is the caller's: the operator waits (its own role, mid-upgrade),
    the runner gives up (its Role grants only what its operator made it for)."""
    assert not is_transient(Failure.FORBIDDEN) and not is_refusal(Failure.FORBIDDEN)
    assert is_transient(Failure.NOT_YET) and not is_refusal(Failure.NOT_YET)
