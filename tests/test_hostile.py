"""Hostile input (issue 13, items 2-8): no request gets an HTTP 500, each gets its documented code, and a
refused one changes nothing in the database or the files."""
import asyncio
import base64
import contextlib
import datetime
import io
import json
import os
import re
import threading
import time
import urllib.parse

import peewee
import pytest
import tornado.httpserver
import tornado.tcpclient
from PIL import Image

import models
from server import listen
from services import auth, chunk_stream, pictures
from services.errors import ServiceError
from tests.conftest import row_counts, signed_params
from tests.test_pictures import _upload_ids, complete, encode, noisy, send_chunk, upload

ADD = "/zhugeleida/admin/product/add_picture/0"
PRODUCT_ADD = "/zhugeleida/admin/product/add/0"
BATCH = "/zhugeleida/admin/activity/batch"
STATUS = "/zhugeleida/admin/user/update_status/{}"
DEEP = "[" * 50_000 + "]" * 50_000
DEEPEST_ORJSON_TAKES = "[" * 1000 + "]" * 1000  # deeper than Python's recursion limit


@pytest.fixture
def admin(make_user, company):
    return make_user(company, role=1, login_name="admin", password="admin123")


def files_under(*folders):
    return sorted(os.path.join(top, name) for folder in folders for top, _, names in os.walk(folder)
                  for name in names)


@pytest.fixture
def unchanged(settings, database):
    """Call it after the test's requests: asserts that no row and no file was added or removed."""
    folders = (settings["storage"]["root"], settings["storage"]["staging"])
    before = row_counts(), files_under(*folders)
    return lambda: (row_counts(), files_under(*folders)) == before or pytest.fail("a refused request left changes")


# ---- item 2: no HTTP 500 from input --------------------------------------------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("rand_str", ["签名" * 16, "\u00e9" * 32, "%ff%fe" * 8])
async def test_non_ascii_rand_str_is_400(client, admin, staff, unchanged, rand_str):
    params = signed_params(admin)
    query = urllib.parse.urlencode({**params, "rand_str": "x"}).replace("rand_str=x", "rand_str=" + (
        rand_str if rand_str.startswith("%") else urllib.parse.quote(rand_str)))
    status, body = await client.request("POST", STATUS.format(staff.id) + "?" + query, data={"status": 2})
    assert (status, body["code"]) == (200, 400)
    unchanged()


@pytest.mark.gen_test
@pytest.mark.parametrize("field", ["cover_picture_id", "article_data"])
@pytest.mark.parametrize("text", [DEEP, DEEPEST_ORJSON_TAKES])
async def test_deeply_nested_product_lists_are_301(client, admin, unchanged, field, text):
    data = {"product_type": 1, "name": "门票", "price": "1", "reason": "r", "cover_picture_id": "[]", field: text}
    body = await client.post(PRODUCT_ADD, admin, data=data)
    assert body["code"] == 301
    unchanged()


@pytest.mark.gen_test
@pytest.mark.parametrize("text", [DEEP, DEEPEST_ORJSON_TAKES])
async def test_deeply_nested_records_are_301_as_form_and_as_json(client, admin, unchanged, text):
    assert (await client.post(BATCH, admin, data={"records": text}))["code"] == 301
    status, body = await client.request("POST", BATCH, signed_params(admin), raw=f'{{"records": {text}}}',
                                        headers={"Content-Type": "application/json"})
    assert (status, body["code"]) == (200, 301)
    unchanged()


@pytest.mark.gen_test
@pytest.mark.parametrize("record", [
    {"kind": ["access"]}, {"kind": {"a": 1}},
    {"kind": "access", "action": 1, "time": "0001-01-01T00:00:00"},
    {"kind": "access", "action": 1, "time": "9999-12-31T23:59:59-14:00"},
    {"kind": "access", "action": 1, "time": "9999-12-31T23:59:59"},
    {"kind": "access", "action": 1, "time": str(10**30)},
])
async def test_odd_activity_records_are_303(client, admin, unchanged, record):
    record = {"user_id": admin.id, "openid": "o1", **record}
    body = await client.post(BATCH, admin, json_body={"records": [record]})
    assert body["code"] == 303, body
    unchanged()


