"""The one classification of API failures that every role decides from."""

from __future__ import annotations

import pytest
from flux_api.errors import Failure, classify, is_refusal, is_transient

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("status, kind", [
    (None, Failure.UNREACHABLE), (429, Failure.THROTTLED), (500, Failure.SERVER), (503, Failure.SERVER),
    (504, Failure.SERVER), (409, Failure.CONFLICT), (404, Failure.NOT_FOUND), (410, Failure.GONE),
    (401, Failure.UNAUTHORIZED), (403, Failure.FORBIDDEN), (400, Failure.INVALID), (422, Failure.INVALID),
    (413, Failure.TOO_LARGE), (418, Failure.OTHER),
])
def test_status_to_kind(status, kind) -> None:
    assert classify(status) is kind


def test_etcd_size_limit_is_too_large_not_a_server_hiccup() -> None:
    assert classify(500, "etcdserver: request is too large") is Failure.TOO_LARGE


def test_only_what_a_retry_can_fix_is_transient() -> None:
    assert {k for k in Failure if is_transient(k)} == {Failure.UNREACHABLE, Failure.THROTTLED, Failure.SERVER,
                                                       Failure.QUOTA}


def test_a_full_quota_heals_but_other_refusals_do_not() -> None:
    """A ResourceQuota answers 403 too, but there is room again once other objects go."""
    quota = classify(403, 'pods "x-runner" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=1, '
                          'limited: pods=1')
    assert quota is Failure.QUOTA and is_transient(quota) and not is_refusal(quota)
    assert is_refusal(classify(403, 'pods "x" is forbidden: violates PodSecurity "restricted:latest"'))
    assert is_refusal(classify(422, 'Pod "x" is invalid: spec.tolerations[0].operator: Unsupported value'))
    assert {k for k in Failure if is_refusal(k)} == {Failure.FORBIDDEN, Failure.TERMINATING, Failure.INVALID,
                                                     Failure.TOO_LARGE}


def test_a_namespace_being_deleted_is_told_apart_from_a_policy_saying_no() -> None:
    """The NamespaceLifecycle plugin's 403: nothing new may be made there, and it never heals."""
    terminating = classify(403, 'events "a.cancelled" is forbidden: unable to create new content in namespace t-1 '
                                'because it is being terminated')
    assert terminating is Failure.TERMINATING and is_refusal(terminating) and not is_transient(terminating)
    assert classify(403, 'pods "x" is forbidden: User "u" cannot create resource "pods"') is Failure.FORBIDDEN
