"""Entry point: load the config, build the app, listen, run background jobs; CLI sub-commands.

    python server.py [--config PATH] [--port N]            serve
    python server.py demo [--config PATH]                   load a demo company and print its logins
    python server.py create-admin --company NAME --login LOGIN --password PASSWORD
    python server.py backup PATH | restore PATH             SQLite database and pictures to/from one tar.gz
    python server.py import-activity FILE                   customer activity from JSON lines or CSV
    python server.py rollup --from DATE --to DATE           recompute the daily statistics of those days
    python server.py import-legacy --from mysql://USER:PASSWORD@HOST:PORT/DB [--files OLD_ROOT] [--dry-run]
    python server.py --data-dir DIR ...                     database, staging and pictures under DIR
"""
import argparse
import asyncio
import contextlib
import contextvars
import ctypes
import datetime
import fcntl
import logging
import os
import re
import signal
import sys
import threading
import time
import weakref

import tornado.httpserver
import tornado.httputil
import tornado.ioloop
import tornado.netutil
import tornado.web

import config as config_module
import logs
import metrics
import models
from handlers import activity as activity_handlers
from handlers import audit as audit_handlers
from handlers import auth as auth_handlers
from handlers import companies as company_handlers
from handlers import console as console_handlers
from handlers import health as health_handlers
from handlers import metrics as metrics_handlers
from handlers import openapi as openapi_handlers
from handlers import pictures as picture_handlers
from handlers import products as product_handlers
from handlers import roles as role_handlers
from handlers import stats as stats_handlers
from handlers import users as user_handlers
from handlers.base import (
    UNROUTED,
    NotFoundHandler,
    PayloadTooLargeHandler,
    log_request,
    request_line,
    routes_declaring_access,
)
from services import audit, auth, calls, images, pictures, stats
from storage import make_storage
from storage.base import StorageConfigError
from storage.local import HOST_TAG
from version import VERSION
from workers import Workers

log = logging.getLogger("zgld")

HANDLER_MODULES = [auth_handlers, user_handlers, console_handlers, product_handlers, health_handlers, role_handlers,
                   company_handlers, stats_handlers, activity_handlers, picture_handlers, metrics_handlers,
                   openapi_handlers, audit_handlers]

PRUNE_SIGNATURES_MS = 60 * 1000  # signatures are kept for the skew window (300 s), no longer
PICTURE_HOUSEKEEPING_MS = 10 * 60 * 1000
OUTCOME_FAILED = audit.OUTCOME_CODE_FAULT  # a command that failed, in the audit trail
AUDIT_PRUNE_MS = 60 * 60 * 1000  # entries past audit.retention_days (days) go within the hour
LOG_FLUSH_MS = 1000  # INFO lines reach the log within this (a WARNING at once)
CUT_OFF_SECONDS = 2  # after the grace: how long calls cut off get to notice, then how long threads get to end


class Application(tornado.web.Application):
    """Routes requests; one whose declared body is over the limit goes to a 413 before its body is read.
    Keeps the requests being answered, so a stop can tell busy connections from idle keep-alive ones."""

    def __init__(self, handlers, **settings):
        super().__init__(handlers, **settings)
        self.exact_routes = exact_routes(handlers)

    def find_handler(self, request, **kwargs):
        return _OwnContext(self._delegate_for(request, **kwargs))

    def _delegate_for(self, request, **kwargs):
        self.settings["requests"].add(request)  # weak: a request dropped by its client goes by itself
        exact = self.exact_routes.get(request.path)
        if exact is not None:
            delegate = self.get_handler_delegate(request, *exact)
        else:
            delegate = super().find_handler(request, **kwargs)
        handler_class = getattr(delegate, "handler_class", None)
        streaming = getattr(handler_class, "_stream_request_body", False)
        length = request.headers.get("Content-Length", "0")
        limit = self.settings["config"]["server"]["max_body_bytes"]
        if not streaming and (not length.isdigit() or int(length) > limit):
            return self.get_handler_delegate(request, PayloadTooLargeHandler)
        if not streaming and "Content-Length" not in request.headers:  # chunked: the size shows as it comes
            return _CountedBody(self, request, delegate, limit)
        return delegate


