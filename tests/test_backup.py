"""`backup PATH` / `restore PATH`: the SQLite database and the pictures in one tar.gz, taken safely while
the service writes, put back only into an empty data folder. These run on SQLite whatever ZGLD_DATABASE_URL
says (the feature is SQLite's); on PostgreSQL, backup points to pg_dump."""
import datetime
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest
import yaml

import config
import models
import storage
from services import clock
from services.backup import BackupError, backup, restore
from tests.conftest import TEST_SCRYPT_N
from version import VERSION

SERVER = str(Path(__file__).resolve().parent.parent / "server.py")
PICTURE_DIR = "zhugeleida/imgs/qiyeweixin/product"


def data_settings(tmp_path, data_dir):
    """Settings with everything under `data_dir`, as `--data-dir` gives, ignoring ZGLD_ variables."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"auth": {"scrypt_n": TEST_SCRYPT_N}}))
    return config.place_data(config.load(path, environ={}), data_dir)


def database_file(settings):
    return Path(settings["database"]["url"][len("sqlite:///"):])


@pytest.fixture
def source(tmp_path):
    """A service's data folder holding a company, a user, a product and one picture file (and thumbnail)."""
    settings = data_settings(tmp_path, tmp_path / "live")
    models.connect(settings["database"]["url"])
    models.create_schema()
    company = models.Company.create(name="北京合众多屏科技发展有限公司", mingpian_available_num=5)
    user = models.User.create(company=company, role=models.ROLE_ADMIN, login_name="boss", username="张聪",
                              password_hash="x", token="t" * 32)
    product = models.Product.create(company=company, user=user, product_type=1, name="门票", price="228",
                                    reason="一起度过美好时光")
    folder = Path(settings["storage"]["root"]) / PICTURE_DIR
    folder.mkdir(parents=True)
    picture = os.urandom(5000)
    (folder / "20180628140645880613.jpg").write_bytes(picture)
    (folder / "20180628140645880613_thumb.jpg").write_bytes(picture[:900])
    (folder / ".20180628150000000000.jpg.x1y2.tmp").write_bytes(b"half a picture still being written")
    models.ProductPicture.create(company=company, user=user, product=product,
                                 url=f"statics/{PICTURE_DIR}/20180628140645880613.jpg", byte_size=5000)
    yield settings
    models.db.close()


