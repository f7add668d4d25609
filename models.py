"""Peewee models, the database proxy and its set-up.

One code path serves SQLite (the default) and PostgreSQL: `connect(url)` picks the database from the URL.
Connections are per thread (Peewee's default), so each executor thread has its own.
"""
import contextlib
import datetime
import errno
import logging
import select
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import peewee as pw
from playhouse.db_url import connect as connect_url
from playhouse.db_url import parse as parse_url
from playhouse.migrate import PostgresqlMigrator, SchemaMigrator

import metrics
from services import clock
from services.errors import Busy, Stopping, StorageFull

db = pw.DatabaseProxy()

ROLE_ADMIN = 1
ROLE_USER = 2
BUILTIN_ROLES = {ROLE_ADMIN: "管理员", ROLE_USER: "普通用户"}

USER_ENABLED = 1
USER_DISABLED = 2

PRODUCT_COMPANY = 1
PRODUCT_PERSONAL = 2

PRODUCT_ON_SHELF = 1
PRODUCT_OFF_SHELF = 2
PRODUCT_RECOMMENDED = 3
PRODUCT_STATUS_LABELS = {PRODUCT_ON_SHELF: "已发布", PRODUCT_OFF_SHELF: "已下架", PRODUCT_RECOMMENDED: "推荐"}

PICTURE_COVER = 1
PICTURE_INTRO = 2


def now() -> datetime.datetime:
    """The time as the tables' dates (create_date, last_login_date, ...) store it: naive UTC, like every
    stored time (services.clock), to the second, which is enough for all of them."""
    return clock.utc_naive().replace(microsecond=0)


class BaseModel(pw.Model):
    # Peewee gives every model without a primary key of its own an auto-increment `id`; declared here, once,
    # for the type checker only (an annotation without a value adds no column).
    id: "pw.AutoField[int]"

    class Meta:
        database = db
        legacy_table_names = False


class Company(BaseModel):
    name = pw.CharField(max_length=128, unique=True)
    mingpian_available_num = pw.IntegerField(default=0)  # card quota: enabled users allowed
    expire_date = pw.DateField(null=True)
    create_date = pw.DateTimeField(default=now)
    corp_id = pw.CharField(max_length=128, default="")  # 企业微信 corp id, kept from the old admin form
    tongxunlu_secret = pw.CharField(max_length=255, default="")  # 企业微信 contacts secret: never answered in full


class Role(BaseModel):
    name = pw.CharField(max_length=64, unique=True)
    create_date = pw.DateTimeField(default=now)


class AutoIncrementId(pw.AutoField):
    """An id that is never given again, even after the newest row is deleted: SQLite's AUTOINCREMENT
    (PostgreSQL's sequences never reuse). A reused user id would inherit what is keyed by it, such as the
    unfinished uploads of a deleted user."""

    def ddl(self, ctx):
        node = super().ddl(ctx)
        return pw.NodeList((node, pw.SQL("AUTOINCREMENT"))) if isinstance(db.obj, pw.SqliteDatabase) else node


class User(BaseModel):
    id = AutoIncrementId()
    company = pw.ForeignKeyField(Company, backref="users", on_delete="RESTRICT")
    role = pw.ForeignKeyField(Role, backref="users", on_delete="RESTRICT")
    login_name = pw.CharField(max_length=64, unique=True)
    username = pw.CharField(max_length=64)
    password_hash = pw.CharField(max_length=255)
    status = pw.SmallIntegerField(default=USER_ENABLED)
    token = pw.CharField(max_length=32, unique=True)
    position = pw.CharField(max_length=64, default="")
    phone = pw.CharField(max_length=32, default="")
    avatar = pw.CharField(max_length=255, default="")
    create_date = pw.DateTimeField(default=now)
    last_login_date = pw.DateTimeField(null=True)
    mingpian_phone = pw.CharField(max_length=32, default="")  # the phone printed on the card (old admin form)
    # Set when an administrator resets the password: login says so (is_reset_password) until the user
    # chooses their own with modify_password.
    must_change_password = pw.BooleanField(default=False)
    company_id: int  # the foreign keys' columns, made by Peewee
    role_id: int

    @property
    def is_admin(self):
        return self.role_id == ROLE_ADMIN


class Product(BaseModel):
    company = pw.ForeignKeyField(Company, backref="products", on_delete="CASCADE")
    user = pw.ForeignKeyField(User, backref="products", null=True, on_delete="SET NULL")  # owner of a personal product
    product_type = pw.SmallIntegerField()
    name = pw.CharField(max_length=128)
    price = pw.CharField(max_length=64)
    reason = pw.CharField(max_length=1024)
    status = pw.SmallIntegerField(default=PRODUCT_ON_SHELF)
    create_date = pw.DateTimeField(default=now)

    class Meta:
        # the second serves an administrator's list of every company in date order: without it SQLite
        # computes every row's cover before sorting (57 ms instead of 0.2 ms for 10,000 products)
        indexes = ((("company", "product_type", "create_date", "status"), False),
                   (("product_type", "create_date"), False))


class ProductArticle(BaseModel):
    product = pw.ForeignKeyField(Product, backref="articles", on_delete="CASCADE")
    title = pw.CharField(max_length=256, null=True)
    content = pw.TextField(null=True)
    order = pw.IntegerField(default=0)


