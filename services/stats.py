"""Dashboard statistics and the daily roll-up (docs/api.md section 10).

Days are calendar days in `stats.timezone`. Event times are stored as naive UTC, so a day is the UTC
interval between its two local midnights. Past days are answered from DailyStats, which the roll-up keeps
current; days it has not reached yet (normally only today), and rolled-up days that late records have
changed since (RollupStale), are counted from the raw records, so an answer is right at once.

The roll-up is safe with several processes on one database: a lease row lets one process at a time run
it, each day is recomputed under a lock on the progress row (so an older count never overwrites a newer
one) and written with an upsert, and progress lives in RollupState. A lease whose holder died is taken
over at once when the holder ran on this machine, else when it runs out.

Everything here blocks (database): handlers run it in the executor. `now` (an aware datetime, default
services.clock's) is injectable so tests can move the clock instead of sleeping.
"""
import contextlib
import datetime
import functools
import logging
import operator
import os
import socket
import uuid
from pathlib import Path

import peewee as pw

import metrics
from models import (
    AccessEvent,
    CompiledQuery,
    Customer,
    DailyStats,
    FollowUp,
    RollupStale,
    RollupState,
    User,
    locked,
    read_snapshot,
    reads,
    tuples,
    write_transaction,
)
from services import clock, scope
from services.forms import QUERY, Int, Operation

log = logging.getLogger("zgld.stats")


UTC = datetime.UTC
METRICS = ("customer_num", "follow_num", "browse_num", "forward_num", "saved_total_num", "praise_sum")

# ---- the calls (docs/api.md section 10) ----------------------------------------------------------------

COMPANY_FORM = {"company_id": Int(required=False)}  # administrators: any company; others: their own
HOME_PAGE = Operation("首页：公司的累计数字", COMPANY_FORM, source=QUERY, codes=(302,))
ACOUNT_DATA = Operation("首页：累计、昨日、近7天、近30天的六项数字", COMPANY_FORM, source=QUERY, codes=(302,))
LINE_INFO = Operation("首页趋势图：一项指标近 N 天每天的数字", {
    **COMPANY_FORM, "days": Int(min=1, max=90), "index_type": Int(min=1, max=len(METRICS))}, codes=(302,))
ACTION_METRICS = {1: "browse_num", 6: "forward_num", 8: "saved_total_num", 9: "praise_sum"}
ROLLUP = "daily"  # the RollupState row of the daily roll-up
# A holder renews its lease after every day it recomputes; one that died on another host (whose process
# table cannot be seen from here) is taken over once the lease runs out.
LEASE_SECONDS = 60
EARLIEST = datetime.datetime(1970, 1, 1)


# ---- days ----------------------------------------------------------------------------------------

def days_between(first, last):
    return [first + datetime.timedelta(days=n) for n in range((last - first).days + 1)]


# ---- counting raw records ----------------------------------------------------------------------------

def _empty():
    return dict.fromkeys(METRICS, 0)


def raw_counts(start, end, company_id=None):
    """{company_id: {metric: count}} for records in [start, end) (naive UTC); one company or all."""
    scope = {"company": company_id} if company_id is not None else {}
    counts = {}
    for company, n in run_compiled(("customers", bool(scope)), _new_customers, start=start, end=end, **scope):
        counts.setdefault(company, _empty())["customer_num"] = n
    for company, n in run_compiled(("follows", bool(scope)), _follow_ups, start=start, end=end, **scope):
        counts.setdefault(company, _empty())["follow_num"] = n
    for company, action, n in run_compiled(("access", bool(scope)), _access, start=start, end=end, **scope):
        counts.setdefault(company, _empty())[ACTION_METRICS[action]] = n
    return counts


def _new_customers(start, end, company=None):
    query = Customer.select(Customer.company, pw.fn.COUNT(Customer.id)).where(
        Customer.first_bound_at >= start, Customer.first_bound_at < end)
    return (query if company is None else query.where(Customer.company == company)).group_by(Customer.company)


def _follow_ups(start, end, company=None):
    query = FollowUp.select(FollowUp.company, pw.fn.COUNT(FollowUp.id)).where(
        FollowUp.happened_at >= start, FollowUp.happened_at < end)
    return (query if company is None else query.where(FollowUp.company == company)).group_by(FollowUp.company)


def _access(start, end, company=None):
    query = AccessEvent.select(AccessEvent.company, AccessEvent.action, pw.fn.COUNT(AccessEvent.id)).where(
        AccessEvent.happened_at >= start, AccessEvent.happened_at < end, AccessEvent.action.in_(list(ACTION_METRICS)))
    if company is not None:
        query = query.where(AccessEvent.company == company)
    return query.group_by(AccessEvent.company, AccessEvent.action)


