"""The audit trail: every write through the API leaves exactly one entry, in the write's own transaction (a
failed write one failed entry, a rolled-back write none claiming success), never a secret; GET audit
reads it back (administrators, filters, paging, company scope); old entries are pruned."""
import datetime
import json
import sqlite3

import peewee as pw
import pytest

import models
import server
from handlers.base import BaseHandler
from services import audit, auth, roles, scope
from services.errors import NameExists
from tests.conftest import signed_params
from tests.product_data import product_form

ADMIN = "/zhugeleida/admin/"
AUDIT = ADMIN + "audit"
LOGIN = ADMIN + "login"


def entries():
    return list(models.AuditEntry.select().order_by(models.AuditEntry.id))


def new_entries(before):
    return [e for e in entries() if e.id > before]


def last_id():
    return models.AuditEntry.select(pw.fn.MAX(models.AuditEntry.id)).scalar() or 0


@pytest.fixture
def scene(make_user, make_company, company, admin, staff):
    """What the writes below act on: a user to change, a role, a company and a product of each kind."""
    return {
        "victim": make_user(company, login_name="victim"),
        "role": models.Role.create(name="销售"),
        "spare": make_company("空公司"),
        "product": models.Product.create(company=company, product_type=models.PRODUCT_COMPANY, name="官网产品",
                                         price="1", reason="r"),
        "personal": models.Product.create(company=company, user=staff, product_type=models.PRODUCT_PERSONAL,
                                          name="个人产品", price="1", reason="r"),
    }


# (label, who, path (with {names} from the scene), form, kind, target: a scene name, "self", "answer" or None)
WRITES = [
    ("user add", "admin", "user/add/0", {"username": "新人", "password": "secret123", "role_id": 2}, "user",
     "answer"),
    ("user update", "admin", "user/update/{victim}", {"username": "改名", "role_id": 2}, "user", "victim"),
    ("user status", "admin", "user/update_status/{victim}", {"status": 2}, "user", "victim"),
    ("user reset", "admin", "user/reset_password/{victim}", {"new_password": "reset-by-boss"}, "user", "victim"),
    ("user delete", "admin", "user/delete/{victim}", {}, "user", "victim"),
    ("role add", "admin", "role/add/0", {"name": "经理"}, "role", "answer"),
    ("role update", "admin", "role/update/{role}", {"name": "大客户经理"}, "role", "role"),
    ("role delete", "admin", "role/delete/{role}", {}, "role", "role"),
    ("company add", "admin", "company/add/0", {"name": "新公司", "mingpian_available_num": 3}, "company", "answer"),
    ("company update", "admin", "company/update/{spare}", {"name": "改名公司", "mingpian_available_num": 3},
     "company", "spare"),
    ("company delete", "admin", "company/delete/{spare}", {}, "company", "spare"),
    ("product add", "staff", "product/add/0", product_form(), "product", "answer"),
    ("product update", "admin", "product/update/{product}", product_form(product_type=1, name="新名"), "product",
     "product"),
    ("product status", "admin", "product/change_status/{product}", {"status": 2}, "product", "product"),
    ("product status 企业微信", "staff", "qiyeweixin:product/change_status/{personal}", {"status": 3}, "product",
     "personal"),
    ("product delete", "staff", "product/delete/{personal}", {}, "product", "personal"),
    ("activity batch", "staff", "activity/batch", None, "activity", None),
    ("logout", "staff", "logout", {}, "user", "self"),
    ("modify_password", "staff", "modify_password", {"old_password": "secret123", "new_password": "new-secret"},
     "user", "self"),
]


def url_of(path, scene):
    ids = {name: row.id for name, row in scene.items()}
    if path.startswith("qiyeweixin:"):
        return "/zhugeleida/qiyeweixin/" + path.removeprefix("qiyeweixin:").format(**ids)
    return ADMIN + path.format(**ids)


