"""Chunked picture uploads (BEHAVIOR.md section 4): receiving chunks, completing an upload into a picture,
and the housekeeping that keeps staged uploads and picture files from leaking.

An upload is keyed by (uploader id, the client's timestamp), so two users never share one and another
user's upload simply does not exist for the caller. Its chunks are staged in storage (shared by every
process); the picture row's upload_key (unique) makes completing twice, even from two processes, give
one picture. Everything here blocks except ChunkUpload.feed(): handlers run it in the executor.
"""
import asyncio
import datetime
import hashlib
import logging
import secrets
import time
import unicodedata

import peewee as pw

from models import ProductPicture, db
from services import chunk_stream, images
from services.errors import FormInvalid, NotFound, TooLarge, invalid
from services.forms import Int, Str, validate
from storage.base import MissingChunk, UploadNotFound, UploadTooLarge, thumbnail_url

log = logging.getLogger("zgld.pictures")

MAX_NAME_LENGTH = 200
FLUSH_BYTES = 1024 * 1024  # decoded bytes gathered on the loop (as the pieces received) per write


# ---- arguments ----------------------------------------------------------------------------------------

def check_img_name(name):
    """`img_name` never becomes a path: it must be a plain file name ending in an allowed extension."""
    if (len(name) > MAX_NAME_LENGTH or any(c in name for c in "/\\") or ".." in name
            or any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name)):
        raise invalid("img_name", "文件名不合法")
    extension = name.rpartition(".")[2].lower() if "." in name else ""
    if extension not in images.EXTENSIONS:
        raise invalid("img_name", "文件扩展名必须是 " + "、".join(sorted(images.EXTENSIONS)) + " 之一")


def _upload_key(user, timestamp):
    return f"{user.id}:{timestamp}"


UPLOAD_ID = Int(min=0, max=10**16)  # the client's timestamp (already checked by the signature)
CHUNK_FORM = {"img_name": Str(max_length=MAX_NAME_LENGTH), "timestamp": UPLOAD_ID, "chunk": Int(min=0)}


def _clean(schema, params):
    name = params.get("img_name")
    if isinstance(name, str) and name:
        check_img_name(name)  # before Str's strip() could hide a control character at either end
    return validate(schema, params)


# ---- receiving a chunk --------------------------------------------------------------------------------

class ChunkUpload:
    """One chunk arriving. feed() (on the loop, cheap) decodes a piece of body and hands back a batch
    (a list of bytes, about FLUSH_BYTES) to write() in order; finish() writes the rest and renames the
    chunk into place; abort() drops it. A problem found while streaming (or writing) is kept and raised
    by finish(), once the body is read, so the client gets an answer rather than a reset connection."""

    def __init__(self, storage, key, index, decoder, limits):
        self.storage, self.key, self.index, self.decoder = storage, key, index, decoder
        self.chunk_limit, self.upload_limit = limits["max_chunk_bytes"], limits["max_upload_bytes"]
        others = sum(size for i, size in storage.staged_chunks(key).items() if i != index)
        if others >= self.upload_limit:
            raise self._too_large()
        # decoded bytes this chunk may have: the chunk limit, or less if the upload is nearly full
        self.limit = min(self.chunk_limit, self.upload_limit - others)
        # the body (encoded) is bounded by the chunk limit only: a body over self.limit is still read, so
        # the client gets the 413 rather than a dropped connection
        self.max_body_bytes = decoder.max_body(self.chunk_limit)
        self.writer = storage.open_chunk(key, index)
        self.size = 0
        self.failure = None
        self.decodes = not isinstance(decoder, chunk_stream.RawDecoder)  # costs loop time per piece
        self._batch, self._batch_bytes = [], 0

    def feed(self, data):
        if self.failure is not None:
            return None
        try:
            self._take(self.decoder.feed(data))
        except Exception as e:  # a ServiceError for the client, or a fault: either way finish() raises it
            self.failure, self._batch = e, []
            return None
        if self._batch_bytes < FLUSH_BYTES:
            return None
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        return batch

    def _too_large(self, by_chunk=False):
        if by_chunk:
            return TooLarge(f"分片超过上限 {self.chunk_limit} 字节", {"chunk": self.index})
        return TooLarge(f"上传文件超过上限 {self.upload_limit} 字节", {"chunk": self.index})

    def _take(self, data):
        self.size += len(data)
        if self.size > self.limit:
            raise self._too_large(by_chunk=self.limit == self.chunk_limit)
        if data:
            self._batch.append(data)
            self._batch_bytes += len(data)

    def write(self, batch):
        try:
            for piece in batch:
                self.writer.write(piece)
        except Exception as e:  # e.g. a full disk: answered by finish()
            self.failure = e

    def finish(self):
        try:
            if self.failure is None:
                self._take(self.decoder.finish())
            if self.failure is not None:
                raise self.failure
            if self.size == 0:
                raise invalid("img_data", "分片内容为空")
            self.write(self._batch)
            if self.failure is not None:
                raise self.failure
            # again: another process may have added chunks meanwhile
            others = sum(size for i, size in self.storage.staged_chunks(self.key).items() if i != self.index)
            if others + self.size > self.upload_limit:
                raise self._too_large()
            if not self.writer.commit():
                raise invalid("img_data", "分片接收中断")
        except BaseException:
            self.writer.abort()
            raise
        return {"chunk": self.index, "size": self.size}

    def abort(self):
        self.writer.abort()


