"""The starts part's sides (bench/starts.py) and their report (bench/report_starts.py): pure, no cluster."""

from __future__ import annotations

import argparse

import pytest

pytestmark = pytest.mark.unit


@pytest.fixture
def real_node(monkeypatch) -> None:
    from localcluster.nodes import choice

    class RealNode:
        kind, python_image = "real", "localhost/flux-runner:dev"

    monkeypatch.setattr(choice, "of", lambda layout: RealNode())


def _pod(style: str) -> dict:
    from bench import starts
    return starts._comparable_job(None, "j", 30, "jobs-x-1", style)["spec"]["template"]["spec"]


def test_each_side_without_a_setting_differs_from_the_hardened_pod_in_that_setting_alone(real_node) -> None:
    from bench.starts import SHAPE_SETTINGS
    hardened = _pod("hardened")
    changed = {}
    for setting in SHAPE_SETTINGS:
        pod = _pod(f"without-{setting}")
        c, h = pod["containers"][0], hardened["containers"][0]
        fields = (pod.keys() | hardened.keys()) - {"containers"}
        changed[setting] = sorted({k for k in fields if pod.get(k) != hardened.get(k)}
                                  | {f"container.{k}" for k in c.keys() | h.keys() if c.get(k) != h.get(k)})
    assert changed == {"token": ["automountServiceAccountToken"], "seccomp": ["securityContext"],
                       "rootfs": ["container.securityContext"], "tmp": ["container.volumeMounts", "volumes"],
                       "caps": ["container.securityContext"]}
    assert "seccompProfile" not in _pod("without-seccomp")["securityContext"]
    assert _pod("without-rootfs")["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False
    assert _pod("without-tmp")["volumes"] == [] and _pod("without-tmp")["containers"][0]["volumeMounts"] == []
    caps = _pod("without-caps")["containers"][0]["securityContext"]
    assert "capabilities" not in caps and "allowPrivilegeEscalation" not in caps
    assert _pod("without-token")["automountServiceAccountToken"] is False


def test_an_unknown_setting_is_refused_with_the_ones_there_are() -> None:
    from bench.run import _settings
    assert _settings("seccomp,token") == ["seccomp", "token"]
    with pytest.raises(argparse.ArgumentTypeError, match="not a runner pod setting: selinux .*one of token"):
        _settings("seccomp,selinux")


def test_the_sides_take_each_place_once_over_as_many_rounds() -> None:
    from bench.starts import side_order
    kinds = ["executions", "jobs", "jobs_hardened"]
    orders = [side_order(kinds, r) for r in range(1, 4)]
    assert orders[0] == kinds and side_order(kinds, 4) == kinds
    for place in range(3):
        assert sorted(order[place] for order in orders) == sorted(kinds), f"place {place}"


def test_a_side_without_a_setting_is_reported_against_the_hardened_jobs() -> None:
    from bench.report import figures
    starts = {"source": "real node", "n": 40, "executions_s": [11.0] * 8, "jobs_s": [10.0] * 8,
              "executions_p50": 11.0, "executions_p95": 12.0, "jobs_p50": 10.0, "jobs_p95": 10.5,
              "jobs_hardened_s": [10.5] * 8, "jobs_hardened_p50": 10.5, "jobs_hardened_p95": 11.0,
              "jobs_without_seccomp_s": [8.4] * 8, "jobs_without_seccomp_p50": 8.4, "jobs_without_seccomp_p95": 9.0}
    [_, _, seccomp] = figures({"parts": {"starts": starts}})
    assert "without its seccomp profile" in seccomp["figure"] and "median of 8" in seccomp["figure"]
    assert (seccomp["ratio"], seccomp["target"], seccomp["met"]) == ("0.80x", "-", None)


def test_the_cpu_table_puts_the_runner_and_the_comparable_program_in_one_row_and_leaves_out_other() -> None:
    from bench.report_starts import cpu_table
    st = {"executions_s": [1.0, 1.0, 1.0], "jobs_s": [1.0, 1.0, 1.0],
          "executions_cpu": [{"runner": 6.0, "kubelet": 1.0, "other": 9.0}, {"runner": 7.0, "kubelet": 2.0},
                             {"runner": 8.0, "kubelet": 3.0}],
          "jobs_cpu": [{"comparable": 5.0, "other": 4.0}, {"comparable": 5.0}, {"comparable": 6.0, "kubelet": 1.0}]}
    lines = cpu_table(st).splitlines()
    assert lines[0] == "| kind of process | executions | jobs |"
    assert lines[2] == "| the pods' Python | 7.00 s | 5.00 s |"
    assert lines[3] == "| kubelet | 2.00 s | 0.00 s |"
    assert lines[-1] == "| every kind but other | 9.00 s | 5.00 s |"
    assert cpu_table({"executions_s": [1.0]}) == ""


def test_the_kubelets_pod_starts_are_told_by_side_from_its_log_lines() -> None:
    from bench.kubelet_starts import pod_starts, side_of, summary
    line = ('I1205 22:11:18.076981 24065 pod_startup_latency_tracker.go:108] "Observed pod startup duration" '
            'pod="{ns}/{pod}" podStartSLOduration={s} podStartE2EDuration="{s}s"')
    lines = [line.format(ns="starts-1", pod="start-1-016-runner", s="5.5"),
             line.format(ns="starts-1", pod="jobs-without-seccomp-3-001-x7k2q", s="4.25"),
             line.format(ns="starts-1", pod="jobs-2-039-abcde", s="4.0"),
             line.format(ns="starts-1", pod="jobs-2-038-abcdf", s="6.0"),
             line.format(ns="other", pod="jobs-2-001-zzzzz", s="99"),
             line.format(ns="starts-1", pod="coredns-5d8f", s="1.0"),
             "I1205 22:11:18 something else"]
    pods = pod_starts(lines, "starts-1")
    assert [(p["side"], p["podStartSLOduration_s"]) for p in pods] == [
        ("executions", 5.5), ("jobs_without_seccomp", 4.25), ("jobs", 4.0), ("jobs", 6.0)]
    assert summary(pods)["jobs"] == {"n": 2, "p50": 5.0, "p95": 6.0}
    assert side_of("jobs-hardened-12-000-q9w8e") == "jobs_hardened" and side_of("kube-proxy") is None


def test_the_requests_table_is_per_start_by_verb_and_resource_and_leaves_out_the_rare_ones() -> None:
    from bench.report_starts import requests_table
    st = {"n": 10, "executions_s": [1.0, 1.0], "jobs_s": [1.0, 1.0],
          "executions_requests": [{"POST pods": 10, "POST serviceaccounts": 10, "GET nodes": 1},
                                  {"POST pods": 12, "POST serviceaccounts": 10}],
          "jobs_requests": [{"POST pods": 10, "POST jobs": 10}, {"POST pods": 10, "POST jobs": 10}]}
    lines = requests_table(st).splitlines()
    assert lines[0] == "| request (verb resource) | executions | jobs |"
    assert lines[2:] == ["| POST pods | 1.10 | 1.00 |", "| POST serviceaccounts | 1.00 | 0.00 |",
                         "| POST jobs | 0.00 | 1.00 |", "| every request | 2.15 | 2.00 |"]
    assert requests_table({"n": 1, "executions_s": [1.0]}) == ""
