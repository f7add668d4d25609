"""A signature authorizes one write: a POST is done once per (user, timestamp) whatever its path's spelling,
a retry of the very same call gets the first answer without the work running twice, a call that failed
spends nothing, a signature seen on a GET or an upload cannot authorize a POST; signatures never reach the
log; and each signed call makes at most one trip through the executor."""
import asyncio
import json
import logging
import time

import peewee as pw
import pytest
import tornado.web

import models
from handlers.base import BaseHandler
from services import auth, calls, products
from services.scope import MEMBER
from tests.conftest import signed_params

STATUS = "/zhugeleida/admin/product/change_status/{}"
ALIAS = "/zhugeleida/qiyeweixin/product/change_status/{}"
BATCH = "/zhugeleida/admin/activity/batch"
ROLE_ADD = "/zhugeleida/admin/role/add/0"
USER_ADD = "/zhugeleida/admin/user/add/0"
USED = {"code": 400, "msg": "请求已使用过", "data": {}}


@pytest.fixture
def company(make_company):
    return make_company("本公司")


@pytest.fixture
def admin(make_user, company):
    return make_user(company, role=models.ROLE_ADMIN)


@pytest.fixture
def product(company):
    return models.Product.create(company=company, product_type=models.PRODUCT_COMPANY, name="产品", price="1",
                                 reason="理由")


def shelf(product):
    return models.Product.get_by_id(product.id).status


def put_back(product):
    models.Product.update(status=models.PRODUCT_ON_SHELF).where(models.Product.id == product.id).execute()


def variants(product_id):
    """Every other spelling of change_status/{id}."""
    text = str(product_id)
    return [STATUS.format(text) + "/", STATUS.format("0" + text), STATUS.format("00" + text + "/"),
            STATUS.format("".join(f"%{ord(c):02X}" for c in text)), ALIAS.format(text), ALIAS.format("0" + text)]


# ---- one signature, one write ------------------------------------------------------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("path", range(6), ids=["slash", "padded", "padded-slash", "percent", "alias",
                                                "alias-padded"])
async def test_a_path_variant_cannot_replay_a_post_signature(client, admin, product, path):
    params = signed_params(admin)
    first = await client.post(STATUS.format(product.id), data={"status": 2}, params=params)
    assert first["code"] == 200 and shelf(product) == models.PRODUCT_OFF_SHELF
    put_back(product)
    variant = variants(product.id)[path]
    # the attacker's replay: another body under the spent signature
    assert await client.post(variant, data={"status": 1, "x": 1}, params=params) == USED
    # the same body again: the same call, retried; answered, not done again. The 企业微信 alias is another
    # operation (its own status rules): refused like any other call under the spent signature.
    again = await client.post(variant, data={"status": 2}, params=params)
    assert again == (USED if "qiyeweixin" in variant else first)
    assert shelf(product) == models.PRODUCT_ON_SHELF


@pytest.mark.gen_test
async def test_add_with_trailing_slash_under_a_spent_signature_adds_nothing(client, admin):
    params = signed_params(admin)
    assert (await client.post(ROLE_ADD, data={"name": "销售"}, params=params))["code"] == 200
    assert await client.post(ROLE_ADD + "/", data={"name": "黑客"}, params=params) == USED
    assert await client.post(USER_ADD, data={"login_name": "evil", "username": "evil", "role_id": 1,
                                             "password": "evil-password"}, params=params) == USED
    assert [r.name for r in models.Role.select().where(models.Role.id > 2)] == ["销售"]
    assert models.User.get_or_none(models.User.login_name == "evil") is None


@pytest.mark.gen_test
@pytest.mark.parametrize("seen_on", ["get", "upload"])
async def test_a_signature_seen_on_a_get_or_an_upload_cannot_authorize_a_post(client, admin, seen_on):
    params = signed_params(admin)
    if seen_on == "get":
        assert (await client.request("GET", "/zhugeleida/admin/home_page", params))[1]["code"] == 200
    else:
        query = {**params, "img_name": "a.png", "chunk": 0}
        status, body = await client.request("POST", "/zhugeleida/admin/product/add_picture/0", query, raw=b"abc",
                                            headers={"Content-Type": "application/octet-stream"})
        assert body["code"] == 200
    body = {"login_name": "evil", "username": "evil", "role_id": 1, "password": "evil-password"}
    assert await client.post(USER_ADD, data=body, params=params) == USED
    assert await client.post(ROLE_ADD, data={"name": "黑客"}, params=params) == USED
    assert models.User.get_or_none(models.User.login_name == "evil") is None
    assert models.Role.select().where(models.Role.name == "黑客").count() == 0


@pytest.mark.gen_test
async def test_a_get_signature_seen_by_another_process_cannot_authorize_a_post(client, app, admin, settings):
    params = signed_params(admin)
    assert (await client.request("GET", "/zhugeleida/admin/home_page", params))[1]["code"] == 200
    assert app.settings["signatures"].flush(settings) == 1
    app.settings["signatures"] = calls.SeenSignatures()  # this process forgets: only the database knows
    assert await client.post(ROLE_ADD, data={"name": "黑客"}, params=params) == USED
    assert models.Role.select().where(models.Role.name == "黑客").count() == 0


