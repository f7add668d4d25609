"""The old admin web app is a single-page app served from its own host: a page from another origin (a second
local port) logs in and lists products in Chromium, through CORS preflights and signed calls."""
import http.server
import threading

import pytest
from playwright.sync_api import expect

import models

APP_PORTS = range(8610, 8630)  # a port of this range set aside for the other origin's page

# The old app's way: log in, keep the token, sign each call with md5(timestamp + token). The JSON login and
# the X-Request-Id header make the browser send preflights first; the answers' X-Request-Id is read back.
PAGE = """<!doctype html>
<meta charset="utf-8">
<title>old admin app</title>
<script src="{api}/console/md5.js"></script>
<ul id="products"></ul>
<p id="status">working</p>
<script>
(async function () {{
  const base = "{api}/zhugeleida/admin/";
  const status = document.getElementById("status");
  try {{
    const login = await (await fetch(base + "login", {{method: "POST",
      headers: {{"Content-Type": "application/json"}},
      body: JSON.stringify({{username: "admin", password: "admin123"}})}})).json();
    const timestamp = String(Date.now());
    const query = new URLSearchParams({{rand_str: md5(timestamp + login.data.token), timestamp,
      user_id: login.data.user_id, product_type: 1, length: 100}});
    const response = await fetch(base + "product/product_list?" + query, {{headers: {{"X-Request-Id": "old-app-1"}}}});
    const body = await response.json();
    for (const row of body.data.ret_data) {{
      const item = document.createElement("li");
      item.textContent = row.name;
      document.getElementById("products").append(item);
    }}
    status.textContent = `code ${{body.code}} request ${{response.headers.get("X-Request-Id")}}`;
  }} catch (error) {{
    status.textContent = "failed: " + error;
  }}
}})();
</script>
"""


def serve_page(html):
    """A plain HTTP server on a free port of APP_PORTS answering `html` to every GET; (server, origin)."""
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    for port in APP_PORTS:
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Page)
        except OSError:
            continue
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{port}"
    pytest.fail(f"no free port in {APP_PORTS.start}-{APP_PORTS.stop - 1} for the other origin's page")


@pytest.fixture
def other_origin(server):
    page_server, origin = serve_page(PAGE.format(api=server))
    yield origin
    page_server.shutdown()
    page_server.server_close()


def test_a_page_from_another_origin_logs_in_and_lists_products(server, other_origin, open_page):
    page = open_page()
    page.goto(other_origin + "/")  # the same host, another port: another origin
    expect(page.locator("#status")).to_have_text("code 200 request old-app-1")
    company_products = [p.name for p in models.Product.select().where(
        models.Product.product_type == models.PRODUCT_COMPANY, models.Product.status != models.PRODUCT_OFF_SHELF)]
    expect(page.locator("#products li")).to_have_count(len(company_products))
    assert sorted(page.locator("#products li").all_text_contents()) == sorted(company_products)
