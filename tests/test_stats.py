"""Dashboard statistics and the daily roll-up (docs/api.md section 10), checked against direct counts of
the raw records. Days are counted in Pacific/Kiritimati (UTC+14), so a local day starts at 10:00 UTC of
the day before: anything that used UTC days would be caught. "Now" is passed in (or services.clock's
"now" replaced), never waited for."""
import asyncio
import datetime
import threading
from collections import Counter, defaultdict

import peewee as pw
import pytest
import yaml
from playhouse.test_utils import count_queries

import models
import server
from services import activity, clock, stats
from services.errors import NotFound
from tests.conftest import row_counts

TZ_NAME = "Pacific/Kiritimati"
TZ = datetime.timezone(datetime.timedelta(hours=14))  # the same zone, written independently for the oracle
UTC = datetime.UTC
DAY = datetime.timedelta(days=1)
HOME, ACOUNT, LINE = "/zhugeleida/admin/home_page", "/zhugeleida/admin/home_page/acount_data", \
    "/zhugeleida/admin/home_page/line_info"
METRIC_OF_ACTION = {1: "browse_num", 6: "forward_num", 8: "saved_total_num", 9: "praise_sum"}
WINDOWS = ("count_data", "yesterday_data", "nearly_seven_days", "nearly_thirty_days")


def local(y, m, d, hh=12, mm=0, ss=0):
    """An aware time in the statistics zone."""
    return datetime.datetime(y, m, d, hh, mm, ss, tzinfo=TZ)


NOW = local(2024, 3, 10, 12)  # "today" is 2024-03-10 local, i.e. 2024-03-09 22:00 UTC
TODAY = datetime.date(2024, 3, 10)


@pytest.fixture(autouse=True)
def far_zone(settings):
    settings["stats"]["timezone"] = TZ_NAME
    settings["stats"]["recompute_days"] = 3
    settings["stats"]["rollup_delay_seconds"] = 60
    return settings


@pytest.fixture
def company(make_company):
    return make_company("北京合众多屏科技发展有限公司", quota=5, expire_date=datetime.date(2024, 6, 20))


@pytest.fixture
def admin(make_user, company):
    return models.User.get_by_id(make_user(company, role=models.ROLE_ADMIN, username="张聪").id)


@pytest.fixture
def staff(make_user, company):
    return models.User.get_by_id(make_user(company).id)


@pytest.fixture
def outsider(make_user, other):
    return models.User.get_by_id(make_user(other).id)


# ---- records and the oracle -------------------------------------------------------------------------

def rec(kind, user, openid, at, **extra):
    """A record as a client sends it, with its time as milliseconds since the epoch."""
    return {"kind": kind, "user_id": user.id, "openid": openid, "time": int(at.timestamp() * 1000), **extra}


def put(settings, records, now=NOW):
    for start in range(0, len(records), activity.MAX_BATCH):
        activity.store_records(None, records[start:start + activity.MAX_BATCH], settings, now)


def oracle(company_id):
    """{local day: Counter(metric -> n)} counted straight from the raw rows, without the roll-up or
    Customer.first_bound_at: a customer is new on the day of its earliest binding."""
    def day(at):
        return at.replace(tzinfo=UTC).astimezone(TZ).date()

    per_day = defaultdict(Counter)
    first_binding = {}
    for customer, at in models.CustomerBinding.select(models.CustomerBinding.customer,
                                                      models.CustomerBinding.happened_at).where(
            models.CustomerBinding.company == company_id).tuples():
        first_binding[customer] = min(at, first_binding.get(customer, at))
    for at in first_binding.values():
        per_day[day(at)]["customer_num"] += 1
    for (at,) in models.FollowUp.select(models.FollowUp.happened_at).where(
            models.FollowUp.company == company_id).tuples():
        per_day[day(at)]["follow_num"] += 1
    for action, at in models.AccessEvent.select(models.AccessEvent.action, models.AccessEvent.happened_at).where(
            models.AccessEvent.company == company_id).tuples():
        if action in METRIC_OF_ACTION:
            per_day[day(at)][METRIC_OF_ACTION[action]] += 1
    return per_day


def window(per_day, first, last):
    total = Counter()
    for day, counts in per_day.items():
        if (first is None or day >= first) and day <= last:
            total.update(counts)
    return {m: total[m] for m in stats.METRICS}


