"""Log lines that join up (flux_api.logfields): the fields of a block and a process on every record, the
runner's JSON lines, and their plain form for `kubectl flux logs`."""

from __future__ import annotations

import json
import logging
import threading
from contextvars import copy_context

import pytest
from flux_api import logfields

pytestmark = pytest.mark.unit


def record(message: str = "m") -> logging.LogRecord:
    return logging.LogRecord("flux.test", logging.INFO, __file__, 1, message, None, None)


def test_a_block_names_what_it_is_about_and_ends_with_the_block():
    rec = record()
    with logfields.about(namespace="team-a", execution="etl", uid="u1", pod=None):
        logfields.FieldsFilter().filter(rec)
        outside = threading.Thread(target=lambda: logfields.FieldsFilter().filter(unrelated))
        unrelated = record()
        outside.start()
        outside.join()
        handed = record()
        copy_context().run(lambda: logfields.FieldsFilter().filter(handed))
    assert (rec.namespace, rec.execution, rec.uid) == ("team-a", "etl", "u1") and not hasattr(rec, "pod")
    assert not hasattr(unrelated, "execution"), "another thread's lines are not about it"
    assert handed.execution == "etl", "a thread handed the context keeps the fields"
    after = record()
    logfields.FieldsFilter().filter(after)
    assert not hasattr(after, "execution")


def test_json_lines_carry_the_fields_and_read_back_plain():
    rec = record("step 3 done")
    rec.namespace, rec.execution, rec.uid, rec.pod = "a", "etl", "u1", "etl-runner"
    line = logfields.JsonLines().format(rec)
    parsed = json.loads(line)
    assert parsed["severity"] == "info" and parsed["logger"] == "flux.test" and parsed["message"] == "step 3 done"
    assert {k: parsed[k] for k in ("namespace", "execution", "uid", "pod")} == {
        "namespace": "a", "execution": "etl", "uid": "u1", "pod": "etl-runner"}
    assert parsed["time"].endswith("Z")
    assert logfields.plain(line) == f"{parsed['time']} INFO flux.test: step 3 done"


@pytest.mark.parametrize("line", ["plain text", "{not json", '{"message": "no severity"}', "[1, 2]",
                                  '{"time": 1, "severity": "info", "logger": "x", "message": "m"}'])
def test_other_lines_are_not_ours_to_reformat(line):
    assert logfields.plain(line) is None
