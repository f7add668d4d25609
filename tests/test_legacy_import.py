"""import-legacy: the old system's MySQL database and picture files into an empty service.

Runs against a real MariaDB/MySQL server (TEST_MYSQL_URL, default mysql://root@127.0.0.1:3306): each
run builds an old database there from the old system's schema, with rows of every kind, including rows
that point at missing rows, a picture file that is not an image, an MD5 password and two users sharing a
name. Without that server these tests fail, saying so: they are never skipped.
"""
import datetime
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

import pymysql
import pytest
from PIL import Image

import models
from services import legacy_import
from storage import make_storage
from tests import legacy_db
from tests.conftest import row_counts

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parent.parent
PICTURES = "statics/zhugeleida/imgs/qiyeweixin/product"
LOGIN = "/zhugeleida/admin/login"
METRICS = ("customer_num", "follow_num", "browse_num", "forward_num", "saved_total_num", "praise_sum")
METRIC_ACTIONS = {"browse_num": 1, "forward_num": 6, "saved_total_num": 8, "praise_sum": 9}

# (id, username, password, company, role): user 3 shares 张三 with user 1; users 6 and 7 point at a missing
# company and a missing role
USERS = [(1, "张三", "pass-zhang", 1, 1), (2, "李四", "pass-li", 1, 3), (3, "张三", "pass-zhang-2", 2, 2),
         (4, "王五", "pass-wang", 2, 1), (5, "赵六", "pass-zhao", 1, 2),
         (6, "孤儿", "pass-orphan", 99, 2), (7, "无角色", "pass-norole", 1, 77)]
TOKENS = {n: hashlib.md5(f"token-{n}".encode()).hexdigest() for n in range(1, 8)}
IMPORTED_USERS = [u for u in USERS if u[0] <= 5]


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


def _image(kind, size, colour):
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, kind)
    return out.getvalue()


# ---- the old database ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def old_db(tmp_path_factory):
    """(URL, old project root, now): the old database with every kind of row, and its picture files."""
    try:
        legacy_db.connect().close()
    except pymysql.MySQLError as e:
        pytest.fail(f"the import tests need MariaDB/MySQL at {legacy_db.OLD_SERVER} (TEST_MYSQL_URL), "
                    f"and it is not reachable: {e}. Start it: start-stop-daemon --start --oknodo --background "
                    f"--exec /usr/sbin/mariadbd", pytrace=False)
    name = f"zgld_legacy_test_{os.getpid()}"
    root = tmp_path_factory.mktemp("old_project")
    now = datetime.datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0)
    connection = legacy_db.create(name)
    try:
        _fill(connection, root, now)
        yield legacy_db.database_url(name), root, now
    finally:
        connection.close()
        legacy_db.drop(name)


