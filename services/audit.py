"""The audit trail: one entry per write through the API or the command line, read back by GET audit.

An API write's entry is inserted by services.calls in the write's own transaction (one INSERT, no extra
trip through the thread pool): a change never happens unrecorded, and a change rolled back takes its
entry with it. A refused or failed write is recorded as failed in a short transaction of its own, after
the rollback. What is recorded never includes a password, token or signature: no body or query is kept,
only the route, the target's kind and id, the outcome code and the client address.
"""
import dataclasses
import datetime
import getpass
import logging

import peewee as pw

from models import AuditEntry, db, now, utcnow, write_transaction
from services import clock
from services.errors import ServiceError, TokenError, invalid
from services.forms import QUERY, Date, Field, Int, Operation, Str
from services.listing import MANAGEMENT_LENGTH, format_datetime, page
from services.scope import list_company_for

log = logging.getLogger("zgld.audit")

KINDS = {"user": "用户", "role": "角色", "company": "公司", "product": "产品", "activity": "客户活动",
         "data": "数据（导入、备份、恢复）"}
CLI_ADDRESS = "local"  # where a command-line run comes from
PRUNE_BATCH = 5000  # rows per DELETE, so pruning a long backlog never holds the write lock for long
OUTCOME_CODE_FAULT = 500  # a failure that is not a refusal (an unexpected error, a failed command)


@dataclasses.dataclass(frozen=True)
class Note:
    """What a write's entry says besides who did it and how it ended; made by the handler."""
    kind: str
    route: str
    address: str = ""
    request_id: str = ""
    self_target: bool = False  # the target is the caller (logout, modify_password)


def target_id(note: Note, caller_id: int | None, path_ids: tuple = (), answer=None) -> int | None:
    """The id of what a write changed: the caller for a write on oneself, else the id in the path, else
    the id a write that adds answers (`{"id": ...}` or the new row)."""
    if note.self_target:
        return caller_id
    for text in path_ids:
        if text.isascii() and text.isdigit() and len(text) <= 10 and 0 < int(text) <= 2**31 - 1:
            return int(text)
    if isinstance(answer, dict):
        found = answer.get("id")
        return found if isinstance(found, int) else None
    return getattr(answer, "id", None) if isinstance(answer, pw.Model) else None


_COLUMNS = ("at", "user_id", "login_name", "company_id", "route", "kind", "target_id", "code", "address",
            "request_id")
_at_value = AuditEntry.at.db_value


def insert(note: Note, user, code: int, target: int | None) -> None:
    """Write one entry in the transaction that is open (or on its own); `user` is the actor or None.

    SQL written here, not built by Peewee: this runs in every write, and an entry cost 13 to 33 us so,
    against 340 to 500 us with Peewee's Model.insert (bench/audit_insert.py, SQLite, busy 2-core machine)."""
    values = (_at_value(now()), getattr(user, "id", None),
              getattr(user, "login_name", "")[:64], getattr(user, "company_id", None), note.route[:128],
              note.kind, target, code, note.address[:64], note.request_id[:64])
    db.execute_sql(_insert_sql(), values)


def _insert_sql() -> str:
    columns = ", ".join(f'"{c}"' for c in _COLUMNS)
    marks = ", ".join([db.param] * len(_COLUMNS))
    return f'INSERT INTO "{AuditEntry._meta.table_name}" ({columns}) VALUES ({marks})'


def outcome_code(error: BaseException) -> int | None:
    """The code a failed write is recorded with, or None when it is not recorded: a signature refused
    (no change was asked for, or a retry of one already recorded) and a fault of the database or the disk
    (503, 507: nothing was done, and the database cannot take the entry either; the log says why)."""
    if isinstance(error, TokenError):
        return None
    if isinstance(error, ServiceError):
        # 503/507: the database or disk could not take the change (nor an entry); nothing was done
        return error.code if error.http_status < 500 else None
    if isinstance(error, (pw.DatabaseError, OSError)):
        return None
    return OUTCOME_CODE_FAULT


def record_failure(note: Note, user, error: BaseException, path_ids: tuple = ()) -> None:
    """Record a refused or failed write in a short transaction of its own (the write's was rolled back).
    Never raises: the caller answers the original error, which a failed record must not hide."""
    code = outcome_code(error)
    if code is None:
        return
    try:
        with write_transaction():
            insert(note, user, code, target_id(note, getattr(user, "id", None), path_ids))
    except (pw.DatabaseError, ServiceError) as e:  # ServiceError: a stop's commit gate, a full disk
        log.warning("audit: a failed %s by user %s not recorded: %s", note.route, getattr(user, "id", "-"), e)


# ---- the command line ------------------------------------------------------------------------------

@dataclasses.dataclass
class CommandActor:
    """Who ran a command: the operating-system account, no user id."""
    login_name: str
    id: None = None
    company_id: None = None


