"""A signed call's one job: check the signature, then do the work, and for a POST spend the signature in the
work's own transaction.

Each signature (user, timestamp) is remembered with a fingerprint of the call it signed. A POST is done once:
its signature is recorded with its answer in the transaction that does its work, so a call that fails
spends nothing, and a retry of the same call (same route, path ids, query and body) under the same signature
gets the stored answer without the work running again. Any other POST under a signature already seen, on a
POST, a GET or an upload, is refused. GETs and the upload calls (idempotent by design) are not spent; their
signatures are noted in memory (SeenSignatures) and written to the database in batches, because a write per
GET would put every read behind the database's write lock.

Everything here may block (database, hashing): it runs in the executor, except short reads on SQLite,
which may run on the event loop (see BaseHandler.call).
"""
import contextlib
import datetime
import hashlib
import logging
import threading
from dataclasses import dataclass, field

import orjson
import peewee as pw

from models import UsedSignature, db, reads, write_transaction
from services import audit, auth, clock, scope
from services.errors import ServiceError, TokenError

log = logging.getLogger("zgld.signatures")

SIGNATURE_USED = "请求已使用过"
SIGNING_PARAMS = frozenset({"rand_str", "timestamp", "user_id"})
# the fingerprint of a signature seen on a call that does not spend it (GET, upload); _insert_seen writes ''
NOT_SPENT = ""


def _json_default(value):
    if isinstance(value, datetime.datetime):
        # stored in UTC: written as it is, it would show the wrong wall clock without a word
        raise TypeError("a time in an answer goes through services.listing.format_datetime")
    if isinstance(value, datetime.date):
        return value.strftime("%Y-%m-%d")
    return str(value)


def to_json(data):
    """Encode an answer; dates as 'YYYY-MM-DD' like the seed. A datetime is refused: every time an answer
    shows is text made by services.listing.format_datetime, in the zone of the edges (orjson would write a
    stored UTC time as ISO 8601 unless told to pass it through). A stored answer is encoded the same way, so
    a retry reads exactly what the first call read."""
    return orjson.dumps(data, default=_json_default,
                        option=orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME)


@dataclass
class Call:
    """What the job needs to know about one signed request (no Tornado objects: it runs in a worker)."""
    params: dict  # the query's rand_str, timestamp and user_id
    settings: dict
    seen: "SeenSignatures"
    spends: bool  # POST: once-only, retried from its stored answer
    reads_only: bool = False  # GET: writes nothing, so its reads may share one state of the database
    access: str = ""  # the handler's declaration (services.scope); none given: every caller is refused
    max_age_seconds: int | None = None  # the upload calls: their upload's expiry instead of the skew window
    notes_seen: bool = True  # False: add_picture settles its signature once its body has named the upload
    keeps_answer: bool = True  # False: an answer with a secret (a password, a token) is not stored for retries
    route: str = ""  # the handler: one name for every spelling of a path (trailing slash, alias)
    path_ids: tuple = ()
    query: tuple = ()  # (name, values) pairs of the query, signing parameters left out
    content_type: str = ""
    body: bytes = b""
    audit: "audit.Note | None" = None  # a write to record in the audit trail (services.audit)
    user: object = field(default=None, init=False)  # set once the signature is checked

    def fingerprint(self):
        """The call's identity, as a retry repeats it: route, ids as numbers, query and body."""
        ids = [str(int(i)) if i.isascii() and i.isdigit() else i for i in self.path_ids]
        head = orjson.dumps([self.route, ids, self.query, self.content_type])
        return hashlib.sha256(head + b"\n" + self.body).hexdigest()


def check(call):
    """Check the signature, then whether the handler's declared access admits the caller; return the
    caller. Raises TokenError, AccountDisabled, Forbidden."""
    user = auth.authenticate(call.params, call.settings, call.max_age_seconds)
    call.user = user  # known from here: a refusal below is recorded as this caller's
    scope.check_access(call.access, user)
    return user


def check_refused(call: Call, error: ServiceError) -> None:
    """A call its handler refused before its job (a bad form or path id): check the signature first (so
    an unsigned caller only ever hears 400), then record the refused write. Raises the signature's error."""
    try:
        check(call)
    except ServiceError as refusal:  # not an administrator: that refusal is the one recorded and answered
        if call.user is not None:
            _record_failure(call, refusal)
        raise
    _record_failure(call, error)


def execute(call, fn, *args, **kwargs):
    """The whole call: check, then `fn(caller, *args, **kwargs)`; a POST exactly once. Returns the answer.
    A write that fails after the signature check is recorded as failed once its transaction rolled back."""
    try:
        if call.reads_only:
            with reads.one_state():
                return _execute(call, fn, *args, **kwargs)
        return _execute(call, fn, *args, **kwargs)
    except Exception as error:
        if call.user is not None:
            _record_failure(call, error)
        raise


def _record_failure(call: Call, error: BaseException) -> None:
    if call.audit is None or audit.outcome_code(error) is None:
        return
    try:
        with _one_writer(call.settings):
            audit.record_failure(call.audit, call.user, error, call.path_ids)
    except pw.OperationalError as e:  # the lock stayed busy: the call answers its own error regardless
        log.warning("audit: a failed %s not recorded: %s", call.audit.route, e)


