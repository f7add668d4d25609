"""The console's files as the service serves them, without a browser: the page at `/`, every asset it names,
nothing loaded from elsewhere, and the usual 404 envelope for a missing asset. (tests/e2e drives it.)"""
import json
import re

import pytest

from handlers.console import CONSOLE_ROOT

ASSET = re.compile(r'(?:src|href)="(/console/[^"]+)"')
# Anything that would fetch from another host: absolute or protocol-relative URLs, CSS imports.
EXTERNAL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import""", re.IGNORECASE)


async def fetch(http_client, base_url, path, **kwargs):
    return await http_client.fetch(base_url + path, raise_error=False, **kwargs)


@pytest.mark.gen_test
async def test_root_serves_the_console_page_with_a_strict_policy(http_client, base_url):
    response = await fetch(http_client, base_url, "/")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    page = response.body.decode()
    assert "<title>诸葛雷达 · 管理后台</title>" in page
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "connect-src 'self'" in policy


@pytest.mark.gen_test
async def test_every_asset_the_page_names_is_served(http_client, base_url):
    page = (await fetch(http_client, base_url, "/")).body.decode()
    assets = ASSET.findall(page)
    assert {"/console/style.css", "/console/md5.js", "/console/api.js", "/console/app.js"} <= set(assets)
    for path in assets:
        response = await fetch(http_client, base_url, path)
        assert response.code == 200, path
        assert response.body == (CONSOLE_ROOT / path.removeprefix("/console/")).read_bytes()
        kind = "text/css" if path.endswith(".css") else "javascript"
        assert kind in response.headers["Content-Type"] and "charset=UTF-8" in response.headers["Content-Type"]


@pytest.mark.gen_test
async def test_an_unchanged_asset_revalidates_to_304(http_client, base_url):
    first = await fetch(http_client, base_url, "/console/app.js")
    assert first.headers["Cache-Control"] == "no-cache"
    again = await fetch(http_client, base_url, "/console/app.js", headers={"If-None-Match": first.headers["Etag"]})
    assert again.code == 304


def test_no_console_file_loads_anything_from_another_host():
    files = sorted(CONSOLE_ROOT.iterdir())
    assert len(files) >= 5
    for path in files:
        text = path.read_text(encoding="utf-8")
        # The SVG namespace is a name, not a fetch.
        found = [m for m in EXTERNAL.findall(text) if m != "http://www.w3.org"]
        assert not found, f"{path.name} refers to {found}"


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/console/missing.js", "/console/../config.py", "/console/%2e%2e/server.py"])
async def test_a_missing_or_outside_asset_answers_the_404_envelope(http_client, base_url, path):
    response = await fetch(http_client, base_url, path)
    assert response.code in (403, 404)
    body = json.loads(response.body)
    assert body["code"] == response.code and body["data"] == {}
    assert b"def " not in response.body  # no source leaked


@pytest.mark.gen_test
async def test_the_api_still_answers_beside_the_console(http_client, base_url):
    response = await fetch(http_client, base_url, "/zhugeleida/admin/nothing-here")
    assert response.code == 404 and json.loads(response.body)["code"] == 404


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/", "/console/app.js"])
async def test_a_wrong_method_answers_402_like_the_api(http_client, base_url, path):
    response = await fetch(http_client, base_url, path, method="POST", body=b"")
    assert response.code == 200
    assert json.loads(response.body) == {"code": 402, "msg": "请求方式异常", "data": {}}
