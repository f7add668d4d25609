"""The health check behind GET /healthz: does the database answer and take writes, can the storage be
written, is there room left on the disks, is the roll-up behind; and the figures GET /metrics reads from
what every process shares."""
import contextlib
import logging
import shutil
from pathlib import Path

import peewee as pw

import metrics
from models import db, drop_if_lost
from services import stats
from services.forms import QUERY, Operation
from version import VERSION

log = logging.getLogger("zgld.health")

# How long the probe waits for SQLite's write lock: longer than any normal write holds it (a roll-up
# commits day by day), far shorter than a client's patience.
WRITE_LOCK_WAIT_MS = 1000

# docs/api.md section 12
HEALTH = Operation("健康检查：数据库、存储和磁盘空间（503 表示有故障）", source=QUERY)
# docs/api.md section 12.1
METRICS = Operation("Prometheus 指标（仅 metrics.allowed_networks 内的地址可读，其余 404）", source=QUERY)


def database_answers():
    """True if a query that reads the schema succeeds. A connection the server closed is replaced and
    the query tried once more (models.run_job does that for calls, but here the error is caught first).
    On failure the connection is dropped, so the next check (and the next request on this thread)
    connects afresh once the database is back."""
    for attempt in (1, 2):
        try:
            db.execute_sql("SELECT 1 FROM role LIMIT 1").fetchall()
            return True
        except Exception as e:  # any driver error means "not answering"; the reason goes to the log
            if attempt == 1 and drop_if_lost():
                continue
            log.warning("health: database does not answer: %s", e)
            with contextlib.suppress(Exception):
                db.close()
            return False


def database_writable():
    """SQLite: can a writer take the write lock within WRITE_LOCK_WAIT_MS (another connection holding
    BEGIN IMMEDIATE blocks every writer)? PostgreSQL: is it a primary (a standby refuses writes)?"""
    try:
        if not isinstance(db.obj, pw.SqliteDatabase):
            return not db.execute_sql("SELECT pg_is_in_recovery()").fetchone()[0]
        (configured,) = db.execute_sql("PRAGMA busy_timeout").fetchone()
        db.execute_sql(f"PRAGMA busy_timeout = {WRITE_LOCK_WAIT_MS}")
        try:
            db.execute_sql("BEGIN IMMEDIATE")
            db.execute_sql("ROLLBACK")
        finally:
            db.execute_sql(f"PRAGMA busy_timeout = {int(configured)}")
        return True
    except Exception as e:
        log.warning("health: database does not take writes: %s", e)
        return False


def storage_writable(storage):
    """True if the storage can write finished files and staged chunks now."""
    try:
        storage.check_writable()
        return True
    except OSError as e:
        log.warning("health: storage is not writable: %s", e)
        return False


def free_bytes(storage):
    """The least free space of the disks holding the storage's files and a SQLite database; None when no
    local disk holds either (a remote storage backend and PostgreSQL)."""
    free = [storage.free_bytes()]
    if isinstance(db.obj, pw.SqliteDatabase) and db.obj.database not in ("", ":memory:"):
        with contextlib.suppress(OSError):
            free.append(shutil.disk_usage(Path(db.obj.database).resolve().parent).free)
    return min((f for f in free if f is not None), default=None)


def rollup_lag(settings):
    """stats.rollup_lag_days, or None when the database does not answer (database_answers says why)."""
    try:
        return stats.rollup_lag_days(settings)
    except pw.DatabaseError as e:
        log.warning("health: roll-up progress unreadable: %s", e)
        return None


def check(storage, settings):
    """The figures /healthz answers with; `ok` is whether the service can do its work. A roll-up that lags
    is reported, not a failure: the dashboards stay right (days not rolled up are counted from the records)."""
    min_free_bytes = settings["storage"]["min_free_bytes"]
    answers = database_answers()
    writable = answers and database_writable()
    room = free_bytes(storage)
    roomy = room is None or room >= min_free_bytes
    if not roomy:
        log.warning("health: %d bytes free, below storage.min_free_bytes (%d)", room, min_free_bytes)
    storage_ok = storage_writable(storage) and roomy
    data = {"version": VERSION, "database": answers, "database_writable": writable, "storage": storage_ok,
            "free_bytes": room, "rollup_lag_days": rollup_lag(settings) if answers else None}
    return data, answers and writable and storage_ok


def open_uploads(storage):
    """storage.open_upload_count(), or None when the staging storage cannot be read (storage_writable says why)."""
    try:
        return storage.open_upload_count()
    except OSError as e:
        log.warning("health: unfinished uploads cannot be counted: %s", e)
        return None


def metrics_text(storage, settings) -> bytes:
    """GET /metrics's answer: every process's figures and those read here (one job: blocking reads). A
    figure that cannot be read is left out, never an error: a scrape must work most when something fails."""
    return metrics.exposition(rollup_lag(settings), open_uploads(storage))
