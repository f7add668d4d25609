"""The admin console in a real browser against the real service: log in, upload pictures in chunks, create a
product with them, find it, change its status, edit and delete it, see the dashboard's chart drawn, manage
users, log out; on a desktop and on a phone-sized screen."""
import datetime
import hashlib
import io
import os
import re
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image
from playwright.sync_api import expect

import models
from services import demo
from tests.e2e.conftest import PHONE

ADMIN = ("admin", "admin123")
STAFF = ("zhangsan", "zhangsan123")
CHUNK_BYTES = 512 * 1024  # api.js's chunk size
WINDOWS = ("count_data", "yesterday_data", "nearly_seven_days", "nearly_thirty_days")  # the table's columns


def noise_png(path, side):
    """A PNG that does not compress: side 600 gives about 1.1 MB, so three chunks."""
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path, "PNG")
    return path


def small_png(path, color):
    buffer = io.BytesIO()
    Image.new("RGB", (120, 80), color).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return path


def view(page, name):
    """The console's main area while it shows `name`, its hash path ("dashboard", "products/new"; a name
    ending in "/" matches every view it starts, e.g. "products/edit/"). The console draws a screen in its
    hashchange handler, which runs after a click on a link has returned: every locator of a screen starts
    here, so it waits for that screen and never finds a namesake on the one before."""
    operator = "^=" if name.endswith("/") else "="
    return page.locator(f'main[data-view{operator}"{name}"]')


def open_view(page, link, name):
    """Follows a link of the top navigation and answers the view once the console has drawn it."""
    page.locator("header nav").get_by_role("link", name=link).click()
    main = view(page, name)
    expect(main).to_be_visible()
    return main


def log_in(page, base_url, login):
    page.goto(base_url + "/")
    form = view(page, "login")
    form.get_by_label("登录名").fill(login[0])
    form.get_by_label("密码").fill(login[1])
    form.get_by_role("button", name="登录").click()
    # The dashboard has loaded when its figures, its table and its chart are all there.
    dashboard = view(page, "dashboard")
    for drawn in ("dd[data-key=company_name]", "section table.data", "svg.chart"):
        expect(dashboard.locator(drawn)).to_be_visible()
    return dashboard


def notice(page):
    return page.locator("#notice")


def add_role_twice(page, name):
    """Adds the role `name` on the roles screen, then once more: the first is added, the second refused with
    code 300 (the name is taken). Returns the roles view."""
    roles = open_view(page, "角色管理", "roles")
    panel = roles.locator("section.panel")
    for outcome in ("添加成功", "（代码 300）"):
        roles.get_by_role("button", name="新增角色").click()
        panel.get_by_label("角色名称").fill(name)
        panel.get_by_role("button", name="保存").click()
        expect(notice(page)).to_contain_text(outcome)
    return roles


def product_row(products, name):
    """A row of the product list (`products`: the products view)."""
    return products.locator("table.data tbody tr", has_text=name)


def chart_points(page):
    """The drawn line's points as (x, y) pairs, in SVG units (y grows downwards)."""
    pairs = view(page, "dashboard").locator("svg.chart polyline").get_attribute("points").split()
    return [tuple(float(n) for n in pair.split(",")) for pair in pairs]


def assert_chart_draws(page, answer):
    """The chart shows `answer` (line_info's points): a dot per day titled with its date and value, left to
    right, each point's height in proportion to its value, and a visible rise from the lowest to the highest."""
    values = [p["value"] for p in answer]
    titles = view(page, "dashboard").locator("svg.chart circle.dot title").all_text_contents()
    assert titles == [f"{p['statics_date']}: {p['value']}" for p in answer]
    points = chart_points(page)
    xs, ys = [x for x, _ in points], [y for _, y in points]
    assert len(points) == len(values) and xs == sorted(set(xs))
    low, high = values.index(min(values)), values.index(max(values))
    if values[high] == values[low]:
        assert len(set(ys)) == 1
        return
    per_unit = (ys[low] - ys[high]) / (values[high] - values[low])
    assert ys[low] - ys[high] > 20  # pixels: a rise one can see
    assert ys == pytest.approx([ys[high] + (values[high] - v) * per_unit for v in values], abs=0.2)


