"""The process node's kubelet log endpoint: its pure parts (paths, queries, runs, tails)."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

import pytest
from localcluster.logserver import LogError, Runs, choose_run, parse_path, parse_query, tail

pytestmark = pytest.mark.unit


def test_path_names_namespace_pod_and_container():
    assert parse_path("/containerLogs/ns/pod-1/runner?follow=true") == ("ns", "pod-1", "runner")
    with pytest.raises(LogError) as err:
        parse_path("/containerLogs/ns/pod-1")
    assert err.value.status == HTTPStatus.NOT_FOUND


def test_query_reads_what_the_api_server_sends():
    q = parse_query("follow=true&previous=true&tailLines=5&limitBytes=100&stream=All")
    assert (q.follow, q.previous, q.tail_lines, q.limit_bytes) == (True, True, 5, 100)
    assert parse_query("").follow is False and parse_query("").tail_lines is None


@pytest.mark.parametrize("raw", ["timestamps=true", "sinceSeconds=10", "sinceTime=2025-01-01T00:00:00Z",
                                 "stream=Stdout", "tailLines=x", "tailLines=-1"])
def test_unsupported_or_bad_queries_are_a_400(raw):
    with pytest.raises(LogError) as err:
        parse_query(raw)
    assert err.value.status == HTTPStatus.BAD_REQUEST


@pytest.mark.parametrize("lines,expected", [(0, b""), (1, b"c\n"), (2, b"b\nc\n"), (3, b"a\nb\nc\n"),
                                            (9, b"a\nb\nc\n")])
def test_tail_counts_lines_from_the_end(lines, expected):
    assert tail(b"a\nb\nc\n", lines) == expected


def test_tail_counts_an_unfinished_last_line():
    assert tail(b"a\nb", 1) == b"b"


def test_current_run_is_the_last_and_previous_the_one_before():
    runs = Runs(Path("/x"), [0, 10, 25], running=True)
    assert choose_run(runs, "c", "p", previous=False) == (25, None, 2)
    assert choose_run(runs, "c", "p", previous=True) == (10, 25, 1)


def test_no_previous_run_is_a_400_as_from_a_kubelet():
    with pytest.raises(LogError) as err:
        choose_run(Runs(Path("/x"), [0], running=True), "runner", "p", previous=True)
    assert err.value.status == HTTPStatus.BAD_REQUEST
    assert 'previous terminated container "runner" in pod "p" not found' in str(err.value)


def test_a_container_not_started_yet_is_waiting():
    with pytest.raises(LogError) as err:
        choose_run(Runs(Path("/x"), [], running=False), "runner", "p", previous=False)
    assert "is waiting to start: ContainerCreating" in str(err.value)
