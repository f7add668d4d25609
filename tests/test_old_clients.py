"""Existing clients work unchanged: each point of what the old server accepted and answered, driven as the
old clients drive it (they log in with a form, sign every call afresh, send their fields in the form body
and read the old keys)."""
import asyncio
import base64
import hashlib
import io
import itertools
import json
import re
import socket
import time
import urllib.parse

import pytest
from PIL import Image

import models
from services import chunk_stream
from services.errors import FormInvalid, TooLarge
from tests.conftest import row_counts, signed_params

BASE = "/zhugeleida/admin/"
ADD_PICTURE = BASE + "product/add_picture/0"
COMPLETE = BASE + "product/upload_complete/0"
PRODUCT_ADD = BASE + "product/add/0"
PRODUCT_LIST = BASE + "product/product_list"
ORIGIN = "http://old-admin.example:8080"

# Upload ids (the old clients' file timestamps), a little in the past and distinct for every upload.
_upload_ids = itertools.count(int(time.time() * 1000) - 100_000)


@pytest.fixture
def company(make_company):
    return make_company("北京春秋永乐文化发展有限公司", quota=20)


@pytest.fixture
def admin(make_user, company):
    return make_user(company, role=models.ROLE_ADMIN, login_name="admin", password="admin123", username="管理员")


@pytest.fixture
def staff(make_user, company):
    return make_user(company, login_name="staff", password="staff123", username="张三")


def jpeg(width=120, height=80):
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def form(*fields):
    """An urlencoded body with the fields in the given order, as `requests` encodes them."""
    return urllib.parse.urlencode(list(fields)).encode()


def multipart(*fields):
    boundary = "oldClientBoundary0xYz"
    lines = []
    for name, value in fields:
        lines += [f"--{boundary}".encode(), f'Content-Disposition: form-data; name="{name}"'.encode(), b"",
                  value if isinstance(value, bytes) else str(value).encode()]
    lines += [f"--{boundary}--".encode(), b""]
    return b"\r\n".join(lines), f"multipart/form-data; boundary={boundary}"


async def post_body(client, path, params, body, content_type="application/x-www-form-urlencoded", origin=None):
    headers = {"Content-Type": content_type}
    if origin:
        headers["Origin"] = origin
    return await client.request("POST", path, params, raw=body, headers=headers)


# ---- CORS --------------------------------------------------------------------------------------------

async def fetch(http_client, base_url, path, method="GET", headers=None, body=None):
    return await http_client.fetch(base_url + path, method=method, headers=headers or {}, body=body,
                                   raise_error=False, allow_nonstandard_methods=True)


@pytest.mark.parametrize("path", ["product/product_list", "product/update/7", "product/add_picture/0",
                                  "user/add/0", "login", "/zhugeleida/qiyeweixin/product/change_status/3"])
