"""The product catalogue, reading: product_list and product_single (docs/api.md section 8)."""
import datetime
import urllib.parse

import peewee as pw
import pytest
from playhouse.db_url import connect as connect_url
from playhouse.test_utils import count_queries

import models
from services import demo, products
from tests.conftest import row_counts, signed_params
from tests.product_data import ADD, LIST, SINGLE, STATUS, Catalogue

MAX_ID = 2**31 - 1


@pytest.fixture
def cat(make_company, make_user, database):
    return Catalogue(make_company, make_user)


# ---- product_list -------------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_list_answers_the_seed_shape_newest_first(client, cat):
    older = cat.product(cat.a, name="2018国际男篮对抗赛", price="280-1280", created="2018-06-26 14:08:44")
    newer = cat.product(cat.a, name="2018世界女排联赛入场票", price="50-1380元", created="2018-06-28 10:15:14",
                        status=models.PRODUCT_RECOMMENDED)
    second = cat.picture(cat.a, product=newer, order=2)
    first = cat.picture(cat.a, product=newer, order=1)
    cat.picture(cat.a, product=newer, order=0, picture_type=models.PICTURE_INTRO)  # not a cover
    cat.product(cat.a, name="已下架", status=models.PRODUCT_OFF_SHELF)
    cat.product(cat.a, name="个人", product_type=models.PRODUCT_PERSONAL, owner=cat.staff)
    cat.product(cat.b, name="别家的")
    assert second.url != first.url

    body = await client.get(LIST, cat.staff, product_type="1")
    assert body == {"code": 200, "msg": "查询成功", "data": {"ret_data": [
        {"product_id": newer.id, "cover_picture": first.url, "name": "2018世界女排联赛入场票", "price": "50-1380元",
         "publisher_date": "2018-06-28 10:15:14", "publisher": cat.a.name, "status": "推荐", "status_code": 3},
        {"product_id": older.id, "cover_picture": "", "name": "2018国际男篮对抗赛", "price": "280-1280",
         "publisher_date": "2018-06-26 14:08:44", "publisher": cat.a.name, "status": "已发布", "status_code": 1},
    ], "data_count": 2}}


@pytest.mark.gen_test
async def test_list_ties_on_date_go_by_id_descending(client, cat):
    ids = [cat.product(cat.a, created="2020-01-01 00:00:00").id for _ in range(3)]
    body = await client.get(LIST, cat.staff, product_type="1")
    assert [row["product_id"] for row in body["data"]["ret_data"]] == ids[::-1]


@pytest.mark.gen_test
async def test_personal_products_name_their_owner_and_filters_work(client, cat):
    mine = cat.product(cat.a, name="门票A", product_type=models.PRODUCT_PERSONAL, owner=cat.staff)
    theirs = cat.product(cat.a, name="门票B", product_type=models.PRODUCT_PERSONAL, owner=cat.colleague)
    off = cat.product(cat.a, name="门票C", product_type=models.PRODUCT_PERSONAL, owner=cat.staff,
                      status=models.PRODUCT_OFF_SHELF)
    cat.product(cat.a, name="别的", product_type=models.PRODUCT_PERSONAL, owner=cat.staff)

    body = await client.get(LIST, cat.staff, product_type="2", product_name="门票")
    rows = body["data"]["ret_data"]
    assert [(r["product_id"], r["publisher"]) for r in rows] == [
        (theirs.id, cat.colleague.username), (mine.id, cat.staff.username)]
    assert body["data"]["data_count"] == 2

    body = await client.get(LIST, cat.staff, product_type="2", status="2")
    assert [(r["product_id"], r["status"], r["status_code"]) for r in body["data"]["ret_data"]] == [
        (off.id, "已下架", 2)]


@pytest.mark.gen_test
async def test_name_search_takes_wildcards_literally(client, cat):
    cat.product(cat.a, name="100% 真品")
    cat.product(cat.a, name="100 件")
    cat.product(cat.a, name="a_b")
    cat.product(cat.a, name="axb")
    assert [r["name"] for r in (await client.get(LIST, cat.staff, product_type="1",
                                                 product_name="%"))["data"]["ret_data"]] == ["100% 真品"]
    assert [r["name"] for r in (await client.get(LIST, cat.staff, product_type="1",
                                                 product_name="a_b"))["data"]["ret_data"]] == ["a_b"]


