"""Chunked picture uploads (docs/api.md section 9): receiving chunks, completing an upload into a picture,
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
import unicodedata
from collections.abc import Iterable

import peewee as pw

from models import (
    Company,
    Product,
    ProductArticle,
    ProductPicture,
    after_commit,
    locked,
    now,
    tuples,
    write_transaction,
)
from services import chunk_stream, clock, images
from services.errors import FormInvalid, NotFound, TooLarge, invalid
from services.forms import CHUNK, Int, Operation, Str
from storage.base import MissingChunk, Storage, UploadNotFound, UploadTooLarge, thumbnail_url

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


def _clean(operation, params, limits=None):
    name = params.get("img_name")
    if isinstance(name, str) and name:
        check_img_name(name)  # before Str's strip() could hide a control character at either end
    return operation.validate(params, {"upload": limits})


def _complete_form(settings):
    limits = settings["upload"]
    return {"img_name": Str(max_length=MAX_NAME_LENGTH), "timestamp": UPLOAD_ID,
            "chunk_num": Int(min=1, max=limits["max_chunks"]), "picture_type": Int(choices=(1, 2))}


# docs/api.md section 9: the chunk's bytes come as the form field or part `img_data`, or as the raw body
ADD_PICTURE = Operation("上传图片的一个分片", CHUNK_FORM, source=CHUNK, codes=(302, 413))
UPLOAD_COMPLETE = Operation("把分片合成一张图片（封面 1 或介绍图片 2）", _complete_form, codes=(302, 413))


# ---- the upload's fields: one rule for both calls ------------------------------------------------------

def upload_params(query, body_fields):
    """The upload's fields, from the query or the body (the body's win). Old clients send them in the body
    and sign each call afresh, so the upload's id is the body's `timestamp` when the body gives one, else
    the query's (the document's clients, whose signing timestamp doubles as the upload's id)."""
    return {**query, **body_fields}


def signed_with_upload_id(query, params):
    """Whether the signing timestamp is the upload's id: only then may the call reuse its signature and be
    as old as the upload expiry; a freshly signed call is an ordinary signed call."""
    return str(params.get("timestamp", "")).strip() == query.get("timestamp", "")


class SignatureRule:
    """What an upload call's signature becomes once the form has named the upload: signed with the upload's
    id, it is noted (it may sign more of that upload, never a POST: services.calls.note_seen); signed afresh,
    it is an ordinary signed call's, spent once within the skew window (services.calls.spend_alone)."""

    def __init__(self, query, note, spend):
        self.query, self._note, self._spend = query, note, spend

    def settle(self, params):
        (self._note if signed_with_upload_id(self.query, params) else self._spend)()


# ---- receiving a chunk --------------------------------------------------------------------------------

class ChunkUpload:
    """One chunk arriving. feed() (on the loop, cheap) decodes a piece of body and hands back a batch
    (a list of bytes, about FLUSH_BYTES) to write() in order; finish() writes the rest and renames the
    chunk into place; abort() drops it. A problem found while streaming (or writing) is kept and raised
    by finish(), once the body is read, so the client gets an answer rather than a reset connection.

    A raw body's chunk is checked before its body is read (its fields are all in the query). A form's
    fields may follow img_data, so its chunk is staged unplaced and checked and placed once the body is read."""

    def __init__(self, storage, user_id, decoder, limits, query, signature):
        self.storage, self.user_id, self.decoder, self.limits = storage, user_id, decoder, limits
        self.query, self.signature = query, signature
        self.chunk_limit, self.upload_limit = limits["max_chunk_bytes"], limits["max_upload_bytes"]
        # decoded bytes this chunk may have: the chunk limit, or less if the upload is nearly full
        self.limit = self.chunk_limit
        # the body (encoded) is bounded by the chunk limit only: a body over self.limit is still read, so
        # the client gets the 413 rather than a dropped connection
        self.max_body_bytes = decoder.max_body(self.chunk_limit)
        self.key = self.index = None
        if decoder.fields is None:
            self._check(query)
            signature.settle(query)  # a raw body's fields are all in the query
        self.writer = storage.open_chunk(self.key, self.index)
        self.size = 0
        self.failure = None
        self.decodes = not isinstance(decoder, chunk_stream.RawDecoder)  # costs loop time per piece
        self._batch, self._batch_bytes = [], 0

    def _check(self, params):
        """Check the chunk's fields and the limits that depend on its upload; name the chunk."""
        form = _clean(ADD_PICTURE, params)
        self.index = form["chunk"]
        if self.index >= self.limits["max_chunks"]:
            raise TooLarge(f"分片数超过上限 {self.limits['max_chunks']}", {"chunk": self.index})
        open_uploads = self.storage.open_uploads(self.user_id)
        if form["timestamp"] not in open_uploads and len(open_uploads) >= self.limits["max_open_uploads"]:
            raise TooLarge(f"未完成的上传过多（上限 {self.limits['max_open_uploads']} 个）")
        key = (self.user_id, form["timestamp"])
        others = self._others(key)
        if others >= self.upload_limit:
            raise self._too_large()
        self.key, self.limit = key, min(self.chunk_limit, self.upload_limit - others)

    def _others(self, key):
        return sum(size for i, size in self.storage.staged_chunks(key).items() if i != self.index)

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

    def _check_size(self):
        if self.size > self.limit:
            raise self._too_large(by_chunk=self.limit == self.chunk_limit)

    def _take(self, data):
        self.size += len(data)
        self._check_size()
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
            if self.key is None:
                self._place()
            # again: another process may have added chunks meanwhile
            if self._others(self.key) + self.size > self.upload_limit:
                raise self._too_large()
            if not self.writer.commit():
                raise invalid("img_data", "分片接收中断")
        except BaseException:
            self.abort()
            raise
        return {"chunk": self.index, "size": self.size}

    def _place(self):
        """The body has named the upload: check it as a raw body's is checked before its body, then place
        the chunk in it. A call signed afresh (its upload id is not the signing timestamp) is ordinary."""
        params = upload_params(self.query, self.decoder.fields)
        self._check(params)
        self._check_size()
        self.signature.settle(params)
        self.writer.place(self.key, self.index)

    def abort(self):
        self.writer.abort()


