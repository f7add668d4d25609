"""Statistics that heal at once: a record for a past day counts in the dashboard as soon as it is stored
(not at the next roll-up check), consistently while the roll-up recomputes that day; and a roll-up lease
whose holder was killed is taken over at once, and logged."""
import datetime
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import models
from services import clock, stats
from tests import test_stats
from tests.test_stats import ACOUNT, DAY, LINE, NOW, TODAY, expected_acount, expected_line, history, local, put, rec

ROOT = Path(__file__).resolve().parent.parent
BATCH = "/zhugeleida/admin/activity/batch"
# the statistics tests' zone (UTC+14) and people
far_zone, company, admin, staff = test_stats.far_zone, test_stats.company, test_stats.admin, test_stats.staff


@pytest.fixture
def frozen(monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: NOW)


@pytest.mark.gen_test(timeout=60)  # the set-up rolls up 45 days: seconds on a busy PostgreSQL
async def test_yesterdays_events_sent_by_batch_count_at_once(client, settings, staff, admin, frozen):
    put(settings, history(staff, admin))
    stats.rollup_if_due(settings, NOW)
    before = (await client.get(ACOUNT, staff))["data"]["ret_data"]
    late = [rec("access", staff, "late", local(2024, 3, 9, 18), action=1),
            rec("binding", staff, "late", local(2024, 3, 9, 18)),
            rec("access", staff, "late", local(2024, 2, 20, 18), action=9)]  # beyond recompute_days
    assert (await client.post(BATCH, staff, json_body={"records": late}))["code"] == 200
    after = (await client.get(ACOUNT, staff))["data"]["ret_data"]
    assert after == expected_acount(staff.company_id, TODAY)
    assert after["yesterday_data"]["browse_num"] == before["yesterday_data"]["browse_num"] + 1
    assert after["yesterday_data"]["customer_num"] == before["yesterday_data"]["customer_num"] + 1
    assert after["nearly_thirty_days"]["praise_sum"] == before["nearly_thirty_days"]["praise_sum"] + 1
    line = await client.post(LINE, staff, data={"days": 30, "index_type": 3})
    assert line["data"]["ret_data"] == expected_line(staff.company_id, TODAY, 30, "browse_num")
    home = await client.get("/zhugeleida/admin/home_page", staff)
    assert home["data"]["ret_data"]["customer_num"] == after["count_data"]["customer_num"]
    assert models.RollupStale.select().count() == 2  # no roll-up has run: the answers counted raw


def test_a_stale_day_recomputed_while_answering_is_counted_once(settings, staff, admin, monkeypatch):
    """The roll-up recomputes the stale day between the dashboard's reads of the roll-up: the answer is
    still right, as every read sees one snapshot."""
    put(settings, history(staff, admin))
    stats.rollup_if_due(settings, NOW)
    put(settings, [rec("access", staff, "late", local(2024, 3, 9, 18), action=1)])
    recomputed = []
    original = stats._rolled_days

    def rollup_meanwhile(company_id, days):
        def run():
            try:
                recomputed.extend(stats.rollup_if_due(settings, NOW))
            finally:
                models.db.close()
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        return original(company_id, days)

    monkeypatch.setattr(stats, "_rolled_days", rollup_meanwhile)
    got = stats.acount_data(staff, None, settings, NOW)["ret_data"]
    assert recomputed == [TODAY - DAY]
    assert got == expected_acount(staff.company_id, TODAY)


