"""What `flux-operator-owned-runner-objects` costs a pod's status writes now that it matches pods/status too (a
write there may change a pod's labels, by which the operator finds its runner pods): every kubelet's status
update of every pod passes its match conditions.

    .venv/bin/python -m bench.pod_status_policy --rounds 20 --patches 100 --pods 10

Each round puts one of two versions of the policy in force, in alternating order (the first one swapped each
round), and sends `--patches` merge patches of pods/status one after another, each a condition of its own on
a pod no node runs and the operator never marked (as the kubelet's writes are for nearly every pod):
- shipped: the policy as crds/admission-policies.yaml has it (pods and pods/status);
- without: the same policy without pods/status (the baseline: as it was before).
Before each batch a probe proves which version is in force: adding the operator's label through pods/status
is refused under `shipped` and admitted under `without`. Per batch: each request's latency, and the API
server's CPU seconds (/proc/<pid>/stat). The TenancyPolicy names a user no one is, so no request is exempt.
Run it on a cluster of its own (`FLUX_BENCH_DIR`, default .cluster-bench): it rewrites the policy and the
TenancyPolicy, and puts crds/ back at the end. Writes bench/results/<UTC>-pod-status-policy.json (the
commit, node kind, flags, every sample) and prints the table.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone

from flux_api import policy_owned
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster.faults import ClusterFaults
from localcluster.kube import api_client
from localcluster.layout import Layout
from localcluster.probes import wait_for

from bench.benchkit import REPO, RESULTS, install_crd, kubectl, log, summary, this_code
from bench.cancel_latency import bench_cluster
from bench.traffic import cpu_seconds

NO_ONE = "system:serviceaccount:flux-bench:no-one"  # the TenancyPolicy's operator: every request is checked
NOWHERE = {"flux.dev/bench-node": "none"}  # no node has it: the pods stay Pending and nothing writes them
PROBE_LABEL = "workflows.flux.dev/parent"


def versions() -> dict[str, dict]:
    shipped = next(d for d in policy_owned.documents() if d["kind"] == "ValidatingAdmissionPolicy"
                   and d["metadata"]["name"] == policy_owned.RUNNER_OBJECTS_NAME)
    without = copy.deepcopy(shipped)
    for rule in without["spec"]["matchConstraints"]["resourceRules"]:
        rule["resources"] = [r for r in rule["resources"] if r != "pods/status"]
    assert without != shipped, "the shipped policy matches pods/status"
    return {"shipped": shipped, "without": without}


def apply(layout: Layout, document: dict) -> None:
    kubectl(layout, "apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(document))


def apiserver_cpu(layout: Layout) -> float:
    return cpu_seconds(ClusterFaults(layout).pid("kube-apiserver"))


def in_force(core: client.CoreV1Api, ns: str, version: str, attempt: list[int]) -> bool:
    """The probe: whether the API server now answers as `version` would (a new label value every try)."""
    attempt[0] += 1
    try:
        core.patch_namespaced_pod_status("probe", ns, {"metadata": {"labels": {PROBE_LABEL: f"p{attempt[0]}"}}})
        return version == "without"
    except ApiException as err:
        if err.status != 403 or policy_owned.RUNNER_OBJECTS_NAME not in (err.body or ""):
            raise
        return version == "shipped"


def batch(core: client.CoreV1Api, ns: str, pods: list[str], patches: int, round_: int) -> list[float]:
    latencies = []
    for i in range(patches):
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"status": {"conditions": [{"type": "flux.dev/Bench", "status": "True", "reason": f"R{round_}x{i}",
                                           "lastTransitionTime": now}]}}
        began = time.perf_counter()
        core.patch_namespaced_pod_status(pods[i % len(pods)], ns, body)
        latencies.append(time.perf_counter() - began)
    return latencies


def run(layout: Layout, rounds: int, patches: int, pod_count: int) -> dict:
    install_crd(layout)
    tenancy = subprocess.run([sys.executable, "-m", "flux_api.tenancy", "--operator", NO_ONE], check=True,
                             capture_output=True, text=True).stdout
    apply(layout, json.loads(tenancy))
    api = api_client(layout.kubeconfig)
    core = client.CoreV1Api(api)
    ns = f"bench-pod-status-{int(time.time())}"
    core.create_namespace({"metadata": {"name": ns}})
    pods = [f"p{i}" for i in range(pod_count)]
    for name in [*pods, "probe"]:
        core.create_namespaced_pod(ns, {"metadata": {"name": name}, "spec": {
            "nodeSelector": NOWHERE, "containers": [{"name": "c", "image": "registry.invalid/none:0"}]}})
    samples: dict[str, dict[str, list]] = {v: {"latency_s": [], "round_p50_s": [], "cpu_s": []}
                                           for v in ("shipped", "without")}
    policies, attempt = versions(), [0]
    try:
        for round_ in range(rounds):
            order = ["shipped", "without"] if round_ % 2 == 0 else ["without", "shipped"]
            for version in order:
                apply(layout, policies[version])
                wait_for(lambda version=version: in_force(core, ns, version, attempt), timeout=60, interval=0.2,
                         what=f"the {version} policy in force")
                batch(core, ns, pods, 10, round_)  # warm: the connection, the policy's compiled form
                cpu = apiserver_cpu(layout)
                latencies = batch(core, ns, pods, patches, round_)
                samples[version]["cpu_s"].append(apiserver_cpu(layout) - cpu)
                samples[version]["latency_s"].extend(latencies)
                samples[version]["round_p50_s"].append(statistics.median(latencies))
            log(f"round {round_ + 1}/{rounds}: shipped {samples['shipped']['round_p50_s'][-1] * 1000:.2f} ms, "
                f"without {samples['without']['round_p50_s'][-1] * 1000:.2f} ms (medians)")
    finally:
        core.delete_namespace(ns)
        install_crd(layout)  # crds/ as it is, and the TenancyPolicy as the suite has it
        api.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--patches", type=int, default=100, help="timed pods/status patches per batch")
    parser.add_argument("--pods", type=int, default=10)
    args = parser.parse_args()
    with bench_cluster() as layout:
        samples = run(layout, args.rounds, args.patches, args.pods)
    rows = {v: {"latency_s": summary(s["latency_s"]), "round_p50_s": summary(s["round_p50_s"]),
                "cpu_s_per_batch": summary(s["cpu_s"])} for v, s in samples.items()}
    ratio = {k: rows["shipped"][k]["p50"] / rows["without"][k]["p50"] for k in ("round_p50_s", "cpu_s_per_batch")}
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}-pod-status-policy.json"
    out.write_text(json.dumps({"code": this_code(), "node": os.environ.get("FLUX_NODE", "process"),
                               "machine": platform.node(), "cpus": os.cpu_count(), "flags": vars(args),
                               "rows": rows, "ratio": ratio, "samples": samples}, indent=1) + "\n")
    for version, row in rows.items():
        print(f"{version:8} a pods/status patch: p50 {row['latency_s']['p50'] * 1000:.2f} ms, p95 "
              f"{row['latency_s']['p95'] * 1000:.2f} ms (N={row['latency_s']['n']}); API server CPU per "
              f"{args.patches}: median {row['cpu_s_per_batch']['p50']:.3f} s (N={row['cpu_s_per_batch']['n']})")
    print(f"shipped / without: median of the rounds' medians {ratio['round_p50_s']:.2f}x, API server CPU "
          f"{ratio['cpu_s_per_batch']:.2f}x")
    print(f"results: {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
