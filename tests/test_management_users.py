"""Users management (issue 5): list, add/0, update/{id}, delete/{id} and update_status/{id}, for both roles
and across two companies; each refusal leaves the database as it was."""
import re

import pytest
from playhouse.test_utils import count_queries

import models
from services import companies, roles, users
from tests.conftest import row_counts, signed_params

LOGIN = "/zhugeleida/admin/login"
LIST = "/zhugeleida/admin/user"
ADD = "/zhugeleida/admin/user/add/0"
UPDATE = "/zhugeleida/admin/user/update/{}"
DELETE = "/zhugeleida/admin/user/delete/{}"
STATUS = "/zhugeleida/admin/user/update_status/{}"

DATETIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
LIST_FILTERS = {"username": None, "role_id": None, "status": None, "position": None, "company_id": None,
                "current_page": 1}
ROW_KEYS = {"id", "login_name", "username", "role_id", "role_name", "status", "status_text", "position", "phone",
            "company_id", "company_name", "create_date", "last_login_date", "company", "avatar", "mingpian_phone"}


class World:
    """Company A (quota 5) with an administrator and a salesman; company B (quota 2) with one user."""

    def __init__(self, make_company, make_user):
        self.a = make_company("甲公司", quota=5)
        self.b = make_company("乙公司", quota=2)
        self.admin = make_user(self.a, role=models.ROLE_ADMIN, login_name="boss", username="张聪",
                               position="总经理")
        self.staff = make_user(self.a, login_name="staff", username="王小明", position="销售经理", phone="13800000000")
        self.other = make_user(self.b, login_name="other", username="李四", position="销售经理")


@pytest.fixture
def w(make_company, make_user):
    return World(make_company, make_user)


def reload(user):
    return models.User.get_or_none(models.User.id == user.id)


def new_user(**fields):
    return {"login_name": "newbie", "username": "新人", "password": "secret123", "role_id": 2,
            "position": "销售顾问", "phone": "13900000000", **fields}


def profile(user, **fields):
    return {"login_name": user.login_name, "username": user.username, "role_id": user.role_id,
            "position": user.position, "phone": user.phone, **fields}


# ---- list -----------------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_administrator_lists_every_company_newest_first(client, w):
    body = await client.get(LIST, w.admin)
    assert body["code"] == 200 and body["msg"] == "查询成功"
    rows = body["data"]["ret_data"]
    assert body["data"]["data_count"] == 3
    assert [r["id"] for r in rows] == [w.other.id, w.staff.id, w.admin.id]
    assert all(set(r) == ROW_KEYS for r in rows)
    staff = rows[1]
    assert {k: staff[k] for k in ROW_KEYS - {"create_date"}} == {
        "id": w.staff.id, "login_name": "staff", "username": "王小明", "role_id": 2, "role_name": "普通用户",
        "status": 1, "status_text": "启用", "position": "销售经理", "phone": "13800000000",
        "company_id": w.a.id, "company_name": "甲公司", "last_login_date": None, "company": "甲公司", "avatar": "",
        "mingpian_phone": ""}
    assert DATETIME.match(staff["create_date"])


@pytest.mark.gen_test
async def test_last_login_date_is_shown_after_a_login(client, w):
    assert (await client.post(LOGIN, data={"username": "staff", "password": "secret123"}))["code"] == 200
    rows = (await client.get(LIST, w.admin, username="王小明"))["data"]["ret_data"]
    assert DATETIME.match(rows[0]["last_login_date"])


@pytest.mark.gen_test
async def test_administrator_filters_by_company(client, w):
    body = await client.get(LIST, w.admin, company_id=w.b.id)
    assert [r["login_name"] for r in body["data"]["ret_data"]] == ["other"]
    assert body["data"]["data_count"] == 1


@pytest.mark.gen_test
async def test_ordinary_user_sees_only_their_own_company(client, w):
    for params in ({}, {"company_id": w.a.id}):
        body = await client.get(LIST, w.staff, **params)
        assert body["code"] == 200
        assert {r["login_name"] for r in body["data"]["ret_data"]} == {"boss", "staff"}
        assert body["data"]["data_count"] == 2
    # another company does not exist for them, as everywhere a company may be named (docs/api.md 1.9)
    assert await client.get(LIST, w.staff, company_id=w.b.id) == {"code": 302, "msg": "公司不存在", "data": {}}
    body = await client.get(LIST, w.other)
    assert [r["login_name"] for r in body["data"]["ret_data"]] == ["other"]


