"""Chunked picture upload, the image pipeline, /statics/ and the housekeeping (docs/api.md section 9)."""
import asyncio
import base64
import hashlib
import io
import itertools
import os
import re
import socket
import struct
import time
import urllib.parse
import zlib

import peewee
import pytest
from PIL import Image

import models
from server import start_background_jobs
from services import chunk_stream, pictures
from services.errors import FormInvalid
from storage.base import thumbnail_url
from tests.conftest import row_counts

ADD = "/zhugeleida/admin/product/add_picture/0"
COMPLETE = "/zhugeleida/admin/product/upload_complete/0"
PRODUCT_ADD = "/zhugeleida/admin/product/add/0"
PRODUCT_LIST = "/zhugeleida/admin/product/product_list"
PRODUCT_DELETE = "/zhugeleida/admin/product/delete/{}"
URL_PATTERN = re.compile(r"^statics/zhugeleida/imgs/qiyeweixin/product/\d{20}[0-9a-f]{6}\.(jpg|png|gif|webp)$")

CHUNK_LIMIT = 64 * 1024
UPLOAD_LIMIT = 400 * 1024
MAX_CHUNKS = 12
MAX_OPEN = 3

# Upload ids (timestamps) a little in the past: within the upload expiry, distinct for every upload.
_upload_ids = itertools.count(int(time.time() * 1000) - 1_000_000)


@pytest.fixture
def settings(settings):
    settings["upload"].update(max_chunk_bytes=CHUNK_LIMIT, max_upload_bytes=UPLOAD_LIMIT, max_chunks=MAX_CHUNKS,
                              max_open_uploads=MAX_OPEN)
    return settings


@pytest.fixture
def outsider(make_user, make_company):
    return make_user(make_company("另一家公司"), login_name="outsider")


@pytest.fixture
def storage(app):
    return app.settings["storage"]


# ---- images made in the test ----

