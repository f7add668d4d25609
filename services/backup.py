"""`backup PATH` and `restore PATH`: the SQLite database and the uploaded pictures in one tar.gz.

The database is copied with SQLite's online backup API, which reads one consistent snapshot while the
service goes on writing (WAL lets writers continue), so a backup can be taken from a running service.
Pictures are copied after the snapshot: a picture uploaded meanwhile is included without a row pointing
to it, which is harmless. On PostgreSQL the database is backed up with pg_dump instead.

Archive layout: manifest.json, zhugeleida.db, statics/zhugeleida/... (paths under storage.root).
"""
import contextlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from pathlib import Path

from services import clock
from version import VERSION

ARCHIVE_FORMAT = 1
MANIFEST = "manifest.json"
DATABASE = "zhugeleida.db"
STATICS = "statics"
# Uploaded files live under storage.root/zhugeleida/ (URLs statics/zhugeleida/...); everything else
# under statics/ ships with the service (the console) and is not data.
UPLOADS = "zhugeleida"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


def sqlite_path(settings, command):
    url = settings["database"]["url"]
    if not url.startswith("sqlite:///"):
        tool = "pg_dump" if command == "backup" else "pg_restore (or psql for a plain dump)"
        raise BackupError(f"the database is not SQLite ({url.split('@')[-1]}): use {tool} for the database, "
                          f"and copy the pictures under storage.root ({settings['storage']['root']}) beside it")
    path = url[len("sqlite:///"):]
    if not path or path == ":memory:":
        raise BackupError("the database is in memory: there is nothing to back up or restore")
    return Path(path)


def uploads_folder(settings):
    return Path(settings["storage"]["root"]) / UPLOADS


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


def _add_bytes(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(clock.now().timestamp())
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
    uploads = uploads_folder(settings)
    # Work beside the archive, so the snapshot never fills another disk and the rename below is atomic.
    with tempfile.TemporaryDirectory(dir=archive.parent, prefix=".zgld-backup-") as work:
        copy = Path(work) / DATABASE
        snapshot_database(database, copy, settings["database"]["busy_timeout_ms"])
        partial = Path(work) / "archive.tar.gz"
        # Readable by the owner only: the database holds password hashes and tokens.
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            with tarfile.open(fileobj=out, mode="w:gz") as tar:
                manifest = {"format": ARCHIVE_FORMAT, "version": VERSION,
                            "created": clock.now().astimezone().replace(tzinfo=None).isoformat(timespec="seconds")}
                _add_bytes(tar, MANIFEST, json.dumps(manifest).encode())
                tar.add(copy, arcname=DATABASE)
                pictures = _add_pictures(tar, uploads)
            out.flush()
            os.fsync(out.fileno())
        database_bytes = copy.stat().st_size
        os.replace(partial, archive)
    return {"archive": str(archive), "database_bytes": database_bytes, "pictures": pictures,
            "archive_bytes": archive.stat().st_size}


def _add_pictures(tar, uploads):
    """Add every uploaded file; dot-names are files the storage is still writing (renamed when whole)."""
    if not uploads.is_dir():
        return 0
    count = 0
    for path in sorted(p for p in uploads.rglob("*") if p.is_file() and not p.is_symlink()
                       and not any(part.startswith(".") for part in p.relative_to(uploads).parts)):
        with contextlib.suppress(FileNotFoundError):  # deleted by the running service since the listing
            tar.add(path, arcname=f"{STATICS}/{UPLOADS}/{path.relative_to(uploads).as_posix()}")
            count += 1
    return count


# ---- restore --------------------------------------------------------------------------------------------

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


def _restore_pictures(tar, uploads):
    prefix = f"{STATICS}/{UPLOADS}/"
    count = 0
    for member in tar:
        if not member.name.startswith(prefix) or member.isdir():
            continue
        relative = member.name[len(prefix):]
        # The "data" filter refuses absolute names, "..", links out of the folder and device files.
        tar.extract(member.replace(name=relative, deep=False), path=uploads, filter="data")
        count += 1
    return count


def restore(settings, archive):
    """Put the backup `archive` into an empty data folder; refuse if any data is already there."""
    database = sqlite_path(settings, "restore")
    uploads = uploads_folder(settings)
    staging = Path(settings["storage"]["staging"])
    for folder in (database.parent, uploads, staging):
        if not _is_empty(folder):
            raise BackupError(f"{folder} is not empty: restore only into an empty data folder "
                              f"(move the current data away first, or use --data-dir with a new folder)")
    created = [f for f in (database.parent, uploads) if not f.exists()]
    try:
        with tarfile.open(archive, "r:gz") as tar:
            manifest = _read_manifest(tar)
            database.parent.mkdir(parents=True, exist_ok=True)
            uploads.mkdir(parents=True, exist_ok=True)
            try:
                _restore_database(tar, database)
                pictures = _restore_pictures(tar, uploads)
            except BaseException:
                _undo(database, uploads, created)
                raise
    except (OSError, tarfile.TarError) as e:  # unreadable, damaged, unsafe paths, disk full
        raise BackupError(f"cannot restore from {archive}: {e}") from None
    return {"version": manifest.get("version"), "created": manifest.get("created"), "pictures": pictures,
            "database": str(database)}


def _undo(database, uploads, created):
    """Leave the data folder as empty as it was found, after a restore that failed part way."""
    for path in (database, database.with_name(database.name + ".restoring")):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    shutil.rmtree(uploads, ignore_errors=True)
    uploads.mkdir(exist_ok=True)
    for folder in created:
        shutil.rmtree(folder, ignore_errors=True)
