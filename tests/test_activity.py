"""The activity batch endpoint and the CLI import: what is stored, what is refused, and that a refusal
stores nothing."""
import datetime
import json
import threading

import pytest

import models
import server
from services import activity, stats
from tests.conftest import row_counts
from tests.test_stats import TZ_NAME, cli_config

BATCH = "/zhugeleida/admin/activity/batch"


@pytest.fixture(autouse=True)
def far_zone(settings):
    settings["stats"]["timezone"] = TZ_NAME  # UTC+14
    return settings


@pytest.fixture
def outsider(make_user, other):
    return make_user(other)


def some_records(user, n=3):
    return [{"kind": "binding", "user_id": user.id, "openid": "o1", "name": "王五", "source": 2},
            {"kind": "follow_up", "user_id": user.id, "openid": "o1", "content": "电话回访"},
            {"kind": "access", "user_id": user.id, "openid": "o2", "action": 1}][:n]


def activity_rows():
    return {m.__name__: m.select().count() for m in models.ACTIVITY_MODELS}


@pytest.mark.gen_test
async def test_batch_as_json_body_stores_everything(client, staff):
    body = await client.post(BATCH, staff, json_body={"records": some_records(staff)})
    assert body == {"code": 200, "msg": "添加成功", "data": {"binding_num": 1, "follow_num": 1, "access_num": 1,
                                                          "new_num": 3, "known_num": 0}}
    customers = {c.openid: c for c in models.Customer.select()}
    assert set(customers) == {"o1", "o2"} and customers["o1"].name == "王五"
    assert customers["o1"].first_bound_at is not None and customers["o2"].first_bound_at is None
    binding = models.CustomerBinding.get()
    assert (binding.user_id, binding.source, binding.company_id) == (staff.id, 2, staff.company_id)
    assert models.FollowUp.get().content == "电话回访"
    assert models.AccessEvent.get().action == 1


@pytest.mark.gen_test
async def test_batch_as_form_field_with_json_text(client, staff):
    body = await client.post(BATCH, staff, data={"records": json.dumps(some_records(staff))})
    assert body["code"] == 200 and body["data"]["access_num"] == 1
    assert activity_rows()["AccessEvent"] == 1


@pytest.mark.gen_test
async def test_same_openid_is_one_customer_per_company(client, staff, admin, outsider):
    await client.post(BATCH, staff, json_body={"records": some_records(staff)})
    await client.post(BATCH, admin, json_body={"records": some_records(admin)})
    await client.post(BATCH, outsider, json_body={"records": some_records(outsider)})
    assert models.Customer.select().where(models.Customer.company == staff.company_id).count() == 2
    assert models.Customer.select().where(models.Customer.company == outsider.company_id).count() == 2


@pytest.mark.gen_test
async def test_times_iso_with_offset_naive_local_and_epoch_ms(client, staff, settings):
    times = ["2024-03-09T10:00:00Z", "2024-03-10T00:00:00", "2024-03-10T00:00:00+08:00", 1709978400000,
             "1709978400000"]
    records = [{"kind": "access", "user_id": staff.id, "openid": "t", "action": 1, "time": t} for t in times]
    assert (await client.post(BATCH, staff, json_body={"records": records}))["code"] == 200
    stored = [at for (at,) in models.AccessEvent.select(models.AccessEvent.happened_at).order_by(
        models.AccessEvent.id).tuples()]
    assert stored == [datetime.datetime(2024, 3, 9, 10), datetime.datetime(2024, 3, 9, 10),  # naive = UTC+14
                      datetime.datetime(2024, 3, 9, 16), datetime.datetime(2024, 3, 9, 10),
                      datetime.datetime(2024, 3, 9, 10)]


@pytest.mark.gen_test
async def test_missing_time_is_now(client, staff):
    before = datetime.datetime.now(datetime.UTC).replace(tzinfo=None, microsecond=0)
    await client.post(BATCH, staff, json_body={"records": some_records(staff, 1)})
    at = models.CustomerBinding.get().happened_at
    assert before <= at <= datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


# ---- refusals store nothing ----