def noisy(width, height, mode="RGB", seed=1):
    """An image that does not compress away: coarse noise, smoothed."""
    small = (max(1, width // 4), max(1, height // 4))
    data = hashlib.shake_256(f"{seed}".encode()).digest(small[0] * small[1] * len(mode))
    return Image.frombytes(mode, small, data).resize((width, height), Image.Resampling.BICUBIC)


def encode(image, fmt="JPEG", **options):
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_bomb(width=20000, height=20000):
    """A valid 1-bit PNG of width x height: about 50 KB on disk, 400 million pixels once decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# ---- the client side of an upload ----

def upload_params(user, upload_id, **extra):
    timestamp = str(upload_id)
    rand_str = hashlib.md5(f"{timestamp}{user.token}".encode()).hexdigest()
    return {"rand_str": rand_str, "timestamp": timestamp, "user_id": str(user.id), **extra}


def multipart(fields, files=()):
    boundary = "----zgldTestBoundary7MA4YWxk"
    lines = []
    for name, value in fields:
        lines += [f"--{boundary}".encode(), f'Content-Disposition: form-data; name="{name}"'.encode(), b"",
                  value]
    for name, filename, value in files:
        lines += [f"--{boundary}".encode(),
                  f'Content-Disposition: form-data; name="{name}"; filename="{filename}"'.encode(),
                  b"Content-Type: application/octet-stream", b"", value]
    lines += [f"--{boundary}--".encode(), b""]
    return b"\r\n".join(lines), f"multipart/form-data; boundary={boundary}"


def chunk_body(data, mode):
    """(body, Content-Type) for a chunk sent the way `mode` names."""
    if mode == "raw":
        return data, "application/octet-stream"
    if mode == "urlencoded":
        return urllib.parse.urlencode({"note": "x", "img_data": base64.b64encode(data)}).encode(), \
            "application/x-www-form-urlencoded"
    if mode == "multipart":
        return multipart([("note", b"x"), ("img_data", base64.encodebytes(data))])  # with line breaks
    if mode == "multipart-file":
        return multipart([("note", b"x")], [("img_data", "a.jpg", data)])
    raise ValueError(mode)


async def send_chunk(client, user, upload_id, index, data, mode="raw", img_name="photo.jpg"):
    body, content_type = chunk_body(data, mode)
    return await client.request("POST", ADD, upload_params(user, upload_id, img_name=img_name, chunk=index),
                                raw=body, headers={"Content-Type": content_type})


async def complete(client, user, upload_id, chunk_num, picture_type=1, img_name="photo.jpg"):
    return await client.request("POST", COMPLETE, upload_params(
        user, upload_id, img_name=img_name, chunk_num=chunk_num, picture_type=picture_type))


def split(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


async def upload(client, user, data, chunk_size=CHUNK_LIMIT, mode="raw", upload_id=None, **options):
    """Send `data` in chunks and complete it; return (upload id, HTTP status, envelope of the completion)."""
    upload_id = upload_id or next(_upload_ids)
    chunks = split(data, chunk_size)
    for index, piece in enumerate(chunks):
        status, body = await send_chunk(client, user, upload_id, index, piece, mode)
        assert (status, body["code"]) == (200, 200), body
    status, body = await complete(client, user, upload_id, len(chunks), **options)
    return upload_id, status, body


def picture_files(storage):
    return sorted(url for url, _ in storage.list_pictures())


def staged_files(storage):
    return sorted(str(p.relative_to(storage.staging)) for p in storage.staging.rglob("*")
                  if p.is_file() and not p.is_relative_to(storage.work))


def stored_image(storage, url):
    with storage.open(url) as f:
        return f.read()


# ---- chunks in order, out of order, re-sent, missing ----

@pytest.mark.gen_test
async def test_chunks_in_order_make_a_picture(client, staff, storage):
    original = encode(noisy(900, 600), quality=95)
    assert len(original) > 2 * CHUNK_LIMIT  # several chunks
    _, status, body = await upload(client, staff, original)
    assert (status, body["code"], body["msg"]) == (200, 200, "添加图片成功")
    ret = body["data"]["ret_data"]
    assert set(ret) == {"picture_id", "picture_url"} and URL_PATTERN.match(ret["picture_url"])
    row = models.ProductPicture.get_by_id(ret["picture_id"])
    stored = stored_image(storage, row.url)
    assert (row.url, row.user_id, row.company_id, row.picture_type, row.product_id) == (
        ret["picture_url"], staff.id, staff.company_id, 1, None)
    assert (row.byte_size, row.sha256) == (len(stored), hashlib.sha256(stored).hexdigest())
    assert (row.width, row.height) == (900, 600) == Image.open(io.BytesIO(stored)).size
    thumbnail = Image.open(io.BytesIO(stored_image(storage, thumbnail_url(row.url))))
    assert (thumbnail.format, thumbnail.size) == ("JPEG", (400, 267))
    assert picture_files(storage) == sorted([row.url, thumbnail_url(row.url)])
    assert staged_files(storage) == []  # the chunks are gone


@pytest.mark.gen_test
async def test_chunks_out_of_order_join_in_order(client, staff, storage):
    image = noisy(300, 200)
    original = encode(image, "PNG")
    upload_id = next(_upload_ids)
    chunks = split(original, 40_000)
    assert len(chunks) >= 4
    for index in reversed(range(len(chunks))):
        assert (await send_chunk(client, staff, upload_id, index, chunks[index]))[1]["code"] == 200
    status, body = await complete(client, staff, upload_id, len(chunks))
    assert body["code"] == 200
    stored = Image.open(io.BytesIO(stored_image(storage, body["data"]["ret_data"]["picture_url"])))
    assert stored.format == "PNG" and stored.tobytes() == image.tobytes()  # lossless: the very same pixels


@pytest.mark.gen_test
async def test_resent_chunk_replaces_the_first_copy(client, staff, storage):
    image = noisy(200, 200)
    chunks = split(encode(image, "PNG"), 50_000)
    upload_id = next(_upload_ids)
    assert (await send_chunk(client, staff, upload_id, 1, b"garbage" * 1000))[1]["code"] == 200
    for index, piece in enumerate(chunks):
        assert (await send_chunk(client, staff, upload_id, index, piece))[1]["code"] == 200
    body = (await complete(client, staff, upload_id, len(chunks)))[1]
    assert body["code"] == 200
    stored = Image.open(io.BytesIO(stored_image(storage, body["data"]["ret_data"]["picture_url"])))
    assert stored.tobytes() == image.tobytes()


@pytest.mark.gen_test
async def test_missing_chunk_is_named_and_the_upload_can_be_finished(client, staff, storage):
    original = encode(noisy(200, 200), "PNG")
    chunks = split(original, len(original) // 3 + 1)
    upload_id = next(_upload_ids)
    for index in (0, 2):
        assert (await send_chunk(client, staff, upload_id, index, chunks[index]))[1]["code"] == 200
    before = row_counts()
    status, body = await complete(client, staff, upload_id, 3)
    assert (status, body["code"], body["data"]) == (200, 303, {"chunk_num": ["缺少分片 1"]})
    assert row_counts() == before and picture_files(storage) == []
    await send_chunk(client, staff, upload_id, 1, chunks[1])
    assert (await complete(client, staff, upload_id, 3))[1]["code"] == 200


# ---- bodies: raw, base64 urlencoded or multipart ----

@pytest.mark.parametrize("mode", ["raw", "urlencoded", "multipart", "multipart-file"])
@pytest.mark.gen_test
async def test_every_body_kind_gives_the_same_picture(client, staff, storage, mode):
    image = noisy(160, 120)
    _, status, body = await upload(client, staff, encode(image, "PNG"), chunk_size=20_001, mode=mode)
    assert body["code"] == 200, body
    stored = Image.open(io.BytesIO(stored_image(storage, body["data"]["ret_data"]["picture_url"])))
    assert stored.tobytes() == image.tobytes()


@pytest.mark.parametrize("mode", ["urlencoded", "multipart"])
def test_form_decoders_give_the_same_bytes_fed_one_byte_at_a_time(mode):
    data = os.urandom(5000)
    body, content_type = chunk_body(data, mode)
    for piece_size in (1, 3, 7, 64, len(body)):
        decoder = chunk_stream.decoder_for(content_type)
        out = b"".join(decoder.feed(body[i:i + piece_size]) for i in range(0, len(body), piece_size))
        assert out + decoder.finish() == data, piece_size


def test_urlencoded_decoder_reads_escapes_and_plain_plus_signs():
    data = bytes(range(256)) * 3
    text = base64.b64encode(data).decode()
    for body in (f"img_data={urllib.parse.quote(text, safe='')}", f"a=%41&img_data={text}&b=2",
                 f"img_data={text.replace('/', '%2f')}",
                 f"img_data={urllib.parse.quote('data:image/png;base64,' + text, safe='')}"):  # a browser's data URL
        decoder = chunk_stream.decoder_for("application/x-www-form-urlencoded")
        assert decoder.feed(body.encode()) + decoder.finish() == data


@pytest.mark.parametrize("body, content_type, message", [
    (b"img_data=!!!!", "application/x-www-form-urlencoded", "不是合法的 base64 文本"),
    (b"img_data=QUJD=", "application/x-www-form-urlencoded", "base64 文本长度不完整"),
    (b"img_data=QQ==QUJD", "application/x-www-form-urlencoded", "base64 文本在结尾的 = 之后还有内容"),
    (b"img_data=QUJD&img_data=QUJD", "application/x-www-form-urlencoded", "img_data 只能有一个"),
    (b"other=QUJD", "application/x-www-form-urlencoded", "该字段是必填项"),
    (b"--b\r\nContent-Disposition: form-data; name=\"img_data\"\r\n\r\nQUJD", "multipart/form-data; boundary=b",
     "multipart 内容不完整"),
    (b"", "multipart/form-data", "multipart 缺少 boundary"),
])
@pytest.mark.gen_test
async def test_bad_form_bodies_are_303_and_keep_nothing(client, staff, storage, body, content_type, message):
    status, answer = await client.request("POST", ADD, upload_params(staff, next(_upload_ids), img_name="a.jpg",
                                                                     chunk=0),
                                          raw=body, headers={"Content-Type": content_type})
    assert (status, answer["code"], answer["data"]) == (200, 303, {"img_data": [message]})
    assert staged_files(storage) == []


@pytest.mark.gen_test
async def test_empty_chunk_is_303(client, staff, storage):
    status, body = await send_chunk(client, staff, next(_upload_ids), 0, b"")
    assert (body["code"], body["data"]) == (303, {"img_data": ["分片内容为空"]})
    assert staged_files(storage) == []


# ---- a client that goes away mid-chunk ----

async def wait_for(predicate, timeout=60.0):
    """Waits until `predicate()` holds; the timeout only stops a test that would otherwise hang."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.gen_test
async def test_disconnect_mid_chunk_keeps_no_partial_chunk(client, staff, storage, base_url):
    upload_id = next(_upload_ids)
    query = urllib.parse.urlencode(upload_params(staff, upload_id, img_name="a.jpg", chunk=0))
    port = urllib.parse.urlsplit(base_url).port
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"POST {ADD}?{query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                 f"Content-Length: {CHUNK_LIMIT}\r\n\r\n".encode() + b"\xff" * 5000)
    await wait_for(lambda: any(name.endswith(".part") for name in staged_files(storage)))  # receiving
    sock.close()
    await wait_for(lambda: staged_files(storage) == [])  # the partial chunk is gone
    assert storage.staged_chunks((staff.id, upload_id)) == {} and storage.open_uploads(staff.id) == set()
    original = encode(noisy(100, 100))
    _, status, body = await upload(client, staff, original, upload_id=upload_id)  # the same upload works
    assert body["code"] == 200


# ---- limits ----

@pytest.mark.gen_test
async def test_chunk_over_the_byte_limit_is_413_before_the_body(client, staff, storage):
    status, body = await send_chunk(client, staff, next(_upload_ids), 0, b"x" * (CHUNK_LIMIT + 64 * 1024 + 1))
    assert (status, body["code"]) == (413, 413)
    assert staged_files(storage) == []


@pytest.mark.gen_test
async def test_decoded_chunk_over_the_limit_is_413_and_keeps_nothing(client, staff, storage):
    """Base64 in a form: the body is within its limit, the decoded bytes are not; found while streaming."""
    upload_id = next(_upload_ids)
    status, body = await send_chunk(client, staff, upload_id, 0, os.urandom(CHUNK_LIMIT + 1), "urlencoded")
    assert (status, body["code"], body["msg"]) == (413, 413, f"分片超过上限 {CHUNK_LIMIT} 字节")
    assert staged_files(storage) == []
    status, body = await send_chunk(client, staff, upload_id, 0, os.urandom(CHUNK_LIMIT), "urlencoded")
    assert body["code"] == 200  # exactly the limit is fine


@pytest.mark.gen_test
async def test_chunk_index_over_the_chunk_limit_is_413(client, staff, storage):
    upload_id = next(_upload_ids)
    status, body = await send_chunk(client, staff, upload_id, MAX_CHUNKS, b"abc")
    assert (status, body["code"]) == (413, 413) and staged_files(storage) == []
    status, body = await complete(client, staff, upload_id, MAX_CHUNKS + 1)
    assert (body["code"], list(body["data"])) == (303, ["chunk_num"])


@pytest.mark.gen_test
async def test_upload_over_the_byte_limit_is_413_and_keeps_the_earlier_chunks(client, staff, storage):
    upload_id = next(_upload_ids)
    full_chunks = UPLOAD_LIMIT // CHUNK_LIMIT
    for index in range(full_chunks):
        assert (await send_chunk(client, staff, upload_id, index, b"x" * CHUNK_LIMIT))[1]["code"] == 200
    room = UPLOAD_LIMIT - full_chunks * CHUNK_LIMIT
    for too_much in (room + 1, CHUNK_LIMIT + 1000):  # the body is read either way: an answer, not a reset
        status, body = await send_chunk(client, staff, upload_id, full_chunks, b"x" * too_much)
        assert (status, body["code"], body["msg"]) == (413, 413, f"上传文件超过上限 {UPLOAD_LIMIT} 字节")
    assert sorted(storage.staged_chunks((staff.id, upload_id))) == list(range(full_chunks))
    assert (await send_chunk(client, staff, upload_id, full_chunks, b"x" * room))[1]["code"] == 200
    # a full upload leaves no room at all: refused before the body
    status, body = await send_chunk(client, staff, upload_id, full_chunks + 1, b"x")
    assert (status, body["code"]) == (413, 413)


@pytest.mark.gen_test
async def test_open_uploads_per_user_are_limited(client, staff, make_user, company, storage):
    started = [next(_upload_ids) for _ in range(MAX_OPEN)]
    for upload_id in started:
        assert (await send_chunk(client, staff, upload_id, 0, encode(noisy(50, 50))))[1]["code"] == 200
    status, body = await send_chunk(client, staff, next(_upload_ids), 0, b"abc")
    assert (status, body["code"]) == (413, 413)
    assert (await send_chunk(client, staff, started[0], 1, b"more"))[1]["code"] == 200  # an open one goes on
    colleague = make_user(company)
    assert (await send_chunk(client, colleague, next(_upload_ids), 0, b"abc"))[1]["code"] == 200
    assert (await complete(client, staff, started[1], 1))[1]["code"] == 200  # finishing one frees a place
    assert (await send_chunk(client, staff, next(_upload_ids), 0, b"abc"))[1]["code"] == 200


# ---- the image pipeline ----

@pytest.mark.parametrize("data, message", [
    (b"just some text, not a picture" * 10, "不是支持的图片格式（JPEG、PNG、GIF、WEBP）"),
    (encode(noisy(64, 64), "BMP"), "不是支持的图片格式（JPEG、PNG、GIF、WEBP）"),
    (encode(noisy(400, 300))[:9000], "图片文件已损坏或不完整"),  # a truncated JPEG
    (encode(noisy(400, 300), "PNG")[:-2000], "图片文件已损坏或不完整"),  # a truncated PNG
])
@pytest.mark.gen_test
async def test_files_that_are_not_whole_allowed_images_are_refused(client, staff, storage, data, message):
    before = row_counts()
    _, status, body = await upload(client, staff, data)
    assert (status, body["code"], body["data"]) == (200, 303, {"img_data": [message]})
    assert row_counts() == before and picture_files(storage) == [] and staged_files(storage) == []


@pytest.mark.gen_test
async def test_decompression_bomb_is_refused_without_decoding(client, staff, storage):
    bomb = png_bomb()
    assert len(bomb) < UPLOAD_LIMIT
    before = row_counts()
    started = time.monotonic()
    _, status, body = await upload(client, staff, bomb)
    assert (body["code"], body["data"]) == (303, {"img_data": ["图片像素过多"]})
    assert time.monotonic() - started < 5  # refused from the header, not after decoding 400 million pixels
    assert row_counts() == before and picture_files(storage) == []


@pytest.mark.parametrize("side", [10000, 20000])  # over Pillow's warning threshold, and over its error one
@pytest.mark.gen_test
async def test_pillows_bomb_warning_is_a_refusal_even_under_a_raised_cap(client, staff, storage, settings, side):
    settings["upload"]["max_pixels"] = 10**9
    _, status, body = await upload(client, staff, png_bomb(side, side))
    assert (body["code"], body["data"]) == (303, {"img_data": ["图片像素过多"]})
    assert picture_files(storage) == []


@pytest.mark.gen_test
async def test_pixel_cap_comes_from_config(client, staff, storage, settings):
    settings["upload"]["max_pixels"] = 100 * 100
    assert (await upload(client, staff, encode(noisy(100, 100))))[2]["code"] == 200
    assert (await upload(client, staff, encode(noisy(101, 100))))[2]["data"] == {"img_data": ["图片像素过多"]}


@pytest.mark.gen_test
async def test_metadata_is_not_carried_over(client, staff, storage):
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 17.0)})
    original = encode(noisy(300, 200), exif=exif, comment=b"secret comment", icc_profile=b"ICC-PROFILE" * 40)
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)  # the test file does carry GPS
    _, status, body = await upload(client, staff, original)
    url = body["data"]["ret_data"]["picture_url"]
    for stored in (stored_image(storage, url), stored_image(storage, thumbnail_url(url))):
        image = Image.open(io.BytesIO(stored))
        assert not image.getexif() and not image.getexif().get_ifd(0x8825)
        assert not {"exif", "icc_profile", "comment"} & set(image.info)
        for secret in (b"Exif", b"SecretCam", b"secret comment", b"ICC-PROFILE"):
            assert secret not in stored


