"""Login, logout, password change and the signature check (docs/api.md sections 2 and 4)."""
import asyncio
import datetime
import hashlib
import time

import peewee as pw
import pytest
from playhouse.test_utils import count_queries

import models
from services import auth
from tests.conftest import row_counts, signed_params

LOGIN = "/zhugeleida/admin/login"
LOGOUT = "/zhugeleida/admin/logout"
PASSWORD = "/zhugeleida/admin/modify_password"
STATUS = "/zhugeleida/admin/user/update_status/{}"


def reload(user):
    return models.User.get_by_id(user.id)


@pytest.mark.gen_test
async def test_login_answers_token_and_profile(client, admin, company):
    body = await client.post(LOGIN, data={"username": "boss", "password": "secret123"})
    assert body["code"] == 200 and body["msg"] == "登录成功"
    data = body["data"]
    assert set(data) == {"token", "user_id", "username", "company_id", "company_name", "role_id", "role_name",
                         "avatar", "set_avatar", "last_login_date", "is_reset_password"}
    assert data["token"] == admin.token and len(data["token"]) == 32
    assert (data["user_id"], data["username"], data["company_id"], data["company_name"]) == (
        admin.id, "张聪", company.id, "北京合众多屏科技发展有限公司")
    assert (data["role_id"], data["role_name"]) == (1, "管理员")
    assert reload(admin).last_login_date is not None


@pytest.mark.gen_test
async def test_login_with_json_body_and_token_survives_second_login(client, admin):
    first = await client.post(LOGIN, json_body={"username": "boss", "password": "secret123"})
    second = await client.post(LOGIN, json_body={"username": "boss", "password": "secret123"})
    assert first["code"] == second["code"] == 200
    assert first["data"]["token"] == second["data"]["token"]
    assert second["data"]["last_login_date"] is not None  # the login before this one


@pytest.mark.gen_test
async def test_wrong_password_and_unknown_name_answer_alike(client, admin):
    wrong = await client.post(LOGIN, data={"username": "boss", "password": "nope"})
    unknown = await client.post(LOGIN, data={"username": "ghost", "password": "nope"})
    assert wrong == unknown == {"code": 401, "msg": "账号密码错误", "data": {}}


@pytest.mark.gen_test
async def test_login_missing_fields_is_303(client, admin):
    body = await client.post(LOGIN, data={"username": "boss"})
    assert body["code"] == 303 and set(body["data"]) == {"password"}


@pytest.mark.gen_test
async def test_disabled_account_cannot_log_in(client, make_user, company):
    make_user(company, login_name="gone", status=models.USER_DISABLED)
    body = await client.post(LOGIN, data={"username": "gone", "password": "secret123"})
    assert body["code"] == 306


@pytest.mark.gen_test
async def test_repeated_failures_are_throttled(client, admin, settings):
    for _ in range(settings["auth"]["login_max_failures"]):
        assert (await client.post(LOGIN, data={"username": "boss", "password": "bad"}))["code"] == 401
    body = await client.post(LOGIN, data={"username": "boss", "password": "secret123"})
    assert body["code"] == 401 and "次数过多" in body["msg"]


@pytest.mark.gen_test
async def test_legacy_md5_password_is_accepted_once_and_rehashed(client, admin):
    models.User.update(password_hash=hashlib.md5(b"oldpass").hexdigest()).where(
        models.User.id == admin.id).execute()
    body = await client.post(LOGIN, data={"username": "boss", "password": "oldpass"})
    assert body["code"] == 200
    assert reload(admin).password_hash.startswith("scrypt$")
    again = await client.post(LOGIN, data={"username": "boss", "password": "oldpass"})
    assert again["code"] == 200


# ---- the signature ----

async def status_call(client, admin, staff, params):
    return await client.post(STATUS.format(staff.id), data={"status": 2}, params=params)


@pytest.mark.gen_test
async def test_good_signature_is_accepted(client, admin, staff):
    body = await status_call(client, admin, staff, signed_params(admin))
    assert body["code"] == 200
    assert reload(staff).status == models.USER_DISABLED


