"""The operator's writes to the API server, and the few reads it allows itself: an object after a conflict,
a value the World keeps only as a stub, the object a create found under its name, the Lease, and the
start-up checks (the API served, its permissions, the admission policies).

Every call has a timeout and passes the client-side budget (budget.py: fair between namespaces); every
failure becomes one `ApiFailure` whose kind (flux_api.errors) tells the work queue whether to retry.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from flux_api import GROUP, PLURAL, VERSION, nesting, progress
from flux_api.errors import Failure, classify, is_transient
from flux_api.events import MAX_MESSAGE
from flux_api.names import LIMIT_PLURAL, SCHEDULE_PLURAL
from flux_api.timefmt import now_text

from flux_operator import memory
from flux_operator.budget import RateLimiter
from flux_operator.eventnames import sealed
from flux_operator.kubeconfig import ClientConfig, ConfigError

# (connect, read) seconds: a hung connection fails the call instead of stalling a worker forever.
DEFAULT_TIMEOUT = (5.0, 15.0)


class ApiFailure(Exception):
    def __init__(self, what: str, kind: Failure, detail: str = "", status: int | None = None) -> None:
        code = f"{status} " if status else ""
        super().__init__(f"{what}: {code}{kind}{': ' + detail if detail else ''}")
        self.kind, self.status, self.detail = kind, status, detail

    @property
    def transient(self) -> bool:
        return is_transient(self.kind)


MERGE_PATCH = "application/merge-patch+json"
CORE = "/api/v1"
RBAC = "/apis/rbac.authorization.k8s.io/v1"
PATHS_BY_KIND = {"ServiceAccount": (CORE, "serviceaccounts"), "Pod": (CORE, "pods"),
                 "Role": (RBAC, "roles"), "RoleBinding": (RBAC, "rolebindings"), "Event": (CORE, "events"),
                 "Lease": ("/apis/coordination.k8s.io/v1", "leases"),
                 "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies"),
                 progress.KIND: (f"/apis/{GROUP}/{VERSION}", progress.PLURAL)}


def custom_path(namespace: str, plural: str, name: str = "", sub: str = "") -> str:
    """The path of one of our custom resources (or of their collection, without a name)."""
    return _join(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}", name, sub)


def kind_path(kind: str, namespace: str, name: str = "") -> str:
    prefix, plural = PATHS_BY_KIND[kind]
    return _join(f"{prefix}/namespaces/{namespace}/{plural}", name)


def _join(collection: str, *parts: str) -> str:
    # Names are DNS labels or subdomains: nothing in them needs escaping in a path.
    return "/".join([collection, *(p for p in parts if p)])


class StatusError(Exception):
    """The API server answered with an error status; `message` is its metav1.Status message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status, self.message = status, message


class InvalidAnswer(Exception):
    """A success status with a body that is not a JSON object."""


def status_error(status: int, text: str, reason: str = "") -> StatusError:
    """The error for an answer that is not 2xx: the Status message when the body is one, else the reason."""
    try:
        body = nesting.loads(text or "")
    except ValueError:
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    return StatusError(status, str(message or reason or text or ""))


