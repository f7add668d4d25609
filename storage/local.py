"""The local-disk backend: finished files under storage.root (served at /statics/), chunks under staging.

Staging layout: <staging>/<user_id>/<upload_id>/<index>.chunk. A chunk is written to <index>.<random>.part
(in <staging>/work/ while its upload is not known yet) and renamed into place when complete, so a chunk file
is always whole. Finished files are written the same
way, to a dot-name in their folder (never served) renamed into place.
"""
import contextlib
import io
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

from storage.base import (
    PICTURE_FOLDER,
    UPLOADS_FOLDER,
    URL_PREFIX,
    MissingChunk,
    Storage,
    StorageConfigError,
    UploadNotFound,
    UploadTooLarge,
    thumbnail_url,
)

CHUNK_SUFFIX = ".chunk"
PART_SUFFIX = ".part"
TEMP_SUFFIX = ".tmp"
# Temporary files carry the host's name, so the start-up sweep removes only what a crash on this host
# left (several hosts may share the folders, each writing its own).
HOST_TAG = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:64] or "host"
COPY_BUFFER = 1024 * 1024


class LocalStorage(Storage):
    def __init__(self, settings):
        self.root = Path(settings["storage"]["root"]).resolve()
        self.staging = Path(settings["storage"]["staging"]).resolve()
        if self.staging.is_relative_to(self.root) or self.root.is_relative_to(self.staging):
            raise StorageConfigError("storage.staging and storage.root must be separate folders: staged uploads "
                              "must never be reachable under /statics/")
        self.work = self.staging / "work"
        for folder in (self.root, self.staging, self.work):
            folder.mkdir(parents=True, exist_ok=True)

    # ---- finished files ----

    def path_for(self, url):
        """The file behind a picture URL ('statics/...'); None if the URL points outside the root."""
        if not url.startswith(URL_PREFIX):
            return None
        path = (self.root / url[len(URL_PREFIX):]).resolve()
        return path if path.is_relative_to(self.root) and path != self.root else None

    def _existing_path(self, url):
        path = self.path_for(url)
        if path is None:
            raise FileNotFoundError(url)
        return path

    def store(self, url, data):
        path = self._existing_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{HOST_TAG}.", suffix=TEMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(temp, 0o644)  # mkstemp makes it private; the web server must read it
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp)
            raise

    def open(self, url):
        return open(self._existing_path(url), "rb")

    def delete(self, url):
        """Remove a finished picture and its thumbnail; a file already gone is not an error."""
        for candidate in (url, thumbnail_url(url)):
            path = self.path_for(candidate)
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)

    def list_pictures(self):
        folder = self.root / PICTURE_FOLDER
        if not folder.is_dir():
            return []
        with os.scandir(folder) as entries:
            return [(f"{URL_PREFIX}{PICTURE_FOLDER}/{e.name}", e.stat().st_mtime)
                    for e in entries if e.is_file(follow_symlinks=False)]

    def static_root(self):
        return self.root

    def stored_files(self):
        uploads = self.root / UPLOADS_FOLDER
        if not uploads.is_dir():
            return []
        files = []
        for path in sorted(uploads.rglob("*")):
            relative = path.relative_to(self.root)
            # dot-names are files being written (renamed into place when whole)
            if path.is_file() and not path.is_symlink() and not any(p.startswith(".") for p in relative.parts):
                with contextlib.suppress(FileNotFoundError):  # deleted since the listing
                    files.append((f"{URL_PREFIX}{relative.as_posix()}", path.stat().st_mtime))
        return files

    def is_empty(self):
        uploads = self.root / UPLOADS_FOLDER
        staged = [p for p in self.staging.iterdir() if p != self.work]
        return not staged and not any(self.work.iterdir()) and not (uploads.exists() and any(uploads.iterdir()))

    def location(self):
        return f"the folders {self.root} (pictures) and {self.staging} (unfinished uploads)"

    def check_writable(self):
        for folder in (self.root, self.staging):
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".healthz-"):
                pass

    def free_bytes(self):
        free = []
        for folder in (self.root, self.staging):
            with contextlib.suppress(OSError):  # a folder that is gone: check_writable says so
                free.append(shutil.disk_usage(folder).free)
        return min(free, default=0)

    # ---- staged uploads ----

    def _upload_folder(self, key):
        user_id, upload_id = key
        return self.staging / str(int(user_id)) / str(int(upload_id))

    def open_chunk(self, key, index):
        if key is None:
            return LocalChunkWriter(self.work, "unplaced", self._upload_folder)
        writer = LocalChunkWriter(self._upload_folder(key), int(index), self._upload_folder)
        writer.place(key, index)
        return writer

    def staged_chunks(self, key):
        folder = self._upload_folder(key)
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return {}
        chunks = {}
        for entry in entries:
            stem, _, suffix = entry.name.partition(".")
            if "." + suffix == CHUNK_SUFFIX and stem.isdigit():
                with contextlib.suppress(FileNotFoundError):  # replaced or dropped meanwhile
                    chunks[int(stem)] = entry.stat().st_size
        return chunks

    def open_uploads(self, user_id):
        try:
            return {int(name) for name in os.listdir(self.staging / str(int(user_id))) if name.isdigit()}
        except FileNotFoundError:
            return set()

    def open_upload_count(self):
        return sum(len(_numbered_folders(user_folder)) for user_folder in _numbered_folders(self.staging))

    def assemble(self, key, count, out, max_bytes):
        folder = self._upload_folder(key)
        if not folder.is_dir():
            raise UploadNotFound()
        sizes = self.staged_chunks(key)
        for index in range(count):
            if index not in sizes:
                raise MissingChunk(index)
        if sum(sizes[i] for i in range(count)) > max_bytes:
            raise UploadTooLarge()
        written = 0
        for index in range(count):
            try:
                with open(folder / f"{index}{CHUNK_SUFFIX}", "rb") as chunk:
                    written += _copy(chunk, out, max_bytes - written)
            except FileNotFoundError:
                raise MissingChunk(index) from None

    def abort(self, key):
        folder = self._upload_folder(key)
        shutil.rmtree(folder, ignore_errors=True)
        _remove_if_empty(folder.parent)

    def expire(self, max_age_seconds):
        cutoff = time.time() - max_age_seconds
        for entry in _old_files(self.work, cutoff):  # unplaced chunks a crash left behind
            with contextlib.suppress(FileNotFoundError):
                os.remove(entry.path)
        removed = 0
        for user_folder in _numbered_folders(self.staging):
            for upload_folder in _numbered_folders(user_folder):
                with contextlib.suppress(FileNotFoundError):
                    if upload_folder.stat().st_mtime < cutoff:
                        shutil.rmtree(upload_folder, ignore_errors=True)
                        removed += 1
            _remove_if_empty(user_folder)
        return removed

    def scratch_file(self):
        return tempfile.TemporaryFile(dir=self.work)

    def remove_leftovers(self):
        """At start-up, with the instance lock held (no other process of this host writes here): remove
        the partial chunks and half-written pictures a crash of this host left. Returns how many."""
        patterns = [(self.staging, f"*.{HOST_TAG}.*{PART_SUFFIX}"), (self.root, f".*.{HOST_TAG}.*{TEMP_SUFFIX}")]
        removed = 0
        for folder, pattern in patterns:
            for path in folder.rglob(pattern):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        return removed