def expected_acount(company_id, today):
    per_day = oracle(company_id)
    return {"count_data": window(per_day, None, today), "yesterday_data": window(per_day, today - DAY, today - DAY),
            "nearly_seven_days": window(per_day, today - 7 * DAY, today - DAY),
            "nearly_thirty_days": window(per_day, today - 30 * DAY, today - DAY)}


def expected_line(company_id, today, days, metric):
    per_day = oracle(company_id)
    return [{"statics_date": (today - n * DAY).isoformat(), "value": per_day[today - n * DAY][metric]}
            for n in range(days, 0, -1)]


def assert_matches_raw(caller, settings, now, company_id=None):
    company_id = company_id or caller.company_id
    today = now.astimezone(TZ).date()
    assert stats.acount_data(caller, company_id, settings, now)["ret_data"] == expected_acount(company_id, today)
    for index, metric in enumerate(stats.METRICS, 1):
        for days in (1, 7, 30, 90):
            got = stats.line_info(caller, company_id, days, index, settings, now)["ret_data"]
            assert got == expected_line(company_id, today, days, metric), (metric, days)


def history(staff, admin):
    """Hand-made records on both sides of local midnights (23:59:59 / 00:00:00), on today, yesterday, the
    edges of the 7- and 30-day windows and before them; one customer bound twice (counts once, on its
    first day); an access action that is no metric (2)."""
    records = []
    for day_offset in (0, 1, 2, 7, 8, 30, 31, 45):
        day = TODAY - day_offset * DAY
        late = local(day.year, day.month, day.day, 23, 59, 59)
        early = local(day.year, day.month, day.day, 0, 0, 0)
        for at in (early, late) if day_offset else (early,):
            n = f"{day_offset}-{at.hour}"
            records += [rec("binding", staff, f"c{n}", at), rec("follow_up", staff, f"c{n}", at, content="回访"),
                        rec("access", staff, f"c{n}", at, action=1), rec("access", admin, f"c{n}", at, action=6),
                        rec("access", staff, f"c{n}", at, action=8), rec("access", staff, f"c{n}", at, action=9),
                        rec("access", staff, f"c{n}", at, action=9), rec("access", staff, f"c{n}", at, action=2)]
    records.append(rec("binding", admin, "c45-0", local(2024, 3, 9, 8)))  # bound again: not new again
    return records


# ---- windows and metrics on hand-made data --------------------------------------------------------

def test_every_window_and_metric_equals_the_raw_count(settings, staff, admin, outsider):
    put(settings, history(staff, admin) + [rec("access", outsider, "x", local(2024, 3, 9), action=1)])
    stats.rollup_if_due(settings, NOW)
    assert_matches_raw(staff, settings, NOW)
    got = stats.acount_data(staff, None, settings, NOW)["ret_data"]
    # A few figures by hand, so the oracle itself is checked: 15 customers (8 days, 2 bindings each but
    # today 1), yesterday 2 of each, praise twice per customer.
    assert got["count_data"] == {"customer_num": 15, "follow_num": 15, "browse_num": 15, "forward_num": 15,
                                 "saved_total_num": 15, "praise_sum": 30}
    assert got["yesterday_data"]["browse_num"] == 2 and got["yesterday_data"]["customer_num"] == 2
    assert got["nearly_seven_days"]["browse_num"] == 6  # days 1, 2 and 7 before today
    assert got["nearly_thirty_days"]["browse_num"] == 10  # plus day 8 and day 30


def test_day_boundary_is_local_midnight_not_utc(settings, staff):
    # 2024-03-09 09:59:59 UTC is 23:59:59 on the 9th locally; 10:00:00 UTC is already the 10th (today).
    put(settings, [rec("access", staff, "a", datetime.datetime(2024, 3, 9, 9, 59, 59, tzinfo=UTC), action=1),
                   rec("access", staff, "b", datetime.datetime(2024, 3, 9, 10, 0, 0, tzinfo=UTC), action=1)])
    stats.rollup_if_due(settings, NOW)
    got = stats.acount_data(staff, None, settings, NOW)["ret_data"]
    assert got["yesterday_data"]["browse_num"] == 1
    assert got["count_data"]["browse_num"] == 2
    line = stats.line_info(staff, None, 2, 3, settings, NOW)["ret_data"]
    assert line == [{"statics_date": "2024-03-08", "value": 0}, {"statics_date": "2024-03-09", "value": 1}]