@pytest.mark.gen_test
async def test_png_text_and_profile_are_dropped(client, staff, storage):
    from PIL import PngImagePlugin
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Secret Person")
    original = encode(noisy(120, 80, "RGBA"), "PNG", pnginfo=info, icc_profile=b"ICC-PROFILE" * 40)
    _, _, body = await upload(client, staff, original)
    stored = stored_image(storage, body["data"]["ret_data"]["picture_url"])
    assert b"Secret Person" not in stored and b"ICC-PROFILE" not in stored
    assert Image.open(io.BytesIO(stored)).mode == "RGBA"


@pytest.mark.gen_test
async def test_exif_orientation_is_applied(client, staff, storage):
    image = Image.new("RGB", (80, 40), "red")
    image.paste(Image.new("RGB", (40, 40), "blue"), (40, 0))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    _, _, body = await upload(client, staff, encode(image, exif=exif, quality=95))
    row = models.ProductPicture.get_by_id(body["data"]["ret_data"]["picture_id"])
    stored = Image.open(io.BytesIO(stored_image(storage, row.url))).convert("RGB")
    assert stored.size == (row.width, row.height) == (40, 80)
    assert not stored.getexif().get(0x0112)
    top, bottom = stored.getpixel((20, 10)), stored.getpixel((20, 70))
    assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]  # the left side is now on top