def begin_chunk(storage, settings, user, params, content_type, content_length):
    """Check a chunk's arguments and limits before its body is read; return a ChunkUpload for it."""
    limits = settings["upload"]
    form = _clean(CHUNK_FORM, params)
    index = form["chunk"]
    if index >= limits["max_chunks"]:
        raise TooLarge(f"分片数超过上限 {limits['max_chunks']}", {"chunk": index})
    decoder = chunk_stream.decoder_for(content_type)
    if content_length is not None and content_length.isdigit() and \
            int(content_length) > decoder.max_body(limits["max_chunk_bytes"]):
        raise TooLarge(f"分片超过上限 {limits['max_chunk_bytes']} 字节", {"chunk": index})
    open_uploads = storage.open_uploads(user.id)
    if form["timestamp"] not in open_uploads and len(open_uploads) >= limits["max_open_uploads"]:
        raise TooLarge(f"未完成的上传过多（上限 {limits['max_open_uploads']} 个）")
    return ChunkUpload(storage, (user.id, form["timestamp"]), index, decoder, limits)


# ---- completing an upload -----------------------------------------------------------------------------

def _complete_form(limits):
    return {"img_name": Str(max_length=MAX_NAME_LENGTH), "timestamp": UPLOAD_ID,
            "chunk_num": Int(min=1, max=limits["max_chunks"]), "picture_type": Int(choices=(1, 2))}


def _answer(picture):
    return {"picture_id": picture.id, "picture_url": picture.url}


def _completed(upload_key):
    return ProductPicture.get_or_none(ProductPicture.upload_key == upload_key)


async def complete_upload(run, storage, settings, user, params):
    """Join the chunks, check and re-encode the image, store it and its thumbnail, and record the
    picture; answer {picture_id, picture_url}. Completing the same upload again answers the same.

    `run` runs blocking work in a worker thread (the handler's). The Pillow work in between is awaited,
    not waited for in a worker thread: with every worker thread waiting on images, a small GET took
    about 230 ms instead of 1.5 ms."""
    limits = settings["upload"]
    started = await run(_start_completion, storage, limits, user, params)
    if isinstance(started, dict):
        return started  # completed before
    form, key, upload_key, joined = started
    try:
        picture = await asyncio.wrap_future(images.submit(
            joined, limits["max_pixels"], limits["thumbnail_px"], limits["jpeg_quality"], limits["image_threads"]))
    except FormInvalid:
        await run(storage.abort, key)  # the content itself is refused: keep nothing of it
        raise
    finally:
        joined.close()
    return await run(_finish_completion, storage, user, form["picture_type"], picture, upload_key, key)