def _execute(call, fn, *args, **kwargs):
    user = check(call)
    key = (user.id, int(call.params["timestamp"]))
    if not call.spends:
        if call.notes_seen:
            call.seen.note(key)
        return fn(user, *args, **kwargs)
    if key in call.seen:
        raise TokenError(SIGNATURE_USED)
    fingerprint = call.fingerprint()
    with _one_writer(call.settings), write_transaction():
        if not _claim(key, fingerprint):
            return _stored_answer(key, fingerprint)
        answer = fn(user, *args, **kwargs)
        if call.audit is not None:  # in the work's transaction: recorded if and only if it commits
            audit.insert(call.audit, user, 200, audit.target_id(call.audit, user.id, call.path_ids, answer))
        if call.keeps_answer:
            UsedSignature.update(answer=to_json(answer).decode()).where(
                (UsedSignature.user_id == key[0]) & (UsedSignature.timestamp == key[1])).execute()
    return answer


_SQLITE_WRITER = threading.Lock()


@contextlib.contextmanager
def _one_writer(settings):
    """On SQLite, this process's spending calls take turns on a lock of their own before the database's.
    The whole call runs in its write transaction, reads and checks included, so they queue: on SQLite's
    lock a waiter polls with sleeps of up to 100 ms (the ingestion bench fell from 14,300 to 9,300
    events/s); on this one it wakes as soon as the lock is free. It waits no longer than SQLite would."""
    if not isinstance(db.obj, pw.SqliteDatabase):
        yield
        return
    if not _SQLITE_WRITER.acquire(timeout=settings["database"]["busy_timeout_ms"] / 1000):
        raise pw.OperationalError("database is locked")  # as SQLite says when its own wait runs out
    try:
        yield
    finally:
        _SQLITE_WRITER.release()


UPLOAD_CHUNK = "upload chunk"  # the fingerprint of a chunk's signature spent by spend_alone()


def _key(params):
    return int(params["user_id"]), int(params["timestamp"])


def note_seen(params, seen):
    """Remember a checked signature that is not spent (an upload call signed with its upload's id), so that
    it never authorizes a POST."""
    seen.note(_key(params))


def spend_alone(params, settings, seen):
    """Spend a checked signature outside a call's job: an upload chunk signed afresh (old clients send the
    upload's id in the body) is an ordinary signed call, within the skew window and accepted once, though
    its check ran under the upload calls' rule before its body showed which it was."""
    key = _key(params)
    if abs(clock.epoch_seconds() - key[1] / 1000) > settings["auth"]["max_skew_seconds"]:
        raise TokenError("时间戳已过期")
    if key in seen:
        raise TokenError(SIGNATURE_USED)
    with write_transaction():
        if not _claim(key, UPLOAD_CHUNK):
            raise TokenError(SIGNATURE_USED)


def _claim(key, fingerprint):
    """Record the signature for this call; False if it was already recorded (committed, or by a call
    still running elsewhere, which PostgreSQL makes this insert wait for)."""
    return UsedSignature.insert(user_id=key[0], timestamp=key[1], fingerprint=fingerprint).on_conflict_ignore() \
        .as_rowcount().execute() == 1


def _stored_answer(key, fingerprint):
    row = UsedSignature.get_or_none((UsedSignature.user_id == key[0]) & (UsedSignature.timestamp == key[1]))
    if row is None or row.fingerprint != fingerprint or row.answer is None:
        raise TokenError(SIGNATURE_USED)
    return orjson.loads(row.answer)


def _insert_seen(keys):
    # SQL written here, not built by Peewee: building a 500-row insert cost ~55 us a row, more than a GET
    rows = ", ".join([f"({db.param}, {db.param}, '')"] * len(keys))
    table = UsedSignature._meta.table_name
    db.execute_sql(f'INSERT INTO "{table}" ("user_id", "timestamp", "fingerprint") VALUES {rows} '
                   "ON CONFLICT DO NOTHING", [value for key in keys for value in key])


class SeenSignatures:
    """The signatures this process saw on calls that do not spend them, until flush() has written them to
    the database. A POST looks here and in the database: a signature seen in this process is refused at
    once, one seen in another process once that process has flushed (every FLUSH_MS)."""

    FLUSH_MS = 200
    BATCH = 500  # rows per INSERT

    def __init__(self):
        self._pending = {}
        self._lock = threading.Lock()

    def note(self, key):
        with self._lock:
            self._pending[key] = None

    def __contains__(self, key):
        return key in self._pending

    def __len__(self):
        return len(self._pending)

    def flush(self, settings):
        """Write what was noted to the database (keeping it here until committed, so a POST never finds it
        in neither place); forget what is too old to be accepted anyway. Returns the number written."""
        oldest = int(1000 * (clock.epoch_seconds() - settings["auth"]["max_skew_seconds"]))
        with self._lock:
            for key in [k for k in self._pending if k[1] < oldest]:
                del self._pending[key]
            keys = list(self._pending)
        if not keys:
            return 0
        try:
            with db.atomic():
                for first in range(0, len(keys), self.BATCH):
                    _insert_seen(keys[first:first + self.BATCH])
        except pw.DatabaseError as e:  # kept here, tried again at the next flush
            log.warning("signatures seen on reads not written yet (%d kept): %s", len(keys), e)
            return 0
        with self._lock:
            for key in keys:
                self._pending.pop(key, None)
        return len(keys)