class LocalChunkWriter:
    """One chunk being received. Methods may be called from different executor threads, one at a time;
    abort() may come from a connection-close callback while a write is running, hence the lock.

    The bytes go to a temporary file in `temp_folder`; place() names the upload folder and index the chunk
    is renamed to on commit(). Both are in staging, so the rename is all it takes."""

    def __init__(self, temp_folder, prefix, folder_for):
        self.folder: Path | None = None
        self.index: int | None = None
        self._folder_for = folder_for
        self._lock = threading.Lock()
        self._state = "open"
        fd, self._temp = _create_in(temp_folder, f"{prefix}.{HOST_TAG}.", PART_SUFFIX)
        self._file = os.fdopen(fd, "wb")

    def place(self, key, index):
        """Chunk `index` of upload `key`: the chunk this becomes on commit()."""
        self.folder, self.index = self._folder_for(key), int(index)

    def write(self, data):
        with self._lock:
            if self._state == "open":
                self._file.write(data)

    def commit(self):
        """Rename the chunk into place; True if it was still open (not aborted meanwhile)."""
        with self._lock:
            if self._state != "open":
                return False
            folder = self.folder
            if folder is None:
                raise RuntimeError("commit() before place(): the chunk belongs to no upload")
            self._file.close()
            for attempt in (1, 2):
                folder.mkdir(parents=True, exist_ok=True)
                try:
                    os.replace(self._temp, folder / f"{self.index}{CHUNK_SUFFIX}")
                    break
                except FileNotFoundError:  # an abort or expiry removed the empty folder just now
                    if attempt == 2:
                        raise
            self._state = "committed"
            return True

    def abort(self):
        """Drop the partial chunk (and the upload folder, if that leaves it empty); safe to call twice."""
        with self._lock:
            if self._state != "open":
                return
            self._state = "aborted"
            self._file.close()
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._temp)
            if self.folder is not None:
                _remove_if_empty(self.folder)
                _remove_if_empty(self.folder.parent)


def _create_in(folder, prefix, suffix, attempts=5):
    """A new temporary file in `folder` (made if missing); its descriptor. Another upload's completion or
    an expiry removes empty folders (the user's, the upload's) at any moment, even between mkdir making
    the parent and the folder itself: then make them again."""
    for attempt in range(attempts):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, path = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
            return fd, path
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise


def _copy(source, out, room):
    """Append `source` to `out`, in the kernel where it can (copy_file_range), else through a buffer;
    return the bytes copied. UploadTooLarge past `room` (a chunk was replaced by a bigger one)."""
    size = os.fstat(source.fileno()).st_size
    if size > room:
        raise UploadTooLarge()
    try:
        out.flush()
        target = out.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        target = None
    copied = 0
    try:
        while target is not None and copied < size:
            step = os.copy_file_range(source.fileno(), target, size - copied)
            if not step:
                break
            copied += step
    except OSError:
        if copied:  # failed part-way: a real I/O error
            raise
    while copied < size and (block := source.read(min(COPY_BUFFER, size - copied))):  # no kernel copy
        out.write(block)
        copied += len(block)
    return copied


def _old_files(folder, cutoff):
    try:
        with os.scandir(folder) as entries:
            return [e for e in entries if e.is_file(follow_symlinks=False) and e.stat().st_mtime < cutoff]
    except FileNotFoundError:
        return []


def _numbered_folders(folder):
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries if e.name.isdigit() and e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _remove_if_empty(folder):
    with contextlib.suppress(OSError):  # not empty (another chunk is arriving), or already gone
        folder.rmdir()


def thumbnail_path(path):
    """The thumbnail written beside a picture: NAME_thumb.EXT."""
    return path.with_name(f"{path.stem}_thumb{path.suffix}")