@pytest.mark.gen_test
@pytest.mark.parametrize("label, who, path, form, kind, target", WRITES, ids=[w[0] for w in WRITES])
async def test_each_kind_of_write_leaves_exactly_one_entry(client, admin, staff, scene, label, who, path, form,
                                                           kind, target):
    actor = {"admin": admin, "staff": staff}[who]
    url = url_of(path, scene)
    before = last_id()
    if form is None:  # the activity batch: JSON
        body = await client.post(url, actor, json_body={"records": [
            {"kind": "access", "user_id": staff.id, "openid": "o1", "action": 1}]})
    else:
        body = await client.post(url, actor, data=form)
    assert body["code"] == 200, body
    (entry,) = new_entries(before)
    expected_target = {"answer": (body["data"] or {}).get("id"), "self": actor.id, None: None}.get(
        target, scene[target].id if target in scene else None)
    if label == "product add":  # answers {}: the new row's id is the target
        expected_target = models.Product.select(pw.fn.MAX(models.Product.id)).scalar()
    assert (entry.user_id, entry.login_name, entry.company_id, entry.kind, entry.target_id, entry.code) == (
        actor.id, actor.login_name, actor.company_id, kind, expected_target, 200)
    assert entry.route == url.removeprefix("/zhugeleida/").removeprefix("admin/")
    assert entry.address == "127.0.0.1" and entry.request_id
    assert abs(entry.at - models.utcnow()) < datetime.timedelta(minutes=1)


@pytest.mark.gen_test
async def test_a_retry_under_the_same_signature_adds_no_entry(client, admin):
    params = signed_params(admin)
    before = last_id()
    for _ in range(2):
        _, body = await client.request("POST", ADMIN + "role/add/0", params, data={"name": "经理"})
        assert body["code"] == 200
    assert len(new_entries(before)) == 1


@pytest.mark.gen_test
async def test_another_call_under_a_spent_signature_adds_no_entry(client, admin):
    params = signed_params(admin)
    _, first = await client.request("POST", ADMIN + "role/add/0", params, data={"name": "经理"})
    before = last_id()
    _, second = await client.request("POST", ADMIN + "role/add/0", params, data={"name": "另一个"})
    assert (first["code"], second["code"]) == (200, 400) and new_entries(before) == []


def test_every_write_handler_is_recorded():
    """A signed POST that changes data declares its audit kind; the only other POSTs are the read
    line_info and the upload calls (a picture changes nothing until a product add or update uses it)."""
    not_writes = {"LineInfoHandler", "AddPictureHandler", "UploadCompleteHandler"}
    handlers = {handler for module in server.HANDLER_MODULES for _, handler, *_ in module.default_handlers}
    posting = {h for h in handlers if issubclass(h, BaseHandler) and h.access != scope.PUBLIC
               and getattr(h, "post", None) is not getattr(BaseHandler, "post", None)}
    assert {h.__name__ for h in posting if h.audit_kind is None} == not_writes


# ---- failed writes ---------------------------------------------------------------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("who, path, form, code, target", [
    ("admin", "user/delete/{admin}", {}, 305, "admin"),  # refused by the service
    ("admin", "role/add/0", {"name": "管理员"}, 300, None),  # a name taken
    ("staff", "role/add/0", {"name": "经理"}, 404, None),  # not an administrator
    ("staff", "role/add/0", {}, 404, None),  # not an administrator, and a bad form: the first refusal
    ("admin", "role/add/0", {}, 303, None),  # the form, refused before the job
    ("admin", "user/update_status/abc", {"status": 2}, 302, None),  # a path id that names nothing
    ("admin", "user/update_status/99999", {"status": 2}, 302, 99999),
])
async def test_a_failed_write_leaves_one_failed_entry(client, admin, staff, who, path, form, code, target):
    actor = {"admin": admin, "staff": staff}[who]
    before = last_id()
    body = await client.post(ADMIN + path.format(admin=admin.id), actor, data=form)
    assert body["code"] == code
    (entry,) = new_entries(before)
    assert (entry.user_id, entry.code, entry.target_id) == (actor.id, code, admin.id if target == "admin" else target)


@pytest.mark.gen_test
async def test_an_unsigned_write_is_not_recorded(client, admin):
    before = last_id()
    body = await client.post(ADMIN + "role/add/0", data={"name": "经理"},
                             params={"user_id": str(admin.id), "timestamp": "1", "rand_str": "x"})
    assert body["code"] == 400 and new_entries(before) == []


@pytest.mark.gen_test
async def test_a_write_rolled_back_leaves_no_entry_claiming_success(client, admin, monkeypatch):
    def add_then_refuse(name):
        roles.Role.create(name=name)  # written, then the rule refuses: all of it is rolled back
        raise NameExists("角色名已存在")

    monkeypatch.setattr(roles, "add_role", add_then_refuse)
    before = last_id()
    body = await client.post(ADMIN + "role/add/0", admin, data={"name": "经理"})
    assert body["code"] == 300
    assert not models.Role.select().where(models.Role.name == "经理").exists()
    assert [e.code for e in new_entries(before)] == [300]


