"""Helpers for the fault tests (tests/faults): operators confined to one namespace with a Lease of their
own, their health and metrics, a watch that records every phase an Execution went through, and step
runs counted from the runner logs, read through the API (fluxtest.podlogs.RunnerLogs)."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

from flux_api import GROUP, PLURAL, VERSION, progress
from kubernetes import client, watch
from localcluster.layout import Layout

from fluxtest.identity import OPERATOR_NAMESPACE, account_kubeconfig, bind_account
from fluxtest.operators import OperatorProcess
from fluxtest.podlogs import RunnerLogs
from localcluster.probes import wait_for

LEASE_SECONDS = 5  # what OperatorProcess passes as --lease-seconds


health = OperatorProcess.health  # (HTTP status, JSON) of a replica's /healthz; (0, {}) if it does not answer


def metric(op: OperatorProcess, name: str, labels: str = "") -> float:
    """One sample of the operator's /metrics (0 if absent); `labels` as printed, e.g. 'phase="Running"'."""
    return op.samples().get(f"{name}{{{labels}}}" if labels else name, 0.0)


def log_tail(op: OperatorProcess, chars: int = 3000) -> str:
    return op.log_path.read_text(errors="replace")[-chars:] if op.log_path.exists() else "(no log)"


class Operators:
    """Operators that watch only `namespace` (and `also`) and elect among themselves with a Lease of their
    own (in the release namespace, where the chart's RBAC allows Leases), so nothing of another test (or
    another operator on the cluster) is touched. Give them `operator_env`: the chart's identity."""

    def __init__(self, env: dict[str, str], layout: Layout, namespace: str, also: tuple[str, ...] = ()) -> None:
        self.env, self.layout, self.namespace, self.also = env, layout, namespace, also
        self.lease = f"faults-{uuid.uuid4().hex[:8]}"
        self.started: list[OperatorProcess] = []

    @property
    def args(self) -> list[str]:
        watched = [arg for ns in (self.namespace, *self.also) for arg in ("--namespace", ns)]
        return [*watched, "--leader-election-namespace", OPERATOR_NAMESPACE, "--leader-election-id", self.lease]

    def start(self, env: dict[str, str] | None = None, lead: bool = True, *extra: str) -> OperatorProcess:
        op = OperatorProcess(env or self.env, self.layout.logs)
        op.log_path = self.layout.logs / f"{self.lease}-{len(self.started)}.log"
        self.started.append(op)
        op.start(*self.args, *extra)
        if lead:
            wait_for(lambda: health(op)[1].get("leader"), timeout=60,
                     what=f"operator {op.log_path.name} to lead")
        return op

    def leader(self) -> OperatorProcess | None:
        for op in self.started:
            if op.proc and op.proc.poll() is None and health(op)[1].get("leader"):
                return op
        return None

    def stop_all(self) -> None:
        for op in self.started:
            op.stop(kill=True)


class PhaseWatch:
    """Records, per Execution of a namespace, every phase a watch event showed, in order."""

    def __init__(self, custom: client.CustomObjectsApi, namespace: str) -> None:
        self.custom, self.namespace = custom, namespace
        self.phases: dict[str, list[str]] = defaultdict(list)
        self.terminal_seen: dict[str, set[str]] = defaultdict(set)
        self._stop = threading.Event()
        self._watch = watch.Watch()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"phase-watch-{namespace}")
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        version = None
        while not self._stop.is_set():
            try:
                if version is None:
                    listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
                    for item in listing["items"]:
                        self._record(item)
                    version = listing["metadata"]["resourceVersion"]
                    self._ready.set()
                for event in self._watch.stream(self.custom.list_namespaced_custom_object, GROUP, VERSION,
                                                self.namespace, PLURAL, resource_version=version,
                                                timeout_seconds=60, allow_watch_bookmarks=True):
                    obj = event["object"]
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._record(obj)
                    if self._stop.is_set():
                        return
            except Exception as err:  # noqa: BLE001 - a watch that breaks is re-listed, as an informer does
                if getattr(err, "status", None) == 410:
                    version = None
                time.sleep(0.5)

    def _record(self, obj: dict) -> None:
        name = obj["metadata"]["name"]
        phase = (obj.get("status") or {}).get("phase")
        if phase and (not self.phases[name] or self.phases[name][-1] != phase):
            self.phases[name].append(phase)
        if phase in ("Cancelled", "Succeeded", "Failed"):
            self.terminal_seen[name].add(phase)

    def stop(self) -> None:
        self._stop.set()
        self._watch.stop()


