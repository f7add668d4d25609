"""The one BaseHandler: request ids, the signature check, argument parsing, the {code,msg,data} envelope
and the mapping of service errors to codes. Nothing area-specific lives here."""
import functools
import logging
import os
import re

import tornado.httputil
import tornado.web

import logs
from services import audit, calls
from services.errors import BadMethod, Forbidden, FormInvalid, NotFound, ServiceError, Stopping, TooLarge, WrongType
from services.forms import MAX_ID, Operation, parse_json
from services.scope import ACCESS_LEVELS, PUBLIC

log = logging.getLogger("zgld.request")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
READ_METHODS = ("GET", "HEAD")  # a call that writes nothing
_HEADER_NAMES = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")


to_json = calls.to_json


def _signature_first(method):
    """A signed handler's method, which may refuse a request (bad form or path id) before its call's job has
    checked the signature: then the signature is checked first, so an unsigned caller only ever hears 400
    (or a non-administrator 404), as when the check came before everything."""
    @functools.wraps(method)
    async def checked(self, *args, **kwargs):
        try:
            return await method(self, *args, **kwargs)
        except ServiceError as error:
            if self.signed and not self.job_started:
                await self.run(calls.check_refused, self.signed_call(), error)
            raise
    return checked


class BaseHandler(tornado.web.RequestHandler):
    """Deny by default: every handler declares who may call it in `access` (services.scope: PUBLIC, MEMBER,
    ADMIN); one that does not is refused by make_app (routes_declaring_access) and, if routed anyway, answers
    404. A MEMBER or ADMIN handler does its work through call(), which checks the signature and then the
    declared access in the same job, and cannot answer 200 otherwise."""

    access: str | None = None  # undeclared: denied
    inline_read = False  # a GET whose work is a short read: on SQLite it runs on the event loop
    spends_signature = True  # a POST is done once per signature (the upload calls are exempt)
    keeps_answer = True  # False: the answer holds a secret, never stored for a retry (which is then refused)
    audit_kind: str | None = None  # a write recorded in the audit trail: the kind of what it changes ("user", ...)
    audit_self = False  # the write's target is the caller (logout, modify_password), not a path or answer id
    log_level = logging.INFO  # of the one line each request logs
    job_started = False  # call() has begun checking the signature
    operation: Operation | None = None  # what the call takes, declared beside its service (GET /openapi.json)
    enveloped = True  # answers {code, msg, data}; False: its own document, of media type `answer_type`
    answer_type = "application/json"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("get", "post"):
            if name in cls.__dict__:
                setattr(cls, name, _signature_first(cls.__dict__[name]))

    # ---- request id and logging ----

    @property
    def request_id(self):
        if not hasattr(self, "_request_id"):
            sent = self.request.headers.get("X-Request-Id", "")
            # 16 random hex digits, as uuid4().hex[:16] gave, at a third of its cost
            self._request_id = sent if _REQUEST_ID.match(sent) else os.urandom(8).hex()
        return self._request_id

    def set_default_headers(self):
        self.set_header("X-Request-Id", self.request_id)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.allow_origin()

    # ---- CORS: the old admin web app is a single-page app served from its own host ----

    def allow_origin(self):
        """Let an allowed Origin read this answer, whatever it is (errors, 404s and 413s too); any other
        Origin gets no CORS header. Safe to allow any: signatures travel in the query, never in cookies."""
        self.set_header("Vary", "Origin")  # so no cache hands one origin's answer to another
        origin = self.request.headers.get("Origin")
        if not origin:
            return
        allowed = self.settings["config"]["server"]["cors_origins"].split()
        if allowed == ["*"] or origin in allowed:
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Access-Control-Expose-Headers", "X-Request-Id")

    def preflight(self):
        """A browser's OPTIONS before a cross-origin call: answered without a signature, nothing done."""
        self.set_status(204)
        if self._headers.get("Access-Control-Allow-Origin"):
            self.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
            requested = self.request.headers.get("Access-Control-Request-Headers", "")
            if _HEADER_NAMES.match(requested):
                self.set_header("Access-Control-Allow-Headers", requested)
            self.set_header("Access-Control-Max-Age", "600")
        self.finish()

    # ---- requests in flight, so a graceful stop can wait for them ----

    def initialize(self):
        self.settings["inflight"].add(self)
        # every line this request causes carries its id; its task, and its jobs, copy this context
        logs.request_id.set(self.request_id)

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
    def signed(self) -> bool:
        """Anything not declared PUBLIC needs a signature (an undeclared handler too: prepare() refuses it)."""
        return self.access != PUBLIC

    @property
    def config(self):
        return self.settings["config"]

    async def run(self, fn, *args, **kwargs):
        """Run blocking work (database, hashing, images, files) in the executor, off the event loop.
        GETs run in the executor's read lane, so they never wait behind writers stuck on a lock."""
        return await self.settings["executor"].submit_async(
            fn, *args, read_only=self.request.method in READ_METHODS, **kwargs)

    def query(self):
        """Query-string parameters as a dict of text (the last value of each)."""
        return {k: v[-1].decode("utf-8", "replace") for k, v in self.request.query_arguments.items()}

    def args(self):
        """Query parameters, then the body's fields over them: form (urlencoded or multipart) or JSON."""
        merged = self.query()
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.startswith("application/json"):
            try:
                body = parse_json(self.request.body) if self.request.body.strip() else {}
            except ValueError:
                raise WrongType("请求体不是合法的 JSON") from None
            if not isinstance(body, dict):
                raise WrongType("请求体必须是 JSON 对象")
            merged.update(body)
        else:
            for key, values in self.request.body_arguments.items():
                merged[key] = values[-1].decode("utf-8", "replace")
        return merged

    def form(self) -> dict:
        """The request's fields, checked by the handler's declared operation (a 301/303 if bad)."""
        if self.operation is None:
            raise RuntimeError(f"{type(self).__name__} declares no operation")
        return self.operation.validate(self.args(), self.config)

    def compute_etag(self):
        # Every signed call carries a signature of its own in its URL, so no client ever sends it again
        # with If-None-Match: hashing each answer for an ETag would be work for nothing.
        return None if self.signed else super().compute_etag()

    def reply(self, data=None, msg="查询成功", code=200):
        if code == 200 and self.signed and self.current_user is None:
            raise RuntimeError("a signed handler answered without call()")  # deny by default: a 500
        self.envelope_code = code
        self.finish(to_json({"code": code, "msg": msg, "data": data if data is not None else {}}))

    # ---- a signed call: the signature check and the work in one job ----

    def signature_max_age(self):
        """The oldest signature accepted, in seconds; None: the skew window (the upload calls widen it)."""
        return None

    def signed_call(self):
        """What services.calls needs to know about this request."""
        spends = self.spends_signature and self.request.method == "POST"
        call = calls.Call(params=self.query(), settings=self.config, seen=self.settings["signatures"],
                          spends=spends, reads_only=self.request.method in READ_METHODS, access=self.access or "",
                          max_age_seconds=self.signature_max_age(), keeps_answer=self.keeps_answer)
        if spends:
            call.route = f"{type(self).__module__}.{type(self).__qualname__}"
            call.path_ids = tuple(self.path_args)
            call.query = tuple(sorted((k, [v.decode("utf-8", "replace") for v in values])
                                      for k, values in self.request.query_arguments.items()
                                      if k not in calls.SIGNING_PARAMS))
            call.content_type = self.request.headers.get("Content-Type", "")
            call.body = self.request.body or b""
            call.audit = self.audit_note()
        return call

    def audit_note(self):
        """What this write's audit entry says besides who did it and how it ended; None: not recorded."""
        if self.audit_kind is None:
            return None
        route = self.request.path.removeprefix("/zhugeleida/").removeprefix("admin/").strip("/")
        return audit.Note(kind=self.audit_kind, route=route, address=self.request.remote_ip or "-",
                          request_id=self.request_id, self_target=self.audit_self)

    def _runs_inline(self):
        # SQLite in WAL mode: a reader never waits for a writer, and a short read costs less than a trip
        # through the executor. Writes, and every call on PostgreSQL (a network round trip), go there.
        return self.inline_read and self.request.method == "GET" and self.config["database"]["url"].startswith(
            "sqlite")

    async def call(self, fn, *args, **kwargs):
        """Check the signature and run `fn(caller, *args, **kwargs)` as one job (a POST exactly once,
        see services.calls); the caller becomes current_user. Returns fn's answer, or a retry's stored one."""
        call = self.signed_call()
        self.job_started = True
        try:
            if self._runs_inline():
                return calls.execute(call, fn, *args, **kwargs)
            return await self.run(calls.execute, call, fn, *args, **kwargs)
        finally:
            self.current_user = call.user

    def _implements(self, method):
        return getattr(type(self), method.lower(), None) is not getattr(tornado.web.RequestHandler,
                                                                        method.lower(), None)

    async def prepare(self):
        if self.access not in ACCESS_LEVELS:  # a route added past make_app's check: denied all the same
            raise Forbidden()
        if self.request.method == "OPTIONS":
            return self.preflight()
        if not self._implements(self.request.method):
            raise BadMethod()

    # ---- errors: every failure becomes an envelope ----

    def write_error(self, status_code, **kwargs):
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(getattr(error, "__cause__", None), tornado.httputil.HTTPInputError):
            # a body Tornado cannot parse (truncated multipart, no boundary): a form error, not 400, which
            # old clients read as "signed out"
            error = FormInvalid(data={"body": ["请求体格式错误"]})
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
                  self.request.path, exc_info=(typ, value, tb))

    def _request_summary(self):
        # Tornado's own warnings name the request with its full URI: the path only, never a signature.
        return f"{self.request.method} {self.request.path} ({self.request.remote_ip})"