class ProductPicture(BaseModel):
    user = pw.ForeignKeyField(User, backref="pictures", null=True, on_delete="SET NULL")  # uploader
    company = pw.ForeignKeyField(Company, backref="pictures", on_delete="CASCADE")
    product = pw.ForeignKeyField(Product, backref="pictures", null=True, on_delete="SET NULL")
    picture_type = pw.SmallIntegerField(default=PICTURE_COVER)
    url = pw.CharField(max_length=255)
    order = pw.IntegerField(default=0)
    upload_key = pw.CharField(max_length=128, null=True, unique=True)  # uploader + upload timestamp: completes once
    byte_size = pw.IntegerField(default=0)
    width = pw.IntegerField(default=0)
    height = pw.IntegerField(default=0)
    sha256 = pw.CharField(max_length=64, default="")
    create_date = pw.DateTimeField(default=now)

    class Meta:
        # A product list takes each product's first cover (by order, then id) straight from this index
        # instead of sorting its pictures: 20% of a product_list page's SQL time.
        indexes = ((("product", "picture_type", "order", "id"), False),)


class UsedSignature(BaseModel):
    """Each signature (user, timestamp) seen within the skew window, in every process: a POST's with the
    fingerprint of its call and its answer (written in the work's transaction: services.calls), a GET's or
    an upload call's with an empty fingerprint. (Older versions kept a table `used_signature` keyed by path:
    it is left as it was, unused.)"""
    user_id = pw.IntegerField()
    timestamp = pw.BigIntegerField(index=True)  # pruned by it
    fingerprint = pw.CharField(max_length=64, default="")
    answer = pw.TextField(null=True)

    class Meta:
        table_name = "signature_use"
        primary_key = pw.CompositeKey("user_id", "timestamp")


class LoginThrottle(BaseModel):
    """Login attempts per key (a login name from one address, or one address), shared by every process.
    (Replaces the login_failure table of earlier versions, keyed by login name alone; that table is left
    unused in files made by them.)"""
    key = pw.CharField(max_length=128, primary_key=True)
    attempts = pw.IntegerField(default=0)
    window_start = pw.DateTimeField(default=now, index=True)


# ---- customer activity and the daily statistics roll-up (issue 4) ------------------------------------
# Event times are naive UTC datetimes, so a day boundary never depends on the server's zone: statistics
# convert the bounds of a calendar day in `stats.timezone` to UTC and compare.
# Follow-ups and access events name their customer by a plain column, not a foreign key: customers are
# never removed one by one, and a company's removal reaches its events through their indexed `company`.
# A customer key would make that removal look for each customer's events in unindexed columns (or cost
# one more index on the largest tables), and its check per row costs ingestion on PostgreSQL about 7 %.

BINDING_SCAN = 1
BINDING_FORWARD = 2

ACTION_LABELS = {1: "查看名片", 2: "查看产品", 3: "查看动态", 4: "查看官网", 5: "复制微信", 6: "转发名片",
                 7: "咨询产品", 8: "保存电话", 9: "点赞", 10: "拨打电话", 11: "播放语音", 12: "复制邮箱",
                 13: "授权访问"}


RECORD_ID_LENGTH = 64


def utcnow() -> datetime.datetime:
    """The time as the event tables store it: naive UTC."""
    return clock.utc_naive()


class Customer(BaseModel):
    """A WeChat visitor, per company (the same openid in two companies is two customers)."""
    company = pw.ForeignKeyField(Company, backref="customers", on_delete="CASCADE", index=False)
    openid = pw.CharField(max_length=64)
    name = pw.CharField(max_length=64, default="")
    create_date = pw.DateTimeField(default=utcnow)  # UTC
    first_bound_at = pw.DateTimeField(null=True)  # UTC; its first binding to a user: the day it counts as new

    class Meta:
        indexes = ((("company", "openid"), True), (("company", "first_bound_at"), False),
                   (("first_bound_at", "company"), False))


class CustomerBinding(BaseModel):
    """A customer bound to a user's card (source 1 scan, 2 forward). `company` is the user's, copied so
    counts need no join."""
    company = pw.ForeignKeyField(Company, on_delete="CASCADE", index=False)
    customer = pw.ForeignKeyField(Customer, backref="bindings", on_delete="CASCADE")
    user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL", index=False)
    source = pw.SmallIntegerField(default=BINDING_SCAN)
    happened_at = pw.DateTimeField()  # UTC
    record_id = pw.CharField(max_length=RECORD_ID_LENGTH, null=True)  # the sender's id: stored once

    class Meta:
        indexes = ((("company",), False),)


class FollowUp(BaseModel):
    """A follow-up record a user wrote about a customer."""
    company = pw.ForeignKeyField(Company, on_delete="CASCADE", index=False)
    customer = pw.IntegerField(column_name="customer_id")  # a Customer id (see above)
    user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL", index=False)
    content = pw.TextField(default="")
    happened_at = pw.DateTimeField()  # UTC
    record_id = pw.CharField(max_length=RECORD_ID_LENGTH, null=True)

    class Meta:
        indexes = ((("company", "happened_at"), False), (("happened_at", "company"), False))


