"""Everything that talks to the API server (its failures are phrased in kube_errors.py).

Cluster tests can use this module directly:

    kube = connect(kubeconfig="/path/to/kubeconfig")
    kube.get_execution("default", "demo")
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import urllib3
from flux_api import EXECUTION_LABEL, GROUP, PARENT_LABEL, PLURAL, VERSION, nesting, progress
from flux_api.names import SCHEDULE_PLURAL
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from flux_cli import objects
# Re-exported: callers catch them from here, next to the calls that raise them.
from flux_cli.kube_errors import (  # noqa: F401
    ApiNotInstalledError,
    ConflictError,
    ForbiddenError,
    KubeconfigError,
    KubeError,
    NotFoundError,
    RejectedError,
    UnauthorizedError,
    UnreachableError,
    concerns_one_object,
    describe_connection_error,
    translate_api_error,
)

# (connect, read) seconds: an unreachable server fails fast instead of hanging the terminal.
DEFAULT_REQUEST_TIMEOUT = (10.0, 60.0)
FIELD_MANAGER = "kubectl-flux"
# Label values are at most 63 characters; longer names can never appear in a selector.
_MAX_LABEL_VALUE = 63
# Keeps label selectors (and so URLs) short however many executions are asked about.
_SELECTOR_CHUNK = 50
_PAGE_SIZE = 100  # objects may be ~1.5 MB each: a page is decoded whole before objects.listed trims it
# More ExecutionProgress objects wanted in one namespace than this: one LIST there, not a GET each.
_GETS_BEFORE_A_LIST = 8


@dataclass
class Kube:
    """The API calls of the plugin. Every method returns plain camelCase dicts as on the wire."""

    api_client: k8s.ApiClient
    default_namespace: str = "default"
    request_timeout: tuple[float, float] = DEFAULT_REQUEST_TIMEOUT

    @property
    def host(self) -> str:
        return str(self.api_client.configuration.host or "")

    @property
    def _custom(self) -> k8s.CustomObjectsApi:
        return k8s.CustomObjectsApi(self.api_client)

    @property
    def _core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api_client)

    @contextmanager
    def _calling(self, what: str) -> Iterator[None]:
        try:
            yield
        except ApiException as error:
            raise translate_api_error(error, what=what, host=self.host) from None
        except urllib3.exceptions.HTTPError as error:
            raise describe_connection_error(error, self.host) from None

    # Executions

    def get_execution(self, namespace: str, name: str) -> dict[str, Any]:
        with self._calling(f'execution "{name}" in namespace "{namespace}"'):
            return _decoded(self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self.request_timeout, _preload_content=False
            ))

    def get_with_progress(self, namespace: str, name: str) -> dict[str, Any]:
        """The Execution with the newest checkpoint: while it runs, its runner writes progress to its
        ExecutionProgress (flux_api.progress), which this adds when the caller may read it."""
        return progress.with_progress(self.get_execution(namespace, name), self.get_progress(namespace, name))

    def get_progress(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The ExecutionProgress of that name; None when there is none or it may not be read (a tenant without
        `get executionprogresses` sees status.checkpoint, as of the last write the operator decides on)."""
        try:
            return _decoded(self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, progress.PLURAL, name, _request_timeout=self.request_timeout,
                _preload_content=False))
        except (ApiException, urllib3.exceptions.HTTPError, KubeError):
            return None

    def create_execution(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"].get("name") or f'{body["metadata"].get("generateName", "")}*'
        with self._calling(f'execution "{name}" in namespace "{namespace}"'):
            return _decoded(self._custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, body, field_manager=FIELD_MANAGER,
                _request_timeout=self.request_timeout, _preload_content=False))

    def list_executions(self, namespace: str | None, selector: str | None = None) -> list[dict[str, Any]]:
        """Executions in one namespace, or in all of them when `namespace` is None."""
        where = f'in namespace "{namespace}"' if namespace else "in all namespaces"
        with self._calling(f"executions {where}"):
            return self._paged(PLURAL, "Execution", namespace, selector)

    def progress_of(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """The ExecutionProgress of each (namespace, name) that has one the caller may read: a GET each where a
        namespace has a few, one paged LIST where it has many (`cancel --stale -A` over thousands). Never fails:
        without one, an execution's status.checkpoint is what there is."""
        wanted: dict[str, set[str]] = {}
        for namespace, name in keys:
            wanted.setdefault(namespace, set()).add(name)
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for namespace, names in wanted.items():
            if len(names) <= _GETS_BEFORE_A_LIST:
                objs = [self.get_progress(namespace, name) for name in sorted(names)]
            else:
                try:
                    objs = self._paged(progress.PLURAL, progress.KIND, namespace, None)
                except (ApiException, urllib3.exceptions.HTTPError, KubeError):
                    objs = []
            found.update({(namespace, objects.name_of(obj)): obj for obj in objs
                          if obj is not None and objects.name_of(obj) in names})
        return found

    def _paged(self, plural: str, kind: str, namespace: str | None, selector: str | None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"limit": _PAGE_SIZE, "_request_timeout": self.request_timeout,
                                      "_preload_content": False}
            if selector:
                kwargs["label_selector"] = selector
            if token:
                kwargs["_continue"] = token
            if namespace:
                page = _decoded(self._custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **kwargs))
            else:
                page = _decoded(self._custom.list_cluster_custom_object(GROUP, VERSION, plural, **kwargs))
            items.extend(map(objects.listed, _items(page)))
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
        # List items carry no kind; set it so objects look the same whichever call made them.
        for item in items:
            item.setdefault("apiVersion", f"{GROUP}/{VERSION}")
            item.setdefault("kind", kind)
        return items

    def list_children(self, namespace: str, names: Sequence[str]) -> list[dict[str, Any]]:
        """Direct children of the named executions (by the parent label)."""
        found: list[dict[str, Any]] = []
        for chunk in _label_value_chunks(names):
            found.extend(self.list_executions(namespace, f"{PARENT_LABEL} in ({','.join(chunk)})"))
        return found

    def list_descendants(self, namespace: str, names: Sequence[str]) -> list[dict[str, Any]]:
        """Children, grandchildren, ... of the named executions: one list call per generation."""
        found: dict[str, dict[str, Any]] = {}
        generation = list(dict.fromkeys(names))
        seen = set(generation)
        while generation:
            children = self.list_children(namespace, generation)
            generation = []
            for child in children:
                name = objects.name_of(child)
                found[name] = child
                if name not in seen:
                    seen.add(name)
                    generation.append(name)
        return list(found.values())

    def patch_execution(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch on the Execution (not its status)."""
        with self._calling(f'execution "{name}" in namespace "{namespace}"'):
            return _decoded(self._custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                patch,
                field_manager=FIELD_MANAGER,  # which tool wrote a signal or a cancel (status.signals' fieldManager)
                _content_type="application/merge-patch+json",
                _request_timeout=self.request_timeout,
                _preload_content=False,
            ))

    def whoami(self) -> str | None:
        """This user's name as the API server knows it (a SelfSubjectReview, which every user may make); None
        where the API server offers none (before Kubernetes 1.28) or refuses it."""
        body = k8s.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview")
        try:
            with self._calling("who am I (selfsubjectreview)"):
                review = k8s.AuthenticationV1Api(self.api_client).create_self_subject_review(
                    body, _request_timeout=self.request_timeout)
        except (NotFoundError, ApiNotInstalledError, ForbiddenError):
            return None
        return (review.status.user_info.username or None) if review.status and review.status.user_info else None

    # Schedules

    def get_schedule(self, namespace: str, name: str) -> dict[str, Any]:
        with self._calling(f'schedule "{name}" in namespace "{namespace}"'):
            return _decoded(self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, SCHEDULE_PLURAL, name, _request_timeout=self.request_timeout,
                _preload_content=False))

    def list_schedules(self, namespace: str | None) -> list[dict[str, Any]]:
        where = f'in namespace "{namespace}"' if namespace else "in all namespaces"
        with self._calling(f"schedules {where}"):
            if namespace:
                page = _decoded(self._custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, SCHEDULE_PLURAL, _request_timeout=self.request_timeout,
                    _preload_content=False))
            else:
                page = _decoded(self._custom.list_cluster_custom_object(
                    GROUP, VERSION, SCHEDULE_PLURAL, _request_timeout=self.request_timeout, _preload_content=False))
        return _items(page)

    def patch_schedule(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch on the Schedule (suspend, the unschedule annotation)."""
        with self._calling(f'schedule "{name}" in namespace "{namespace}"'):
            return _decoded(self._custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, SCHEDULE_PLURAL, name, patch,
                _content_type="application/merge-patch+json", _request_timeout=self.request_timeout,
                _preload_content=False,
            ))

    # Pods and server

    def list_pods(self, namespace: str, execution_names: Sequence[str]) -> list[dict[str, Any]]:
        """Pods labelled with one of the executions' names."""
        pods: list[dict[str, Any]] = []
        with self._calling(f'pods in namespace "{namespace}"'):
            for chunk in _label_value_chunks(execution_names):
                # Raw JSON keeps the wire's camelCase keys, like the custom objects.
                response = self._core.list_namespaced_pod(
                    namespace,
                    label_selector=f"{EXECUTION_LABEL} in ({','.join(chunk)})",
                    _preload_content=False,
                    _request_timeout=self.request_timeout,
                )
                pods.extend(_items(_decoded(response)))
        return pods

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One pod as raw JSON (camelCase keys); None when there is no such pod."""
        try:
            with self._calling(f'pod "{name}" in namespace "{namespace}"'):
                response = self._core.read_namespaced_pod(name, namespace, _preload_content=False,
                                                          _request_timeout=self.request_timeout)
                return _decoded(response)
        except NotFoundError:
            return None

    def pod_log(self, namespace: str, name: str, container: str, follow: bool) -> Iterator[bytes]:
        """A container's log in chunks as the API server sends them (from the node's kubelet)."""
        with self._calling(f'the log of pod "{name}" in namespace "{namespace}"'):
            # No read timeout while following: a quiet workflow is not a dead connection.
            response = self._core.read_namespaced_pod_log(
                name, namespace, container=container, follow=follow, _preload_content=False,
                _request_timeout=(self.request_timeout[0], None) if follow else self.request_timeout)
            try:
                yield from response.stream(amt=None, decode_content=False)
            finally:
                response.release_conn()

    def server_version(self) -> str:
        try:
            with self._calling("the server version"):
                return str(k8s.VersionApi(self.api_client).get_code(_request_timeout=self.request_timeout).git_version)
        except ApiNotInstalledError:
            # A 404 here is about /version, not about the Execution API.
            raise KubeError(f"the API server {self.host} does not serve /version") from None

    def execution_api_served(self) -> bool:
        """Whether the cluster serves executions.workflows.flux.dev (discovery needs no special RBAC)."""
        try:
            with self._calling("the Execution API"):
                resources = self._custom.get_api_resources(GROUP, VERSION, _request_timeout=self.request_timeout)
        except (NotFoundError, ApiNotInstalledError):
            return False
        return any(resource.name == PLURAL for resource in resources.resources or [])


def _decoded(response: Any) -> dict[str, Any]:
    """The raw answer decoded by flux_api.nesting (not by the client, whose json.loads dies on an object
    nested a few thousand levels deep): what is nested deeper than the plugin shows becomes a short stub."""
    try:
        body = nesting.loads(response.data)
    except ValueError as error:
        raise KubeError(f"the API server answered with invalid JSON: {error}") from None
    if not isinstance(body, dict):
        raise KubeError("the API server answered with JSON that is not an object")
    return body


def _items(page: dict[str, Any]) -> list[dict[str, Any]]:
    items = page.get("items") or []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise KubeError("the API server answered with a list whose items are not all objects")
    return items


def _label_value_chunks(names: Sequence[str]) -> Iterator[list[str]]:
    usable = [name for name in dict.fromkeys(names) if len(name) <= _MAX_LABEL_VALUE]
    for start in range(0, len(usable), _SELECTOR_CHUNK):
        yield usable[start : start + _SELECTOR_CHUNK]
