"""What every paged list shares: `current_page` (default 1) and `length` (default 20, capped), the
`{ret_data, data_count}` answer, and the seed's date formats."""
from services.forms import Int

DEFAULT_LENGTH = 20
MAX_LENGTH = 100  # a longer page is cut to this, not refused

PAGE_FORM = {
    "current_page": Int(required=False, default=1),
    "length": Int(required=False, default=DEFAULT_LENGTH),
}

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
DATE_FORMAT = "%Y-%m-%d"


def page(query, form, to_row):
    """One page of `query` (ordered by the caller) as `{ret_data, data_count}`; the count is before paging."""
    length = min(form["length"], MAX_LENGTH)
    rows = [to_row(item) for item in query.paginate(form["current_page"], length)]
    return {"ret_data": rows, "data_count": query.count()}


def format_datetime(value):
    return value.strftime(DATETIME_FORMAT) if value else None


def format_date(value):
    return value.strftime(DATE_FORMAT) if value else None