def test_md5_in_the_page_matches_python(server, open_page):
    page = open_page()
    page.goto(server + "/")
    texts = ["", "a", "1528209075753" + "0" * 32, "诸葛雷达", *("x" * n for n in (55, 56, 63, 64, 65, 200))]
    assert page.evaluate("texts => texts.map(md5)", texts) == [hashlib.md5(t.encode()).hexdigest() for t in texts]


def test_a_wrong_password_shows_the_envelope_message(server, open_page, screenshot):
    page = open_page()
    page.goto(server + "/")
    form = view(page, "login")
    form.get_by_label("登录名").fill("admin")
    form.get_by_label("密码").fill("wrong-password")
    form.get_by_role("button", name="登录").click()
    expect(form.get_by_role("alert")).to_have_text("账号密码错误（代码 401）")
    screenshot(page, "login-refused")


def test_a_token_that_stopped_working_sends_back_to_login_with_the_message(server, open_page):
    page = open_page()
    log_in(page, server, ADMIN)
    models.User.update(token="0" * 32).where(models.User.login_name == ADMIN[0]).execute()
    page.locator("header nav").get_by_role("link", name="产品管理").click()
    expect(notice(page)).to_contain_text("token异常（代码 400）")
    expect(view(page, "login")).to_be_visible()


