"""What a real node changes on the host, recorded before `up` and put back by `down`.

The kubelet and containerd write sysctls, add iptables chains, mount under their root dirs, create
`/kubepods` cgroups in every hierarchy and a few directories outside the cluster directory, whatever
their configuration says. `snapshot()` records exactly those things; `restore()` undoes the
difference; the harness compares a snapshot taken after `down` with the one taken before `up`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

# The kubelet's "protect kernel defaults" set: it writes each of these at start.
SYSCTLS = ["kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory", "vm.panic_on_oom",
           "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes"]
# Hard-coded paths outside the cluster directory (kubelet: device plugins, pod log symlinks;
# containerd: shim sockets, netns; NRI is disabled but listed in case).
PATHS = ["/var/lib/kubelet", "/var/log/containers", "/var/log/pods", "/run/containerd", "/opt/containerd",
         "/run/netns", "/run/nri", "/var/lib/containerd"]
IPTABLES = ["iptables", "ip6tables"]
TABLES = ["filter", "nat", "mangle"]
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def _iptables_rules(tool: str, table: str) -> list[str]:
    """The table's chains and rules, without counters (they change on their own)."""
    if not shutil.which(f"{tool}-save"):
        return []
    out = subprocess.run([f"{tool}-save", "-t", table], capture_output=True, text=True).stdout
    rules = []
    for line in out.splitlines():
        if line.startswith(":"):
            rules.append(line.split(" [", 1)[0])  # ":INPUT ACCEPT [12:345]" -> ":INPUT ACCEPT"
        elif line.startswith("-A"):
            rules.append(line)
    return rules


def _hierarchies() -> list[Path]:
    """The distinct cgroup hierarchies (v1 mounts each controller set once; names may be symlinks)."""
    if not CGROUP_ROOT.is_dir():
        return []
    seen, out = set(), []
    for entry in sorted(CGROUP_ROOT.iterdir()):
        real = entry.resolve()
        if real.is_dir() and real not in seen and (real / "cgroup.procs").exists():
            seen.add(real)
            out.append(real)
    if (CGROUP_ROOT / "cgroup.procs").exists():  # cgroup v2: one unified hierarchy
        out.append(CGROUP_ROOT)
    return out


def _mounts(watched: list[str]) -> list[str]:
    """Mount points under the watched prefixes, in mount order."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if any(point == w or point.startswith(w.rstrip("/") + "/") for w in watched):
            points.append(point)
    return points


def _paths(cluster_root: Path) -> list[str]:
    from localcluster.realnode import Paths

    return [*PATHS, str(Paths(cluster_root).run_dir)]


def snapshot(cluster_root: Path) -> dict:
    watched = [str(cluster_root), *_paths(cluster_root)]
    return {
        "sysctls": {name: _sysctl_path(name).read_text().strip() for name in SYSCTLS if _sysctl_path(name).exists()},
        "iptables": {f"{tool}/{table}": _iptables_rules(tool, table) for tool in IPTABLES for table in TABLES},
        "cgroups": {str(h): sorted(p.name for p in h.iterdir() if p.is_dir()) for h in _hierarchies()},
        "paths": {p: os.path.lexists(p) for p in _paths(cluster_root)},
        "mounts": _mounts(watched),
    }


def save(cluster_root: Path, path: Path) -> dict:
    state = snapshot(cluster_root)
    path.write_text(json.dumps(state, indent=2))
    return state


# --- restore -------------------------------------------------------------------------------------

def _restore_iptables(before: dict, now: dict, problems: list[str]) -> None:
    for key, rules in now.items():
        old = set(before.get(key, []))
        tool, table = key.split("/")
        new_chains = {r[1:].split()[0] for r in rules if r.startswith(":") and r not in old}
        # Jumps into a new chain from a chain that was there before, then the new chains themselves.
        for rule in rules:
            words = shlex.split(rule)
            if rule.startswith("-A") and rule not in old and words[1] not in new_chains:
                _run([tool, "-w", "-t", table, "-D", *words[1:]], problems)
        for chain in new_chains:
            _run([tool, "-w", "-t", table, "-F", chain], problems)
        for chain in new_chains:
            _run([tool, "-w", "-t", table, "-X", chain], problems)


def _run(cmd: list[str], problems: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        problems.append(f"{' '.join(cmd)}: {result.stderr.strip()}")


def _kill_cgroup_tree(top: Path) -> None:
    """SIGKILL what is left in a cgroup the node made (a container that outlived its runtime)."""
    for procs in top.rglob("cgroup.procs"):
        for pid in procs.read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _remove_cgroup_tree(top: Path, problems: list[str]) -> None:
    dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
    for d in [*dirs, top]:
        for _ in range(50):  # a killed process leaves its cgroup a moment later
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)
        else:
            problems.append(f"cannot remove cgroup {d}")


def unmount_under(prefixes: list[str], problems: list[str]) -> None:
    """Every mount under the prefixes, deepest (latest) first; lazily if still busy."""
    for point in reversed(_mounts(prefixes)):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            _run(["umount", "-l", point], problems)


def restore(cluster_root: Path, before: dict) -> list[str]:
    """Undoes what the node changed since `before`; returns what could not be undone."""
    problems: list[str] = []
    now = snapshot(cluster_root)
    new_mounts = [m for m in now["mounts"] if m not in before["mounts"]]
    if new_mounts:
        unmount_under([str(cluster_root), *[p for p in _paths(cluster_root) if not before["paths"].get(p)]], problems)
    for hierarchy, names in now["cgroups"].items():
        for name in set(names) - set(before["cgroups"].get(hierarchy, [])):
            _kill_cgroup_tree(Path(hierarchy) / name)
    for hierarchy, names in now["cgroups"].items():
        for name in set(names) - set(before["cgroups"].get(hierarchy, [])):
            _remove_cgroup_tree(Path(hierarchy) / name, problems)
    for name, value in before["sysctls"].items():
        if now["sysctls"].get(name) != value:
            try:
                _sysctl_path(name).write_text(value)
            except OSError as err:
                problems.append(f"sysctl {name}={value}: {err}")
    _restore_iptables(before["iptables"], now["iptables"], problems)
    for path, existed in before["paths"].items():
        if not existed and os.path.lexists(path):
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.unlink(path)
            if os.path.lexists(path):
                problems.append(f"cannot remove {path}")
    return problems


def differences(before: dict, after: dict) -> list[str]:
    """Human-readable differences between two snapshots (empty when the host is as it was)."""
    out = []
    for section in before:
        if before[section] != after.get(section):
            out.append(f"{section}: before {json.dumps(before[section])} after {json.dumps(after.get(section))}")
    return out