@pytest.mark.gen_test
async def test_a_write_failing_unexpectedly_is_recorded_as_500(client, admin, monkeypatch):
    def add_then_break(name):
        roles.Role.create(name=name)
        raise RuntimeError("a bug")

    monkeypatch.setattr(roles, "add_role", add_then_break)
    before = last_id()
    status, body = await client.request("POST", ADMIN + "role/add/0", signed_params(admin), data={"name": "经理"})
    assert status == 500 and body["code"] == 500
    assert not models.Role.select().where(models.Role.name == "经理").exists()
    assert [e.code for e in new_entries(before)] == [500]


@pytest.mark.gen_test
async def test_a_change_never_happens_unrecorded(client, admin, monkeypatch):
    """The entry is part of the write's transaction: if it cannot be written, the change is not made."""
    def broken_insert(*args):
        raise pw.OperationalError("no room for the entry")

    monkeypatch.setattr(audit, "insert", broken_insert)
    status, body = await client.request("POST", ADMIN + "role/add/0", signed_params(admin), data={"name": "经理"})
    assert status == 500
    assert not models.Role.select().where(models.Role.name == "经理").exists()


# ---- logins ----------------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_logins_and_failed_logins_are_recorded(client, admin, make_user, company, settings):
    make_user(company, login_name="gone", status=models.USER_DISABLED)
    before = last_id()
    attempts = [("boss", "secret123", 200), ("boss", "wrong-one", 401), ("gone", "secret123", 306),
                ("nobody-by-that-name", "x", 401)]
    for name, password, code in attempts:
        assert (await client.post(LOGIN, data={"username": name, "password": password}))["code"] == code
    gone = models.User.get(models.User.login_name == "gone")
    got = [(e.route, e.user_id, e.login_name, e.target_id, e.code) for e in new_entries(before)]
    assert got == [("login", admin.id, "boss", admin.id, 200), ("login", admin.id, "boss", admin.id, 401),
                   ("login", gone.id, "gone", gone.id, 306), ("login", None, "", None, 401)]


@pytest.mark.gen_test
async def test_throttled_logins_add_no_entries(client, admin, settings):
    limit = settings["auth"]["login_max_failures"]
    for _ in range(limit):
        await client.post(LOGIN, data={"username": "boss", "password": "bad"})
    before = last_id()
    for _ in range(3):
        body = await client.post(LOGIN, data={"username": "boss", "password": "bad"})
        assert body["code"] == 401 and "次数过多" in body["msg"]
    assert new_entries(before) == []


# ---- no secret in any entry ------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_no_password_token_or_signature_is_stored(client, admin, staff, database):
    sent = []

    async def post(path, user, form):
        params = signed_params(user)
        sent.extend([params["rand_str"], *form.values()])
        return (await client.request("POST", ADMIN + path, params, data=form))[1]

    login = await client.post(LOGIN, data={"username": "staff", "password": "secret123"})
    sent += ["secret123", login["data"]["token"], admin.token]
    await client.post(LOGIN, data={"username": "staff", "password": "a-guess-123"})
    await client.post(LOGIN, data={"username": "p@ssw0rd-in-the-name-field", "password": "x"})
    sent += ["a-guess-123", "p@ssw0rd-in-the-name-field"]
    await post("user/add/0", admin, {"username": "新人", "login_name": "newbie", "password": "pw-of-newbie",
                                     "role_id": "2"})
    await post(f"user/reset_password/{staff.id}", admin, {"new_password": "pw-from-boss"})
    generated = (await post(f"user/reset_password/{staff.id}", admin, {}))["data"]["new_password"]
    changed = await post("modify_password", models.User.get_by_id(admin.id),
                         {"old_password": "secret123", "new_password": "admin-own-pw"})
    sent += [generated, changed["data"]["token"], models.User.get_by_id(staff.id).token]
    rows = database.execute_sql(f'SELECT * FROM "{models.AuditEntry._meta.table_name}"').fetchall()
    assert len(rows) == 7
    stored = json.dumps([[str(v) for v in row] for row in rows], ensure_ascii=False)
    secrets = [s for s in sent if len(s) >= 6 and s not in ("newbie", "新人")]
    assert [s for s in secrets if s in stored] == []


# ---- reading: GET audit ----------------------------------------------------------------------------

def put(company, user=None, at=None, kind="user", target=None, code=200, route="user/update/1"):
    return models.AuditEntry.create(at=at or models.utcnow(), user_id=user and user.id,
                                    login_name=user.login_name if user else "", company_id=company.id,
                                    route=route, kind=kind, target_id=target, code=code)