def _fill(c, root, now):
    folder = root / PICTURES
    folder.mkdir(parents=True)
    (folder / "cover1.jpg").write_bytes(_image("JPEG", (40, 30), "red"))
    (folder / "intro1.png").write_bytes(_image("PNG", (20, 50), "blue"))
    (folder / "cover2.jpg").write_bytes(_image("JPEG", (30, 30), "green"))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a picture")
    long_ago = now - datetime.timedelta(days=400)
    legacy_db.insert(c, "zgld_company", [
        {"id": 1, "name": "甲公司", "corp_id": "wwcorp1", "tongxunlu_secret": "s3cret-1", "mingpian_available_num": 10,
         "user_expired": now + datetime.timedelta(days=100), "create_date": long_ago},
        {"id": 2, "name": "乙公司", "corp_id": "wwcorp2", "tongxunlu_secret": "s3cret-2", "mingpian_available_num": 5,
         "user_expired": None, "create_date": now - datetime.timedelta(days=50)}])
    legacy_db.insert(c, "zgld_role", [{"id": 1, "name": "管理员", "create_date": long_ago},
                                      {"id": 2, "name": "普通用户", "create_date": long_ago},
                                      {"id": 3, "name": "销售经理", "create_date": long_ago}])
    legacy_db.insert(c, "zgld_userprofile", [
        {"id": uid, "username": username, "password": md5(password), "company_id": company, "role_id": role,
         "position": "销售", "mingpian_phone": f"1380000000{uid}", "token": TOKENS[uid],
         "avatar": "statics/imgs/setAvator.jpg", "status": 1, "create_date": long_ago,
         "last_login_date": now - datetime.timedelta(days=1, hours=6) if uid == 2 else None}
        for uid, username, password, company, role in USERS])
    legacy_db.insert(c, "zgld_product", [
        {"id": 1, "status": 1, "user_id": None, "company_id": 1, "name": "官网产品", "price": "100", "reason": "好",
         "create_date": now - datetime.timedelta(days=3)},
        {"id": 2, "status": 3, "user_id": 2, "company_id": 1, "name": "个人产品", "price": "9.9", "reason": "推荐",
         "create_date": now - datetime.timedelta(days=2)},
        {"id": 3, "status": 2, "user_id": None, "company_id": 2, "name": "下架产品", "price": "1", "reason": "",
         "create_date": now - datetime.timedelta(days=1)},
        {"id": 4, "status": 1, "user_id": None, "company_id": 55, "name": "孤儿产品", "price": "1", "reason": "",
         "create_date": now},
        {"id": 5, "status": 1, "user_id": 6, "company_id": 1, "name": "孤儿的个人产品", "price": "1", "reason": "",
         "create_date": now}])
    legacy_db.insert(c, "zgld_product_article", [
        {"id": 1, "product_id": 1, "type": 1, "order": 1, "title": "标题一", "content": None, "create_date": now},
        {"id": 2, "product_id": 1, "type": 2, "order": 3, "title": None, "content": "正文", "create_date": now},
        {"id": 3, "product_id": 40, "type": 2, "order": 1, "title": None, "content": "孤儿", "create_date": now}])
    legacy_db.insert(c, "zgld_product_picture", [
        {**row, "create_date": now} for row in [
            {"id": 1, "order": 1, "product_id": 1, "picture_type": 1, "picture_url": f"{PICTURES}/cover1.jpg"},
            {"id": 2, "order": 2, "product_id": 1, "picture_type": 1, "picture_url": f"{PICTURES}/broken.jpg"},
            {"id": 3, "order": 2, "product_id": 1, "picture_type": 2, "picture_url": f"{PICTURES}/intro1.png"},
            {"id": 4, "order": 1, "product_id": 2, "picture_type": 1, "picture_url": f"{PICTURES}/cover2.jpg"},
            {"id": 5, "order": 1, "product_id": 3, "picture_type": 1, "picture_url": f"{PICTURES}/gone.jpg"},
            {"id": 6, "order": 1, "product_id": None, "picture_type": 1, "picture_url": f"{PICTURES}/cover1.jpg"},
            {"id": 7, "order": 1, "product_id": 99, "picture_type": 1, "picture_url": f"{PICTURES}/cover1.jpg"}]])
    _fill_activity(c, now)


def _fill_activity(c, now):
    """Customers and their history over the last 45 days (and one binding 400 days ago), with rows that
    point at a missing customer, user or follow-up pair, and an action the service does not know."""
    rng = random.Random(12)
    legacy_db.insert(c, "zgld_customer", [
        {"id": n, "username": f"客户{n}", "openid": f"openid-{n}", "nickname": None,
         "create_date": now - datetime.timedelta(days=60)} for n in range(1, 41)])
    users = [u[0] for u in USERS]  # 6 and 7 are not imported: their rows are skipped

    def moment():
        # up to 45 days ago, never in the future; some on today
        return now - datetime.timedelta(seconds=rng.randrange(0, 45 * 86400))

    bindings = [{"user_id": rng.choice(users), "customer_id": rng.randrange(1, 41), "source": rng.choice((1, 2)),
                 "create_date": moment()} for _ in range(80)]
    bindings += [{"user_id": 1, "customer_id": 1, "source": 1, "create_date": now - datetime.timedelta(days=400)},
                 {"user_id": 1, "customer_id": 999, "source": 1, "create_date": moment()},  # missing customer
                 {"user_id": 999, "customer_id": 2, "source": 1, "create_date": moment()}]  # missing user
    legacy_db.insert(c, "zgld_user_customer_belonger", bindings)
    pairs = sorted({(b["user_id"], b["customer_id"]) for b in bindings})
    legacy_db.insert(c, "zgld_user_customer_flowup", [
        {"id": n, "user_id": user, "customer_id": customer, "create_date": now - datetime.timedelta(days=45)}
        for n, (user, customer) in enumerate(pairs, 1)])
    follows = [{"user_customer_flowup_id": rng.randrange(1, len(pairs) + 1), "follow_info": "回访",
                "create_date": moment()} for _ in range(120)]
    follows.append({"user_customer_flowup_id": 9999, "follow_info": "孤儿", "create_date": moment()})
    legacy_db.insert(c, "zgld_follow_info", follows)
    events = [{"action": rng.randrange(1, 14), "user_id": rng.choice(users), "customer_id": rng.randrange(1, 41),
               "create_date": moment()} for _ in range(1500)]
    events += [{"action": 1, "user_id": 1, "customer_id": 999, "create_date": moment()},
               {"action": 1, "user_id": 999, "customer_id": 3, "create_date": moment()},
               {"action": 14, "user_id": 1, "customer_id": 3, "create_date": moment()}]
    legacy_db.insert(c, "zgld_accesslog", events)