class AccessEvent(BaseModel):
    """A customer's action on a user's card (ACTION_LABELS)."""
    company = pw.ForeignKeyField(Company, on_delete="CASCADE", index=False)
    customer = pw.IntegerField(column_name="customer_id")  # a Customer id (see above)
    user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL", index=False)
    action = pw.SmallIntegerField()
    happened_at = pw.DateTimeField()  # UTC
    record_id = pw.CharField(max_length=RECORD_ID_LENGTH, null=True)

    class Meta:
        indexes = ((("company", "happened_at", "action"), False), (("happened_at", "company", "action"), False))


for _model in (CustomerBinding, FollowUp, AccessEvent):
    # A record id is unique per company and kind. Partial: most records come without one, and those then
    # cost no index entry (and no ingestion time). create_tables adds it to a table made by an older version.
    _model.add_index(_model.index(_model.company, _model.record_id, unique=True).where(
        _model.record_id.is_null(False)))


class DailyStats(BaseModel):
    """The roll-up: one company's six metrics for one calendar day in stats.timezone."""
    company = pw.ForeignKeyField(Company, on_delete="CASCADE", index=False)
    day = pw.DateField()
    customer_num = pw.IntegerField(default=0)
    follow_num = pw.IntegerField(default=0)
    browse_num = pw.IntegerField(default=0)
    forward_num = pw.IntegerField(default=0)
    saved_total_num = pw.IntegerField(default=0)
    praise_sum = pw.IntegerField(default=0)

    class Meta:
        indexes = ((("company", "day"), True), (("day",), False))


class RollupState(BaseModel):
    """Roll-up progress and the lease that lets one process at a time run it."""
    name = pw.CharField(max_length=32, primary_key=True)
    done_through = pw.DateField(null=True)  # every day up to this one is in DailyStats
    lease_owner = pw.CharField(max_length=32, default="")
    lease_until = pw.DateTimeField(null=True)  # UTC
    lease_process = pw.CharField(max_length=255, default="")  # the holder: host, boot, pid (a dead one is taken over)


class RollupStale(BaseModel):
    """A rolled-up day that late records changed; the roll-up recomputes it. `version` changes on each
    new mark, so a mark made while the day was being recomputed survives."""
    day = pw.DateField(primary_key=True)
    version = pw.CharField(max_length=32)


class AuditEntry(BaseModel):
    """One write through the API or the command line: who (user id and login name, the company they act
    from), when (UTC), what (route, the target's kind and id), the outcome (the answer's code) and the
    client address. Never a password, token or signature: no body or query is kept. Written in the
    change's own transaction (services.calls), so a rolled-back change leaves no entry claiming success.
    No foreign keys: an entry outlives the user, company or product it names."""
    id = pw.BigAutoField()
    at = pw.DateTimeField(default=now)  # UTC; pruned by it
    user_id = pw.IntegerField(null=True)  # the actor; none for a command-line run or an unknown login name
    login_name = pw.CharField(max_length=64, default="")
    company_id = pw.IntegerField(null=True)  # the actor's company: what GET audit is scoped by
    route = pw.CharField(max_length=128)  # "user/update/7", "login", "cli import-legacy"
    kind = pw.CharField(max_length=16)  # the target's kind: user, role, company, product, activity, data
    target_id = pw.IntegerField(null=True)
    code = pw.IntegerField()  # the envelope's code: 200 done, anything else refused or failed
    address = pw.CharField(max_length=64, default="")
    request_id = pw.CharField(max_length=64, default="")  # the log line's id

    class Meta:
        indexes = ((("at",), False), (("company_id", "at"), False), (("kind", "target_id"), False))


ACTIVITY_MODELS = [Customer, CustomerBinding, FollowUp, AccessEvent, DailyStats, RollupState, RollupStale]


MODELS = [Company, Role, User, Product, ProductArticle, ProductPicture, UsedSignature, LoginThrottle,
          *ACTIVITY_MODELS, AuditEntry]


class SchemaFact(BaseModel):
    """What create_schema cannot see in the tables themselves: the data upgrades (DATA_UPGRADES) done on
    this database, one row each, so each runs once. Not among MODELS, which hold the data: emptying them
    (tests, benchmarks) must not make an upgrade run again on rows that are already upgraded."""
    name = pw.CharField(max_length=64, primary_key=True)
    done_at = pw.DateTimeField(default=now)  # UTC
    summary = pw.TextField(default="")  # what it did, as logged


# ---- faults: connections the server dropped, held locks, full disks, a stop cutting work off ----------

log = logging.getLogger("zgld.db")


class _ThreadCalls(threading.local):
    commits = 0  # transactions committed (and writes outside one) on this thread: tells whether a call did work


_calls = _ThreadCalls()


class CommitGate:
    """Once closed (a stop past its grace), no commit starts, and close() returns when none is running:
    every call then either committed, or did nothing and answers Stopping."""

    def __init__(self):
        self._cond = threading.Condition()
        self._running = 0
        self.closed = False

    def __enter__(self):
        with self._cond:
            if self.closed:
                raise Stopping()
            self._running += 1

    def __exit__(self, *exc):
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    def close(self, timeout):
        with self._cond:
            self.closed = True
            return self._cond.wait_for(lambda: self._running == 0, timeout)


commit_gate = CommitGate()

_READS = ("SELECT", "PRAGMA", "BEGIN", "SAVEPO", "RELEAS", "ROLLBA")  # statements that never persist anything