def dump(settings):
    """Every row of the database at `settings`, as SQL text (schema and data)."""
    conn = sqlite3.connect(database_file(settings))
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def files_under(folder):
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def integrity(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def test_round_trip_brings_back_every_row_and_finished_picture(tmp_path, source):
    archive = tmp_path / "backups" / "zgld.tar.gz"
    done = backup(source, archive)
    assert done["pictures"] == 2 and archive.is_file()
    assert archive.stat().st_mode & 0o077 == 0  # holds password hashes: the owner's alone

    target = data_settings(tmp_path, tmp_path / "restored")
    restored = restore(target, archive)
    assert restored["version"] == VERSION and restored["pictures"] == 2
    made = datetime.datetime.fromisoformat(restored["created"])  # with its offset: one instant anywhere
    assert made.utcoffset() is not None and abs(made - clock.now()) < datetime.timedelta(minutes=5)
    assert dump(target) == dump(source)
    pictures = files_under(Path(source["storage"]["root"]))
    assert files_under(Path(target["storage"]["root"])) == {
        name: data for name, data in pictures.items() if not name.rpartition("/")[2].startswith(".")}
    assert integrity(database_file(target)) == "ok"


def test_the_restored_database_serves_the_models(tmp_path, source):
    archive = tmp_path / "zgld.tar.gz"
    backup(source, archive)
    target = data_settings(tmp_path, tmp_path / "restored")
    restore(target, archive)
    models.db.close()
    models.connect(target["database"]["url"])
    models.create_schema()
    picture = models.ProductPicture.get()
    assert picture.product.name == "门票" and picture.company.name == "北京合众多屏科技发展有限公司"
    restored_file = Path(target["storage"]["root"]) / picture.url[len("statics/"):]
    assert restored_file.stat().st_size == 5000


def test_backup_during_concurrent_writes_is_consistent(tmp_path, source):
    """A thread commits (company, product) pairs in one transaction each while backups are taken: every
    backup opens cleanly, holds every pair committed before it started, and never half a pair."""
    models.ProductArticle.insert_many(  # enough data that the copy and compression take a while
        [{"product": 1, "title": f"段落{i}", "content": os.urandom(1000).hex()} for i in range(3000)]).execute()
    stop = threading.Event()
    committed = []

    def write():
        n = 0
        while not stop.is_set():
            n += 1
            with models.db.atomic():
                company = models.Company.create(name=f"并发公司{n}")
                models.Product.create(company=company, product_type=1, name=f"并发产品{n}", price="1",
                                      reason="")
            committed.append(n)
        models.db.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        while len(committed) < 20:
            time.sleep(0.01)
        results = []
        for i in range(3):
            before = len(committed)
            backup(source, tmp_path / f"during-{i}.tar.gz")
            results.append((before, len(committed)))
    finally:
        stop.set()
        writer.join()

    for i, (before, after) in enumerate(results):
        assert after > before, "the writer made no commit while the backup ran"
        with tarfile.open(tmp_path / f"during-{i}.tar.gz") as tar:
            tar.extract("zhugeleida.db", tmp_path / f"check-{i}", filter="data")
        copy = tmp_path / f"check-{i}" / "zhugeleida.db"
        assert integrity(copy) == "ok"
        conn = sqlite3.connect(copy)
        companies = conn.execute("SELECT COUNT(*) FROM company WHERE name LIKE '并发公司%'").fetchone()[0]
        products = conn.execute("SELECT COUNT(*) FROM product p JOIN company c ON p.company_id = c.id "
                                "WHERE c.name = '并发公司' || substr(p.name, 5)").fetchone()[0]
        articles = conn.execute("SELECT COUNT(*) FROM product_article").fetchone()[0]
        conn.close()
        assert before <= companies <= after
        assert products == companies
        assert articles == 3000


def test_restore_refuses_a_data_folder_that_is_not_empty(tmp_path, source):
    archive = tmp_path / "zgld.tar.gz"
    backup(source, archive)
    target = data_settings(tmp_path, tmp_path / "busy")
    database = database_file(target)
    database.parent.mkdir(parents=True)
    database.write_bytes(b"the data someone still needs")
    with pytest.raises(BackupError, match="not empty"):
        restore(target, archive)
    assert database.read_bytes() == b"the data someone still needs"
    assert sorted(p.name for p in database.parent.iterdir()) == ["zhugeleida.db"]


def test_restore_refuses_when_pictures_are_already_there(tmp_path, source):
    archive = tmp_path / "zgld.tar.gz"
    backup(source, archive)
    target = data_settings(tmp_path, tmp_path / "pictures-left")
    old = Path(target["storage"]["root"]) / "zhugeleida" / "imgs" / "old.jpg"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old picture")
    with pytest.raises(BackupError, match="not empty"):
        restore(target, archive)
    assert not database_file(target).exists()
    assert old.read_bytes() == b"old picture"


def test_restore_of_a_file_that_is_not_a_backup_leaves_the_folder_empty(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive")
    target = data_settings(tmp_path, tmp_path / "empty")
    with pytest.raises(BackupError, match="cannot restore from"):
        restore(target, junk)
    assert not (tmp_path / "empty").exists()


def test_restore_refuses_paths_that_leave_the_data_folder(tmp_path, source):
    archive = tmp_path / "zgld.tar.gz"
    backup(source, archive)
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(archive) as good, tarfile.open(evil, "w:gz") as bad:
        for member in good:
            bad.addfile(member, good.extractfile(member))
        payload = b"escaped"
        info = tarfile.TarInfo("statics/zhugeleida/../../../../outside.txt")
        info.size = len(payload)
        bad.addfile(info, io.BytesIO(payload))
    target = data_settings(tmp_path, tmp_path / "restored")
    with pytest.raises(BackupError, match="outside the destination"):
        restore(target, evil)
    assert not list(tmp_path.rglob("outside.txt"))
    assert not database_file(target).exists()
    assert not any((tmp_path / "restored").rglob("*.jpg"))


def test_restore_refuses_another_archive_format(tmp_path):
    archive = tmp_path / "other.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("manifest.json", json.dumps({"format": 99}).encode()), ("zhugeleida.db", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    target = data_settings(tmp_path, tmp_path / "restored")
    with pytest.raises(BackupError, match="format 99"):
        restore(target, archive)
    assert not database_file(target).exists()


def test_backup_never_overwrites_an_archive(tmp_path, source):
    archive = tmp_path / "zgld.tar.gz"
    archive.write_bytes(b"last week's backup")
    with pytest.raises(BackupError, match="already exists"):
        backup(source, archive)
    assert archive.read_bytes() == b"last week's backup"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".zgld")) == []