@pytest.mark.gen_test
async def test_ordinary_user_sees_only_their_company(client, cat):
    ours = cat.product(cat.a)
    cat.product(cat.b)
    body = await client.get(LIST, cat.staff, product_type="1")
    assert [r["product_id"] for r in body["data"]["ret_data"]] == [ours.id]
    assert (await client.get(LIST, cat.staff, product_type="1", company_id=str(cat.a.id)))["code"] == 200
    refused = await client.get(LIST, cat.staff, product_type="1", company_id=str(cat.b.id))
    assert refused["code"] == 302 and refused["data"] == {}


@pytest.mark.gen_test
async def test_administrator_sees_every_company_and_filters_by_company(client, cat):
    ours = cat.product(cat.a, created="2020-01-01 00:00:00")
    theirs = cat.product(cat.b, created="2020-01-02 00:00:00")
    everything = await client.get(LIST, cat.admin, product_type="1")
    assert [r["product_id"] for r in everything["data"]["ret_data"]] == [theirs.id, ours.id]
    assert [r["publisher"] for r in everything["data"]["ret_data"]] == [cat.b.name, cat.a.name]
    only_b = await client.get(LIST, cat.admin, product_type="1", company_id=str(cat.b.id))
    assert [r["product_id"] for r in only_b["data"]["ret_data"]] == [theirs.id]
    assert only_b["data"]["data_count"] == 1
    unknown = await client.get(LIST, cat.admin, product_type="1", company_id="999999")
    assert unknown["code"] == 302


@pytest.mark.gen_test
async def test_paging_counts_before_the_page_and_caps_length(client, cat):
    ids = cat.many_products(cat.a, 105)[::-1]  # newest first
    first = await client.get(LIST, cat.staff, product_type="1")
    assert [r["product_id"] for r in first["data"]["ret_data"]] == ids[:20]
    assert first["data"]["data_count"] == 105
    third = await client.get(LIST, cat.staff, product_type="1", current_page="3", length="7")
    assert [r["product_id"] for r in third["data"]["ret_data"]] == ids[14:21]
    capped = await client.get(LIST, cat.staff, product_type="1", length="100000")
    assert [r["product_id"] for r in capped["data"]["ret_data"]] == ids[:100]
    last = await client.get(LIST, cat.staff, product_type="1", current_page="6")
    assert [r["product_id"] for r in last["data"]["ret_data"]] == ids[100:]
    past_end = await client.get(LIST, cat.staff, product_type="1", current_page="7")
    assert past_end == {"code": 200, "msg": "查询成功", "data": {"ret_data": [], "data_count": 105}}


@pytest.mark.gen_test
@pytest.mark.parametrize("current_page, length", [(str(MAX_ID), "100"), (str(MAX_ID), str(MAX_ID))])
async def test_the_largest_page_numbers_answer_an_empty_page(client, cat, current_page, length):
    cat.product(cat.a)
    body = await client.get(LIST, cat.staff, product_type="1", current_page=current_page, length=length)
    assert body == {"code": 200, "msg": "查询成功", "data": {"ret_data": [], "data_count": 1}}


