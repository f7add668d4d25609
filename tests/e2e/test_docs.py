"""The API reference at /docs: every operation of /openapi.json is listed, and a signed-in person can send
a call from the page (signed by the page, as the console signs)."""
import json
import urllib.request

from playwright.sync_api import expect

from tests.e2e.test_console import ADMIN, view


def described_operations(server):
    with urllib.request.urlopen(server + "/openapi.json") as answer:
        document = json.loads(answer.read())
    return [(method, path) for path, methods in document["paths"].items() for method in methods]


def test_docs_lists_every_operation_and_sends_a_signed_call(server, open_page, screenshot):
    page = open_page()
    page.goto(server + "/docs")
    docs = view(page, "docs")
    cards = docs.locator("details.operation")
    expect(cards).to_have_count(len(described_operations(server)))
    listing = docs.locator('details.operation[data-path="/zhugeleida/admin/product/product_list"]')
    expect(listing.locator("summary")).to_contain_text("产品列表")
    screenshot(page, "1-operations")

    listing.locator("summary").click()
    listing.get_by_label("product_type", exact=True).fill("2")
    listing.get_by_role("button", name="发送").click()
    answer = listing.locator("pre.answer")
    expect(answer).to_contain_text("请先登录")  # nothing to sign with yet

    login = docs.locator(".docs-login")
    login.get_by_label("用户名").fill(ADMIN[0])
    login.get_by_label("密码").fill(ADMIN[1])
    login.get_by_role("button", name="登录").click()
    expect(login).to_contain_text("已登录")
    listing.get_by_role("button", name="发送").click()
    expect(answer).to_contain_text('"code": 200')
    expect(answer).to_contain_text('"data_count"')
    screenshot(page, "2-a-signed-call")

    docs.locator(".docs-filter").fill("upload_complete")
    expect(docs.locator("details.operation:visible")).to_have_count(1)
