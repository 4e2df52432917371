"""Cron times in a zone, the daylight-saving rule and never-firing expressions, without the shell."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from flux_operator.crontimes import InvalidSchedule, check_cron, every_hour, latest_due, next_due, zone

pytestmark = pytest.mark.unit

NEW_YORK = zone("America/New_York")
FALL_BACK = datetime(2026, 11, 1, 6, 0, tzinfo=timezone.utc)  # 02:00 EDT becomes 01:00 EST


@pytest.mark.parametrize("cron, every", [
    ("15 * * * *", True), ("0 */1 * * *", True), ("0 0-23 * * *", True), ("@hourly", True),
    ("0 0-11,12-23 * * *", True), ("* * * * *", True),
    ("30 1 * * *", False), ("0 */2 * * *", False), ("0 0-22 * * *", False), ("@daily", False), ("*/5 1 * * *", False),
])
def test_which_schedules_cover_every_hour(cron, every):
    assert every_hour(cron) is every


def test_in_the_repeated_hour_a_daily_time_is_not_due_again_but_an_hourly_one_is():
    second_0145 = FALL_BACK + timedelta(minutes=45)  # 01:45 EST, the second 01:45
    assert latest_due("30 1 * * *", NEW_YORK, second_0145) == FALL_BACK - timedelta(minutes=30)  # 01:30 EDT
    assert latest_due("30 * * * *", NEW_YORK, second_0145) == FALL_BACK + timedelta(minutes=30)  # 01:30 EST
    # From the first 01:45, the next daily time is the next day's; the next hourly one is an hour on.
    first_0145 = FALL_BACK - timedelta(minutes=15)
    assert next_due("30 1 * * *", NEW_YORK, first_0145) == datetime(2026, 11, 2, 6, 30, tzinfo=timezone.utc)
    assert next_due("30 * * * *", NEW_YORK, first_0145) == FALL_BACK + timedelta(minutes=30)


def test_a_time_in_the_spring_gap_is_due_once_at_the_end_of_the_gap():
    gap_end = datetime(2026, 3, 8, 7, 0, tzinfo=timezone.utc)  # 02:00 EST is 03:00 EDT
    assert next_due("30 2 * * *", NEW_YORK, gap_end - timedelta(hours=2)) == gap_end
    assert latest_due("30 2 * * *", NEW_YORK, gap_end + timedelta(minutes=10)) == gap_end
    assert next_due("30 2 * * *", NEW_YORK, gap_end) == datetime(2026, 3, 9, 6, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 4-11/5 *", "0 0 30-31 2 ?"])
def test_a_cron_that_no_date_matches_is_invalid_not_an_error(cron):
    for fn in (latest_due, next_due):
        with pytest.raises(InvalidSchedule, match="never fires: no date matches it"):
            fn(cron, NEW_YORK, FALL_BACK)


@pytest.mark.parametrize("cron", ["0 0 29 2 *", "0 0 31 2 1", "0 0 31 */2 *", "0 0 31 2/2 *"])
def test_rare_but_possible_dates_are_fine(cron):
    assert next_due(cron, NEW_YORK, FALL_BACK) > FALL_BACK


UTC = zone("UTC")
NEW_YEAR = datetime(2026, 1, 1, tzinfo=timezone.utc)  # a Thursday


@pytest.mark.parametrize("cron, due", [
    ("5-5 * * * *", [datetime(2026, 1, 1, h, 5, tzinfo=timezone.utc) for h in range(3)]),  # hourly, not every minute
    ("5-5/2 * * * *", [datetime(2026, 1, 1, h, 5, tzinfo=timezone.utc) for h in range(3)]),
    ("1-1,3 0 * * *", [datetime(2026, 1, 1, 0, m, tzinfo=timezone.utc) for m in (1, 3)] +
     [datetime(2026, 1, 2, 0, 1, tzinfo=timezone.utc)]),
    ("0 9 * * 1-1", [datetime(2026, 1, d, 9, tzinfo=timezone.utc) for d in (5, 12, 19)]),  # Mondays, not daily
    ("0 9 * * mon-MON", [datetime(2026, 1, d, 9, tzinfo=timezone.utc) for d in (5, 12, 19)]),
    ("0 0 1 03-3 *", [datetime(y, 3, 1, tzinfo=timezone.utc) for y in (2026, 2027, 2028)]),
])
def test_a_range_of_one_value_is_that_value_as_in_cron_and_kubernetes(cron, due):
    moments, moment = [], NEW_YEAR
    for _ in due:
        moment = next_due(cron, UTC, moment)
        moments.append(moment)
    assert moments == due


def test_a_one_value_range_that_no_date_matches_is_invalid():
    with pytest.raises(InvalidSchedule, match="never fires"):
        next_due("0 0 31 2-2 *", UTC, NEW_YEAR)


@pytest.mark.parametrize("expression", ["R R * * *", "0 0 L * *", "0 0 * * 1#2", "H 0 * * *", "0 0 * * * *",
                                        "@every 5m", "0 24 * * *"])
def test_the_operator_reads_only_the_crds_grammar(expression):
    """croniter would read R as a new random time at each reading: an object stored past the CRD's rule meets
    the same grammar in the operator, and gets InvalidSchedule, not runs at random times."""
    with pytest.raises(InvalidSchedule, match="invalid cron expression"):
        check_cron(expression)


@pytest.mark.parametrize("expression", ["*/5 * * * *", " 0 2 * * mon-fri ", "@daily", "0 0 1-1 JAN-MAR ?"])
def test_what_the_crd_admits_the_operator_reads(expression):
    assert check_cron(expression) == expression.strip()