@pytest.mark.gen_test
@pytest.mark.parametrize("tamper", [
    lambda p: {**p, "rand_str": "0" * 32},
    lambda p: {k: v for k, v in p.items() if k != "rand_str"},
    lambda p: {k: v for k, v in p.items() if k != "timestamp"},
    lambda p: {k: v for k, v in p.items() if k != "user_id"},
    lambda p: {**p, "user_id": "abc"},
    lambda p: {**p, "user_id": "99999"},
    lambda p: {**p, "user_id": "-1"},
    lambda p: {**p, "timestamp": "soon"},
], ids=["wrong-token", "no-rand_str", "no-timestamp", "no-user_id", "text-user_id", "unknown-user",
        "negative-user", "text-timestamp"])
async def test_bad_signatures_answer_400(client, admin, staff, tamper):
    before = row_counts()
    body = await status_call(client, admin, staff, tamper(signed_params(admin)))
    assert body == {"code": 400, "msg": "token异常", "data": {}}
    assert row_counts() == before and reload(staff).status == models.USER_ENABLED


def signed_at(user, offset_seconds):
    """A signature whose timestamp is `offset_seconds` away from now (negative: in the past)."""
    timestamp = str(int((time.time() + offset_seconds) * 1000))
    return {"timestamp": timestamp, "user_id": str(user.id),
            "rand_str": hashlib.md5(f"{timestamp}{user.token}".encode()).hexdigest()}


# The window is 300 s; 10 s either side of its edges leaves room for a slow machine between signing and checking.
@pytest.mark.gen_test
@pytest.mark.parametrize("offset_seconds", [-310, 310, -86400 * 365])
async def test_timestamp_outside_window_is_400(client, admin, staff, offset_seconds):
    body = await status_call(client, admin, staff, signed_at(admin, offset_seconds))
    assert body["code"] == 400
    assert reload(staff).status == models.USER_ENABLED


@pytest.mark.gen_test
@pytest.mark.parametrize("offset_seconds", [-290, 290])
async def test_timestamp_inside_window_is_accepted(client, admin, staff, offset_seconds):
    body = await status_call(client, admin, staff, signed_at(admin, offset_seconds))
    assert body["code"] == 200
    assert reload(staff).status == models.USER_DISABLED


@pytest.fixture
def one_second_window(settings):
    settings["auth"]["max_skew_seconds"] = 1


@pytest.mark.gen_test(timeout=20)
async def test_a_run_longer_than_the_skew_window_still_signs(one_second_window, client, admin):
    """The test client reads the clock at each signature, so a suite that runs longer than the window (here
    one second) keeps signing; the signature made before the window passed is refused by then."""
    early = signed_params(admin)
    assert (await client.request("GET", "/zhugeleida/admin/role", early))[1]["code"] == 200
    while time.time() <= int(early["timestamp"]) / 1000 + 1.1:  # the window has passed for `early`
        await asyncio.sleep(0.05)
    assert (await client.request("GET", "/zhugeleida/admin/role", early))[1]["code"] == 400
    assert (await client.get("/zhugeleida/admin/role", admin))["code"] == 200


@pytest.mark.gen_test
async def test_same_signed_post_twice_answers_the_first_answer_without_doing_it_again(client, admin, staff):
    params = signed_params(admin)
    first = await status_call(client, admin, staff, params)
    assert first["code"] == 200
    models.User.update(status=models.USER_ENABLED).where(models.User.id == staff.id).execute()
    assert await status_call(client, admin, staff, params) == first
    assert reload(staff).status == models.USER_ENABLED  # not disabled a second time


@pytest.mark.gen_test
async def test_same_signature_on_another_post_is_refused(client, admin, staff):
    params = signed_params(admin)
    assert (await status_call(client, admin, staff, params))["code"] == 200
    other = await client.post(STATUS.format(staff.id), data={"status": 1}, params=params)
    assert other == {"code": 400, "msg": "请求已使用过", "data": {}}
    assert reload(staff).status == models.USER_DISABLED