@pytest.mark.gen_test
@pytest.mark.parametrize("content_type", [
    "multipart/form-data; boundary*=utf-8''abc",
    "multipart/form-data; boundary*0=ab; boundary*1=cd",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=\"\"",
])
async def test_odd_multipart_boundaries_are_303(client, admin, unchanged, content_type):
    params = signed_params(admin, img_name="a.png", chunk=0)
    status, body = await client.request("POST", ADD, params, raw=b"--abc\r\n\r\n--abc--\r\n",
                                        headers={"Content-Type": content_type})
    assert (status, body["code"]) == (200, 303), body
    unchanged()


@pytest.mark.gen_test
async def test_truncated_multipart_is_303(client, admin, unchanged):
    params = signed_params(admin, img_name="a.png", chunk=0)
    raw = b'--xyz\r\nContent-Disposition: form-data; name="img_data"\r\n\r\naGVsbG8='
    status, body = await client.request("POST", ADD, params, raw=raw,
                                        headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert (status, body["code"]) == (200, 303), body
    unchanged()


def not_found(status, body):
    return status == 404 and body == {"code": 404, "msg": "请求路径不存在", "data": {}}


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [
    "/statics/%00", "/console/%00", "/statics/zhugeleida/imgs/qiyeweixin/product/%00.png",
    "/statics/../config.yaml", "/statics/%2e%2e/config.yaml", "/statics/%2E%2E/%2e%2e/etc/passwd",
    "/statics//etc/passwd", "/console//etc/passwd", "/console/../server.py", "/console/%2e%2e/%2e%2e/server.py",
    "/statics/zhugeleida", "/statics/zhugeleida/", "/console/", "/console/.", "/statics/.",
    "/statics/%ff.png", "/console/%c0%ae%c0%ae/server.py",
])
async def test_odd_static_paths_are_the_404_envelope(client, settings, path):
    os.makedirs(os.path.join(settings["storage"]["root"], "zhugeleida"), exist_ok=True)
    status, body = await client.request("GET", path)
    assert not_found(status, body), (status, body)


@pytest.mark.gen_test
@pytest.mark.parametrize("method", ["PROPFIND", "FOO", "TRACE"])
async def test_unknown_method_on_unknown_path_is_404(http_client, base_url, method):
    response = await http_client.fetch(base_url + "/no/such/path", method=method, allow_nonstandard_methods=True,
                                       raise_error=False)
    assert not_found(response.code, json.loads(response.body)), response


# ---- item 3: the right codes ------------------------------------------------------------------------

COMPLETE = "/zhugeleida/admin/product/upload_complete/0"


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [PRODUCT_ADD, COMPLETE, BATCH])
@pytest.mark.parametrize("content_type, raw", [
    ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="name"\r\n\r\nab'),
    ("multipart/form-data", b'--xyz\r\nContent-Disposition: form-data; name="name"\r\n\r\nab\r\n--xyz--\r\n'),
    ("multipart/form-data; boundary*=utf-8''xyz", b'--xyz--\r\n'),
])
async def test_bad_multipart_on_whole_body_endpoints_is_303(client, admin, unchanged, path, content_type, raw):
    status, body = await client.request("POST", path, signed_params(admin), raw=raw,
                                        headers={"Content-Type": content_type})
    assert (status, body["code"]) == (200, 303), body
    unchanged()