def test_today_comes_from_raw_records_past_days_from_the_rollup(settings, staff, admin):
    put(settings, history(staff, admin))
    stats.rollup_if_due(settings, NOW)
    # Change the roll-up behind its back: past windows follow it, today does not.
    models.DailyStats.update(browse_num=models.DailyStats.browse_num + 100).where(
        models.DailyStats.day == TODAY - DAY).execute()
    got = stats.acount_data(staff, None, settings, NOW)["ret_data"]
    assert got["yesterday_data"]["browse_num"] == 102
    put(settings, [rec("access", staff, "new", NOW, action=1)])
    after = stats.acount_data(staff, None, settings, NOW)["ret_data"]
    assert after["count_data"]["browse_num"] == got["count_data"]["browse_num"] + 1
    assert not models.DailyStats.select().where(models.DailyStats.day == TODAY).exists()


def test_dashboard_sums_are_read_once_until_another_connection_writes(settings, staff, admin):
    """The dashboard is asked every few seconds by every open console: on SQLite its sums are remembered
    until the database changes, and a write from any other connection (a thread, another process) is seen
    at the next call."""
    put(settings, history(staff, admin))
    stats.rollup_if_due(settings, NOW)
    first = stats.acount_data(staff, None, settings, NOW)["ret_data"]
    with count_queries() as counter:
        assert stats.acount_data(staff, None, settings, NOW)["ret_data"] == first
    sqlite = isinstance(models.db.obj, pw.SqliteDatabase)
    assert counter.count == 1 if sqlite else counter.count > 1  # the one PRAGMA that says nothing changed
    writer = threading.Thread(target=put, args=(settings, [rec("access", staff, "other", NOW, action=1)]))
    writer.start()
    writer.join()  # its own connection, committed
    after = stats.acount_data(staff, None, settings, NOW)["ret_data"]
    assert after["count_data"]["browse_num"] == first["count_data"]["browse_num"] + 1
    home = stats.home_page(staff, None, settings, NOW)["ret_data"]
    assert home["customer_num"] == after["count_data"]["customer_num"]


def test_answers_are_right_before_any_rollup(settings, staff, admin):
    put(settings, history(staff, admin))
    assert models.DailyStats.select().count() == 0
    assert_matches_raw(staff, settings, NOW)


# ---- the roll-up: schedule, late records, catch-up, rebuild ---------------------------------------

def test_nightly_rollup_waits_for_the_delay_after_local_midnight(settings, staff):
    put(settings, [rec("access", staff, "a", local(2024, 3, 9, 23), action=1)], now=local(2024, 3, 9, 23, 30))
    stats.rollup_if_due(settings, local(2024, 3, 9, 23, 30))
    assert stats.rollup_if_due(settings, local(2024, 3, 10, 0, 0, 30)) == []  # 30 s after midnight: not yet
    assert stats.rollup_if_due(settings, local(2024, 3, 10, 0, 1, 0))[-1] == datetime.date(2024, 3, 9)
    assert models.DailyStats.get(day=datetime.date(2024, 3, 9)).browse_num == 1
    assert models.RollupState.get_by_id(stats.ROLLUP).done_through == datetime.date(2024, 3, 9)
    assert stats.rollup_if_due(settings, local(2024, 3, 10, 0, 2, 0)) == []  # done for today


def test_nightly_rollup_recomputes_recent_days_for_records_written_without_marks(settings, staff):
    stats.rollup_if_due(settings, NOW)
    # Rows written straight into the table (no stale mark), three and four days back (Mar 7 and 6).
    customer = models.Customer.create(company=staff.company_id, openid="raw")
    for days_back in (3, 4):
        models.AccessEvent.create(company=staff.company_id, customer=customer, user=staff, action=1,
                                  happened_at=clock.day_start(TODAY - days_back * DAY, clock.zone(settings)))
    tomorrow = NOW + DAY
    done = stats.rollup_if_due(settings, tomorrow)
    assert done == [TODAY - 2 * DAY, TODAY - DAY, TODAY]  # recompute_days = 3 before tomorrow
    line = stats.line_info(staff, None, 5, 3, settings, tomorrow)["ret_data"]
    assert [p["value"] for p in line] == [0, 0, 0, 0, 0]  # not within the last 3 days: still missed
    assert stats.rebuild(TODAY - 5 * DAY, TODAY - DAY, settings) == 5
    line = stats.line_info(staff, None, 5, 3, settings, tomorrow)["ret_data"]
    assert [p["value"] for p in line] == [1, 1, 0, 0, 0]  # Mar 6 .. Mar 10