if TYPE_CHECKING:
    class _Database(pw.Database):
        """The mix-in's super(): a Peewee database (it is mixed into one at run time), with the private
        members used here, which Peewee's type stubs leave out."""
        _state: Any

        def _connect(self) -> Any: ...

        def _close(self, conn: Any) -> None: ...

        def _execute_cursor(self, sql: str, params: Any, **options: Any) -> Any: ...
else:
    _Database = object


class _FaultAware(_Database):
    """Mixed into the database classes: keeps each thread's connection (so a stop can interrupt it),
    counts what committed (so a call that did nothing may be retried), and passes every commit
    through the commit gate."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._live: dict[int, Any] = {}  # thread id -> its connection

    def _connect(self):
        conn = super()._connect()
        self._live[threading.get_ident()] = conn
        return conn

    def _close(self, conn):
        self._live.pop(threading.get_ident(), None)
        super()._close(conn)

    def _execute_cursor(self, sql, params, **options):
        if self.in_transaction() or sql.lstrip()[:6].upper() in _READS:
            return super()._execute_cursor(sql, params, **options)
        with commit_gate:  # a write outside a transaction commits by itself
            cursor = super()._execute_cursor(sql, params, **options)
        _calls.commits += 1
        return cursor

    def commit(self):
        with commit_gate:
            super().commit()
        _calls.commits += 1

    def interrupt_all(self):
        """Stop the statement each connection is running (a stop past its grace)."""
        for conn in list(self._live.values()):
            try:
                conn.interrupt() if hasattr(conn, "interrupt") else conn.cancel()
            except Exception as e:  # closed meanwhile, or nothing running: nothing to stop
                log.debug("interrupt: %s", e)

    def lost(self):
        """True if this thread's connection is gone (the server closed it)."""
        return False

    def drop_connection(self):
        """Forget this thread's connection whatever its state; the next statement opens a new one."""
        conn = self._state.conn
        self._live.pop(threading.get_ident(), None)
        self._state.reset()
        if conn is not None:
            try:
                conn.close()
            except Exception as e:  # already broken: closing it is all we wanted
                log.debug("closing a lost connection: %s", e)


class SqliteDatabase(_FaultAware, pw.SqliteDatabase):
    def rollback(self):
        # SQLite rolls a transaction back by itself on some errors (a full disk, an I/O error); a second
        # ROLLBACK would fail with "cannot rollback" and hide the real error from the log and the client.
        if not self.is_closed() and not self._state.conn.in_transaction:
            return
        super().rollback()


class PostgresqlDatabase(_FaultAware, pw.PostgresqlDatabase):
    def lost(self):
        conn = self._state.conn
        if conn is None:
            return False
        if conn.closed:
            return True
        if self.in_transaction():
            return False
        # Idle, nothing should be waiting to be read; if something is, it is the server's goodbye
        # (pg_terminate_backend, a restart) or the end of the stream. One poll, about a microsecond.
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))


def _chain(error):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def fault_of(error):
    """The service error a database or disk failure means to the client, or None for any other error."""
    for cause in _chain(error):
        text = str(cause)
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageFull(), cause
        if "database or disk is full" in text or getattr(cause, "pgcode", None) == "53100":
            return StorageFull(), cause
        if "database is locked" in text or "database table is locked" in text:
            return Busy(), cause
    if commit_gate.closed and isinstance(error, pw.DatabaseError):  # interrupted by the stop
        return Stopping(), error
    return None