@pytest.mark.gen_test
async def test_list_filters(client, w, make_user):
    make_user(w.a, login_name="off", username="王大锤", position="销售顾问", status=models.USER_DISABLED)

    async def logins(**params):
        body = await client.get(LIST, w.admin, **params)
        assert body["code"] == 200
        assert body["data"]["data_count"] == len(body["data"]["ret_data"])
        return sorted(r["login_name"] for r in body["data"]["ret_data"])

    assert await logins(username="王") == ["off", "staff"]
    assert await logins(username="小明") == ["staff"]
    assert await logins(username="%") == []  # wildcards are literal
    assert await logins(role_id=1) == ["boss"]
    assert await logins(role_id=2, company_id=w.a.id) == ["off", "staff"]
    assert await logins(status=2) == ["off"]
    assert await logins(status=1, company_id=w.a.id) == ["boss", "staff"]
    assert await logins(position="销售经理") == ["other", "staff"]
    assert await logins(position="销售") == []  # position is an exact match
    assert await logins(username="王", status=1) == ["staff"]


@pytest.mark.gen_test
async def test_list_paging_counts_before_the_page_and_caps_length(client, w, make_user):
    for i in range(105):
        make_user(w.a, login_name=f"bulk{i:03}", username=f"批量{i:03}")
    total = 108
    first = await client.get(LIST, w.admin)
    assert len(first["data"]["ret_data"]) == 10 and first["data"]["data_count"] == total  # the old server's 10
    assert first["data"]["ret_data"][0]["login_name"] == "bulk104"
    page3 = await client.get(LIST, w.admin, current_page=3, length=50)
    assert [r["login_name"] for r in page3["data"]["ret_data"]] == [
        "bulk004", "bulk003", "bulk002", "bulk001", "bulk000", "other", "staff", "boss"]
    capped = await client.get(LIST, w.admin, length=1000)
    assert len(capped["data"]["ret_data"]) == 100 and capped["data"]["data_count"] == total
    beyond = await client.get(LIST, w.admin, current_page=2**31 - 1, length=100)
    assert beyond["code"] == 200 and beyond["data"] == {"ret_data": [], "data_count": total}


@pytest.mark.gen_test
@pytest.mark.parametrize("params, field", [
    ({"status": 3}, "status"),
    ({"role_id": "x"}, "role_id"),
    ({"current_page": 0}, "current_page"),
    ({"length": -1}, "length"),
    ({"company_id": "abc"}, "company_id"),
])
async def test_list_bad_filters_are_303_naming_the_field(client, w, params, field):
    body = await client.get(LIST, w.admin, **params)
    assert body["code"] == 303 and set(body["data"]) == {field}


# ---- add ------------------------------------------------------------------------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
async def test_administrator_adds_a_user_to_their_company(client, w, as_json):
    form = new_user()
    body = await (client.post(ADD, w.admin, json_body=form) if as_json else client.post(ADD, w.admin, data=form))
    assert body["code"] == 200 and body["msg"] == "添加成功"
    user = models.User.get_by_id(body["data"]["id"])
    assert (user.company_id, user.role_id, user.login_name, user.username, user.position, user.phone,
            user.status) == (w.a.id, 2, "newbie", "新人", "销售顾问", "13900000000", models.USER_ENABLED)
    login = await client.post(LOGIN, data={"username": "newbie", "password": "secret123"})
    assert login["code"] == 200 and login["data"]["company_name"] == "甲公司"


@pytest.mark.gen_test
async def test_administrator_adds_to_another_company_by_id(client, w):
    body = await client.post(ADD, w.admin, data=new_user(company_id=w.b.id, status=2))
    assert body["code"] == 200
    user = models.User.get_by_id(body["data"]["id"])
    assert user.company_id == w.b.id and user.status == models.USER_DISABLED
    listed = await client.get(LIST, w.other)
    assert "newbie" in {r["login_name"] for r in listed["data"]["ret_data"]}


@pytest.mark.gen_test
async def test_optional_fields_default_to_empty_and_enabled(client, w):
    body = await client.post(ADD, w.admin, data={"login_name": "min", "username": "最少", "password": "secret123",
                                                 "role_id": 1})
    assert body["code"] == 200
    user = models.User.get_by_id(body["data"]["id"])
    assert (user.position, user.phone, user.status, user.role_id) == ("", "", models.USER_ENABLED, 1)


@pytest.mark.gen_test
@pytest.mark.parametrize("form, code, field", [
    (new_user(login_name="staff"), 300, None),
    (new_user(login_name="other"), 300, None),  # login names are unique across companies
    (new_user(company_id=99999), 302, None),
    (new_user(role_id=99999), 302, None),
    (new_user(password="12345"), 303, "password"),
    (new_user(status=3), 303, "status"),
    (new_user(login_name="x" * 65), 303, "login_name"),
    ({"login_name": "a"}, 303, None),
], ids=["taken", "taken-elsewhere", "unknown-company", "unknown-role", "short-password", "bad-status",
        "long-login", "missing-fields"])