@pytest.mark.gen_test
@pytest.mark.parametrize("params, field", [
    ({}, "product_type"),
    ({"product_type": ""}, "product_type"),
    ({"product_type": "3"}, "product_type"),
    ({"product_type": "公司"}, "product_type"),
    ({"product_type": "1", "status": "3"}, "status"),
    ({"product_type": "1", "status": "x"}, "status"),
    ({"product_type": "1", "product_name": "名" * 129}, "product_name"),
    ({"product_type": "1", "company_id": "0"}, "company_id"),
    ({"product_type": "1", "company_id": "abc"}, "company_id"),
    ({"product_type": "1", "current_page": "0"}, "current_page"),
    ({"product_type": "1", "current_page": "-1"}, "current_page"),
    ({"product_type": "1", "current_page": str(MAX_ID + 1)}, "current_page"),
    ({"product_type": "1", "current_page": "9" * 30}, "current_page"),
    ({"product_type": "1", "length": "0"}, "length"),
    ({"product_type": "1", "length": "1.5"}, "length"),
    ({"product_type": "1", "length": str(10**12)}, "length"),
])
async def test_list_bad_input_is_303_naming_the_field(client, cat, params, field):
    cat.product(cat.a)
    body = await client.get(LIST, cat.admin, **params)
    assert body["code"] == 303 and list(body["data"]) == [field]


def test_list_makes_no_query_per_row(cat, settings):
    """The rows (covers included) in one query, the total in another; on SQLite one PRAGMA checks the
    read cache, and a repeat of the same filters on another page takes the total from it."""
    for product_id in cat.many_products(cat.a, 30):
        cat.picture(cat.a, product=product_id)
    check = 1 if isinstance(models.db.obj, pw.SqliteDatabase) else 0
    counts = []
    for length, status in [(1, models.PRODUCT_ON_SHELF), (30, models.PRODUCT_ON_SHELF), (30, models.PRODUCT_OFF_SHELF)]:
        with count_queries() as counter:
            page = products.list_products(cat.staff, settings, models.PRODUCT_COMPANY, status=status, length=length)
        assert all(r["cover_picture"] for r in page["ret_data"])
        counts.append(counter.count)
    assert counts == [check + 2, 2, check + 2]
    with count_queries() as counter:
        products.list_products(cat.admin, settings, models.PRODUCT_COMPANY, product_name="产品", company_id=cat.b.id)
    assert counter.count == check + 3  # another company named is checked to exist
    with count_queries() as counter:
        products.list_products(cat.admin, settings, models.PRODUCT_COMPANY, product_name="产品", company_id=cat.a.id)
    assert counter.count == check + 2  # their own company is loaded with them: no check


def test_a_page_asked_again_is_read_again_only_after_a_write(cat, settings):
    """Consoles and cards ask for the same first page over and over: on SQLite the page is remembered
    until the database changes (one PRAGMA says whether it did); a change is seen at the next call."""
    cat.many_products(cat.a, 3)
    first = products.list_products(cat.staff, settings, models.PRODUCT_COMPANY)
    with count_queries() as counter:
        assert products.list_products(cat.staff, settings, models.PRODUCT_COMPANY) == first
    assert counter.count == (1 if isinstance(models.db.obj, pw.SqliteDatabase) else 2)
    newest = first["ret_data"][0]["product_id"]
    models.Product.update(name="改过的名字").where(models.Product.id == newest).execute()
    again = products.list_products(cat.staff, settings, models.PRODUCT_COMPANY)
    assert again["ret_data"][0]["name"] == "改过的名字" and again["data_count"] == first["data_count"]


def test_counts_are_not_trusted_across_a_reconnect(cat, settings):
    """A new connection starts PRAGMA data_version and total_changes afresh (two fresh connections show
    the same values even with a commit between them): what an earlier connection remembered is not reused."""
    models.db.close()
    assert products.list_products(cat.staff, settings, models.PRODUCT_COMPANY)["data_count"] == 0  # fresh connection
    models.db.close()
    other = connect_url(settings["database"]["url"])
    with other.atomic():
        other.execute_sql(f"INSERT INTO product (company_id, product_type, name, price, reason, status, create_date) "
                          f"VALUES ({other.param}, 1, '重连后', '1', '', 1, {other.param})",
                          (cat.a.id, datetime.datetime(2020, 1, 1)))
    other.close()
    assert products.list_products(cat.staff, settings, models.PRODUCT_COMPANY)["data_count"] == 1  # another fresh one


