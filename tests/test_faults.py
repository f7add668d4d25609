"""Faults injected into a running app: a write lock held by another connection, a full disk (a small
tmpfs), PostgreSQL connections terminated mid-load. Each asserts the codes clients get, the log, /healthz,
and the rows and files afterwards. (Process-level faults, stopping and supervision: test_faults_process.py.)"""
import asyncio
import contextlib
import os
import sqlite3
import subprocess
import threading

import peewee as pw
import pytest

import models
from services import auth
from services.errors import Stopping, StorageFull
from tests.conftest import row_counts, signed_params
from tests.test_activity import some_records
from tests.test_metrics import database_errors
from tests.test_pictures import _upload_ids, complete, encode, noisy, send_chunk, staged_files, upload, wait_for

LIST = "/zhugeleida/admin/product/product_list"
ADD_PRODUCT = "/zhugeleida/admin/product/add/0"
BATCH = "/zhugeleida/admin/activity/batch"
HEALTHZ = "/healthz"

on_sqlite = pytest.mark.skipif("os.environ.get('ZGLD_DATABASE_URL', '').startswith('postgres')",
                               reason="a SQLite file lock")
on_postgresql = pytest.mark.skipif("not os.environ.get('ZGLD_DATABASE_URL', '').startswith('postgres')",
                                   reason="needs ZGLD_DATABASE_URL=postgresql://...")


def product_form():
    return {"product_type": 2, "name": "门票", "price": "228", "reason": "好", "cover_picture_id": "[]"}


# ---- a write lock held by another connection --------------------------------------------------------

LOCK_WAIT_MS = 3000


@pytest.fixture
def settings(settings):
    settings["database"]["busy_timeout_ms"] = LOCK_WAIT_MS
    settings["server"]["worker_threads"] = 2
    return settings


