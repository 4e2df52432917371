"""An in-memory stand-in for the operator's API client (unit tests of the operator shell), recording every call.

It applies writes as the API server does where the tests rely on it: merge patches merge deeply (RFC 7386;
null removes a key), metadata.generation moves with the spec, spec.cancel cannot be changed or removed once set
and a finished phase is final (the CRD's CEL rules), and a stale resourceVersion is a Conflict. Schema checks
stay with the real API server (tests/cluster)."""

from __future__ import annotations

import copy
from typing import Any

from flux_api import TERMINAL_PHASES
from flux_api.errors import Failure
from flux_api.mergepatch import merge_patch
from flux_operator.kube import ApiFailure


def merge_status(obj: dict[str, Any], status: dict[str, Any]) -> None:
    """A merge patch of `obj`'s status, as the API server applies one."""
    obj["status"] = merge_patch(obj.get("status") or {}, status)


def _refused(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """What the Execution CRD's CEL rules would say of this update (CANCEL_IMMUTABLE, TERMINAL_IS_FINAL)."""
    old_cancel, new_cancel = (before.get("spec") or {}).get("cancel"), (after.get("spec") or {}).get("cancel")
    if old_cancel is not None and new_cancel != old_cancel:
        return "spec.cancel cannot be removed or changed once set: cancellation cannot be undone"
    old_phase, new_phase = (before.get("status") or {}).get("phase"), (after.get("status") or {}).get("phase")
    if old_phase in TERMINAL_PHASES and new_phase != old_phase:
        return "status.phase cannot change once the execution has finished (Cancelled, Succeeded or Failed)"
    return None


class FakeKubeApi:
    """Holds Executions by (namespace, name) and applies merge patches with resourceVersion checks."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple] = []
        self.fail_next: dict[str, list[Failure]] = {}  # method name -> failures to raise, in order
        self.events: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.owners: dict[tuple[str, str], str] = {}  # (kind, name) -> controlling owner UID
        self.others: dict[tuple[str, str], dict[str, Any]] = {}  # (kind, name) -> what create() made
        self.schedules: dict[tuple[str, str], dict[str, Any]] = {}
        self.pod_answers: dict[str, dict[str, Any]] = {}  # pod name -> what its DELETE answers
        self._rv = 100

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Stores `obj` as the next version: generation 1 when new, one more when its spec changed."""
        obj = copy.deepcopy(obj)
        self._rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        before = self.objects.get((meta["namespace"], meta["name"]))
        if before is None:
            meta.setdefault("generation", 1)
        elif before.get("spec") != obj.get("spec"):
            meta["generation"] = (before["metadata"].get("generation") or 1) + 1
        self.objects[(meta["namespace"], meta["name"])] = obj
        return copy.deepcopy(obj)

    def _update(self, name: str, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        if (refusal := _refused(before, after)) is not None:
            raise ApiFailure(name, Failure.INVALID, refusal)
        return self.put(after)

    def _maybe_fail(self, method: str, what: str) -> None:
        pending = self.fail_next.get(method)
        if pending:
            raise ApiFailure(what, pending.pop(0), "injected")

    def get_execution(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_execution", name))
        self._maybe_fail("get_execution", name)
        obj = self.objects.get((namespace, name))
        return copy.deepcopy(obj) if obj else None

    def patch_status(self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None):
        self.calls.append(("patch_status", name, resource_version))
        self._maybe_fail("patch_status", name)
        obj = self.objects.get((namespace, name))
        if obj is None:
            raise ApiFailure(name, Failure.NOT_FOUND)
        if resource_version and obj["metadata"]["resourceVersion"] != resource_version:
            raise ApiFailure(name, Failure.CONFLICT, "the object has been modified")
        merged = copy.deepcopy(obj)
        merge_status(merged, status)
        return self._update(name, obj, merged)

    def patch_execution(self, namespace: str, name: str, patch: dict[str, Any],
                        urgent: bool = False) -> dict[str, Any] | None:
        self.calls.append(("patch_execution", name))
        self._maybe_fail("patch_execution", name)
        obj = self.objects.get((namespace, name))
        return None if obj is None else copy.deepcopy(self._update(name, obj, merge_patch(obj, patch)))

    def _add(self, call: str, namespace: str, body: dict[str, Any], with_namespace: bool) -> dict[str, Any] | None:
        """Records `call` (which may fail as told); None if the name is taken, else the stored copy, with a uid."""
        name = body["metadata"]["name"]
        self.calls.append((call, name))
        self._maybe_fail(call, name)
        if (namespace, name) in self.objects:
            return None
        body = copy.deepcopy(body)
        body["metadata"].setdefault("uid", f"uid-{name}")
        if with_namespace:  # create_execution stores the body as given (its namespace included)
            body["metadata"].setdefault("namespace", namespace)
        return self.put(body)

    def create_execution(self, namespace: str, body: dict[str, Any]) -> bool:
        return self._add("create_execution", namespace, body, with_namespace=False) is not None

    def make_execution(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        return self._add("make_execution", namespace, body, with_namespace=True)

    def create_run(self, namespace: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """A Schedule's run: the created object, or None when the name is taken."""
        if not self.create_execution(namespace, body):
            return None
        return copy.deepcopy(self.objects[(namespace, body["metadata"]["name"])])

    def create(self, body: dict[str, Any]) -> dict[str, Any] | None:
        self.calls.append(("create", body["kind"], body["metadata"]["name"]))
        # The ExecutionProgress goes beside the first stage's creates: its own failures, so that which of them
        # meets a failure injected for the runner's objects is not a race.
        method = "create_progress" if body["kind"] == "ExecutionProgress" else "create"
        self._maybe_fail(method, body["metadata"]["name"])
        key = (body["kind"], body["metadata"]["name"])
        if key in self.owners or key in self.others:
            return None
        self.created.append(body)
        owner = next((r["uid"] for r in body["metadata"].get("ownerReferences", []) if r.get("controller")), "")
        self.owners[key] = owner
        stored = {**copy.deepcopy(body), "metadata": {**copy.deepcopy(body["metadata"]), "uid": f"uid-{key[1]}"}}
        self.others[key] = stored
        return copy.deepcopy(stored)

    def read_metadata(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """An object made by create(), or one a test put in `owners` (made by someone else, owned by that UID)."""
        self.calls.append(("read_metadata", kind, name))
        self._maybe_fail("read_metadata", name)
        if (kind, name) in self.others:
            return copy.deepcopy(self.others[(kind, name)]["metadata"])
        if (kind, name) in self.owners:
            owner = self.owners[(kind, name)]
            refs = [{"uid": owner, "controller": True, "kind": "Execution", "name": "x"}] if owner else []
            return {"name": name, "namespace": namespace, "uid": f"foreign-{name}", "ownerReferences": refs}
        return None

    def delete_pod(self, namespace: str, name: str, grace_seconds: int,
                   uid: str | None = None) -> dict[str, Any] | None:
        self.calls.append(("delete_pod", name, grace_seconds, uid))
        self._maybe_fail("delete_pod", name)
        return self.pod_answers.get(name, {"kind": "Status", "status": "Success"})

    def emit_event(self, involved: dict[str, Any], name: str, type_: str, reason: str, message: str,
                   deferrable: bool = False) -> bool:
        self.calls.append(("emit_event", reason, name))
        self._maybe_fail("emit_event", name)
        if name in self.events:
            return False
        self.events[name] = {"reason": reason, "message": message, "type": type_, "involved": involved}
        return True

    def delete_execution(self, namespace: str, name: str, uid: str) -> bool:
        self.calls.append(("delete_execution", name, uid))
        self._maybe_fail("delete_execution", name)
        obj = self.objects.get((namespace, name))
        if obj is None or (uid and obj["metadata"].get("uid") != uid):
            return False
        del self.objects[(namespace, name)]
        return True

    # --- Schedules, kept apart from Executions -------------------------------------------------

    def put_schedule(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self.schedules[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
        return copy.deepcopy(obj)

    def get_schedule(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get_schedule", name))
        obj = self.schedules.get((namespace, name))
        return copy.deepcopy(obj) if obj else None

    def patch_schedule(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self.calls.append(("patch_schedule", name))
        self.put_schedule(merge_patch(self.schedules[(namespace, name)], patch))

    def patch_schedule_status(self, namespace: str, name: str, status: dict[str, Any],
                              resource_version: str | None) -> dict[str, Any]:
        self.calls.append(("patch_schedule_status", name, resource_version))
        self._maybe_fail("patch_schedule_status", name)
        obj = copy.deepcopy(self.schedules[(namespace, name)])
        if resource_version and obj["metadata"]["resourceVersion"] != resource_version:
            raise ApiFailure(name, Failure.CONFLICT, "the object has been modified")
        merge_status(obj, status)
        return self.put_schedule(obj)

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]
