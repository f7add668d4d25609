"""The 操作记录 screen: an administrator makes some changes (one refused) and finds each in the trail, with who,
what and how it ended; the filters narrow it down. Only administrators see the screen."""
from playwright.sync_api import expect

import models
from tests.e2e.conftest import PHONE
from tests.e2e.test_console import ADMIN, STAFF, add_role_twice, log_in, open_view


def test_changes_are_found_in_the_audit_trail_and_filtered(server, open_page, screenshot, tmp_path):
    page = open_page()
    log_in(page, server, ADMIN)
    add_role_twice(page, "审计专员")  # added, then refused: the name is taken
    role_id = models.Role.get(models.Role.name == "审计专员").id
    users = open_view(page, "用户管理", "users")
    row = users.locator("table.data tbody tr", has_text="李四")
    row.get_by_role("button", name="禁用").click()
    expect(row.locator(".badge")).to_have_text("未启用")
    lisi = models.User.get(models.User.login_name == "lisi").id
    admin = models.User.get(models.User.login_name == ADMIN[0]).id

    trail = open_view(page, "操作记录", "audit")
    rows = trail.locator("table.data tbody tr")
    expect(rows).to_have_count(4)  # newest first: the status change, the refused add, the add, the login
    expect(rows.locator("td[data-label=操作]")).to_have_text(
        [f"user/update_status/{lisi}", "role/add/0", "role/add/0", "login"])
    expect(rows.locator("td[data-label=结果]")).to_have_text(["成功", "失败（300）", "成功", "成功"])
    expect(rows.locator("td[data-label=对象]")).to_have_text(
        [f"用户 #{lisi}", "角色", f"角色 #{role_id}", f"用户 #{admin}"])
    expect(rows.locator("td[data-label=用户]")).to_have_text(["admin"] * 4)
    expect(rows.first.locator("td[data-label=地址]")).to_have_text("127.0.0.1")

    trail.get_by_label("对象类型").select_option(label="角色")
    trail.get_by_role("button", name="查询").click()
    expect(rows.locator("td[data-label=结果]")).to_have_text(["失败（300）", "成功"])
    trail.get_by_label("对象ID").fill(str(role_id))
    trail.get_by_role("button", name="查询").click()
    expect(rows.locator("td[data-label=对象]")).to_have_text([f"角色 #{role_id}"])
    expect(trail.locator(".page-info")).to_have_text("第 1 / 1 页，共 1 条")
    trail.get_by_label("对象ID").fill("")
    trail.get_by_label("对象类型").select_option(label="全部")
    trail.get_by_label("开始日期").fill("2000-01-01")
    trail.get_by_label("结束日期").fill("2000-01-02")
    trail.get_by_role("button", name="查询").click()
    expect(trail.locator(".results .empty")).to_have_text("暂无数据")
    trail.get_by_label("开始日期").fill("")
    trail.get_by_label("结束日期").fill("")
    trail.get_by_role("button", name="查询").click()
    expect(rows).to_have_count(4)
    page.screenshot(path=tmp_path / "audit-trail.png", full_page=True)  # for the reviewer, beside the run's
    screenshot(page, "audit-trail")
    page.set_viewport_size(PHONE)
    expect(rows.first.locator("td[data-label=结果]")).to_be_visible()
    page.screenshot(path=tmp_path / "audit-trail-phone.png", full_page=True)
    screenshot(page, "audit-trail-phone")


def test_only_administrators_see_the_audit_trail(server, open_page):
    page = open_page()
    log_in(page, server, STAFF)
    expect(page.locator("header nav").get_by_role("link", name="用户管理")).to_be_visible()
    expect(page.locator("header nav").get_by_role("link", name="操作记录")).to_have_count(0)
