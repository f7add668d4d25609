"""The project's clock: everything that reads "now" or "today" asks here.

One module, so a test moves "today" by replacing `now` instead of sleeping, and so the statistics, the
activity records and the demo data agree on what "today" is without importing each other.

One convention for times (docs/api.md section 1.7): every stored time is naive UTC; the API shows times
and reads dates and times in one zone, the `stats.timezone` setting (`zone`), whose calendar days the
statistics count too. `shown_time` and `stored_time` are the two conversions at those edges. The server
process's own zone (TZ) plays no part, except to read times that version 1.1 and earlier stored in it
(`utc_from_process_local`).

Signature windows and file ages (`epoch_seconds`) compare with clocks outside the process (the client's
timestamp, a file's mtime), so they read the system clock directly: moving `now` in a test does not make
every signed call look stale.
"""
import datetime
import time
import zoneinfo
from collections.abc import Mapping
from typing import Any

UTC = datetime.UTC


def now() -> datetime.datetime:
    """The current time, aware (UTC); tests replace it to move "today"."""
    return datetime.datetime.now(UTC)


def current(at: datetime.datetime | None = None) -> datetime.datetime:
    """`at` when a caller passes its own "now", else the clock's."""
    return at if at is not None else now()


def utc_naive(at: datetime.datetime | None = None) -> datetime.datetime:
    """The time as event tables store it: naive UTC."""
    return current(at).astimezone(UTC).replace(tzinfo=None)


def epoch_seconds() -> float:
    """Seconds since the epoch from the system clock, for comparing with a client's or a file's time."""
    return time.time()


def zone(settings: Mapping[str, Any]) -> zoneinfo.ZoneInfo:
    """The zone of the edges (`stats.timezone`): answers show times in it, dates and times a client sends
    are read in it, and the statistics and company expiry dates count its calendar days."""
    return zoneinfo.ZoneInfo(settings["stats"]["timezone"])


def local_today(settings: Mapping[str, Any], at: datetime.datetime | None = None) -> datetime.date:
    """Today (or the day of `at`) in the statistics zone."""
    return current(at).astimezone(zone(settings)).date()


def stored_time(local: datetime.datetime, tz: datetime.tzinfo) -> datetime.datetime:
    """A naive wall-clock time in `tz` (what a client sends) as stored: naive UTC. A time the clocks go
    back over is read as its first occurrence (fold 0). A bound so near year 1 or 9999 that UTC leaves
    the calendar is the calendar's end, so a filter from 0001-01-01 still means "from the beginning"."""
    try:
        return local.replace(tzinfo=tz, fold=0).astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        return datetime.datetime.min if local.year == datetime.MINYEAR else datetime.datetime.max


def shown_time(stored: datetime.datetime, tz: datetime.tzinfo) -> datetime.datetime:
    """A stored time (naive UTC) as the wall clock in `tz` shows it, naive."""
    return stored.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)


def day_start(day: datetime.date, tz: datetime.tzinfo) -> datetime.datetime:
    """The UTC instant (naive, as stored) at which `day` begins in `tz`."""
    return stored_time(datetime.datetime.combine(day, datetime.time()), tz)


def local_day(utc_time: datetime.datetime, tz: datetime.tzinfo) -> datetime.date:
    """The calendar day in `tz` of a stored (naive UTC) time."""
    return shown_time(utc_time, tz).date()


def utc_from_process_local(local: datetime.datetime) -> datetime.datetime:
    """A naive time in the server process's own zone (TZ) as naive UTC: how version 1.1 and earlier stored
    some tables' times (`datetime.now().astimezone()`), read back once by the schema upgrade. Those
    times do not say which side of a change of offset they were on: a time the clocks went back over
    (it happened twice) is taken as its first occurrence, before the change (fold 0); a time they
    skipped, which `now()` never wrote, is read however the C library's mktime reads it."""
    return local.replace(fold=0).astimezone(UTC).replace(tzinfo=None)
