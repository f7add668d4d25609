"""Upgrades: the schema is brought up to date at every start (models.create_schema) without losing a row.
A table made by an older version gains the columns added to its model since, filled with their defaults."""
import datetime

import peewee as pw
import pytest

import models

FIXED_DAY = datetime.datetime(2026, 1, 2, 3, 4, 5)


class OldShop(models.BaseModel):
    """The table as an older version made it."""
    name = pw.CharField(max_length=64)

    class Meta:
        table_name = "upgrade_shop"


class Shop(models.BaseModel):
    """The same table in the newer version: three more columns."""
    name = pw.CharField(max_length=64)
    rank = pw.IntegerField(default=7)  # NOT NULL, with a default for the old rows
    note = pw.CharField(max_length=64, null=True)
    opened = pw.DateTimeField(default=lambda: FIXED_DAY, index=True)

    class Meta:
        table_name = "upgrade_shop"


class Shelf(models.BaseModel):
    """A child with ON DELETE CASCADE: rebuilding the parent table would take these rows with it."""
    shop = pw.ForeignKeyField(Shop, on_delete="CASCADE")
    label = pw.CharField(max_length=64)

    class Meta:
        table_name = "upgrade_shelf"


@pytest.fixture
def old_tables(database, monkeypatch):
    database.drop_tables([Shelf, OldShop], safe=True)
    database.create_tables([OldShop, Shelf])
    for name in ("老店", "新店"):
        shop = OldShop.create(name=name)
        Shelf.create(shop=shop.id, label=f"{name}的货架")
    monkeypatch.setattr(models, "MODELS", [*models.MODELS, Shop, Shelf])
    yield
    database.drop_tables([Shelf, Shop], safe=True)


def test_upgrade_adds_missing_columns_and_keeps_every_row(database, old_tables):
    models.create_schema()
    columns = {c.name for c in database.get_columns("upgrade_shop")}
    assert {"rank", "note", "opened"} <= columns
    rows = [(s.name, s.rank, s.note, s.opened) for s in Shop.select().order_by(Shop.id)]
    assert rows == [("老店", 7, None, FIXED_DAY), ("新店", 7, None, FIXED_DAY)]
    assert sorted(s.label for s in Shelf.select()) == ["新店的货架", "老店的货架"]
    assert any(index.columns == ["opened"] for index in database.get_indexes("upgrade_shop"))
    Shop.create(name="第三家", rank=1, note="新版本写的")
    assert Shop.select().count() == 3


def test_upgrade_runs_once(database, old_tables):
    assert len(models.add_missing_columns()) == 3
    assert models.add_missing_columns() == []
    models.create_schema()
    assert Shop.select().count() == 2


def test_current_schema_needs_no_upgrade(database):
    assert models.add_missing_columns() == []


def test_a_database_made_before_the_audit_trail_gains_it_and_keeps_its_rows(database, make_company):
    database.drop_tables([models.AuditEntry])
    make_company("升级前的公司")
    models.create_schema()
    assert models.AuditEntry.table_exists() and models.Company.select().count() == 1
    models.AuditEntry.create(route="login", kind="user", code=200)
    assert models.AuditEntry.select().count() == 1