def test_a_count_seen_inside_a_rolled_back_transaction_is_not_kept(cat, settings):
    with models.db.atomic() as transaction:
        models.Product.insert(company=cat.a, product_type=models.PRODUCT_COMPANY, name="撤销", price="1",
                              reason="").execute()
        assert products.list_products(cat.staff, settings, models.PRODUCT_COMPANY)["data_count"] == 1
        transaction.rollback()
    assert products.list_products(cat.staff, settings, models.PRODUCT_COMPANY)["data_count"] == 0


def test_counts_follow_writes_through_the_same_connection(cat, settings):
    assert products.list_products(cat.staff, settings, models.PRODUCT_COMPANY)["data_count"] == 0
    models.Product.insert(company=cat.a, product_type=models.PRODUCT_COMPANY, name="直接写入", price="1",
                          reason="").execute()
    assert products.list_products(cat.staff, settings, models.PRODUCT_COMPANY)["data_count"] == 1
    models.Product.update(status=models.PRODUCT_OFF_SHELF).execute()
    assert products.list_products(cat.staff, settings, models.PRODUCT_COMPANY)["data_count"] == 0


@pytest.mark.gen_test
async def test_counts_follow_writes_made_through_the_api(client, cat):
    async def count():
        return (await client.get(LIST, cat.staff, product_type="2"))["data"]["data_count"]
    assert [await count() for _ in range(4)] == [0] * 4  # the worker threads cache it
    form = {"product_type": "2", "name": "新品", "price": "1", "reason": "r", "cover_picture_id": "[]"}
    assert (await client.post(ADD, cat.staff, data=form))["code"] == 200
    assert [await count() for _ in range(4)] == [1] * 4
    product = models.Product.get(models.Product.name == "新品")
    assert (await client.post(STATUS.format(product.id), cat.staff, data={"status": "2"}))["code"] == 200
    assert [await count() for _ in range(4)] == [0] * 4


def test_list_sees_changes_made_through_another_connection(cat, settings):
    """Nothing is cached in memory: a product added through another connection (process) shows at once."""
    assert products.list_products(cat.staff, settings, models.PRODUCT_COMPANY)["data_count"] == 0
    other = connect_url(settings["database"]["url"])
    try:
        with other.atomic():
            other.execute_sql(
                "INSERT INTO product (company_id, product_type, name, price, reason, status, create_date) "
                f"VALUES ({other.param}, 1, {other.param}, '1', '', 1, {other.param})",
                (cat.a.id, "别处添加", datetime.datetime(2020, 1, 1)))
    finally:
        other.close()
    page = products.list_products(cat.staff, settings, models.PRODUCT_COMPANY)
    assert page["data_count"] == 1 and page["ret_data"][0]["name"] == "别处添加"


# ---- product_single -----------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_single_answers_covers_and_ordered_articles(client, cat):
    product = cat.product(cat.a, name="门票", price="228", reason="一起度过美好时光!!", created="2018-06-28 10:15:14",
                          product_type=models.PRODUCT_PERSONAL, owner=cat.staff)
    cover2 = cat.picture(cat.a, product=product, order=2)
    cover1 = cat.picture(cat.a, product=product, order=1)
    intro = cat.picture(cat.a, product=product, order=3, picture_type=models.PICTURE_INTRO)
    content = cat.article(product, content="我是内容1", order=4)
    title = cat.article(product, title="我是标题1", order=1)
    body = await client.get(SINGLE, cat.colleague, product_id=str(product.id))
    assert body == {"code": 200, "msg": "查询成功", "data": {"ret_data": {
        "product_id": product.id, "product_type": 2, "name": "门票", "price": "228", "reason": "一起度过美好时光!!",
        "status": "已发布", "status_code": 1, "publisher": cat.staff.username,
        "publisher_date": "2018-06-28 10:15:14",
        "cover_picture_id": [cover1.id, cover2.id],
        "cover_pictures": [{"picture_id": cover1.id, "picture_url": cover1.url},
                           {"picture_id": cover2.id, "picture_url": cover2.url}],
        "article_data": [
            {"article_id": title.id, "title": "我是标题1", "content": None, "order": 1},
            {"picture_id": intro.id, "picture_url": intro.url, "order": 3},
            {"article_id": content.id, "title": None, "content": "我是内容1", "order": 4},
        ]}}}