_COMPILED = {}  # query shape -> CompiledQuery


def run_compiled(shape, build, **values):
    """The rows of `build(**values)`, a Peewee query compiled once per `shape` (models.CompiledQuery) and
    then run with new values: building the SQL costs more than running these small queries. `build` is
    called once, with a slot in place of each value; `shape` names everything else it depends on."""
    if shape not in _COMPILED:
        _COMPILED[shape] = CompiledQuery(lambda slot: build(**{name: slot(name) for name in values}))
    return _COMPILED[shape].execute(**values).fetchall()


# ---- the roll-up ---------------------------------------------------------------------------------------

def _state():
    """The progress row, created on first use (a read, not a write, on every later check)."""
    state = RollupState.get_or_none(RollupState.name == ROLLUP)
    if state is None:
        RollupState.insert(name=ROLLUP).on_conflict_ignore().execute()
        state = RollupState.get_by_id(ROLLUP)
    return state


def rollup_day(day, tz):
    """Recompute every company's metrics for `day` from the raw records (idempotent)."""
    with write_transaction():
        # The row lock (PostgreSQL) or the write lock (SQLite) serializes recomputes of the same day, so a
        # slower, older count cannot overwrite a newer one.
        locked(RollupState.select().where(RollupState.name == ROLLUP)).first()
        counts = raw_counts(clock.day_start(day, tz), clock.day_start(day + datetime.timedelta(days=1), tz))
        if counts:
            DailyStats.insert_many([{"company": company, "day": day, **metrics}
                                    for company, metrics in counts.items()]).on_conflict(
                conflict_target=[DailyStats.company, DailyStats.day],
                preserve=[getattr(DailyStats, m) for m in METRICS]).execute()
        stale = DailyStats.delete().where(DailyStats.day == day)
        if counts:
            stale = stale.where(DailyStats.company.not_in(list(counts)))
        stale.execute()  # companies whose records for the day are gone


def rebuild(first, last, settings, progress=None):
    """Recompute every day from `first` to `last` (the CLI's `rollup`); return the number of days."""
    _state()
    tz = clock.zone(settings)
    days = days_between(first, last)
    for day in days:
        rollup_day(day, tz)
        if progress:
            progress(day)
    return len(days)


def _last_due_day(settings, now):
    """The last day the roll-up should have done: yesterday once rollup_delay_seconds have passed since
    midnight (so records sent just before midnight are in), else the day before."""
    tz = clock.zone(settings)
    local = clock.current(now).astimezone(tz)
    midnight = datetime.datetime.combine(local.date(), datetime.time(), tzinfo=tz)
    waited = (local - midnight).total_seconds() >= settings["stats"]["rollup_delay_seconds"]
    return local.date() - datetime.timedelta(days=1 if waited else 2)


def _earliest_record_day(tz):
    firsts = [Customer.select(pw.fn.MIN(Customer.first_bound_at)).scalar(),
              FollowUp.select(pw.fn.MIN(FollowUp.happened_at)).scalar(),
              AccessEvent.select(pw.fn.MIN(AccessEvent.happened_at)).scalar()]
    firsts = [_as_datetime(t) for t in firsts if t is not None]
    return clock.local_day(min(firsts), tz) if firsts else None


def _as_datetime(value):
    """MIN() over a DATETIME column comes back as text on SQLite."""
    return value if isinstance(value, datetime.datetime) else datetime.datetime.fromisoformat(value)


def _plan(done_through, last_due, settings):
    """The days a roll-up run recomputes: those not done yet, plus the last `recompute_days` before them."""
    recompute = datetime.timedelta(days=max(settings["stats"]["recompute_days"], 1) - 1)
    if done_through is None:
        earliest = _earliest_record_day(clock.zone(settings))
        first = last_due - recompute if earliest is None else min(earliest, last_due - recompute)
    else:
        if done_through >= last_due:
            return []
        first = min(done_through + datetime.timedelta(days=1), last_due - recompute)
    return days_between(first, last_due)


