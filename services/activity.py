"""Customer activity: validating and storing batches of records, for the batch endpoint and the CLI import.

A record is a dict with `kind` (binding, follow_up or access), `user_id` (whose card), the customer's
`openid` (created in the user's company if new; optional `name` used when it is created) and an optional
`time` (ISO 8601, where a time without an offset is in stats.timezone, or milliseconds since the epoch;
default now). A binding may give `source` (1 scan, 2 forward; default 1), an access record needs
`action` (1..MAX_ACTION, models.ACTION_LABELS), a follow-up may give `content`. Any record may carry a `record_id`
(unique per company and kind): a record whose id is already stored is not stored again, so a batch sent
twice, or a file imported twice, counts nothing twice.

A batch is checked as a whole before anything is written: a bad record is a 303 whose `data` names it
(`records[3].action`), a user the caller may not see a 302; then everything is written in one transaction.
Everything here blocks (database): handlers run it in the executor.
"""
import csv
import datetime
import hashlib
import itertools
import json
from collections import namedtuple

import peewee as pw

from models import (
    BINDING_FORWARD,
    BINDING_SCAN,
    RECORD_ID_LENGTH,
    AccessEvent,
    CompiledQuery,
    Customer,
    CustomerBinding,
    FollowUp,
    User,
    insert_rows,
    tuples,
    write_transaction,
)
from services import clock, scope, stats
from services.errors import FormInvalid, NotFound
from services.forms import Field, Int, JsonList, Operation, Str, object_schema, parse_json, validate

MAX_BATCH = 1000
MAX_ERRORS = 20  # problems named in one answer
OLDEST = datetime.datetime(2000, 1, 1)
FUTURE_TOLERANCE = datetime.timedelta(minutes=5)  # client clocks run a little ahead
KINDS = ("binding", "follow_up", "access")
MAX_ACTION = 13  # actions 1..13 (models.ACTION_LABELS); 13 授权访问 comes from the old system's records

# extra: source, content or action; record_id: the sender's id for the record, or None
Record = namedtuple("Record", "kind user_id openid name at extra record_id")