def begin_chunk(storage, settings, user, query, content_type, content_length, signature):
    """Check a chunk's arguments and limits before its body is read (those a form body may still give,
    once it is read); return a ChunkUpload for it."""
    limits = settings["upload"]
    decoder = chunk_stream.decoder_for(content_type)
    if content_length is not None and content_length.isdigit() and \
            int(content_length) > decoder.max_body(limits["max_chunk_bytes"]):
        raise TooLarge(f"分片超过上限 {limits['max_chunk_bytes']} 字节")
    return ChunkUpload(storage, user.id, decoder, limits, query, signature)


# ---- completing an upload -----------------------------------------------------------------------------

def _answer(picture):
    """`ret_data` (docs/api.md section 9.1), and beside it the old server's flat keys (old clients read those)."""
    return {"ret_data": {"picture_id": picture.id, "picture_url": picture.url},
            "picture_type": picture.picture_type, "picture_id": picture.id, "picture_url": picture.url}


def _completed(upload_key):
    return ProductPicture.get_or_none(ProductPicture.upload_key == upload_key)


async def complete_upload(start, run, storage, settings, params, signature):
    """Join the chunks, check and re-encode the image, store it and its thumbnail, and record the
    picture; answer as _answer(). Completing the same upload again answers the same.

    `start(job)` runs `job(caller)` as the call's one job (the signature check first); `run` runs other
    blocking work in a worker thread. The Pillow work in between is awaited, not waited for in a worker
    thread: with every worker thread waiting on images, a small GET took about 230 ms instead of 1.5 ms.
    `signature` settles the call's signature once the form has named the upload (SignatureRule)."""
    limits = settings["upload"]
    started = await start(lambda user: _start_completion(storage, limits, user, params, signature))
    if isinstance(started, dict):
        return started  # completed before
    user, form, key, upload_key, joined = started
    try:
        picture = await asyncio.wrap_future(images.submit(
            joined, limits["max_pixels"], limits["thumbnail_px"], limits["jpeg_quality"], limits["image_threads"]))
    except FormInvalid:
        await run(storage.abort, key)  # the content itself is refused: keep nothing of it
        raise
    finally:
        joined.close()
    return await run(_finish_completion, storage, user, form["picture_type"], picture, upload_key, key, limits)


def _start_completion(storage, limits, user, params, signature):
    """The answer if the upload was completed before; else (user, form, key, upload key, the joined file)."""
    form = _clean(UPLOAD_COMPLETE, params, limits)
    signature.settle(params)
    key, upload_key = (user.id, form["timestamp"]), _upload_key(user, form["timestamp"])
    done = _completed(upload_key)
    if done is not None:
        return _answer(done)
    _check_quota(user.company_id, 0, limits)  # a company already full is told before the image work
    try:
        return user, form, key, upload_key, _joined(storage, key, form["chunk_num"], limits)
    except Exception:
        done = _completed(upload_key)  # another process completed it meanwhile and removed the chunks
        if done is not None:
            return _answer(done)
        raise


def _finish_completion(storage, user, picture_type, picture, upload_key, key, limits):
    row = store_picture(storage, user, picture_type, picture, upload_key, quota=limits)
    storage.abort(key)
    return _answer(row)


def _check_quota(company_id, new_bytes, limits):
    """413 if one more picture of `new_bytes` would pass the company's picture or byte quota."""
    count, total = ProductPicture.select(pw.fn.COUNT(ProductPicture.id),
                                         pw.fn.COALESCE(pw.fn.SUM(ProductPicture.byte_size), 0)).where(
        ProductPicture.company == company_id).scalar(as_tuple=True)
    if count + 1 > limits["company_max_pictures"]:
        raise TooLarge(f"本公司的图片已达上限 {limits['company_max_pictures']} 张，请先删除不用的产品或图片")
    if total + new_bytes > limits["company_max_bytes"]:
        raise TooLarge(f"本公司的图片已达总大小上限 {limits['company_max_bytes'] // 2**20} MB，"
                       "请先删除不用的产品或图片")