async def test_add_refusals_change_nothing(client, w, form, code, field):
    before = row_counts()
    body = await client.post(ADD, w.admin, data=form)
    assert body["code"] == code
    if field:
        assert set(body["data"]) == {field}
    if form == {"login_name": "a"}:
        assert set(body["data"]) == {"username", "password", "role_id"}
    assert row_counts() == before


@pytest.mark.gen_test
async def test_ordinary_user_may_not_add_update_or_delete(client, w):
    before = row_counts()
    for path, form in [(ADD, new_user()), (UPDATE.format(w.staff.id), profile(w.staff, username="改")),
                       (DELETE.format(w.admin.id), {}), (UPDATE.format(w.other.id), profile(w.other)),
                       (STATUS.format(w.admin.id), {"status": 2})]:
        body = await client.post(path, w.staff, data=form)
        assert body == {"code": 404, "msg": "非法请求", "data": {}}, path
    assert row_counts() == before
    assert reload(w.staff).username == "王小明" and reload(w.admin).status == models.USER_ENABLED


@pytest.mark.gen_test
async def test_adding_an_enabled_user_over_the_quota_is_303(client, w, make_user):
    make_user(w.b, login_name="second")  # company B: 2 of 2 cards used
    before = row_counts()
    body = await client.post(ADD, w.admin, data=new_user(company_id=w.b.id))
    assert body["code"] == 303 and "名片数量 2" in body["msg"] and "status" in body["data"]
    assert row_counts() == before
    disabled = await client.post(ADD, w.admin, data=new_user(company_id=w.b.id, status=2))
    assert disabled["code"] == 200  # a disabled user takes no card


@pytest.mark.gen_test
async def test_an_add_waits_for_a_concurrent_add_and_then_respects_the_quota(client, w, settings, while_held):
    # company B has one card left; another administrator's add of an enabled user is not yet committed
    def held_write():
        users.create_user(w.b.id, 2, "first", "先到", "secret123", settings["auth"]["scrypt_n"])

    body = await while_held(client.post(ADD, w.admin, data=new_user(company_id=w.b.id)), held_write)
    assert body["code"] == 303
    assert models.User.select().where(models.User.company == w.b.id, models.User.status == 1).count() == 2


@pytest.mark.gen_test
async def test_an_add_waits_for_a_concurrent_add_of_the_same_login_name(client, w, settings, while_held):
    def held_write():
        users.create_user(w.b.id, 2, "newbie", "先到", "secret123", settings["auth"]["scrypt_n"], status=2)

    body = await while_held(client.post(ADD, w.admin, data=new_user(company_id=w.a.id)), held_write)
    assert body["code"] == 300
    assert models.User.select().where(models.User.login_name == "newbie").count() == 1


@pytest.mark.gen_test
async def test_enabling_waits_for_a_concurrent_enable(client, w, make_user, while_held):
    first = make_user(w.b, login_name="off1", status=models.USER_DISABLED)
    second = make_user(w.b, login_name="off2", status=models.USER_DISABLED)
    body = await while_held(client.post(STATUS.format(second.id), w.admin, data={"status": 1}),
                            lambda: users.set_status(w.admin, first.id, models.USER_ENABLED))
    assert body["code"] == 303 and reload(second).status == models.USER_DISABLED


# ---- update ---------------------------------------------------------------------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
async def test_administrator_updates_a_user(client, w, as_json):
    form = {"login_name": "xiaoming", "username": "王明", "role_id": 1, "position": "主管", "phone": "", "status": 2}
    path = UPDATE.format(w.staff.id)
    body = await (client.post(path, w.admin, json_body=form) if as_json else client.post(path, w.admin, data=form))
    assert body == {"code": 200, "msg": "修改成功", "data": {}}
    user = reload(w.staff)
    assert (user.login_name, user.username, user.role_id, user.position, user.phone, user.status) == (
        "xiaoming", "王明", 1, "主管", "", models.USER_DISABLED)
    assert user.password_hash == w.staff.password_hash and user.company_id == w.a.id


@pytest.mark.gen_test
async def test_update_without_status_keeps_it_and_works_across_companies(client, w, make_user):
    off = make_user(w.b, login_name="off", status=models.USER_DISABLED)
    body = await client.post(UPDATE.format(off.id), w.admin, data=profile(off, username="改名"))
    assert body["code"] == 200
    assert reload(off).username == "改名" and reload(off).status == models.USER_DISABLED