@pytest.mark.gen_test
async def test_chunked_body_over_the_limit_is_413_with_the_envelope(http_client, base_url, admin, settings,
                                                                    unchanged):
    limit = settings["server"]["max_body_bytes"]

    async def body(write):
        for _ in range(limit // 65536 + 2):
            await write(b"a" * 65536)

    response = await http_client.fetch(base_url + PRODUCT_ADD + "?" + urllib.parse.urlencode(signed_params(admin)),
                                       method="POST", body_producer=body, raise_error=False,
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.code == 413 and json.loads(response.body)["code"] == 413
    unchanged()


@pytest.mark.gen_test
async def test_chunked_body_under_the_limit_is_read(client, http_client, base_url, admin):
    async def body(write):
        record = {"kind": "access", "action": 1, "user_id": admin.id, "openid": "o1"}
        for piece in (b"records=", urllib.parse.quote(json.dumps([record])).encode()):
            await write(piece)

    response = await http_client.fetch(base_url + BATCH + "?" + urllib.parse.urlencode(signed_params(admin)),
                                       method="POST", body_producer=body, raise_error=False,
                                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert json.loads(response.body)["code"] == 200


# ---- item 7: event-loop CPU per byte of a hostile upload body -----------------------------------------

HALF_MB = 512 * 1024


def loop_cpu_seconds(body, content_type):
    """CPU time the decoder (what add_picture runs on the event loop) spends on `body`, in Tornado's pieces."""
    decoder = chunk_stream.decoder_for(content_type)
    start = time.thread_time()
    with contextlib.suppress(ServiceError):
        for offset in range(0, len(body), 65536):
            decoder.feed(body[offset:offset + 65536])
        decoder.finish()
    return time.thread_time() - start


@pytest.mark.parametrize("body, content_type", [
    (b"&" * HALF_MB, "application/x-www-form-urlencoded"),
    (b"a&" * (HALF_MB // 2), "application/x-www-form-urlencoded"),
    (b"--x\r\n\r\n\r\n" * (HALF_MB // 10), "multipart/form-data; boundary=x"),
])
def test_many_tiny_fields_cost_little_loop_cpu(body, content_type):
    # before the field limit: 0.6 s for the first body; base64 of the same size costs about 0.002 s
    assert loop_cpu_seconds(body, content_type) < 0.05


@pytest.mark.gen_test
async def test_an_upload_body_of_ampersands_is_303_and_keeps_nothing(client, admin, unchanged):
    params = signed_params(admin, img_name="a.png", chunk=0)
    status, body = await client.request("POST", ADD, params, raw=b"&" * HALF_MB,
                                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, body["code"]) == (200, 303) and "img_data" in body["data"]
    unchanged()


def decode_urlencoded(body):
    decoder = chunk_stream.decoder_for("application/x-www-form-urlencoded")
    out = [decoder.feed(body[offset:offset + 1000]) for offset in range(0, len(body), 1000)]
    return b"".join(out) + decoder.finish()


@pytest.mark.parametrize("hex_format", ["%{:02x}", "%{:02X}"])
def test_every_character_escaped_still_decodes(hex_format):
    data = os.urandom(3000)
    text = "data:image/png;base64," + base64.b64encode(data).decode() + "\n"
    body = "img_data=" + "".join(hex_format.format(ord(c)) for c in text)
    assert decode_urlencoded(body.encode()) == data


@pytest.mark.parametrize("escape", ["%25", "%00", "%e4%b8%ad", "%4"])
def test_an_escape_base64_cannot_hold_is_303(escape):
    with pytest.raises(ServiceError) as refused:
        decode_urlencoded(f"img_data=QUJD{escape}".encode())
    assert refused.value.code == 303 and "img_data" in refused.value.data


# ---- item 4: the login throttle stops the guesser, not the owner -------------------------------------

LOGIN = "/zhugeleida/admin/login"
NAME_LIMIT, ADDRESS_LIMIT = 5, 8


@pytest.fixture
def http_server(request, io_loop, _unused_port, app):
    """As pytest-tornado's, but reading the client address from X-Real-IP, as behind the usual proxy."""
    server = tornado.httpserver.HTTPServer(app, xheaders=True)
    server.add_socket(_unused_port[0])
    request.addfinalizer(lambda: (server.stop(), io_loop.run_sync(server.close_all_connections, timeout=5)))
    return server


@pytest.fixture
def throttle_settings(settings):
    settings["auth"].update(login_max_failures=NAME_LIMIT, login_max_failures_per_address=ADDRESS_LIMIT)
    return settings


async def log_in(http_client, base_url, name, password, address):
    response = await http_client.fetch(base_url + LOGIN, method="POST", raise_error=False,
                                       body=urllib.parse.urlencode({"username": name, "password": password}),
                                       headers={"X-Real-IP": address})
    return response.code, json.loads(response.body)


@pytest.fixture
def evaluated(monkeypatch):
    """Counts the passwords checked (thread-safe: logins run in the worker threads)."""
    calls, lock = [], threading.Lock()
    real = auth.check_password

    def counting(password, stored):
        with lock:
            calls.append(password)
        return real(password, stored)
    monkeypatch.setattr(auth, "check_password", counting)
    return calls


@pytest.mark.gen_test
async def test_a_guesser_elsewhere_does_not_lock_the_owner_out(http_client, base_url, throttle_settings, admin):
    for _ in range(NAME_LIMIT):
        assert (await log_in(http_client, base_url, "admin", "guess", "10.0.0.66"))[1]["code"] == 401
    code, body = await log_in(http_client, base_url, "admin", "admin123", "10.0.0.66")
    assert code == 200 and body["code"] == 401 and "次数过多" in body["msg"]  # the guesser: even the right one
    code, body = await log_in(http_client, base_url, "admin", "admin123", "10.0.0.1")
    assert body["code"] == 200  # the owner, from an address with no failures


@pytest.mark.gen_test
async def test_one_address_trying_every_name_is_throttled(http_client, base_url, throttle_settings, admin):
    for n in range(ADDRESS_LIMIT):
        assert (await log_in(http_client, base_url, f"name{n}", "guess", "10.0.0.66"))[1]["code"] == 401
    body = (await log_in(http_client, base_url, "admin", "admin123", "10.0.0.66"))[1]
    assert body["code"] == 401 and "次数过多" in body["msg"]
    assert (await log_in(http_client, base_url, "admin", "admin123", "10.0.0.1"))[1]["code"] == 200


@pytest.mark.gen_test
async def test_logins_that_succeed_do_not_use_up_the_address(http_client, base_url, throttle_settings, admin):
    for _ in range(2 * ADDRESS_LIMIT):
        assert (await log_in(http_client, base_url, "admin", "admin123", "10.0.0.2"))[1]["code"] == 200
    for _ in range(NAME_LIMIT - 1):  # and a success forgets the name's failures from that address
        assert (await log_in(http_client, base_url, "admin", "typo", "10.0.0.2"))[1]["code"] == 401
    assert (await log_in(http_client, base_url, "admin", "admin123", "10.0.0.2"))[1]["code"] == 200
    for _ in range(NAME_LIMIT - 2):  # without that, 4 + 3 failures: throttled; the address has had 7 of 8
        assert (await log_in(http_client, base_url, "admin", "typo", "10.0.0.2"))[1]["code"] == 401
    assert (await log_in(http_client, base_url, "admin", "admin123", "10.0.0.2"))[1]["code"] == 200


@pytest.mark.gen_test(timeout=60)
async def test_parallel_guesses_at_one_name_get_exactly_the_limit_checked(http_client, base_url, throttle_settings,
                                                                         admin, evaluated):
    answers = await asyncio.gather(*(log_in(http_client, base_url, "admin", f"guess{n}", "10.0.0.66")
                                     for n in range(40)))
    assert {(code, body["code"]) for code, body in answers} == {(200, 401)}  # no "database is locked" 500
    assert len(evaluated) == NAME_LIMIT


@pytest.mark.gen_test(timeout=60)
async def test_parallel_guesses_at_many_names_get_exactly_the_address_limit(http_client, base_url,
                                                                           throttle_settings, admin, evaluated):
    answers = await asyncio.gather(*(log_in(http_client, base_url, f"name{n}", "guess", "10.0.0.66")
                                     for n in range(160)))  # 160: as many as gave "database is locked"
    assert {(code, body["code"]) for code, body in answers} == {(200, 401)}
    assert len(evaluated) == ADDRESS_LIMIT
    # the table is bounded: a throttled address adds no rows, and rows whose window is over are pruned
    assert models.LoginThrottle.select().count() == ADDRESS_LIMIT + 1
    models.LoginThrottle.update(window_start=models.now() - datetime.timedelta(
        seconds=throttle_settings["auth"]["login_window_seconds"] + 1)).execute()
    assert auth.prune_login_throttle(throttle_settings) == ADDRESS_LIMIT + 1
    assert models.LoginThrottle.select().count() == 0


# ---- item 8: timeouts, and room for a large chunk on a slow line ------------------------------------

SHORT = 1  # seconds: the idle/header and body timeouts in these tests


@pytest.fixture
def served(app, settings, io_loop):
    """The app served as server.py serves it (listen(): its timeouts), with short timeouts, on a free port."""
    settings["server"].update(port=0, idle_timeout_seconds=SHORT, body_timeout_seconds=SHORT)
    settings["upload"]["body_timeout_seconds"] = 30
    server = listen(app, settings)
    yield next(iter(server._sockets.values())).getsockname()[1]
    server.stop()
    io_loop.run_sync(server.close_all_connections, timeout=5)


async def connect(port):
    return await tornado.tcpclient.TCPClient().connect("127.0.0.1", port)


async def closed_within(stream, seconds):
    """True if the server closes the connection within `seconds` (what it sent before is ignored)."""
    try:
        await asyncio.wait_for(stream.read_until_close(), seconds)
    except TimeoutError:
        return False
    return True


@pytest.mark.gen_test(timeout=30)
async def test_a_connection_that_sends_nothing_is_closed(served):
    stream = await connect(served)
    assert await closed_within(stream, SHORT + 5)


@pytest.mark.gen_test(timeout=30)
async def test_headers_that_never_end_are_closed(served):
    stream = await connect(served)
    await stream.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    assert await closed_within(stream, SHORT + 5)


@pytest.mark.gen_test(timeout=30)
async def test_a_body_that_never_arrives_is_closed(served, admin):
    stream = await connect(served)
    query = urllib.parse.urlencode(signed_params(admin))
    await stream.write(f"POST {PRODUCT_ADD}?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                       "Content-Type: application/x-www-form-urlencoded\r\n\r\nname=".encode())
    assert await closed_within(stream, SHORT + 5)


@pytest.mark.gen_test(timeout=60)
async def test_a_chunk_on_a_slow_line_outlasting_the_body_timeout_is_taken(served, admin, settings):
    data = base64.b64encode(os.urandom(30_000))
    body = b"img_data=" + urllib.parse.quote_from_bytes(data).encode()
    query = urllib.parse.urlencode(signed_params(admin, img_name="a.png", chunk=0))
    stream = await connect(served)
    await stream.write(f"POST {ADD}?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                       "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode())
    pieces = 6
    for n in range(pieces):  # a slow line: the body takes 3 times the body timeout to arrive
        await stream.write(body[n * len(body) // pieces:(n + 1) * len(body) // pieces])
        await asyncio.sleep(SHORT / 2)
    head = await asyncio.wait_for(stream.read_until(b"\r\n\r\n"), 10)
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    answer = json.loads(await stream.read_bytes(length))
    assert answer["code"] == 200 and answer["data"]["size"] == 30_000


# ---- item 6: storage amplification, company quotas, pictures never attached -----------------------------

def lossless_webp(width=2000, height=2000):
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "WEBP", lossless=True)
    return out.getvalue()


def stored_bytes(storage, url):
    with storage.open(url) as file:
        return file.read()


@pytest.mark.gen_test(timeout=60)
async def test_a_lossless_webp_stays_lossless_and_small(client, admin, app):
    data = lossless_webp()
    _, _, body = await upload(client, admin, data, img_name="flat.webp")
    stored = stored_bytes(app.settings["storage"], body["data"]["ret_data"]["picture_url"])
    assert stored[12:16] == b"VP8L"  # before: 7,436 bytes of lossy WEBP from these 212
    assert len(stored) <= 2 * len(data) + 1024
    with Image.open(io.BytesIO(stored)) as image:
        assert image.size == (2000, 2000) and image.getpixel((1000, 1000)) == (200, 30, 30)


@pytest.fixture
def small_quota(settings):
    settings["upload"].update(company_max_pictures=3)
    return settings


def picture_files(storage):
    return sorted(url for url, _ in storage.list_pictures())


@pytest.mark.gen_test(timeout=60)
async def test_the_company_picture_quota_is_a_413_and_stores_nothing(client, admin, app, small_quota,
                                                                     make_company, make_user):
    storage = app.settings["storage"]
    for seed in range(3):
        assert (await upload(client, admin, encode(noisy(64, 64, seed=seed))))[2]["code"] == 200
    before = row_counts(), picture_files(storage)
    _, status, body = await upload(client, admin, encode(noisy(64, 64, seed=9)))
    assert (status, body["code"]) == (413, 413) and "上限 3 张" in body["msg"]
    assert (row_counts(), picture_files(storage)) == before
    other = make_user(make_company("别的公司"))  # a quota per company
    assert (await upload(client, other, encode(noisy(64, 64, seed=10))))[2]["code"] == 200


@pytest.mark.gen_test(timeout=60)
async def test_the_company_byte_quota_is_a_413_and_stores_nothing(client, admin, app, settings):
    storage = app.settings["storage"]
    assert (await upload(client, admin, encode(noisy(200, 200, seed=1))))[2]["code"] == 200
    used = models.ProductPicture.get().byte_size
    settings["upload"]["company_max_bytes"] = used + 100
    before = row_counts(), picture_files(storage)
    _, status, body = await upload(client, admin, encode(noisy(200, 200, seed=2)))
    assert (status, body["code"]) == (413, 413) and "总大小上限" in body["msg"]
    assert (row_counts(), picture_files(storage)) == before


@pytest.fixture
def held_in_quota_check(monkeypatch):
    """The first completion to pass the quota check under the lock stays there until a second one arrives
    (possible only without the lock) or 2 s have passed (the lock holds: the second waits for the first)."""
    real, second, lock, calls = pictures._check_quota, threading.Event(), threading.Lock(), []

    def check(company_id, new_bytes, limits):
        real(company_id, new_bytes, limits)
        if new_bytes:  # the check beside the insert, not the early one before the image work
            with lock:
                calls.append(new_bytes)
                first = len(calls) == 1
            second.wait(2) if first else second.set()
    monkeypatch.setattr(pictures, "_check_quota", check)


@pytest.mark.gen_test(timeout=60)
async def test_parallel_completions_never_pass_the_quota(client, admin, settings, held_in_quota_check):
    settings["upload"]["company_max_pictures"] = 1
    upload_ids = [next(_upload_ids), next(_upload_ids)]
    for seed, upload_id in enumerate(upload_ids):
        assert (await send_chunk(client, admin, upload_id, 0, encode(noisy(64, 64, seed=seed))))[1]["code"] == 200
    answers = await asyncio.gather(*(complete(client, admin, upload_id, 1) for upload_id in upload_ids))
    assert sorted(body["code"] for _, body in answers) == [200, 413]
    assert models.ProductPicture.select().count() == 1


@pytest.mark.gen_test(timeout=60)
async def test_pictures_never_attached_expire_with_their_files(client, admin, app, settings):
    storage = app.settings["storage"]
    urls = []
    for seed in range(2):
        urls.append((await upload(client, admin, encode(noisy(64, 64, seed=seed))))[2]["data"]["ret_data"])
    kept, dropped = urls
    added = await client.post(PRODUCT_ADD, admin, data={
        "product_type": 1, "name": "门票", "price": "1", "reason": "r",
        "cover_picture_id": json.dumps([kept["picture_id"]])})
    assert added["code"] == 200
    days = settings["upload"]["unattached_picture_days"]
    pictures.expire_unattached(storage, settings)  # not old enough yet
    assert models.ProductPicture.select().count() == 2
    models.ProductPicture.update(create_date=models.now() - datetime.timedelta(days=days, hours=1)).execute()
    pictures.housekeeping(storage, settings)
    assert [p.id for p in models.ProductPicture.select()] == [kept["picture_id"]]
    files = picture_files(storage)
    assert kept["picture_url"] in files and dropped["picture_url"] not in files
    assert not any(url.startswith(dropped["picture_url"].rsplit(".", 1)[0]) for url in files)  # thumbnail too


# ---- item 5: a deleted user's uploads go with them, and ids are never given again ----------------------

USER_ADD = "/zhugeleida/admin/user/add/0"
USER_DELETE = "/zhugeleida/admin/user/delete/{}"


async def add_user(client, admin, login_name):
    body = await client.post(USER_ADD, admin, data={"login_name": login_name, "username": login_name,
                                                    "role_id": 2, "password": "secret123"})
    assert body["code"] == 200, body
    return models.User.get_by_id(body["data"]["id"])


@pytest.mark.gen_test(timeout=60)
async def test_a_deleted_users_uploads_go_and_the_next_user_gets_a_new_id(client, admin, app):
    storage = app.settings["storage"]
    leaver = await add_user(client, admin, "leaver")
    upload_id = next(_upload_ids)
    assert (await send_chunk(client, leaver, upload_id, 0, encode(noisy(64, 64))))[1]["code"] == 200
    assert storage.open_uploads(leaver.id) == {upload_id}
    assert (await client.post(USER_DELETE.format(leaver.id), admin))["code"] == 200
    assert storage.open_uploads(leaver.id) == set()
    newcomer = await add_user(client, admin, "newcomer")
    assert newcomer.id > leaver.id  # the deleted one was the newest row: SQLite without AUTOINCREMENT gave its id
    status, body = await complete(client, newcomer, upload_id, 1)
    assert body["code"] == 302  # nothing of the old upload is theirs


def sqlite_only(database):
    if not isinstance(database.obj, peewee.SqliteDatabase):
        pytest.skip("the upgrade of a SQLite file")


def make_table_as_before(database, model):
    """The table as versions before AUTOINCREMENT made it, rows and all."""
    create, params = model._schema._create_table(safe=False).query()
    table = model._meta.table_name
    database.execute_sql("PRAGMA foreign_keys = OFF")
    with database.atomic():
        database.execute_sql(create.replace(" AUTOINCREMENT", "").replace(f'"{table}"', '"old_copy"', 1), params)
        database.execute_sql(f'INSERT INTO "old_copy" SELECT * FROM "{table}"')
        database.execute_sql(f'DROP TABLE "{table}"')
        database.execute_sql(f'ALTER TABLE "old_copy" RENAME TO "{table}"')
        model._schema.create_indexes(safe=False)
    database.execute_sql("PRAGMA foreign_keys = ON")


def test_an_old_sqlite_file_is_upgraded_keeping_every_user_and_reference(database, company, admin, make_user):
    sqlite_only(database)
    staff_member, newest = make_user(company), make_user(company)
    product = models.Product.create(company=company, user=staff_member, product_type=2, name="p", price="1",
                                    reason="r")
    make_table_as_before(database, models.User)
    before = [(u.id, u.login_name, u.token) for u in models.User.select().order_by(models.User.id)]
    models.create_schema()
    made = database.execute_sql("SELECT sql FROM sqlite_master WHERE name = 'user'").fetchone()[0]
    assert "AUTOINCREMENT" in made
    assert [(u.id, u.login_name, u.token) for u in models.User.select().order_by(models.User.id)] == before
    assert models.Product.get_by_id(product.id).user_id == staff_member.id
    with pytest.raises(peewee.IntegrityError):  # the unique index is back
        make_user(company, login_name=admin.login_name)
    models.User.delete().where(models.User.id == newest.id).execute()
    assert make_user(company).id > newest.id
    models.User.delete().where(models.User.id == staff_member.id).execute()  # references still enforced
    assert models.Product.get_by_id(product.id).user_id is None
    assert models._rebuild_with_autoincrement(models.User) is False  # once only


@pytest.mark.gen_test
@pytest.mark.parametrize("content_type", ["application/octet-stream", "application/x-www-form-urlencoded"])
async def test_a_chunked_upload_chunk_over_the_limit_is_413_with_the_envelope(http_client, base_url, admin,
                                                                              settings, unchanged, content_type):
    settings["upload"]["max_chunk_bytes"] = 100_000
    piece = b"A" * 65536 if content_type == "application/octet-stream" else b"img_data=" + b"QUJD" * 16384

    async def body(write):
        await write(piece)
        for _ in range(20):
            await write(b"QUJD" * 16384)

    query = urllib.parse.urlencode(signed_params(admin, img_name="a.png", chunk=0))
    response = await http_client.fetch(f"{base_url}{ADD}?{query}", method="POST", body_producer=body,
                                       raise_error=False, headers={"Content-Type": content_type})
    assert response.code == 413 and json.loads(response.body)["code"] == 413
    unchanged()


@pytest.mark.gen_test(timeout=30)
async def test_without_xheaders_a_client_cannot_choose_its_address(app, settings, io_loop, admin, http_client):
    settings["auth"].update(login_max_failures=NAME_LIMIT)
    settings["server"].update(port=0, xheaders=False)
    server = listen(app, settings)
    base = f"http://127.0.0.1:{next(iter(server._sockets.values())).getsockname()[1]}"
    try:
        for n in range(NAME_LIMIT):
            assert (await log_in(http_client, base, "admin", "guess", f"10.0.0.{n}"))[1]["code"] == 401
        body = (await log_in(http_client, base, "admin", "admin123", "10.0.0.99"))[1]
        assert body["code"] == 401 and "次数过多" in body["msg"]
    finally:
        server.stop()
        await server.close_all_connections()


# ---- every endpoint, odd input: never an HTTP 500 ---------------------------------------------------------

API_PATHS = [route[0].removesuffix("/?").replace("([^/]+)", "1")
             for module in __import__("server").HANDLER_MODULES for route in module.default_handlers
             if route[0].startswith("/zhugeleida/")]
ODD_BODIES = [
    ("application/json", b'{"records": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("application/json", b"[1, 2]"),
    ("application/json", b'{"name": {"a": [1]}, "username": [1], "password": null, "status": 1e999}'),
    ("application/json", b'{"product_type": 99999999999999999999999, "days": -1, "index_type": "\\u0000"}'),
    ("application/x-www-form-urlencoded", b"name=%ff%fe&username=%00&password=%c0%ae&status=%e4&days=1%00"),
    ("application/x-www-form-urlencoded", b"cover_picture_id=%5B%5B%5B1%5D%5D%5D&article_data=%7B%7D&records=null"),
    ("multipart/form-data; boundary=b",
     b"--b\r\nContent-Disposition: form-data; name*=utf-8''x\r\n\r\n\xff\r\n--b--\r\n"),
    ("text/plain; charset=\xff", b"\xff\xfe\x00"),
]


@pytest.mark.gen_test(timeout=120)
@pytest.mark.parametrize("path", API_PATHS)
async def test_no_endpoint_answers_500_to_odd_input(client, admin, path):
    for content_type, raw in ODD_BODIES:
        for method in ("POST", "GET"):
            params = signed_params(admin, product_id="x", product_type="1", current_page="9" * 30,
                                   img_name="../a.png", chunk="-1", timestamp_extra="\u00e9")
            status, body = await client.request(method, path, params, raw=raw if method == "POST" else None,
                                                headers={"Content-Type": content_type})
            assert status != 500 and body["code"] != 500, (method, path, content_type, raw[:40], body)