def _take_lease(owner, now):
    """Take or renew the roll-up lease for `owner`; True if it holds it now. The lease is free when released,
    run out, or held by a process of this machine that no longer runs (it crashed mid-run): taking it over
    is logged. Each change is a compare-and-set on the holder, so two takers cannot both win."""
    until = clock.utc_naive(now)
    lease = {"lease_owner": owner, "lease_until": until + datetime.timedelta(seconds=LEASE_SECONDS),
             "lease_process": _this_process()}
    if _set_lease(lease, RollupState.lease_owner.in_(["", owner])):  # free or ours: one statement
        return True
    held = RollupState.get_by_id(ROLLUP)
    if held.lease_until is not None and held.lease_until < until:
        takeover = "its lease ran out"
    elif held.lease_owner and _process_gone(held.lease_process):
        takeover = "that process is no longer running"
    else:
        return False
    if not _set_lease(lease, RollupState.lease_owner == held.lease_owner):
        return False
    log.warning("roll-up: took over the lease of %s: %s", held.lease_process or "another process", takeover)
    return True


def _set_lease(lease, condition):
    return RollupState.update(**lease).where(RollupState.name == ROLLUP, condition).execute() == 1


def _release_lease(owner):
    RollupState.update(lease_owner="", lease_until=None, lease_process="").where(
        RollupState.name == ROLLUP, RollupState.lease_owner == owner).execute()


def _this_process():
    """host/boot/pid/start time: enough for another process on this machine to tell whether it still runs."""
    pid = os.getpid()
    return f"{socket.gethostname()}/{_boot_id()}/{pid}/{_start_time(pid)}"


def _process_gone(holder):
    """True if `holder` (_this_process() of the lease's holder) is a process of this machine that no longer
    runs. Another host's is unknown (False: its lease runs out instead). Wrongly True (two hosts of one
    name with separate process tables) would only duplicate work: recomputing a day is idempotent."""
    host, boot, pid, started = (holder.split("/") + ["", "", "", ""])[:4]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if boot and boot != _boot_id():
        return True  # the machine restarted since
    return _start_time(int(pid)) != started  # "" when no such process; another start time: the pid was reused


def _boot_id():
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid):
    """The process's start time in clock ticks after boot; "" if there is no such process (or no /proc,
    where every holder then looks alive and its lease runs out instead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name before ")" may hold spaces


def rollup_if_due(settings, now=None):
    """The scheduled callback's work, also run at start-up: roll up the days since the last run (catching
    up after downtime, recomputing the last `recompute_days`), then days that late records made stale.

    Returns the days recomputed ([] if nothing was due or another process holds the lease)."""
    state = _state()
    plan = _plan(state.done_through, _last_due_day(settings, now), settings)
    if not plan and not RollupStale.select().exists():
        return []
    owner = uuid.uuid4().hex
    if not _take_lease(owner, now):
        return []
    try:
        return _run(owner, settings, now)
    finally:
        _release_lease(owner)


def _run(owner, settings, now):
    tz = clock.zone(settings)
    state = RollupState.get_by_id(ROLLUP)  # again: another process may have advanced it meanwhile
    done = []
    for day in _plan(state.done_through, _last_due_day(settings, now), settings):
        rollup_day(day, tz)
        RollupState.update(done_through=day).where(
            RollupState.name == ROLLUP, RollupState.done_through.is_null() | (RollupState.done_through < day)
        ).execute()
        done.append(day)
        if not _take_lease(owner, now):  # renew; if it expired and another process took over, leave it the rest
            return done
    for mark in list(RollupStale.select()):
        rollup_day(mark.day, tz)
        # Only the mark that was read: a newer one (records that came in meanwhile) stays for next time.
        RollupStale.delete().where(RollupStale.day == mark.day, RollupStale.version == mark.version).execute()
        done.append(mark.day)
        if not _take_lease(owner, now):
            return done
    return done


def scheduled_rollup(settings):
    """The background job's work: never raises (a failure is logged and retried at the next check)."""
    try:
        done = rollup_if_due(settings)
    except Exception:
        log.exception("roll-up failed; it is retried at the next check")
        return []
    metrics.rollup_succeeded()
    if done:
        log.info("roll-up recomputed %d day(s): %s .. %s", len(done), min(done), max(done))
    return done


def rollup_lag_days(settings, now=None) -> int | None:
    """Days between the last rolled-up day and yesterday (in stats.timezone): 0 when up to date, more
    when roll-ups are failing or no process runs them; None before the first roll-up (/healthz, /metrics)."""
    state = RollupState.get_or_none(RollupState.name == ROLLUP)
    if state is None or state.done_through is None:
        return None
    yesterday = clock.local_today(settings, now) - datetime.timedelta(days=1)
    return max(0, (yesterday - state.done_through).days)