@pytest.mark.gen_test
async def test_the_list_answers_entries_newest_first(client, admin, company):
    first = put(company, admin, target=5, at=datetime.datetime(2026, 3, 1, 8, 30))
    second = put(company, admin, kind="product", target=6, code=302)
    body = await client.get(AUDIT, admin)
    assert body["code"] == 200 and body["data"]["data_count"] == 2
    rows = body["data"]["ret_data"]
    assert [r["id"] for r in rows] == [second.id, first.id]
    # stored in UTC, shown in stats.timezone (the tests': Asia/Shanghai, UTC+8)
    assert rows[1] == {"id": first.id, "time": "2026-03-01 16:30:00", "user_id": admin.id, "login_name": "boss",
                       "company_id": company.id, "route": "user/update/1", "kind": "user", "kind_text": "用户",
                       "target_id": 5, "code": 200, "address": "", "request_id": ""}


@pytest.mark.gen_test
async def test_filters(client, admin, staff, company, other, make_user):
    outsider = make_user(other, login_name="outsider")
    day = datetime.datetime(2026, 5, 10, 15, 59, 59)  # UTC: 23:59:59 in Asia/Shanghai, whose days the filters are
    a = put(company, admin, kind="user", target=7, at=day)
    b = put(company, staff, kind="product", target=7, at=day + datetime.timedelta(seconds=1))
    c = put(company, staff, kind="product", target=8, at=day + datetime.timedelta(days=3))
    d = put(other, outsider, kind="role", target=9, at=day)

    async def ids(**filters):
        body = await client.get(AUDIT, admin, **filters)
        assert body["code"] == 200, body
        return sorted(r["id"] for r in body["data"]["ret_data"])

    assert await ids() == sorted([a.id, b.id, c.id, d.id])  # administrators: every company
    assert await ids(company_id=other.id) == [d.id]
    assert await ids(actor_id=staff.id) == [b.id, c.id]
    assert await ids(login_name="boss") == [a.id]
    assert await ids(kind="product") == [b.id, c.id]
    assert await ids(target_id=7) == [a.id, b.id]
    assert await ids(kind="product", target_id=7) == [b.id]
    assert await ids(start_date="2026-05-11") == [b.id, c.id]
    assert await ids(end_date="2026-05-10") == [a.id, d.id]
    assert await ids(start_date="2026-05-11", end_date="2026-05-11") == [b.id]


@pytest.mark.gen_test
@pytest.mark.parametrize("filters, code, field", [
    ({"kind": "password"}, 303, "kind"),
    ({"target_id": "x"}, 303, "target_id"),
    ({"start_date": "2026-13-01"}, 303, "start_date"),
    ({"start_date": "2026-05-02", "end_date": "2026-05-01"}, 303, "end_date"),
    ({"company_id": 99999}, 302, None),
    ({"length": -1}, 303, "length"),
])
async def test_bad_filters_are_refused(client, admin, filters, code, field):
    body = await client.get(AUDIT, admin, **filters)
    assert body["code"] == code
    if field:
        assert list(body["data"]) == [field]


@pytest.mark.gen_test
async def test_only_administrators_read_the_trail(client, staff, company):
    put(company, staff)
    body = await client.get(AUDIT, staff)
    assert body["code"] == 404 and body["data"] == {}


@pytest.mark.gen_test
async def test_paging_never_loads_everything(client, admin, company):
    models.AuditEntry.insert_many([{"at": models.utcnow(), "company_id": company.id, "route": "r", "kind": "user",
                                    "code": 200, "target_id": n} for n in range(1, 1002)]).execute()
    first = await client.get(AUDIT, admin)
    assert len(first["data"]["ret_data"]) == 10 and first["data"]["data_count"] == 1001
    assert [r["target_id"] for r in first["data"]["ret_data"]] == list(range(1001, 991, -1))
    last = await client.get(AUDIT, admin, current_page=101, length=10)
    assert [r["target_id"] for r in last["data"]["ret_data"]] == [1]
    capped = await client.get(AUDIT, admin, length=5000)
    assert len(capped["data"]["ret_data"]) == 100
    everything = await client.get(AUDIT, admin, length=0)
    assert everything["code"] == 303 and list(everything["data"]) == ["length"]
    wide = await client.get(AUDIT, admin, start_date="0001-01-01", end_date="9999-12-31", current_page=2)
    assert len(wide["data"]["ret_data"]) == 10 and wide["data"]["data_count"] == 1001


# ---- retention -------------------------------------------------------------------------------------