# ---- retries -----------------------------------------------------------------------------------------

def batch(user, openid="o1"):
    return {"records": [{"kind": "binding", "user_id": user.id, "openid": openid, "source": 2},
                        {"kind": "follow_up", "user_id": user.id, "openid": openid, "content": "回访"},
                        {"kind": "access", "user_id": user.id, "openid": openid, "action": 1}]}


def stored():
    return (models.CustomerBinding.select().count(), models.FollowUp.select().count(),
            models.AccessEvent.select().count())


@pytest.mark.gen_test
async def test_a_retry_after_a_lost_answer_gets_the_first_answer_and_stores_once(client, admin):
    params = signed_params(admin)
    first = await client.post(BATCH, json_body=batch(admin), params=params)  # its answer "lost"
    assert first == {"code": 200, "msg": "添加成功", "data": {"binding_num": 1, "follow_num": 1, "access_num": 1,
                                                              "new_num": 3, "known_num": 0}}
    assert await client.post(BATCH, json_body=batch(admin), params=params) == first
    assert stored() == (1, 1, 1)


@pytest.mark.gen_test
async def test_retries_racing_the_first_call_do_the_work_once(client, admin):
    params = signed_params(admin)
    answers = await asyncio.gather(*[client.post(BATCH, json_body=batch(admin), params=params) for _ in range(4)])
    assert answers[0]["code"] == 200 and answers == [answers[0]] * 4
    assert stored() == (1, 1, 1)


@pytest.mark.gen_test
async def test_a_retry_with_another_body_is_refused(client, admin):
    params = signed_params(admin)
    assert (await client.post(BATCH, json_body=batch(admin), params=params))["code"] == 200
    assert await client.post(BATCH, json_body=batch(admin, "o2"), params=params) == USED
    assert await client.post(BATCH, json_body=batch(admin), params={**params, "extra": "1"}) == USED
    assert stored() == (1, 1, 1)


@pytest.mark.gen_test
async def test_a_call_that_failed_does_not_spend_its_signature(client, admin, make_user, company):
    make_user(company, login_name="taken")
    params = signed_params(admin)
    user = {"username": "新人", "role_id": 2, "password": "secret123"}
    assert (await client.post(USER_ADD, data={**user, "login_name": "taken"}, params=params))["code"] == 300
    assert (await client.post(USER_ADD, data={**user, "login_name": "newcomer", "password": "123"},
                              params=params))["code"] == 303
    added = await client.post(USER_ADD, data={**user, "login_name": "newcomer"}, params=params)
    assert added["code"] == 200 and models.User.get_or_none(models.User.login_name == "newcomer") is not None


# ---- the refusal order is kept: signature, role, then the form ----------------------------------------

@pytest.mark.gen_test
async def test_a_bad_form_with_a_bad_signature_is_400_and_from_a_non_administrator_404(client, admin, make_user,
                                                                                      company):
    staff = make_user(company)
    unsigned = {"rand_str": "0" * 32, "timestamp": str(int(time.time() * 1000)), "user_id": str(admin.id)}
    assert (await client.post(ROLE_ADD, data={}, params=unsigned))["code"] == 400
    assert (await client.post(ROLE_ADD, staff, data={}))["code"] == 404
    assert (await client.post(ROLE_ADD, admin, data={}))["code"] == 303


# ---- the log ------------------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_the_log_never_contains_a_signature(client, admin, product, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    sent = []

    def params():
        sent.append(signed_params(admin))
        return sent[-1]

    await client.request("GET", "/zhugeleida/admin/product/product_list", {**params(), "product_type": 1})
    await client.post(STATUS.format(product.id), data={"status": 2}, params=params())
    await client.post(STATUS.format(product.id), data={"status": 2}, params={**sent[-1], "rand_str": "f" * 32})
    await client.request("GET", "/zhugeleida/admin/no_such_path", params())

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(products, "get_product", broken)
    status, body = await client.request("GET", "/zhugeleida/admin/product/product_single",
                                        {**params(), "product_id": product.id})
    assert status == 500 and body["data"]["request_id"] in caplog.text

    def refused_by_tornado(*args, **kwargs):  # Tornado's own warning names the request
        raise tornado.web.HTTPError(400, "refused here")

    monkeypatch.setattr(products, "get_product", refused_by_tornado)
    await client.request("GET", "/zhugeleida/admin/product/product_single", {**params(), "product_id": product.id})
    assert "refused here" in caplog.text
    assert "/zhugeleida/admin/product/product_single" in caplog.text
    for p in sent:
        assert p["rand_str"] not in caplog.text
    assert "f" * 32 not in caplog.text


class ForgetfulHandler(BaseHandler):
    """A signed handler that answers without call(), so without checking the signature."""

    access = MEMBER
    async def get(self):
        self.reply({"secret": 1})