def command_actor() -> CommandActor:
    try:
        return CommandActor(f"os:{getpass.getuser()}")
    except (KeyError, OSError):  # no name for this uid (a container)
        return CommandActor("os:?")


def record_command(command: str, code: int, kind: str = "data", target: int | None = None) -> None:
    """Record a command-line run that changed data (or failed to), in the transaction that is open or on
    its own. Commands that commit in several transactions (import-activity stores batches of 1,000) are
    recorded once they end."""
    note = Note(kind=kind, route=f"cli {command}", address=CLI_ADDRESS)
    with write_transaction():
        insert(note, command_actor(), code, target)


# ---- reading: GET audit ----------------------------------------------------------------------------

class Kind(Field):
    """One of the kinds of target the trail records (KINDS)."""

    def __init__(self):
        super().__init__(required=False)

    def clean(self, value: object) -> str:
        text = value.strip() if isinstance(value, str) else value
        if not isinstance(text, str) or text not in KINDS:  # a JSON body may hold any value
            raise ValueError("取值必须是 " + ", ".join(KINDS) + " 之一")
        return text

    def json_schema(self) -> dict:
        return {"type": "string", "enum": list(KINDS)}


def _date_range(form: dict) -> dict:
    if form["start_date"] and form["end_date"] and form["end_date"] < form["start_date"]:
        raise invalid("end_date", "结束日期不能早于开始日期")
    return form


LIST = Operation("操作记录：谁在何时做了哪项修改、结果如何（管理员）", {
    "current_page": Int(required=False, default=1),
    "length": Int(required=False, default=MANAGEMENT_LENGTH, min=0),  # 0: every row, up to 1,000
    "company_id": Int(required=False),
    "actor_id": Int(required=False),  # the user who acted (user_id is the caller's signing parameter)
    "login_name": Str(required=False, max_length=64),
    "kind": Kind(),
    "target_id": Int(required=False),
    "start_date": Date(required=False),  # days in stats.timezone, both included
    "end_date": Date(required=False),
}, source=QUERY, refine=_date_range, codes=(302,))


def _row(entry: AuditEntry, tz: datetime.tzinfo) -> dict:
    return {
        "id": entry.id,
        "time": format_datetime(entry.at, tz),
        "user_id": entry.user_id,
        "login_name": entry.login_name,
        "company_id": entry.company_id,
        "route": entry.route,
        "kind": entry.kind,
        "kind_text": KINDS.get(entry.kind, entry.kind),
        "target_id": entry.target_id,
        "code": entry.code,
        "address": entry.address,
        "request_id": entry.request_id,
    }


def list_entries(caller, form: dict, settings: dict) -> dict:
    """A page of entries, newest first, of the companies the caller may see (services.scope.
    list_company_for), filtered by `actor_id`, `login_name`, `kind`, `target_id` and the days
    `start_date`..`end_date` (both included) of the zone of the edges. A huge range pages like any other list."""
    tz = clock.zone(settings)
    company_id = list_company_for(caller, form.get("company_id"))
    query = AuditEntry.select().order_by(AuditEntry.id.desc())
    conditions = []
    if company_id is not None:
        conditions.append(AuditEntry.company_id == company_id)
    if form.get("actor_id") is not None:
        conditions.append(AuditEntry.user_id == form["actor_id"])
    if form.get("login_name"):
        conditions.append(AuditEntry.login_name == form["login_name"])
    if form.get("kind"):
        conditions.append(AuditEntry.kind == form["kind"])
    if form.get("target_id") is not None:
        conditions.append(AuditEntry.target_id == form["target_id"])
    if form.get("start_date"):
        conditions.append(AuditEntry.at >= clock.day_start(form["start_date"], tz))
    if form.get("end_date") and form["end_date"] < datetime.date.max:  # the last day has no day after: no bound
        conditions.append(AuditEntry.at < clock.day_start(form["end_date"] + datetime.timedelta(days=1), tz))
    if conditions:
        query = query.where(*conditions)
    return page(query, form, lambda entry: _row(entry, tz))


# ---- retention -------------------------------------------------------------------------------------

def prune(settings: dict) -> int:
    """Remove entries older than audit.retention_days, a batch at a time; return how many went."""
    cutoff = utcnow() - datetime.timedelta(days=settings["audit"]["retention_days"])
    removed = 0
    while True:
        # one statement per batch: a read then a write in one SQLite transaction may fail to take the lock
        batch = AuditEntry.select(AuditEntry.id).where(AuditEntry.at < cutoff).limit(PRUNE_BATCH)
        done = AuditEntry.delete().where(AuditEntry.id.in_(batch)).execute()
        removed += done
        if done < PRUNE_BATCH:
            return removed
