"""The operator's writes to the API server (and the one read it allows itself: after a conflict).

Every call has a timeout and passes a client-side rate limit; every failure becomes one
`ApiFailure` whose kind (flux_api.errors) tells the work queue whether to retry.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

from flux_api import GROUP, PLURAL, VERSION
from flux_api.errors import Failure, classify, is_transient
from flux_api.names import SCHEDULE_PLURAL
from flux_api.timefmt import now_text
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

# (connect, read) seconds: a hung connection fails the call instead of stalling a worker forever.
DEFAULT_TIMEOUT = (5.0, 15.0)


class ApiFailure(Exception):
    def __init__(self, what: str, kind: Failure, detail: str = "", status: int | None = None) -> None:
        code = f"{status} " if status else ""
        super().__init__(f"{what}: {code}{kind.value}{': ' + detail if detail else ''}")
        self.kind, self.status = kind, status

    @property
    def transient(self) -> bool:
        return is_transient(self.kind)


class RateLimiter:
    """A token bucket shared by every worker: `qps` sustained, `burst` at once (client-go's model)."""

    def __init__(self, qps: float, burst: int, clock=time.monotonic, sleep=time.sleep) -> None:
        self.qps, self.burst = qps, max(1, burst)
        self._tokens, self._clock, self._sleep = float(self.burst), clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Blocks until a request may go; returns the seconds waited."""
        if self.qps <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.qps
        if wait:
            self._sleep(wait)
        return wait


def load_client_config() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def _status_message(err: ApiException) -> str:
    try:
        body = json.loads(err.body or "")
    except (TypeError, ValueError):
        return str(err.reason or "")
    return str(body.get("message") or err.reason or "") if isinstance(body, dict) else str(err.reason or "")


class KubeApi:
    def __init__(self, api: client.ApiClient, limiter: RateLimiter | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.api_client = api
        self.core = client.CoreV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.coordination = client.CoordinationV1Api(api)
        self.limiter = limiter or RateLimiter(qps=0, burst=1)
        self.timeout = timeout
        self.calls = 0
        self.last_success = 0.0  # monotonic; health reads it

    @contextlib.contextmanager
    def call(self, what: str, tolerate: tuple[Failure, ...] = ()) -> Iterator[dict[str, Any]]:
        """Runs one request; failures in `tolerate` are not raised (the block sees `outcome['failure']`)."""
        self.limiter.acquire()
        self.calls += 1
        outcome: dict[str, Any] = {"failure": None}
        try:
            yield outcome
        except ApiException as err:
            message = _status_message(err)
            kind = classify(err.status, message)
            if err.status and err.status < 500:
                self.last_success = time.monotonic()  # it answered: the connection works
            if kind not in tolerate:
                raise ApiFailure(what, kind, message, err.status) from err
            outcome["failure"] = kind
        except (HTTPError, OSError) as err:
            raise ApiFailure(what, Failure.UNREACHABLE, str(err)) from err
        else:
            self.last_success = time.monotonic()

    # --- the one read: after a conflict, to learn what changed ------------------------------

    def get_execution(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.call(f"get execution {namespace}/{name}", tolerate=(Failure.NOT_FOUND,)):
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name,
                                                            _request_timeout=self.timeout)
        return None  # not found

    # --- writes: each one idempotent ---------------------------------------------------------

    def patch_status(self, namespace: str, name: str, status: dict[str, Any],
                     resource_version: str | None) -> dict[str, Any]:
        """A merge patch of status that fails with Conflict if the object moved past `resource_version`."""
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        with self.call(f"patch status of {namespace}/{name}"):
            return self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, name, body,
                                                                     _request_timeout=self.timeout)

    def patch_execution(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        with self.call(f"patch execution {namespace}/{name}", tolerate=(Failure.NOT_FOUND,)):
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, patch,
                                                       _request_timeout=self.timeout)

    def create_execution(self, namespace: str, body: dict[str, Any]) -> bool:
        """False if it already existed."""
        with self.call(f"create execution {namespace}/{body['metadata']['name']}",
                       tolerate=(Failure.CONFLICT,)) as out:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body,
                                                        _request_timeout=self.timeout)
        return out["failure"] is None

    # --- Schedules ----------------------------------------------------------------------------

    def get_schedule(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.call(f"get schedule {namespace}/{name}", tolerate=(Failure.NOT_FOUND,)):
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, SCHEDULE_PLURAL, name,
                                                            _request_timeout=self.timeout)
        return None

    def patch_schedule(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        with self.call(f"patch schedule {namespace}/{name}", tolerate=(Failure.NOT_FOUND,)):
            self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, SCHEDULE_PLURAL, name, patch,
                                                       _request_timeout=self.timeout)

    def patch_schedule_status(self, namespace: str, name: str, status: dict[str, Any],
                              resource_version: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        with self.call(f"patch status of schedule {namespace}/{name}"):
            return self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, SCHEDULE_PLURAL,
                                                                     name, body, _request_timeout=self.timeout)

    def delete_execution(self, namespace: str, name: str, uid: str) -> bool:
        """Deletes this execution (not a successor of the same name); its pods, RBAC and children go with it
        through their ownerReferences. False if it was already gone."""
        options = client.V1DeleteOptions(propagation_policy="Background",
                                         preconditions=client.V1Preconditions(uid=uid) if uid else None)
        with self.call(f"delete execution {namespace}/{name}", tolerate=(Failure.NOT_FOUND, Failure.CONFLICT)) as out:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body=options,
                                                        _request_timeout=self.timeout)
        return out["failure"] is None

    def create(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Creates a ServiceAccount, Role, RoleBinding or Pod; None if one of that name already existed."""
        namespace, kind = body["metadata"]["namespace"], body["kind"]
        create = {
            "ServiceAccount": self.core.create_namespaced_service_account,
            "Pod": self.core.create_namespaced_pod,
            "Role": self.rbac.create_namespaced_role,
            "RoleBinding": self.rbac.create_namespaced_role_binding,
        }[kind]
        with self.call(f"create {kind} {namespace}/{body['metadata']['name']}", tolerate=(Failure.CONFLICT,)):
            created = create(namespace, body, _request_timeout=self.timeout)
            return self.api_client.sanitize_for_serialization(created)
        return None

    def controller_uid(self, kind: str, namespace: str, name: str) -> str | None:
        """The UID of the object's controlling owner ("" if none); None if the object is gone.
        The one read besides a status conflict: after a create met an object of the same name."""
        read = {
            "ServiceAccount": self.core.read_namespaced_service_account,
            "Pod": self.core.read_namespaced_pod,
            "Role": self.rbac.read_namespaced_role,
            "RoleBinding": self.rbac.read_namespaced_role_binding,
        }[kind]
        with self.call(f"read {kind} {namespace}/{name}", tolerate=(Failure.NOT_FOUND,)):
            found = read(name, namespace, _request_timeout=self.timeout)
            return next((r.uid for r in found.metadata.owner_references or [] if r.controller), "")
        return None

    def delete_pod(self, namespace: str, name: str, grace_seconds: int, uid: str | None = None) -> bool:
        """Deletes the pod if it is still the one we mean (`uid`); False if it was already gone."""
        options = client.V1DeleteOptions(grace_period_seconds=grace_seconds,
                                         preconditions=client.V1Preconditions(uid=uid) if uid else None)
        with self.call(f"delete pod {namespace}/{name}", tolerate=(Failure.NOT_FOUND, Failure.CONFLICT)) as out:
            self.core.delete_namespaced_pod(name, namespace, body=options, _request_timeout=self.timeout)
        return out["failure"] is None

    def emit_event(self, involved: dict[str, Any], name: str, type_: str, reason: str, message: str) -> bool:
        """Posts an Event under a fixed name: posting it again (after a crash) is a harmless Conflict."""
        now = now_text()
        body = {
            "metadata": {"name": name, "namespace": involved["namespace"]},
            "involvedObject": involved,
            "reason": reason, "message": message[:1024], "type": type_,
            "source": {"component": "flux-operator"}, "reportingComponent": "flux-operator",
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        with self.call(f"post event {reason} for {involved['namespace']}/{involved['name']}",
                       tolerate=(Failure.CONFLICT,)) as out:
            self.core.create_namespaced_event(involved["namespace"], body, _request_timeout=self.timeout)
        return out["failure"] is None
