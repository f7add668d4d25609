"""Benchmark: the cost of one audit entry (services.audit.insert, SQL written by hand) beside Peewee's
Model.insert, each inside one open transaction as in a write's job, on a fresh SQLite file.

    .venv/bin/python bench/audit_insert.py [--entries 5000]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import models  # noqa: E402
from services import audit  # noqa: E402


class Actor:
    id, login_name, company_id = 1, "boss", 1


def peewee_insert():
    models.AuditEntry.insert(at=models.utcnow(), user_id=1, login_name="boss", company_id=1, route="user/update/7",
                             kind="user", target_id=7, code=200, address="127.0.0.1",
                             request_id="abcdef0123456789").execute()


def best_of(fn, entries, rounds=3):
    """Microseconds per entry, the best of `rounds` runs of `entries` inserts in one transaction."""
    best = float("inf")
    for _ in range(rounds):
        with models.db.atomic():
            start = time.perf_counter()
            for _ in range(entries):
                fn()
            best = min(best, (time.perf_counter() - start) / entries * 1e6)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000)
    entries = parser.parse_args().entries
    models.connect(f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    models.create_schema()
    note = audit.Note(kind="user", route="user/update/7", address="127.0.0.1", request_id="abcdef0123456789")
    for label, fn in (("audit.insert", lambda: audit.insert(note, Actor, 200, 7)),
                      ("Peewee Model.insert", peewee_insert)):
        print(f"{label:20} {best_of(fn, entries):7.1f} us per entry (best of 3 x {entries}, one transaction)")


if __name__ == "__main__":
    main()