class Moment(Field):
    """A record's time, returned as naive UTC."""

    def __init__(self, tz, latest):
        super().__init__(required=False)
        self.tz, self.latest = tz, latest

    def clean(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError("必须是 ISO 8601 时间或毫秒时间戳")
        text = str(value).strip()
        try:
            if text.isascii() and text.isdigit():
                moment = datetime.datetime.fromtimestamp(int(text) / 1000, clock.UTC)
            else:
                moment = datetime.datetime.fromisoformat(text)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=self.tz)
            # inside the try: years 1 and 9999 overflow when moved to UTC
            moment = moment.astimezone(clock.UTC).replace(tzinfo=None)
        except (ValueError, OverflowError, OSError):
            raise ValueError("必须是 ISO 8601 时间或毫秒时间戳") from None
        if not OLDEST <= moment <= self.latest:
            raise ValueError("时间不能早于 2000 年或晚于当前时间")
        return moment

    def json_schema(self):
        return {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer", "minimum": 0}]}


def _schemas(tz, latest):
    common = {"user_id": Int(), "openid": Str(max_length=64), "name": Str(required=False, default="", max_length=64),
              "time": Moment(tz, latest), "record_id": Str(required=False, max_length=RECORD_ID_LENGTH)}
    return {
        "binding": {**common, "source": Int(required=False, default=BINDING_SCAN,
                                            choices=(BINDING_SCAN, BINDING_FORWARD))},
        "follow_up": {**common, "content": Str(required=False, default="", max_length=1000)},
        "access": {**common, "action": Int(min=1, max=MAX_ACTION)},
    }


def record_schema():
    """One record's JSON Schema, from the same fields that check it: one object shape per kind."""
    shapes = []
    for kind, fields in _schemas(stats.UTC, datetime.datetime.max).items():
        shape = object_schema(fields)
        shape["properties"] = {"kind": {"const": kind}, **shape["properties"]}
        shape["required"] = ["kind", *shape.get("required", [])]
        shapes.append(shape)
    return {"oneOf": shapes}


# docs/api.md section 11; each record is checked in store_records (its times against the clock)
BATCH = Operation("上传一批客户活动记录（绑定、跟进、访问）",
                  {"records": JsonList(max_items=MAX_BATCH, items=record_schema)}, codes=(302,))

EXTRA_FIELD = {"binding": "source", "follow_up": "content", "access": "action"}
EventModel = type[CustomerBinding] | type[FollowUp] | type[AccessEvent]
MODELS: dict[str, EventModel] = {"binding": CustomerBinding, "follow_up": FollowUp, "access": AccessEvent}
EXTRA_COLUMN: dict[str, pw.Field] = {"binding": CustomerBinding.source, "follow_up": FollowUp.content,
                                    "access": AccessEvent.action}


def validate_records(raw_records, settings, now=None, labels=None):
    """Typed Records for a list of dicts, or a 303 naming every bad one (up to MAX_ERRORS).

    `labels` names the records in messages (default `records[i]`; the import uses line numbers)."""
    now_utc = clock.utc_naive(now)
    schemas = _schemas(clock.zone(settings), now_utc + FUTURE_TOLERANCE)
    records, errors = [], {}
    for index, raw in enumerate(raw_records):
        label = labels[index] if labels else f"records[{index}]"
        try:
            records.append(_one_record(raw, schemas, now_utc))
        except FormInvalid as e:
            errors.update({f"{label}.{field}" if field else label: msgs for field, msgs in e.data.items()})
            if len(errors) >= MAX_ERRORS:
                break
    if errors:
        raise FormInvalid(data=errors)
    return records


def _one_record(raw, schemas, now_utc):
    if not isinstance(raw, dict):
        raise FormInvalid(data={"": ["必须是 JSON 对象"]})
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in schemas:  # a list or object cannot be looked up
        raise FormInvalid(data={"kind": ["取值必须是 " + ", ".join(KINDS) + " 之一"]})
    values = validate(schemas[kind], raw)
    return Record(kind, values["user_id"], values["openid"], values["name"], values["time"] or now_utc,
                  values[EXTRA_FIELD[kind]], values["record_id"])


# ---- storing -----------------------------------------------------------------------------------------

def store_records(caller, raw_records, settings, now=None):
    """Validate a batch (a list of dicts) and store it; `caller` None is the command line (any company)."""
    if not 1 <= len(raw_records) <= MAX_BATCH:
        raise FormInvalid(data={"records": [f"须有 1 到 {MAX_BATCH} 条记录"]})
    return store(caller, validate_records(raw_records, settings, now), settings, now)


def store(caller, records, settings, now=None, labels=None):
    """Write validated Records in one transaction, leaving out each record whose record_id is already stored
    (or came earlier in the batch); answer how many of each kind were stored, how many records were new and
    how many already known."""
    companies = user_companies(caller, records, labels)
    fresh = _unknown_records(records, companies)
    stored = _write(fresh, companies, settings, now) if fresh else dict.fromkeys(KINDS, 0)
    new = sum(stored.values())
    return {"binding_num": stored["binding"], "follow_num": stored["follow_up"], "access_num": stored["access"],
            "new_num": new, "known_num": len(records) - new}


def _write(records, companies, settings, now):
    """Store the records (and their new customers) in one transaction; {kind: rows stored}."""
    wanted = _wanted_customers(records, companies)
    # Read before the write lock, to hold it shorter: customers are never removed one by one, and a
    # first-binding move is conditional, so what is read here stays valid.
    found = _customer_ids(wanted)
    moves = _first_binding_moves({found[key]: at for key, (_, at) in wanted.items() if at and key in found})
    with write_transaction():
        created = _create_customers(wanted, found)
        # A customer another batch created meanwhile has that batch's first binding, maybe a later one.
        moves += _first_binding_moves({created[key]: wanted[key][1] for key in created if wanted[key][1]})
        found.update(created)
        _move_first_bindings(moves)
        rows = {kind: [] for kind in KINDS}
        for r in records:
            company = companies[r.user_id]
            rows[r.kind].append((company, found[company, r.openid], r.user_id, r.extra, r.at, r.record_id))
        stored = {}
        for kind, model in MODELS.items():
            fields: list[pw.Field] = [model.company, model.customer, model.user, EXTRA_COLUMN[kind],
                                      model.happened_at, model.record_id]
            # A concurrent batch may have just stored a record with the same id: that row is left out.
            has_ids = any(row[-1] is not None for row in rows[kind])
            stored[kind] = insert_rows(model, fields, rows[kind], ignore_conflicts=has_ids)
        # A first binding that moved earlier changes the new-customer count of its old day too.
        moved_from = (first for _, _, first in moves if first is not None)
        stats.mark_stale(itertools.chain((r.at for r in records), moved_from), settings, now)
    return stored


def _unknown_records(records, companies):
    """The records to store: those without a record_id, and the first one with each id not yet stored for
    its company and kind. Read before the write lock; a record stored meanwhile is caught by the insert."""
    wanted = {}
    for r in records:
        if r.record_id is not None:
            wanted.setdefault((r.kind, companies[r.user_id]), set()).add(r.record_id)
    known = {(kind, company, record_id) for (kind, company), ids in wanted.items()
             for record_id in _stored_record_ids(MODELS[kind], company, ids)}
    fresh = []
    for r in records:
        if r.record_id is not None:
            key = (r.kind, companies[r.user_id], r.record_id)
            if key in known:
                continue
            known.add(key)
        fresh.append(r)
    return fresh


def _stored_record_ids(model, company, record_ids):
    """The ids among `record_ids` that `company` already has for `model`."""
    stored = []
    for chunk in pw.chunked(sorted(record_ids), 500):
        cursor = _STORED_RECORD_IDS[model].execute(company=company, record_ids=chunk)
        stored += [record_id for (record_id,) in cursor.fetchall()]
    return stored


def _stored_record_ids_query(model: EventModel) -> CompiledQuery:
    return CompiledQuery(lambda slot: model.select(model.record_id).where(
        model.company == slot("company"), model.record_id.in_(slot.each("record_ids"))))


_STORED_RECORD_IDS = {model: _stored_record_ids_query(model) for model in MODELS.values()}


def user_companies(caller, records, labels=None):
    """{user_id: company_id} for the records' users; a user that does not exist, or (for an ordinary
    caller) belongs to another company, is a 302 naming the records."""
    ids = {r.user_id for r in records}
    found = {}
    for chunk in pw.chunked(sorted(ids), 500):
        found.update(tuples(User.select(User.id, User.company).where(User.id.in_(chunk))))
    limit = scope.limited_to(caller) if caller is not None else None
    if limit is not None:
        found = {user: company for user, company in found.items() if company == limit}
    missing = [(index, r) for index, r in enumerate(records) if r.user_id not in found]
    if missing:
        raise NotFound("用户不存在", data={
            f"{labels[index] if labels else f'records[{index}]'}.user_id": [f"用户 {r.user_id} 不存在"]
            for index, r in missing[:MAX_ERRORS]})
    return found


def _wanted_customers(records, companies):
    """{(company, openid): [name, earliest binding time in the batch or None]}."""
    wanted = {}
    for r in records:
        entry = wanted.setdefault((companies[r.user_id], r.openid), [r.name, None])
        entry[0] = entry[0] or r.name
        if r.kind == "binding" and (entry[1] is None or r.at < entry[1]):
            entry[1] = r.at
    return wanted


def _create_customers(wanted, found):
    """Create the wanted customers not in `found` (their first binding is this batch's); return their ids."""
    missing = [key for key in wanted if key not in found]
    if not missing:
        return {}
    created = clock.utc_naive()
    insert_rows(Customer, [Customer.company, Customer.openid, Customer.name, Customer.create_date,
                           Customer.first_bound_at],
                [(c, openid, wanted[c, openid][0], created, wanted[c, openid][1]) for c, openid in missing],
                ignore_conflicts=True)  # a concurrent batch may have just created the same customer
    return _customer_ids(missing)


def _first_binding_moves(bound):
    """(customer id, new first binding, old one or None) for the customers in `bound` (id -> the batch's
    earliest binding) whose first binding this batch moves earlier."""
    firsts = {}
    for chunk in pw.chunked(list(bound), 500):
        firsts.update(tuples(Customer.select(Customer.id, Customer.first_bound_at).where(Customer.id.in_(chunk))))
    return [(customer_id, at, firsts[customer_id]) for customer_id, at in bound.items()
            if firsts[customer_id] is None or at < firsts[customer_id]]


def _move_first_bindings(moves):
    """Apply the moves in one statement; conditional, so a concurrent batch with an even earlier binding
    is never overwritten."""
    if moves:
        _MOVE_FIRST_BINDINGS.execute(moves=[(customer_id, at) for customer_id, at, _ in moves])


def _move_first_bindings_query(slot):
    # VALUES names its columns column1, column2 on SQLite and PostgreSQL alike.
    moves = pw.NodeList((pw.SQL("("), slot.rows("moves", 2), pw.SQL(") AS v")), glue="")
    customer_id, first = pw.SQL("v.column1"), pw.SQL("v.column2")
    return Customer.update(first_bound_at=first).from_(moves).where(
        Customer.id == customer_id, Customer.first_bound_at.is_null() | (Customer.first_bound_at > first))


_MOVE_FIRST_BINDINGS = CompiledQuery(_move_first_bindings_query)


def _customer_ids(keys):
    """{(company, openid): id} for the keys that exist: a query per company and 500 openids."""
    by_company = {}
    for company, openid in keys:
        by_company.setdefault(company, []).append(openid)
    found = {}
    for company, openids in by_company.items():
        for chunk in pw.chunked(openids, 500):
            cursor = _CUSTOMER_IDS.execute(company=company, openids=chunk)
            found.update(((company, openid), cid) for cid, openid in cursor.fetchall())
    return found


# Compiled once: compiling a long IN list through Peewee costs more than running it.
_CUSTOMER_IDS = CompiledQuery(lambda slot: Customer.select(Customer.id, Customer.openid).where(
    Customer.company == slot("company"), Customer.openid.in_(slot.each("openids"))))


# ---- the CLI import ----------------------------------------------------------------------------------

def read_file(path):
    """(line number, record dict) for each record of a JSON-lines or CSV file (CSV: a header row naming
    the fields; empty cells count as absent)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        first = f.read(1)
        f.seek(0)
        if first == "{" or str(path).endswith((".jsonl", ".json", ".ndjson")):
            for number, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield number, parse_json(line)
                    except ValueError:
                        yield number, None
        else:
            reader = csv.DictReader(f)
            for row in reader:
                yield reader.line_num, {k: v for k, v in row.items() if k is not None}


def import_file(path, settings, progress=None, now=None):
    """Check the whole file (every record valid, every user known), then store it in batches of
    MAX_BATCH; a bad file stores nothing. A line without a record_id gets one made from its content
    (line_record_id), so a file imported again -- after an interruption or by mistake -- stores none of
    its records twice. `progress(n)` is told about each stored batch. Returns totals."""
    total = 0
    for batch in _batches(path):
        records = validate_records([raw for _, raw in batch], settings, now, _line_labels(batch))
        user_companies(None, records, _line_labels(batch))
        total += len(records)
    totals = dict.fromkeys(("binding_num", "follow_num", "access_num", "new_num", "known_num"), 0)
    repeats = _Repeats()
    for batch in _batches(path):
        raws = [raw for _, raw in batch]
        records = [r if r.record_id is not None else r._replace(record_id=line_record_id(raw, repeats))
                   for r, raw in zip(validate_records(raws, settings, now), raws, strict=True)]
        for key, n in store(None, records, settings, now).items():
            totals[key] += n
        if progress:
            progress(len(batch))
    return {"records": total, **totals}


LINE_FIELDS = ("kind", "user_id", "openid", "name", "time", "source", "content", "action")


def line_record_id(raw, repeats):
    """The record id of a file's line that gives none: a digest of its fields as written (blank ones left
    out; a missing time too, so a line stored with "now" keeps its id), and for the n-th line of the same
    content in the file, n. So two identical lines stay two records, and reading the same file again --
    or a later export that contains it, in any order -- gives the same ids."""
    fields = [[name, str(raw[name]).strip()] for name in LINE_FIELDS
              if raw.get(name) is not None and str(raw[name]).strip()]
    digest = hashlib.blake2b(json.dumps(fields, ensure_ascii=False).encode(), digest_size=16).digest()
    n = repeats.count(digest)
    return f"line-{digest.hex()}" + (f"-{n}" if n > 1 else "")


class _Repeats:
    """How many times each line content has been seen in a file so far. Keeps 8 bytes of each digest as
    an int (about 80 bytes a line in all); a clash only numbers a line as a repeat, the same in every run."""

    def __init__(self):
        self.seen, self.counts = set(), {}

    def count(self, digest):
        key = int.from_bytes(digest[:8], "big")
        if key not in self.seen:
            self.seen.add(key)
            return 1
        self.counts[key] = self.counts.get(key, 1) + 1
        return self.counts[key]


def count_records(path):
    return sum(1 for _ in read_file(path))


def _batches(path):
    records = read_file(path)
    while batch := list(itertools.islice(records, MAX_BATCH)):
        yield batch


def _line_labels(batch):
    return [f"line {number}" for number, _ in batch]