@pytest.mark.gen_test
async def test_preflight_is_answered_without_a_signature(http_client, base_url, path):
    path = path if path.startswith("/") else BASE + path
    before = row_counts()
    response = await fetch(http_client, base_url, path, "OPTIONS", {
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-request-id"})
    assert 200 <= response.code < 300
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert response.headers["Access-Control-Allow-Headers"] == "content-type, x-request-id"
    assert row_counts() == before


@pytest.mark.gen_test
async def test_every_answer_to_an_allowed_origin_can_be_read(http_client, base_url, admin, settings):
    query = urllib.parse.urlencode(signed_params(admin, product_type=1))
    bad = urllib.parse.urlencode({**signed_params(admin, product_type=1), "rand_str": "0" * 32})
    big = b"x" * (settings["server"]["max_body_bytes"] + 1)
    answers = [
        (await fetch(http_client, base_url, f"{PRODUCT_LIST}?{query}", headers={"Origin": ORIGIN}), 200, 200),
        (await fetch(http_client, base_url, f"{PRODUCT_LIST}?{bad}", headers={"Origin": ORIGIN}), 200, 400),
        (await fetch(http_client, base_url, BASE + "no/such/path", headers={"Origin": ORIGIN}), 404, 404),
        (await fetch(http_client, base_url, PRODUCT_ADD, "POST", {"Origin": ORIGIN}, big), 413, 413),
    ]
    for response, status, code in answers:
        assert (response.code, response.headers["Access-Control-Allow-Origin"]) == (status, ORIGIN)
        assert "Origin" in response.headers["Vary"] and json.loads(response.body)["code"] == code


@pytest.mark.gen_test
async def test_only_configured_origins_get_cors_headers(http_client, base_url, admin, settings):
    settings["server"]["cors_origins"] = f"https://admin.example.com {ORIGIN}"
    query = urllib.parse.urlencode(signed_params(admin, product_type=1))
    allowed = await fetch(http_client, base_url, f"{PRODUCT_LIST}?{query}", headers={"Origin": ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    for origin in ("https://evil.example.com", "null", "https://admin.example.com.evil.example"):
        other = await fetch(http_client, base_url, f"{PRODUCT_LIST}?{query}", headers={"Origin": origin})
        assert other.code == 200 and not any(h.startswith("Access-Control-") for h in other.headers)
        preflight = await fetch(http_client, base_url, PRODUCT_LIST, "OPTIONS", {
            "Origin": origin, "Access-Control-Request-Method": "GET"})
        assert not any(h.startswith("Access-Control-") for h in preflight.headers)


@pytest.mark.gen_test
async def test_the_console_keeps_its_content_security_policy(http_client, base_url):
    response = await fetch(http_client, base_url, "/", headers={"Origin": ORIGIN})
    assert response.code == 200 and "default-src 'self'" in response.headers["Content-Security-Policy"]


# ---- chunked upload as the old clients send it -----------------------------------------------------------

def chunk_fields(upload_id, index, img_name="photo.jpg"):
    return [("img_name", img_name), ("timestamp", str(upload_id)), ("chunk", str(index))]


def old_chunk(user, upload_id, index, data, layout):
    """(query, body, content type) of one chunk signed afresh, its fields in the body `layout` puts them."""
    encoded = base64.b64encode(data)
    fields = chunk_fields(upload_id, index)
    if layout == "fields-first":
        body, content_type = form(*fields, ("img_data", encoded)), "application/x-www-form-urlencoded"
    elif layout == "fields-last":
        body, content_type = form(("img_data", encoded), *fields), "application/x-www-form-urlencoded"
    elif layout == "fields-around":
        body, content_type = form(fields[0], ("img_data", encoded), *fields[1:]), \
            "application/x-www-form-urlencoded"
    else:
        body, content_type = multipart(("img_data", encoded), *fields)
    return signed_params(user), body, content_type


async def old_complete(client, user, upload_id, chunk_num, picture_type=1):
    body = form(("img_name", "photo.jpg"), ("timestamp", str(upload_id)), ("chunk_num", str(chunk_num)),
                ("picture_type", str(picture_type)))
    return await post_body(client, COMPLETE, signed_params(user), body)


@pytest.mark.parametrize("layout", ["fields-first", "fields-last", "fields-around", "multipart-last"])
@pytest.mark.gen_test
async def test_old_client_uploads_with_its_fields_in_the_body(client, staff, layout):
    data = jpeg()
    upload_id = next(_upload_ids)
    pieces = [data[:700], data[700:]]
    for index, piece in enumerate(pieces):
        status, answer = await post_body(client, ADD_PICTURE, *old_chunk(staff, upload_id, index, piece, layout))
        assert (status, answer["code"], answer["data"]) == (200, 200, {"chunk": index, "size": len(piece)})
    status, answer = await old_complete(client, staff, upload_id, len(pieces), picture_type=1)
    assert answer["code"] == 200, answer
    flat = answer["data"]
    assert flat["picture_type"] == 1 and flat["ret_data"] == {"picture_id": flat["picture_id"],
                                                              "picture_url": flat["picture_url"]}
    # what the old client then does with the flat keys
    added = await client.post(PRODUCT_ADD, staff, data={
        "product_type": 2, "name": "门票", "price": "228", "reason": "好看",
        "cover_picture_id": f"[{flat['picture_id']}]"})
    assert added["code"] == 200, added
    listed = await client.get(PRODUCT_LIST, staff, product_type=2)
    assert listed["data"]["ret_data"][0]["cover_picture"] == flat["picture_url"]


@pytest.mark.gen_test
async def test_one_upload_id_rule_for_both_calls(client, staff):
    """Chunks sent the document's way (the signing timestamp is the upload id) complete the old way (body
    timestamp, fresh signature), and the other way round: both calls find the same upload."""
    document_way = next(_upload_ids)
    params = {**signed_params(staff), "timestamp": str(document_way)}
    params["rand_str"] = hashlib.md5(f"{document_way}{staff.token}".encode()).hexdigest()
    status, answer = await client.request("POST", ADD_PICTURE, {**params, "img_name": "a.jpg", "chunk": 0},
                                          raw=jpeg(), headers={"Content-Type": "application/octet-stream"})
    assert answer["code"] == 200
    assert (await old_complete(client, staff, document_way, 1))[1]["code"] == 200

    old_way = next(_upload_ids)
    status, answer = await post_body(client, ADD_PICTURE, *old_chunk(staff, old_way, 0, jpeg(), "fields-last"))
    assert answer["code"] == 200
    signed_by_upload_id = {**params, "timestamp": str(old_way),
                           "rand_str": hashlib.md5(f"{old_way}{staff.token}".encode()).hexdigest()}
    status, answer = await client.request("POST", COMPLETE, {**signed_by_upload_id, "img_name": "photo.jpg",
                                                             "chunk_num": 1, "picture_type": 2})
    assert answer["code"] == 200 and answer["data"]["picture_type"] == 2


def signed_at(user, seconds_ago):
    timestamp = str(int((time.time() - seconds_ago) * 1000))
    return {"rand_str": hashlib.md5(f"{timestamp}{user.token}".encode()).hexdigest(), "timestamp": timestamp,
            "user_id": str(user.id)}


@pytest.mark.gen_test
async def test_a_freshly_signed_upload_call_is_an_ordinary_signed_call(client, staff, settings):
    """The upload calls' reuse and longer age hold only when the signing timestamp is the upload id."""
    skew = settings["auth"]["max_skew_seconds"]
    upload_id = next(_upload_ids)
    _, body, content_type = old_chunk(staff, upload_id, 0, jpeg(), "fields-last")
    # signed longer ago than the skew window (well within the upload expiry): refused, nothing kept
    status, answer = await post_body(client, ADD_PICTURE, signed_at(staff, skew + 60), body, content_type)
    assert (answer["code"], answer["msg"]) == (400, "时间戳已过期")
    assert (await old_complete(client, staff, upload_id, 1))[1]["code"] == 302  # no chunk was kept
    # one signature, two different chunks: the second is a replay
    params = signed_params(staff)
    assert (await post_body(client, ADD_PICTURE, params, body, content_type))[1]["code"] == 200
    _, second, _ = old_chunk(staff, upload_id, 1, b"more", "fields-last")
    assert (await post_body(client, ADD_PICTURE, params, second, content_type))[1]["code"] == 400
    status, answer = await post_body(client, COMPLETE, signed_at(staff, skew + 60), form(
        ("img_name", "photo.jpg"), ("timestamp", str(upload_id)), ("chunk_num", "1"), ("picture_type", "1")))
    assert (answer["code"], answer["msg"]) == (400, "时间戳已过期")
    assert (await old_complete(client, staff, upload_id, 1))[1]["code"] == 200


@pytest.mark.gen_test
async def test_bad_fields_in_the_body_are_303_naming_them_and_keep_nothing(client, staff, app):
    upload_id = next(_upload_ids)
    storage = app.settings["storage"]
    for fields, bad in [([("img_name", "../x.jpg"), ("timestamp", str(upload_id)), ("chunk", "0")], "img_name"),
                        ([("img_name", "a.jpg"), ("timestamp", "abc"), ("chunk", "0")], "timestamp"),
                        ([("img_name", "a.jpg"), ("timestamp", str(upload_id))], "chunk")]:
        body = form(("img_data", base64.b64encode(jpeg())), *fields)
        status, answer = await post_body(client, ADD_PICTURE, signed_params(staff), body)
        assert (status, answer["code"], list(answer["data"])) == (200, 303, [bad])
    assert storage.open_uploads(staff.id) == set()


def test_form_fields_around_img_data_survive_any_split():
    data = jpeg()
    encoded = base64.b64encode(data)
    for body, content_type in [
        (form(("img_name", "图片.jpg"), ("img_data", encoded), ("timestamp", "123"), ("chunk", "2")),
         "application/x-www-form-urlencoded"),
        (*multipart(("img_name", "图片.jpg"), ("img_data", encoded), ("timestamp", "123"), ("chunk", "2")),),
    ]:
        for size in (1, 7, 4096):
            decoder = chunk_stream.decoder_for(content_type)
            out = b"".join(decoder.feed(body[i:i + size]) for i in range(0, len(body), size))
            assert out + decoder.finish() == data
            assert decoder.fields == {"img_name": "图片.jpg", "timestamp": "123", "chunk": "2"}


def test_other_form_fields_are_bounded():
    decoder = chunk_stream.decoder_for("application/x-www-form-urlencoded")
    with pytest.raises(TooLarge):
        for _ in range(100):
            decoder.feed(b"note=" + b"x" * 1024 + b"&")
    decoder = chunk_stream.decoder_for("application/x-www-form-urlencoded")
    decoder.feed(b"img_name=a.jpg")
    with pytest.raises(FormInvalid):  # no img_data at all
        decoder.finish()


# ---- login --------------------------------------------------------------------------------------------

DATETIME = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"


async def old_login(client, username, password):
    status, answer = await client.request("POST", BASE + "login", data={"username": username, "password": password})
    assert answer["code"] == 200, answer
    return answer["data"]


@pytest.mark.gen_test
async def test_login_answers_set_avatar_and_dates_in_the_one_format(client, staff):
    models.User.update(avatar="statics/zhugeleida/imgs/avatar/1.jpg").where(models.User.id == staff.id).execute()
    first = await old_login(client, "staff", "staff123")
    assert first["set_avatar"] == first["avatar"] == "statics/zhugeleida/imgs/avatar/1.jpg"
    second = await old_login(client, "staff", "staff123")
    assert re.match(DATETIME, second["last_login_date"]), second["last_login_date"]


# ---- users, roles, companies: the old forms and rows ------------------------------------------------------

USER_ADD, USER_UPDATE, USER_LIST = BASE + "user/add/0", BASE + "user/update/{}", BASE + "user"
COMPANY_ADD, COMPANY_UPDATE, COMPANY_LIST = BASE + "company/add/0", BASE + "company/update/{}", BASE + "company"
ROLE_LIST = BASE + "role"


def old_user_form(company, **fields):
    return {"username": "wangwu", "password": "secret123", "role_id": 2, "company_id": company.id,
            "position": "销售", "phone": "13800000000", "mingpian_phone": "010-88886666", **fields}


async def user_row(client, admin, user_id):
    rows = (await client.get(USER_LIST, admin, id=user_id))["data"]["ret_data"]
    assert len(rows) == 1
    return rows[0]


@pytest.mark.gen_test
async def test_old_user_form_adds_and_edits_users(client, admin, company):
    added = await client.post(USER_ADD, admin, data=old_user_form(company))
    assert added["code"] == 200, added
    user_id = added["data"]["id"]
    row = await user_row(client, admin, user_id)
    assert (row["login_name"], row["company"], row["avatar"], row["mingpian_phone"]) == (
        "wangwu", company.name, "", "010-88886666")
    await old_login(client, "wangwu", "secret123")  # the name the old form gave is the login
    changed = await client.post(USER_UPDATE.format(user_id), admin, data={
        "username": "王五", "role_id": 2, "position": "经理", "phone": "13900000000", "mingpian_phone": "010-1"})
    assert changed["code"] == 200, changed
    row = await user_row(client, admin, user_id)
    assert (row["login_name"], row["username"], row["mingpian_phone"]) == ("wangwu", "王五", "010-1")
    # a form without mingpian_phone leaves it as it is
    await client.post(USER_UPDATE.format(user_id), admin, data={"username": "王五", "role_id": 2})
    assert (await user_row(client, admin, user_id))["mingpian_phone"] == "010-1"


@pytest.mark.gen_test
async def test_company_id_on_update_moves_the_user_within_the_card_quota(client, admin, staff, make_company,
                                                                        make_user):
    full = make_company("满额公司", quota=1)
    make_user(full)
    roomy = make_company("新公司", quota=5)
    product = models.Product.create(company=staff.company_id, user=staff, product_type=models.PRODUCT_PERSONAL,
                                    name="我的产品", price="1", reason="r")
    form = {"username": staff.username, "role_id": 2}
    refused = await client.post(USER_UPDATE.format(staff.id), admin, data={**form, "company_id": full.id})
    assert (refused["code"], list(refused["data"])) == (303, ["status"])
    assert models.User.get_by_id(staff.id).company_id == staff.company_id
    moved = await client.post(USER_UPDATE.format(staff.id), admin, data={**form, "company_id": roomy.id})
    assert moved["code"] == 200, moved
    assert (await user_row(client, admin, staff.id))["company"] == "新公司"
    assert models.Product.get_by_id(product.id).company_id == roomy.id  # their personal products go along
    staff_session = await old_login(client, "staff", "staff123")
    mine = await client.get(PRODUCT_LIST, (staff.id, staff_session["token"]), product_type=2)
    assert [r["name"] for r in mine["data"]["ret_data"]] == ["我的产品"]


@pytest.mark.gen_test
async def test_old_company_form_adds_with_the_default_quota_and_keeps_the_secret(client, admin, settings):
    secret = "s3cr3t-0123456789abcdef"
    added = await client.post(COMPANY_ADD, admin, data={"name": "新公司", "corp_id": "ww12345",
                                                        "tongxunlu_secret": secret})
    assert added["code"] == 200, added
    company = models.Company.get_by_id(added["data"]["id"])
    assert (company.corp_id, company.tongxunlu_secret) == ("ww12345", secret)
    assert company.mingpian_available_num == settings["accounts"]["default_card_quota"] == 10
    rows = (await client.get(COMPANY_LIST, admin, id=company.id))["data"]["ret_data"]
    assert rows[0]["company_id"] == company.id and rows[0]["corp_id"] == "ww12345"
    assert secret not in json.dumps(rows, ensure_ascii=False) and rows[0]["tongxunlu_secret"].endswith("cdef")
    models.Company.update(expire_date="2027-06-30", mingpian_available_num=7).where(
        models.Company.id == company.id).execute()
    # the old edit form: name and the 企业微信 settings only; the masked secret sent back changes nothing
    changed = await client.post(COMPANY_UPDATE.format(company.id), admin, data={
        "name": "新名字", "corp_id": "ww999", "tongxunlu_secret": rows[0]["tongxunlu_secret"]})
    assert changed["code"] == 200, changed
    company = models.Company.get_by_id(company.id)
    assert (company.name, company.corp_id, company.tongxunlu_secret) == ("新名字", "ww999", secret)
    assert (str(company.expire_date), company.mingpian_available_num) == ("2027-06-30", 7)


@pytest.mark.gen_test
async def test_role_and_company_rows_carry_their_old_id_keys(client, admin, company):
    roles = (await client.get(ROLE_LIST, admin))["data"]["ret_data"]
    assert all(r["role_id"] == r["id"] for r in roles) and {r["role_id"] for r in roles} >= {1, 2}
    companies = (await client.get(COMPANY_LIST, admin))["data"]["ret_data"]
    assert [(c["company_id"], c["id"]) for c in companies] == [(company.id, company.id)]


# ---- the lists: length, filters, order ----------------------------------------------------------------

@pytest.fixture
def crowd(make_user, make_company, company):
    """25 more users: in `company` with role 2 and in 分公司 with a role of their own."""
    branch = make_company("分公司", quota=50)
    seller = models.Role.create(name="销售")
    users = [make_user(company, login_name=f"u{i:02}", username=f"员工{i:02}") for i in range(15)]
    users += [make_user(branch, role=seller, login_name=f"b{i:02}", username=f"分员工{i:02}") for i in range(10)]
    return users


@pytest.mark.gen_test
async def test_lists_page_ten_by_default_and_all_with_length_zero(client, admin, crowd, make_company,
                                                                   monkeypatch):
    for path in (USER_LIST, ROLE_LIST, COMPANY_LIST):
        for i in range(12 if path == COMPANY_LIST else 0):
            make_company(f"更多公司{i}")
        for i in range(12 if path == ROLE_LIST else 0):
            models.Role.create(name=f"更多角色{i}")
        default = (await client.get(path, admin))["data"]
        every = (await client.get(path, admin, length=0))["data"]
        assert len(default["ret_data"]) == 10 < default["data_count"], path
        assert len(every["ret_data"]) == every["data_count"] == default["data_count"], path
    monkeypatch.setattr("services.listing.ALL_ROWS_LIMIT", 20)
    too_many = await client.get(USER_LIST, admin, length=0)
    assert (too_many["code"], list(too_many["data"])) == (303, ["length"]) and "26" in too_many["data"]["length"][0]


@pytest.mark.gen_test
async def test_old_filters_select_rows(client, admin, staff, crowd):
    async def logins(path=USER_LIST, key="login_name", **filters):
        body = await client.get(path, admin, length=0, **filters)
        assert body["code"] == 200, body
        return [r[key] for r in body["data"]["ret_data"]]

    assert await logins(id=staff.id) == ["staff"]
    assert await logins(role__name="销售", order="login_name") == [f"b{i:02}" for i in range(10)]
    assert len(await logins(company__name="分公司")) == 10
    assert await logins(company__name="分") == []  # exact names, as the old server matched them
    # stored in UTC: 10:00 on 2020-02-02 in Asia/Shanghai, the tests' stats.timezone, in which filters are read
    models.User.update(create_date="2020-02-02 02:00:00").where(models.User.id == staff.id).execute()
    assert await logins(create_date="2020-02-02") == ["staff"]
    assert await logins(create_date="2020-02-02 10:00:00") == ["staff"]
    assert await logins(create_date="2020-02-03") == []
    assert await logins(create_date="9999-12-31") == []  # the calendar's last day and second: no day after them
    assert await logins(create_date="9999-12-31 23:59:59") == []
    assert await logins(ROLE_LIST, "name", id=2) == ["普通用户"]
    assert (await logins(ROLE_LIST, "name", order="-id"))[-2:] == ["普通用户", "管理员"]


@pytest.mark.gen_test
async def test_order_sorts_by_allowed_fields_and_names_an_unknown_one(client, admin, crowd):
    body = await client.get(USER_LIST, admin, length=0, order="username")
    names = [r["username"] for r in body["data"]["ret_data"]]
    assert names == sorted(names)
    body = await client.get(USER_LIST, admin, length=0, order="-username")
    assert [r["username"] for r in body["data"]["ret_data"]] == sorted(names, reverse=True)
    body = await client.get(COMPANY_LIST, admin, order="name")
    assert [r["name"] for r in body["data"]["ret_data"]] == sorted(r["name"] for r in body["data"]["ret_data"])
    for path in (USER_LIST, ROLE_LIST, COMPANY_LIST):
        for order in ("password_hash", "-token", "id,nope", "-"):
            refused = await client.get(path, admin, order=order)
            assert (refused["code"], list(refused["data"])) == (303, ["order"]), (path, order)
    assert "password_hash" in (await client.get(USER_LIST, admin, order="password_hash"))["data"]["order"][0]


@pytest.mark.parametrize("params", [{"id": "x"}, {"create_date": "2020-13-01"}, {"length": -1},
                                    {"create_date": "yesterday"}])
@pytest.mark.gen_test
async def test_bad_old_filters_are_303_naming_them(client, admin, params):
    body = await client.get(USER_LIST, admin, **params)
    assert (body["code"], list(body["data"])) == (303, list(params))


# ---- products: product_edit, the update text, status 3 on the 企业微信 side ---------------------------------

QIYEWEIXIN_STATUS = "/zhugeleida/qiyeweixin/product/change_status/{}"


def company_product(company, status=models.PRODUCT_ON_SHELF, **fields):
    return models.Product.create(company=company, product_type=models.PRODUCT_COMPANY, name="产品", price="1",
                                 reason="r", status=status, **fields)


@pytest.mark.gen_test
async def test_product_edit_answers_the_old_edit_forms_read(client, admin, company):
    product = company_product(company)
    cover = models.ProductPicture.create(company=company, product=product, url="statics/a.jpg", order=1)
    models.ProductArticle.create(product=product, title="标题", order=1)
    body = await client.get(BASE + "product/product_edit", admin, product_type=1, product_id=product.id)
    assert body["code"] == 200, body
    [row] = body["data"]["ret_data"]
    assert set(row) == {"id", "name", "price", "reason", "status", "status_code", "publisher", "publisher_date",
                        "create_date", "cover_picture", "article_data"}
    assert row["id"] == product.id and row["publisher"] == company.name
    assert row["cover_picture"] == [{"id": cover.id, "picture_url": "statics/a.jpg"}]
    assert [a["title"] for a in row["article_data"]] == ["标题"]
    assert re.match(DATETIME, row["create_date"])
    bare = company_product(company)
    assert (await client.get(BASE + "product/product_edit", admin, product_type=1, product_id=bare.id))[
        "data"]["ret_data"][0]["cover_picture"] == ""
    wrong_type = await client.get(BASE + "product/product_edit", admin, product_type=2, product_id=product.id)
    assert wrong_type["code"] == 302


@pytest.mark.gen_test
async def test_product_update_answers_the_documents_text(client, admin, company):
    product = company_product(company)
    body = await client.post(BASE + f"product/update/{product.id}", admin, data={
        "product_type": 1, "name": "新名", "price": "2", "reason": "r", "cover_picture_id": "[]"})
    assert (body["code"], body["msg"]) == (200, "添加成功")


@pytest.mark.gen_test
async def test_qiyeweixin_status_3_follows_the_old_rules(client, admin, staff, company):
    async def set_status(user, product, status, path=QIYEWEIXIN_STATUS):
        body = await client.post(path.format(product.id), user, data={"status": status})
        return body["code"], models.Product.get_by_id(product.id).status

    shelf = company_product(company)
    assert await set_status(staff, shelf, 3) == (200, 3)  # any user of the company recommends
    assert await set_status(staff, shelf, 1) == (200, 1)  # and takes it back
    assert await set_status(staff, shelf, 2) == (404, 1)  # off the shelf: administrators only
    off = company_product(company, status=models.PRODUCT_OFF_SHELF)
    assert await set_status(staff, off, 3) == (404, 2)
    assert await set_status(staff, off, 1) == (404, 2)
    assert await set_status(admin, off, 3) == (200, 3)
    mine = models.Product.create(company=company, user=staff, product_type=models.PRODUCT_PERSONAL, name="个人",
                                 price="1", reason="r")
    for status in (3, 2, 1):
        assert await set_status(staff, mine, status) == (200, status)
    # the admin path keeps the document's 1 | 2
    assert await set_status(admin, shelf, 3, BASE + "product/change_status/{}") == (303, 1)


@pytest.mark.gen_test
async def test_a_client_gone_before_the_fields_came_leaves_nothing(staff, app, http_server, base_url):
    """Fields after img_data: the chunk is written before the upload is known; a dropped connection keeps
    none of it."""
    storage = app.settings["storage"]
    query = urllib.parse.urlencode(signed_params(staff))
    body = b"img_data=" + base64.b64encode(b"\xff" * 3000)
    sock = socket.create_connection(("127.0.0.1", urllib.parse.urlsplit(base_url).port))
    sock.sendall(f"POST {ADD_PICTURE}?{query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded"
                 f"\r\nContent-Length: {len(body) + 100}\r\n\r\n".encode() + body)

    def parts():
        return [p for p in storage.staging.rglob("*.part")]
    await wait_for(lambda: parts() != [])  # receiving, unplaced
    sock.close()
    await wait_for(lambda: parts() == [])
    assert storage.open_uploads(staff.id) == set()


async def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
