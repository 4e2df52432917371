"""What a runner's HTTP client costs at its start: CPU and peak RSS of one runner-like start with the runner's own
transport (`flux_runner.transport`, asyncio streams and h11) against httpx's default one (httpcore and anyio),
in the same run, rounds interleaved (the order alternates).

    .venv/bin/python -m bench.runner_client --rounds 20 --patches 5

Each sample is a fresh Python process that imports `flux_runner.main` (what both pay, not counted), then makes
the client with the cluster's CA and the admin's client certificate, sends one GET and `--patches` merge
PATCHes of a ConfigMap (what a runner's start sends: its Execution, then checkpoints) over TLS to the local
API server, and reports its CPU (utime+stime) from before the client to the end, and its peak RSS (VmHWM). No node is
involved: the processes run on the host. Writes bench/data/runner_client-<UTC time>.json (every sample, the
commit, machine and flags) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

from bench.cancel_latency import bench_cluster
from bench.run import machine
from kubernetes import client
from localcluster.kube import api_client

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "bench" / "data"
KINDS = ("httpx-default", "runner-transport")

ONE_START = """
import asyncio, json, resource, ssl, sys
import flux_runner.main
import httpx
from flux_runner.transport import H11Transport
kind, server, ca, cert, key, path, patches = sys.argv[1:8]
def cpu_ms():
    used = resource.getrusage(resource.RUSAGE_SELF)
    return (used.ru_utime + used.ru_stime) * 1000
start = cpu_ms()
tls = ssl.create_default_context(cafile=ca)
tls.load_cert_chain(cert, key)
async def go():
    transport = H11Transport(tls) if kind == "runner-transport" else None
    async with httpx.AsyncClient(base_url=server, verify=tls, transport=transport, timeout=15) as http:
        assert (await http.get(path)).status_code == 200
        for i in range(int(patches)):
            answer = await http.patch(path, content=json.dumps({"data": {"i": str(i)}}).encode(),
                                      headers={"Content-Type": "application/merge-patch+json"})
            assert answer.status_code == 200, answer.text
asyncio.run(go())
# VmHWM: this program's own peak (ru_maxrss would count the forking parent's memory before the exec)
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"cpuMs": cpu_ms() - start, "maxRssKiB": int(peak.split()[1])}))
"""


def one(kind: str, target: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", ONE_START, kind, *target], check=True, capture_output=True,
                         text=True, timeout=120)
    return json.loads(out.stdout)


def summary(samples: list[dict], field: str) -> dict:
    values = sorted(sample[field] for sample in samples)
    return {"p50": statistics.median(values), "p95": values[max(0, round(0.95 * len(values)) - 1)]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.runner_client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--patches", type=int, default=5)
    args = parser.parse_args(argv)
    samples: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    with bench_cluster() as layout:
        config = json.loads(layout.kubeconfig.read_text())
        cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
        name = f"bench-client-{uuid.uuid4().hex[:8]}"
        target = [cluster["server"], cluster["certificate-authority"], user["client-certificate"],
                  user["client-key"], f"/api/v1/namespaces/default/configmaps/{name}", str(args.patches)]
        with api_client(layout.kubeconfig) as api:
            core = client.CoreV1Api(api)
            core.create_namespaced_config_map("default", {"metadata": {"name": name}, "data": {"i": "0"}})
            try:
                for round_ in range(args.rounds):
                    for kind in KINDS if round_ % 2 == 0 else reversed(KINDS):
                        samples[kind].append(one(kind, target))
            finally:
                core.delete_namespaced_config_map(name, "default")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    result = {
        "commit": commit, "node": "none (host processes against the local API server)",
        "machine": {**machine(), "python": platform.python_version()}, "flags": vars(args), "samples": samples,
        "summary": {kind: {"cpuMs": summary(s, "cpuMs"), "maxRssKiB": summary(s, "maxRssKiB")}
                    for kind, s in samples.items()},
    }
    DATA.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = DATA / f"runner_client-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    base, ours = result["summary"]["httpx-default"], result["summary"]["runner-transport"]
    print("| client | CPU of a start p50 (p95) | peak RSS p50 |\n|---|---|---|")
    for kind in KINDS:
        s = result["summary"][kind]
        print(f"| {kind} | {s['cpuMs']['p50']:.1f} ms ({s['cpuMs']['p95']:.1f} ms) "
              f"| {s['maxRssKiB']['p50'] / 1024:.1f} MB |")
    print(f"ratio (runner transport / httpx default), CPU p50: {ours['cpuMs']['p50'] / base['cpuMs']['p50']:.2f}x; "
          f"N={args.rounds} each, {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