# What flux_examples.counted logs each time a step's work begins (a recorded step is skipped).
_STEP_STARTED = re.compile(r"flux\.workflow: work (\S+) begins")
_RUNNER_START = re.compile(r"flux-runner \S+: execution ")


def counted(name: str, steps: int = 10, seconds: float = 0.5, cleanup: float = 0, **spec) -> dict:
    """An Execution of flux_examples.counted: longrun whose step runs `step_runs` can count, and whose
    cleanup after a cancel takes `cleanup` seconds."""
    from fluxtest.executions import manifest
    return manifest(name, "flux_examples.counted:main",
                    {"steps": steps, "stepSeconds": seconds, "cleanupSeconds": cleanup}, **spec)


def step_runs(logs: RunnerLogs) -> Counter:
    """How many times each step's work started (flux_examples.counted), over every pod and restart, from
    the runner logs read through the API (start the RunnerLogs before the execution)."""
    runs: Counter = Counter()
    for text in logs.texts:
        runs.update(_STEP_STARTED.findall(text))
    return runs


def runner_starts(logs: RunnerLogs) -> int:
    """How many runner processes started for the execution (every pod, every container restart)."""
    return sum(len(_RUNNER_START.findall(text)) for text in logs.texts)


def statuses(fx, names=None) -> dict[str, dict]:
    """Every Execution's status in the namespace (one LIST), or only `names`', each with its newest checkpoint
    (a running one's is in its ExecutionProgress: one LIST more)."""
    items = fx.custom.list_namespaced_custom_object(GROUP, VERSION, fx.ns, PLURAL)["items"]
    made = {i["metadata"]["name"]: i for i in
            fx.custom.list_namespaced_custom_object(GROUP, VERSION, fx.ns, progress.PLURAL)["items"]}
    found = {i["metadata"]["name"]: progress.with_progress(i, made.get(i["metadata"]["name"])).get("status") or {}
             for i in items}
    return found if names is None else {n: found.get(n, {}) for n in names}


def wait_all(fx, names, *phases: str, timeout: float = 120, interval: float = 0.5) -> dict[str, dict]:
    """Waits until every one of `names` is in one of `phases`; returns their statuses."""
    names = list(names)
    left: list[str] = names

    def done():
        nonlocal left
        now = statuses(fx, names)
        left = [n for n in names if now[n].get("phase") not in phases]
        return now if not left else None

    try:
        return wait_for(done, timeout=timeout, interval=interval, what=f"{len(names)} executions to reach {phases}")
    except AssertionError as err:
        now = statuses(fx, left)
        raise AssertionError(f"{err}; {len(left)} did not: " + ", ".join(
            f"{n}={now[n].get('phase')}" for n in left[:20])) from None


def parse_stamp(text: str | None):
    from flux_api.timefmt import parse_time
    return parse_time(text)


def finished_steps(checkpoint: dict | None) -> list[str]:
    """Every finished step a checkpoint records, in order: from the compact ledger (`done`) when there
    is one, else from the step records."""
    checkpoint = checkpoint or {}
    done = checkpoint.get("done")
    if done is not None:
        return [f"{run['prefix']}{n}" for run in done.get("runs") or [] for n in range(run["first"], run["last"] + 1)] \
            + list(done.get("names") or [])
    return [step["name"] for step in checkpoint.get("steps") or []]


