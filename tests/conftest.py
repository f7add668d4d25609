"""Fixtures: the app built from a temporary config, a database per test, and a signing client.

The database is SQLite in the test's temp folder, or the PostgreSQL server named by ZGLD_DATABASE_URL
(emptied before each test): the same tests run on both.
"""
import asyncio
import hashlib
import itertools
import json
import os
import re
import threading
import time
import urllib.parse

import peewee as pw
import pytest
import yaml

import config
import models
from server import make_app
from services import auth
from workers import Workers

TEST_SCRYPT_N = 1024  # fast hashes in tests; the production default is in config.yaml


@pytest.fixture
def settings(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "database": {"url": f"sqlite:///{tmp_path}/data/test.db"},
        "storage": {"root": str(tmp_path / "statics"), "staging": str(tmp_path / "data" / "uploads")},
        "auth": {"scrypt_n": TEST_SCRYPT_N},
        "server": {"worker_threads": 4},
    }))
    return config.load(path)


_SHARED_SCHEMAS = set()  # shared databases (PostgreSQL) whose schema this run has already created


def _empty_shared_database(url):
    """Create the schema and TRUNCATE everything once per run (whatever an earlier run or benchmark left);
    before each later test, empty every table (children first) but the built-in roles with DELETE, which
    on a few rows is much faster than TRUNCATE or re-creating the schema."""
    if url not in _SHARED_SCHEMAS:
        models.create_schema()
        tables = ", ".join(f'"{m._meta.table_name}"' for m in models.MODELS)
        models.db.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        models.create_schema()  # the built-in roles again
        _SHARED_SCHEMAS.add(url)
        return
    with models.db.atomic():
        for model in reversed(pw.sort_models(models.MODELS)):
            query = model.delete()
            if model is models.Role:
                query = query.where(models.Role.id.not_in(list(models.BUILTIN_ROLES)))
            query.execute()


@pytest.fixture
def database(settings):
    url = settings["database"]["url"]
    models.connect(url, settings["database"]["busy_timeout_ms"])
    if isinstance(models.db.obj, pw.PostgresqlDatabase):
        _empty_shared_database(url)
    else:
        models.create_schema()
    yield models.db
    models.db.close()


@pytest.fixture
def workers(settings, database):
    pool = Workers(settings["server"]["worker_threads"])
    yield pool
    pool.shutdown(close=models.db.close)


@pytest.fixture
def app(settings, database, workers):
    return make_app(settings, workers)


# ---- data made directly in the database ----

@pytest.fixture
def make_company(database):
    counter = itertools.count(1)

    def make(name=None, quota=50, **fields):
        return models.Company.create(name=name or f"公司{next(counter)}", mingpian_available_num=quota, **fields)
    return make


@pytest.fixture
def make_user(database):
    counter = itertools.count(1)

    def make(company, role=models.ROLE_USER, login_name=None, password="secret123", **fields):
        n = next(counter)
        fields.setdefault("username", f"用户{n}")
        return models.User.create(company=company, role=role, login_name=login_name or f"user{n}",
                                  password_hash=auth.hash_password(password, TEST_SCRYPT_N),
                                  token=auth.new_token(), **fields)
    return make


# ---- the people and companies most tests act with (a module that needs others makes its own) ----

@pytest.fixture
def company(make_company):
    """The company the tests act in."""
    return make_company("北京合众多屏科技发展有限公司", quota=20)


@pytest.fixture
def other(make_company):
    """Another company, whose rows the callers above must not see."""
    return make_company("别家公司")


@pytest.fixture
def admin(make_user, company):
    return make_user(company, role=models.ROLE_ADMIN, login_name="boss", username="张聪")


@pytest.fixture
def staff(make_user, company):
    return make_user(company, login_name="staff", username="张三")


def row_counts():
    """The number of rows in every table, to assert that a refused request changed nothing (the audit
    trail, which records the refusal, is tests/test_audit.py's business)."""
    return {m.__name__: m.select().count() for m in models.MODELS
            if m not in (models.UsedSignature, models.AuditEntry)}


# ---- a client that signs like the existing ones ----

_last_timestamp = [0]
_timestamp_lock = threading.Lock()


def fresh_timestamp():
    """The client's clock in milliseconds, read at each call (a run may last longer than the skew window),
    and never the same twice: two signatures made in one millisecond would otherwise be one."""
    with _timestamp_lock:
        _last_timestamp[0] = max(_last_timestamp[0] + 1, int(time.time() * 1000))
        return _last_timestamp[0]