def test_entries_older_than_the_retention_are_pruned(database, company, settings, monkeypatch):
    monkeypatch.setattr(audit, "PRUNE_BATCH", 2)  # several batches
    days = settings["audit"]["retention_days"]
    now = models.utcnow()
    old = [put(company, at=now - datetime.timedelta(days=days, hours=h)) for h in range(1, 6)]
    kept = [put(company, at=now - datetime.timedelta(days=days - 1)), put(company, at=now)]
    assert audit.prune(settings) == len(old)
    assert [e.id for e in entries()] == [e.id for e in kept]
    assert audit.prune(settings) == 0


def test_retention_is_a_setting_checked_at_start(tmp_path):
    import config
    path = tmp_path / "c.yaml"
    path.write_text("audit:\n  retention_days: 0\n")
    with pytest.raises(config.ConfigError, match="audit.retention_days"):
        config.load(path, environ={})


# ---- password resets are throttled like logins -----------------------------------------------------

@pytest.mark.gen_test
async def test_password_resets_are_throttled(client, admin, staff, settings):
    limit = settings["auth"]["login_max_failures"]
    refused = await client.post(ADMIN + "user/reset_password/99999", admin)  # refused: does not count
    assert refused["code"] == 302
    for n in range(limit):
        body = await client.post(ADMIN + f"user/reset_password/{staff.id}", admin, data={"new_password": f"pw-{n}xx"})
        assert body["code"] == 200, (n, body)
    body = await client.post(ADMIN + f"user/reset_password/{staff.id}", admin, data={"new_password": "one-more"})
    assert body == {"code": 401, "msg": auth.RESET_THROTTLED, "data": {}}
    assert (await client.post(LOGIN, data={"username": "staff", "password": "one-more"}))["code"] == 401
    assert (await client.post(LOGIN, data={"username": "staff", "password": f"pw-{limit - 1}xx"}))["code"] == 200
    assert models.AuditEntry.select().where(models.AuditEntry.code == 401,
                                            models.AuditEntry.route.startswith("user/reset_password")).count() == 1


@pytest.mark.gen_test
async def test_reset_throttle_does_not_touch_the_login_budget(client, admin, staff, settings):
    for n in range(settings["auth"]["login_max_failures"]):
        await client.post(ADMIN + f"user/reset_password/{staff.id}", admin, data={"new_password": f"pw-{n}xx"})
    assert (await client.post(LOGIN, data={"username": "boss", "password": "secret123"}))["code"] == 200


# ---- the command line ------------------------------------------------------------------------------

def trail_of(database_file):
    conn = sqlite3.connect(database_file)
    rows = conn.execute("SELECT route, code, kind, login_name FROM audit_entry ORDER BY id").fetchall()
    conn.close()
    assert all(login.startswith("os:") for *_, login in rows)  # the account that ran the command
    return [row[:3] for row in rows]


def test_command_line_writes_are_recorded(tmp_path):
    from tests.test_backup import run_cli
    assert run_cli(tmp_path, "demo", "--data-dir", "site").returncode == 0
    conn = sqlite3.connect(tmp_path / "site" / "zhugeleida.db")
    (user_id,) = conn.execute("SELECT id FROM user WHERE login_name = 'zhangsan'").fetchone()
    conn.close()
    good, bad = tmp_path / "good.jsonl", tmp_path / "bad.jsonl"
    good.write_text(json.dumps({"kind": "access", "user_id": user_id, "openid": "o1", "action": 1}) + "\n")
    bad.write_text(json.dumps({"kind": "nonsense", "user_id": user_id, "openid": "o1"}) + "\n")
    assert run_cli(tmp_path, "import-activity", str(good), "--data-dir", "site").returncode == 0
    assert run_cli(tmp_path, "import-activity", str(bad), "--data-dir", "site").returncode == 1
    taken = run_cli(tmp_path, "create-admin", "--company", "x", "--login", "admin", "--password", "long-secret",
                    "--data-dir", "site")
    assert taken.returncode == 1
    assert run_cli(tmp_path, "backup", "site.tar.gz", "--data-dir", "site").returncode == 0
    assert run_cli(tmp_path, "restore", "site.tar.gz", "--data-dir", "copy").returncode == 0
    before_backup = [("cli demo", 200, "data"), ("cli import-activity", 200, "data"),
                     ("cli import-activity", 303, "data"), ("cli create-admin", 300, "user")]
    assert trail_of(tmp_path / "site" / "zhugeleida.db") == [*before_backup, ("cli backup", 200, "data")]
    assert trail_of(tmp_path / "copy" / "zhugeleida.db") == [*before_backup, ("cli restore", 200, "data")]
