"""Roles management (issue 5): administrators only; names unique; the built-in roles stay; a role users
hold cannot go."""
import re

import pytest

import models
from services import roles, users
from tests.conftest import row_counts

LIST = "/zhugeleida/admin/role"
ADD = "/zhugeleida/admin/role/add/0"
UPDATE = "/zhugeleida/admin/role/update/{}"
DELETE = "/zhugeleida/admin/role/delete/{}"
USERS = "/zhugeleida/admin/user"
USER_ADD = "/zhugeleida/admin/user/add/0"


@pytest.fixture
def staff(make_user, make_company):
    return make_user(make_company("乙公司"), login_name="staff")


@pytest.fixture
def sales(database):
    return models.Role.create(name="销售")


def names():
    return [r.name for r in models.Role.select().order_by(models.Role.id)]


@pytest.mark.gen_test
async def test_list_shows_roles_with_their_user_counts(client, admin, staff, sales, make_user, company):
    make_user(company, role=sales)
    body = await client.get(LIST, admin)
    assert body["code"] == 200 and body["data"]["data_count"] == 3
    rows = body["data"]["ret_data"]
    assert [(r["id"], r["name"], r["user_count"]) for r in rows] == [(1, "管理员", 1), (2, "普通用户", 1),
                                                                     (sales.id, "销售", 1)]
    assert all(set(r) == {"id", "role_id", "name", "create_date", "user_count"} for r in rows)
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", rows[2]["create_date"])


@pytest.mark.gen_test
async def test_list_filters_by_name_and_pages(client, admin):
    for i in range(30):
        models.Role.create(name=f"角色{i:02}")
    found = await client.get(LIST, admin, name="角色1")
    assert [r["name"] for r in found["data"]["ret_data"]] == [f"角色1{i}" for i in range(10)]
    assert found["data"]["data_count"] == 10
    first = await client.get(LIST, admin)
    assert len(first["data"]["ret_data"]) == 10 and first["data"]["data_count"] == 32  # the old server's 10
    last = await client.get(LIST, admin, current_page=4, length=10)
    assert [r["name"] for r in last["data"]["ret_data"]] == ["角色28", "角色29"]


@pytest.mark.gen_test
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
async def test_administrator_adds_renames_and_deletes_a_role(client, admin, as_json):
    async def post(path, form):
        return await (client.post(path, admin, json_body=form) if as_json else client.post(path, admin, data=form))

    added = await post(ADD, {"name": "客服"})
    assert added["code"] == 200 and added["msg"] == "添加成功"
    role_id = added["data"]["id"]
    assert names() == ["管理员", "普通用户", "客服"]
    assert await post(UPDATE.format(role_id), {"name": "售后"}) == {"code": 200, "msg": "修改成功", "data": {}}
    assert (await post(UPDATE.format(role_id), {"name": "售后"}))["code"] == 200  # its own name is not taken
    assert names() == ["管理员", "普通用户", "售后"]
    assert await post(DELETE.format(role_id), {}) == {"code": 200, "msg": "删除成功", "data": {}}
    assert names() == ["管理员", "普通用户"]


@pytest.mark.gen_test
async def test_ordinary_user_may_not_touch_roles(client, staff, sales):
    before = row_counts()
    assert (await client.get(LIST, staff))["code"] == 404
    for path in (ADD, UPDATE.format(sales.id), DELETE.format(sales.id)):
        body = await client.post(path, staff, data={"name": "新角色"})
        assert body == {"code": 404, "msg": "非法请求", "data": {}}, path
    assert row_counts() == before and names() == ["管理员", "普通用户", "销售"]


@pytest.mark.gen_test
async def test_refusals_change_nothing(client, admin, sales, make_user, company):
    make_user(company, role=sales)
    spare = models.Role.create(name="空闲")
    cases = [
        (ADD, {"name": "销售"}, 300),
        (ADD, {"name": "管理员"}, 300),
        (ADD, {"name": " "}, 303),
        (ADD, {"name": "x" * 65}, 303),
        (UPDATE.format(spare.id), {"name": "销售"}, 300),
        (UPDATE.format(99999), {"name": "新名"}, 302),
        (UPDATE.format("abc"), {"name": "新名"}, 302),
        (UPDATE.format(spare.id), {}, 303),
        (UPDATE.format(1), {"name": "超级管理员"}, 404),
        (UPDATE.format(2), {"name": "员工"}, 404),
        (DELETE.format(1), {}, 404),
        (DELETE.format(2), {}, 404),
        (DELETE.format(sales.id), {}, 304),
        (DELETE.format(99999), {}, 302),
    ]
    before = row_counts()
    for path, form, code in cases:
        body = await client.post(path, admin, data=form)
        assert body["code"] == code, (path, form, body)
    assert row_counts() == before and names() == ["管理员", "普通用户", "销售", "空闲"]


@pytest.mark.gen_test
async def test_a_role_held_by_a_user_of_another_company_cannot_go_until_they_change_role(client, admin, staff,
                                                                                         sales):
    models.User.update(role=sales).where(models.User.id == staff.id).execute()
    assert (await client.post(DELETE.format(sales.id), admin))["code"] == 304
    form = {"login_name": "staff", "username": staff.username, "role_id": 2}
    assert (await client.post(f"/zhugeleida/admin/user/update/{staff.id}", admin, data=form))["code"] == 200
    assert (await client.post(DELETE.format(sales.id), admin))["code"] == 200


@pytest.mark.gen_test
async def test_a_custom_role_acts_as_an_ordinary_user(client, admin, sales, company):
    form = {"login_name": "seller", "username": "销售员", "password": "secret123", "role_id": sales.id}
    added = await client.post(USER_ADD, admin, data=form)
    assert added["code"] == 200
    seller = models.User.get_by_id(added["data"]["id"])
    listed = await client.get(USERS, seller)
    assert listed["code"] == 200 and {r["role_name"] for r in listed["data"]["ret_data"]} == {"管理员", "销售"}
    assert (await client.get(LIST, seller))["code"] == 404
    assert (await client.post(USER_ADD, seller, data={**form, "login_name": "x"}))["code"] == 404


@pytest.mark.gen_test
async def test_an_add_waits_for_a_concurrent_add_of_the_same_name(client, admin, while_held):
    body = await while_held(client.post(ADD, admin, data={"name": "客服"}), lambda: roles.add_role("客服"))
    assert body["code"] == 300 and names() == ["管理员", "普通用户", "客服"]


@pytest.mark.gen_test
async def test_a_delete_waits_for_a_user_given_the_role_meanwhile(client, admin, sales, company, settings, while_held):
    def held_write():
        users.create_user(company.id, sales.id, "late", "晚到", "secret123", settings["auth"]["scrypt_n"])

    body = await while_held(client.post(DELETE.format(sales.id), admin), held_write)
    assert body["code"] == 304 and "销售" in names()
