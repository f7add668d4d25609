"""`backup PATH` and `restore PATH`: the SQLite database and the uploaded pictures in one tar.gz.

The database is copied with SQLite's online backup API, which reads one consistent snapshot while the
service goes on writing (WAL lets writers continue), so a backup can be taken from a running service.
Pictures are copied after the snapshot: a picture uploaded meanwhile is included without a row pointing
to it, which is harmless. On PostgreSQL the database is backed up with pg_dump instead.

Archive layout: manifest.json, zhugeleida.db, statics/zhugeleida/... (each file under its URL). Files are
read and written through the storage interface (storage/base.py), so any backend can be backed up.
"""
import contextlib
import io
import json
import os
import posixpath
import shutil
import sqlite3
import tarfile
import tempfile
from pathlib import Path

from services import clock
from storage import make_storage
from storage.base import UPLOADS_FOLDER, URL_PREFIX
from version import VERSION

ARCHIVE_FORMAT = 1
MANIFEST = "manifest.json"
DATABASE = "zhugeleida.db"
UPLOADS = f"{URL_PREFIX}{UPLOADS_FOLDER}/"  # the archive names of stored files: their URLs


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


def sqlite_path(settings, command):
    url = settings["database"]["url"]
    if not url.startswith("sqlite:///"):
        tool = "pg_dump" if command == "backup" else "pg_restore (or psql for a plain dump)"
        raise BackupError(f"the database is not SQLite ({url.split('@')[-1]}): use {tool} for the database, "
                          f"and copy the pictures (storage.root) beside it")
    path = url[len("sqlite:///"):]
    if not path or path == ":memory:":
        raise BackupError("the database is in memory: there is nothing to back up or restore")
    return Path(path)


# ---- backup ---------------------------------------------------------------------------------------------

def snapshot_database(source, target, busy_timeout_ms):
    """Copy the database at `source` to `target` in one step of the online backup API, then check it."""
    src = sqlite3.connect(f"file:{source}?mode=rw", uri=True, timeout=busy_timeout_ms / 1000)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            result = dst.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            dst.close()
    finally:
        src.close()
    if result != "ok":
        raise BackupError(f"the copy of the database failed its integrity check: {result}")


def _add_bytes(tar, name, data, mtime=None):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(clock.now().timestamp() if mtime is None else mtime)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def backup(settings, archive):
    """Write the database and the uploaded pictures to the tar.gz `archive` (a new file); return a summary."""
    database = sqlite_path(settings, "backup")
    archive = Path(archive)
    if not database.is_file():
        raise BackupError(f"no database at {database}: nothing to back up")
    if archive.exists():
        raise BackupError(f"{archive} already exists: choose a new file name")
    archive.parent.mkdir(parents=True, exist_ok=True)
    storage = make_storage(settings)
    # Work beside the archive, so the snapshot never fills another disk and the rename below is atomic.
    with tempfile.TemporaryDirectory(dir=archive.parent, prefix=".zgld-backup-") as work:
        copy = Path(work) / DATABASE
        snapshot_database(database, copy, settings["database"]["busy_timeout_ms"])
        partial = Path(work) / "archive.tar.gz"
        # Readable by the owner only: the database holds password hashes and tokens.
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            with tarfile.open(fileobj=out, mode="w:gz") as tar:
                # the server's local time with its offset: readable where it was made, unambiguous anywhere
                manifest = {"format": ARCHIVE_FORMAT, "version": VERSION,
                            "created": clock.now().astimezone().isoformat(timespec="seconds")}
                _add_bytes(tar, MANIFEST, json.dumps(manifest).encode())
                tar.add(copy, arcname=DATABASE)
                pictures = _add_pictures(tar, storage)
            out.flush()
            os.fsync(out.fileno())
        database_bytes = copy.stat().st_size
        os.replace(partial, archive)
    return {"archive": str(archive), "database_bytes": database_bytes, "pictures": pictures,
            "archive_bytes": archive.stat().st_size}


def _add_pictures(tar, storage):
    """Add every stored file under its URL."""
    count = 0
    for url, mtime in storage.stored_files():
        with contextlib.suppress(FileNotFoundError):  # deleted by the running service since the listing
            with storage.open(url) as f:
                _add_bytes(tar, url, f.read(), mtime)
            count += 1
    return count


# ---- restore --------------------------------------------------------------------------------------------

NOT_EMPTY = ("is not empty: restore only into an empty data folder (move the current data away first, or use "
             "--data-dir with a new folder)")

def _is_empty(folder):
    return not folder.exists() or not any(folder.iterdir())


def _read_manifest(tar):
    try:
        manifest = json.load(tar.extractfile(MANIFEST))
        tar.getmember(DATABASE)
    except (KeyError, ValueError, AttributeError):
        raise BackupError("this is not a zhugeleida backup (no manifest or no database in it)") from None
    if manifest.get("format") != ARCHIVE_FORMAT:
        raise BackupError(f"backup format {manifest.get('format')!r} is not one this version reads")
    return manifest


def _restore_database(tar, database):
    """Extract the database beside its final place, check it, then move it there."""
    partial = database.with_name(database.name + ".restoring")
    with tar.extractfile(DATABASE) as src, open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst)
    conn = sqlite3.connect(partial)
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    if result != "ok":
        raise BackupError(f"the database in the backup failed its integrity check: {result}")
    os.replace(partial, database)


def _restore_pictures(tar, storage, restored):
    """Store every file of the archive under its URL (noted in `restored` as it goes); anything but a
    plain file with a plain name under statics/zhugeleida/ is refused."""
    for member in tar:
        if not member.name.startswith(UPLOADS) or member.isdir():
            continue
        if not member.isfile() or posixpath.normpath(member.name) != member.name or "/." in member.name:
            raise BackupError(f"{member.name!r} is not a plain file inside the pictures: it would land "
                              f"outside the destination")
        with tar.extractfile(member) as f:
            storage.store(member.name, f.read())
        restored.append(member.name)
    return len(restored)


def restore(settings, archive):
    """Put the backup `archive` into an empty data folder; refuse if any data is already there."""
    database = sqlite_path(settings, "restore")
    if not _is_empty(database.parent):
        raise BackupError(f"{database.parent} {NOT_EMPTY}")
    created = not database.parent.exists()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            manifest = _read_manifest(tar)
            storage = make_storage(settings)  # after the archive is known good: a backend may create folders
            if not storage.is_empty():
                raise BackupError(f"the storage ({storage.location()}) {NOT_EMPTY}")
            database.parent.mkdir(parents=True, exist_ok=True)
            restored = []
            try:
                _restore_database(tar, database)
                pictures = _restore_pictures(tar, storage, restored)
            except BaseException:
                _undo(database, storage, restored, created)
                raise
    except (OSError, tarfile.TarError) as e:  # unreadable, damaged, unsafe paths, disk full
        raise BackupError(f"cannot restore from {archive}: {e}") from None
    return {"version": manifest.get("version"), "created": manifest.get("created"), "pictures": pictures,
            "database": str(database)}


def _undo(database, storage, restored, created):
    """Leave the data folder and the storage as empty as they were found, after a restore that failed
    part way."""
    for path in (database, database.with_name(database.name + ".restoring")):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    for url in restored:
        storage.delete(url)
    if created:
        shutil.rmtree(database.parent, ignore_errors=True)
