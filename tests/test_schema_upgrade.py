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


# ---- data upgrades: times stored in local time by version 1.1 and earlier ---------------------------------

# Wall-clock times in New York (the process_zone fixture) and the UTC instants they were.
SUMMER = datetime.datetime(2026, 7, 1, 12, 0)  # EDT, UTC-4
SUMMER_UTC = datetime.datetime(2026, 7, 1, 16, 0)
WINTER = datetime.datetime(2026, 1, 15, 23, 30)  # EST, UTC-5: the next day in UTC
WINTER_UTC = datetime.datetime(2026, 1, 16, 4, 30)
TWICE = datetime.datetime(2025, 11, 2, 1, 30)  # the clocks went back at 02:00 EDT: 01:30 happened twice
TWICE_FIRST_UTC = datetime.datetime(2025, 11, 2, 5, 30)  # read as the first time, still EDT


def _times(make_company, make_user):
    """Rows holding each kind of time; what each column should hold once converted, by (model, id, field)."""
    company = make_company("旧版本的公司", create_date=WINTER)
    role = models.Role.create(name="旧版本的角色", create_date=SUMMER)
    users = [make_user(company, create_date=SUMMER, last_login_date=TWICE if n == 0 else None) for n in range(5)]
    product = models.Product.create(company=company, product_type=models.PRODUCT_COMPANY, name="p", price="1",
                                    reason="", create_date=WINTER)
    picture = models.ProductPicture.create(company=company, url="statics/zhugeleida/imgs/old.jpg", create_date=SUMMER)
    models.LoginThrottle.create(key="name:old", attempts=1, window_start=WINTER)
    expected = {(models.Company, company.id, "create_date"): WINTER_UTC,
                (models.Role, role.id, "create_date"): SUMMER_UTC,
                (models.User, users[0].id, "last_login_date"): TWICE_FIRST_UTC,
                (models.User, users[1].id, "last_login_date"): None,
                (models.Product, product.id, "create_date"): WINTER_UTC,
                (models.ProductPicture, picture.id, "create_date"): SUMMER_UTC,
                (models.LoginThrottle, "name:old", "window_start"): WINTER_UTC}
    expected.update({(models.User, user.id, "create_date"): SUMMER_UTC for user in users})
    return expected


def _stored(expected):
    return {(model, key, field): getattr(model.get_by_id(key), field) for model, key, field in expected}


def _made_by_the_old_version():
    """What tells create_schema that this database was made by version 1.1 and earlier: no record of the
    upgrades (SchemaFact came with this one)."""
    models.SchemaFact.delete().execute()


def test_times_an_older_version_stored_in_local_time_are_converted_to_utc_once(
        database, process_zone, make_company, make_user, monkeypatch, caplog):
    monkeypatch.setattr(models, "UPGRADE_BATCH", 2)  # five users: three batches
    expected = _times(make_company, make_user)
    customer = models.Customer.create(company=models.Company.select().first(), openid="o", create_date=WINTER)
    audit = models.AuditEntry.create(at=WINTER, route="login", kind="user", code=200)
    _made_by_the_old_version()
    with caplog.at_level("INFO", logger="zgld"):
        models.create_schema()
    assert _stored(expected) == expected
    assert models.Customer.get_by_id(customer.id).create_date == WINTER  # event times were UTC already
    assert models.AuditEntry.get_by_id(audit.id).at == WINTER
    lines = [r.getMessage() for r in caplog.records if "UTC" in r.getMessage()]
    assert len(lines) == 1 and "EST/EDT" in lines[0] and "user.create_date 5" in lines[0], lines
    assert "13 in all" in lines[0]  # 1 company, 3 roles (the built-in two too), 5 + 1 users, 1 product, ...
    assert models.SchemaFact.get_by_id("times_in_utc").summary == lines[0].removeprefix("schema upgrade: ")
    caplog.clear()
    models.create_schema()  # the next start: nothing converted twice, nothing logged
    assert _stored(expected) == expected
    assert not [r for r in caplog.records if "UTC" in r.getMessage()]


def test_an_upgrade_that_fails_changes_nothing_and_runs_again_at_the_next_start(
        database, process_zone, make_company, make_user, monkeypatch):
    expected = _times(make_company, make_user)
    before = {key: value for key, value in _stored(expected).items()}
    _made_by_the_old_version()
    convert = models._column_to_utc

    def fail_at_the_last_column(field):
        if field is models.LOCAL_TIME_COLUMNS[-1]:
            raise RuntimeError("the disk went away")
        return convert(field)

    monkeypatch.setattr(models, "_column_to_utc", fail_at_the_last_column)
    with pytest.raises(RuntimeError):
        models.create_schema()
    assert _stored(expected) == before and not models.SchemaFact.select().exists()
    monkeypatch.setattr(models, "_column_to_utc", convert)
    models.create_schema()
    assert _stored(expected) == expected


def test_a_database_made_by_this_version_records_the_upgrades_without_running_them(database, monkeypatch):
    database.drop_tables([models.SchemaFact, *models.MODELS])

    def never(name):
        def upgrade():
            raise AssertionError(f"{name} ran on a database made by this version")
        return upgrade

    monkeypatch.setattr(models, "DATA_UPGRADES", {name: never(name) for name in models.DATA_UPGRADES})
    models.create_schema()
    assert {f.name for f in models.SchemaFact.select()} == set(models.DATA_UPGRADES) == {"times_in_utc"}
    assert models.Role.select().count() == len(models.BUILTIN_ROLES)


def test_data_tables_made_afresh_beside_the_upgrade_record_start(database):
    """Emptying a database by dropping its data tables (as tests and benches do) leaves the record of
    upgrades, which still holds for the tables made afresh: the next start must not trip over it."""
    database.drop_tables(models.MODELS, cascade=isinstance(database.obj, pw.PostgresqlDatabase))
    models.create_schema()
    assert {f.name for f in models.SchemaFact.select()} == set(models.DATA_UPGRADES)
    assert models.Role.select().count() == len(models.BUILTIN_ROLES)
