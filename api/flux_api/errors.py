"""One classification of API server failures, shared by the operator, the runner and the plugin.

Every role turns an HTTP status (or no answer at all) into one of these kinds, and decides from
the kind alone whether to retry, to re-read, to give up on one object, or to stop.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Failure(StrEnum):
    UNREACHABLE = "Unreachable"  # no answer: connection refused, reset, timed out
    THROTTLED = "Throttled"  # 429: the server asks us to slow down
    SERVER = "ServerError"  # 5xx: the server (or etcd behind it) failed this time
    CONFLICT = "Conflict"  # 409: our view was stale, or the object already exists
    NOT_FOUND = "NotFound"  # 404: the object (or the whole API, if the CRD is missing) is not there
    GONE = "Gone"  # 410: a watch's resourceVersion is too old
    UNAUTHORIZED = "Unauthorized"  # 401: the credentials are rejected
    FORBIDDEN = "Forbidden"  # 403 of RBAC: this identity lacks the right (for good, or while a role is upgraded)
    DENIED = "Denied"  # 403 of admission (a policy, a webhook, Pod Security, a LimitRange): never as it is
    NOT_YET = "NotYet"  # 403 missing something for a moment: a policy's params, the runner pod's record, a quota's count
    TERMINATING = "NamespaceTerminating"  # 403: the namespace is being deleted, nothing new may be made in it
    QUOTA = "QuotaExceeded"  # 403 from a ResourceQuota: there is room again once other objects go
    INVALID = "Invalid"  # 400/422: the request itself is wrong (schema, CEL rule)
    TOO_LARGE = "TooLarge"  # 413, or etcd's object limit
    OTHER = "Other"


_BY_STATUS = {429: Failure.THROTTLED, 409: Failure.CONFLICT, 404: Failure.NOT_FOUND, 410: Failure.GONE,
              401: Failure.UNAUTHORIZED, 400: Failure.INVALID, 422: Failure.INVALID,
              413: Failure.TOO_LARGE}

# What the API server (flux-runner-writes-only-its-own-status) answers a runner that writes before the operator has
# recorded its pod: the runner waits and tries again on these words, so they are part of the contract.
NOT_RECORDED_YET = "the operator has not recorded this execution's runner pod yet: try again shortly"

# A policy whose params are missing for a moment (a TenancyPolicy being replaced, its CRD being installed); a
# ResourceQuota its controller has not counted yet (new, or the controller down: the platform's, not the tenant's).
_NOT_YET = ("no params found", "failed to find resource referenced by paramKind", "status unknown for quota")
# The authorizer's 403: 'User "<name>" cannot <verb> resource "<resource>" ...' (or path "<url>"); and RBAC's
# escalation check, when a Role granted (the runner's) holds a right the granter's own role lacks.
_RBAC = re.compile(r'User "[^"]*" cannot \S+ (resource|path) "'
                   r'|is attempting to grant RBAC permissions not currently held')
# A ResourceQuota's: full.
_QUOTA = ("exceeded quota",)

# Worth the same request again after a backoff: nothing about the request was wrong (or, for a quota, it
# fits once other objects are gone).
TRANSIENT = frozenset({Failure.UNREACHABLE, Failure.THROTTLED, Failure.SERVER, Failure.QUOTA, Failure.NOT_YET})
# The API server will not take the request as it is: sending it again cannot help. An RBAC 403 is not among
# them: whether to wait for a role (the operator's own, being upgraded) or to give up is each caller's choice.
REFUSED = frozenset({Failure.DENIED, Failure.TERMINATING, Failure.INVALID, Failure.TOO_LARGE})
# 403s of every kind: what a plugin user is told is "forbidden", whichever part of the server said it.
FORBIDDEN_KINDS = frozenset({Failure.FORBIDDEN, Failure.DENIED, Failure.NOT_YET, Failure.TERMINATING})


def classify(status: int | None, message: str = "") -> Failure:
    """The kind of failure for an HTTP status; None means the server never answered."""
    if status is None:
        return Failure.UNREACHABLE
    if status == 500 and "too large" in message.lower():
        return Failure.TOO_LARGE  # etcd refuses objects over its limit with a 500
    if status >= 500:
        return Failure.SERVER
    if status == 403:
        return _forbidden(message)
    return _BY_STATUS.get(status, Failure.OTHER)


def _forbidden(message: str) -> Failure:
    """Which part of the API server said 403; one it cannot tell is taken for admission (the lasting kind)."""
    if any(words in message.lower() for words in _QUOTA):
        return Failure.QUOTA  # the ResourceQuota admission plugin's answer
    if "because it is being terminated" in message:
        return Failure.TERMINATING  # the NamespaceLifecycle admission plugin's answer
    if NOT_RECORDED_YET in message or any(words in message for words in _NOT_YET):
        return Failure.NOT_YET
    if _RBAC.search(message):
        return Failure.FORBIDDEN
    return Failure.DENIED


def is_transient(kind: Failure) -> bool:
    return kind in TRANSIENT


def is_refusal(kind: Failure) -> bool:
    return kind in REFUSED