@contextlib.contextmanager
def write_lock_held(settings):
    """Another connection (another process, say) holds SQLite's write lock inside."""
    other = sqlite3.connect(settings["database"]["url"][len("sqlite:///"):], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.fixture
def writers_waiting(monkeypatch):
    """Counts POSTs whose signature check has started in a writer thread (from there they wait on the lock)."""
    started = []
    check = auth.authenticate

    def counted(*args, **kwargs):
        if threading.current_thread().name.startswith("zgld-worker"):
            started.append(threading.current_thread().name)
        return check(*args, **kwargs)

    monkeypatch.setattr(auth, "authenticate", counted)
    return started


@on_sqlite
@pytest.mark.gen_test(timeout=30)
async def test_held_write_lock_reads_go_on_writers_get_busy_retry_and_healthz_says_not_writable(
        client, admin, settings, writers_waiting, caplog):
    before = row_counts()
    with write_lock_held(settings):
        # as many writers as worker threads, all stuck waiting for the lock
        posts = [asyncio.ensure_future(client.request("POST", ADD_PRODUCT, signed_params(admin), data=product_form()))
                 for _ in range(settings["server"]["worker_threads"])]
        await wait_for(lambda: len(writers_waiting) == settings["server"]["worker_threads"])
        started = asyncio.get_running_loop().time()
        body = await client.get(LIST, admin, product_type=2)
        assert body["code"] == 200
        assert asyncio.get_running_loop().time() - started < 1.0
        assert not any(post.done() for post in posts), "the read waited for the writers"
        status, health = await client.request("GET", HEALTHZ)
        assert status == 503 and health["data"]["database_writable"] is False
        assert health["data"]["database"] is True
        for status, answer in await asyncio.gather(*posts):
            assert (status, answer["code"], answer["msg"]) == (503, 503, "服务繁忙，请稍后重试")
    assert row_counts() == before
    assert "database is locked" in caplog.text
    assert "unhandled error" not in caplog.text
    # the lock is gone: writes and /healthz are back without a restart
    assert (await client.post(ADD_PRODUCT, admin, data=product_form()))["code"] == 200
    status, health = await client.request("GET", HEALTHZ)
    assert status == 200 and health["data"]["database_writable"] is True


# ---- a full disk (a small tmpfs; CI runs as root) ------------------------------------------------------

TMPFS_BYTES = 4 * 1024 * 1024
FLOOR = 512 * 1024


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture
def full_disk_settings(settings, small_disk):
    settings["storage"].update(root=str(small_disk / "statics"), staging=str(small_disk / "uploads"),
                               min_free_bytes=FLOOR)
    settings["upload"].update(max_chunk_bytes=512 * 1024)
    if settings["database"]["url"].startswith("sqlite:///"):
        settings["database"]["url"] = f"sqlite:///{small_disk}/zhugeleida.db"
    return settings


def fill(disk, leave_bytes):
    """Fill the disk up to `leave_bytes` free with one file; return that file."""
    filler = disk / "filler"
    with contextlib.suppress(OSError), open(filler, "wb") as f:  # the close may meet the full disk too
        while os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize > leave_bytes:
            f.write(b"\0" * 16384)
            f.flush()
    return filler


@pytest.mark.gen_test(timeout=60)
async def test_full_disk_answers_storage_full_logs_the_cause_and_recovers(
        full_disk_settings, small_disk, client, admin, app, caplog):
    storage = app.settings["storage"]
    picture = encode(noisy(300, 200), quality=95)
    filler = fill(small_disk, 0)
    before = row_counts()

    status, health = await client.request("GET", HEALTHZ)
    assert status == 503 and health["data"]["storage"] is False and health["data"]["free_bytes"] < FLOOR

    status, body = await send_chunk(client, admin, next(_upload_ids), 0, picture)
    assert (status, body["code"], body["msg"]) == (507, 507, "存储空间不足")
    assert staged_files(storage) == []  # no .part left
    if isinstance(models.db.obj, pw.SqliteDatabase):  # the database is on the full disk too
        status, body = await client.request("POST", BATCH, signed_params(admin),
                                            json_body={"records": some_records(admin)})
        assert (status, body["code"]) == (507, 507)
        assert "database or disk is full" in caplog.text
    assert "cannot rollback" not in caplog.text and "unhandled error" not in caplog.text
    assert row_counts() == before

    filler.unlink()  # room again: everything works without a restart
    _, status, body = await upload(client, admin, picture, chunk_size=400 * 1024)
    assert (status, body["code"]) == (200, 200)
    assert (await client.post(BATCH, admin, json_body={"records": some_records(admin)}))["code"] == 200
    status, health = await client.request("GET", HEALTHZ)
    assert status == 200 and health["data"]["storage"] is True


@pytest.mark.gen_test(timeout=60)
async def test_disk_filling_during_completion_answers_storage_full_and_keeps_no_picture(
        full_disk_settings, small_disk, client, admin, app):
    storage = app.settings["storage"]
    picture = encode(noisy(600, 400), quality=95)
    upload_id = next(_upload_ids)
    status, body = await send_chunk(client, admin, upload_id, 0, picture)
    assert body["code"] == 200
    filler = fill(small_disk, 0)
    status, body = await complete(client, admin, upload_id, 1)
    assert (status, body["code"]) == (507, 507)
    assert models.ProductPicture.select().count() == 0
    assert [url for url, _ in storage.list_pictures()] == []
    filler.unlink()
    status, body = await complete(client, admin, upload_id, 1)
    assert body["code"] == 200


# ---- PostgreSQL: the service's connections terminated mid-load -------------------------------------------

def terminate_other_backends():
    """What a DBA, a failover or a restart of PostgreSQL does to the service's connections."""
    killer = pw.PostgresqlDatabase(**models.parse_url(os.environ["ZGLD_DATABASE_URL"]))
    with killer.connection_context():
        rows = killer.execute_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        ).fetchall()
    return len(rows)