@pytest.mark.gen_test
async def test_administrator_may_edit_their_own_profile(client, w):
    body = await client.post(UPDATE.format(w.admin.id), w.admin, data=profile(w.admin, username="张总", status=1))
    assert body["code"] == 200 and reload(w.admin).username == "张总"


@pytest.mark.gen_test
async def test_update_refusals_change_nothing(client, w, make_user):
    make_user(w.b, login_name="second")  # company B full
    off = make_user(w.b, login_name="off", status=models.USER_DISABLED)
    cases = [
        (UPDATE.format(w.staff.id), profile(w.staff, login_name="other"), 300),
        (UPDATE.format(99999), profile(w.staff), 302),
        (UPDATE.format("abc"), profile(w.staff), 302),
        (UPDATE.format(w.staff.id), profile(w.staff, role_id=99999), 302),
        (UPDATE.format(off.id), profile(off, status=1), 303),
        (UPDATE.format(w.staff.id), profile(w.staff, username=""), 303),
        (UPDATE.format(w.admin.id), profile(w.admin, status=2), 305),
        (UPDATE.format(w.admin.id), profile(w.admin, role_id=2), 305),
    ]
    before = row_counts()
    users_before = list(models.User.select().order_by(models.User.id).dicts())
    for path, form, code in cases:
        body = await client.post(path, w.admin, data=form)
        assert body["code"] == code, (path, form, body)
    assert row_counts() == before
    assert list(models.User.select().order_by(models.User.id).dicts()) == users_before


@pytest.mark.gen_test
async def test_enabling_by_update_counts_against_the_quota(client, w, make_user):
    off = make_user(w.b, login_name="off", status=models.USER_DISABLED)
    body = await client.post(UPDATE.format(off.id), w.admin, data=profile(off, status=1))
    assert body["code"] == 200 and reload(off).status == models.USER_ENABLED  # 2 of 2 now
    again = await client.post(UPDATE.format(off.id), w.admin, data=profile(off, status=1, username="x"))
    assert again["code"] == 200  # already enabled: not counted twice


# ---- delete ---------------------------------------------------------------------------------------

def picture(storage, company, user, product=None, name="p"):
    url = f"statics/zhugeleida/imgs/qiyeweixin/product/{name}.jpg"
    path = storage.path_for(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"jpeg")
    models.ProductPicture.create(company=company, user=user, product=product, url=url)
    return path


def product(company, user, product_type):
    return models.Product.create(company=company, user=user, product_type=product_type, name="门票", price="50",
                                 reason="好")


def customer_history(company, user):
    customer = models.Customer.create(company=company, openid=f"openid-{user.id}")
    now = models.utcnow()
    models.CustomerBinding.create(company=company, customer=customer, user=user, happened_at=now)
    models.FollowUp.create(company=company, customer=customer, user=user, content="回访", happened_at=now)
    models.AccessEvent.create(company=company, customer=customer, user=user, action=1, happened_at=now)


@pytest.mark.gen_test
async def test_deleting_a_user_keeps_what_the_company_owns(client, w, app):
    storage = app.settings["storage"]
    mine = product(w.a, w.staff, models.PRODUCT_PERSONAL)
    mine_cover = picture(storage, w.a, w.staff, mine, "mine")
    models.ProductArticle.create(product=mine, title="标题")
    loose = picture(storage, w.a, w.staff, None, "loose")
    company_product = product(w.a, w.staff, models.PRODUCT_COMPANY)
    company_cover = picture(storage, w.a, w.staff, company_product, "company")
    colleague_product = product(w.a, w.admin, models.PRODUCT_PERSONAL)
    customer_history(w.a, w.staff)

    body = await client.post(DELETE.format(w.staff.id), w.admin)
    assert body == {"code": 200, "msg": "删除成功", "data": {}}
    assert reload(w.staff) is None
    assert not mine_cover.exists() and not loose.exists() and company_cover.exists()
    assert models.Product.get_or_none(models.Product.id == mine.id) is None
    assert models.ProductArticle.select().count() == 0
    kept = models.Product.get_by_id(company_product.id)
    assert kept.user_id is None and models.Product.get_or_none(models.Product.id == colleague_product.id)
    assert [(p.url.rsplit("/", 1)[1], p.user_id) for p in models.ProductPicture.select()] == [("company.jpg", None)]
    for model in (models.CustomerBinding, models.FollowUp, models.AccessEvent):
        rows = list(model.select())
        assert len(rows) == 1 and rows[0].user_id is None and rows[0].company_id == w.a.id
    assert models.Customer.select().count() == 1