def test_late_records_for_rolled_days_count_after_the_next_check(settings, staff, admin):
    put(settings, history(staff, admin))
    stats.rollup_if_due(settings, NOW)
    late = [rec("access", staff, "late", local(2024, 3, 9, 18), action=1),
            rec("binding", staff, "late", local(2024, 2, 20, 18)),  # 19 days back: beyond recompute_days
            rec("follow_up", staff, "late", local(2024, 2, 20, 19))]
    put(settings, late)
    assert {m.day for m in models.RollupStale.select()} == {datetime.date(2024, 3, 9), datetime.date(2024, 2, 20)}
    done = stats.rollup_if_due(settings, NOW)
    assert set(done) == {datetime.date(2024, 3, 9), datetime.date(2024, 2, 20)}
    assert models.RollupStale.select().count() == 0
    assert_matches_raw(staff, settings, NOW)


def test_an_earlier_first_binding_moves_the_new_customer_to_its_day(settings, staff):
    put(settings, [rec("binding", staff, "m", local(2024, 3, 5))])
    stats.rollup_if_due(settings, NOW)
    put(settings, [rec("binding", staff, "m", local(2024, 3, 2))])
    stats.rollup_if_due(settings, NOW)
    line = stats.line_info(staff, None, 9, 1, settings, NOW)["ret_data"]
    assert {p["statics_date"]: p["value"] for p in line if p["value"]} == {"2024-03-02": 1}
    assert_matches_raw(staff, settings, NOW)


def test_missed_midnights_are_caught_up(settings, staff, admin):
    put(settings, history(staff, admin))
    first_run = stats.rollup_if_due(settings, local(2024, 2, 20, 9))
    assert first_run[0] == datetime.date(2024, 1, 25)  # from the earliest record
    # Down from the 20th to the 10th: ten midnights missed; the start-up run does them all.
    done = stats.rollup_if_due(settings, NOW)
    assert done == stats.days_between(datetime.date(2024, 2, 20), datetime.date(2024, 3, 9))
    assert models.RollupState.get_by_id(stats.ROLLUP).done_through == datetime.date(2024, 3, 9)
    assert_matches_raw(staff, settings, NOW)


def test_rollup_behind_is_answered_from_raw_records(settings, staff, admin):
    put(settings, history(staff, admin))
    stats.rollup_if_due(settings, local(2024, 3, 1, 9))  # rolled up to Feb 29 only
    assert_matches_raw(staff, settings, NOW)


def test_rebuild_repairs_a_damaged_rollup(settings, staff, admin):
    put(settings, history(staff, admin))
    stats.rollup_if_due(settings, NOW)
    models.DailyStats.update(praise_sum=999, customer_num=0).execute()
    models.DailyStats.create(company=staff.company_id, day=datetime.date(2024, 3, 5), follow_num=5)
    assert stats.rebuild(datetime.date(2024, 1, 1), TODAY - DAY, settings) == 69
    assert_matches_raw(staff, settings, NOW)


def test_rollup_is_idempotent(settings, staff, admin):
    put(settings, history(staff, admin))
    stats.rollup_if_due(settings, NOW)
    before = list(models.DailyStats.select().order_by(models.DailyStats.company, models.DailyStats.day).dicts())
    stats.rebuild(datetime.date(2024, 1, 1), TODAY - DAY, settings)
    stats.rebuild(datetime.date(2024, 1, 1), TODAY - DAY, settings)
    after = list(models.DailyStats.select().order_by(models.DailyStats.company, models.DailyStats.day).dicts())
    assert [{k: v for k, v in r.items() if k != "id"} for r in before] == \
        [{k: v for k, v in r.items() if k != "id"} for r in after]


def test_a_held_lease_keeps_other_processes_out(settings, staff):
    put(settings, [rec("access", staff, "a", local(2024, 3, 8), action=1)])
    stats._state()
    assert stats._take_lease("other-process", NOW)
    assert stats.rollup_if_due(settings, NOW) == []
    assert models.DailyStats.select().count() == 0
    # The other process died: once its lease expires the work is done here.
    later = NOW + datetime.timedelta(seconds=stats.LEASE_SECONDS + 1)
    assert datetime.date(2024, 3, 8) in stats.rollup_if_due(settings, later)
    assert models.RollupState.get_by_id(stats.ROLLUP).lease_owner == ""