def store_picture(storage, user, picture_type, picture, upload_key=None, quota=None):
    """Store a processed picture (images.process) and its thumbnail under a server-made name and record
    it for the user's company, within the company's `quota` (upload settings) if given; return the row.
    If the same upload was completed concurrently, keep theirs and drop ours."""
    url = storage.url_for(f"{_new_name()}.{picture.extension}")
    try:
        storage.store(thumbnail_url(url), picture.thumbnail)
        storage.store(url, picture.data)
        with write_transaction():
            if quota is not None:  # under the company's lock, so parallel uploads cannot all fit
                list(locked(Company.select(Company.id).where(Company.id == user.company_id)))
                _check_quota(user.company_id, len(picture.data), quota)
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
    """Like the old system's 20180628140645880613, plus random hex so two processes never pick the same."""
    return clock.now().astimezone().strftime("%Y%m%d%H%M%S%f") + secrets.token_hex(3)


# ---- removing picture rows and files --------------------------------------------------------------------
# The one place picture files are removed: products, users, companies and the housekeeping all come here.

_BATCH = 500  # ids or URLs per IN (...) list, well under every database's parameter limit


def delete_picture_rows(*conditions: pw.Expression) -> list[str]:
    """Delete the picture rows matching `conditions` in the caller's transaction; return their URLs."""
    rows = ProductPicture.select(ProductPicture.id, ProductPicture.url).where(*conditions)
    urls = [p.url for p in rows]
    ProductPicture.delete().where(*conditions).execute()
    return urls


def delete_product_rows(product_ids: Iterable[int]) -> list[str]:
    """Delete products with their articles and picture rows, in the caller's transaction.

    Returns the URLs of the pictures whose files must go once that transaction has committed
    (see delete_files)."""
    urls = []
    for batch in pw.chunked(list(product_ids), _BATCH):
        urls += delete_picture_rows(ProductPicture.product.in_(batch))
        ProductArticle.delete().where(ProductArticle.product.in_(batch)).execute()
        Product.delete().where(Product.id.in_(batch)).execute()
    return urls


def delete_files(storage: Storage, urls: Iterable[str]) -> None:
    """Remove picture files once the transaction that deleted their rows has committed (at once outside
    one; never if it rolls back, so no row is left without its file)."""
    urls = list(urls)
    after_commit(lambda: _delete_unreferenced_files(storage, urls))


def _delete_unreferenced_files(storage: Storage, urls: list[str]) -> None:
    """A URL that some picture row still names is kept (two rows may share a file); a file that cannot be
    removed is logged, not raised: its rows are gone."""
    candidates = sorted(set(urls))
    named = set()
    for batch in pw.chunked(candidates, _BATCH):  # batches of the fixed list: each URL is looked up once
        named.update(u for (u,) in tuples(ProductPicture.select(ProductPicture.url).where(
            ProductPicture.url.in_(batch))))
    for url in candidates:
        if url in named:
            continue
        try:
            storage.delete(url)
        except OSError:
            log.warning("could not delete picture file %s", url, exc_info=True)


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
    cutoff = clock.epoch_seconds() - settings["upload"]["orphan_grace_seconds"]
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


_EXPIRE_BATCH = 500


def expire_unattached(storage, settings):
    """Delete pictures never attached to a product, upload.unattached_picture_days after their upload
    (rows, then files): uploading without ever saving a product must not fill the disk."""
    cutoff = now() - datetime.timedelta(days=settings["upload"]["unattached_picture_days"])
    unattached = ProductPicture.product.is_null() & (ProductPicture.create_date < cutoff)
    removed = 0
    while True:
        candidates = dict(tuples(ProductPicture.select(ProductPicture.id, ProductPicture.url).where(unattached)
                                 .limit(_EXPIRE_BATCH)))
        if not candidates:
            break
        # the condition again: a product saved meanwhile keeps its pictures
        ProductPicture.delete().where(ProductPicture.id.in_(list(candidates)) & unattached).execute()
        kept = {i for (i,) in tuples(ProductPicture.select(ProductPicture.id).where(
            ProductPicture.id.in_(list(candidates))))}
        delete_files(storage, [url for i, url in candidates.items() if i not in kept])
        removed += len(candidates) - len(kept)
        if kept:  # attached meanwhile: the next round would find the rest, not these
            break
    if removed:
        log.info("removed %d picture(s) never attached to a product", removed)
    return removed


def housekeeping(storage, settings):
    """The periodic job: expired uploads, pictures never attached, and orphaned files."""
    expire_uploads(storage, settings)
    expire_unattached(storage, settings)
    sweep_orphans(storage, settings)