class NotFoundHandler(BaseHandler):
    """Unknown paths: HTTP 404 with envelope code 404, whatever the method."""

    access = PUBLIC
    SUPPORTED_METHODS = HTTP_METHODS

    async def prepare(self):
        raise tornado.web.HTTPError(404)

    def write_error(self, status_code, **kwargs):
        # also for a method Tornado does not know (405 before prepare): nothing is here whatever the method
        self.set_status(404)
        super().write_error(404)


@tornado.web.stream_request_body
class PayloadTooLargeHandler(BaseHandler):
    """Takes over a request whose declared body exceeds server.max_body_bytes, before the body is read."""

    access = PUBLIC
    SUPPORTED_METHODS = HTTP_METHODS

    async def prepare(self):
        raise TooLarge()


UNROUTED = "(none)"  # the route of a request no route matched (the 404 for an unknown path)


def route_of(handler) -> str:
    """The route pattern that served `handler` ('/zhugeleida/admin/product/update/{id}'), for the log and
    /metrics: never the path itself, whose ids and typos would make a series per request."""
    return handler.settings.get("route_names", {}).get(type(handler), UNROUTED)


def request_line(handler) -> logs.RequestLine:
    """What the one line per request says: request id, method, path (never the query: it holds the
    signature), route, HTTP status, envelope code, time, user."""
    request = handler.request
    user = getattr(handler, "current_user", None)
    return logs.RequestLine(getattr(handler, "request_id", "-"), request.method, request.path, route_of(handler),
                            handler.get_status(), getattr(handler, "envelope_code", None),
                            1000 * request.request_time(), user.id if user else None)


