"""Companies management (issue 5): administrators only; names unique; the quota never below the enabled
users; a company with users cannot go, one without goes with its products, pictures and history."""
import re

import pytest

import models
from services import companies, users
from tests.conftest import row_counts
from tests.test_management_users import customer_history, picture, product

LIST = "/zhugeleida/admin/company"
ADD = "/zhugeleida/admin/company/add/0"
UPDATE = "/zhugeleida/admin/company/update/{}"
DELETE = "/zhugeleida/admin/company/delete/{}"
ROW_KEYS = {"id", "company_id", "name", "mingpian_available_num", "expire_date", "create_date", "user_count",
            "corp_id", "tongxunlu_secret"}


@pytest.fixture
def a(make_company):
    return make_company("甲公司", quota=5, expire_date="2027-06-30")


@pytest.fixture
def b(make_company):
    return make_company("乙公司", quota=2)


@pytest.fixture
def admin(make_user, a):
    return make_user(a, role=models.ROLE_ADMIN, login_name="boss")


@pytest.fixture
def staff(make_user, b):
    return make_user(b, login_name="staff")


def company_form(**fields):
    return {"name": "丙公司", "mingpian_available_num": 10, "expire_date": "2027-12-31", **fields}


def stored(company_id):
    company = models.Company.get_or_none(models.Company.id == company_id)
    if company is None:
        return None
    expire_date = company.expire_date.isoformat() if company.expire_date else None
    return company.name, company.mingpian_available_num, expire_date


@pytest.mark.gen_test
async def test_list_shows_companies_newest_first_with_user_counts(client, admin, staff, a, b, make_user):
    make_user(a)
    body = await client.get(LIST, admin)
    assert body["code"] == 200 and body["data"]["data_count"] == 2
    rows = body["data"]["ret_data"]
    assert all(set(r) == ROW_KEYS for r in rows)
    assert [(r["id"], r["name"], r["mingpian_available_num"], r["user_count"]) for r in rows] == [
        (b.id, "乙公司", 2, 1), (a.id, "甲公司", 5, 2)]
    assert rows[1]["expire_date"] == "2027-06-30" and rows[0]["expire_date"] is None
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", rows[0]["create_date"])


@pytest.mark.gen_test
async def test_list_filters_by_name_and_pages(client, admin, make_company):
    for i in range(24):
        make_company(f"测试{i:02}有限公司")
    found = await client.get(LIST, admin, name="测试2")
    assert [r["name"] for r in found["data"]["ret_data"]] == [f"测试2{i}有限公司" for i in (3, 2, 1, 0)]
    first = await client.get(LIST, admin)
    assert len(first["data"]["ret_data"]) == 10 and first["data"]["data_count"] == 25  # the old server's 10
    second = await client.get(LIST, admin, current_page=2, length=20)
    assert [r["name"] for r in second["data"]["ret_data"]] == [f"测试0{i}有限公司" for i in (3, 2, 1, 0)] + ["甲公司"]


@pytest.mark.gen_test
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
async def test_administrator_adds_edits_and_deletes_a_company(client, admin, as_json):
    async def post(path, form):
        return await (client.post(path, admin, json_body=form) if as_json else client.post(path, admin, data=form))

    added = await post(ADD, company_form())
    assert added["code"] == 200 and added["msg"] == "添加成功"
    company_id = added["data"]["id"]
    assert stored(company_id) == ("丙公司", 10, "2027-12-31")
    edited = await post(UPDATE.format(company_id), company_form(name="丁公司", mingpian_available_num=0,
                                                                 expire_date="2028-01-01"))
    assert edited == {"code": 200, "msg": "修改成功", "data": {}}
    assert stored(company_id) == ("丁公司", 0, "2028-01-01")
    assert (await post(UPDATE.format(company_id), company_form(name="丁公司")))["code"] == 200  # own name
    assert (await post(UPDATE.format(company_id), company_form(name="丁公司", expire_date="")))["code"] == 200
    assert stored(company_id) == ("丁公司", 10, None)  # blank: no expiry date
    assert await post(DELETE.format(company_id), {}) == {"code": 200, "msg": "删除成功", "data": {}}
    assert stored(company_id) is None


@pytest.mark.gen_test
async def test_a_new_company_takes_users_up_to_its_quota(client, admin):
    added = await client.post(ADD, admin, data=company_form(mingpian_available_num=1))
    company_id = added["data"]["id"]
    form = {"username": "员工", "password": "secret123", "role_id": 2, "company_id": company_id}
    assert (await client.post("/zhugeleida/admin/user/add/0", admin, data={**form, "login_name": "u1"}))["code"] == 200
    full = await client.post("/zhugeleida/admin/user/add/0", admin, data={**form, "login_name": "u2"})
    assert full["code"] == 303


@pytest.mark.gen_test
async def test_ordinary_user_may_not_touch_companies(client, staff, b):
    before = row_counts()
    assert (await client.get(LIST, staff))["code"] == 404
    for path in (ADD, UPDATE.format(b.id), DELETE.format(b.id)):
        body = await client.post(path, staff, data=company_form(name="乙公司改"))
        assert body == {"code": 404, "msg": "非法请求", "data": {}}, path
    assert row_counts() == before and stored(b.id)[0] == "乙公司"


