"""One convention for times: every stored time is UTC; answers show times, and dates and times a client
sends are read, in stats.timezone, whatever the server process's own zone (docs/api.md section 1.7).

Here stats.timezone is Tokyo (UTC+9) and the process's zone New York: LATE and EARLY fall on the same
day in UTC and in New York, but on two days in Tokyo, so a time that skips its conversion, or converts in
the wrong zone, lands on the wrong day. "Now" is moved by replacing clock.now, never waited for."""
import datetime

import pytest

import models
from services import clock

TOKYO = "Asia/Tokyo"
LATE = datetime.datetime(2026, 3, 1, 14, 30, tzinfo=datetime.UTC)  # 23:30 on 1 March in Tokyo
EARLY = datetime.datetime(2026, 3, 1, 15, 30, tzinfo=datetime.UTC)  # 00:30 on 2 March in Tokyo
LATE_SHOWN, EARLY_SHOWN = "2026-03-01 23:30:00", "2026-03-02 00:30:00"
ADMIN = "/zhugeleida/admin/"


@pytest.fixture
def zones(settings, process_zone):
    settings["stats"]["timezone"] = TOKYO


@pytest.fixture
def at(monkeypatch):
    """at(instant): from now on the service's clock reads `instant`."""
    return lambda instant: monkeypatch.setattr(clock, "now", lambda: instant)


def stored(instant):
    return instant.replace(tzinfo=None)


@pytest.mark.gen_test
async def test_a_product_is_stored_in_utc_and_answers_its_time_in_stats_timezone(zones, client, admin, company, at):
    at(EARLY)
    product = models.Product.create(company=company, product_type=models.PRODUCT_COMPANY, name="凌晨的产品",
                                    price="1", reason="")
    assert models.Product.get_by_id(product.id).create_date == stored(EARLY)
    listed = await client.get(ADMIN + "product/product_list", admin, product_type="1")
    single = await client.get(ADMIN + "product/product_single", admin, product_id=product.id)
    edit = await client.get(ADMIN + "product/product_edit", admin, product_id=product.id, product_type="1")
    assert listed["data"]["ret_data"][0]["publisher_date"] == EARLY_SHOWN
    assert single["data"]["ret_data"]["publisher_date"] == EARLY_SHOWN
    assert edit["data"]["ret_data"][0]["create_date"] == EARLY_SHOWN


MANAGEMENT_LISTS = {  # list path, the key naming a row, how to make a row called `name` now
    "user": ("login_name", lambda makers, name: makers[0](makers[1](), login_name=name)),
    "role": ("name", lambda makers, name: models.Role.create(name=name)),
    "company": ("name", lambda makers, name: makers[1](name)),
}


@pytest.mark.gen_test
@pytest.mark.parametrize("area", list(MANAGEMENT_LISTS))
async def test_a_list_filters_by_days_and_seconds_of_stats_timezone(zones, client, admin, make_user, make_company,
                                                                     at, area):
    key, make = MANAGEMENT_LISTS[area]
    at(LATE)
    make((make_user, make_company), "late")
    at(EARLY)
    make((make_user, make_company), "early")

    async def rows(**filters):
        body = await client.get(ADMIN + area, admin, length=0, **filters)
        assert body["code"] == 200, body
        return {row[key]: row["create_date"] for row in body["data"]["ret_data"]}

    assert await rows(create_date="2026-03-01") == {"late": LATE_SHOWN}
    assert await rows(create_date="2026-03-02") == {"early": EARLY_SHOWN}
    assert await rows(create_date=LATE_SHOWN) == {"late": LATE_SHOWN}
    assert await rows(create_date="2026-03-01 14:30:00") == {}  # LATE's UTC wall clock is not a time in Tokyo


@pytest.mark.gen_test
async def test_the_audit_trail_shows_and_filters_by_stats_timezone(zones, client, admin, company, at):
    entries = {}
    for name, instant in (("late", LATE), ("early", EARLY)):
        at(instant)
        entries[models.AuditEntry.create(company_id=company.id, route=f"user/update/{name}", kind="user",
                                         code=200).id] = name

    async def shown(**filters):
        body = await client.get(ADMIN + "audit", admin, **filters)
        assert body["code"] == 200, body
        return {entries[row["id"]]: row["time"] for row in body["data"]["ret_data"]}

    assert await shown(start_date="2026-03-01", end_date="2026-03-01") == {"late": LATE_SHOWN}
    assert await shown(start_date="2026-03-02") == {"early": EARLY_SHOWN}
    assert await shown(end_date="2026-03-01") == {"late": LATE_SHOWN}


@pytest.mark.gen_test
async def test_login_records_the_time_in_utc_and_shows_it_in_stats_timezone(zones, client, admin, at):
    login = {"username": "boss", "password": "secret123"}
    at(EARLY)
    assert (await client.post(ADMIN + "login", data=login))["data"]["last_login_date"] is None
    assert models.User.get_by_id(admin.id).last_login_date == stored(EARLY)
    at(EARLY + datetime.timedelta(days=1))
    assert (await client.post(ADMIN + "login", data=login))["data"]["last_login_date"] == EARLY_SHOWN
    listed = await client.get(ADMIN + "user", admin, id=admin.id)
    assert listed["data"]["ret_data"][0]["last_login_date"] == "2026-03-03 00:30:00"


@pytest.mark.gen_test
async def test_the_login_throttle_window_runs_on_the_clock(zones, client, admin, settings, at):
    window = datetime.timedelta(seconds=settings["auth"]["login_window_seconds"])
    at(EARLY)
    for _ in range(settings["auth"]["login_max_failures"]):
        assert (await client.post(ADMIN + "login", data={"username": "boss", "password": "bad"}))["code"] == 401
    login = {"username": "boss", "password": "secret123"}
    at(EARLY + window - datetime.timedelta(seconds=1))
    assert "次数过多" in (await client.post(ADMIN + "login", data=login))["msg"]
    at(EARLY + window)
    assert (await client.post(ADMIN + "login", data=login))["code"] == 200


@pytest.mark.gen_test
async def test_the_home_page_counts_a_company_from_its_day_in_stats_timezone(zones, client, make_company,
                                                                            make_user, at):
    at(EARLY)
    company = make_company("凌晨开通的公司")
    boss = make_user(company, role=models.ROLE_ADMIN)
    at(EARLY + datetime.timedelta(days=3))
    home = (await client.get(ADMIN + "home_page", boss))["data"]["ret_data"]
    assert (home["open_up_date"], home["used_days"]) == ("2026-03-02", 3)