def _start_completion(storage, limits, user, params):
    """The answer if the upload was completed before; else (form, key, upload key, the joined file)."""
    form = _clean(_complete_form(limits), params)
    key, upload_key = (user.id, form["timestamp"]), _upload_key(user, form["timestamp"])
    done = _completed(upload_key)
    if done is not None:
        return _answer(done)
    try:
        return form, key, upload_key, _joined(storage, key, form["chunk_num"], limits)
    except Exception:
        done = _completed(upload_key)  # another process completed it meanwhile and removed the chunks
        if done is not None:
            return _answer(done)
        raise


def _finish_completion(storage, user, picture_type, picture, upload_key, key):
    row = store_picture(storage, user, picture_type, picture, upload_key)
    storage.abort(key)
    return _answer(row)


def store_picture(storage, user, picture_type, picture, upload_key=None):
    """Store a processed picture (images.process) and its thumbnail under a server-made name and record
    it for the user's company; return the row. If the same upload was completed concurrently, keep
    theirs and drop ours."""
    url = storage.url_for(f"{_new_name()}.{picture.extension}")
    try:
        storage.store(thumbnail_url(url), picture.thumbnail)
        storage.store(url, picture.data)
        with db.atomic():
            return ProductPicture.create(
                user=user.id, company=user.company_id, picture_type=picture_type, url=url,
                upload_key=upload_key, byte_size=len(picture.data), width=picture.width,
                height=picture.height, sha256=hashlib.sha256(picture.data).hexdigest())
    except pw.IntegrityError:  # completed concurrently: keep theirs, drop ours
        storage.delete(url)
        row = _completed(upload_key) if upload_key is not None else None
        if row is None:
            raise
        return row
    except BaseException:  # no row, so no file either (a crash right here is for the orphan sweep)
        storage.delete(url)
        raise


def _joined(storage, key, chunk_num, limits):
    """The upload's chunks joined into a scratch file (the caller closes it), read from the start."""
    joined = storage.scratch_file()
    try:
        storage.assemble(key, chunk_num, joined, limits["max_upload_bytes"])
    except UploadNotFound:
        joined.close()
        raise NotFound("上传不存在或已过期") from None
    except MissingChunk as e:
        joined.close()
        raise invalid("chunk_num", f"缺少分片 {e.index}") from None
    except UploadTooLarge:
        joined.close()
        raise TooLarge(f"上传文件超过上限 {limits['max_upload_bytes']} 字节") from None
    except BaseException:
        joined.close()
        raise
    joined.seek(0)
    return joined


def _new_name():
    """Like the seed's 20180628140645880613, plus random hex so two processes never pick the same."""
    return datetime.datetime.now().strftime("%Y%m%d%H%M%S%f") + secrets.token_hex(3)


# ---- housekeeping -------------------------------------------------------------------------------------

def expire_uploads(storage, settings):
    """Drop staged uploads older than upload.expire_seconds."""
    removed = storage.expire(settings["upload"]["expire_seconds"])
    if removed:
        log.info("expired %d unfinished upload(s)", removed)
    return removed


def sweep_orphans(storage, settings):
    """Remove picture files no picture row refers to (left by a crash between storing and recording).
    Files younger than upload.orphan_grace_seconds are left alone: they may belong to an upload being
    completed right now in another process."""
    cutoff = time.time() - settings["upload"]["orphan_grace_seconds"]
    candidates = [url for url, mtime in storage.list_pictures() if mtime < cutoff]
    if not candidates:
        return 0
    referenced = set()
    for (url,) in ProductPicture.select(ProductPicture.url).tuples().iterator():
        referenced.update((url, thumbnail_url(url)))
    orphans = [url for url in candidates if url not in referenced]
    for url in orphans:
        storage.delete(url)
    if orphans:
        log.info("removed %d picture file(s) no picture refers to", len(orphans))
    return len(orphans)


def housekeeping(storage, settings):
    """The periodic job: expired uploads and orphaned files."""
    expire_uploads(storage, settings)
    sweep_orphans(storage, settings)