def test_a_late_record_stored_while_its_day_is_recomputed_keeps_the_day_marked(settings, staff, admin, monkeypatch):
    """A record for a stale day commits after the roll-up has recomputed that day but before it clears the
    day's mark: the newer mark stays (the day is counted raw, then recomputed next time), so the record is
    never lost from the dashboard."""
    put(settings, history(staff, admin))
    stats.rollup_if_due(settings, NOW)
    put(settings, [rec("access", staff, "late", local(2024, 3, 9, 18), action=1)])  # yesterday, marked stale
    original, recomputed = stats.rollup_day, []

    def recompute_then_another_arrives(day, tz):
        original(day, tz)
        if not recomputed:
            recomputed.append(day)
            put(settings, [rec("access", staff, "later", local(2024, 3, 9, 19), action=1)])

    monkeypatch.setattr(stats, "rollup_day", recompute_then_another_arrives)
    assert stats.rollup_if_due(settings, NOW) == [TODAY - DAY] == recomputed  # only the stale day
    assert models.RollupStale.select().where(models.RollupStale.day == TODAY - DAY).exists()
    assert stats.acount_data(staff, None, settings, NOW)["ret_data"] == expected_acount(staff.company_id, TODAY)


# ---- the roll-up lease -----------------------------------------------------------------------------------

HOLDER = """
import datetime, sys
sys.path.insert(0, sys.argv[1])
import config, models
from services import stats
settings = config.load(sys.argv[2])
settings["stats"]["timezone"] = sys.argv[3]
models.connect(settings["database"]["url"])

def stuck(day, tz):  # the roll-up in progress: holds the lease until this process is killed
    print("rolling up", day, flush=True)
    sys.stdin.readline()

stats.rollup_day = stuck
stats.rollup_if_due(settings, datetime.datetime.fromisoformat(sys.argv[4]))
"""


@pytest.fixture
def holder(settings, tmp_path):
    """Another process, stopped in the middle of a roll-up while it holds the lease."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(ROOT), str(tmp_path / "config.yaml"),
                                settings["stats"]["timezone"], NOW.isoformat()],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().startswith("rolling up")
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()
    process.stdin.close()
    process.stdout.close()


def test_a_killed_holders_lease_is_taken_over_at_once(settings, staff, holder, caplog):
    put(settings, [rec("access", staff, "a", local(2024, 3, 8), action=1)])
    assert stats.rollup_if_due(settings, NOW) == []  # the holder runs: it is left alone
    holder.kill()
    holder.wait()
    with caplog.at_level(logging.WARNING, logger="zgld.stats"):
        done = stats.rollup_if_due(settings, NOW)  # the same moment: its lease has not run out
    assert datetime.date(2024, 3, 8) in done
    assert models.DailyStats.get(day=datetime.date(2024, 3, 8)).browse_num == 1
    assert f"/{holder.pid}/" in caplog.text and "no longer running" in caplog.text
    assert models.RollupState.get_by_id(stats.ROLLUP).lease_owner == ""


def test_a_lease_held_on_another_host_waits_until_it_runs_out(settings, staff, caplog):
    put(settings, [rec("access", staff, "a", local(2024, 3, 8), action=1)])
    stats._state()
    models.RollupState.update(lease_owner="elsewhere", lease_process="other-host/boot/1/1",
                              lease_until=NOW.astimezone(datetime.UTC).replace(tzinfo=None)
                              + datetime.timedelta(seconds=stats.LEASE_SECONDS)).execute()
    assert stats.rollup_if_due(settings, NOW) == []  # its process table cannot be seen from here
    later = NOW + datetime.timedelta(seconds=stats.LEASE_SECONDS + 1)
    with caplog.at_level(logging.WARNING, logger="zgld.stats"):
        assert datetime.date(2024, 3, 8) in stats.rollup_if_due(settings, later)
    assert "other-host/boot/1/1" in caplog.text and "ran out" in caplog.text


def test_a_reused_pid_or_a_restarted_machine_is_a_dead_holder():
    me = stats._this_process()
    host, boot, pid, started = me.split("/")
    assert not stats._process_gone(me)
    assert stats._process_gone(f"{host}/{boot}/{pid}/{int(started) + 1}")  # another process with our pid
    assert stats._process_gone(f"{host}/another-boot/{pid}/{started}")
    assert not stats._process_gone(f"not-{host}/{boot}/{pid}/0")  # another host: unknown
