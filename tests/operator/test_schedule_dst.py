"""Daylight saving with an injected clock, across real transitions of the pinned tzdata: the Schedule shell
against the in-memory API, looked at when it asks and every 5 minutes besides, for a day around each
transition. The rule (crontimes.py): a repeated wall-clock time fires once,
unless the hour field covers every hour; a skipped one fires once, at the end of the gap."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from flux_operator.schedule_shell import ScheduleReconciler, ScheduleStore
from flux_operator.world import World
from flux_operator.testing import FakeKubeApi

pytestmark = pytest.mark.unit

KEY = ("ns", "dst")


def runs_between(cron: str, zone: str, start: datetime, hours: int) -> list[datetime]:
    """The cron times of the runs the operator starts from `start` for `hours`."""
    api, store, world = FakeKubeApi(), ScheduleStore(), World()
    created = (start - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    store.seen(api.put_schedule({
        "apiVersion": "workflows.flux.dev/v1alpha1", "kind": "Schedule",
        "metadata": {"name": "dst", "namespace": "ns", "uid": "uid-dst", "generation": 1, "creationTimestamp": created},
        "spec": {"schedule": cron, "timeZone": zone, "successfulExecutionsHistoryLimit": 1000,
                 "executionTemplate": {"spec": {"workflow": "pkg.mod:main"}}}}))
    clock = [start]
    counter = itertools.count()
    reconciler = ScheduleReconciler(store, world, api, clock=lambda: clock[0], new_token=lambda: f"{next(counter):032x}")
    end = start + timedelta(hours=hours)
    while clock[0] < end:
        for _ in range(5):  # a create asks to be looked at again at once, to record the run
            wait = reconciler.reconcile(KEY).requeue_after
            if wait != 0:
                break
        # Next look: when the decision asked (a little late, as a busy queue would be), and at least every
        # 5 minutes besides (as the safety pass does, and so every repeated hour is looked at).
        clock[0] += timedelta(seconds=min(max(wait or 300, 1) + 0.5, 300))
        for obj in list(api.objects.values()):  # runs finish within their minute
            if (obj.get("status") or {}).get("phase") is None:
                obj["status"] = {"phase": "Succeeded", "finishedAt": clock[0].strftime("%Y-%m-%dT%H:%M:%S.000Z")}
                world.execution_seen(api.put(obj))
    recorded = set(api.schedules[KEY]["status"]["runs"])
    assert len(recorded) == len(api.objects)  # every run made is recorded, nothing else
    return sorted(datetime.fromisoformat(o["metadata"]["annotations"]["workflows.flux.dev/scheduled-at"]
                                         .replace("Z", "+00:00")) for o in api.objects.values())


def local(moments: list[datetime], zone: str) -> list[str]:
    return [m.astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M%z") for m in moments]


def at(zone: str, text: str) -> datetime:
    """A local wall-clock time (the first occurrence, if it happens twice) in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).astimezone(timezone.utc)


@pytest.mark.parametrize("zone, cron, start, expected", [
    # New York falls back at 02:00 EDT on 1 November 2026: 01:00-01:59 happens twice.
    ("America/New_York", "30 1 * * *", "2026-10-31T23:00", ["11-01 01:30-0400", "11-02 01:30-0500"]),
    # Berlin falls back at 03:00 CEST on 25 October 2026: 02:00-02:59 happens twice.
    ("Europe/Berlin", "30 2 * * *", "2026-10-25T00:00", ["10-25 02:30+0200", "10-26 02:30+0100"]),
    # Sydney falls back at 03:00 AEDT on 5 April 2026 (southern hemisphere, April).
    ("Australia/Sydney", "15 2 * * *", "2026-04-05T00:00", ["04-05 02:15+1100", "04-06 02:15+1000"]),
    # Lord Howe falls back half an hour, at 02:00 on 5 April 2026: 01:30-01:59 happens twice.
    ("Australia/Lord_Howe", "45 1 * * *", "2026-04-05T00:00", ["04-05 01:45+1100", "04-06 01:45+1030"]),
    # A weekly schedule on the fall-back Sunday.
    ("America/New_York", "30 1 * * 0", "2026-10-31T23:00", ["11-01 01:30-0400"]),
])
def test_a_daily_schedule_runs_once_across_a_fall_back(zone, cron, start, expected):
    assert local(runs_between(cron, zone, at(zone, start), 28), zone) == expected


def test_a_fixed_hour_schedule_runs_its_minutes_only_in_the_first_occurrence_of_the_hour():
    zone = "America/New_York"
    runs = runs_between("*/20 1 * * *", zone, at(zone, "2026-11-01T00:30"), 3)
    assert local(runs, zone) == ["11-01 01:00-0400", "11-01 01:20-0400", "11-01 01:40-0400"]


@pytest.mark.parametrize("cron", ["15 * * * *", "15 0-23 * * *"])
def test_a_schedule_covering_every_hour_runs_every_real_hour_on_the_25_hour_day(cron):
    zone = "America/New_York"
    runs = runs_between(cron, zone, at(zone, "2026-11-01T00:00"), 25)
    assert len(runs) == 25 and {r.astimezone(ZoneInfo(zone)).day for r in runs} == {1}
    assert {b - a for a, b in itertools.pairwise(runs)} == {timedelta(hours=1)}  # one an hour of real time
    assert "11-01 01:15-0400" in local(runs, zone) and "11-01 01:15-0500" in local(runs, zone)


def test_a_time_skipped_by_spring_forward_runs_once_at_the_end_of_the_gap():
    zone = "America/New_York"  # 02:00 EST becomes 03:00 EDT on 8 March 2026
    runs = runs_between("30 2 * * *", zone, at(zone, "2026-03-08T00:00"), 27)
    assert local(runs, zone) == ["03-08 03:00-0400", "03-09 02:30-0400"]
    hourly = runs_between("30 * * * *", zone, at(zone, "2026-03-08T00:00"), 4)
    assert local(hourly, zone) == ["03-08 00:30-0500", "03-08 01:30-0500", "03-08 03:30-0400", "03-08 04:30-0400"]
