"""Small pieces the services share: a row as the caller may see it, a row locked for the transaction, a
name checked free under that lock, and a database refusal (another writer won a race) turned into the
answer the check gives."""
import contextlib

import peewee as pw

from models import locked
from services import scope
from services.errors import NameExists, NotFound


def visible_row(caller, model, row_id, lock=False, missing_msg=None):
    """The row `row_id` of `model` (which has a `company`) if the caller may see it: administrators any
    company's, others only their own (services.scope.limited_to); anything else does not exist for them
    (302)."""
    query = model.select().where(model.id == row_id)
    company = scope.limited_to(caller)
    if company is not None:
        query = query.where(model.company == company)
    row = (locked(query) if lock else query).first()
    if row is None:
        raise NotFound(missing_msg)
    return row


def locked_row(model, row_id, missing_msg=None):
    """The row `row_id` of `model`, locked until the transaction ends (PostgreSQL); 302 if there is none."""
    row = locked(model.select().where(model.id == row_id)).first()
    if row is None:
        raise NotFound(missing_msg)
    return row


def check_name_free(field, name, msg, exclude_id=None):
    """300 with `msg` if another row already has `name` in the unique column `field`."""
    query = field.model.select().where(field == name)
    if exclude_id is not None:
        query = query.where(field.model.id != exclude_id)
    if query.exists():
        raise NameExists(msg)


@contextlib.contextmanager
def integrity_error_as(error):
    """Around a write transaction: a constraint the database enforces (a unique name inserted by a
    concurrent writer, a row referenced meanwhile) answers `error`, as the check before it would have."""
    try:
        yield
    except pw.IntegrityError:
        raise error from None
