"""What every paged list shares: `current_page` (default 1) and `length` (default 20, capped), the
`{ret_data, data_count}` answer, and the date formats (docs/api.md sections 1.7 and 1.8): every time an
answer shows goes through `format_datetime`, every time range a client sends through `stored_span`, both in
the zone of the edges (services.clock).

The management lists (users, roles, companies) follow the old server instead: `length` 10 by default,
`length=0` for every row, and its filters `id`, `create_date` and `order` (one or more allowed fields,
comma-separated, `-` for descending)."""
import datetime

from services import clock
from services.errors import invalid
from services.forms import Int, Str

DEFAULT_LENGTH = 20
MAX_LENGTH = 100  # a longer page is cut to this, not refused
MANAGEMENT_LENGTH = 10  # the old server's page of users, roles and companies
ALL_ROWS_LIMIT = 1000  # length=0 answers every row up to this many; more is a 303, never a cut list

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DATE_FORMAT = "%Y-%m-%d"

PAGE_FORM = {
    "current_page": Int(required=False, default=1),
    "length": Int(required=False, default=DEFAULT_LENGTH),
}


class DayOrTime(Str):
    """`YYYY-MM-DD` (that whole day) or `YYYY-MM-DD HH:MM:SS` (that second), as a [start, end) pair of
    wall-clock times in the zone of the edges (stored_span turns them into stored times)."""

    def __init__(self):
        super().__init__(required=False, max_length=19)

    def clean(self, value):
        text = super().clean(value)
        spans = ((DATE_FORMAT, datetime.timedelta(days=1)), (DATETIME_FORMAT, datetime.timedelta(seconds=1)))
        for pattern, span in spans:
            try:
                start = datetime.datetime.strptime(text, pattern)
            except ValueError:
                continue
            return start, _after(start, span)
        raise ValueError("必须是 YYYY-MM-DD 或 YYYY-MM-DD HH:MM:SS")


def _after(start, span):
    """The end of a span; the calendar's end for its last day or second (9999-12-31 has no day after)."""
    try:
        return start + span
    except OverflowError:
        return datetime.datetime.max


MANAGEMENT_FORM = {
    "current_page": Int(required=False, default=1),
    "length": Int(required=False, default=MANAGEMENT_LENGTH, min=0),
    "id": Int(required=False),
    "create_date": DayOrTime(),
    "order": Str(required=False, max_length=200),
}

def page(query, form, to_row):
    """One page of `query` (ordered by the caller) as `{ret_data, data_count}`; the count is before paging.
    `length` 0 (management lists) is every row, or a 303 if there are more than ALL_ROWS_LIMIT."""
    if form["length"] == 0:
        count = query.count()
        if count > ALL_ROWS_LIMIT:
            raise invalid("length", f"共 {count} 条，超过一次可返回的 {ALL_ROWS_LIMIT} 条，请分页查询")
        return {"ret_data": [to_row(item) for item in query], "data_count": count}
    length = min(form["length"], MAX_LENGTH)
    rows = [to_row(item) for item in query.paginate(form["current_page"], length)]
    return {"ret_data": rows, "data_count": query.count()}


def old_filters(query, model, form, order_fields, tz):
    """The old server's filters on a management list: `id`, `create_date` (a day or a second in `tz`) and
    `order`, whose names are the keys of `order_fields` (an unknown one is a 303 naming it). The query
    keeps its order otherwise."""
    if form.get("id") is not None:
        query = query.where(model.id == form["id"])
    if form.get("create_date"):
        start, end = stored_span(form["create_date"], tz)
        query = query.where(model.create_date >= start, model.create_date < end)
    if form.get("order"):
        query = query.order_by(*_ordering(form["order"], order_fields), model.id)
    return query


def _ordering(text, order_fields):
    terms = []
    for name in (part.strip() for part in text.split(",")):
        field = order_fields.get(name.removeprefix("-"))
        if field is None:
            allowed = ", ".join(sorted(order_fields))
            raise invalid("order", f"不能按 {name.removeprefix('-') or '（空）'} 排序，可用的字段：{allowed}")
        terms.append(field.desc() if name.startswith("-") else field.asc())
    return terms


def stored_span(span, tz):
    """A [start, end) pair of wall-clock times in `tz`, as a client sends it, as stored times (naive UTC)."""
    start, end = span
    return clock.stored_time(start, tz), clock.stored_time(end, tz)


def format_datetime(value, tz):
    """A stored time (naive UTC) as every answer shows it: 'YYYY-MM-DD HH:MM:SS' on the wall clock of `tz`;
    None for none. Takes a datetime, or the text SQLite gives a query that Peewee does not convert."""
    if not value:
        return None
    stored = value if isinstance(value, datetime.datetime) else datetime.datetime.fromisoformat(value)
    return clock.shown_time(stored, tz).strftime(DATETIME_FORMAT)


def format_date(value):
    return value.strftime(DATE_FORMAT) if value else None
