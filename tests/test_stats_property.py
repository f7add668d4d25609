"""Property: whatever records arrive, in whatever order relative to roll-ups (some before a first roll-up,
some late, after it), the dashboard's figures equal a direct count of the raw records, for every window
and every day of line_info: as soon as the late records are stored, and once the roll-up has run."""
import datetime

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import models
from services import activity, stats
from tests.test_stats import TZ, assert_matches_raw

DAYS_BACK = 40  # records spread over the last 40 days: both edges of the 30-day window
START = datetime.datetime(2024, 2, 28, 23, 30, tzinfo=TZ)  # the clock of the first batch


@pytest.fixture(autouse=True)
def far_zone(settings):
    settings["stats"]["timezone"] = "Pacific/Kiritimati"  # UTC+14, the zone TZ spells out
    return settings


@pytest.fixture
def users(make_company, make_user):
    first, second = make_company(), make_company()
    return [models.User.get_by_id(make_user(c).id) for c in (first, first, second)]


record = st.tuples(
    st.sampled_from(["binding", "follow_up", "access"]),
    st.integers(0, 2),  # which user (two in the first company, one in the second)
    st.sampled_from("abcdef"),  # customer openid: few, so customers repeat and bind several times
    st.integers(0, DAYS_BACK * 24 * 60),  # minutes before the batch's clock
    st.sampled_from([1, 2, 6, 8, 9, 10]),  # action: the four metrics and two that are none
)


def to_dict(users, now, kind, user, openid, minutes_back, action):
    at = now - datetime.timedelta(minutes=minutes_back)
    data = {"kind": kind, "user_id": users[user].id, "openid": openid, "time": at.isoformat()}
    return {**data, "action": action} if kind == "access" else data


def clear():
    for model in reversed(models.ACTIVITY_MODELS):
        model.delete().execute()


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(early=st.lists(record, max_size=40), late=st.lists(record, max_size=40),
       roll_first=st.booleans(), hours_later=st.integers(0, 24 * 12))
def test_rollup_answer_equals_raw_count(settings, users, early, late, roll_first, hours_later):
    clear()
    now = START + datetime.timedelta(hours=hours_later)
    if early:
        activity.store_records(None, [to_dict(users, START, *r) for r in early], settings, START)
    if roll_first:
        stats.rollup_if_due(settings, START)
    if late:
        activity.store_records(None, [to_dict(users, now, *r) for r in late], settings, now)
        for user in (users[0], users[2]):
            assert_matches_raw(user, settings, now)  # at once, before the roll-up has seen them
    stats.rollup_if_due(settings, now)
    assert not models.RollupStale.select().exists()
    for user in (users[0], users[2]):
        assert_matches_raw(user, settings, now)