@pytest.mark.gen_test
async def test_a_signed_handler_cannot_answer_without_checking_the_signature(client, app):
    app.add_handlers(".*", [(r"/forgetful", ForgetfulHandler)])
    status, body = await client.request("GET", "/forgetful")
    assert status == 500 and "secret" not in body["data"]


# ---- one trip off the loop -----------------------------------------------------------------------------

@pytest.fixture
def trips(app, monkeypatch):
    workers = app.settings["executor"]
    count = []
    submit = workers.submit_async

    def counted(fn, *args, **kwargs):
        count.append(fn)
        return submit(fn, *args, **kwargs)

    monkeypatch.setattr(workers, "submit_async", counted)
    return count


@pytest.mark.gen_test
async def test_each_signed_call_makes_at_most_one_trip(client, admin, product, trips):
    sqlite = isinstance(models.db.obj, pw.SqliteDatabase)
    for path, query, short in [("product/product_list", {"product_type": 1}, True),
                               ("product/product_single", {"product_id": product.id}, True),
                               ("role", {}, True), ("user", {}, True), ("company", {}, True),
                               ("home_page", {}, False), ("home_page/acount_data", {}, False)]:
        trips.clear()
        assert (await client.get(f"/zhugeleida/admin/{path}", admin, **query))["code"] == 200, path
        assert len(trips) == (0 if sqlite and short else 1), path  # a short read on SQLite runs on the loop
    trips.clear()
    assert (await client.post(STATUS.format(product.id), admin, data={"status": 2}))["code"] == 200
    assert len(trips) == 1


# ---- the table: pruned, and an older database upgraded ---------------------------------------------------

def test_prune_forgets_signatures_outside_the_skew_window(database, settings):
    now_ms = int(time.time() * 1000)
    skew_ms = settings["auth"]["max_skew_seconds"] * 1000
    models.UsedSignature.insert_many([(1, now_ms - skew_ms - 5000, ""), (1, now_ms - skew_ms + 5000, ""),
                                      (1, now_ms + skew_ms, "")],
                                     fields=["user_id", "timestamp", "fingerprint"]).as_rowcount().execute()
    assert auth.prune_used_signatures(settings) == 1
    assert models.UsedSignature.select().count() == 2


def test_flush_writes_each_noted_signature_once_and_drops_expired_ones(database, settings):
    seen = calls.SeenSignatures()
    now_ms = int(time.time() * 1000)
    seen.note((1, now_ms))
    seen.note((1, now_ms))
    seen.note((2, now_ms - 1000 * settings["auth"]["max_skew_seconds"] - 1000))
    assert seen.flush(settings) == 1 and len(seen) == 0
    seen.note((1, now_ms))
    assert seen.flush(settings) == 1  # already there: ignored, no error
    assert list(models.UsedSignature.select(models.UsedSignature.user_id).tuples()) == [(1,)]


class OldUsedSignature(models.BaseModel):
    """The table as versions before signature_use made it."""
    user_id = pw.IntegerField()
    path = pw.CharField(max_length=255)
    timestamp = pw.BigIntegerField()
    rand_str = pw.CharField(max_length=32)

    class Meta:
        table_name = "used_signature"
        indexes = ((("user_id", "path", "timestamp", "rand_str"), True),)


@pytest.mark.gen_test
async def test_an_older_database_is_upgraded_and_works(client, admin, product, database):
    database.drop_tables([models.UsedSignature, OldUsedSignature], safe=True)
    database.create_tables([OldUsedSignature])
    OldUsedSignature.create(user_id=admin.id, path="/x", timestamp=1, rand_str="a" * 32)
    models.create_schema()
    assert "signature_use" in database.get_tables()
    params = signed_params(admin)
    first = await client.post(STATUS.format(product.id), data={"status": 2}, params=params)
    assert first["code"] == 200
    assert await client.post(STATUS.format(product.id) + "/", data={"status": 1}, params=params) == USED
    assert OldUsedSignature.select().count() == 1  # left as it was
    database.drop_tables([OldUsedSignature])


def test_stored_answer_is_the_json_the_first_call_answered(database):
    key = (1, int(time.time() * 1000))
    with models.db.atomic():
        assert calls._claim(key, "f1")
    models.UsedSignature.update(answer=json.dumps({"a": 1})).execute()
    assert calls._stored_answer(key, "f1") == {"a": 1}
    with pytest.raises(calls.TokenError):
        calls._stored_answer(key, "f2")


@pytest.mark.gen_test
async def test_a_write_waiting_for_this_process_s_writer_gives_up_as_sqlite_would(client, admin, settings):
    if not isinstance(models.db.obj, pw.SqliteDatabase):
        pytest.skip("the turn-taking lock is SQLite's")
    settings["database"]["busy_timeout_ms"] = 200
    with calls._SQLITE_WRITER:  # another spending call of this process, stuck
        answer = await client.post(BATCH, json_body=batch(admin), params=signed_params(admin))
    assert answer["code"] != 200 and stored() == (0, 0, 0)
    assert (await client.post(BATCH, json_body=batch(admin), params=signed_params(admin)))["code"] == 200