def exact_routes(routes) -> dict:
    """Path -> (handler class, its arguments) for the routes that name one path (with or without its trailing
    slash), as Tornado would route it: most requests are found by one look-up instead of trying each
    route's pattern in turn. A path that an earlier route's pattern also matches is left to Tornado, so the
    first matching route still wins."""
    entries = [(re.compile(pattern.removesuffix("$") + "$"), pattern, handler, extra)
               for pattern, handler, *extra in routes]
    exact = {}
    for entry in entries:
        _, pattern, handler, extra = entry
        prefix = pattern.removesuffix("/?")
        if re.escape(prefix).replace("\\/", "/") != prefix:  # a pattern, not a path
            continue
        for path in (prefix, prefix + "/"):
            if next(e for e in entries if e[0].match(path)) is entry:
                exact[path] = (handler, extra[0] if extra else {})
    return exact


class _OwnContext(tornado.httputil.HTTPMessageDelegate):
    """Runs a request's delegate, and so its handler, in a context of the request's own. What the handler
    sets there (its request id, which every line it causes carries) is seen by its task and its jobs, which
    copy the context, and not by the connection's later work: otherwise a line Tornado writes about the
    next request on a keep-alive connection (a malformed one) would carry this one's id."""

    __slots__ = ("delegate", "context")

    def __init__(self, delegate):
        self.delegate, self.context = delegate, contextvars.copy_context()

    def headers_received(self, start_line, headers):
        return self.context.run(self.delegate.headers_received, start_line, headers)

    def data_received(self, chunk):
        return self.context.run(self.delegate.data_received, chunk)

    def finish(self):
        return self.context.run(self.delegate.finish)

    def on_connection_close(self):
        return self.context.run(self.delegate.on_connection_close)


class _CountedBody(tornado.httputil.HTTPMessageDelegate):
    """A chunked body for a handler that reads whole bodies: once it passes the limit, the request goes to
    PayloadTooLargeHandler at once (413 with the envelope, then the connection closes) instead of
    Tornado's bare 400 at its own, larger, limit."""

    def __init__(self, app, request, delegate, limit):
        self.app, self.request, self.delegate, self.limit = app, request, delegate, limit
        self.size = 0
        self.start: tuple = ()  # the request's start line and headers, once received

    def headers_received(self, start_line, headers):
        self.start = (start_line, headers)
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk):
        if self.size > self.limit:
            return None
        self.size += len(chunk)
        if self.size <= self.limit:
            return self.delegate.data_received(chunk)
        self.delegate = self.app.get_handler_delegate(self.request, PayloadTooLargeHandler)
        return self.delegate.headers_received(*self.start)

    def finish(self):
        self.delegate.finish()

    def on_connection_close(self):
        self.delegate.on_connection_close()


def make_app(settings, workers=None):
    """The Tornado application for `settings` (see config.load); the database must be connected."""
    storage = make_storage(settings)
    routes = [route for module in HANDLER_MODULES for route in module.default_handlers]
    routes += picture_handlers.static_routes(storage)
    return Application(
        routes_declaring_access(routes),
        route_names=route_names(routes),
        config=settings,
        executor=workers or Workers(settings["server"]["worker_threads"]),
        storage=storage,
        default_handler_class=NotFoundHandler,
        log_function=log_and_forget,
        inflight=set(),
        signatures=calls.SeenSignatures(),
        requests=weakref.WeakSet(),
        routes=routes,  # described by GET /openapi.json
    )


def route_names(routes) -> dict:
    """Handler class -> the pattern it serves, readable ('/zhugeleida/admin/product/update/{id}'), as the
    log and /metrics name routes; a class serving several patterns lists them ('/ | /console/{path}')."""
    names = {NotFoundHandler: UNROUTED, PayloadTooLargeHandler: "(too large)"}  # 413 before routing
    for pattern, handler_class, *_ in routes:
        readable = pattern.removesuffix("/?").replace("([^/]+)", "{id}").replace("(.+)", "{path}")
        readable = readable.replace("()", "") or "/"
        names[handler_class] = f"{names[handler_class]} | {readable}" if handler_class in names else readable
    return names


def log_and_forget(handler):
    handler.settings["requests"].discard(handler.request)
    line = request_line(handler)
    metrics.observe_request(line.route, line.code, line.ms / 1000)
    log_request(handler, line)


def open_database(settings):
    models.connect(settings["database"]["url"], settings["database"]["busy_timeout_ms"])
    models.create_schema()