def test_scheduled_rollup_logs_and_survives_a_failure(settings, monkeypatch, caplog):
    def broken(settings, now=None):
        raise RuntimeError("database went away")
    monkeypatch.setattr(stats, "rollup_if_due", broken)
    assert stats.scheduled_rollup(settings) == []
    assert "roll-up failed" in caplog.text


def cli_config(tmp_path):
    """The test's config file, with the statistics zone of these tests."""
    path = tmp_path / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["stats"] = {"timezone": TZ_NAME}
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_cli_rollup_rebuilds_a_range(settings, staff, admin, tmp_path, capsys):
    put(settings, history(staff, admin))
    server.main(["rollup", "--config", cli_config(tmp_path), "--from", "2024-03-01", "--to", "2024-03-09"])
    assert "9 day(s)" in capsys.readouterr().out
    days = {d for (d,) in models.DailyStats.select(models.DailyStats.day).tuples()}
    assert days == {datetime.date(2024, 3, d) for d in (2, 3, 8, 9)}


@pytest.mark.gen_test
async def test_service_start_catches_up_in_the_executor(app, settings, staff, monkeypatch):
    put(settings, [rec("access", staff, "a", local(2024, 3, 8), action=1)])
    monkeypatch.setattr(clock, "now", lambda: NOW)
    threads, original, finished = [], stats.scheduled_rollup, threading.Event()

    def watched(settings):
        threads.append(threading.current_thread().name)
        try:
            return original(settings)
        finally:
            finished.set()

    monkeypatch.setattr(stats, "scheduled_rollup", watched)
    jobs = server.start_background_jobs(app)
    try:
        while not finished.is_set():  # the first check has run (it catches up at start)
            await asyncio.sleep(0.01)
    finally:
        for job in jobs:
            job.stop()
    assert models.RollupState.get(models.RollupState.name == stats.ROLLUP).done_through == TODAY - DAY
    assert threads and threads[0].startswith("zgld-worker")  # not on the event loop's thread
    assert models.DailyStats.get(day=datetime.date(2024, 3, 8)).browse_num == 1


# ---- who sees what ------------------------------------------------------------------------------------

def test_companies_are_isolated(settings, staff, outsider, admin):
    put(settings, [rec("access", staff, "a", local(2024, 3, 9), action=1),
                   rec("access", outsider, "a", local(2024, 3, 9), action=1),
                   rec("access", outsider, "b", local(2024, 3, 9), action=1)])
    stats.rollup_if_due(settings, NOW)
    assert stats.acount_data(staff, None, settings, NOW)["ret_data"]["yesterday_data"]["browse_num"] == 1
    assert stats.acount_data(outsider, None, settings, NOW)["ret_data"]["yesterday_data"]["browse_num"] == 2
    assert stats.acount_data(admin, outsider.company_id, settings, NOW)["ret_data"]["yesterday_data"][
        "browse_num"] == 2
    with pytest.raises(NotFound):
        stats.acount_data(staff, outsider.company_id, settings, NOW)
    with pytest.raises(NotFound):
        stats.acount_data(admin, 9999, settings, NOW)
    assert models.Customer.select().count() == 3  # openid "a" is a customer in each company


# ---- over HTTP: shapes, validation, company_id ------------------------------------------------------

@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: NOW)


@pytest.mark.gen_test
async def test_acount_data_over_http(client, settings, staff, admin, frozen):
    put(settings, history(staff, admin))
    body = await client.get(ACOUNT, staff)
    assert body["code"] == 200 and body["msg"] == "查询成功"
    assert body["data"] == {"ret_data": expected_acount(staff.company_id, TODAY)}
    assert list(body["data"]["ret_data"]) == list(WINDOWS)
    assert list(body["data"]["ret_data"]["count_data"]) == list(stats.METRICS)