@pytest.mark.gen_test
async def test_administrator_deletes_a_user_of_another_company(client, w):
    body = await client.post(DELETE.format(w.other.id), w.admin)
    assert body["code"] == 200 and reload(w.other) is None
    assert models.Company.get_or_none(models.Company.id == w.b.id) is not None


@pytest.mark.gen_test
@pytest.mark.parametrize("target, code", [("self", 305), ("99999", 302), ("abc", 302), ("0", 302)])
async def test_delete_refusals_change_nothing(client, w, target, code):
    before = row_counts()
    body = await client.post(DELETE.format(w.admin.id if target == "self" else target), w.admin)
    assert body["code"] == code
    assert row_counts() == before


# ---- update_status, and a disabled user's token ---------------------------------------------------

@pytest.mark.gen_test
async def test_update_status_refusals_change_nothing(client, w, make_user):
    make_user(w.b, login_name="second")
    off = make_user(w.b, login_name="off", status=models.USER_DISABLED)
    before = row_counts()
    statuses = {u.id: u.status for u in models.User.select()}
    assert (await client.post(STATUS.format(w.admin.id), w.staff, data={"status": 2}))["code"] == 404
    assert (await client.post(STATUS.format(w.admin.id), w.admin, data={"status": 2}))["code"] == 305
    over = await client.post(STATUS.format(off.id), w.admin, data={"status": 1})
    assert over["code"] == 303 and "名片数量 2" in over["msg"]
    assert (await client.post(STATUS.format(99999), w.admin, data={"status": 2}))["code"] == 302
    assert (await client.post(STATUS.format("x1"), w.admin, data={"status": 2}))["code"] == 302
    assert row_counts() == before
    assert {u.id: u.status for u in models.User.select()} == statuses


@pytest.mark.gen_test
async def test_update_status_answers_the_new_status(client, w):
    for status, text in ((2, "未启用"), (1, "启用")):
        body = await client.post(STATUS.format(w.staff.id), w.admin, data={"status": status})
        assert body == {"code": 200, "msg": "修改成功",
                        "data": {"user_id": w.staff.id, "status": status, "status_text": text}}
        assert reload(w.staff).status == status


@pytest.mark.gen_test
@pytest.mark.parametrize("how", ["update", "update_status"])
async def test_a_disabled_users_token_stops_working_at_once(client, w, how):
    assert (await client.get(LIST, w.staff))["code"] == 200
    if how == "update":
        body = await client.post(UPDATE.format(w.staff.id), w.admin, data=profile(w.staff, status=2))
    else:
        body = await client.post(STATUS.format(w.staff.id), w.admin, data={"status": 2})
    assert body["code"] == 200
    assert await client.get(LIST, w.staff) == {"code": 306, "msg": "账户未启用", "data": {}}
    assert (await client.post(LOGIN, data={"username": "staff", "password": "secret123"}))["code"] == 306
    assert (await client.post(STATUS.format(w.staff.id), w.admin, data={"status": 1}))["code"] == 200
    assert (await client.get(LIST, w.staff))["code"] == 200  # the same token works again once enabled


@pytest.mark.gen_test
async def test_wrong_methods_are_402_and_do_nothing(client, w):
    before = row_counts()
    for method, path in [("GET", ADD), ("GET", DELETE.format(w.staff.id)), ("DELETE", DELETE.format(w.staff.id)),
                         ("POST", LIST), ("PUT", UPDATE.format(w.staff.id))]:
        status, body = await client.request(method, path, signed_params(w.admin),
                                            raw=b"" if method in ("POST", "PUT") else None)
        assert (status, body["code"]) == (200, 402), (method, path)
    assert row_counts() == before


@pytest.mark.parametrize("list_page", [
    lambda w, length, settings: users.list_users(w.admin, {**LIST_FILTERS, "length": length}, settings),
    lambda w, length, settings: roles.list_roles({"name": None, "current_page": 1, "length": length}, settings),
    lambda w, length, settings: companies.list_companies({"name": None, "current_page": 1, "length": length},
                                                         settings),
], ids=["users", "roles", "companies"])
def test_lists_make_no_query_per_row(w, make_user, make_company, list_page, settings):
    for i in range(30):
        make_user(make_company(), role=models.Role.create(name=f"角色{i}"))
    for length in (1, 30):
        with count_queries() as counter:
            page = list_page(w, length, settings)
        assert len(page["ret_data"]) == length and page["data_count"] >= 30
        assert counter.count == 2  # the page, then the total