@pytest.mark.gen_test
async def test_single_of_another_company_is_302_for_ordinary_users_only(client, cat):
    theirs = cat.product(cat.b, name="别家的")
    assert (await client.get(SINGLE, cat.staff, product_id=str(theirs.id)))["code"] == 302
    body = await client.get(SINGLE, cat.admin, product_id=str(theirs.id))
    assert body["code"] == 200 and body["data"]["ret_data"]["publisher"] == cat.b.name


@pytest.mark.gen_test
@pytest.mark.parametrize("product_id, code", [
    (None, 303), ("", 303), ("0", 303), ("-3", 303), ("abc", 303), (str(MAX_ID + 1), 303), ("9" * 40, 303),
    ("999999", 302), (str(MAX_ID), 302)])
async def test_single_bad_ids(client, cat, product_id, code):
    cat.product(cat.a)
    params = {} if product_id is None else {"product_id": product_id}
    before = row_counts()
    body = await client.get(SINGLE, cat.admin, **params)
    assert body["code"] == code and row_counts() == before


@pytest.mark.gen_test
async def test_post_to_a_read_endpoint_is_402(client, cat):
    assert (await client.post(LIST, cat.admin, data={"product_type": "1"}))["code"] == 402



# ---- demo data ------------------------------------------------------------------------------------------

@pytest.mark.gen_test
async def test_demo_catalogue_is_loaded_once_and_listed(client, settings, database):
    demo.load(settings)
    demo.load(settings)
    assert models.Product.select().count() == len(demo.DEMO_PRODUCTS) == 12
    admin = models.User.get(models.User.login_name == "admin")
    company = (await client.get(LIST, admin, product_type="1"))["data"]
    personal = (await client.get(LIST, admin, product_type="2"))["data"]
    assert company["data_count"] == 5 and personal["data_count"] == 5  # two are off the shelf
    assert {r["publisher"] for r in personal["ret_data"]} == {"张三", "李四"}
    single = await client.get(SINGLE, admin, product_id=str(company["ret_data"][0]["product_id"]))
    assert [item["order"] for item in single["data"]["ret_data"]["article_data"]] == [1, 2, 3]
    # every demo product has its own cover, stored like an upload and served
    rows = company["ret_data"] + personal["ret_data"]
    assert all(r["cover_picture"].startswith("statics/") for r in rows)
    assert len({r["cover_picture"] for r in rows}) == len(rows)
    assert models.ProductPicture.select().count() == 12
    served = await client.http_client.fetch(f"{client.base_url}/{rows[0]['cover_picture']}")
    assert served.code == 200 and served.body.startswith(b"\x89PNG")


def test_the_first_cover_comes_from_an_index_not_a_sort_per_product(cat):
    """A page's covers are read in index order, (product, picture_type, order, id): without that index
    SQLite sorted each product's pictures in a temporary b-tree, a fifth of the page's SQL time."""
    if not isinstance(models.db.obj, pw.SqliteDatabase):
        pytest.skip("SQLite's query plan; PostgreSQL plans by its own statistics")
    sql, params = products._LIST[(True, False)].sql(product_type=1, status_a=1, status_b=3, company_id=cat.a.id,
                                                    limit=20, offset=0)
    steps = [row[3] for row in models.db.execute_sql("EXPLAIN QUERY PLAN " + sql, params)]
    assert any("product_picture" in step and "INDEX" in step for step in steps), steps
    assert not any("TEMP B-TREE" in step for step in steps), steps


@pytest.mark.gen_test
async def test_a_signed_answer_carries_no_etag(client, cat, http_client, base_url):
    """Each signed URL holds a signature of its own and is never fetched again with If-None-Match: no
    ETag is computed for it (the console's files keep theirs)."""
    url = f"{base_url}{LIST}?{urllib.parse.urlencode(signed_params(cat.staff, product_type=1))}"
    response = await http_client.fetch(url)
    assert response.code == 200 and "Etag" not in response.headers and response.headers["X-Request-Id"]