def start_background_jobs(app):
    """Periodic housekeeping, run in the executor so the loop never waits on it."""
    workers, settings = app.settings["executor"], app.settings["config"]

    def prune():
        workers.submit(auth.prune_used_signatures, settings)
        workers.submit(auth.prune_login_throttle, settings)

    job = tornado.ioloop.PeriodicCallback(prune, PRUNE_SIGNATURES_MS)
    job.start()

    seen, flushing = app.settings["signatures"], []

    def flush_signatures():
        # GETs' signatures reach the database (and so the other processes) in batches; one flush at a time
        if len(seen) and (not flushing or flushing[-1].done()):
            flushing[:] = [workers.submit(seen.flush, settings)]

    flush_job = tornado.ioloop.PeriodicCallback(flush_signatures, calls.SeenSignatures.FLUSH_MS)
    flush_job.start()

    rollup_running = []

    def rollup():
        # Catch up now, then check regularly whether the nightly roll-up is due; a check still running
        # is not queued again.
        if not rollup_running or rollup_running[-1].done():
            rollup_running[:] = [workers.submit(stats.scheduled_rollup, settings)]

    rollup()
    rollup_job = tornado.ioloop.PeriodicCallback(rollup, settings["stats"]["rollup_check_seconds"] * 1000)
    rollup_job.start()

    def picture_housekeeping():
        # expired uploads and picture files no row refers to (left by a crash): now, then regularly
        workers.submit(pictures.housekeeping, app.settings["storage"], settings)

    picture_housekeeping()
    pictures_job = tornado.ioloop.PeriodicCallback(picture_housekeeping, PICTURE_HOUSEKEEPING_MS)
    pictures_job.start()

    def sample_pools():
        metrics.sample_pools(workers.backlog(), images.queue_depth())

    sample_pools()  # before the first scrape can come
    sample_job = tornado.ioloop.PeriodicCallback(sample_pools, metrics.SAMPLE_MS)
    sample_job.start()

    def audit_prune():
        workers.submit(audit.prune, settings)

    audit_prune()
    audit_job = tornado.ioloop.PeriodicCallback(audit_prune, AUDIT_PRUNE_MS)
    audit_job.start()
    log_job = tornado.ioloop.PeriodicCallback(flush_logs, LOG_FLUSH_MS)
    log_job.start()
    jobs = [job, flush_job, rollup_job, pictures_job, sample_job, audit_job]
    return [*jobs, log_job]  # the log's flush last: a stop ends it last


def listen(app, settings):
    """Bind (after a fork, each process its own socket with reuse_port) and serve."""
    server_settings = settings["server"]
    max_body = max(server_settings["max_body_bytes"], 2 * settings["upload"]["max_chunk_bytes"])
    server = tornado.httpserver.HTTPServer(app, max_body_size=max_body, xheaders=server_settings["xheaders"],
                                           idle_connection_timeout=server_settings["idle_timeout_seconds"],
                                           body_timeout=server_settings["body_timeout_seconds"])
    sockets = tornado.netutil.bind_sockets(server_settings["port"], server_settings["host"],
                                           reuse_port=server_settings["processes"] > 1)
    server.add_sockets(sockets)
    return server


