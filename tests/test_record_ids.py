"""Record ids: a record whose `record_id` is already stored (per company and kind) is not stored again,
through the batch endpoint and through `import-activity`, whose lines without one get an id made from
their content; an import killed half-way and run again stores every record once."""
import contextlib
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import peewee as pw
import pytest

import models
import server
from services import activity, stats
from tests.conftest import row_counts
from tests.test_stats import TZ_NAME, cli_config

BATCH = "/zhugeleida/admin/activity/batch"
ROOT = Path(__file__).resolve().parent.parent
EVENT_MODELS = (models.CustomerBinding, models.FollowUp, models.AccessEvent)


def days_ago(n, clock="08:00:00"):
    """A local time n days back: recent, so the roll-up at the end of an import has few days to do."""
    return f"{datetime.date.today() - datetime.timedelta(days=n)}T{clock}"


@pytest.fixture(autouse=True)
def far_zone(settings):
    settings["stats"]["timezone"] = TZ_NAME
    return settings


@pytest.fixture
def staff(make_company, make_user):
    return make_user(make_company("本公司"))


@pytest.fixture
def outsider(make_company, make_user):
    return make_user(make_company("别家公司"))


def event_rows():
    return {m.__name__: m.select().count() for m in EVENT_MODELS}


def with_ids(user, prefix="r"):
    return [{"kind": "binding", "user_id": user.id, "openid": "o1", "record_id": f"{prefix}1"},
            {"kind": "follow_up", "user_id": user.id, "openid": "o1", "content": "回访", "record_id": f"{prefix}2"},
            {"kind": "access", "user_id": user.id, "openid": "o2", "action": 1, "record_id": f"{prefix}3"}]


# ---- the batch endpoint ----------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_a_batch_sent_again_stores_nothing_twice(client, staff):
    first = await client.post(BATCH, staff, json_body={"records": with_ids(staff)})
    assert first["data"] == {"binding_num": 1, "follow_num": 1, "access_num": 1, "new_num": 3, "known_num": 0}
    stored = row_counts()
    again = await client.post(BATCH, staff, json_body={"records": with_ids(staff)})
    assert again["code"] == 200
    assert again["data"] == {"binding_num": 0, "follow_num": 0, "access_num": 0, "new_num": 0, "known_num": 3}
    assert row_counts() == stored
    mixed = with_ids(staff)[2:] + [{"kind": "access", "user_id": staff.id, "openid": "o2", "action": 9,
                                    "record_id": "r4"}]
    body = await client.post(BATCH, staff, json_body={"records": mixed})
    assert body["data"] == {"binding_num": 0, "follow_num": 0, "access_num": 1, "new_num": 1, "known_num": 1}
    assert event_rows() == {"CustomerBinding": 1, "FollowUp": 1, "AccessEvent": 2}


def test_known_records_change_nothing_not_even_the_rollups_marks(settings, staff):
    records = [{**r, "time": days_ago(4)} for r in with_ids(staff)]
    activity.store_records(None, records, settings)
    stats.rollup_if_due(settings)
    assert not models.RollupStale.select().exists()
    before = row_counts()
    assert activity.store_records(None, records, settings)["known_num"] == 3
    assert row_counts() == before  # no day marked for recomputing, no customer touched


@pytest.mark.gen_test
async def test_an_id_is_unique_per_company_and_kind_and_repeats_in_a_batch_count_once(client, staff, outsider):
    same_id = [{"kind": kind, "user_id": staff.id, "openid": "o", "record_id": "x", **extra}
               for kind, extra in (("binding", {}), ("follow_up", {}), ("access", {"action": 1}))]
    repeated = [{"kind": "access", "user_id": staff.id, "openid": "o", "action": 6, "record_id": "y"}] * 3
    body = await client.post(BATCH, staff, json_body={"records": same_id + repeated})
    assert body["data"]["new_num"] == 4 and body["data"]["known_num"] == 2
    theirs = await client.post(BATCH, outsider, json_body={"records": [{**same_id[2], "user_id": outsider.id}]})
    assert theirs["data"]["new_num"] == 1  # the same id in another company is another record
    assert event_rows() == {"CustomerBinding": 1, "FollowUp": 1, "AccessEvent": 3}