@pytest.mark.gen_test
async def test_same_signed_get_may_repeat(client, admin):
    params = signed_params(admin)
    first = await client.request("GET", "/zhugeleida/admin/modify_password", params)
    second = await client.request("GET", "/zhugeleida/admin/modify_password", params)
    assert first[1]["code"] == second[1]["code"] == 402  # signature fine, method wrong


@pytest.mark.gen_test
async def test_disabled_user_signed_call_is_306(client, admin, staff, make_user, company):
    models.User.update(status=models.USER_DISABLED).where(models.User.id == admin.id).execute()
    body = await status_call(client, admin, staff, signed_params(admin))
    assert body["code"] == 306


@pytest.mark.gen_test
async def test_token_stops_working_after_logout(client, admin, staff):
    assert (await client.post(LOGOUT, admin))["code"] == 200
    body = await status_call(client, admin, staff, signed_params(admin))
    assert body["code"] == 400
    fresh = reload(admin)
    assert fresh.token != admin.token
    assert (await status_call(client, fresh, staff, signed_params(fresh)))["code"] == 200


@pytest.mark.gen_test
async def test_password_change_replaces_token_and_password(client, admin, staff):
    body = await client.post(PASSWORD, admin, data={"old_password": "secret123", "new_password": "n3w-secret"})
    assert body["code"] == 200
    new_token = body["data"]["token"]
    assert new_token != admin.token
    assert (await status_call(client, admin, staff, signed_params(admin)))["code"] == 400
    assert (await status_call(client, admin, staff, signed_params((admin.id, new_token))))["code"] == 200
    login = await client.post(LOGIN, data={"username": "boss", "password": "n3w-secret"})
    assert login["code"] == 200 and login["data"]["token"] == new_token


@pytest.mark.gen_test
@pytest.mark.parametrize("form, field", [
    ({"old_password": "wrong", "new_password": "n3w-secret"}, "old_password"),
    ({"old_password": "secret123", "new_password": "short"}, "new_password"),
    ({"old_password": "secret123"}, "new_password"),
    ({"old_password": "secret123", "new_password": "x" * 129}, "new_password"),
])
async def test_password_change_refusals_change_nothing(client, admin, form, field):
    body = await client.post(PASSWORD, admin, data=form)
    assert body["code"] == 303 and field in body["data"]
    assert reload(admin).password_hash == admin.password_hash and reload(admin).token == admin.token


# ---- envelope, paths and methods ----

@pytest.mark.gen_test
async def test_unknown_path_is_http_404_with_envelope(client):
    status, body = await client.request("GET", "/zhugeleida/admin/nothing_here")
    assert status == 404 and body["code"] == 404


@pytest.mark.gen_test
async def test_wrong_method_is_402(client, admin):
    status, body = await client.request("GET", LOGIN)
    assert status == 200 and body == {"code": 402, "msg": "请求方式异常", "data": {}}


@pytest.mark.gen_test
async def test_trailing_slash_is_optional(client, admin):
    body = await client.post(LOGIN + "/", data={"username": "boss", "password": "secret123"})
    assert body["code"] == 200