@on_postgresql
@pytest.mark.gen_test(timeout=60)
async def test_terminated_connections_heal_at_once_and_healthz_does_not_flap(client, admin, caplog):
    async def call(i):
        if i % 3 == 0:
            return await client.request("GET", HEALTHZ)
        if i % 3 == 1:
            return await client.request("GET", LIST, signed_params(admin, product_type=2))
        return await client.request("POST", ADD_PRODUCT, signed_params(admin), data=product_form())

    # warm up: every worker thread of both lanes holds a connection
    assert all(s == 200 for s, _ in await asyncio.gather(*(call(i) for i in range(24))))
    for _ in range(3):
        killed = terminate_other_backends()
        assert killed >= 2
        started = asyncio.get_running_loop().time()
        answers = await asyncio.gather(*(call(i) for i in range(30)))
        assert [(s, b["code"]) for s, b in answers] == [(200, 200)] * 30, answers
        assert asyncio.get_running_loop().time() - started < 1.0
    assert "connection closed by the server; reconnecting" in caplog.text
    models.db.obj.drop_connection()  # the test's own connection was terminated too


@pytest.mark.skipif("os.environ.get('ZGLD_DATABASE_URL', '').startswith('postgres')", reason="SQLite file")
def test_database_full_inside_a_transaction_names_the_real_cause(full_disk_settings, small_disk, database,
                                                                 company, caplog):
    filler = fill(small_disk, 0)

    def many_customers():
        with models.db.atomic():
            for start in range(0, 20000, 500):
                models.Customer.insert_many([{"company": company.id, "openid": f"o{i}", "name": "x" * 60}
                                             for i in range(start, start + 500)]).execute()

    with pytest.raises(StorageFull):
        models.run_job(many_customers)
    assert "database or disk is full" in caplog.text and "cannot rollback" not in caplog.text
    assert models.Customer.select().count() == 0
    filler.unlink()
    models.run_job(many_customers)  # room again: the same connection writes
    assert models.Customer.select().count() == 20000


@on_postgresql
def test_connection_dying_under_a_call_that_committed_nothing_runs_it_once_more(database, company, caplog):
    runs, lost_before = [], database_errors("connection_lost")

    def work():
        runs.append(1)
        with models.db.atomic():
            models.Company.update(name="改名").where(models.Company.id == company.id).execute()
            if len(runs) == 1:  # the server ends this connection in the middle of the transaction
                models.db.execute_sql("SELECT pg_terminate_backend(pg_backend_pid())")
        return models.Company.get_by_id(company.id).name

    assert models.run_job(work) == "改名" and len(runs) == 2
    assert "running it again" in caplog.text
    assert database_errors("connection_lost") == lost_before + 1  # /metrics counts it


@on_postgresql
def test_connection_dying_after_a_commit_is_not_run_again(database, company):
    runs = []

    def work():
        runs.append(1)
        models.Company.update(name="改名").where(models.Company.id == company.id).execute()  # commits
        models.db.execute_sql("SELECT pg_terminate_backend(pg_backend_pid())")

    with pytest.raises(pw.DatabaseError):
        models.run_job(work)
    assert len(runs) == 1
    assert models.run_job(lambda: models.Company.get_by_id(company.id).name) == "改名"  # healed


# ---- staging races and crash leftovers (local storage) ------------------------------------------------

def test_chunk_opens_while_another_completion_removes_the_users_staging_folder(settings, monkeypatch):
    """The soak's one HTTP 500: mkdir(parents=True) made the user's folder, another upload's completion
    removed it (empty) before the upload's own folder was made in it. Forced here, every time."""
    from storage.local import LocalStorage
    storage = LocalStorage(settings)
    user_folder = storage.staging / "7"
    real_mkdir = os.mkdir
    interleaved = []

    def mkdir_then_removed(path, *args, **kwargs):
        real_mkdir(path, *args, **kwargs)
        if str(path) == str(user_folder) and not interleaved:
            interleaved.append(path)
            os.rmdir(path)  # the other completion's _remove_if_empty(user folder), right now

    monkeypatch.setattr(os, "mkdir", mkdir_then_removed)
    writer = storage.open_chunk((7, 1530156149132), 0)
    writer.write(b"chunk")
    assert writer.commit()
    assert interleaved, "the interleaving was not forced"
    assert storage.staged_chunks((7, 1530156149132)) == {0: 5}