@pytest.mark.gen_test
async def test_line_info_shape_and_order(client, settings, staff, admin, frozen):
    put(settings, history(staff, admin))
    stats.rollup_if_due(settings, NOW)
    body = await client.post(LINE, staff, data={"days": 7, "index_type": 3})
    assert body["code"] == 200 and body["msg"] == "查询成功"
    points = body["data"]["ret_data"]
    assert [p["statics_date"] for p in points] == [f"2024-03-0{d}" for d in range(3, 10)]  # oldest first
    assert all(set(p) == {"statics_date", "value"} for p in points)
    assert [p["value"] for p in points] == [2, 0, 0, 0, 0, 2, 2]  # history on Mar 3, 8 and 9
    json_body = await client.post(LINE, staff, json_body={"days": 90, "index_type": 6})
    assert len(json_body["data"]["ret_data"]) == 90
    assert json_body["data"]["ret_data"] == expected_line(staff.company_id, TODAY, 90, "praise_sum")


@pytest.mark.gen_test
@pytest.mark.parametrize("form, field", [
    ({"days": 0, "index_type": 1}, "days"), ({"days": 91, "index_type": 1}, "days"),
    ({"days": "seven", "index_type": 1}, "days"), ({"index_type": 1}, "days"),
    ({"days": 7, "index_type": 0}, "index_type"), ({"days": 7, "index_type": 7}, "index_type"),
    ({"days": 7, "index_type": "x"}, "index_type"), ({"days": 7}, "index_type"),
])
async def test_line_info_bad_days_or_index_type_is_303(client, staff, form, field):
    body = await client.post(LINE, staff, data=form)
    assert body["code"] == 303 and field in body["data"]


@pytest.mark.gen_test
async def test_line_info_is_post_only(client, staff):
    assert (await client.get(LINE, staff, days=7, index_type=1))["code"] == 402


@pytest.mark.gen_test
async def test_company_id_over_http(client, settings, staff, admin, outsider, frozen):
    put(settings, [rec("access", outsider, "a", local(2024, 3, 9), action=1)])
    mine = await client.get(ACOUNT, admin)
    theirs = await client.get(ACOUNT, admin, company_id=outsider.company_id)
    assert mine["data"]["ret_data"]["count_data"]["browse_num"] == 0
    assert theirs["data"]["ret_data"]["count_data"]["browse_num"] == 1
    assert (await client.get(ACOUNT, admin, company_id=99999))["code"] == 302
    assert (await client.get(ACOUNT, staff, company_id=outsider.company_id))["code"] == 302
    assert (await client.get(ACOUNT, staff, company_id=staff.company_id))["code"] == 200
    assert (await client.get(HOME, staff, company_id=outsider.company_id))["code"] == 302
    line = await client.post(LINE, staff, data={"days": 7, "index_type": 3, "company_id": outsider.company_id})
    assert line["code"] == 302
    assert (await client.get(ACOUNT, admin, company_id="abc"))["code"] == 303


@pytest.mark.gen_test
async def test_home_page(client, settings, company, admin, staff, make_user, make_company, frozen):
    make_user(company, status=models.USER_DISABLED)
    make_user(make_company("别家公司"))  # not counted: user_count is the company's own
    models.Company.update(create_date=datetime.datetime(2024, 2, 20, 9)).where(
        models.Company.id == company.id).execute()
    put(settings, [rec("binding", staff, "a", local(2024, 3, 1)), rec("binding", staff, "b", NOW),
                   rec("binding", admin, "b", local(2024, 3, 2))])
    body = await client.get(HOME, admin)
    assert body["code"] == 200 and body["msg"] == "查询成功"
    assert body["data"] == {"ret_data": {
        "company_name": "北京合众多屏科技发展有限公司", "username": "张聪", "mingpian_num": 5, "user_count": 3,
        "expired_time": "2024-06-20", "open_up_date": "2024-02-20", "available_days": 102, "used_days": 19,
        "customer_num": 2}}
    before = row_counts()
    models.Company.update(expire_date=datetime.date(2024, 1, 1)).where(models.Company.id == company.id).execute()
    expired = await client.get(HOME, admin)
    assert expired["data"]["ret_data"]["available_days"] == 0  # never negative
    assert row_counts() == before


# ---- the demo ------------------------------------------------------------------------------------------

def test_demo_has_90_days_of_activity_once(settings, database):
    from services import demo
    demo.load(settings)
    counts = row_counts()
    demo.load(settings)
    assert row_counts() == counts  # idempotent
    admin = models.User.get(models.User.login_name == "admin")
    now = clock.now()
    curve = stats.line_info(admin, None, 90, 3, settings, now)["ret_data"]
    assert sum(1 for point in curve if point["value"]) > 80  # views nearly every day: a curve, not a spike
    assert not models.RollupStale.select().exists()
    assert_matches_raw(admin, settings, now)