@pytest.mark.gen_test
async def test_body_over_limit_is_413_envelope(client, admin, settings):
    big = b"x" * (settings["server"]["max_body_bytes"] + 1)
    status, body = await client.request("POST", LOGIN, raw=big,
                                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413 and body["code"] == 413


@pytest.mark.gen_test
async def test_malformed_json_body_is_301(client, admin):
    status, body = await client.request("POST", LOGIN, raw=b"{not json",
                                        headers={"Content-Type": "application/json"})
    assert body["code"] == 301


@pytest.mark.gen_test
async def test_every_response_has_a_request_id(client, admin):
    response = await client.http_client.fetch(client.base_url + "/nowhere", raise_error=False)
    assert len(response.headers["X-Request-Id"]) >= 8


# ---- what the throttle, the unknown-name check and the replay record must keep doing ----

async def fail_logins(client, settings, name="boss"):
    for _ in range(settings["auth"]["login_max_failures"]):
        assert (await client.post(LOGIN, data={"username": name, "password": "bad"}))["code"] == 401


@pytest.mark.gen_test
async def test_the_throttle_ends_with_its_window(client, admin, settings):
    await fail_logins(client, settings)
    assert "次数过多" in (await client.post(LOGIN, data={"username": "boss", "password": "secret123"}))["msg"]
    # The window passes: the failures are moved back by its length (waiting 300 s would make a slow test).
    window = datetime.timedelta(seconds=settings["auth"]["login_window_seconds"] + 1)
    for row in models.LoginThrottle.select():
        models.LoginThrottle.update(window_start=row.window_start - window).where(
            models.LoginThrottle.key == row.key).execute()
    assert (await client.post(LOGIN, data={"username": "boss", "password": "secret123"}))["code"] == 200


@pytest.mark.gen_test
async def test_a_successful_login_forgets_the_failures_before_it(client, admin, settings):
    below = settings["auth"]["login_max_failures"] - 1
    for _ in range(2):
        for _ in range(below):
            assert (await client.post(LOGIN, data={"username": "boss", "password": "bad"}))["code"] == 401
        assert (await client.post(LOGIN, data={"username": "boss", "password": "secret123"}))["code"] == 200


@pytest.mark.gen_test
async def test_an_unknown_name_costs_a_password_check_like_a_known_one(client, admin, settings, monkeypatch):
    checked = []
    original = auth.check_password
    monkeypatch.setattr(auth, "check_password", lambda password, stored: checked.append(stored)
                        or original(password, stored))
    await client.post(LOGIN, data={"username": "boss", "password": "nope"})
    await client.post(LOGIN, data={"username": "ghost", "password": "nope"})
    n = settings["auth"]["scrypt_n"]
    assert len(checked) == 2 and all(stored.startswith(f"scrypt${n}$") for stored in checked)


@pytest.mark.gen_test
async def test_a_body_of_exactly_the_limit_is_read(client, admin, settings):
    limit = settings["server"]["max_body_bytes"]
    form = b"username=boss&password=bad&pad="
    status, body = await client.request("POST", LOGIN, raw=form + b"x" * (limit - len(form)),
                                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, body["code"]) == (200, 401)


PRODUCT_LIST = "/zhugeleida/admin/product/product_list"


@pytest.mark.gen_test
async def test_a_signed_read_asked_again_costs_one_statement_until_a_write(client, staff):
    """On SQLite a signed read remembers its signer's row with its page, and one PRAGMA, read once for the
    whole call, says whether either changed; a logout (another connection's write) is seen at the next call."""
    assert (await client.get(PRODUCT_LIST, staff, product_type=1))["code"] == 200
    with count_queries() as counter:
        assert (await client.get(PRODUCT_LIST, staff, product_type=1))["code"] == 200
    assert counter.count == (1 if isinstance(models.db.obj, pw.SqliteDatabase) else 3)  # PG: signer, page, count
    assert (await client.post(LOGOUT, staff))["code"] == 200
    assert (await client.get(PRODUCT_LIST, staff, product_type=1))["code"] == 400
    assert (await client.get(PRODUCT_LIST, reload(staff), product_type=1))["code"] == 200


@pytest.mark.gen_test
async def test_a_disabled_account_is_refused_at_its_next_read(client, admin, staff):
    assert (await client.get(PRODUCT_LIST, staff, product_type=1))["code"] == 200
    body = await client.post(STATUS.format(staff.id), admin, data={"status": models.USER_DISABLED})
    assert body["code"] == 200
    assert (await client.get(PRODUCT_LIST, staff, product_type=1))["code"] == 306


def test_each_call_gets_its_own_copy_of_the_remembered_signer(staff):
    """A call that changes its caller in memory and then fails (nothing written, so nothing dropped from the
    remembered reads) must not hand the change to the next call."""
    first = auth._load_signer(staff.id)
    first.username, first.company.name = "改了没存", "也没存"
    again = auth._load_signer(staff.id)
    assert (again.username, again.company.name) == (staff.username, staff.company.name)
