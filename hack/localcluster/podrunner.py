"""One pod on the process node: start its containers, watch them, stop them as kubelet does."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from localcluster import podspec, procs
from localcluster.layout import REPO
from localcluster.nodeapi import NodeApi, now_iso

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
BACKOFF_BASE, BACKOFF_MAX = 10.0, 300.0  # kubelet's crash-loop back-off
TOKEN_REFRESH_FRACTION = 0.8  # kubelet renews projected tokens at 80% of their lifetime


@dataclass
class Container:
    spec: dict
    proc: subprocess.Popen | None = None
    host_pid: int = 0
    started_at: str | None = None
    restart_count: int = 0
    terminated: dict | None = None
    last_terminated: dict | None = None
    restart_at: float = 0.0
    term_sent: bool = False
    # Byte offset in the (append-only) log file where each run began: the log server's runs.
    log_starts: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def running(self) -> bool:
        return self.proc is not None and self.terminated is None


@dataclass
class PodRunner:
    pod: dict
    workdir: Path
    node_env: dict[str, str]
    api: NodeApi
    containers: list[Container] = field(default_factory=list)
    started: bool = False
    waiting_reason: str = "ContainerCreating"
    waiting_message: str = ""
    kill_at: float | None = None
    token_refresh_at: float = float("inf")
    reported: str = ""
    removed: bool = False

    def __post_init__(self) -> None:
        self.containers = [Container(c) for c in self.pod["spec"]["containers"]]

    @property
    def key(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    @property
    def terminating(self) -> bool:
        return bool(self.pod["metadata"].get("deletionTimestamp"))

    # --- the loop calls sync() on every tick and after every watch event ------------------------

    def sync(self) -> None:
        self._reap()
        if self.terminating:
            self._stop_gracefully()
        elif not self.started:
            self._try_start()
        else:
            self._restart_due()
            self._refresh_tokens_if_due()
        self._report()

    def kill_now(self) -> None:
        """The pod object is gone (force deletion): nothing may keep running."""
        for c in self.containers:
            if c.running:
                _signal(c.host_pid, signal.SIGKILL)
        for c in self.containers:
            if c.proc is not None:
                c.proc.wait()
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- starting -------------------------------------------------------------------------------

    def _try_start(self) -> None:
        try:
            self._write_volumes()
            for c in self.containers:
                self._start(c)
        except podspec.NotReady as err:
            self.waiting_message = str(err)  # kubelet waits for missing ConfigMaps and Secrets too
            return
        except ValueError as err:
            self.waiting_reason, self.waiting_message = "CreateContainerConfigError", str(err)
            return
        self.started = True

    def _volume_dir(self, name: str) -> Path:
        return self.workdir / "volumes" / name

    def _write_volumes(self) -> None:
        lifetimes: list[int] = []

        def request_token(sat: dict) -> str:
            lifetimes.append(sat.get("expirationSeconds", 3600))
            return self.api.request_token(self.pod, sat)

        for volume in self.pod["spec"].get("volumes") or []:
            if "emptyDir" in volume:
                self._volume_dir(volume["name"]).mkdir(parents=True, exist_ok=True)
            elif "hostPath" not in volume:
                podspec.write_volume(self.pod, volume, self._volume_dir(volume["name"]), self.api.read_object,
                                     request_token)
        refresh_in = min(lifetimes, default=float("inf")) * TOKEN_REFRESH_FRACTION
        self.token_refresh_at = time.monotonic() + refresh_in

    def _refresh_tokens_if_due(self) -> None:
        if time.monotonic() >= self.token_refresh_at:
            try:
                self._write_volumes()
            except podspec.NotReady:
                self.token_refresh_at = time.monotonic() + 5

    def _mounts(self, container: dict) -> list[dict]:
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes") or []}
        mounts = []
        for vm in container.get("volumeMounts") or []:
            volume = volumes[vm["name"]]
            source = volume["hostPath"]["path"] if "hostPath" in volume else str(self._volume_dir(vm["name"]))
            if vm.get("subPath"):
                source = str(Path(source) / vm["subPath"])
            mounts.append({"source": source, "target": vm["mountPath"], "readOnly": vm.get("readOnly", False)})
        return mounts

    def _start(self, c: Container) -> None:
        spec = c.spec
        env = podspec.container_env(self.pod, spec, self.api.read_object, self.node_env)
        argv = podspec.command_line(spec, env)
        sc = {**(self.pod["spec"].get("securityContext") or {}), **(spec.get("securityContext") or {})}
        if sc.get("runAsNonRoot") and not sc.get("runAsUser"):
            raise ValueError("runAsNonRoot is set but runAsUser is not: the process node has no image user")
        cdir = self.workdir / "containers" / c.name
        cdir.mkdir(parents=True, exist_ok=True)
        termination_log = cdir / "termination-log"
        termination_log.write_text("")
        uid = sc.get("runAsUser")
        if uid is not None:
            os.chown(termination_log, uid, sc.get("runAsGroup", uid))
        mounts = self._mounts(spec) + [{"source": str(termination_log),
                                        "target": spec.get("terminationMessagePath", "/dev/termination-log")}]
        log_path = self.api.log_path(self.pod, c.name)
        log_start = log_path.stat().st_size if log_path.exists() else 0
        payload = {"argv": argv, "env": env, "mounts": mounts, "hostname": self.pod["metadata"]["name"][:63],
                   "log": str(log_path), "uid": uid, "gid": sc.get("runAsGroup", uid),
                   "workingDir": spec.get("workingDir"), "expose": str(REPO)}
        spec_file = cdir / "spec.json"
        spec_file.write_text(json.dumps(payload))
        # The new run is live from here on: a log reader follows it, never mistakes it for the last one.
        c.terminated = None
        c.log_starts.append(log_start)
        c.proc = subprocess.Popen([sys.executable, "-m", "localcluster.pid1", str(spec_file)],
                                  stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, preexec_fn=procs.die_with_parent,
                                  cwd=self.workdir)
        said = c.proc.stdout.readline().strip()
        c.host_pid = int(said) if said.isdigit() else 0  # 0: it died first; _reap records how
        c.started_at, c.terminated, c.term_sent = now_iso(), None, False

    # --- watching -------------------------------------------------------------------------------

    def _reap(self) -> None:
        for c in self.containers:
            if c.proc is None or c.terminated is not None:
                continue
            code = c.proc.poll()
            if code is None:
                continue
            c.terminated = self._terminated_state(c, code)
            if self._should_restart(code) and not self.terminating:
                delay = min(BACKOFF_BASE * 2 ** c.restart_count, BACKOFF_MAX)
                c.restart_at = time.monotonic() + delay

    def _terminated_state(self, c: Container, code: int) -> dict:
        message = (self.workdir / "containers" / c.name / "termination-log").read_text()[-4096:]
        if not message and code != 0 and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            log = self.api.log_path(self.pod, c.name)
            message = log.read_text(errors="replace")[-2048:] if log.exists() else ""
        state = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                 "startedAt": c.started_at, "finishedAt": now_iso(), "containerID": f"process://{c.host_pid}"}
        if code >= 128 and code - 128 in (signal.SIGKILL, signal.SIGTERM):
            state["signal"] = code - 128
        if message:
            state["message"] = message
        return state

    def _should_restart(self, code: int) -> bool:
        policy = self.pod["spec"].get("restartPolicy", "Always")
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    def _restart_due(self) -> None:
        for c in self.containers:
            if c.terminated and c.restart_at and time.monotonic() >= c.restart_at:
                c.last_terminated, c.restart_at = c.terminated, 0.0
                c.restart_count += 1
                try:
                    self._start(c)
                except (podspec.NotReady, ValueError) as err:
                    c.restart_at = time.monotonic() + BACKOFF_BASE
                    self.waiting_message = str(err)

    # --- graceful deletion ----------------------------------------------------------------------

    def _stop_gracefully(self) -> None:
        if self.kill_at is None:
            grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30) if grace is None else grace
            self.kill_at = time.monotonic() + grace
        for c in self.containers:
            c.restart_at = 0.0
            if c.running and not c.term_sent:
                _signal(c.host_pid, signal.SIGTERM)
                c.term_sent = True
        if time.monotonic() >= self.kill_at:
            for c in self.containers:
                if c.running:
                    _signal(c.host_pid, signal.SIGKILL)
        if any(c.running for c in self.containers):
            return
        self._report()
        self.api.delete_pod(self.pod)  # grace 0 with a UID precondition, as kubelet does
        self.removed = True
        self.cleanup()

    # --- status ---------------------------------------------------------------------------------

    def _report(self) -> None:
        status = self.status()
        digest = json.dumps(status, sort_keys=True)
        if digest != self.reported and not self.removed:
            self.api.patch_status(self.pod, status)
            self.reported = digest

    def phase(self) -> str:
        if not self.started:
            return "Pending"
        # A container waiting for its restart is not done: kubelet keeps the pod Running.
        done = [c for c in self.containers if c.terminated is not None and not c.restart_at]
        if len(done) < len(self.containers):
            return "Running"
        return "Succeeded" if all(c.terminated["exitCode"] == 0 for c in done) else "Failed"

    def status(self) -> dict:
        phase = self.phase()
        ready = phase == "Running" and all(c.running for c in self.containers)
        when = now_iso()
        cond = lambda t, ok: {"type": t, "status": "True" if ok else "False"}  # noqa: E731
        return {
            "phase": phase,
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.pod.get("status", {}).get("startTime") or when,
            "conditions": [cond("PodReadyToStartContainers", self.started), cond("Initialized", True),
                           cond("ContainersReady", ready), cond("Ready", ready)],
            "containerStatuses": [self._container_status(c) for c in self.containers],
        }

    def _container_status(self, c: Container) -> dict:
        if c.terminated is not None and not c.restart_at:
            state = {"terminated": c.terminated}
        elif c.restart_at:
            state = {"waiting": {"reason": "CrashLoopBackOff",
                                 "message": f"back-off restarting failed container {c.name}"}}
        elif c.running:
            state = {"running": {"startedAt": c.started_at}}
        else:
            state = {"waiting": {"reason": self.waiting_reason, **({"message": self.waiting_message}
                                                                  if self.waiting_message else {})}}
        status = {"name": c.name, "image": c.spec.get("image", ""), "imageID": "", "ready": c.running,
                  "started": c.running, "restartCount": c.restart_count, "state": state,
                  "lastState": {}}
        previous = c.terminated if c.restart_at else c.last_terminated
        if previous:
            status["lastState"] = {"terminated": previous}
        if c.host_pid:
            status["containerID"] = f"process://{c.host_pid}"
        return status


def _signal(pid: int, sig: int) -> None:
    """A container's own process only: pid 0 (a pid1 shim that died before it said its pid) would be os.kill's
    "every process of my group", the whole local cluster with this node."""
    if pid <= 0:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
