"""The project's clock: everything that reads "now" or "today" asks here.

One module, so a test moves "today" by replacing `now` instead of sleeping, and so the statistics, the
activity records and the demo data agree on what "today" is without importing each other. Days are
calendar days in the `stats.timezone` setting (docs/api.md section 10); event times are stored as naive
UTC, the other tables' dates as naive server-local time (`local_naive`).

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


def local_naive() -> datetime.datetime:
    """The time as the other tables store it: naive server-local time, to the second."""
    return now().astimezone().replace(tzinfo=None, microsecond=0)


def local_date() -> datetime.date:
    """Today on the server's own calendar (company expiry dates)."""
    return now().astimezone().date()


def epoch_seconds() -> float:
    """Seconds since the epoch from the system clock, for comparing with a client's or a file's time."""
    return time.time()


def zone(settings: Mapping[str, Any]) -> zoneinfo.ZoneInfo:
    """The zone whose calendar days the statistics count."""
    return zoneinfo.ZoneInfo(settings["stats"]["timezone"])


def local_today(settings: Mapping[str, Any], at: datetime.datetime | None = None) -> datetime.date:
    """Today (or the day of `at`) in the statistics zone."""
    return current(at).astimezone(zone(settings)).date()


def day_start(day: datetime.date, tz: datetime.tzinfo) -> datetime.datetime:
    """The UTC instant (naive, as stored) at which `day` begins in `tz`."""
    return datetime.datetime.combine(day, datetime.time(), tzinfo=tz).astimezone(UTC).replace(tzinfo=None)


def local_day(utc_time: datetime.datetime, tz: datetime.tzinfo) -> datetime.date:
    """The calendar day in `tz` of a stored (naive UTC) time."""
    return utc_time.replace(tzinfo=UTC).astimezone(tz).date()
