"""services.clock is the one clock: moving it moves every "now" and "today" the service records, so the
statistics, the activity records and the other tables can never disagree about the date."""
import datetime

import pytest

import models
from services import activity, clock, companies

MOVED = datetime.datetime(2031, 5, 17, 23, 30, tzinfo=datetime.UTC)  # a day no test runs on


@pytest.fixture
def moved_clock(monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: MOVED)


def test_new_company_expires_counted_from_the_clocks_today(database, settings, moved_clock):
    settings["stats"]["timezone"] = "Asia/Shanghai"  # 23:30 UTC is 07:30 the next morning there
    company = companies.get_or_create_company("时钟公司", settings, valid_days=30)
    assert company.expire_date == datetime.date(2031, 5, 18) + datetime.timedelta(days=30)
    assert company.create_date == MOVED.replace(tzinfo=None)  # stored in UTC


def test_activity_without_a_time_happens_at_the_clocks_now(database, settings, moved_clock, company, make_user):
    staff = make_user(company)
    record = {"kind": "binding", "user_id": staff.id, "openid": "o1"}
    activity.store_records(None, [record], settings)
    assert models.CustomerBinding.get().happened_at == MOVED.replace(tzinfo=None)
    assert models.Customer.get().create_date == MOVED.replace(tzinfo=None)


def test_today_is_the_clocks_day_in_the_statistics_zone(settings, moved_clock):
    settings["stats"]["timezone"] = "Asia/Shanghai"  # 23:30 UTC is 07:30 the next morning there
    assert clock.local_today(settings) == datetime.date(2031, 5, 18)