def test_admin_walk_upload_create_find_change_status_dashboard_logout(server, open_page, screenshot, tmp_path):
    page = open_page()
    uploads = []
    page.on("request", lambda r: uploads.append(r.url) if "/product/add_picture/" in r.url
            or "/product/upload_complete/" in r.url else None)

    page.goto(server + "/")
    screenshot(page, "1-login")
    with page.expect_response(lambda r: "/home_page/acount_data" in r.url) as overview_answer:
        dashboard = log_in(page, server, ADMIN)

    # Dashboard: the figures, the four windows as the service answered them, and the curve drawn.
    expect(dashboard.locator("dd[data-key=company_name]")).to_have_text("诸葛雷达演示公司")
    expect(dashboard.locator("dd[data-key=user_count]")).to_have_text(str(models.User.select().count()))
    windows = overview_answer.value.json()["data"]["ret_data"]
    rows = dashboard.locator("table.overview tbody tr")
    expect(rows).to_have_count(6)
    expect(rows.filter(has_text="浏览总数").locator("td")).to_have_text(
        ["浏览总数", *(str(windows[w]["browse_num"]) for w in WINDOWS)])
    expect(dashboard.locator("svg.chart")).to_have_attribute("aria-label", "客户总数（近7天）")
    expect(dashboard.locator("svg.chart circle.dot")).to_have_count(7)
    with page.expect_response(lambda r: "/home_page/line_info" in r.url) as line_answer:
        dashboard.get_by_role("button", name="近15天").click()
    expect(dashboard.locator("svg.chart")).to_have_attribute("data-points", "15")
    assert_chart_draws(page, line_answer.value.json()["data"]["ret_data"])
    with page.expect_response(lambda r: "/home_page/line_info" in r.url) as line_answer:
        dashboard.get_by_label("指标").select_option(label="浏览总数")
    expect(dashboard.locator("svg.chart")).to_have_attribute("aria-label", "浏览总数（近15天）")
    views = line_answer.value.json()["data"]["ret_data"]
    assert len(views) == 15 and max(p["value"] for p in views) > min(p["value"] for p in views)  # demo data
    assert_chart_draws(page, views)
    screenshot(page, "2-dashboard")

    # A new product: a cover in three chunks, a title, a text and an intro picture, in that order.
    open_view(page, "产品管理", "products").get_by_role("button", name="新增产品").click()
    form = view(page, "products/new")
    expect(form.get_by_role("heading", name="新增产品")).to_be_visible()
    cover = noise_png(tmp_path / "封面.png", 600)
    form.locator("fieldset.covers input[type=file]").set_input_files(cover)
    expect(form.locator(".upload.done", has_text="封面.png").locator("progress")).to_have_attribute("value", "100")
    expect(form.locator(".pictures figure img")).to_have_count(1)
    form.get_by_label("产品名称").fill("端到端测试门票")
    form.get_by_label("价格").fill("50-1380元")
    form.get_by_label("推荐理由").fill("一起度过美好时光")
    form.get_by_role("button", name="+ 标题").click()
    form.get_by_label("标题", exact=True).fill("第一章")
    form.get_by_role("button", name="+ 正文").click()
    form.get_by_label("正文", exact=True).fill("正文内容")
    form.locator("fieldset.intro input[type=file]").set_input_files(small_png(tmp_path / "intro.png", "#3366cc"))
    expect(form.locator(".articles li[data-kind=图片] img")).to_have_count(1)
    screenshot(page, "3-product-form")
    form.get_by_role("button", name="保存").click()
    expect(notice(page)).to_contain_text("添加成功")
    products = view(page, "products")

    # Every chunk and the completing call of one file share one timestamp (the upload's id).
    cover_calls = [parse_qs(urlparse(url).query) for url in uploads if "封面" in parse_qs(urlparse(url).query)
                   .get("img_name", [""])[0]]
    chunks = [q["chunk"][0] for q in cover_calls if "chunk" in q]
    assert chunks == [str(i) for i in range(-(-cover.stat().st_size // CHUNK_BYTES))] and len(chunks) == 3
    assert len({q["timestamp"][0] for q in cover_calls}) == 1
    assert [q["chunk_num"][0] for q in cover_calls if "chunk_num" in q] == ["3"]

    # Found in the list, its cover shown; the database holds what the form said, in order.
    row = product_row(products, "端到端测试门票")
    expect(row).to_have_count(1)
    expect(products.locator("table.data thead")).to_be_visible()  # a real table on a desktop
    expect(row.locator("img.thumb")).to_have_js_property("naturalWidth", 600)
    screenshot(page, "4-products")
    product = models.Product.get(models.Product.name == "端到端测试门票")
    assert (product.price, product.reason, product.product_type) == ("50-1380元", "一起度过美好时光", 1)
    articles = [(a.order, a.title, a.content) for a in product.articles.order_by(models.ProductArticle.order)]
    assert articles == [(1, "第一章", None), (2, None, "正文内容")]
    intro = [p.order for p in product.pictures.where(models.ProductPicture.picture_type == models.PICTURE_INTRO)]
    assert intro == [3]

    # Off the shelf: it leaves the on-shelf list and shows under 已下架.
    row.get_by_role("button", name="下架").click()
    expect(notice(page)).to_contain_text("已下架")
    expect(product_row(products, "端到端测试门票")).to_have_count(0)
    products.get_by_label("状态").select_option(label="已下架")
    products.get_by_role("button", name="查询").click()
    expect(product_row(products, "端到端测试门票").locator(".badge")).to_have_text("已下架")
    assert models.Product.get_by_id(product.id).status == models.PRODUCT_OFF_SHELF
    screenshot(page, "5-products-off-shelf")

    # Log out: back to the login form, and the old token no longer signs.
    old_token = page.evaluate("Api.session.token")
    page.locator("header").get_by_role("button", name="退出").click()
    expect(view(page, "login")).to_be_visible()
    expect(notice(page)).to_contain_text("退出成功")
    assert models.User.get(models.User.login_name == ADMIN[0]).token != old_token
    assert page.evaluate("localStorage.length") == 0
    screenshot(page, "6-logged-out")


def test_edit_keeps_the_order_and_delete_asks_first(server, open_page, screenshot, tmp_path):
    page = open_page()
    log_in(page, server, ADMIN)
    products = open_view(page, "产品管理", "products")
    products.get_by_role("tab", name="个人产品").click()
    expect(products.get_by_role("tab", name="个人产品")).to_have_attribute("aria-selected", "true")
    products.get_by_role("button", name="新增产品").click()
    form = view(page, "products/new")
    form.get_by_label("产品类型").select_option(label="个人产品")
    form.locator("fieldset.covers input[type=file]").set_input_files(
        [small_png(tmp_path / "a.png", "red"), small_png(tmp_path / "b.png", "green")])
    expect(form.locator(".pictures figure img")).to_have_count(2)
    form.get_by_label("产品名称").fill("待编辑产品")
    form.get_by_label("价格").fill("100")
    form.get_by_label("推荐理由").fill("理由")
    form.get_by_role("button", name="+ 正文").click()
    form.get_by_label("正文", exact=True).fill("第一段")
    form.get_by_role("button", name="保存").click()
    expect(product_row(products, "待编辑产品")).to_have_count(1)

    # The edit form is filled from product_single; swap the covers, add a title above the text, save.
    product_row(products, "待编辑产品").get_by_role("button", name="编辑").click()
    form = view(page, "products/edit/")
    expect(form.get_by_role("heading", name="编辑产品")).to_be_visible()
    expect(form.get_by_label("产品名称")).to_have_value("待编辑产品")
    expect(form.get_by_label("正文", exact=True)).to_have_value("第一段")
    expect(form.locator(".pictures figure img")).to_have_count(2)
    first_cover = form.locator(".pictures figure img").first.get_attribute("src")
    form.locator(".pictures figure").nth(1).get_by_role("button", name="←").click()
    form.get_by_role("button", name="+ 标题").click()
    form.get_by_label("标题", exact=True).fill("新标题")
    form.locator(".articles li[data-kind=标题]").get_by_role("button", name="上移").click()
    form.get_by_label("价格").fill("120")
    screenshot(page, "edit-form")
    form.get_by_role("button", name="保存").click()
    expect(notice(page)).to_contain_text("修改成功")
    expect(product_row(products, "待编辑产品")).to_contain_text("120")
    product = models.Product.get(models.Product.name == "待编辑产品")
    assert [(a.title, a.content) for a in product.articles.order_by(models.ProductArticle.order)] == [
        ("新标题", None), (None, "第一段")]
    covers = product.pictures.where(models.ProductPicture.picture_type == models.PICTURE_COVER)
    assert "/" + covers.order_by(models.ProductPicture.order).first().url != first_cover  # the swap was kept

    # Delete: cancelling keeps it; confirming removes it and its pictures.
    product_row(products, "待编辑产品").get_by_role("button", name="删除").click()
    expect(page.locator("dialog#confirm")).to_contain_text("待编辑产品")
    screenshot(page, "delete-confirm")
    page.locator("dialog#confirm").get_by_role("button", name="取消").click()
    expect(product_row(products, "待编辑产品")).to_have_count(1)
    product_row(products, "待编辑产品").get_by_role("button", name="删除").click()
    page.locator("dialog#confirm").get_by_role("button", name="确定").click()
    expect(notice(page)).to_contain_text("删除成功")
    expect(product_row(products, "待编辑产品")).to_have_count(0)
    assert not models.Product.select().where(models.Product.id == product.id).exists()
    assert not models.ProductPicture.select().where(models.ProductPicture.product == product.id).exists()


def test_admin_manages_users_and_sees_refusals(server, open_page, screenshot):
    page = open_page()
    log_in(page, server, ADMIN)
    users = open_view(page, "用户管理", "users")
    expect(users.locator("table.data tbody tr")).to_have_count(3)
    row = users.locator("table.data tbody tr", has_text="李四")
    row.get_by_role("button", name="禁用").click()
    expect(row.locator(".badge")).to_have_text("未启用")
    assert models.User.get(models.User.login_name == "lisi").status == models.USER_DISABLED

    # Adding a user with a login name already taken: the 300 and its message are shown, nothing is added.
    users.get_by_role("button", name="新增用户").click()
    panel = users.locator("section.panel")
    panel.get_by_label("登录名").fill("zhangsan")
    panel.get_by_label("姓名").fill("重名用户")
    panel.get_by_label("密码").fill("secret123")
    panel.get_by_role("button", name="保存").click()
    expect(notice(page)).to_contain_text("（代码 300）")
    assert models.User.select().count() == 3

    panel.get_by_label("登录名").fill("wangwu")
    panel.get_by_label("职位").fill("销售顾问")
    panel.get_by_role("button", name="保存").click()
    expect(notice(page)).to_contain_text("添加成功")
    new_row = users.locator("table.data tbody tr", has_text="wangwu")
    expect(new_row).to_contain_text("销售顾问")
    screenshot(page, "users")

    # Edit: the panel is filled from the row; the change shows in the list.
    new_row.get_by_role("button", name="编辑").click()
    expect(panel.get_by_label("登录名")).to_have_value("wangwu")
    expect(panel.get_by_label("密码")).to_have_count(0)  # a password is set on add only
    panel.get_by_label("电话").fill("13800000000")
    panel.get_by_role("button", name="保存").click()
    expect(notice(page)).to_contain_text("修改成功")
    expect(new_row.locator("td[data-label=电话]")).to_have_text("13800000000")
    new_row.get_by_role("button", name="删除").click()
    page.locator("dialog#confirm").get_by_role("button", name="确定").click()
    expect(notice(page)).to_contain_text("删除成功")
    expect(new_row).to_have_count(0)

    # Disabling yourself is refused with 305.
    users.locator("table.data tbody tr", has_text="admin").get_by_role("button", name="禁用").click()
    expect(notice(page)).to_contain_text("（代码 305）")
    assert models.User.get(models.User.login_name == "admin").status == models.USER_ENABLED


def test_phone_screen_for_an_ordinary_user(server, open_page, screenshot):
    page = open_page(PHONE)
    page.goto(server + "/")
    screenshot(page, "1-login")
    dashboard = log_in(page, server, STAFF)
    nav = page.locator("header nav")
    expect(nav.get_by_role("link")).to_have_text(["首页", "产品管理", "用户管理"])
    expect(dashboard.locator("svg.chart")).to_have_attribute("data-points", "7")
    screenshot(page, "2-dashboard")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    products = open_view(page, "产品管理", "products")
    expect(products.locator("table.data tbody tr").first).to_be_visible()
    expect(products.locator("table.data .row-actions")).to_have_count(0)  # company products: an administrator's
    screenshot(page, "3-products")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    products.get_by_role("button", name="新增产品").click()
    form = view(page, "products/new")
    expect(form.get_by_label("产品类型").locator("option")).to_have_text(["个人产品"])
    form.get_by_role("button", name="保存").click()  # an empty form: the browser asks for the name first
    assert form.get_by_label("产品名称").evaluate("input => input.validity.valueMissing")
    screenshot(page, "4-product-form")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    users = open_view(page, "用户管理", "users")
    expect(users.locator("table.data tbody tr")).to_have_count(3)
    expect(users.locator("table.data thead")).to_be_hidden()  # rows become cards on a phone
    expect(users.get_by_role("button", name="新增用户")).to_have_count(0)
    screenshot(page, "5-users")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_administrator_screens_are_hidden_from_ordinary_users(server, open_page):
    page = open_page()
    log_in(page, server, STAFF)
    for path in ("/#/roles", "/#/companies"):
        page.goto(server + path)
        # The console has drawn the new address once it put the dashboard's address back in its place.
        expect(page).to_have_url(re.compile(r"#/dashboard$"))
        expect(view(page, "dashboard")).to_be_visible()
        expect(view(page, path.split("/")[-1])).to_have_count(0)


def test_admin_manages_companies_and_roles(server, open_page, screenshot):
    page = open_page()
    log_in(page, server, ADMIN)
    companies = open_view(page, "公司管理", "companies")
    companies.get_by_role("button", name="新增公司").click()
    panel = companies.locator("section.panel")
    panel.get_by_label("公司名称").fill("华东分公司")
    panel.get_by_label("名片数量").fill("5")
    panel.get_by_label("到期日期").fill("2027-12-31")
    panel.get_by_role("button", name="保存").click()
    expect(notice(page)).to_contain_text("添加成功")
    row = companies.locator("table.data tbody tr", has_text="华东分公司")
    expect(row).to_contain_text("2027-12-31")

    row.get_by_role("button", name="编辑").click()
    expect(panel.get_by_label("到期日期")).to_have_value("2027-12-31")
    panel.get_by_label("名片数量").fill("8")
    panel.get_by_role("button", name="保存").click()
    expect(notice(page)).to_contain_text("修改成功")
    expect(row.locator("td[data-label=名片数量]")).to_have_text("8")
    assert models.Company.get(models.Company.name == "华东分公司").mingpian_available_num == 8
    screenshot(page, "companies")

    # The dashboard of the new company, picked by the administrator: its own figures and an empty curve.
    dashboard = open_view(page, "首页", "dashboard")
    dashboard.get_by_label("公司").select_option(label="华东分公司")
    expect(dashboard.locator("dd[data-key=company_name]")).to_have_text("华东分公司")
    expect(dashboard.locator("dd[data-key=mingpian_num]")).to_have_text("8")
    expect(dashboard.locator("dd[data-key=expired_time]")).to_have_text("2027-12-31")
    expect(dashboard.locator("svg.chart circle.dot")).to_have_count(7)
    assert len({y for _, y in chart_points(page)}) == 1  # nothing happened there: a flat line
    open_view(page, "公司管理", "companies")

    # A company that still has users cannot go: the 304 is shown and it stays.
    demo_row = companies.locator("table.data tbody tr", has_text="诸葛雷达演示公司")
    demo_row.get_by_role("button", name="删除").click()
    page.locator("dialog#confirm").get_by_role("button", name="确定").click()
    expect(notice(page)).to_contain_text("（代码 304）")
    expect(demo_row).to_have_count(1)
    row.get_by_role("button", name="删除").click()
    page.locator("dialog#confirm").get_by_role("button", name="确定").click()
    expect(notice(page)).to_contain_text("删除成功")
    expect(row).to_have_count(0)

    roles = add_role_twice(page, "销售主管")
    assert models.Role.select().where(models.Role.name == "销售主管").count() == 1
    roles.locator("table.data tbody tr", has_text="普通用户").get_by_role("button", name="删除").click()
    page.locator("dialog#confirm").get_by_role("button", name="确定").click()
    expect(notice(page)).to_contain_text("（代码 404）")  # the built-in roles stay
    expect(roles.locator("table.data tbody tr", has_text="普通用户")).to_have_count(1)
    screenshot(page, "roles")


def test_a_refused_upload_shows_why_and_adds_nothing(server, open_page, tmp_path):
    page = open_page()
    log_in(page, server, STAFF)
    open_view(page, "产品管理", "products").get_by_role("button", name="新增产品").click()
    form = view(page, "products/new")
    fake = tmp_path / "not-a-picture.png"
    fake.write_bytes(b"this is text, not an image" * 100)
    pictures_before = models.ProductPicture.select().count()
    form.locator("fieldset.covers input[type=file]").set_input_files(fake)
    failed = form.locator(".upload.failed", has_text="not-a-picture.png")
    expect(failed.locator(".upload-status")).to_have_text(re.compile(r"^失败：图片：.*图片格式"))
    expect(notice(page)).to_contain_text("（代码 303）")
    expect(notice(page).locator("li")).to_have_text(re.compile(r"^图片：.*图片格式"))
    expect(form.locator(".pictures figure")).to_have_count(0)
    assert models.ProductPicture.select().count() == pictures_before


@pytest.fixture
def many_products(settings, database):
    """15 company products of the demo company, a minute apart, made before the service starts."""
    demo.load(settings)
    company = models.Company.get(models.Company.name == demo.DEMO_COMPANY)
    start = datetime.datetime(2026, 1, 1, 9, 0)
    models.Product.insert_many([
        {"company": company, "product_type": models.PRODUCT_COMPANY, "name": f"分页产品{i:02d}", "price": f"{i}元",
         "reason": "分页", "create_date": start + datetime.timedelta(minutes=i)} for i in range(15)]).execute()


def test_product_list_filters_and_pages(many_products, server, open_page, screenshot):
    page = open_page()
    log_in(page, server, ADMIN)
    products = open_view(page, "产品管理", "products")
    products.get_by_label("产品名称").fill("分页产品")
    products.get_by_role("button", name="查询").click()
    names = products.locator("table.data tbody tr td[data-label=名称]")
    expect(names).to_have_text([f"分页产品{i:02d}" for i in range(14, 4, -1)])  # newest first
    expect(products.locator(".page-info")).to_have_text("第 1 / 2 页，共 15 条")
    products.get_by_role("button", name="下一页").click()
    expect(names).to_have_text([f"分页产品{i:02d}" for i in range(4, -1, -1)])
    expect(products.locator(".page-info")).to_have_text("第 2 / 2 页，共 15 条")
    expect(products.get_by_role("button", name="下一页")).to_be_disabled()
    screenshot(page, "page-2")

    # Back from a form, the list keeps its filter and page.
    product_row(products, "分页产品03").get_by_role("button", name="编辑").click()
    form = view(page, "products/edit/")
    expect(form.get_by_label("产品名称")).to_have_value("分页产品03")
    form.get_by_role("button", name="取消").click()
    expect(products.locator(".page-info")).to_have_text("第 2 / 2 页，共 15 条")
    expect(products.get_by_label("产品名称")).to_have_value("分页产品")

    products.get_by_label("产品名称").fill("分页产品07")
    products.get_by_role("button", name="查询").click()
    expect(names).to_have_text(["分页产品07"])
    products.get_by_label("状态").select_option(label="已下架")
    products.get_by_role("button", name="查询").click()
    expect(products.locator(".results .empty")).to_have_text("暂无数据")
    products.get_by_role("tab", name="个人产品").click()
    expect(products.get_by_role("tab", name="个人产品")).to_have_attribute("aria-selected", "true")
    expect(products.locator(".results .empty")).to_be_visible()  # the filter stays: no personal 分页产品07