# ---- the same figures counted in the old tables --------------------------------------------------------

# users the import keeps: their company and their role exist
VALID_USERS = ("(SELECT u.id, u.company_id FROM zhugeleida_zgld_userprofile u "
               "JOIN zhugeleida_zgld_company co ON co.id = u.company_id "
               "JOIN zhugeleida_zgld_role r ON r.id = u.role_id)")


def _old_per_day(old, company, metric):
    """{date: count} of `metric` for `company`, counted in the old tables (days in Asia/Shanghai)."""
    if metric == "customer_num":
        sql = (f"SELECT DATE(first), COUNT(*) FROM (SELECT b.customer_id, MIN(b.create_date) AS first "
               f"FROM zhugeleida_zgld_user_customer_belonger b JOIN {VALID_USERS} u ON u.id = b.user_id "
               f"JOIN zhugeleida_zgld_customer cu ON cu.id = b.customer_id WHERE u.company_id = %s "
               f"GROUP BY b.customer_id) x GROUP BY DATE(first)")
        args = [company]
    elif metric == "follow_num":
        sql = (f"SELECT DATE(f.create_date), COUNT(*) FROM zhugeleida_zgld_follow_info f "
               f"JOIN zhugeleida_zgld_user_customer_flowup p ON p.id = f.user_customer_flowup_id "
               f"JOIN {VALID_USERS} u ON u.id = p.user_id JOIN zhugeleida_zgld_customer cu ON cu.id = p.customer_id "
               f"WHERE u.company_id = %s GROUP BY DATE(f.create_date)")
        args = [company]
    else:
        sql = (f"SELECT DATE(a.create_date), COUNT(*) FROM zhugeleida_zgld_accesslog a "
               f"JOIN {VALID_USERS} u ON u.id = a.user_id JOIN zhugeleida_zgld_customer cu ON cu.id = a.customer_id "
               f"WHERE u.company_id = %s AND a.action = %s GROUP BY DATE(a.create_date)")
        args = [company, METRIC_ACTIONS[metric]]
    with old.cursor() as cursor:
        cursor.execute(sql, args)
        return dict(cursor.fetchall())


def _window(per_day, first, last):
    return sum(n for day, n in per_day.items() if (first is None or day >= first) and day <= last)


@pytest.fixture(scope="module")
def old_connection(old_db):
    url = old_db[0]
    connection = legacy_db.connect(url.rsplit("/", 1)[1])
    yield connection
    connection.close()


# ---- importing -------------------------------------------------------------------------------------------

@pytest.fixture
def storage(settings):
    return make_storage(settings)


@pytest.fixture
def imported(old_db, settings, database, storage):
    url, root, _ = old_db
    return legacy_import.run(url, settings, storage, files_root=root)


def _login(client, login_name, password):
    return client.request("POST", LOGIN, data={"username": login_name, "password": password})