def test_start_up_removes_this_hosts_crash_leftovers_only(settings):
    from storage.local import HOST_TAG, LocalStorage
    storage = LocalStorage(settings)
    upload = storage.staging / "7" / "1530156149132"
    upload.mkdir(parents=True)
    (upload / "0.chunk").write_bytes(b"whole chunk")
    (upload / f"1.{HOST_TAG}.ab12cd.part").write_bytes(b"cut off")
    (upload / "2.other-host.ab12cd.part").write_bytes(b"another host is writing it")
    url = storage.url_for("20180628140645880613abcdef.jpg")
    storage.store(url, b"picture")
    pictures = storage.path_for(url).parent
    (pictures / f".20180628140645880614abcdef.jpg.{HOST_TAG}.x1y2.tmp").write_bytes(b"half")
    (pictures / f".20180628140645880614abcdef_thumb.jpg.{HOST_TAG}.x1y3.tmp").write_bytes(b"half thumb")
    assert storage.remove_leftovers() == 3
    assert sorted(p.name for p in upload.iterdir()) == ["0.chunk", "2.other-host.ab12cd.part"]
    assert sorted(p.name for p in pictures.iterdir()) == ["20180628140645880613abcdef.jpg"]


# ---- the commit gate a stop closes ------------------------------------------------------------------------

@pytest.fixture
def gate(monkeypatch):
    fresh = models.CommitGate()
    monkeypatch.setattr(models, "commit_gate", fresh)
    return fresh


def test_closed_commit_gate_refuses_every_write_and_keeps_reads(database, company, gate):
    assert gate.close(timeout=1)
    with pytest.raises(Stopping):
        models.Company.update(name="改名").execute()  # a write outside a transaction commits by itself
    with pytest.raises(Stopping), models.db.atomic():
        models.Company.update(name="改名").execute()
    assert models.Company.get_by_id(company.id).name == company.name  # reads go on, nothing was written


def test_commit_gate_close_waits_for_a_commit_in_progress(gate):
    entered, release = threading.Event(), threading.Event()

    def committing():
        with gate:
            entered.set()
            release.wait(10)

    worker = threading.Thread(target=committing)
    worker.start()
    entered.wait(10)
    assert gate.close(timeout=0.05) is False  # one is committing: close() says so
    release.set()
    assert gate.close(timeout=10) is True
    worker.join()


# ---- image work does not hold worker threads -------------------------------------------------------------

@pytest.mark.gen_test(timeout=30)
async def test_completions_in_image_work_hold_no_worker_thread(client, admin, settings, monkeypatch):
    """As many completions as worker threads, all in Pillow (held there by the test): a small signed POST,
    which needs a worker thread, still answers at once."""
    from services import images
    from tests.test_pictures import complete
    in_pillow, release, real = [], threading.Event(), images._process

    def held(*args):
        in_pillow.append(1)
        release.wait(20)
        return real(*args)

    monkeypatch.setattr(images, "_process", held)
    picture = encode(noisy(300, 200))
    uploads = []
    for _ in range(settings["server"]["worker_threads"]):
        upload_id = next(_upload_ids)
        assert (await send_chunk(client, admin, upload_id, 0, picture))[1]["code"] == 200
        uploads.append(upload_id)
    completions = [asyncio.ensure_future(complete(client, admin, upload_id, 1)) for upload_id in uploads]
    try:
        await wait_for(lambda: len(in_pillow) == len(uploads))
        for _ in range(3):
            body = await client.post("/zhugeleida/admin/home_page/line_info", admin, data={"index_type": 1, "days": 7})
            assert body["code"] == 200
        assert not any(c.done() for c in completions)
    finally:
        release.set()
    assert [(await c)[1]["code"] for c in completions] == [200] * len(uploads)


@on_postgresql
def test_health_check_replaces_a_connection_the_server_closed(database):
    from services import health
    pid = models.db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    killer = pw.PostgresqlDatabase(**models.parse_url(os.environ["ZGLD_DATABASE_URL"]))
    with killer.connection_context():
        killer.execute_sql("SELECT pg_terminate_backend(%s)", (pid,))
        while killer.execute_sql("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            pass  # until the backend has gone: an event with no notification
    assert health.database_answers() is True