@pytest.mark.gen_test
async def test_refusals_change_nothing(client, admin, staff, a, b, make_user):
    make_user(b, login_name="second")  # company B: 2 users enabled
    cases = [
        (ADD, company_form(name="甲公司"), 300, None),
        (ADD, company_form(expire_date="2027-02-30"), 303, "expire_date"),
        (ADD, company_form(mingpian_available_num=-1), 303, "mingpian_available_num"),
        (ADD, company_form(name=""), 303, "name"),
        (ADD, company_form(mingpian_available_num="十"), 303, "mingpian_available_num"),
        (UPDATE.format(b.id), company_form(name="甲公司"), 300, None),
        (UPDATE.format(b.id), company_form(name="乙公司", mingpian_available_num=1), 303, "mingpian_available_num"),
        (UPDATE.format(99999), company_form(), 302, None),
        (UPDATE.format("-3"), company_form(), 302, None),
        (DELETE.format(b.id), {}, 304, None),
        (DELETE.format(a.id), {}, 304, None),  # the caller's own company: it has users
        (DELETE.format(99999), {}, 302, None),
    ]
    before = row_counts()
    companies_before = list(models.Company.select().order_by(models.Company.id).dicts())
    for path, form, code, field in cases:
        body = await client.post(path, admin, data=form)
        assert body["code"] == code, (path, form, body)
        if field:
            assert set(body["data"]) == {field}
    assert row_counts() == before
    assert list(models.Company.select().order_by(models.Company.id).dicts()) == companies_before


@pytest.mark.gen_test
async def test_quota_may_drop_to_the_enabled_users_and_disabled_users_do_not_count(client, admin, b, staff,
                                                                                   make_user):
    make_user(b, status=models.USER_DISABLED)
    body = await client.post(UPDATE.format(b.id), admin, data=company_form(name="乙公司", mingpian_available_num=1))
    assert body["code"] == 200 and stored(b.id)[1] == 1


@pytest.mark.gen_test
async def test_deleting_a_company_without_users_takes_its_products_pictures_and_history(client, admin, staff, b,
                                                                                        app):
    storage = app.settings["storage"]
    company_product = product(b, staff, models.PRODUCT_COMPANY)
    cover = picture(storage, b, staff, company_product, "b-company")
    models.ProductArticle.create(product=company_product, title="标题")
    personal = product(b, staff, models.PRODUCT_PERSONAL)
    personal_cover = picture(storage, b, staff, personal, "b-personal")
    loose = picture(storage, b, staff, None, "b-loose")
    customer_history(b, staff)
    models.DailyStats.create(company=b, day="2026-11-01", browse_num=3)
    assert (await client.post(DELETE.format(b.id), admin))["code"] == 304
    assert (await client.post(f"/zhugeleida/admin/user/delete/{staff.id}", admin))["code"] == 200
    assert not personal_cover.exists() and cover.exists()

    body = await client.post(DELETE.format(b.id), admin)
    assert body["code"] == 200 and stored(b.id) is None
    assert not cover.exists() and not loose.exists()
    for model in (models.Product, models.ProductArticle, models.ProductPicture, models.Customer,
                  models.CustomerBinding, models.FollowUp, models.AccessEvent, models.DailyStats):
        assert model.select().count() == 0, model.__name__
    assert models.User.get_by_id(admin.id).company_id != b.id


@pytest.mark.gen_test
async def test_deleting_one_company_leaves_the_others_rows(client, admin, a, b, app, make_company):
    storage = app.settings["storage"]
    kept = picture(storage, a, admin, product(a, admin, models.PRODUCT_COMPANY), "a-company")
    empty = make_company("空公司")
    before = row_counts()
    assert (await client.post(DELETE.format(empty.id), admin))["code"] == 200
    assert row_counts() == {**before, "Company": before["Company"] - 1}
    assert kept.exists()


@pytest.mark.gen_test
async def test_an_add_waits_for_a_concurrent_add_of_the_same_name(client, admin, while_held):
    form = company_form()
    body = await while_held(client.post(ADD, admin, data=form),
                            lambda: companies.add_company({**form, "expire_date": None}))
    assert body["code"] == 300
    assert models.Company.select().where(models.Company.name == "丙公司").count() == 1


@pytest.mark.gen_test
async def test_lowering_the_quota_waits_for_a_concurrent_enable(client, admin, b, staff, make_user, while_held):
    off = make_user(b, status=models.USER_DISABLED)
    body = await while_held(
        client.post(UPDATE.format(b.id), admin, data=company_form(name="乙公司", mingpian_available_num=1)),
        lambda: users.set_status(admin, off.id, models.USER_ENABLED))
    assert body["code"] == 303 and stored(b.id)[1] == 2


@pytest.mark.gen_test
async def test_a_delete_waits_for_a_user_added_meanwhile(client, admin, make_company, settings, while_held):
    empty = make_company("空公司")
    body = await while_held(
        client.post(DELETE.format(empty.id), admin),
        lambda: users.create_user(empty.id, 2, "late", "晚到", "secret123", settings["auth"]["scrypt_n"]))
    assert body["code"] == 304 and stored(empty.id) is not None