@pytest.mark.gen_test
async def test_every_old_user_logs_in_with_the_old_password_once_md5_then_upgraded(client, imported):
    logins = {1: "张三", 2: "李四", 3: "张三-3", 4: "王五", 5: "赵六"}  # user 3 shares 张三 with user 1
    for uid, _, password, _, _ in IMPORTED_USERS:
        assert models.User.get_by_id(uid).password_hash == md5(password)
        _, body = await _login(client, logins[uid], password)
        assert body["code"] == 200, (uid, body)
        assert body["data"]["user_id"] == uid
        assert body["data"]["token"] == TOKENS[uid]  # tokens kept: signed-in clients keep working
        assert models.User.get_by_id(uid).password_hash.startswith("scrypt$")  # upgraded at that login
        _, again = await _login(client, logins[uid], password)
        assert again["code"] == 200
    _, wrong = await _login(client, "张三", "pass-zhang-2")
    assert wrong["code"] == 401
    assert ("user", 3, "shares the name '张三' with another user: logs in as '张三-3'") in imported.notes


@pytest.mark.gen_test
async def test_a_call_signed_with_an_old_token_works(client, imported):
    body = await client.get("/zhugeleida/admin/home_page", (2, TOKENS[2]))
    assert body["code"] == 200
    assert body["data"]["ret_data"]["username"] == "李四"


@pytest.mark.gen_test
async def test_companies_and_users_keep_their_fields_and_the_secret_is_never_answered(client, imported):
    company = models.Company.get_by_id(1)
    assert (company.name, company.corp_id, company.tongxunlu_secret, company.mingpian_available_num) == \
        ("甲公司", "wwcorp1", "s3cret-1", 10)
    listed = await client.get("/zhugeleida/admin/company", (1, TOKENS[1]))
    assert listed["code"] == 200 and "s3cret" not in json.dumps(listed, ensure_ascii=False)
    user = models.User.get_by_id(2)
    assert (user.company_id, user.role_id, user.position, user.mingpian_phone) == (1, 3, "销售", "13800000002")
    assert models.Role.get_by_id(3).name == "销售经理"


@pytest.mark.gen_test
async def test_old_local_times_are_stored_in_utc_and_answered_as_the_old_system_showed_them(client, imported,
                                                                                              old_db):
    """The old system stored Asia/Shanghai wall-clock times (UTC+8, no daylight saving); the service
    stores UTC, and answers in stats.timezone (the tests': Asia/Shanghai) what the old system showed."""
    now, eight_hours = old_db[2], datetime.timedelta(hours=8)
    long_ago = now - datetime.timedelta(days=400)
    assert models.Company.get_by_id(1).create_date == long_ago - eight_hours
    assert models.Role.get_by_id(3).create_date == long_ago - eight_hours
    user = models.User.get_by_id(2)
    assert (user.create_date, user.last_login_date) == (long_ago - eight_hours,
                                                        now - datetime.timedelta(days=1, hours=6) - eight_hours)
    assert models.Product.get_by_id(1).create_date == now - datetime.timedelta(days=3) - eight_hours
    assert models.ProductPicture.get_by_id(1).create_date == now - eight_hours
    product = await client.get("/zhugeleida/admin/product/product_single", (1, TOKENS[1]), product_id=1)
    assert product["data"]["ret_data"]["publisher_date"] == str(now - datetime.timedelta(days=3))
    users = await client.get("/zhugeleida/admin/user", (1, TOKENS[1]), id=2)
    assert users["data"]["ret_data"][0]["create_date"] == str(long_ago)
    assert users["data"]["ret_data"][0]["last_login_date"] == str(now - datetime.timedelta(days=1, hours=6))