async def wait_for_inflight(app, seconds):
    """Wait up to `seconds` for the requests in flight; True if none is left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while app.settings["inflight"] and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return not app.settings["inflight"]


def _settle(future: asyncio.Future) -> None:
    """Mark `future` done unless it already is."""
    if not future.done():
        future.set_result(True)


def close_idle_connections(app, server):
    """At the start of a stop: close keep-alive connections with no request on them (their client opens a
    new connection, to another process, for its next request), and have busy ones close after their
    answer, so no request arrives on a connection the stop is about to cut."""
    busy = set()
    for request in list(app.settings["requests"]):
        # Tornado has no public switch for "close after this response"; this is what its own
        # `Connection: close` handling sets.
        request.connection._disconnect_on_finish = True
        busy.add(request.connection.stream)
    for connection in list(server._connections):  # Tornado's own list, as close_all_connections uses it
        if connection.stream not in busy:
            connection.stream.close()


async def cut_off(app):
    """The grace is over: from now no commit starts (one running is let finish) and running statements
    are interrupted, so every call still in flight either committed (and answers as usual) or did nothing
    and answers 503 Stopping. Takes at most CUT_OFF_SECONDS."""
    inflight, loop = app.settings["inflight"], asyncio.get_running_loop()
    log.warning("stopping: %d request(s) still running after the grace; cutting them off", len(inflight))
    deadline = loop.time() + CUT_OFF_SECONDS
    await asyncio.to_thread(models.commit_gate.close, CUT_OFF_SECONDS)
    if models.db.obj is not None:
        models.db.obj.interrupt_all()
    if not await wait_for_inflight(app, deadline - loop.time()):
        for handler in list(inflight):
            handler.cut_off()


async def stop_workers(app):
    """Close each worker thread's connection and end the threads, within CUT_OFF_SECONDS; True if they
    ended (else one is stuck, e.g. waiting for a lock: the caller exits without it; it cannot commit)."""
    models.commit_gate.close(0)  # background jobs (roll-up, housekeeping) stop at their next commit
    if models.db.obj is not None:
        models.db.obj.interrupt_all()
    workers, loop = app.settings["executor"], asyncio.get_running_loop()
    ended = loop.create_future()

    def shutdown():
        workers.shutdown(close=models.db.close)
        loop.call_soon_threadsafe(_settle, ended)

    # a thread of its own (daemon): a stuck shutdown must not hold up the exit, as asyncio.to_thread's would
    threading.Thread(target=shutdown, daemon=True, name="zgld-stop").start()
    try:
        return await asyncio.wait_for(ended, CUT_OFF_SECONDS)
    except TimeoutError:
        log.warning("stopping: a worker thread is still busy after %d s; exiting without it", CUT_OFF_SECONDS)
        workers.abandon()
        return False


async def serve(settings):
    """Serve until SIGTERM/SIGINT, then stop within shutdown_grace_seconds + 3 x CUT_OFF_SECONDS.
    Returns True if every worker thread ended (else the caller must exit without joining them)."""
    models.connect(settings["database"]["url"], settings["database"]["busy_timeout_ms"])
    app = make_app(settings)
    server = listen(app, settings)
    jobs = start_background_jobs(app)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("listening on http://%s:%d (database %s)", settings["server"]["host"], settings["server"]["port"],
             settings["database"]["url"].split("@")[-1])
    await stop.wait()
    log.info("stopping: no new connections, waiting for requests in flight")
    server.stop()
    for job in jobs[:-1]:  # the last, the log's flush, runs on: the drain's lines must reach the log
        job.stop()
    close_idle_connections(app, server)
    if not await wait_for_inflight(app, settings["server"]["shutdown_grace_seconds"]):
        await cut_off(app)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.close_all_connections(), CUT_OFF_SECONDS)
    ended = await stop_workers(app)
    jobs[-1].stop()
    models.db.close()
    log.info("stopped")
    flush_logs()  # a worker process leaves through os._exit, which skips logging's own flush at exit
    return ended


class LineFormatter(logging.Formatter):
    """'time level logger message', the time formatted once a second rather than once a line: every request
    writes a line, and the standard formatter's time and %-style work was much of its cost. A line caused
    by a request begins its message with the request's id (logs.with_request_id)."""

    def __init__(self):
        super().__init__()
        self._second, self._stamp = None, ""

    def format(self, record):
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, self.formatTime(record)[:-4]  # cut the default's ",mmm"
        line = f"{self._stamp},{int(record.msecs):03d} {record.levelname} {record.name} {logs.with_request_id(record)}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class BufferedLineHandler(logging.StreamHandler):
    """Lines go to a buffered stream, flushed at once for a WARNING or worse and otherwise by flush_logs()
    every LOG_FLUSH_MS (and at exit): a flush per line, a system call, was half of each request line's cost."""

    def emit(self, record):
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except Exception:
            self.handleError(record)


FORMATTERS = {"text": LineFormatter, "json": logs.JsonFormatter}  # logging.format


