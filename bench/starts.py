"""Start throughput against Jobs (issue 19, item 5), on the node the run uses.

Each round creates `--starts-n` (50) executions at once and times create -> all Running (a watch on their
phase); then, once they and their pods are gone, the same number of Jobs, each one pod running the
comparable program and asking for a runner pod's resources, create -> all pods Running. `--starts-rounds`
(10) rounds, interleaved: the sides' order rotates by one each round (`side_order`), so none always meets a
cluster just cleaned up or always runs in the middle. One operator for the whole part. A runner pod asks for
50m of CPU: a 2-core real node fits 40 (`--starts-n 40`).
Each round also records, per side, create -> the last pod made and -> the last pod Running (`*_stages_s`):
where a gap lies, in the making of pods or on the node. `--starts-jobs-token` adds Jobs whose pods mount a
ServiceAccount token, as a Job's do by default and a runner's must; `--starts-jobs-hardened` adds Jobs whose pod
is the operator's own runner pod (its token, seccomp profile, read-only root, dropped capabilities, `/tmp`
emptyDir and downward-API env) running the comparable program: what the node pays for the runner pod's shape.
`--starts-jobs-without token,seccomp,...` adds, per setting named, Jobs whose pod is that hardened pod without
it: what each setting costs apart.
`--starts-cpu` records, per round and side, the CPU each kind of process used from create to all Running;
`--starts-requests` the requests the API server served meanwhile, by verb and resource.

    .venv/bin/python -m bench.run --parts starts
    FLUX_NODE=real FLUX_BENCH_DIR=.cluster-bench-real .venv/bin/python -m bench.run --parts starts
    .venv/bin/python -m bench.run --parts starts --starts-kwok --starts-n 1000 --starts-rounds 3

With `--starts-kwok` (a process-node cluster) every pod lands on the KWOK node, which reports it Running
without a process: what is left is the operator's and the Job controller's own work.
"""

from __future__ import annotations

import contextlib
import time

from flux_api import API_VERSION, KIND, Execution
from flux_api.names import EXECUTION_LABEL
from flux_operator.builders import RunnerSettings, runner_pod
from kubernetes import client
from localcluster.layout import Layout
from localcluster.nodes import choice, kwok

from bench.benchkit import bench_namespace, create_executions, execution, kubectl, log, parallel, percentile, \
    running_operator
from bench.books import PhaseBook, PodBook
from bench.cancel_latency import python_container
from bench.cascade import requests_served
from bench.cpuwindow import recorded
from bench.process_parts import (COMPARABLE_PROGRAM, LONGRUN, ONE_LONG_STEP, _delete_all_executions, _job,
                                 _wait_no_pods)


def _stages(pods: PodBook, t0: float) -> tuple[float, float]:
    """create -> the last pod seen (made by the operator or the Job controller), -> the last pod Running."""
    return max(pods.seen_at.values()) - t0, max(pods.running_at.values()) - t0


@contextlib.contextmanager
def counted(layout: Layout, windows: list | None):
    """Appends to `windows` (when given) the requests the API server served meanwhile, by verb and resource (every
    client: the bench's creates, the operator, the runners, the kubelet, the controllers). The two reads of its
    /metrics fall outside a CPU window recorded inside this one."""
    if windows is None:
        yield
        return
    before = requests_served(layout)
    yield
    windows.append(dict(sorted((requests_served(layout) - before).items())))


def _executions(layout: Layout, api: client.ApiClient, book: PhaseBook, ns: str, n: int, grace: int, r: int,
                stages: list, cpu: list | None, requests: list | None) -> float:
    custom, names = client.CustomObjectsApi(api), [f"start-{r}-{i:03d}" for i in range(n)]
    pods = PodBook(api, ns, EXECUTION_LABEL)
    try:
        with counted(layout, requests), recorded(cpu):
            t0 = time.monotonic()
            create_executions(custom, ns, [execution(x, LONGRUN, ONE_LONG_STEP, grace) for x in names])
            took = book.wait_count(["Running"], n, 900, f"{n} executions Running", names=names) - t0
        pods.wait(lambda b: b.running() >= n, 60, f"{n} runner pods Running")  # seen before the phase, or just after
        stages.append(_stages(pods, t0))
        return took
    finally:
        pods.stop()


# The Jobs' sides: what their pods carry beside the comparable program.
JOB_STYLES = {"jobs": "bare", "jobs_token": "token", "jobs_hardened": "hardened"}
# The runner pod's settings that `--starts-jobs-without` can leave out of the hardened pod, one per side.
SHAPE_SETTINGS = ("token", "seccomp", "rootfs", "tmp", "caps")


def _comparable_job(layout: Layout, name: str, grace: int, label: str, style: str) -> dict:
    """A Job whose one pod asks the node for what a runner pod asks (the operator's default resources), so
    the node fits as many of them as of runner pods. Its pod mounts no token ("bare"); the default
    ServiceAccount's token as a Job's does unless told otherwise ("token": the kubelet asks the API server for one
    per pod); or is the runner pod the operator makes, with the comparable program in it ("hardened")."""
    job = _job(name, grace, COMPARABLE_PROGRAM, {"bench": label}, choice.of(layout))
    template = job["spec"]["template"]
    if style == "hardened" or style.startswith("without-"):
        template["spec"] = _hardened_pod_spec(layout, grace)
        if style != "hardened":
            _leave_out(template["spec"], style.removeprefix("without-"))
        return job
    template["spec"]["containers"][0]["resources"] = RunnerSettings().default_resources()
    template["spec"]["automountServiceAccountToken"] = style == "token"
    return job