def run_job(fn, *args, **kwargs):
    """Run one piece of blocking work on this thread's connection, healing and naming faults. The
    request pipeline runs every call through this (workers.Workers does).

    - A connection the server dropped while idle is replaced before the work starts; if it dies during
      the work and nothing of the call committed (the server rolled back whatever was open), the call
      runs once more on a new connection.
    - A lock held past busy_timeout answers Busy, a full disk StorageFull (the real cause is logged),
      a stop's cut-off Stopping."""
    database = db.obj
    if _lost(database):
        log.warning("database connection closed by the server; reconnecting")
        metrics.database_error("connection_lost")
        database.drop_connection()
    commits = _calls.commits
    try:
        return _named_faults(fn, *args, **kwargs)
    except Exception as e:
        if not _lost(database) or _calls.commits != commits or isinstance(e, Stopping):
            raise
        log.warning("database connection lost during a call that committed nothing (%s); running it again",
                    str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        metrics.database_error("connection_lost")
        database.drop_connection()
    return _named_faults(fn, *args, **kwargs)


def _lost(database):
    return isinstance(database, _FaultAware) and database.lost()


def drop_if_lost():
    """If the server closed this thread's connection, forget it (the next statement reconnects); True if so."""
    if not _lost(db.obj):
        return False
    db.obj.drop_connection()
    return True


# Database errors by what they mean (/metrics); a stop's interruptions are not counted: they are asked for.
_ERROR_KINDS = {Busy: "busy", StorageFull: "storage_full"}


def _named_faults(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        named = fault_of(e)
        if named is None:
            if isinstance(e, pw.DatabaseError):
                metrics.database_error("other")
            raise
        fault, cause = named
        if type(fault) in _ERROR_KINDS:
            metrics.database_error(_ERROR_KINDS[type(fault)])
        log.log(logging.ERROR if isinstance(fault, StorageFull) else logging.WARNING,
                "%s: %s: %s", type(fault).__name__, type(cause).__name__, cause)
        raise fault from e


def connect(url, busy_timeout_ms=5000):
    """Open the database named by `url` and bind the proxy to it."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        database: pw.Database = SqliteDatabase(path, pragmas={
            "journal_mode": "wal",
            "foreign_keys": 1,
            "busy_timeout": busy_timeout_ms,
            "synchronous": "normal",
        })
    elif url.startswith(("postgresql://", "postgres://")):
        database = PostgresqlDatabase(**parse_url(url))
    else:
        database = connect_url(url)
    db.initialize(database)
    return database


def add_missing_columns():
    """Upgrade tables made by an older version: add each model column they lack, filled with the field's
    default, keeping every row. (Peewee's create_tables adds tables, never columns.) Tables are never
    rebuilt: on SQLite that would cascade deletes through foreign keys, so there a new NOT NULL column
    stays nullable in the file and the model's default keeps it filled. Returns "table.column" names."""
    migrator = SchemaMigrator.from_database(db)
    tables = set(db.get_tables())
    added = []
    for model in MODELS:
        table = model._meta.table_name
        if table not in tables:
            continue
        present = {column.name for column in db.get_columns(table)}
        for field in model._meta.sorted_fields:
            if field.column_name in present:
                continue
            operations = [migrator.alter_add_column(table, field.column_name, field)]
            if field.default is not None:
                operations.append(migrator.apply_default(table, field.column_name, field))
            if not field.null and isinstance(migrator, PostgresqlMigrator):
                operations.append(migrator.add_not_null(table, field.column_name))
            if field.index or field.unique:
                operations.append(migrator.add_index(table, (field.column_name,), field.unique))
            for operation in operations:
                operation.run()
            added.append(f"{table}.{field.column_name}")
    return added


def create_schema():
    """Create missing tables and columns and the built-in roles, and run the data upgrades this database
    has not had; safe to run at every start."""
    made_here = Company._meta.table_name not in db.get_tables()  # no table of an earlier version yet
    with db.atomic():
        for name in add_missing_columns():
            logging.getLogger("zgld").info("schema upgrade: added column %s", name)
        db.create_tables([SchemaFact, *MODELS], safe=True)
        if made_here:  # made as this version keeps its data: every upgrade is done, with nothing to scan
            # (already recorded when the data tables were dropped and are made afresh: it still holds)
            SchemaFact.insert_many([{"name": name, "summary": "made by this version"} for name in DATA_UPGRADES]
                                   ).on_conflict_ignore().execute()
        for role_id, name in BUILTIN_ROLES.items():
            if not Role.select().where(Role.id == role_id).exists():
                Role.insert(id=role_id, name=name).execute()
    if isinstance(db.obj, pw.SqliteDatabase):
        _rebuild_with_autoincrement(User)
    if isinstance(db.obj, pw.PostgresqlDatabase):
        # Explicit ids above do not move the sequence; move it past them.
        db.execute_sql("SELECT setval(pg_get_serial_sequence('role', 'id'), "
                       "GREATEST((SELECT MAX(id) FROM role), 1))")
    run_data_upgrades()


# ---- data upgrades: changes to rows an older version wrote, each run once (SchemaFact) ------------------

UPGRADE_BATCH = 1000  # rows read at a time: a large table is never loaded whole

# The columns version 1.1 and earlier wrote in the server process's local time (`datetime.now()`); every
# other time was already UTC.
LOCAL_TIME_COLUMNS = (Company.create_date, Role.create_date, User.create_date, User.last_login_date,
                      Product.create_date, ProductPicture.create_date, LoginThrottle.window_start)


def _column_to_utc(field: pw.Field) -> int:
    """Convert one column from the process's local time to UTC, UPGRADE_BATCH rows at a time in key order;
    the number of values changed."""
    model = field.model
    key = model._meta.primary_key
    update = CompiledQuery(lambda slot: model.update({field: slot("value")}).where(key == slot("key")))
    changed, last = 0, None
    while True:
        query = model.select(key, field).where(field.is_null(False)).order_by(key).limit(UPGRADE_BATCH)
        rows = list(tuples(query if last is None else query.where(key > last)))
        for row_key, local in rows:
            if not isinstance(local, datetime.datetime):  # text SQLite could not read as a time: left as it is
                continue
            utc = clock.utc_from_process_local(local)
            if utc != local:
                update.execute(value=field.db_value(utc), key=row_key)
                changed += 1
        if len(rows) < UPGRADE_BATCH:
            return changed
        last = rows[-1][0]


def _times_to_utc() -> str:
    """Store every time in UTC: convert the columns version 1.1 and earlier wrote in local time. That was
    the server process's zone (TZ), not stats.timezone; it must be the same now as when they were written
    (services.clock.utc_from_process_local says how a time the clocks went back over is read)."""
    counts = {f"{field.model._meta.table_name}.{field.column_name}": _column_to_utc(field)
              for field in LOCAL_TIME_COLUMNS}
    zone = "/".join(dict.fromkeys(time.tzname))
    return (f"stored times converted to UTC from the server's local zone ({zone}): "
            + ", ".join(f"{column} {n}" for column, n in counts.items()) + f"; {sum(counts.values())} in all")


# name -> the upgrade, which returns what it did; recorded in SchemaFact once done. Add new ones at the end.
DATA_UPGRADES: dict[str, Callable[[], str]] = {"times_in_utc": _times_to_utc}


def run_data_upgrades() -> None:
    """Run each data upgrade this database has not recorded, in one transaction with its record: it is done
    wholly and once, also when several processes start together (the second waits, then finds the record)."""
    for name, upgrade in DATA_UPGRADES.items():
        if SchemaFact.select().where(SchemaFact.name == name).exists():
            continue
        with write_transaction():  # SQLite: the write lock, from the start
            if isinstance(db.obj, pw.PostgresqlDatabase):
                db.execute_sql(f'LOCK TABLE "{SchemaFact._meta.table_name}" IN SHARE ROW EXCLUSIVE MODE')
            if SchemaFact.select().where(SchemaFact.name == name).exists():
                continue  # another process did it meanwhile
            summary = upgrade()
            SchemaFact.create(name=name, summary=summary)
        logging.getLogger("zgld").info("schema upgrade: %s", summary)


def _rebuild_with_autoincrement(model):
    """Upgrade a SQLite table made without AUTOINCREMENT (an ALTER cannot add it): copy it into a new table
    made as the model says, keeping every row and id, then put that in its place. Foreign-key enforcement
    is off meanwhile so dropping the old table cascades nothing; before the commit, the references must
    be as sound as they were. AUTOINCREMENT starts above the highest id present."""
    table = model._meta.table_name
    (made,) = db.execute_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    if "AUTOINCREMENT" in made.upper():
        return False
    create, params = model._schema._create_table(safe=False).query()
    new = f"{table}__rebuilt"
    columns = ", ".join(f'"{field.column_name}"' for field in model._meta.sorted_fields)
    db.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        with db.atomic("IMMEDIATE"):
            broken = db.execute_sql("PRAGMA foreign_key_check").fetchall()
            db.execute_sql(create.replace(f'CREATE TABLE "{table}"', f'CREATE TABLE "{new}"', 1), params)
            db.execute_sql(f'INSERT INTO "{new}" ({columns}) SELECT {columns} FROM "{table}"')
            db.execute_sql(f'DROP TABLE "{table}"')
            db.execute_sql(f'ALTER TABLE "{new}" RENAME TO "{table}"')
            model._schema.create_indexes(safe=False)
            if db.execute_sql("PRAGMA foreign_key_check").fetchall() != broken:
                raise RuntimeError(f"schema upgrade of {table}: references broken, nothing changed")
    finally:
        db.execute_sql("PRAGMA foreign_keys = ON")
    logging.getLogger("zgld").info("schema upgrade: %s ids are never reused (AUTOINCREMENT)", table)
    return True


_outermost = threading.local()  # this thread's write transactions: how deep, and what waits for the commit


@contextlib.contextmanager
def write_transaction():
    """A transaction for read-then-write rules (quotas, uniqueness): on SQLite it takes the write lock
    at the start, so two processes cannot both read the old state; on PostgreSQL, pair it with locked().
    Nested, it is a savepoint; what after_commit() registers inside runs once the outermost one commits."""
    depth, jobs = getattr(_outermost, "depth", 0), getattr(_outermost, "jobs", [])
    if depth == 0:
        jobs = _outermost.jobs = []
    registered_before = len(jobs)
    _outermost.depth = depth + 1
    try:
        with db.atomic("IMMEDIATE") if isinstance(db.obj, pw.SqliteDatabase) else db.atomic() as transaction:
            yield transaction
    except BaseException:
        del jobs[registered_before:]  # rolled back: what it registered never happened
        raise
    finally:
        _outermost.depth = depth
    if depth == 0:
        _outermost.jobs = []
        for job in jobs:
            job()


def after_commit(job):
    """Run `job()` once the outermost write_transaction() of this thread has committed, or at once outside
    one; never if it rolls back. For what cannot be rolled back, such as removing files."""
    if getattr(_outermost, "depth", 0):
        _outermost.jobs.append(job)
    else:
        job()


def tuples(query: pw.Query) -> Iterator[tuple[Any, ...]]:
    """The rows of `query` as tuples (Peewee's `.tuples()`, whose rows its type stubs call models)."""
    return iter(cast(Iterable[tuple[Any, ...]], query.tuples()))


def read_snapshot():
    """A read-only transaction whose statements all see one snapshot (SQLite's deferred transaction does;
    PostgreSQL needs REPEATABLE READ), for answers assembled from several queries."""
    if isinstance(db.obj, pw.PostgresqlDatabase):
        return db.atomic(isolation_level="REPEATABLE READ")
    return db.atomic()


def locked(query):
    """`query` with FOR UPDATE where the database has row locks (PostgreSQL); SQLite locks in
    write_transaction() instead."""
    return query.for_update() if isinstance(db.obj, pw.PostgresqlDatabase) else query


# ---- queries compiled once ----------------------------------------------------------------------

class _Slot(pw.Node):
    """Where a value named `name` goes when a CompiledQuery runs."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def __sql__(self, ctx: pw.Context) -> pw.Context:
        _parts(ctx)[1].append(self)  # replaced by the named value when the query runs
        return ctx.literal(ctx.state.param or "?")


class _Repeated(pw.SQL):
    """A part of the statement written once per item of the list named `name`: `template` is one item's
    SQL (slots `0`, `1`, ... take the item's fields, or the whole item when `fields` is None), written
    `separator`-joined between `opening` and `closing`. A subclass of SQL so Peewee accepts it where an
    INSERT takes its rows from a query."""

    def __init__(self, name: str, template: pw.Node, opening: str, closing: str, fields: int | None) -> None:
        super().__init__("")
        self.name, self.template, self.fields = name, template, fields
        self.opening, self.closing = opening, closing

    def __sql__(self, ctx: pw.Context) -> pw.Context:
        item_sql, item_values = _parts(ctx.as_new().sql(self.template))
        _parts(ctx)[0].append(_RepeatPlan(self.name, "".join(item_sql), _plan(item_values), self.fields,
                                    self.opening, self.closing))
        _parts(ctx)[1].append(self)
        return ctx


class _RepeatPlan(str):
    """A compiled _Repeated: one item's SQL and where its parameters come from. A string (its text the
    one-item form) because Peewee joins a rendered node's parts to look at it, as for an IN list."""

    name: str
    sql: str
    plan: list
    fields: int | None
    opening: str
    closing: str

    in_order: bool  # an item's parameters are its fields in order (or the item itself), nothing else

    def __new__(cls, name: str, sql: str, plan: list, fields: int | None, opening: str,
                closing: str) -> "_RepeatPlan":
        part = super().__new__(cls, opening + sql + closing)
        part.name, part.sql, part.plan, part.fields = name, sql, plan, fields
        part.opening, part.closing = opening, closing
        part.in_order = [source for source, _ in plan] == [str(i) for i in range(fields or 1)]
        return part

    def render(self, items: list) -> tuple[str, list]:
        if not items:
            if self.fields is not None:
                raise ValueError(f"no rows in {self.name!r}: there is nothing to insert")
            return "(NULL)", []  # an empty IN list: valid SQL that matches nothing
        sql = self.opening + ", ".join([self.sql] * len(items)) + self.closing
        if self.in_order:  # the usual case, and the fast one: 1,000 rows are flattened in about 0.1 ms
            return sql, [v for item in items for v in item] if self.fields is not None else list(items)
        plan = [(None if source is None else int(source), constant) for source, constant in self.plan]
        params = []
        for item in items:
            named = item if self.fields is not None else (item,)
            params += [named[source] if source is not None else constant for source, constant in plan]
        return sql, params


def _parts(ctx: pw.Context) -> tuple[list, list]:
    """The SQL fragments and parameters a Context has gathered (Peewee's type stubs leave them out)."""
    return ctx._sql, ctx._values  # type: ignore[attr-defined]


def _plan(values: list) -> list:
    """(slot name or None, constant) for each parameter of a rendered statement; the constant _REPEAT
    stands for the parameters of a repeated part."""
    return [(v.name, _REPEAT if isinstance(v, _Repeated) else None) if isinstance(v, (_Slot, _Repeated))
            else (None, v) for v in values]


class Slots:
    """What a CompiledQuery's `build` is given to mark where values go."""

    def __call__(self, name: str) -> pw.Node:
        """One value."""
        return _Slot(name)

    def each(self, name: str) -> pw.Node:
        """An IN list: `(?, ?, ...)`, one parameter per item of the list `name`."""
        return _Repeated(name, _Slot("0"), "(", ")", None)

    def rows(self, name: str, width: int) -> pw.Node:
        """VALUES groups: `VALUES (?, ?), (?, ?), ...`, one group per tuple of `width` in the list `name`."""
        group = pw.EnclosedNodeList([_Slot(str(i)) for i in range(width)])
        return _Repeated(name, group, "VALUES ", "", width)


class CompiledQuery:
    """A Peewee query turned into SQL once per kind of database, then run with new values.

    `build(slot)` returns the query with `slot(name)` where each value goes (`slot.each(name)` for an IN
    list, `slot.rows(name, width)` for the VALUES groups of a multi-row insert); `execute(**values)` runs
    the SQL with those values (a list for each repeated part). Building and compiling a Peewee query costs
    more than SQLite takes to run it (about 0.1 ms a row for a multi-row insert). The parts are those Peewee
    renders, kept apart: no SQL is found by searching text."""

    def __init__(self, build: "Callable[[Slots], pw.Node]") -> None:
        self._build = build
        self._compiled: dict[type, tuple[list, list]] = {}

    def _compile(self) -> tuple[list, list]:
        fragments, values = _parts(db.get_sql_context().sql(self._build(Slots())))
        parts: list[str] = []  # the fragments between repeated parts joined: one string for most queries
        for fragment in fragments:
            if parts and not isinstance(fragment, _RepeatPlan) and not isinstance(parts[-1], _RepeatPlan):
                parts[-1] += fragment
            else:
                parts.append(fragment)
        return parts, _plan(values)

    def sql(self, **values: Any) -> tuple[str, list]:
        """The statement and its parameters for these values."""
        kind = type(db.obj)
        if kind not in self._compiled:
            self._compiled[kind] = self._compile()
        parts, plan = self._compiled[kind]
        if len(parts) == 1 and not isinstance(parts[0], _RepeatPlan):  # nothing repeated: the common case
            return parts[0], [values[name] if name is not None else constant for name, constant in plan]
        repeated = {}
        text = []
        for part in parts:
            if isinstance(part, _RepeatPlan):
                part_sql, repeated[part.name] = part.render(values[part.name])
                text.append(part_sql)
            else:
                text.append(part)
        params = []
        for name, constant in plan:
            if constant is _REPEAT:
                params += repeated[name]
            else:
                params.append(values[name] if name is not None else constant)
        return "".join(text), params

    def execute(self, **values: Any) -> Any:
        """Run the statement; the database cursor."""
        return db.execute_sql(*self.sql(**values))


_REPEAT = object()  # in a plan: the parameters of a repeated part go here


_INSERTS: dict[tuple, CompiledQuery] = {}  # (model, field names, ignore_conflicts) -> the compiled insert
INSERT_CHUNK = 1000  # rows per statement: far below either database's limit on parameters


def insert_rows(model: type[BaseModel], fields: list[pw.Field], rows: list[tuple],
                ignore_conflicts: bool = False) -> int:
    """`insert_many` of `rows` (tuples in the order of `fields`, every field with a default among them);
    returns the rows inserted, those left out by `ignore_conflicts` not counted. Compiled once: building a
    1,000-row statement through Peewee costs about 0.1 ms a row, more than running it."""
    names = tuple(f.name for f in fields)
    key = (model, names, ignore_conflicts)
    if key not in _INSERTS:
        missing = [f.name for f in model._meta.sorted_fields if f.default is not None and f.name not in names]
        if missing:  # Peewee would fill them in itself; a compiled insert leaves them out
            raise ValueError(f"insert_rows into {model.__name__}: list {', '.join(missing)} (they have defaults)")
        _INSERTS[key] = CompiledQuery(lambda slot: _insert_query(slot, model, fields, ignore_conflicts))
    inserted = 0
    for chunk in pw.chunked(rows, INSERT_CHUNK):
        inserted += _INSERTS[key].execute(rows=chunk).rowcount
    return inserted


def _insert_query(slot: Slots, model: type[BaseModel], fields: list[pw.Field], ignore_conflicts: bool) -> pw.Node:
    query = model.insert_from(slot.rows("rows", len(fields)), fields).as_rowcount().returning()
    return query.on_conflict_ignore() if ignore_conflicts else query


class ReadMemo:
    """Results remembered for one state of the database (see SqliteReadCache)."""

    def __init__(self, keep: bool = True):
        self.results: dict[object, Any] = {}
        self.keep = keep  # False: nothing may be remembered, every result is computed

    def get(self, key: object, compute: Callable[[], Any]) -> Any:
        if not self.keep:
            return compute()
        if key not in self.results:
            self.results[key] = compute()
        return self.results[key]


class SqliteReadCache:
    """Results of reads (list pages and totals, dashboard sums) remembered per thread (each thread has its
    own SQLite connection), dropped as soon as the database may have changed: another connection, in any
    process, committed (SQLite's `PRAGMA data_version` moved) or this connection wrote anything (its
    `total_changes` moved). The check costs one PRAGMA; no writer has to remember to invalidate. On
    PostgreSQL, and inside a transaction, nothing is remembered. A result must depend only on the data and on
    its key, and is shared: callers only read it."""

    MAX_ENTRIES = 64  # per thread: at most 64 pages of 100 rows (about 5 MB) before it starts afresh

    def __init__(self):
        self._local = threading.local()

    def snapshot(self) -> ReadMemo:
        """What is remembered for the database as it is now: one PRAGMA, however many results are read
        (none inside one_state(), which took it already)."""
        if not isinstance(db.obj, pw.SqliteDatabase) or db.in_transaction():
            return ReadMemo(keep=False)  # inside a transaction a result may include writes rolled back later
        pinned = getattr(self._local, "pinned", None)
        if pinned is not None:
            return pinned
        # The connection itself is part of it: a new connection starts its counters afresh.
        connection = db.connection()
        version = (connection, db.execute_sql("PRAGMA data_version").fetchall()[0][0], connection.total_changes)
        local = self._local
        if getattr(local, "version", None) != version or len(local.memo.results) >= self.MAX_ENTRIES:
            local.version, local.memo = version, ReadMemo()
        return local.memo

    def get(self, key: object, compute: Callable[[], Any]) -> Any:
        return self.snapshot().get(key, compute)

    def one_state(self) -> "_OneState":
        """For a call that only reads: every snapshot() within is the one taken on entry, so the signature
        check and the call's own reads cost one PRAGMA between them. Never around a write: what it wrote
        would not be seen by the results remembered before it."""
        return _OneState(self)


class _OneState:
    """SqliteReadCache.one_state(): a class, not a generator, since it wraps every signed read."""

    __slots__ = ("cache", "outer")

    def __init__(self, cache: SqliteReadCache):
        self.cache = cache

    def __enter__(self) -> None:
        local = self.cache._local
        self.outer = getattr(local, "pinned", None)
        if self.outer is None:
            local.pinned = self.cache.snapshot()

    def __exit__(self, *exc: object) -> None:
        self.cache._local.pinned = self.outer


# The one cache of remembered reads (list pages and totals, dashboard sums, the signing users' rows): one
# PRAGMA tells whether all of them still hold.
reads = SqliteReadCache()