def mark_stale(times, settings, now=None):
    """Note the past days of `times` (naive UTC) that new records changed, so the roll-up recomputes them.

    Called inside the writer's transaction, so the marks and the records commit together."""
    tz = clock.zone(settings)
    today_starts = clock.day_start(clock.local_today(settings, now), tz)
    past = sorted({clock.local_day(t, tz) for t in times if t < today_starts})
    if past:
        RollupStale.insert_many([(day, uuid.uuid4().hex) for day in past],
                                fields=[RollupStale.day, RollupStale.version]).on_conflict(
            conflict_target=[RollupStale.day], preserve=[RollupStale.version]).as_rowcount().execute()


# ---- answering the dashboard ---------------------------------------------------------------------------



def _progress_query():
    stale = RollupStale.select(pw.fn.COUNT(RollupStale.day)).where(RollupStale.day <= RollupState.done_through)
    return RollupState.select(RollupState.done_through, stale).where(RollupState.name == ROLLUP)


def _as_date(value):
    """A DATE read through raw SQL comes back as text on SQLite."""
    return value if value is None or isinstance(value, datetime.date) else datetime.date.fromisoformat(value)


@contextlib.contextmanager
def _rollup_view():
    """(done_through, rolled-up days that late records made stale) for answering from the roll-up. Usually
    none is stale and this is one query; otherwise every read inside sees one snapshot, as the roll-up may
    recompute a stale day meanwhile (its old figure taken out and its new one counted raw would be wrong)."""
    rows = run_compiled(("progress",), _progress_query)
    if not rows or not rows[0][1]:
        yield (_as_date(rows[0][0]) if rows else None), frozenset()
        return
    with read_snapshot():
        state = RollupState.get_by_id(ROLLUP)
        stale = tuples(RollupStale.select(RollupStale.day).where(RollupStale.day <= state.done_through))
        yield state.done_through, frozenset(day for (day,) in stale)


def _runs(days):
    """Sorted days as runs of consecutive days [(first, last), ...]."""
    runs = []
    for day in sorted(days):
        if runs and runs[-1][1] + datetime.timedelta(days=1) == day:
            runs[-1][1] = day
        else:
            runs.append([day, day])
    return [tuple(run) for run in runs]


def _rolled_sums(company_id, windows, done_through):
    """One query: for each window (first, last) the sum of each metric over rolled-up days."""
    values = {"company": company_id, "done_through": done_through}
    for n, (first, last) in enumerate(windows):
        values[f"last{n}"] = min(last, done_through)
        if first is not None:
            values[f"first{n}"] = first
    shape = ("rolled", tuple(first is None for first, _ in windows))
    rows = sorted(run_compiled(shape, lambda **v: _rolled_sums_query(len(windows), **v), **values))
    return [dict(zip(METRICS, (int(v or 0) for v in figures), strict=True)) for _, *figures in rows]


def _rolled_sums_query(window_count, company, done_through, **bounds):
    """A SELECT per window, numbered, joined by UNION ALL: each sums just its range of the (company, day)
    index. (One SELECT over all the company's days with a CASE per window and metric cost five times as
    much: acount_data's largest part.)"""
    selects = []
    for n in range(window_count):
        in_window = (DailyStats.company == company) & (DailyStats.day <= bounds[f"last{n}"])
        if f"first{n}" in bounds:
            in_window &= DailyStats.day >= bounds[f"first{n}"]
        sums = [pw.fn.SUM(getattr(DailyStats, m)) for m in METRICS]
        selects.append(DailyStats.select(pw.Value(n, converter=False), *sums).where(in_window))
    return functools.reduce(operator.add, selects)  # Peewee's + is UNION ALL


def window_totals(company_id, windows, settings, now=None):
    """Each metric summed over each window (first day or None for all time, last day), from the roll-up
    for rolled-up days and from raw records for the rest and for stale days."""
    tz = clock.zone(settings)

    def compute():
        with _rollup_view() as (done_through, stale):
            return _window_totals(company_id, windows, tz, done_through, stale)
    # The sums depend only on the data and the windows (days, in the zone): the dashboard, asked every few
    # seconds by every open console, reads them again only after something was written. Callers get copies.
    totals = reads.get(("window_totals", company_id, tuple(windows), tz.key), compute)
    return [dict(total) for total in totals]


