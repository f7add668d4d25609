"""An administrator resets a user's password: the user's old password and token stop working, and login
asks them to choose their own (is_reset_password) until they do."""
import pytest

import models
from tests.conftest import row_counts

LOGIN = "/zhugeleida/admin/login"
PASSWORD = "/zhugeleida/admin/modify_password"
RESET = "/zhugeleida/admin/user/reset_password/{}"
USERS = "/zhugeleida/admin/user"


async def log_in(client, name, password):
    return await client.post(LOGIN, data={"username": name, "password": password})


def stored(user):
    return models.User.get_by_id(user.id)


@pytest.mark.gen_test
async def test_a_reset_password_replaces_the_old_one_and_the_token(client, admin, staff):
    assert (await client.get(USERS, staff))["code"] == 200
    body = await client.post(RESET.format(staff.id), admin, data={"new_password": "given-by-boss"})
    assert body == {"code": 200, "msg": "重置密码成功", "data": {"user_id": staff.id}}
    assert (await client.get(USERS, staff))["code"] == 400  # the token signed in before is gone
    assert (await log_in(client, "staff", "secret123"))["code"] == 401
    first = await log_in(client, "staff", "given-by-boss")
    assert first["code"] == 200 and first["data"]["is_reset_password"] is True
    again = await log_in(client, "staff", "given-by-boss")
    assert again["data"]["is_reset_password"] is True  # until the user chooses their own

    changed = await client.post(PASSWORD, (staff.id, first["data"]["token"]),
                                data={"old_password": "given-by-boss", "new_password": "my-own-choice"})
    assert changed["code"] == 200
    after = await log_in(client, "staff", "my-own-choice")
    assert after["code"] == 200 and after["data"]["is_reset_password"] is False


@pytest.mark.gen_test
async def test_without_a_password_one_is_generated_and_shown_once(client, admin, staff):
    body = await client.post(RESET.format(staff.id), admin)
    assert body["code"] == 200 and set(body["data"]) == {"user_id", "new_password"}
    generated = body["data"]["new_password"]
    assert len(generated) == 12 and generated not in stored(staff).password_hash
    login = await log_in(client, "staff", generated)
    assert login["code"] == 200 and login["data"]["is_reset_password"] is True
    second = await client.post(RESET.format(staff.id), admin)
    assert second["data"]["new_password"] != generated


@pytest.mark.gen_test
async def test_an_ordinary_login_is_not_asked_to_change(client, staff):
    body = await log_in(client, "staff", "secret123")
    assert body["code"] == 200 and body["data"]["is_reset_password"] is False


@pytest.mark.gen_test
@pytest.mark.parametrize("who, target, form, code, field", [
    ("admin", "self", {}, 305, None),
    ("staff", "admin", {}, 404, None),
    ("admin", "nobody", {}, 302, None),
    ("admin", "staff", {"new_password": "12345"}, 303, "new_password"),
    ("admin", "staff", {"new_password": "x" * 129}, 303, "new_password"),
])
async def test_refused_resets_change_nothing(client, admin, staff, who, target, form, code, field):
    users = {"admin": admin, "staff": staff, "self": admin}
    target_id = 99999 if target == "nobody" else users[target].id
    before = row_counts(), {u.id: (u.password_hash, u.token) for u in models.User.select()}
    body = await client.post(RESET.format(target_id), users[who], data=form)
    assert body["code"] == code
    if field:
        assert list(body["data"]) == [field]
    assert (row_counts(), {u.id: (u.password_hash, u.token) for u in models.User.select()}) == before


@pytest.mark.gen_test
async def test_an_administrator_resets_a_user_of_another_company(client, admin, make_company, make_user):
    elsewhere = make_user(make_company("别家公司"), login_name="far")
    body = await client.post(RESET.format(elsewhere.id), admin, data={"new_password": "new-secret"})
    assert body["code"] == 200 and (await log_in(client, "far", "new-secret"))["code"] == 200
