"""The health check behind GET /healthz: does the database answer, can the storage be written."""
import contextlib
import logging
import tempfile

from models import db
from version import VERSION

log = logging.getLogger("zgld.health")


def database_answers():
    """True if a query that reads the schema succeeds. On failure the connection is dropped, so the next
    check (and the next request on this thread) connects afresh once the database is back."""
    try:
        db.execute_sql("SELECT 1 FROM role LIMIT 1").fetchall()
        return True
    except Exception as e:  # any driver error means "not answering"; the reason goes to the log
        log.warning("health: database does not answer: %s", e)
        with contextlib.suppress(Exception):
            db.close()
        return False


def storage_writable(storage):
    """True if a file can be created in both folders the local storage writes to (pictures, staging)."""
    try:
        for folder in (storage.root, storage.staging):
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".healthz-"):
                pass
        return True
    except OSError as e:
        log.warning("health: storage is not writable: %s", e)
        return False


def check(storage):
    """The figures /healthz answers with; `ok` is whether the service can do its work."""
    database, writable = database_answers(), storage_writable(storage)
    return {"version": VERSION, "database": database, "storage": writable}, database and writable