@pytest.mark.parametrize("fmt, extension", [("GIF", "gif"), ("WEBP", "webp"), ("PNG", "png")])
@pytest.mark.gen_test
async def test_each_allowed_format_is_kept(client, staff, storage, fmt, extension):
    _, _, body = await upload(client, staff, encode(noisy(500, 100), fmt), img_name=f"x.{extension}")
    url = body["data"]["ret_data"]["picture_url"]
    assert url.endswith("." + extension)
    assert Image.open(storage.open(url)).format == Image.open(storage.open(thumbnail_url(url))).format == fmt


# ---- img_name ----

HOSTILE_NAMES = ["../../etc/passwd.jpg", "a/b.jpg", "a\\b.jpg", "x\x00.jpg", "x\n.jpg", "x\x1b.jpg",
                 "x\u202e.jpg", "a" * 300 + ".jpg", "evil.php", "photo.jpg.exe", "noextension", "..jpg"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.gen_test
async def test_hostile_img_name_is_303(client, staff, storage, name):
    upload_id = next(_upload_ids)
    status, body = await send_chunk(client, staff, upload_id, 0, encode(noisy(30, 30)), img_name=name)
    assert (body["code"], list(body["data"])) == (303, ["img_name"])
    assert staged_files(storage) == []
    await send_chunk(client, staff, upload_id, 0, encode(noisy(30, 30)))
    before = row_counts()
    status, body = await complete(client, staff, upload_id, 1, img_name=name)
    assert (body["code"], list(body["data"])) == (303, ["img_name"])
    assert row_counts() == before and picture_files(storage) == []


@pytest.mark.parametrize("fields, bad", [({"picture_type": 3}, "picture_type"), ({"chunk_num": 0}, "chunk_num"),
                                         ({"chunk_num": "x"}, "chunk_num"), ({"picture_type": ""}, "picture_type")])
@pytest.mark.gen_test
async def test_bad_completion_fields_are_303(client, staff, fields, bad):
    upload_id = next(_upload_ids)
    await send_chunk(client, staff, upload_id, 0, encode(noisy(30, 30)))
    params = upload_params(staff, upload_id, img_name="a.jpg", chunk_num=1, picture_type=1)
    before = row_counts()
    status, body = await client.request("POST", COMPLETE, {**params, **fields})
    assert (body["code"], list(body["data"])) == (303, [bad]) and row_counts() == before


@pytest.mark.gen_test
async def test_img_name_gives_no_path_only_an_allowed_extension(client, staff, storage):
    _, _, body = await upload(client, staff, encode(noisy(30, 30), "PNG"), img_name="假期 照片.JPEG")
    assert URL_PATTERN.match(body["data"]["ret_data"]["picture_url"])  # server-made, format from the content


# ---- who may complete or attach an upload ----

@pytest.mark.gen_test
async def test_another_company_cannot_complete_or_attach_the_upload(client, staff, outsider, storage):
    upload_id = next(_upload_ids)
    await send_chunk(client, staff, upload_id, 0, encode(noisy(60, 60)))
    before = row_counts()
    status, body = await complete(client, outsider, upload_id, 1)
    assert (body["code"], body["msg"]) == (302, "上传不存在或已过期")
    assert row_counts() == before and storage.staged_chunks((staff.id, upload_id))
    body = (await complete(client, staff, upload_id, 1))[1]
    picture_id = body["data"]["ret_data"]["picture_id"]
    answer = await client.post(PRODUCT_ADD, outsider, data={
        "product_type": 2, "name": "抢来的", "price": "1", "reason": "r", "cover_picture_id": f"[{picture_id}]"})
    assert answer["code"] == 302
    assert models.ProductPicture.get_by_id(picture_id).product_id is None


@pytest.mark.gen_test
async def test_completing_twice_gives_one_picture(client, staff, storage):
    original = encode(noisy(400, 300))
    upload_id, _, first = await upload(client, staff, original)
    again = (await complete(client, staff, upload_id, 1))[1]
    assert first == again and first["code"] == 200
    assert models.ProductPicture.select().count() == 1 and len(picture_files(storage)) == 2


@pytest.mark.gen_test
async def test_concurrent_completes_give_one_picture(client, staff, storage):
    upload_id = next(_upload_ids)
    chunks = split(encode(noisy(700, 500), quality=95), CHUNK_LIMIT)
    for index, piece in enumerate(chunks):
        await send_chunk(client, staff, upload_id, index, piece)
    answers = await asyncio.gather(*[complete(client, staff, upload_id, len(chunks)) for _ in range(4)])
    assert {body["code"] for _, body in answers} == {200}
    assert len({body["data"]["ret_data"]["picture_id"] for _, body in answers}) == 1
    assert models.ProductPicture.select().count() == 1
    await wait_for(lambda: len(picture_files(storage)) == 2)  # the losers' files are removed
    assert staged_files(storage) == []


@pytest.mark.gen_test
async def test_a_failure_while_recording_leaves_no_file_and_the_upload_can_be_retried(client, staff, storage,
                                                                                     monkeypatch):
    def database_gone(**fields):
        raise peewee.OperationalError("the database went away")

    monkeypatch.setattr(models.ProductPicture, "create", database_gone)
    upload_id, status, body = await upload(client, staff, encode(noisy(300, 200)))
    assert (status, body["code"]) == (500, 500)
    assert picture_files(storage) == [] and storage.staged_chunks((staff.id, upload_id))
    monkeypatch.undo()
    assert (await complete(client, staff, upload_id, 1))[1]["code"] == 200


# ---- signing ----

@pytest.mark.gen_test
async def test_bad_signature_is_refused_before_the_body(client, staff, storage):
    params = upload_params(staff, next(_upload_ids), img_name="a.jpg", chunk=0)
    params["rand_str"] = "0" * 32
    status, body = await client.request("POST", ADD, params, raw=b"x" * 1000,
                                        headers={"Content-Type": "application/octet-stream"})
    assert (status, body["code"], body["msg"]) == (200, 400, "token异常")
    assert staged_files(storage) == []


@pytest.mark.gen_test
async def test_upload_signature_may_be_reused_but_not_beyond_the_expiry(client, staff, settings):
    upload_id = next(_upload_ids)
    for _ in range(2):  # the same signature for a re-sent chunk
        assert (await send_chunk(client, staff, upload_id, 0, b"abc"))[1]["code"] == 200
    stale = int((time.time() - settings["upload"]["expire_seconds"] - 60) * 1000)
    assert (await send_chunk(client, staff, stale, 0, b"abc"))[1]["code"] == 400


@pytest.mark.gen_test
async def test_wrong_method_is_402(client, staff):
    assert (await client.get(ADD, staff, img_name="a.jpg", chunk=0))["code"] == 402


# ---- a picture in a product, served under /statics/ ----

async def add_product_with_cover(client, staff, picture_id):
    answer = await client.post(PRODUCT_ADD, staff, data={
        "product_type": 2, "name": "雷达名片", "price": "99", "reason": "好用", "cover_picture_id": f"[{picture_id}]"})
    assert answer["code"] == 200, answer
    return models.Product.get(models.Product.name == "雷达名片")


@pytest.mark.gen_test
async def test_cover_picture_shows_in_product_list_and_is_served(client, staff, storage, http_client, base_url):
    _, _, body = await upload(client, staff, encode(noisy(640, 480)), picture_type=1)
    ret = body["data"]["ret_data"]
    await add_product_with_cover(client, staff, ret["picture_id"])
    listed = await client.get(PRODUCT_LIST, staff, product_type=2)
    assert [row["cover_picture"] for row in listed["data"]["ret_data"]] == [ret["picture_url"]]
    response = await http_client.fetch(f"{base_url}/{ret['picture_url']}")
    assert response.body == stored_image(storage, ret["picture_url"])
    assert response.headers["Content-Type"] == "image/jpeg"
    assert "max-age=31536000" in response.headers["Cache-Control"] and response.headers["Etag"]
    thumb = await http_client.fetch(f"{base_url}/{thumbnail_url(ret['picture_url'])}")
    assert Image.open(io.BytesIO(thumb.body)).size == (400, 300)


@pytest.mark.gen_test
async def test_deleting_the_product_deletes_the_files(client, make_user, company, storage):
    admin = make_user(company, role=models.ROLE_ADMIN)
    _, _, body = await upload(client, admin, encode(noisy(200, 200)))
    product = await add_product_with_cover(client, admin, body["data"]["ret_data"]["picture_id"])
    assert len(picture_files(storage)) == 2
    assert (await client.post(PRODUCT_DELETE.format(product.id), admin))["code"] == 200
    assert picture_files(storage) == []


@pytest.mark.gen_test
async def test_dropping_a_cover_on_update_deletes_its_files(client, staff, storage):
    first = (await upload(client, staff, encode(noisy(200, 200))))[2]["data"]["ret_data"]
    second = (await upload(client, staff, encode(noisy(200, 200, seed=2))))[2]["data"]["ret_data"]
    product = await add_product_with_cover(client, staff, first["picture_id"])
    answer = await client.post(f"/zhugeleida/admin/product/update/{product.id}", staff, data={
        "product_type": 2, "name": "雷达名片", "price": "99", "reason": "好用",
        "cover_picture_id": f"[{second['picture_id']}]"})
    assert answer["code"] == 200, answer
    assert picture_files(storage) == sorted([second["picture_url"], thumbnail_url(second["picture_url"])])


@pytest.mark.parametrize("path", ["/statics/..%2f..%2fdata/test.db", "/statics/%2e%2e/data/test.db",
                                  "/statics/../data/uploads", "/statics/zhugeleida/imgs/qiyeweixin/product/",
                                  "/statics/zhugeleida/imgs/qiyeweixin/product/.x.jpg.123.tmp",
                                  "/data/test.db", "/statics/nothing.jpg"])
@pytest.mark.gen_test
async def test_nothing_else_is_reachable(client, staff, storage, path, http_client, base_url):
    hidden = storage.root / "zhugeleida/imgs/qiyeweixin/product/.x.jpg.123.tmp"
    hidden.parent.mkdir(parents=True, exist_ok=True)
    hidden.write_bytes(b"partial")
    await send_chunk(client, staff, next(_upload_ids), 0, b"staged bytes")
    response = await http_client.fetch(base_url + path, raise_error=False)
    assert response.code in (403, 404) and b"staged bytes" not in response.body and b"partial" not in response.body


# ---- housekeeping ----

def age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.mark.gen_test
async def test_expired_uploads_are_deleted(client, staff, storage, settings):
    old, fresh = next(_upload_ids), next(_upload_ids)
    for upload_id in (old, fresh):
        await send_chunk(client, staff, upload_id, 0, b"abc")
    age(storage.staging / str(staff.id) / str(old), settings["upload"]["expire_seconds"] + 1)
    assert pictures.expire_uploads(storage, settings) == 1
    assert storage.open_uploads(staff.id) == {fresh}


@pytest.mark.gen_test
async def test_start_up_removes_orphaned_picture_files_only(client, staff, storage, app, settings):
    _, _, body = await upload(client, staff, encode(noisy(500, 500)))
    kept = body["data"]["ret_data"]["picture_url"]
    folder = storage.root / "zhugeleida/imgs/qiyeweixin/product"
    crash_left = [folder / "20200101000000000000abcdef.jpg", folder / "20200101000000000000abcdef_thumb.jpg",
                  folder / ".20200101.jpg.x.tmp"]
    young = folder / "20990101000000000000abcdef.jpg"  # an upload being completed right now elsewhere
    console = storage.root / "console" / "app.js"
    console.parent.mkdir(parents=True)
    for path in [*crash_left, young, console]:
        path.write_bytes(b"x")
    for path in [*crash_left, console, storage.path_for(kept), storage.path_for(thumbnail_url(kept))]:
        age(path, settings["upload"]["orphan_grace_seconds"] + 1)
    jobs = start_background_jobs(app)
    try:
        await wait_for(lambda: not any(p.exists() for p in crash_left))
    finally:
        for job in jobs:
            job.stop()
    assert picture_files(storage) == sorted([kept, thumbnail_url(kept), storage.url_for(young.name)])
    assert console.exists()


# ---- what the decoders and Pillow must refuse or reduce -------------------------------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
async def test_an_animated_picture_keeps_only_its_first_frame(client, staff, storage, fmt):
    red, green, blue = (Image.new("RGB", (60, 40), color) for color in ("red", "green", "blue"))
    original = encode(red, fmt, save_all=True, append_images=[green, blue], duration=100, loop=0)
    assert Image.open(io.BytesIO(original)).n_frames == 3
    _, status, body = await upload(client, staff, original, img_name=f"moving.{fmt.lower()}")
    assert (status, body["code"]) == (200, 200), body
    stored = Image.open(io.BytesIO(stored_image(storage, body["data"]["ret_data"]["picture_url"])))
    assert stored.format == fmt and getattr(stored, "n_frames", 1) == 1
    r, g, b = stored.convert("RGB").getpixel((0, 0))
    assert r > 200 and g < 40 and b < 40  # the first frame's colour


@pytest.mark.gen_test
async def test_a_png_with_a_bad_checksum_is_refused(client, staff, storage):
    png = bytearray(encode(noisy(64, 64), "PNG"))
    idat = png.index(b"IDAT")
    length = struct.unpack(">I", png[idat - 4:idat])[0]
    png[idat + 4 + length] ^= 0xFF  # the first byte of IDAT's CRC: the pixels still decode
    before = row_counts()
    _, status, body = await upload(client, staff, bytes(png))
    assert (status, body["code"], list(body["data"])) == (200, 303, ["img_data"])
    assert row_counts() == before and picture_files(storage) == []


@pytest.mark.parametrize("data", [b"ABCD", b"ABCDE", b"ABCDEF", bytes(range(256))], ids=["none", "=", "==", "long"])
def test_base64_split_anywhere_gives_the_same_bytes_and_nothing_may_follow_the_padding(data):
    """A client's pieces arrive cut wherever the network cut them: inside a group of four, between a
    padding '=' and the next, or right after the padding."""
    text = base64.b64encode(data)
    for cut in range(len(text) + 1):
        decoder = chunk_stream.Base64Decoder()
        assert decoder.feed(text[:cut]) + decoder.feed(text[cut:]) + decoder.finish() == data, cut
    if not text.endswith(b"="):
        return
    followed = text + b"QUJD"
    for cut in range(len(text) - 2, len(followed) + 1):
        decoder = chunk_stream.Base64Decoder()
        with pytest.raises(FormInvalid) as refused:
            decoder.feed(followed[:cut])
            decoder.feed(followed[cut:])
            decoder.finish()
        assert refused.value.data == {"img_data": ["base64 文本在结尾的 = 之后还有内容"]}, cut


def test_pictures_are_encoded_into_a_file_with_a_descriptor_so_the_loop_keeps_serving(monkeypatch):
    """Pillow encodes with the GIL released only into a file with a descriptor: into a BytesIO it holds
    the GIL for every 64 KB of output, and a small GET on the event loop waited 100-250 ms behind the
    completions. Each save, picture and thumbnail, gets such a file, and the result is the same picture."""
    from services import images
    original = io.BytesIO()
    Image.new("RGB", (640, 480), "teal").save(original, "JPEG")
    descriptors = []
    save = Image.Image.save

    def watched_save(image, fp, *args, **kwargs):
        descriptors.append(fp.fileno())  # a BytesIO raises io.UnsupportedOperation here
        return save(image, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", watched_save)
    picture = images.process(io.BytesIO(original.getvalue()), 10**7, 100, 85)
    assert len(descriptors) == 2 and all(isinstance(fd, int) for fd in descriptors)
    with Image.open(io.BytesIO(picture.data)) as stored, Image.open(io.BytesIO(picture.thumbnail)) as thumbnail:
        assert (stored.format, stored.size, thumbnail.size) == ("JPEG", (640, 480), (100, 75))