@pytest.mark.gen_test
async def test_records_without_an_id_are_all_stored(client, staff):
    plain = [{"kind": "access", "user_id": staff.id, "openid": "o", "action": 1}] * 2
    for _ in range(2):
        body = await client.post(BATCH, staff, json_body={"records": plain})
        assert body["data"]["new_num"] == 2 and body["data"]["known_num"] == 0
    assert event_rows()["AccessEvent"] == 4


@pytest.mark.gen_test
@pytest.mark.parametrize("record_id", ["x" * 65, {"id": 1}, ["a"], "a\x00b"])
async def test_a_bad_record_id_is_303_and_stores_nothing(client, staff, record_id):
    records = with_ids(staff)
    records[1]["record_id"] = record_id
    before = row_counts()
    body = await client.post(BATCH, staff, json_body={"records": records})
    assert body["code"] == 303 and list(body["data"]) == ["records[1].record_id"]
    assert row_counts() == before


def test_the_same_batch_at_once_from_two_senders_is_stored_once(settings, staff, monkeypatch):
    """Both senders find every id unknown before either writes (held at a barrier): the unique index
    and the insert that leaves out conflicting rows still store each record once, and the answers
    add up."""
    records = [{"kind": "access", "user_id": staff.id, "openid": f"c{i % 7}", "action": 1, "record_id": f"id{i}"}
               for i in range(200)]
    barrier, answers, errors = threading.Barrier(2), [], []
    original = activity._unknown_records

    def unknown_then_wait(*args):
        fresh = original(*args)
        barrier.wait(timeout=30)
        return fresh

    monkeypatch.setattr(activity, "_unknown_records", unknown_then_wait)

    def send():
        try:
            answers.append(activity.store_records(None, records, settings))
        except Exception as e:  # reported below, in the test's thread
            errors.append(e)
        finally:
            models.db.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert models.AccessEvent.select().count() == 200
    assert sum(a["new_num"] for a in answers) == 200 and sum(a["known_num"] for a in answers) == 200


# ---- import-activity ------------------------------------------------------------------------------------

def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return str(path)


def import_file(tmp_path, path, capsys):
    server.main(["import-activity", "--config", cli_config(tmp_path), str(path)])
    return capsys.readouterr().out


def test_a_file_imported_twice_is_stored_once(settings, staff, tmp_path, capsys):
    plain = {"kind": "access", "user_id": staff.id, "openid": "o", "action": 1, "time": days_ago(3)}
    records = with_ids(staff) + [plain, plain, {**plain, "action": 9}, {**plain, "time": None}]
    path = write_jsonl(tmp_path / "activity.jsonl", records)
    first = import_file(tmp_path, path, capsys)
    assert "imported 7 records" in first and "7 new, 0 already known" in first
    stored = row_counts()
    assert event_rows()["AccessEvent"] == 5  # two identical lines are two records
    second = import_file(tmp_path, path, capsys)
    assert "0 new, 7 already known" in second
    assert row_counts() == stored


def test_an_export_that_contains_an_imported_file_adds_only_the_rest(settings, staff, tmp_path, capsys):
    """Ids made from content do not depend on a line's place: a later export holding the same lines in
    another order, with the same repeats, and new ones stores only the new ones."""
    line = {"kind": "follow_up", "user_id": staff.id, "openid": "o", "content": "回访", "time": days_ago(3)}
    other = {**line, "content": "再访"}
    import_file(tmp_path, write_jsonl(tmp_path / "march.jsonl", [line, other, line]), capsys)
    later = write_jsonl(tmp_path / "later.jsonl", [other, {**line, "time": days_ago(2)}, line, line, line])
    assert "2 new, 3 already known" in import_file(tmp_path, later, capsys)
    assert models.FollowUp.select().count() == 5


