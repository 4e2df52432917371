"""What the operator's unit tests build again and again: a hand-moved clock, predictable tokens, an in-memory API
and World with a reconciler over them, the actions of one kind in a decision, and kopf's runtime for handlers.

Not a test module: the tests import it (`from tests.operator.builders import ...`); a module that wants the
fixtures imports them by name, as tests/cluster does for its own (`# noqa: F401 (fixtures)`)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from aiohttp import web
from flux_api import Execution
from flux_api.timefmt import utcnow
from flux_operator.namespaces import Namespaces
from flux_operator.queues import LimitStore, Queues
from flux_operator.builders import RunnerSettings
from flux_operator.execution.machine import PatchStatus
from flux_operator.metrics import Metrics
from flux_operator.ownership import Memory
from flux_operator.reconcile import Reconciler
from flux_operator.schedule_shell import ScheduleStore
from flux_operator.wakes import Wakes
from flux_operator.world import World
from flux_operator.testing import FakeKubeApi
from kopf._cogs.clients import auth
from kopf._cogs.structs import credentials

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=timezone.utc)
KEY = ("ns", "job")


class Clock:
    """A clock moved by hand: a datetime for the reconcilers, seconds for the queues and caches."""

    def __init__(self, now: Any = NOW) -> None:
        self.now = now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds) if isinstance(self.now, datetime) else seconds

    def __call__(self) -> Any:
        return self.now


def tokens() -> Memory:
    """A Memory whose creation tokens are predictable: t1, t2, ..."""
    count = iter(range(1, 1_000_000))
    return Memory(new_token=lambda: f"t{next(count)}")


# --- objects as the API server holds them --------------------------------------------------------------------

def execution(name="job", phase=None, cancel=None, deadline=None, started=None, uid=None, labels=None,
              owner_uid=None, checkpoint=None) -> dict:
    """An Execution as the API server holds it (`owner_uid`: a child's controller)."""
    spec = {"workflow": "pkg.mod:main", "input": {"big": "x" * 100}, "gracePeriodSeconds": 30}
    if cancel:
        spec["cancel"] = {"reason": cancel, "cascade": True, "force": False}
    if deadline:
        spec["activeDeadlineSeconds"] = deadline
    status = {}
    if phase:
        status.update(phase=phase, podName=f"{name}-runner", observedGeneration=1)
    if started:
        status["startedAt"] = started
    if checkpoint:
        status["checkpoint"] = checkpoint
    meta = {"name": name, "namespace": "ns", "uid": uid or f"uid-{name}", "generation": 1,
            "creationTimestamp": "2026-11-21T11:58:00Z", "labels": labels or {}}
    if owner_uid:
        meta["ownerReferences"] = [{"uid": owner_uid, "controller": True, "kind": "Execution", "name": "p"}]
    return {"apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Execution", "metadata": meta, "spec": spec,
            "status": status}


def pod(name="job", uid="pod-uid", owner="uid-job", terminating=False, running=True, phase=None) -> dict:
    """The runner pod of execution `name`, its container running unless `running` is False (`phase`: the pod's
    phase, when not Running or Pending by `running`)."""
    meta = {"name": f"{name}-runner", "namespace": "ns", "uid": uid,
            "labels": {"workflows.flux.dev/execution": name},
            "ownerReferences": [{"uid": owner, "controller": True, "kind": "Execution", "name": name}]}
    if terminating:
        meta["deletionTimestamp"] = "2026-11-21T12:00:00Z"
    statuses = [{"name": "runner", "state": {"running": {}}, "restartCount": 0}] if running else []
    return {"metadata": meta, "status": {"phase": phase or ("Running" if running else "Pending"),
                                         "containerStatuses": statuses}}




# --- an in-memory API and World, and a reconciler over them ------------------------------------------------

@pytest.fixture
def api() -> FakeKubeApi:
    return FakeKubeApi()


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def reconciler(world, api) -> Reconciler:
    return Reconciler(world, api, RunnerSettings(), Metrics(), clock=lambda: NOW)


def seed(api: FakeKubeApi, world: World, obj: dict) -> dict:
    """Store `obj` in the API and let the World see it, as the watch would."""
    stored = api.put(obj)
    world.execution_seen(stored)
    return stored


# --- decisions ------------------------------------------------------------------------------------------------

def of(actions, kind) -> list:
    """The actions of one kind: from a list of actions, or from a Schedule's Decision."""
    return [a for a in getattr(actions, "actions", actions) if isinstance(a, kind)]


def status_patch(actions, kind: type = PatchStatus) -> dict:
    """The one status patch a decision asks for ({} when none)."""
    patches = of(actions, kind)
    assert len(patches) <= 1
    return patches[0].patch if patches else {}


def apply(ex: Execution, actions) -> Execution:
    """What the API server would hold after the operator's status patch (merge semantics)."""
    merged = {**ex.status.model_dump(exclude_none=True, mode="json"), **status_patch(actions)}
    return Execution.model_validate({**ex.model_dump(mode="json"), "status": merged})


# --- kopf's side ----------------------------------------------------------------------------------------------

class Recorder:
    """Stands in for a controller: records the keys it is asked to enqueue."""

    def __init__(self) -> None:
        self.keys: list = []
        self.later: list = []  # (key, delay)

    def enqueue(self, keys) -> None:
        self.keys.extend(k for k in keys if k is not None)

    def enqueue_after(self, keys, delay: float) -> None:
        self.later.extend((k, delay) for k in keys if k is not None)


def memo(**more: Any) -> kopf.Memo:
    """kopf's memo as the operator fills it, with recorders for controllers (plus `more` on the runtime)."""
    world, limits, controller = World(), LimitStore(), Recorder()
    queues = Queues(world, limits)
    parts = {"namespaces": Namespaces(["ns"]), "wakes": Wakes(queues.to_wake, controller.enqueue, utcnow), **more}
    return kopf.Memo(runtime=SimpleNamespace(world=world, controller=controller, schedules=ScheduleStore(),
                                             schedule_controller=Recorder(), limits=limits,
                                             queues=queues, limit_controller=Recorder(), **parts))


def deliver(handler, kind: str | None, obj: dict, memo: kopf.Memo) -> None:
    """What kopf does with a watch event of this `kind` ("ADDED", "MODIFIED", "DELETED"; None: a listing)."""
    asyncio.run(handler(event={"type": kind, "object": obj}, memo=memo))


async def serve(executions, host: str = "127.0.0.1") -> tuple[web.AppRunner, str]:
    """An API server whose only route is the Executions of namespace ns, answered by `executions`; the caller
    cleans the runner up."""
    app = web.Application()
    app.router.add_get("/apis/workflows.flux.dev/v1alpha1/namespaces/ns/executions", executions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    return runner, f"http://{host}:{site._server.sockets[0].getsockname()[1]}"


async def use_server(server: str) -> credentials.Vault:
    """Point kopf's API client at `server` (no credentials); the caller closes the vault."""
    vault = credentials.Vault()
    await vault.populate({"test": credentials.ConnectionInfo(server=server)})
    auth.vault_var.set(vault)
    return vault