def configure_logging(level, stream=None, form="text"):
    """Log lines to `stream` (default: standard error, buffered) as 'time level logger message', or as one
    JSON object a line (`form` json). Like logging.basicConfig, nothing changes when the root logger already
    has handlers (a test runner's)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = BufferedLineHandler(stream or _buffered_stderr())
    handler.setFormatter(FORMATTERS[form]())
    root.addHandler(handler)
    root.setLevel(level)
    # not in the line: spare every record the lookups
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


def _buffered_stderr():
    """Standard error with a buffer of its own (Python's flushes at every line), or as it is if it has no
    file descriptor."""
    try:
        descriptor = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stderr
    return open(descriptor, "w", buffering=1 << 16, encoding="utf-8",  # noqa: SIM115 (kept open for good)
                errors="backslashreplace", closefd=False)


def flush_logs():
    for handler in logging.getLogger().handlers:
        handler.flush()



def serve_until_stopped(settings):
    """Run serve(); exit at once if a worker thread is still stuck (joining it could take minutes)."""
    if not asyncio.run(serve(settings)):
        logging.shutdown()
        os._exit(0)


# ---- CLI ------------------------------------------------------------------------------------------

MAX_RESTARTS = 5  # worker processes replaced within RESTART_WINDOW_SECONDS before the service gives up
RESTART_WINDOW_SECONDS = 60
PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid):
    """In a worker process: get SIGTERM (a graceful stop) when the parent dies, even by kill -9, so no
    orphan keeps serving the port beside a new instance."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the parent's stop still reaches them
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


def start_worker(settings, parent_pid):
    """Fork one worker process; in the child, serve until stopped and exit."""
    pid = os.fork()
    if pid:
        return pid
    code = 0
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):  # the parent's forwarding handlers are not ours
            signal.signal(sig, signal.SIG_DFL)
        die_with_parent(parent_pid)
        serve_until_stopped(settings)
    except BaseException:
        log.exception("worker process failed")
        code = 1
    logging.shutdown()
    os._exit(code)


def describe(status):
    code = os.waitstatus_to_exitcode(status)
    return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


def run_processes(settings):
    """Fork server.processes workers, each binding its own reuse_port socket (the kernel spreads
    connections across them). Supervise them: one that dies is logged and replaced, up to MAX_RESTARTS
    within RESTART_WINDOW_SECONDS (then everything stops, exit 1). SIGTERM/SIGINT is forwarded so each
    stops gracefully; a clean stop exits 0."""
    parent, workers, restarts = os.getpid(), set(), []
    stopping = []

    def forward(signum, frame):
        stopping.append(signum)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)  # before the first fork: no moment without a handler
    signal.signal(signal.SIGINT, forward)
    for _ in range(settings["server"]["processes"]):
        workers.add(start_worker(settings, parent))
    failed = False
    while workers:
        pid, status = os.wait()
        workers.discard(pid)
        metrics.process_ended(pid)
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            failed = failed or code not in (0, -signal.SIGTERM, -signal.SIGINT)
            continue
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < RESTART_WINDOW_SECONDS]
        if len(restarts) >= MAX_RESTARTS:
            log.error("worker process %d ended (%s); %d restarts within %d s: stopping the service", pid,
                      describe(status), len(restarts), RESTART_WINDOW_SECONDS)
            failed = True
            forward(signal.SIGTERM, None)
            continue
        restarts.append(now)
        replacement = start_worker(settings, parent)
        workers.add(replacement)
        log.error("worker process %d ended (%s); started worker process %d in its place", pid, describe(status),
                  replacement)
    log.info("all worker processes stopped")
    sys.exit(1 if failed else 0)


def hold_instance_lock(settings, storage):
    """Refuse to start beside a running instance on the same data folder or port: the start-up sweep
    would remove files it is writing, and with reuse_port both would serve the port. The lock is held
    (through an open file the workers inherit) until the process ends, however it ends."""
    path = storage.staging / f".instance-{HOST_TAG}.lock"
    lock = open(path, "a+")  # noqa: SIM115 - held for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"another instance of the service is running on this data folder (lock {path} is held)")
    if settings["server"]["processes"] > 1:  # reuse_port would let us bind beside another instance
        port, host = settings["server"]["port"], settings["server"]["host"]
        try:
            for probe in tornado.netutil.bind_sockets(port, host):  # no reuse_port: fails if anyone listens
                probe.close()
        except OSError as e:
            sys.exit(f"port {port} on {host} is in use ({e.strerror}): is another instance running?")
    return lock


M_ARENA_MAX, M_MMAP_THRESHOLD = -8, -3  # glibc mallopt parameters
MALLOC_ARENAS = 2
MMAP_THRESHOLD = 1 << 20