def test_csv_lines_with_and_without_a_record_id(settings, staff, tmp_path, capsys):
    path, at = tmp_path / "activity.csv", days_ago(3)
    path.write_text("kind,user_id,openid,time,action,record_id\n"
                    f"access,{staff.id},c1,{at},1,a-1\n"
                    f"access,{staff.id},c1,{at},1,\n"
                    f"access,{staff.id},c1,{at},1,\n", encoding="utf-8")
    assert "3 new" in import_file(tmp_path, path, capsys)
    assert "0 new, 3 already known" in import_file(tmp_path, path, capsys)
    # The same line as JSON: the same content, so the same id.
    json_line = {"kind": "access", "user_id": staff.id, "openid": "c1", "time": at, "action": 1}
    assert "0 new, 1 already known" in import_file(tmp_path, write_jsonl(tmp_path / "a.jsonl", [json_line]), capsys)
    assert models.AccessEvent.select().count() == 3


@contextlib.contextmanager
def activity_writes_blocked():
    """Hold the database's write lock (SQLite) or lock the activity tables (PostgreSQL) from the test, so
    the importer cannot commit another batch while it is being killed."""
    with models.write_transaction():
        if isinstance(models.db.obj, pw.PostgresqlDatabase):
            tables = ", ".join(f'"{m._meta.table_name}"' for m in models.ACTIVITY_MODELS)
            models.db.execute_sql(f"LOCK TABLE {tables} IN EXCLUSIVE MODE")
        yield


def wait_for_progress(stream, at_least):
    """Read the importer's progress bar (stderr) until it shows `at_least` records stored."""
    seen = b""
    while chunk := os.read(stream.fileno(), 4096):
        seen += chunk
        counts = [int(n) for n in re.findall(rb"\| *(\d+)/\d+ \[", seen)]
        if counts and max(counts) >= at_least:
            return max(counts)
    raise AssertionError(f"the import ended before storing {at_least} records: {seen[-500:]!r}")


def test_an_import_killed_half_way_then_run_again_stores_each_record_once(settings, staff, tmp_path, capsys):
    total = 12 * activity.MAX_BATCH
    records = []
    for i in range(total):
        record = {"kind": "access", "user_id": staff.id, "openid": f"c{i % 50}", "action": 1 + i % 12,
                  "time": days_ago(1 + i % 9, f"{i % 24:02d}:{i % 60:02d}:00")}
        if i % 2:
            record["record_id"] = f"r{i}"
        records.append(record)
    records[11] = dict(records[10])  # two identical lines without an id: two records
    path = write_jsonl(tmp_path / "big.jsonl", records)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    importer = subprocess.Popen([sys.executable, str(ROOT / "server.py"), "import-activity", "--config",
                                 cli_config(tmp_path), path], cwd=tmp_path, env=env, stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL)
    try:
        wait_for_progress(importer.stderr, activity.MAX_BATCH)
        with activity_writes_blocked():
            importer.send_signal(signal.SIGKILL)
            assert importer.wait(timeout=30) == -signal.SIGKILL
    finally:
        if importer.poll() is None:
            importer.kill()
        importer.stderr.close()
    stored = models.AccessEvent.select().count()
    assert activity.MAX_BATCH <= stored < total  # killed half-way
    out = import_file(tmp_path, path, capsys)
    assert f"{total - stored} new, {stored} already known" in out
    assert models.AccessEvent.select().count() == total
    assert models.AccessEvent.select().where(models.AccessEvent.record_id.is_null()).count() == 0


# ---- the schema upgrade ------------------------------------------------------------------------------------

def test_tables_made_before_record_ids_gain_the_column_and_its_unique_index(database, settings, staff):
    activity.store_records(None, [{"kind": "access", "user_id": staff.id, "openid": "o", "action": 1}], settings)
    table = models.AccessEvent._meta.table_name
    database.execute_sql(f'DROP INDEX "{table}_company_id_record_id"')
    database.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "record_id"')
    try:
        assert "record_id" not in {c.name for c in database.get_columns(table)}
        models.create_schema()
    finally:
        models.create_schema()  # whatever happened, the shared database keeps the current schema
    assert "record_id" in {c.name for c in database.get_columns(table)}
    assert any(i.unique and i.columns == ["company_id", "record_id"] for i in database.get_indexes(table))
    assert models.AccessEvent.select().count() == 1  # the old row is kept, without an id
    once = {"kind": "access", "user_id": staff.id, "openid": "o", "action": 1, "record_id": "z"}
    assert activity.store_records(None, [once], settings)["new_num"] == 1
    assert activity.store_records(None, [once], settings)["known_num"] == 1