def test_rows_pointing_at_missing_rows_are_reported_and_skipped(imported, old_connection):
    t = imported.tables
    assert t["users"].skipped == {"company missing": [1, [6]], "role missing": [1, [7]]}
    assert t["products"].skipped == {"company missing": [1, [4]], "owner (user) missing or not imported": [1, [5]]}
    assert t["product articles"].skipped == {"product missing or not imported": [1, [3]]}
    assert t["product pictures"].skipped == {"file missing or not a valid image": [2, [2, 5]],
                                             "never attached to a product": [1, [6]],
                                             "product missing or not imported": [1, [7]]}
    assert t["follow-ups"].skipped["follow-up pair (flowup) missing"][0] == 1
    assert t["access events"].skipped["action outside 1..13"] == [1, [1503]]
    assert 1501 in t["access events"].skipped["customer missing"][1]
    with old_connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM zhugeleida_zgld_accesslog a LEFT JOIN {VALID_USERS} u "
                       f"ON u.id = a.user_id WHERE u.id IS NULL")
        assert t["access events"].skipped["user missing or not imported"][0] == cursor.fetchone()[0] > 1
    assert not models.AccessEvent.select().where(models.AccessEvent.id.in_([1501, 1502, 1503])).exists()
    assert models.User.select().count() == 5
    assert not models.Product.select().where(models.Product.id.in_([4, 5])).exists()
    assert t["access events"].read == 1503 and \
        t["access events"].imported + t["access events"].skipped_count == 1503
    refused = {picture_id: why for picture_id, _, why in imported.files_refused}
    assert refused[5] == "file missing" and "图片" in refused[2]


@pytest.mark.gen_test
async def test_products_show_the_same_products_and_picture_urls_and_the_files_are_served(
        client, imported, http_client, base_url):
    admin = (1, TOKENS[1])
    companies = await client.get("/zhugeleida/admin/product/product_list", admin, product_type=1)
    assert [(p["product_id"], p["name"], p["cover_picture"]) for p in companies["data"]["ret_data"]] == \
        [(1, "官网产品", f"{PICTURES}/cover1.jpg")]
    personal = await client.get("/zhugeleida/admin/product/product_list", admin, product_type=2)
    assert [(p["product_id"], p["publisher"], p["status_code"], p["cover_picture"])
            for p in personal["data"]["ret_data"]] == [(2, "李四", 3, f"{PICTURES}/cover2.jpg")]
    off = await client.get("/zhugeleida/admin/product/product_list", admin, product_type=1, status=2, company_id=2)
    assert [p["product_id"] for p in off["data"]["ret_data"]] == [3]
    # product_edit, as the old admin app's edit form reads it
    edit = await client.get("/zhugeleida/admin/product/product_edit", admin, product_id=1, product_type=1)
    [form] = edit["data"]["ret_data"]
    assert (form["id"], form["name"], form["cover_picture"]) == (
        1, "官网产品", [{"id": 1, "picture_url": f"{PICTURES}/cover1.jpg"}])
    assert [(i.get("title"), i.get("content"), i.get("picture_url"), i["order"]) for i in form["article_data"]] == \
        [("标题一", None, None, 1), (None, None, f"{PICTURES}/intro1.png", 2), (None, "正文", None, 3)]
    for url in (f"{PICTURES}/cover1.jpg", f"{PICTURES}/intro1.png", f"{PICTURES}/cover2.jpg"):
        response = await http_client.fetch(f"{base_url}/{url}", raise_error=False)
        assert response.code == 200, url
        assert Image.open(io.BytesIO(response.body)).size == {"cover1.jpg": (40, 30), "intro1.png": (20, 50),
                                                              "cover2.jpg": (30, 30)}[url.rsplit("/", 1)[1]]
    assert (await http_client.fetch(f"{base_url}/{PICTURES}/broken.jpg", raise_error=False)).code == 404