def log_request(handler, line: logs.RequestLine | None = None) -> None:
    """One line per request (request_line). Handed to the handlers directly: the logging module's search
    for the caller's source line was a third of the line's cost; the text is made by the formatter."""
    level = getattr(handler, "log_level", logging.INFO)
    if not log.isEnabledFor(level):
        return
    log.handle(log.makeRecord(log.name, level, "", 0, line or request_line(handler), (), None))


def routes_declaring_access(routes: list) -> list:
    """The routes, once every handler has said who may call it (`access`, services.scope): an app with an
    undeclared handler is not built, so no route ships open by forgetting."""
    for route in routes:
        pattern, handler = route[0], route[1]
        if getattr(handler, "access", None) not in ACCESS_LEVELS:
            raise TypeError(f"{handler.__name__} ({pattern}) declares no access: set access to one of "
                            f"{', '.join(ACCESS_LEVELS)}")
    return routes


def api(path, handler, area="admin"):
    """A route under /zhugeleida/<area>/; the trailing slash is optional everywhere."""
    return (rf"/zhugeleida/{area}/{path.strip('/')}/?", handler)


ID = r"([^/]+)"  # a path id: anything up to the next slash, checked by path_id()


def path_id(text):
    """An id from the path; anything that cannot be an id names nothing: 302."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or not 0 < int(text) <= MAX_ID:
        raise NotFound()
    return int(text)