@pytest.mark.gen_test
@pytest.mark.parametrize("bad, key", [
    ({"kind": "visit"}, "records[2].kind"),
    ({"action": 14}, "records[2].action"),
    ({"action": 0}, "records[2].action"),
    ({"action": None}, "records[2].action"),
    ({"openid": ""}, "records[2].openid"),
    ({"openid": "x" * 65}, "records[2].openid"),
    ({"user_id": "abc"}, "records[2].user_id"),
    ({"time": "yesterday"}, "records[2].time"),
    ({"time": "2999-01-01T00:00:00Z"}, "records[2].time"),
    ({"time": 10**18}, "records[2].time"),
    ({"time": 1.5}, "records[2].time"),
], ids=["kind", "action-14", "action-0", "no-action", "empty-openid", "long-openid", "user-text", "time-text",
        "future", "huge-epoch", "float-time"])
async def test_one_bad_record_is_303_naming_it_and_stores_nothing(client, staff, bad, key):
    records = some_records(staff)
    records.insert(2, {"kind": "access", "user_id": staff.id, "openid": "o9", "action": 1, **bad})
    before = row_counts()
    body = await client.post(BATCH, staff, json_body={"records": records})
    assert body["code"] == 303 and list(body["data"]) == [key]
    assert row_counts() == before


@pytest.mark.gen_test
async def test_every_bad_record_is_named(client, staff):
    records = [{"kind": "access", "user_id": staff.id, "openid": "o", "action": 99}, {"kind": "binding"}, 7]
    body = await client.post(BATCH, staff, json_body={"records": records})
    assert body["code"] == 303
    assert set(body["data"]) == {"records[0].action", "records[1].user_id", "records[1].openid", "records[2]"}


@pytest.mark.gen_test
async def test_records_of_another_company_are_302_and_store_nothing(client, staff, outsider):
    before = row_counts()
    records = some_records(staff) + [{"kind": "access", "user_id": outsider.id, "openid": "o", "action": 1}]
    body = await client.post(BATCH, staff, json_body={"records": records})
    assert body["code"] == 302 and list(body["data"]) == ["records[3].user_id"]
    unknown = await client.post(BATCH, staff, json_body={"records": [{**records[0], "user_id": 99999}]})
    assert unknown["code"] == 302
    assert row_counts() == before


@pytest.mark.gen_test
async def test_administrators_may_post_for_any_company(client, admin, outsider):
    body = await client.post(BATCH, admin, json_body={"records": some_records(outsider)})
    assert body["code"] == 200
    assert {c.company_id for c in models.Customer.select()} == {outsider.company_id}


@pytest.mark.gen_test
async def test_batch_size_and_type(client, staff):
    before = row_counts()
    one = some_records(staff, 1)[0]
    too_many = await client.post(BATCH, staff, json_body={"records": [one] * (activity.MAX_BATCH + 1)})
    assert too_many["code"] == 303 and "records" in too_many["data"]
    assert (await client.post(BATCH, staff, data={"records": "{not json"}))["code"] == 301
    assert (await client.post(BATCH, staff, json_body={"records": {"kind": "access"}}))["code"] == 301
    assert (await client.post(BATCH, staff, json_body={}))["code"] == 303
    assert (await client.post(BATCH, staff, json_body={"records": []}))["code"] == 303
    assert row_counts() == before
    full = await client.post(BATCH, staff, json_body={"records": [one] * activity.MAX_BATCH})
    assert full["code"] == 200 and activity_rows()["CustomerBinding"] == activity.MAX_BATCH


@pytest.mark.gen_test
async def test_batch_needs_post_and_a_signature(client, staff):
    assert (await client.get(BATCH, staff))["code"] == 402
    assert (await client.post(BATCH, None, json_body={"records": some_records(staff)}))["code"] == 400
    assert activity_rows()["Customer"] == 0


def test_a_late_record_marks_its_day_for_recompute(settings, staff):
    now = datetime.datetime(2024, 3, 10, 12, tzinfo=datetime.UTC)  # 2024-03-11 02:00 local
    activity.store_records(None, [{"kind": "access", "user_id": staff.id, "openid": "o", "action": 1,
                                   "time": "2024-03-10T09:59:59Z"},  # 23:59:59 on the 10th locally
                                  {"kind": "access", "user_id": staff.id, "openid": "o", "action": 1,
                                   "time": "2024-03-10T10:00:00Z"}], settings, now)  # today
    assert [m.day for m in models.RollupStale.select()] == [datetime.date(2024, 3, 10)]
    assert stats.rollup_if_due(settings, now)  # the day is recomputed...
    assert models.RollupStale.select().count() == 0  # ...and the mark is gone


# ---- the CLI import ----

def write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    return str(path)