class KubeApi:
    def __init__(self, config: ClientConfig, limiter: RateLimiter | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT, transport: httpx.BaseTransport | None = None,
                 event_key: bytes | None = None) -> None:
        self.config = config
        # One pooled client for every worker thread (httpx's sync client is safe to share); tests pass a
        # MockTransport instead of the network.
        # trust_env=False: no proxy or netrc from the environment, as kopf's session (handlers.login) has none.
        self.http = httpx.Client(base_url=config.server, transport=transport, trust_env=False,
                                 verify=config.ssl_context() if transport is None else True,
                                 headers={"Accept": "application/json", "User-Agent": "flux-operator"})
        self.limiter = limiter or RateLimiter(qps=0, burst=1)
        self.timeout = timeout
        self.calls = 0
        self.last_success = 0.0  # monotonic; health reads it
        # The metrics' hooks (runtime.py): each request's verb, path, HTTP code (0: no answer) and seconds;
        # the seconds a request waited for the rate limit.
        self.on_request: Callable[[str, str, int, float], None] | None = None
        self.on_throttled: Callable[[float], None] | None = None
        # Takes an Event the budget has no token to spare for (deferred.DeferredEvents.add); None: none deferred.
        self.defer_event: Callable[[dict[str, Any]], None] | None = None
        self._event_key = event_key  # eventnames.sealed's key; None: asked for at the first Event

    @contextlib.contextmanager
    def call(self, what: str, tolerate: tuple[Failure, ...] = (), urgent: bool = False,
             paid: bool = False) -> Iterator[dict[str, Any]]:
        """Runs one request; failures in `tolerate` are not raised (the block sees `outcome['failure']`).
        `urgent`: a signal (a pod's delete, a child's cancel), which goes before its lane's other requests.
        `paid`: its token is already taken (RateLimiter.try_acquire)."""
        waited = 0.0 if paid else self.limiter.acquire(urgent=urgent)
        if waited and self.on_throttled is not None:
            self.on_throttled(waited)
        self.calls += 1
        outcome: dict[str, Any] = {"failure": None}
        try:
            yield outcome
        except StatusError as err:
            kind = classify(err.status, err.message)
            if err.status < 500:
                self.last_success = time.monotonic()  # it answered: the connection works
            if kind not in tolerate:
                raise ApiFailure(what, kind, err.message, err.status) from err
            outcome["failure"] = kind
        except (httpx.TransportError, OSError) as err:
            # TransportError covers refused and reset connections, TLS failures and every timeout.
            raise ApiFailure(what, Failure.UNREACHABLE, f"{type(err).__name__}: {err}".rstrip(": ")) from err
        except InvalidAnswer as err:  # a 2xx that is not a JSON object: a broken proxy or server, worth a retry
            raise ApiFailure(what, Failure.SERVER, str(err)) from err
        except ConfigError as err:  # the token file went away: no request could be sent
            raise ApiFailure(what, Failure.UNAUTHORIZED, str(err)) from err
        else:
            self.last_success = time.monotonic()

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                params: dict[str, str] | None = None) -> dict[str, Any]:
        """One HTTP request; the decoded JSON answer, or StatusError. Use it inside `call()`."""
        headers = {}
        token = self.config.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        content = None
        if body is not None:
            content, headers["Content-Type"] = json.dumps(body).encode(), content_type
        connect, read = self.timeout
        began, code = time.monotonic(), 0
        try:
            response = self.http.request(method, path, content=content, headers=headers, params=params,
                                         timeout=httpx.Timeout(read, connect=connect))
            code = response.status_code
        finally:
            if self.on_request is not None:
                self.on_request(method, path, code, time.monotonic() - began)
        if not response.is_success:
            raise status_error(response.status_code, response.text, response.reason_phrase)
        try:
            memory.decoded(len(response.content))
            answer = nesting.loads(response.content)  # no object's nesting can make this raise RecursionError
        except ValueError as err:
            raise InvalidAnswer(f"{method} {path}: the answer is not JSON: {err}") from err
        if not isinstance(answer, dict):
            raise InvalidAnswer(f"{method} {path}: the answer is not a JSON object")
        return answer

    def close(self) -> None:
        self.http.close()

    # --- the one read: after a conflict, to learn what changed ------------------------------

    def get_execution(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.call(f"get execution {namespace}/{name}", tolerate=(Failure.NOT_FOUND,)):
            return self.request("GET", custom_path(namespace, PLURAL, name))
        return None  # not found

    # --- writes: each one idempotent ---------------------------------------------------------

    def patch_status(self, namespace: str, name: str, status: dict[str, Any],
                     resource_version: str | None) -> dict[str, Any]:
        """A merge patch of status that fails with Conflict if the object moved past `resource_version`."""
        with self.call(f"patch status of {namespace}/{name}"):
            return self.request("PATCH", custom_path(namespace, PLURAL, name, "status"),
                                _status_patch(status, resource_version), MERGE_PATCH)

    def patch_execution(self, namespace: str, name: str, patch: dict[str, Any],
                        urgent: bool = False) -> dict[str, Any] | None:
        """The object as patched; None if it was gone."""
        with self.call(f"patch execution {namespace}/{name}", tolerate=(Failure.NOT_FOUND,), urgent=urgent):
            return self.request("PATCH", custom_path(namespace, PLURAL, name), patch, MERGE_PATCH)
        return None

    def make_execution(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Creates an Execution; the object as created, or None if one of that name already existed."""
        with self.call(f"create execution {namespace}/{body['metadata']['name']}", tolerate=(Failure.CONFLICT,)):
            return self.request("POST", custom_path(namespace, PLURAL), body)
        return None

    def create_execution(self, namespace: str, body: dict[str, Any]) -> bool:
        """False if it already existed."""
        with self.call(f"create execution {namespace}/{body['metadata']['name']}",
                       tolerate=(Failure.CONFLICT,)) as out:
            self.request("POST", custom_path(namespace, PLURAL), body)
        return out["failure"] is None

    # --- Schedules ----------------------------------------------------------------------------

    def create_run(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Creates a Schedule's run; the created object, or None if that name was taken."""
        with self.call(f"create execution {namespace}/{body['metadata']['name']}", tolerate=(Failure.CONFLICT,)):
            return self.request("POST", custom_path(namespace, PLURAL), body)
        return None

    def get_schedule(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.call(f"get schedule {namespace}/{name}", tolerate=(Failure.NOT_FOUND,)):
            return self.request("GET", custom_path(namespace, SCHEDULE_PLURAL, name))
        return None

    def patch_schedule(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        with self.call(f"patch schedule {namespace}/{name}", tolerate=(Failure.NOT_FOUND,)):
            self.request("PATCH", custom_path(namespace, SCHEDULE_PLURAL, name), patch, MERGE_PATCH)

    def patch_schedule_status(self, namespace: str, name: str, status: dict[str, Any],
                              resource_version: str | None) -> dict[str, Any]:
        with self.call(f"patch status of schedule {namespace}/{name}"):
            return self.request("PATCH", custom_path(namespace, SCHEDULE_PLURAL, name, "status"),
                                _status_patch(status, resource_version), MERGE_PATCH)

    def patch_limit_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """The usage a ConcurrencyLimit shows; gone meanwhile is fine (nothing to show it on)."""
        with self.call(f"patch status of concurrencylimit {namespace}/{name}", tolerate=(Failure.NOT_FOUND,)):
            self.request("PATCH", custom_path(namespace, LIMIT_PLURAL, name, "status"), {"status": status},
                         MERGE_PATCH)

    def delete_execution(self, namespace: str, name: str, uid: str) -> bool:
        """Deletes this execution (not a successor of the same name); its pods, RBAC and children go with it
        through their ownerReferences. False if it was already gone."""
        options = delete_options(uid, propagation="Background")
        with self.call(f"delete execution {namespace}/{name}", tolerate=(Failure.NOT_FOUND, Failure.CONFLICT)) as out:
            self.request("DELETE", custom_path(namespace, PLURAL, name), options)
        return out["failure"] is None

    def create(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Creates a ServiceAccount, Role, RoleBinding, NetworkPolicy, ExecutionProgress or Pod; None if one of that
        name already existed."""
        namespace, kind = body["metadata"]["namespace"], body["kind"]
        with self.call(f"create {kind} {namespace}/{body['metadata']['name']}", tolerate=(Failure.CONFLICT,)):
            return self.request("POST", kind_path(kind, namespace), body)
        return None

    def read_metadata(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The metadata of a ServiceAccount, Role, RoleBinding, NetworkPolicy or Pod; None if there is none. The one read
        besides a status conflict: after a create met an object of the same name, to learn whose it is."""
        with self.call(f"read {kind} {namespace}/{name}", tolerate=(Failure.NOT_FOUND,)):
            found = self.request("GET", kind_path(kind, namespace, name))
            return found.get("metadata") if isinstance(found.get("metadata"), dict) else {}
        return None

    def delete_pod(self, namespace: str, name: str, grace_seconds: int,
                   uid: str | None = None) -> dict[str, Any] | None:
        """Deletes the pod if it is still the one we mean (`uid`): the server's answer (the pod, now
        terminating), or None if it was already gone."""
        options = delete_options(uid, grace_seconds=grace_seconds)
        with self.call(f"delete pod {namespace}/{name}", tolerate=(Failure.NOT_FOUND, Failure.CONFLICT),
                       urgent=True):
            return self.request("DELETE", kind_path("Pod", namespace, name), options)
        return None

    def emit_event(self, involved: dict[str, Any], name: str, type_: str, reason: str, message: str,
                   deferrable: bool = False) -> bool:
        """Posts an Event under a fixed name: posting it again (after a crash) is a harmless Conflict. An Event
        is only news: a namespace being deleted refuses it, and that must not hold up the status write after it.
        `deferrable`: when the budget has no token to spare, handed to `defer_event` (posted later) and True."""
        now = now_text()
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": sealed(name, self.event_key()), "namespace": involved["namespace"]},
            "involvedObject": involved,
            "reason": reason, "message": message[:MAX_MESSAGE], "type": type_,
            "source": {"component": "flux-operator"}, "reportingComponent": "flux-operator",
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        if not deferrable or self.defer_event is None:
            return self.post_event(body)
        if self.limiter.try_acquire():
            return self.post_event(body, paid=True)
        self.defer_event(body)
        return True

    def post_event(self, body: dict[str, Any], paid: bool = False) -> bool:
        """False: the name was taken (posted before) or the namespace is being deleted."""
        involved = body["involvedObject"]
        with self.call(f"post event {body['reason']} for {involved['namespace']}/{involved['name']}",
                       tolerate=(Failure.CONFLICT, Failure.TERMINATING), paid=paid) as out:
            self.request("POST", kind_path("Event", involved["namespace"]), body)
        return out["failure"] is None

    # --- the leader Lease (leader.py): None where the API said NotFound or Conflict ------------

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.call(f"get lease {namespace}/{name}", tolerate=(Failure.NOT_FOUND,)):
            return self.request("GET", kind_path("Lease", namespace, name))
        return None

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        with self.call(f"create lease {namespace}/{body['metadata']['name']}", tolerate=(Failure.CONFLICT,)):
            return self.request("POST", kind_path("Lease", namespace), {"apiVersion": "coordination.k8s.io/v1",
                                                                         "kind": "Lease", **body})
        return None

    def replace_lease(self, namespace: str, name: str, body: dict[str, Any],
                      tolerate: tuple[Failure, ...] = (Failure.CONFLICT,)) -> dict[str, Any] | None:
        """A PUT carrying metadata.resourceVersion: a concurrent writer makes it a Conflict (None)."""
        with self.call(f"write lease {namespace}/{name}", tolerate=tolerate):
            return self.request("PUT", kind_path("Lease", namespace, name), body)
        return None

    # --- start-up checks (startup.py) ----------------------------------------------------------

    def served(self, path: str) -> bool:
        """Whether the API server serves this discovery path (e.g. /apis/group/version)."""
        with self.call(f"discover {path}", tolerate=(Failure.NOT_FOUND,)) as out:
            self.request("GET", path)
        return out["failure"] is None

    def get_object(self, path: str) -> dict[str, Any] | None:
        """Any object by its path (the admission policies, the TenancyPolicy); None if it does not exist."""
        with self.call(f"get {path}", tolerate=(Failure.NOT_FOUND,)):
            return self.request("GET", path)
        return None

    def whoami(self) -> str:
        """The user name the API server knows this operator by (a SelfSubjectReview); the start-up check asks,
        and the Event names' key comes with the answer."""
        return str(self._user_info().get("username") or "")

    def event_key(self) -> bytes:
        """The key of the operator's Event names (eventnames.sealed): its UID, a ServiceAccount's, which every
        replica shares. Asked for once; while it cannot be, none (the names as they were)."""
        if self._event_key is None:
            try:
                self._user_info()
            except ApiFailure:
                return b""
        return self._event_key or b""

    def _user_info(self) -> dict[str, Any]:
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        with self.call("who am I (selfsubjectreview)"):
            review = self.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body)
        info = (review.get("status") or {}).get("userInfo") or {}
        if self._event_key is None:  # whoever asked first, the start-up check or the first Event
            self._event_key = str(info.get("uid") or "").encode()
        return info

    def allowed(self, attributes: dict[str, Any]) -> bool:
        """A SelfSubjectAccessReview: may this identity do what `attributes` describe?"""
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attributes}}
        with self.call(f"can-i {attributes.get('verb')} {attributes.get('resource')}"):
            review = self.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body)
        return bool((review.get("status") or {}).get("allowed"))


def _status_patch(status: dict[str, Any], resource_version: str | None) -> dict[str, Any]:
    # A resourceVersion in a merge patch is a precondition: the server answers Conflict if it moved on.
    body: dict[str, Any] = {"status": status}
    if resource_version:
        body["metadata"] = {"resourceVersion": resource_version}
    return body


def delete_options(uid: str | None, propagation: str | None = None, grace_seconds: int | None = None) -> dict:
    """DeleteOptions: a uid precondition makes the delete miss a successor of the same name (Conflict)."""
    options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions"}
    if propagation:
        options["propagationPolicy"] = propagation
    if grace_seconds is not None:
        options["gracePeriodSeconds"] = grace_seconds
    if uid:
        options["preconditions"] = {"uid": uid}
    return options
