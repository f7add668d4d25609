"""The one BaseHandler: request ids, the signature check, argument parsing, the {code,msg,data} envelope
and the mapping of service errors to codes. Nothing area-specific lives here."""
import logging
import re
import uuid

import orjson
import tornado.web

from services import auth
from services.errors import BadMethod, Forbidden, NotFound, ServiceError, Stopping, TooLarge, WrongType
from services.forms import MAX_ID

log = logging.getLogger("zgld.request")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")


def to_json(data):
    """Encode a response body; datetimes as 'YYYY-MM-DD HH:MM:SS' like the seed."""
    return orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS)


class BaseHandler(tornado.web.RequestHandler):
    """Deny by default: every handler is signed unless it sets `signed = False`."""

    signed = True
    log_level = logging.INFO  # of the one line each request logs

    # ---- request id and logging ----

    @property
    def request_id(self):
        if not hasattr(self, "_request_id"):
            sent = self.request.headers.get("X-Request-Id", "")
            self._request_id = sent if _REQUEST_ID.match(sent) else uuid.uuid4().hex[:16]
        return self._request_id

    def set_default_headers(self):
        self.set_header("X-Request-Id", self.request_id)
        self.set_header("Content-Type", "application/json; charset=UTF-8")

    # ---- requests in flight, so a graceful stop can wait for them ----

    def initialize(self):
        self.settings["inflight"].add(self)

    def on_finish(self):
        self.settings["inflight"].discard(self)

    def on_connection_close(self):
        self.settings["inflight"].discard(self)
        super().on_connection_close()

    def cut_off(self):
        """A stop's grace is over and this call still runs; its work can no longer commit (models.commit_gate)."""
        if not self._finished:
            self.settings["inflight"].discard(self)
            self.set_status(Stopping.http_status)
            self.set_header("Retry-After", "1")
            self.reply({}, Stopping.msg, Stopping.code)

    # ---- the pieces every handler uses ----

    @property
    def config(self):
        return self.settings["config"]

    async def run(self, fn, *args, **kwargs):
        """Run blocking work (database, hashing, images, files) in the executor, off the event loop.
        GETs run in the executor's read lane, so they never wait behind writers stuck on a lock."""
        return await self.settings["executor"].submit_async(
            fn, *args, read_only=self.request.method in ("GET", "HEAD"), **kwargs)

    def query(self):
        """Query-string parameters as a dict of text (the last value of each)."""
        return {k: v[-1].decode("utf-8", "replace") for k, v in self.request.query_arguments.items()}

    def args(self):
        """Query parameters, then the body's fields over them: form (urlencoded or multipart) or JSON."""
        merged = self.query()
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            try:
                body = orjson.loads(self.request.body) if self.request.body.strip() else {}
            except orjson.JSONDecodeError:
                raise WrongType("请求体不是合法的 JSON") from None
            if not isinstance(body, dict):
                raise WrongType("请求体必须是 JSON 对象")
            merged.update(body)
        else:
            for key, values in self.request.body_arguments.items():
                merged[key] = values[-1].decode("utf-8", "replace")
        return merged

    def reply(self, data=None, msg="查询成功", code=200):
        self.envelope_code = code
        self.finish(to_json({"code": code, "msg": msg, "data": data if data is not None else {}}))

    # ---- the signature check, before any handler method ----

    def auth_options(self):
        """Extra arguments for auth.authenticate (the upload handlers widen the age limit)."""
        return {}

    def _implements(self, method):
        return getattr(type(self), method.lower(), None) is not getattr(tornado.web.RequestHandler,
                                                                        method.lower(), None)

    async def prepare(self):
        if not self._implements(self.request.method):
            raise BadMethod()
        if self.signed:
            self.current_user = await self.run(
                auth.authenticate, self.query(), self.request.path, self.request.method, self.config,
                **self.auth_options())

    def require_admin(self):
        if not self.current_user.is_admin:
            raise Forbidden()

    # ---- errors: every failure becomes an envelope ----

    def write_error(self, status_code, **kwargs):
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, ServiceError):
            self.set_status(error.http_status)
            if error.http_status == 503:
                self.set_header("Retry-After", "1")
            return self.reply(error.data, error.msg, error.code)
        if isinstance(error, tornado.web.HTTPError) and error.status_code == 405:
            self.set_status(200)
            return self.reply({}, BadMethod.msg, BadMethod.code)
        if status_code == 404:
            return self.reply({}, "请求路径不存在", 404)
        if status_code < 500:
            return self.reply({}, self._reason, status_code)
        self.reply({"request_id": self.request_id}, "服务器内部错误", 500)

    def log_exception(self, typ, value, tb):
        if isinstance(value, ServiceError):
            return  # an answer, not a fault: the request line logs its code
        if isinstance(value, tornado.web.HTTPError):
            return super().log_exception(typ, value, tb)
        log.error("request_id=%s unhandled error on %s %s", self.request_id, self.request.method,
                  self.request.uri, exc_info=(typ, value, tb))


class NotFoundHandler(BaseHandler):
    """Unknown paths: HTTP 404 with envelope code 404, whatever the method."""

    signed = False
    SUPPORTED_METHODS = HTTP_METHODS

    async def prepare(self):
        raise tornado.web.HTTPError(404)


@tornado.web.stream_request_body
class PayloadTooLargeHandler(BaseHandler):
    """Takes over a request whose declared body exceeds server.max_body_bytes, before the body is read."""

    signed = False
    SUPPORTED_METHODS = HTTP_METHODS

    async def prepare(self):
        raise TooLarge()


def log_request(handler):
    """One line per request: request id, method, path, HTTP status, envelope code, time, user."""
    request = handler.request
    user = getattr(handler, "current_user", None)
    level = getattr(handler, "log_level", logging.INFO)
    log.log(level, "request_id=%s %s %s status=%d code=%s %.1fms user=%s", getattr(handler, "request_id", "-"),
            request.method, request.path, handler.get_status(), getattr(handler, "envelope_code", "-"),
            1000 * request.request_time(), user.id if user else "-")


def api(path, handler, area="admin"):
    """A route under /zhugeleida/<area>/; the trailing slash is optional everywhere."""
    return (rf"/zhugeleida/{area}/{path.strip('/')}/?", handler)


ID = r"([^/]+)"  # a path id: anything up to the next slash, checked by path_id()


def path_id(text):
    """An id from the path; anything that cannot be an id names nothing: 302."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or not 0 < int(text) <= MAX_ID:
        raise NotFound()
    return int(text)
