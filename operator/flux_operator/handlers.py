"""kopf handlers: thin on purpose. Each one stores what the watch delivered and names the keys to
reconcile; the workers (controller.py) do the rest. No handler calls the API."""

from __future__ import annotations

import logging
from typing import Any

import kopf
from flux_api import EXECUTION_LABEL, GROUP, PLURAL, VERSION
from flux_api.names import LIMIT_PLURAL, SCHEDULE_PLURAL

from flux_operator.kubeconfig import ClientConfig
from flux_operator.execution.queueing import SLOT_FREED
from flux_operator.queues import USAGE_SETTLES_SECONDS
from flux_operator.schedule_shell import schedule_of
from flux_operator.watches import INACTIVITY_SECONDS

LIST_CHUNK = 10

log = logging.getLogger("flux_operator")


@kopf.on.login()
async def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf's credentials from the config KubeApi uses (main.py), so both reach one server as one identity.
    kopf calls this again after a 401: the token file is re-read then, since projected tokens rotate."""
    cfg: ClientConfig = memo.runtime.api.config
    return kopf.ConnectionInfo(
        server=cfg.server, insecure=cfg.insecure or None, token=cfg.bearer_token(fresh=True),
        # kopf takes a path or data, not both; inline data wins, as in kubectl.
        ca_data=cfg.ca_data, ca_path=None if cfg.ca_data else cfg.ca_file,
        certificate_data=cfg.cert_data, certificate_path=None if cfg.cert_data else cfg.cert_file,
        private_key_data=cfg.key_data, private_key_path=None if cfg.key_data else cfg.key_file,
        default_namespace=cfg.namespace,
    )


class NoEssence(kopf.DiffBaseStorage):
    """kopf deep-copies every object on every event to find what changed, for change handlers; the operator
    has none (the World compares what decisions read), so checkpoint traffic is not copied for nothing."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.WARNING  # our Events are deliberate; handler chatter stays in logs
    settings.persistence.diffbase_storage = NoEssence()
    # Every request has a timeout; a watch that hears nothing is restarted, which also re-lists.
    settings.networking.connect_timeout = 5
    settings.networking.request_timeout = 60
    settings.watching.server_timeout = 240
    settings.watching.client_timeout = 270
    settings.watching.connect_timeout = 5
    settings.watching.inactivity_timeout = INACTIVITY_SECONDS  # no event, no bookmark: reconnect (watches.py)
    # kopf retries a failed request (a 403 included) for 54 s before its watcher fails; watches.py restarts a
    # failed watcher, and says so on /healthz, so a shorter round of retries shows a lasting problem sooner.
    settings.networking.error_backoffs = (1, 2, 4, 8)
    # The initial listing in pages: a cold start holds at most this many objects' text at once, not every
    # object of the cluster (each up to the API server's ~1.5 MB limit).
    settings.watching.chunk_size = LIST_CHUNK
    pods_served_only(settings)
    # kopf keeps a worker task (and its queue) per object until it has been idle this long: 5 s by
    # default, so a burst of thousands of objects holds thousands of them. Our handlers only store and
    # enqueue, so a short wait loses nothing.
    settings.batching.idle_timeout = 1.0
    memo.runtime.start()


def pods_served_only(settings: kopf.OperatorSettings) -> None:
    """Runner pods only, chosen by the API server: kopf filters a handler's `labels=` in the client, so every
    other pod of the cluster (any tenant's churn) would reach the operator, to be decoded and dropped."""
    settings.watching.label_selectors["v1", "pods"] = EXECUTION_LABEL


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.stop()


# Index handlers fill the World. kopf runs them for every object before any event handler, and
# starts event handlers only once the first full listing of BOTH kinds is indexed: so no decision
# is ever made from an execution whose pod has not been listed yet (a cold start after failover).
# They return None: the World is the store, kopf keeps no second copy.

