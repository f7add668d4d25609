"""Existing clients work unchanged: each point of what the old server accepted and answered, driven as the
old clients drive it (they log in with a form, sign every call afresh, send their fields in the form body
and read the old keys)."""
import base64
import hashlib
import io
import itertools
import json
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
