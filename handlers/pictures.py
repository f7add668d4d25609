"""Chunked picture upload (add_picture, upload_complete) and the finished pictures under /statics/.

Both upload calls reuse one timestamp, the upload's id, for every chunk and the completion: they are
idempotent, so exempt from the once-only signature rule, and may be as old as the upload expiry. That
holds only when the signing timestamp is the upload's id; old clients sign each call afresh and send the
upload's id in the body (pictures.upload_params), which makes it an ordinary signed call.
"""
import asyncio
from typing import cast

import tornado.web
from tornado.http1connection import HTTP1Connection

import metrics
from handlers.base import BaseHandler, api
from handlers.console import ConsoleFileHandler
from services import calls, pictures
from services.scope import MEMBER

PICTURE_CACHE_SECONDS = 365 * 24 * 3600


class UploadHandler(BaseHandler):
    access = MEMBER
    spends_signature = False  # idempotent by design; a call signed afresh is settled once its form is read

    def signature_max_age(self):
        return self.config["upload"]["expire_seconds"]

    def signed_call(self):
        call = super().signed_call()
        call.notes_seen = False  # settled once the form has named the upload: signature_rule()
        return call

    def signature_rule(self, query):
        signatures = self.settings["signatures"]
        return pictures.SignatureRule(query, note=lambda: calls.note_seen(query, signatures),
                                      spend=lambda: calls.spend_alone(query, self.config, signatures))

    @property
    def storage(self):
        return self.settings["storage"]


@tornado.web.stream_request_body
class AddPictureHandler(UploadHandler):
    """One chunk, streamed: checked in prepare() before any body byte is read, decoded as it arrives
    and written in the executor a batch at a time; Tornado reads on once a write is done."""

    operation = pictures.ADD_PICTURE  # checked by the chunk's reader: its fields may come after the bytes

    upload: pictures.ChunkUpload | None = None
    disconnected = False

    @property
    def chunk(self) -> pictures.ChunkUpload:
        """The upload prepare() opened: every body callback and post() run after it has."""
        assert self.upload is not None
        return self.upload

    async def prepare(self):
        await super().prepare()
        if self._finished:  # a CORS preflight
            return
        headers = self.request.headers
        query, content_type, length = self.query(), headers.get("Content-Type", ""), headers.get("Content-Length")
        signature = self.signature_rule(query)
        self.upload = upload = await self.call(lambda caller: pictures.begin_chunk(
            self.storage, self.config, caller, query, content_type, length, signature))
        if self.disconnected:  # the client left while the chunk was being opened
            await self.run(upload.abort)
            return
        connection = cast(HTTP1Connection, self.request.connection)  # the body is still to be read over it
        connection.set_max_body_size(upload.max_body_bytes)
        # a chunk may take minutes on a slow line: longer than an ordinary body may
        connection.set_body_timeout(self.config["upload"]["body_timeout_seconds"])

    def data_received(self, data):
        batch = self.chunk.feed(data)
        if self.chunk.failure is not None and "Content-Length" not in self.request.headers:
            # A chunked body has no declared end: answer at once (the connection then closes) rather than
            # read on to Tornado's body limit and its bare 400.
            return self.answer_now(self.chunk.failure)
        if batch is not None:
            return self.run(self.chunk.write, batch)
        # decoding base64 costs about 1 ms per 64 KB: let other requests in between pieces
        return asyncio.sleep(0) if self.chunk.decodes else None

    async def answer_now(self, failure):
        if not self._finished:
            await self.run(self.chunk.abort)
            exc_info = (type(failure), failure, failure.__traceback__)
            self.log_exception(*exc_info)  # silent for an answer (ServiceError), logged for a fault
            self.send_error(exc_info=exc_info)

    async def post(self):
        data = await self.run(self.chunk.finish)
        metrics.upload_bytes(data["size"])
        self.reply(data, "上传成功")

    def cut_off(self):
        if self.upload is not None:  # the stop cut this chunk off: no partial chunk is kept
            self.chunk.abort()
        super().cut_off()

    def on_connection_close(self):
        super().on_connection_close()
        self.disconnected = True
        if self.upload is not None:  # no partial chunk is kept
            self.settings["executor"].submit(self.upload.abort)


class UploadCompleteHandler(UploadHandler):
    operation = pictures.UPLOAD_COMPLETE  # checked by complete_upload, once the signature is settled

    async def post(self):
        form = self.args()
        data = await pictures.complete_upload(self.call, self.run, self.storage, self.config, form,
                                              self.signature_rule(self.query()))
        self.reply(data, "添加图片成功")


class PictureFileHandler(ConsoleFileHandler):
    """Files under storage.root at /statics/. Picture names are server-made and never reused, so
    browsers and proxies may keep them for a year. Dot-names (files being written) are never served."""

    def validate_absolute_path(self, root, absolute_path):
        if any(part.startswith(".") for part in self.path.split("/")):
            raise tornado.web.HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)

    def set_extra_headers(self, path):
        self.set_header("Cache-Control", f"public, max-age={PICTURE_CACHE_SECONDS}, immutable")


def static_routes(storage):
    """The /statics/ route for the storage backend, if it serves files from a local folder."""
    root = storage.static_root()
    return [(r"/statics/(.+)", PictureFileHandler, {"path": str(root)})] if root is not None else []


default_handlers = [
    api("product/add_picture/0", AddPictureHandler),
    api("product/upload_complete/0", UploadCompleteHandler),
]