def test_postgresql_backup_points_to_pg_dump(tmp_path):
    settings = config.load(environ={"ZGLD_DATABASE_URL": "postgresql://u:secret@dbhost:5432/zgld"})
    with pytest.raises(BackupError, match="pg_dump") as refused:
        backup(settings, tmp_path / "x.tar.gz")
    assert "secret" not in str(refused.value)
    with pytest.raises(BackupError, match="pg_restore"):
        restore(settings, tmp_path / "x.tar.gz")
    assert not (tmp_path / "x.tar.gz").exists()


def run_cli(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZGLD_")}
    env["ZGLD_AUTH_SCRYPT_N"] = str(TEST_SCRYPT_N)
    return subprocess.run([sys.executable, SERVER, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)


def test_cli_backup_and_restore_with_data_dir(tmp_path):
    assert run_cli(tmp_path, "demo", "--data-dir", "site-a").returncode == 0
    made = run_cli(tmp_path, "backup", "nightly.tar.gz", "--data-dir", "site-a")
    assert made.returncode == 0, made.stderr
    assert "backup written to nightly.tar.gz" in made.stdout
    again = run_cli(tmp_path, "--data-dir", "site-a", "restore", "nightly.tar.gz")
    assert again.returncode == 1 and "not empty" in again.stderr
    put = run_cli(tmp_path, "restore", "nightly.tar.gz", "--data-dir", "site-b")
    assert put.returncode == 0, put.stderr
    conn = sqlite3.connect(tmp_path / "site-b" / "zhugeleida.db")
    logins = {row[0] for row in conn.execute("SELECT login_name FROM user")}
    conn.close()
    assert {"admin", "zhangsan", "lisi"} <= logins


def test_version_flag_prints_the_one_version(tmp_path):
    shown = run_cli(tmp_path, "--version")
    assert shown.returncode == 0 and shown.stdout.split() == ["server.py", VERSION]


def test_data_dir_moves_sqlite_staging_and_pictures_but_keeps_postgresql(tmp_path):
    sqlite = config.place_data(config.load(environ={}), "/srv/zgld")
    assert sqlite["database"]["url"] == "sqlite:////srv/zgld/zhugeleida.db"
    assert (sqlite["storage"]["staging"], sqlite["storage"]["root"]) == ("/srv/zgld/uploads", "/srv/zgld/statics")
    postgres = config.place_data(config.load(environ={"ZGLD_DATABASE_URL": "postgresql://u@h/zgld"}), "site")
    assert postgres["database"]["url"] == "postgresql://u@h/zgld"
    assert postgres["storage"]["root"] == str(Path("site") / "statics")


class ShelfStorage:
    """A backend with no folder of its own (as a shared one for several hosts would be): files live on a
    shelf keyed by the settings' storage.root, so a backup and a restore can meet the same one."""

    shelves: dict = {}

    def __init__(self, settings):
        self.files = self.shelves.setdefault(settings["storage"]["root"], {})

    def stored_files(self):
        return [(url, 1_530_156_149) for url in sorted(self.files)]

    def open(self, url):
        return io.BytesIO(self.files[url])

    def store(self, url, data):
        self.files[url] = data

    def delete(self, url):
        self.files.pop(url, None)

    def is_empty(self):
        return not self.files

    def location(self):
        return "the shelf"


def test_backup_and_restore_go_through_the_storage_interface(tmp_path, source, monkeypatch):
    monkeypatch.setitem(storage.BACKENDS, "shelf", ShelfStorage)
    source["storage"]["backend"] = "shelf"
    url = f"statics/{PICTURE_DIR}/20180628140645880613.jpg"
    ShelfStorage(source).store(url, b"a picture kept on the shelf")
    archive = tmp_path / "zgld.tar.gz"
    assert backup(source, archive)["pictures"] == 1
    target = data_settings(tmp_path, tmp_path / "restored")
    target["storage"]["backend"] = "shelf"
    assert restore(target, archive)["pictures"] == 1
    assert ShelfStorage(target).files == {url: b"a picture kept on the shelf"}
    # an empty database folder, but the shelf already holds pictures: refused, nothing written
    elsewhere = {**target, "database": {**target["database"], "url": f"sqlite:///{tmp_path / 'other' / 'z.db'}"}}
    with pytest.raises(BackupError, match="the storage \\(the shelf\\) is not empty"):
        restore(elsewhere, archive)
    assert not (tmp_path / "other" / "z.db").exists()