def tune_malloc():
    """glibc gives each new thread its own malloc arena (up to 8 per core) and rarely hands their free
    memory back; with ~16 worker, image and thumbnail threads, the soak's RSS rose 60 -> 85 MB in 10
    minutes and kept stepping up. With 2 arenas it stayed at 57 -> 63 MB.
    A fixed mmap threshold: glibc otherwise raises it (up to 32 MB) once a large block is freed, and then
    serves a decoded picture's 16 MB blocks from the heap, which calloc must clear by hand while Pillow
    holds the GIL: a small GET waited behind it. Blocks from mmap come cleared, and go back at once.
    Set before any thread exists."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: its own allocator's behaviour
        libc = ctypes.CDLL(None)
        libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def cmd_serve(settings, args):
    tune_malloc()
    storage = make_storage(settings)
    lock = hold_instance_lock(settings, storage)  # noqa: F841 - held until the process ends
    # The schema once, before any fork: several children creating it at once would race.
    open_database(settings)
    models.db.close()
    removed = storage.remove_leftovers()
    if removed:
        log.info("start-up: removed %d temporary file(s) left by a crash", removed)
    if settings["server"]["processes"] > 1:
        # the workers' metrics meet in files of this instance (held under its lock), made before the fork
        metrics.use_folder(storage.staging / f".metrics-{HOST_TAG}")
        run_processes(settings)
    else:
        serve_until_stopped(settings)


def cmd_demo(settings, args):
    from services import demo
    open_database(settings)
    for line in demo.load(settings):
        print(line)
    audit.record_command("demo", 200)


def cmd_create_admin(settings, args):
    from services.companies import get_or_create_company
    from services.errors import ServiceError
    from services.users import create_user
    open_database(settings)
    company = get_or_create_company(args.company, settings)
    try:
        user = create_user(company.id, models.ROLE_ADMIN, args.login, args.login, args.password,
                           settings["auth"]["scrypt_n"])
    except ServiceError as e:
        audit.record_command("create-admin", e.code, "user")
        sys.exit(f"create-admin: {e.msg}: {args.login} ({e.data})")
    audit.record_command("create-admin", 200, "user", user.id)
    print(f"administrator {user.login_name} (id {user.id}) of company {company.name} (id {company.id}) created")


def cmd_backup(settings, args):
    from services.backup import BackupError, backup
    try:
        done = backup(settings, args.path)
    except BackupError as e:
        sys.exit(f"backup: {e}")
    open_database(settings)  # only the file was read so far
    audit.record_command("backup", 200)
    print(f"backup written to {done['archive']} ({done['archive_bytes']} bytes): database "
          f"{done['database_bytes']} bytes, {done['pictures']} picture files")


def cmd_restore(settings, args):
    from services.backup import BackupError, restore
    try:
        done = restore(settings, args.path)
    except BackupError as e:
        sys.exit(f"restore: {e}")
    open_database(settings)  # into the restored database (upgraded, as a start would)
    audit.record_command("restore", 200)
    print(f"restored the backup of {done['created']} (version {done['version']}) into {done['database']}, "
          f"{done['pictures']} picture files; start the service to use it")


def cmd_import_activity(settings, args):
    from tqdm import tqdm

    from services import activity
    from services.errors import ServiceError
    open_database(settings)
    try:
        with tqdm(total=activity.count_records(args.file), unit="record", desc="importing") as bar:
            done = activity.import_file(args.file, settings, progress=bar.update)
    except OSError as e:
        sys.exit(f"import-activity: cannot read {args.file}: {e.strerror}")
    except ServiceError as e:
        audit.record_command("import-activity", e.code)
        sys.exit(f"import-activity: nothing imported: {e.msg}: {e.data}")
    audit.record_command("import-activity", 200)
    stats.rollup_if_due(settings)  # past days the import changed (else the running service does it)
    print(f"imported {done['records']} records: {done['binding_num']} bindings, {done['follow_num']} "
          f"follow-ups, {done['access_num']} access events; {done['new_num']} new, {done['known_num']} "
          "already known (stored before, not stored again)")


def cmd_rollup(settings, args):
    from tqdm import tqdm
    if args.first > args.last:
        sys.exit("rollup: --from must not be after --to")
    open_database(settings)
    with tqdm(total=(args.last - args.first).days + 1, unit="day", desc="rolling up") as bar:
        days = stats.rebuild(args.first, args.last, settings, progress=lambda day: bar.update())
    audit.record_command("rollup", 200)
    print(f"rolled up {days} day(s) from {args.first} to {args.last}")


def cmd_import_legacy(settings, args):
    from services import legacy_import
    open_database(settings)
    try:
        report = legacy_import.run(args.source, settings, make_storage(settings), args.files, args.dry_run,
                                   progress=_progress_bar, record=lambda: audit.record_command("import-legacy", 200))
    except legacy_import.LegacyImportError as e:
        if not args.dry_run:
            audit.record_command("import-legacy", OUTCOME_FAILED)
        sys.exit(f"import-legacy: nothing imported: {e}")
    print("\n".join(report.lines()))


def _progress_bar(label, total):
    from tqdm import tqdm
    return tqdm(total=total, unit="row", desc=label, mininterval=0.5)


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a flag given before or after the sub-command is kept, not reset by the other parser.
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="settings file over the embedded defaults")
    common.add_argument("--port", type=int, default=argparse.SUPPRESS,
                        help="port to listen on (overrides server.port)")
    common.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS,
                        help="folder for the SQLite database, upload staging and pictures (default: the settings)")
    parser = argparse.ArgumentParser(parents=[common],  # prog: server.py, or the one-file build's name
                                     description="zhugeleida radar business card admin service")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    parser.set_defaults(command=cmd_serve)
    sub = parser.add_subparsers(title="commands")
    sub.add_parser("serve", parents=[common], help="run the service (the default)").set_defaults(command=cmd_serve)
    sub.add_parser("demo", parents=[common], help="load a demo company and print its logins").set_defaults(
        command=cmd_demo)
    admin = sub.add_parser("create-admin", parents=[common], help="create a company (if new) and an administrator")
    admin.add_argument("--company", required=True, metavar="NAME")
    admin.add_argument("--login", required=True, metavar="LOGIN")
    admin.add_argument("--password", required=True, metavar="PASSWORD")
    admin.set_defaults(command=cmd_create_admin)
    backup = sub.add_parser("backup", parents=[common], help="write the SQLite database and the pictures to "
                            "one tar.gz, safely while the service runs")
    backup.add_argument("path", metavar="PATH", help="the archive to write (a new file)")
    backup.set_defaults(command=cmd_backup)
    restore = sub.add_parser("restore", parents=[common], help="put a backup into an empty data folder")
    restore.add_argument("path", metavar="PATH", help="the archive written by backup")
    restore.set_defaults(command=cmd_restore)
    imports = sub.add_parser("import-activity", parents=[common], help="import customer activity records "
                             "(JSON lines or CSV with a header row); a bad record imports nothing")
    imports.add_argument("file", metavar="FILE")
    imports.set_defaults(command=cmd_import_activity)
    rollup = sub.add_parser("rollup", parents=[common], help="recompute the daily statistics of a date range")
    rollup.add_argument("--from", dest="first", required=True, type=datetime.date.fromisoformat, metavar="DATE")
    rollup.add_argument("--to", dest="last", required=True, type=datetime.date.fromisoformat, metavar="DATE")
    rollup.set_defaults(command=cmd_rollup)
    legacy = sub.add_parser("import-legacy", parents=[common], help="import the old system's database (MySQL) "
                            "and picture files into an empty service")
    legacy.add_argument("--from", dest="source", required=True, metavar="mysql://USER:PASSWORD@HOST:PORT/DATABASE")
    legacy.add_argument("--files", metavar="OLD_ROOT", help="the old project's root folder (picture URLs are "
                        "relative to it)")
    legacy.add_argument("--dry-run", action="store_true", help="read and check everything, write nothing")
    legacy.set_defaults(command=cmd_import_legacy)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    overrides = {("server", "port"): args.port} if hasattr(args, "port") else {}
    try:
        settings = config_module.load(getattr(args, "config", None), overrides=overrides)
    except config_module.ConfigError as e:
        sys.exit(f"configuration error: {e}")
    if hasattr(args, "data_dir"):
        config_module.place_data(settings, args.data_dir)
    configure_logging(settings["logging"]["level"], form=settings["logging"]["format"])
    try:
        args.command(settings, args)
    except StorageConfigError as e:  # found when the storage is made, after the settings were read
        sys.exit(f"configuration error: {e}")


if __name__ == "__main__":
    main()