@pytest.mark.gen_test
@pytest.mark.parametrize("company, caller", [(1, 1), (2, 4)])
async def test_dashboards_equal_the_same_windows_counted_in_the_old_tables(
        client, imported, old_db, old_connection, company, caller):
    signer = (caller, TOKENS[caller])
    today = old_db[2].date()
    day = datetime.timedelta(days=1)
    per_day = {metric: _old_per_day(old_connection, company, metric) for metric in METRICS}
    counts = (await client.get("/zhugeleida/admin/home_page/acount_data", signer))["data"]["ret_data"]
    windows = {"count_data": (None, today), "yesterday_data": (today - day, today - day),
               "nearly_seven_days": (today - 7 * day, today - day),
               "nearly_thirty_days": (today - 30 * day, today - day)}
    for name, (first, last) in windows.items():
        assert counts[name] == {m: _window(per_day[m], first, last) for m in METRICS}, name
    assert counts["nearly_thirty_days"]["browse_num"] > 0 and counts["count_data"]["customer_num"] > 0
    for index, metric in enumerate(METRICS, 1):
        body = await client.post("/zhugeleida/admin/home_page/line_info", signer, data={"days": 45,
                                                                                       "index_type": index})
        expected = [{"statics_date": (today - n * day).isoformat(), "value": per_day[metric].get(today - n * day, 0)}
                    for n in range(45, 0, -1)]
        assert body["data"]["ret_data"] == expected, metric
    home = (await client.get("/zhugeleida/admin/home_page", signer))["data"]["ret_data"]
    with old_connection.cursor() as cursor:
        cursor.execute(f"SELECT co.name, co.mingpian_available_num, DATE(co.user_expired), DATE(co.create_date), "
                       f"(SELECT COUNT(*) FROM {VALID_USERS} u WHERE u.company_id = co.id) "
                       f"FROM zhugeleida_zgld_company co WHERE co.id = %s", [company])
        name, quota, expires, opened, users = cursor.fetchone()
    assert home == {"company_name": name, "username": dict((u[0], u[1]) for u in USERS)[caller],
                    "mingpian_num": quota, "user_count": users, "expired_time": expires.isoformat() if expires else "",
                    "open_up_date": opened.isoformat(), "available_days": (expires - today).days if expires else 0,
                    "used_days": (today - opened).days, "customer_num": _window(per_day["customer_num"], None, today)}


def test_the_roll_up_covers_every_imported_day(imported, old_db):
    today = old_db[2].date()
    state = models.RollupState.get_by_id("daily")
    assert state.done_through == today - datetime.timedelta(days=1)
    assert models.DailyStats.select().where(models.DailyStats.day == today - datetime.timedelta(days=400)).exists()
    assert imported.rolled_up_days >= 400


def test_a_customer_of_two_companies_becomes_one_per_company(imported, old_connection):
    with old_connection.cursor() as cursor:
        cursor.execute(f"SELECT b.customer_id FROM zhugeleida_zgld_user_customer_belonger b JOIN {VALID_USERS} u "
                       f"ON u.id = b.user_id GROUP BY b.customer_id HAVING COUNT(DISTINCT u.company_id) = 2 LIMIT 1")
        (shared,) = cursor.fetchone()
    rows = models.Customer.select().where(models.Customer.openid == f"openid-{shared}")
    assert sorted(c.company_id for c in rows) == [1, 2]
    assert shared in [c.id for c in rows]  # one of them keeps the old id


def test_a_second_import_is_refused_and_changes_nothing(imported, old_db, settings, storage):
    url, root, _ = old_db
    before = row_counts()
    with pytest.raises(legacy_import.LegacyImportError, match="already holds data"):
        legacy_import.run(url, settings, storage, files_root=root)
    assert row_counts() == before


def test_a_dry_run_checks_everything_and_writes_nothing(old_db, settings, database, storage):
    url, root, _ = old_db
    before = row_counts()
    report = legacy_import.run(url, settings, storage, files_root=root, dry_run=True)
    assert row_counts() == before
    assert not list(Path(settings["storage"]["root"]).rglob("*.*"))
    assert report.tables["users"].imported == 5 and report.tables["access events"].imported > 1000
    assert report.files_copied == 3 and len(report.files_refused) == 2


def test_new_rows_continue_after_the_imported_ids(imported):
    assert models.Company.create(name="新公司").id == 3
    assert models.Product.create(company=1, product_type=1, name="n", price="1", reason="").id == 4


def test_an_old_database_that_cannot_be_read_imports_nothing(settings, database, storage):
    with pytest.raises(legacy_import.LegacyImportError, match="cannot read the old database"):
        legacy_import.run(legacy_db.database_url("zgld_legacy_no_such_database"), settings, storage)
    with pytest.raises(legacy_import.LegacyImportError, match="must look like"):
        legacy_import.run("postgresql://x@y/z", settings, storage)
    assert models.Company.select().count() == 0