def _window_totals(company_id, windows, tz, done_through, stale):
    totals = (_rolled_sums(company_id, windows, done_through) if done_through is not None
              else [_empty() for _ in windows])
    rolled_stale = _rolled_days(company_id, stale) if stale else {}
    raw_cache = {}

    def add_raw(total, first, last):
        start = clock.day_start(first, tz) if first is not None else EARLIEST
        end = clock.day_start(last + datetime.timedelta(days=1), tz)
        if (start, end) not in raw_cache:
            raw_cache[start, end] = raw_counts(start, end, company_id).get(company_id, _empty())
        for metric, n in raw_cache[start, end].items():
            total[metric] += n

    not_rolled = done_through + datetime.timedelta(days=1) if done_through is not None else None
    for total, (first, last) in zip(totals, windows, strict=True):
        lower = [d for d in (first, not_rolled) if d is not None]
        raw_first = max(lower) if lower else None  # the part of the window the roll-up has not reached
        if raw_first is None or raw_first <= last:
            add_raw(total, raw_first, last)
        # Rolled-up days that late records changed: their rolled figures out, their raw counts in.
        changed = [day for day in stale if (first is None or day >= first) and day <= last]
        for day in changed:
            for metric, n in rolled_stale.get(day, {}).items():
                total[metric] -= n
        for run_first, run_last in _runs(changed):
            add_raw(total, run_first, run_last)
    return totals


def _rolled_days(company_id, days):
    """{day: {metric: n}} of the company's roll-up rows for `days`."""
    query = DailyStats.select(DailyStats.day, *(getattr(DailyStats, m) for m in METRICS)).where(
        DailyStats.company == company_id, DailyStats.day.in_(sorted(days)))
    return {day: dict(zip(METRICS, figures, strict=True)) for day, *figures in tuples(query)}


def acount_data(caller, company_id, settings, now=None):
    """`count_data` all time including today; `yesterday_data`; the 7 and 30 whole days before today."""
    company = scope.company_for(caller, company_id)
    today = clock.local_today(settings, now)
    day = datetime.timedelta(days=1)
    windows = [(None, today), (today - day, today - day), (today - 7 * day, today - day),
               (today - 30 * day, today - day)]
    totals = window_totals(company.id, windows, settings, now)
    names = ("count_data", "yesterday_data", "nearly_seven_days", "nearly_thirty_days")
    return {"ret_data": dict(zip(names, totals, strict=True))}


def line_info(caller, company_id, days, index_type, settings, now=None):
    """One point per day for the `days` days before today, oldest first; `index_type` 1..6 picks the metric."""
    company = scope.company_for(caller, company_id)
    metric = METRICS[index_type - 1]
    today = clock.local_today(settings, now)
    first, last = today - datetime.timedelta(days=days), today - datetime.timedelta(days=1)
    with _rollup_view() as (done_through, stale):
        values = _daily_values(company.id, metric, first, last, clock.zone(settings), done_through, stale)
    return {"ret_data": [{"statics_date": day.isoformat(), "value": values.get(day, 0)}
                         for day in days_between(first, last)]}


def _daily_values(company_id, metric, first, last, tz, done_through, stale):
    """{day: value} of one metric from `first` to `last`: rolled-up days from the roll-up (a missing row is
    0), the others and stale ones counted raw."""
    values = {}
    if done_through is not None and done_through >= first:
        column = getattr(DailyStats, metric)
        values.update(tuples(DailyStats.select(DailyStats.day, column).where(
            DailyStats.company == company_id, DailyStats.day.between(first, min(last, done_through)))))
    for day in days_between(first, last):
        if done_through is None or day > done_through or day in stale:
            end = clock.day_start(day + datetime.timedelta(days=1), tz)
            raw = raw_counts(clock.day_start(day, tz), end, company_id)
            values[day] = raw.get(company_id, _empty())[metric]
    return values


def home_page(caller, company_id, settings, now=None):
    """The company's card quota and validity, the caller's name, and its customers so far."""
    company = scope.company_for(caller, company_id)
    today = clock.local_today(settings, now)
    opened = clock.local_day(company.create_date, clock.zone(settings))
    expires = company.expire_date
    customers = window_totals(company.id, [(None, today)], settings, now)[0]["customer_num"]
    return {"ret_data": {
        "company_name": company.name,
        "username": caller.username,
        "mingpian_num": company.mingpian_available_num,
        "user_count": run_compiled(("users",), _user_count, company=company.id)[0][0],
        "expired_time": expires.isoformat() if expires else "",
        "open_up_date": opened.isoformat(),
        "available_days": max((expires - today).days, 0) if expires else 0,
        "used_days": max((today - opened).days, 0),
        "customer_num": customers,
    }}


def _user_count(company):
    return User.select(pw.fn.COUNT(User.id)).where(User.company == company)