def signed_params(user, **extra):
    """rand_str, timestamp and user_id for `user` (a User row or a (user_id, token) pair)."""
    user_id, token = (user.id, user.token) if hasattr(user, "token") else user
    timestamp = str(fresh_timestamp())
    rand_str = hashlib.md5(f"{timestamp}{token}".encode()).hexdigest()
    return {"rand_str": rand_str, "timestamp": timestamp, "user_id": str(user_id), **extra}


class Client:
    def __init__(self, http_client, base_url):
        self.http_client, self.base_url = http_client, base_url

    async def request(self, method, path, params=None, data=None, json_body=None, raw=None, headers=None):
        """Send a request; return (HTTP status, envelope dict)."""
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        headers = dict(headers or {})
        body = raw
        if data is not None:
            body = urllib.parse.urlencode(data)
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if json_body is not None:
            body = json.dumps(json_body)
            headers.setdefault("Content-Type", "application/json")
        if method == "POST" and body is None:
            body = b""
        response = await self.http_client.fetch(url, method=method, body=body, headers=headers,
                                                raise_error=False)
        return response.code, json.loads(response.body) if response.body else None

    async def get(self, path, user=None, **params):
        if user is not None:
            params = signed_params(user, **params)
        return (await self.request("GET", path, params))[1]

    async def post(self, path, user=None, data=None, json_body=None, params=None):
        params = signed_params(user, **(params or {})) if user is not None else (params or {})
        return (await self.request("POST", path, params, data=data, json_body=json_body))[1]


@pytest.fixture
def client(http_client, base_url):
    return Client(http_client, base_url)


# ---- a request that meets a transaction held by another connection ----

# A statement that takes a write lock: SQLite's up-front BEGIN IMMEDIATE, a row lock, or a write itself.
_TAKES_A_LOCK = re.compile(r"^\s*(BEGIN IMMEDIATE|INSERT|UPDATE|DELETE)\b|\bFOR UPDATE\b", re.IGNORECASE)


async def _until(event, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not event.is_set():
        assert time.monotonic() < deadline, f"the request never {what}"
        await asyncio.sleep(0.005)


@pytest.fixture
def while_held(monkeypatch, database):
    """while_held(request, held_write) -> the answer to `request` (a coroutine from the client), sent while
    another connection holds an open transaction that made `held_write()`.

    The request is paused in its worker thread as it begins its first transaction; then the test opens its
    own transaction and makes `held_write()`; then the request goes on, and the test commits only once the
    request has sent a statement that takes a lock for its rule (its signature record does not count).
    So the request cannot have read the state before that write and decided from it unless the service
    reads without the lock it claims (a deferred BEGIN on SQLite, no FOR UPDATE on PostgreSQL): then its
    read comes first and the test sees the wrong answer, or the stale read fails."""
    engine = models.db.obj
    begin, execute_sql = engine.begin, engine.execute_sql
    arrived, resume, locking = threading.Event(), threading.Event(), threading.Event()

    def in_request():
        return threading.current_thread().name.startswith("zgld-worker")

    def paused_begin(*args, **kwargs):
        if in_request() and not resume.is_set():
            arrived.set()
            resume.wait(10)
        if in_request() and _TAKES_A_LOCK.match(f"BEGIN {args[0] if args else kwargs.get('lock_type') or ''}"):
            locking.set()
        return begin(*args, **kwargs)

    signatures = models.UsedSignature._meta.table_name

    def watched_execute_sql(sql, *args, **kwargs):
        # The call's own signature record is not the lock the rule needs: a deferred transaction that
        # records it first would wait behind the test's writer for it, and nothing shows what it then reads.
        if in_request() and resume.is_set() and _TAKES_A_LOCK.search(sql) and signatures not in sql:
            locking.set()
        return execute_sql(sql, *args, **kwargs)

    monkeypatch.setattr(engine, "begin", paused_begin)
    monkeypatch.setattr(engine, "execute_sql", watched_execute_sql)

    async def run(request, held_write):
        pending = asyncio.ensure_future(request)
        await _until(arrived, "began a transaction")
        try:
            with models.write_transaction():
                held_write()
                resume.set()
                await _until(locking, "asked for a lock")
                assert not pending.done()
        finally:
            resume.set()
        return await pending

    return run


# ---- the server process's own zone ----

@pytest.fixture
def process_zone():
    """The server process's own zone (TZ) set to New York, which is neither UTC nor any stats.timezone the
    tests use: a time that follows it by mistake shows. Returns its name."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield os.environ["TZ"]
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()