@kopf.index(GROUP, VERSION, PLURAL)
async def executions_watched(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.world.execution_seen(dict(body))


@kopf.index("", "v1", "pods", labels={EXECUTION_LABEL: kopf.PRESENT})
async def runner_pods_watched(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.world.pod_seen(dict(body))


@kopf.on.event(GROUP, VERSION, PLURAL)
async def execution_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    world, raw = memo.runtime.world, event["object"]
    keys = world.execution_gone(raw) if event["type"] == "DELETED" else world.execution_changed(raw)
    if keys or event["type"] == "DELETED":  # a checkpoint's progress alone: nothing to decide
        memo.runtime.controller.enqueue(keys)
        memo.runtime.schedule_controller.enqueue([schedule_of(raw)])  # a run started, ended or went away
        phase = (raw.get("status") or {}).get("phase")
        _limits_changed(memo.runtime, (raw.get("metadata") or {}).get("namespace", ""),
                        event["type"] == "DELETED" or phase in SLOT_FREED)


def _limits_changed(runtime: Any, namespace: str, freed: bool) -> None:
    """Where concurrency limits are: their usage may have moved, and when an execution left its slot (finished,
    suspended, waiting, deleted) the next in line is woken. Working out who is next costs a pass over the
    namespace, so only then, on a thread of its own and once a burst (wakes.py); never for a namespace not served
    (the safety pass catches any other way a slot frees)."""
    if not runtime.namespaces.served(namespace):
        return
    limits = runtime.queues.limit_keys(namespace)
    if limits:
        if freed:
            runtime.wakes.ask(namespace)
        runtime.limit_controller.enqueue_after(limits, USAGE_SETTLES_SECONDS)


@kopf.index(GROUP, VERSION, LIMIT_PLURAL)
async def limits_watched(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.limits.seen(dict(body))


@kopf.on.event(GROUP, VERSION, LIMIT_PLURAL)
async def limit_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    runtime, raw = memo.runtime, event["object"]
    if event["type"] == "DELETED":
        key, changed = runtime.limits.gone(raw), True
    else:
        key, changed = runtime.limits.changed(raw)
    runtime.limit_controller.enqueue([key])
    if changed and runtime.namespaces.served(key[0]):  # not for the usage the operator writes: no verdict moves
        # Its executions get a look: a raised max starts some, a lowered one changes what the queued ones say.
        runtime.controller.enqueue(runtime.world.keys_in(key[0]))


@kopf.on.event(GROUP, VERSION, SCHEDULE_PLURAL)
async def schedule_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    store, raw = memo.runtime.schedules, event["object"]
    key, news = (store.gone(raw), True) if event["type"] == "DELETED" else store.changed(raw)
    if news:  # not the echo of the operator's own status write
        memo.runtime.schedule_controller.enqueue([key])


# --- label mode only (main.py registers these when no --namespace is given) --------------------------

def watch_namespaces() -> None:
    """The namespace watch that tells the operator which namespaces opted in (workflows.flux.dev/enabled).
    An index too, so no decision is made before the first listing of namespaces is in: an Execution is
    never told its namespace is not enabled merely because the namespace was listed after it."""
    if not _registered:
        kopf.index("", "v1", "namespaces")(namespaces_watched)
        kopf.on.event("", "v1", "namespaces")(namespace_event)
        _registered.append(True)


_registered: list[bool] = []


async def namespaces_watched(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.runtime.namespaces.seen(dict(body))


async def namespace_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    runtime, raw = memo.runtime, event["object"]
    name = (raw.get("metadata") or {}).get("name", "")
    if event["type"] == "DELETED":
        runtime.namespaces.gone(raw)
    else:
        runtime.namespaces.seen(raw)
    if runtime.namespaces.take_change(name):
        # Switched on or off: every execution and schedule there gets a look (a start, or a notice).
        runtime.controller.enqueue(runtime.world.keys_in(name))
        runtime.schedule_controller.enqueue([k for k in runtime.schedules.keys() if k[0] == name])


@kopf.on.event("", "v1", "pods", labels={EXECUTION_LABEL: kopf.PRESENT})
async def runner_pod_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    world, raw = memo.runtime.world, event["object"]
    key = world.pod_gone(raw) if event["type"] == "DELETED" else world.pod_seen(raw)
    memo.runtime.controller.enqueue([key])
    if key is not None:  # a Cancelling or Suspending execution leaves its slot with its runner, not its write
        ended = event["type"] == "DELETED" or (raw.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        _limits_changed(memo.runtime, key[0], ended)
