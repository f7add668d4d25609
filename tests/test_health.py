"""GET /healthz: unsigned, 200 with the version when the database answers and the storage is writable,
503 (and which part failed) when either is not, and 200 again once it is back."""
import contextlib
import shutil

import peewee as pw
import pytest

import models
from services import health
from version import VERSION

HEALTHZ = "/healthz"
UNANSWERED_PG_PORT = 8699  # in this suite's port range; nothing listens there


def unreachable_database(tmp_path):
    """A database of the same kind as the test's that cannot be reached."""
    if isinstance(models.db.obj, pw.PostgresqlDatabase):
        return pw.PostgresqlDatabase("zgld_none", host="127.0.0.1", port=UNANSWERED_PG_PORT, user="postgres",
                                     connect_timeout=2)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the database folder should be")
    return pw.SqliteDatabase(str(blocker / "zhugeleida.db"))


@contextlib.contextmanager
def database_down(tmp_path):
    """Inside, the models' database cannot be reached; afterwards the working one is back."""
    working = models.db.obj
    models.db.initialize(unreachable_database(tmp_path))
    try:
        yield
    finally:
        models.db.initialize(working)


def break_folder(folder):
    """Put a plain file where the folder was: nothing can be written there, even by root."""
    shutil.rmtree(folder)
    folder.write_text("not a folder")


@pytest.mark.gen_test
async def test_healthy_service_answers_200_without_a_signature(client):
    status, body = await client.request("GET", HEALTHZ)
    assert status == 200
    free = body["data"].pop("free_bytes")
    assert free > 0
    assert body == {"code": 200, "msg": "查询成功", "data": {"version": VERSION, "database": True,
                                                         "database_writable": True, "storage": True,
                                                         "rollup_lag_days": None, "pool_backlog": 0}}


@pytest.mark.gen_test
async def test_database_down_answers_503_then_200_once_it_is_back(client, tmp_path):
    with database_down(tmp_path):
        status, body = await client.request("GET", HEALTHZ)
    assert status == 503
    assert body["code"] == 503 and body["msg"] == "服务不可用"
    body["data"].pop("free_bytes")
    assert body["data"] == {"version": VERSION, "database": False, "database_writable": False, "storage": True,
                            "rollup_lag_days": None, "pool_backlog": 0}
    status, body = await client.request("GET", HEALTHZ)
    assert status == 200 and body["data"]["database"] is True


@pytest.mark.gen_test
@pytest.mark.parametrize("folder", ["root", "staging"])
async def test_storage_not_writable_answers_503(client, app, folder):
    break_folder(getattr(app.settings["storage"], folder))
    status, body = await client.request("GET", HEALTHZ)
    assert status == 503
    assert body["code"] == 503
    body["data"].pop("free_bytes")
    assert body["data"] == {"version": VERSION, "database": True, "database_writable": True, "storage": False,
                            "rollup_lag_days": None, "pool_backlog": 0}


@pytest.mark.gen_test
async def test_probe_leaves_no_files_behind(client, app):
    storage = app.settings["storage"]
    before = sorted(storage.root.rglob("*")), sorted(storage.staging.rglob("*"))
    assert (await client.request("GET", HEALTHZ))[0] == 200
    assert (sorted(storage.root.rglob("*")), sorted(storage.staging.rglob("*"))) == before


class RemoteStorage:
    """A backend with no local folders (as a shared one for several hosts would be): only the interface."""

    def __init__(self, writable):
        self.writable = writable

    def check_writable(self):
        if not self.writable:
            raise OSError("the bucket refuses writes")

    def free_bytes(self):
        return None  # no local disk limits it


@pytest.mark.parametrize("writable", [True, False])
def test_the_check_asks_the_storage_interface_not_its_folders(database, settings, writable):
    data, ok = health.check(RemoteStorage(writable), settings)
    assert (data["storage"], ok) == (writable, writable)