def step_results(checkpoint: dict | None) -> dict:
    """Results of finished steps by name: `results` when the checkpoint has it, else the step records'."""
    checkpoint = checkpoint or {}
    found = {step["name"]: step.get("result") for step in checkpoint.get("steps") or [] if "result" in step}
    found.update(checkpoint.get("results") or {})
    return found


# The user extra a token bound to a pod carries (its UID), as an impersonation header (the key lower-case, its `/`
# percent-encoded).
POD_UID_HEADER = "Impersonate-Extra-authentication.kubernetes.io%2fpod-uid"


class RunnerImpersonation(client.ApiClient):
    """Requests as the runner of an execution with its own token: its ServiceAccount, and the UID of the pod the
    operator recorded for it at the time of each request (a token is bound to its pod), or of `pod_uid`."""

    def __init__(self, kubeconfig: Path, namespace: str, execution: str, pod_uid: str | None = None) -> None:
        from localcluster.kube import api_client
        self._admin = api_client(kubeconfig)
        self._where, self._pod_uid = (namespace, execution), pod_uid
        super().__init__(self._admin.configuration)
        self._headers["Impersonate-User"] = f"system:serviceaccount:{namespace}:flux-runner-{execution}"

    @property
    def default_headers(self) -> dict[str, str]:
        headers = dict(self._headers)
        uid = self._pod_uid if self._pod_uid is not None else self.recorded_pod_uid()
        if uid:
            headers[POD_UID_HEADER] = uid
        return headers

    @default_headers.setter
    def default_headers(self, value: dict[str, str]) -> None:
        self._headers = dict(value)

    def set_default_header(self, header_name: str, header_value: str) -> None:
        self._headers[header_name] = header_value

    def recorded_pod_uid(self) -> str:
        namespace, name = self._where
        try:
            ex = client.CustomObjectsApi(self._admin).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                                                   name)
        except client.ApiException:
            return ""
        return (((ex.get("status") or {}).get("runnerObjects") or {}).get("pod") or {}).get("uid") or ""

    def close(self) -> None:
        self._admin.close()
        super().close()


def as_runner(kubeconfig: Path, namespace: str, execution: str, pod_uid: str | None = None) -> client.ApiClient:
    """An API client that acts as the runner of `execution` with its own token (its ServiceAccount, bound to its
    current runner pod, or to `pod_uid`), as `kubectl --as` does, but sends each request as it is: kubectl's
    patch first GETs the object, which a runner may not."""
    return RunnerImpersonation(kubeconfig, namespace, execution, pod_uid)


# What the operator may do in one namespace: the chart's application rules (charts/flux-operator/templates/
# _helpers.tpl) as a Role, with Events and the leader Lease.
OPERATOR_RULES = [
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["get", "list", "watch", "patch", "update", "create",
                                                           "delete"]},
    {"apiGroups": [GROUP], "resources": ["schedules"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [GROUP], "resources": ["concurrencylimits"], "verbs": ["list", "watch"]},
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status", "schedules/status", "concurrencylimits/status"],
     "verbs": ["get", "patch", "update"]},
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/finalizers", "schedules/finalizers"], "verbs": ["update"]},
    {"apiGroups": [GROUP], "resources": ["executionprogresses"], "verbs": ["get", "create"]},
    {"apiGroups": [GROUP], "resources": ["executionprogresses/status"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"]},
    {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list", "watch", "create", "delete",
                                                                     "patch"]},
    {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
     "verbs": ["get", "list", "watch", "create", "delete", "patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
]


def operator_account(api: client.ApiClient, layout: Layout, namespace: str, account: str, path: Path,
                     rules: list[dict] | None = None) -> Path:
    """A ServiceAccount in `namespace` bound to a Role of `rules` (OPERATOR_RULES), and a kubeconfig that
    authenticates as it with a token: an operator whose rights a test can take away."""
    account_kubeconfig(api, layout, namespace, account, path)
    bind_account(api, namespace, account, rules or OPERATOR_RULES)
    return path
