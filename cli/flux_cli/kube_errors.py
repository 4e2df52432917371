"""The plugin's API failures, each phrased as one line for the user (kube.py raises them)."""

from __future__ import annotations

import json
import re
from typing import Any

import urllib3
from flux_api import GROUP, VERSION
from flux_api.errors import FORBIDDEN_KINDS, Failure, classify
from kubernetes.client.exceptions import ApiException

from flux_cli.errors import FluxCliError

_CONNECTION_REPR = re.compile(r"^\w*Connection\w*\(.*?\):\s*")


class KubeError(FluxCliError):
    """An API or configuration failure, already phrased for the user."""


class KubeconfigError(KubeError):
    pass


class UnreachableError(KubeError):
    pass


class UnauthorizedError(KubeError):
    pass


class ForbiddenError(KubeError):
    pass


class NotFoundError(KubeError):
    pass


class ApiNotInstalledError(KubeError):
    pass


class RejectedError(KubeError):
    """409/422: the server refused the change (validation, CEL rule, conflict)."""


class ConflictError(RejectedError):
    """409 Conflict: the object changed since it was read (a patch that carried its resourceVersion)."""


# Failures that concern the whole command, not one execution: stop at once.
_WHOLE_COMMAND_ERRORS = (KubeconfigError, UnreachableError, UnauthorizedError, ApiNotInstalledError)


def concerns_one_object(error: KubeError) -> bool:
    """True for errors about one execution (not found, forbidden, rejected, a 5xx on that call)."""
    return not isinstance(error, _WHOLE_COMMAND_ERRORS)


def _status_body(error: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def translate_api_error(error: ApiException, *, what: str, host: str = "") -> KubeError:
    """One line for an ApiException; `what` names the object or list, e.g. 'execution "x" in namespace "y"'."""
    body = _status_body(error)
    message = str(body.get("message") or error.reason or "").strip()
    kind = classify(error.status, message)
    if kind is Failure.UNAUTHORIZED:
        return UnauthorizedError(f"unauthorized: the API server{' ' + host if host else ''} rejected the credentials")
    if kind in FORBIDDEN_KINDS:
        return ForbiddenError(f"forbidden: {message}" if message and "forbidden" not in message else message or f"forbidden: {what}")
    if kind is Failure.NOT_FOUND:
        details = body.get("details") if isinstance(body.get("details"), dict) else {}
        if details.get("name"):
            return NotFoundError(f"{what} not found")
        return ApiNotInstalledError(
            f"the Execution API ({GROUP}/{VERSION}) is not served by this cluster: is the Flux CRD installed?"
        )
    if kind is Failure.CONFLICT:
        return ConflictError(f"rejected by the API server: {message}")
    if kind is Failure.INVALID:
        return RejectedError(f"rejected by the API server: {message}")
    return KubeError(f"API server error {error.status} {error.reason or ''}".rstrip() + (f": {message}" if message else ""))


def describe_connection_error(error: urllib3.exceptions.HTTPError, host: str) -> UnreachableError:
    reason = getattr(error, "reason", None) or error
    text = _CONNECTION_REPR.sub("", str(reason)).strip() or type(reason).__name__
    return UnreachableError(f"cannot reach the API server {host}: {text}")
