"""models.CompiledQuery and models.insert_rows: one statement compiled once, then run with any number of
IN-list items and VALUES rows, on SQLite and PostgreSQL alike."""
import datetime

import pytest

import models
from models import CompiledQuery, Customer, insert_rows

COLUMNS = [Customer.company, Customer.openid, Customer.name, Customer.create_date, Customer.first_bound_at]
AT = datetime.datetime(2024, 3, 9, 10)


def customers(company, openids):
    return [(company.id, openid, f"客户{openid}", AT, None) for openid in openids]


BY_OPENID = CompiledQuery(lambda slot: Customer.select(Customer.openid).where(
    Customer.company == slot("company"), Customer.openid.in_(slot.each("openids"))).order_by(Customer.openid))


def test_one_compiled_in_list_serves_every_length(company, other):
    insert_rows(Customer, COLUMNS, customers(company, "abcde") + customers(other, "ab"))

    def found(openids):
        return [o for (o,) in BY_OPENID.execute(company=company.id, openids=openids).fetchall()]
    assert found(["a"]) == ["a"]
    assert found(["e", "b", "zz", "d"]) == ["b", "d", "e"]
    assert found([]) == []  # an empty list matches nothing
    assert [o for (o,) in BY_OPENID.execute(company=other.id, openids=list("abcde")).fetchall()] == ["a", "b"]


def test_insert_rows_over_several_statements_stores_and_counts_every_row(company):
    openids = [f"o{n:05}" for n in range(models.INSERT_CHUNK * 2 + 7)]
    assert insert_rows(Customer, COLUMNS, customers(company, openids)) == len(openids)
    stored = Customer.select(Customer.openid, Customer.name, Customer.create_date).order_by(Customer.openid)
    assert [tuple(row) for row in stored.tuples()] == [(o, f"客户{o}", AT) for o in openids]


def test_insert_rows_ignoring_conflicts_counts_only_new_rows(company):
    insert_rows(Customer, COLUMNS, customers(company, ["a", "b"]))
    assert insert_rows(Customer, COLUMNS, customers(company, ["b", "c", "a", "d"]), ignore_conflicts=True) == 2
    assert Customer.select().count() == 4


def test_insert_rows_refuses_to_leave_out_a_field_with_a_default(company):
    with pytest.raises(ValueError, match="create_date"):
        insert_rows(Customer, [Customer.company, Customer.openid, Customer.name], [(company.id, "a", "")])
    assert Customer.select().count() == 0