def _hardened_pod_spec(layout: Layout, grace: int) -> dict:
    """The operator's runner pod for a stand-in execution, with the comparable program for the runner and the
    namespace's default ServiceAccount for the runner's own (a Job's pod has no execution to name)."""
    stand_in = Execution.model_validate({
        "apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "stand-in", "namespace": "bench", "uid": "0"},
        "spec": {"workflow": LONGRUN, "gracePeriodSeconds": grace}})
    spec = runner_pod(stand_in, RunnerSettings())["spec"]
    del spec["serviceAccountName"]
    spec["restartPolicy"] = "Never"
    container = spec["containers"][0]
    comparable = python_container(choice.of(layout), COMPARABLE_PROGRAM)
    container["command"], container["image"] = comparable["command"], comparable["image"]
    if "imagePullPolicy" in comparable:
        container["imagePullPolicy"] = comparable["imagePullPolicy"]
    return spec


def _leave_out(spec: dict, setting: str) -> None:
    """The hardened pod without one of its settings: what that one setting costs the node."""
    container = spec["containers"][0]
    if setting == "token":
        spec["automountServiceAccountToken"] = False
    elif setting == "seccomp":
        del spec["securityContext"]["seccompProfile"]
    elif setting == "rootfs":
        container["securityContext"]["readOnlyRootFilesystem"] = False
    elif setting == "tmp":
        spec["volumes"] = [v for v in spec["volumes"] if v["name"] != "tmp"]
        container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "tmp"]
    elif setting == "caps":
        for field in ("capabilities", "allowPrivilegeEscalation"):
            del container["securityContext"][field]
    else:
        raise ValueError(f"not a runner pod setting: {setting!r} (one of {', '.join(SHAPE_SETTINGS)})")


def side_order(kinds: list[str], r: int) -> list[str]:
    """Round r's order: the sides rotated by one a round, so over len(kinds) rounds each side takes each place
    once and none always follows the same one or always meets a cluster just cleaned up."""
    shift = (r - 1) % len(kinds)
    return kinds[shift:] + kinds[:shift]


def _jobs(layout: Layout, api: client.ApiClient, ns: str, n: int, grace: int, r: int, stages: list,
          kind: str, cpu: list | None, requests: list | None) -> float:
    batch, label = client.BatchV1Api(api), f"{kind.replace('_', '-')}-{r}"
    pods = PodBook(api, ns, f"bench={label}")
    try:
        with counted(layout, requests), recorded(cpu):
            t0 = time.monotonic()
            parallel(lambda i: batch.create_namespaced_job(
                ns, _comparable_job(layout, f"{label}-{i:03d}", grace, label, _style(kind))), range(n))
            took = pods.wait(lambda b: b.running() >= n, 900, f"{n} job pods Running") - t0
        stages.append(_stages(pods, t0))
        return took
    finally:
        pods.stop()


def _style(kind: str) -> str:
    return JOB_STYLES.get(kind) or kind.replace("jobs_without_", "without-")


def run_starts(layout: Layout, api: client.ApiClient, args) -> dict:
    core = client.CoreV1Api(api)
    n, grace = args.starts_n, args.grace
    source = "KWOK node" if args.starts_kwok else f"{choice.of(layout).kind} node"
    kinds = ["executions", "jobs", *(["jobs_token"] if args.starts_jobs_token else []),
             *(["jobs_hardened"] if args.starts_jobs_hardened else []),
             *(f"jobs_without_{setting}" for setting in args.starts_jobs_without)]
    # Per side: each round's time, and where it went (create -> last pod made, create -> last pod Running).
    # With --starts-cpu, also each window's CPU seconds by kind of process (cpuwindow.py).
    what = ("_s", "_stages_s", *(["_cpu"] if args.starts_cpu else []), *(["_requests"] if args.starts_requests else []))
    out: dict = {"source": source, "n": n, **{f"{kind}{w}": [] for kind in kinds for w in what}}
    with kwok.beside(layout, api) if args.starts_kwok else contextlib.nullcontext(), \
            bench_namespace(core, "starts") as ns, running_operator(layout, [ns], f"starts-{ns}") as op:
        log(f"starts: namespace {ns}, operator log {op.log_path}")
        book = PhaseBook(api, ns)
        try:
            for r in range(1, args.starts_rounds + 1):
                for kind in side_order(kinds, r):
                    times, stages = out[f"{kind}_s"], out[f"{kind}_stages_s"]
                    cpu, requests = out.get(f"{kind}_cpu"), out.get(f"{kind}_requests")
                    if kind == "executions":
                        times.append(_executions(layout, api, book, ns, n, grace, r, stages, cpu, requests))
                        _delete_all_executions(layout, ns, book)
                    else:
                        times.append(_jobs(layout, api, ns, n, grace, r, stages, kind, cpu, requests))
                        kubectl(layout, "delete", "jobs", "--all", "-n", ns, "--wait=false", "--cascade=background")
                    _wait_no_pods(core, ns, grace + 300)
                (ex_made, ex_pods), (job_made, _) = out["executions_stages_s"][-1], out["jobs_stages_s"][-1]
                log(f"  [{r}/{args.starts_rounds}] {n} executions all Running {out['executions_s'][-1]:.2f}s "
                    f"(pods made {ex_made:.2f}s, Running {ex_pods:.2f}s), {n} Jobs' pods all Running "
                    f"{out['jobs_s'][-1]:.2f}s (made {job_made:.2f}s)"
                    + "".join(f", {kind} {out[f'{kind}_s'][-1]:.2f}s" for kind in kinds[2:]))
        finally:
            book.stop()
    for kind in kinds:
        out[f"{kind}_p50"], out[f"{kind}_p95"] = percentile(out[f"{kind}_s"], 50), percentile(out[f"{kind}_s"], 95)
    return out