def test_import_jsonl(settings, staff, outsider, tmp_path, capsys):
    records = some_records(staff) + some_records(outsider)
    records[0]["time"] = "2024-03-01T08:00:00"
    path = write_jsonl(tmp_path / "activity.jsonl", records)
    server.main(["import-activity", "--config", cli_config(tmp_path), path])
    assert "imported 6 records: 2 bindings, 2 follow-ups, 2 access events" in capsys.readouterr().out
    assert activity_rows()["Customer"] == 4
    # The past day it touched was rolled up at the end of the import.
    row = models.DailyStats.get(company=staff.company_id, day=datetime.date(2024, 3, 1))
    assert row.customer_num == 1


def test_import_csv(settings, staff, tmp_path, capsys):
    path = tmp_path / "activity.csv"
    path.write_text("kind,user_id,openid,name,time,action,source,content\n"
                    f"binding,{staff.id},c1,赵六,2024-03-01T08:00:00+08:00,,2,\n"
                    f"access,{staff.id},c1,,1709251200000,9,,\n"
                    f"follow_up,{staff.id},c1,,,,,已联系\n", encoding="utf-8")
    server.main(["import-activity", "--config", cli_config(tmp_path), str(path)])
    assert "imported 3 records" in capsys.readouterr().out
    assert models.Customer.get().name == "赵六"
    assert models.CustomerBinding.get().source == 2 and models.AccessEvent.get().action == 9
    assert models.FollowUp.get().content == "已联系"


@pytest.mark.parametrize("content, problem", [
    ("{}\n", "line 1.kind"),
    ('{"kind": "access", "user_id": 1, "openid": "o", "action": 1}\nnot json\n', "line 2"),
    ('{"kind": "access", "user_id": 4242, "openid": "o", "action": 1}\n', "line 1.user_id"),
])
def test_import_of_a_bad_file_stores_nothing(settings, staff, tmp_path, content, problem, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text(content.replace('"user_id": 1,', f'"user_id": {staff.id},'))
    before = row_counts()
    with pytest.raises(SystemExit) as stopped:
        server.main(["import-activity", "--config", cli_config(tmp_path), str(path)])
    assert "nothing imported" in str(stopped.value) and problem in str(stopped.value)
    assert row_counts() == before


def test_import_checks_the_whole_file_before_storing(settings, staff, tmp_path):
    good = {"kind": "access", "user_id": staff.id, "openid": "o", "action": 1}
    path = write_jsonl(tmp_path / "big.jsonl", [good] * (activity.MAX_BATCH + 5) + [{**good, "action": 55}])
    before = row_counts()
    with pytest.raises(SystemExit) as stopped:
        server.main(["import-activity", "--config", cli_config(tmp_path), path])
    assert f"line {activity.MAX_BATCH + 6}.action" in str(stopped.value)
    assert row_counts() == before


def test_concurrent_batches_share_customers_and_keep_the_earliest_binding(settings, staff):
    """Four batches at once, binding the same 50 openids at different times: one customer each, whose
    first binding is the earliest of all, whichever batch created it."""
    base = datetime.datetime(2024, 3, 1)
    barrier, errors = threading.Barrier(4), []

    def worker(n):
        records = [{"kind": "binding", "user_id": staff.id, "openid": f"c{i}",
                    "time": f"{(base + datetime.timedelta(hours=(n * 7 + i) % 4)).isoformat()}Z"} for i in range(50)]
        try:
            barrier.wait()
            activity.store_records(None, records, settings)
        except Exception as e:  # reported below, in the test's thread
            errors.append(e)
        finally:
            models.db.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert models.CustomerBinding.select().count() == 200
    firsts = {c.openid: c.first_bound_at for c in models.Customer.select()}
    assert firsts == {f"c{i}": base for i in range(50)}  # every openid has a batch binding it at hour 0


def test_removing_a_company_removes_its_activity(settings, staff, outsider):
    """Events name their customer without a foreign key; the company's removal still takes them along."""
    for user in (staff, outsider):
        activity.store_records(None, some_records(user), settings)
    stats.rebuild(datetime.date.today() - datetime.timedelta(days=1), datetime.date.today(), settings)
    mine = activity_rows()
    models.User.delete().where(models.User.id == staff.id).execute()  # the events stay, without their user
    assert models.AccessEvent.select().where(models.AccessEvent.user.is_null()).count() == 1
    models.Company.delete().where(models.Company.id == staff.company_id).execute()
    left = activity_rows()
    for model in ("Customer", "CustomerBinding", "FollowUp", "AccessEvent"):
        assert left[model] == mine[model] // 2  # only the other company's
    assert {c.company_id for c in models.Customer.select()} == {outsider.company_id}
