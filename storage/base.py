"""The storage interface every backend implements, and the errors it raises.

Methods are synchronous (callers run them in the executor). Finished files are named by their URL
('statics/...'); staged uploads by a key (user_id, upload_id), so two users never share one, and they
live in the backend (not in a process's memory), so every process sees the same uploads.
"""

URL_PREFIX = "statics/"
PICTURE_FOLDER = "zhugeleida/imgs/qiyeweixin/product"  # the old system's URL scheme for product pictures
# Everything the service stores lives under URLs statics/zhugeleida/...; anything else under statics/
# ships with the service (the console) and is not data.
UPLOADS_FOLDER = "zhugeleida"


class StorageConfigError(Exception):
    """The storage settings cannot work; the message names the setting and why (reported in one line)."""


class MissingChunk(Exception):
    """assemble(): chunk `index` of the upload was never (completely) received."""

    def __init__(self, index):
        super().__init__(f"chunk {index} is missing")
        self.index = index


class UploadNotFound(Exception):
    """assemble(): nothing is staged under this key."""


class UploadTooLarge(Exception):
    """assemble(): the chunks add up to more than the allowed size."""


def thumbnail_url(url):
    """The thumbnail stored beside a picture: NAME_thumb.EXT."""
    stem, dot, ext = url.rpartition(".")
    return f"{stem}_thumb.{ext}" if dot else f"{url}_thumb"


class Storage:
    """What the service needs from a place to keep bytes."""

    # ---- finished files ----

    def url_for(self, name):
        """The URL a new picture called `name` (server-made) gets."""
        return f"{URL_PREFIX}{PICTURE_FOLDER}/{name}"

    def store(self, url, data):
        """Put `data` (bytes) at `url`, all or nothing: readers never see a partial file."""
        raise NotImplementedError

    def open(self, url):
        """A binary file object reading the file at `url`; FileNotFoundError if there is none."""
        raise NotImplementedError

    def delete(self, url):
        """Remove a picture and its thumbnail; a file already gone is not an error."""
        raise NotImplementedError

    def list_pictures(self):
        """(url, modification time) of every file in the picture folder, for the orphan sweep."""
        raise NotImplementedError

    def static_root(self):
        """The local folder /statics/ serves, or None if the backend serves its files elsewhere."""
        return None

    def stored_files(self):
        """(url, modification time) of every finished file under statics/zhugeleida/ (pictures and their
        thumbnails, whatever their folder), for a backup; files still being written are not listed."""
        raise NotImplementedError

    def is_empty(self):
        """True when nothing is stored and no upload is staged: a restore may fill it."""
        raise NotImplementedError

    def location(self):
        """Where the files are, in words, for messages ("the folder /srv/zgld/statics")."""
        raise NotImplementedError

    # ---- health ----

    def check_writable(self):
        """Raise OSError (saying what failed) unless new files and staged chunks can be written now."""
        raise NotImplementedError

    def free_bytes(self):
        """The least free space where the backend writes, or None if no local disk limits it."""
        return None

    # ---- staged uploads ----

    def open_chunk(self, key, index):
        """A writer for chunk `index` of upload `key`: write(bytes)..., then commit() or abort().
        Until commit() the chunk is invisible; commit() replaces an earlier copy of the same chunk.
        `key` and `index` may be None when they are known only after the bytes (a form body whose fields
        follow img_data): then place(key, index) before commit(). An unplaced chunk left by a crash goes
        with expire()."""
        raise NotImplementedError

    def staged_chunks(self, key):
        """{index: byte size} of the committed chunks of upload `key` ({} if none)."""
        raise NotImplementedError

    def open_uploads(self, user_id):
        """The ids of `user_id`'s staged (unfinished) uploads."""
        raise NotImplementedError

    def open_upload_count(self):
        """How many staged (unfinished) uploads there are, of every user (/metrics)."""
        raise NotImplementedError

    def assemble(self, key, count, out, max_bytes):
        """Write chunks 0..count-1 of upload `key` in order to the binary file `out`.
        Raises UploadNotFound, MissingChunk(index) or UploadTooLarge (sum over `max_bytes`)."""
        raise NotImplementedError

    def abort(self, key):
        """Drop everything staged for upload `key`."""
        raise NotImplementedError

    def expire(self, max_age_seconds):
        """Drop staged uploads untouched for longer than `max_age_seconds`; return how many."""
        raise NotImplementedError

    def scratch_file(self):
        """An anonymous temporary binary file for work on an upload (gone when closed, even after a crash)."""
        raise NotImplementedError

    def remove_leftovers(self):
        """At start-up: remove temporary files (partial chunks, half-written pictures) a crash of this host
        left; return how many. A backend without such files has nothing to do."""
        return 0