def test_a_failure_half_way_leaves_the_target_empty_and_no_picture_files(settings, database, storage, old_db,
                                                                        tmp_path):
    name = f"zgld_legacy_test_{os.getpid()}_broken"
    connection = legacy_db.create(name)
    try:
        _fill(connection, tmp_path / "old", old_db[2])
        with connection.cursor() as cursor:  # read after companies, users, products and pictures
            cursor.execute("DROP TABLE zhugeleida_zgld_follow_info")
        with pytest.raises(legacy_import.LegacyImportError, match="reading the old database failed"):
            legacy_import.run(legacy_db.database_url(name), settings, storage, files_root=tmp_path / "old")
    finally:
        connection.close()
        legacy_db.drop(name)
    assert legacy_import.target_is_empty()
    assert not [p for p in Path(settings["storage"]["root"]).rglob("*") if p.is_file()]


@pytest.mark.gen_test
async def test_action_13_is_accepted_by_the_batch_endpoint(client, make_company, make_user):
    user = make_user(make_company())
    body = await client.post("/zhugeleida/admin/activity/batch", user, json_body={
        "records": [{"kind": "access", "user_id": user.id, "openid": "o1", "action": 13}]})
    assert body["code"] == 200 and body["data"]["access_num"] == 1
    assert models.AccessEvent.get().action == 13


# ---- interrupted -------------------------------------------------------------------------------------------

def _import_command(url, root, tmp_path):
    return [sys.executable, str(ROOT / "server.py"), "--config", str(tmp_path / "config.yaml"), "import-legacy",
            "--from", url, "--files", str(root)]


def _wait_until(condition, what, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_killed_in_the_middle_leaves_the_target_empty_and_the_same_command_then_imports_all(
        old_db, settings, database, tmp_path):
    url, root, _ = old_db
    name = url.rsplit("/", 1)[1]
    blocker = legacy_db.connect(name)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        with blocker.cursor() as cursor:
            # The import stops at its first read of the access log, with companies, users, products and
            # pictures already written in its transaction: kill it there.
            cursor.execute("LOCK TABLES zhugeleida_zgld_accesslog WRITE")
        process = subprocess.Popen(_import_command(url, root, tmp_path), env=environment, cwd=tmp_path,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            _wait_until(lambda: _waiting_for_lock(blocker) or process.poll() is not None, "the import to block")
            assert process.poll() is None, process.stdout.read().decode()
            process.send_signal(signal.SIGKILL)
            process.wait()
        finally:
            if process.poll() is None:
                process.kill()
            process.stdout.close()
    finally:
        blocker.close()  # releases the lock
    models.db.close()
    models.connect(settings["database"]["url"])
    assert legacy_import.target_is_empty()
    assert models.Company.select().count() == 0 and models.User.select().count() == 0
    done = subprocess.run(_import_command(url, root, tmp_path), env=environment, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "access events: read 1503" in done.stdout
    models.db.close()
    models.connect(settings["database"]["url"])
    assert models.User.select().count() == 5 and models.AccessEvent.select().count() > 1000


def _waiting_for_lock(connection):
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE state LIKE %s AND info LIKE %s",
                       ["%lock%", "%accesslog%"])
        return cursor.fetchone()[0] > 0


def test_the_indexes_dropped_for_the_load_are_there_again(settings, database, old_db, storage):
    def indexes():
        return {m.__name__: sorted(i.name for i in models.db.get_indexes(m._meta.table_name))
                for m in legacy_import.EVENT_MODELS}
    before = indexes()
    legacy_import.run(old_db[0], settings, storage, files_root=old_db[1])
    assert indexes() == before and all(before.values())


def test_the_command_records_the_import_in_its_own_transaction(old_db, settings, database, storage, tmp_path):
    import server
    url, root, _ = old_db

    def broken_record():
        raise RuntimeError("the entry cannot be written")

    with pytest.raises(RuntimeError):  # the entry is part of the import: without it nothing is imported
        legacy_import.run(url, settings, storage, files_root=root, record=broken_record)
    assert legacy_import.target_is_empty()
    command = ["--config", str(tmp_path / "config.yaml"), "import-legacy", "--from", url, "--files", str(root)]
    server.main(command)
    with pytest.raises(SystemExit):  # a second import is refused, and recorded as failed
        server.main(command)
    entries = [(e.route, e.code, e.login_name.startswith("os:")) for e in models.AuditEntry.select()
               .order_by(models.AuditEntry.id)]
    assert entries == [("cli import-legacy", 200, True), ("cli import-legacy", 500, True)]
