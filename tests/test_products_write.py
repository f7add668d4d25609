"""The product catalogue, writing: add, update, delete, change_status (docs/api.md section 8)."""
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

import models
from services import pictures, products
from services.errors import NotFound
from storage.local import LocalStorage, thumbnail_path
from tests.conftest import row_counts, signed_params
from tests.product_data import (
    ADD,
    DELETE,
    QIYEWEIXIN_STATUS,
    SINGLE,
    STATUS,
    UPDATE,
    Catalogue,
    product_form,
    state,
)

MAX_ID = 2**31 - 1
ADDED = {"code": 200, "msg": "添加成功", "data": {}}
CHANGED = {"code": 200, "msg": "添加成功", "data": {}}  # update answers the old system's text
DELETED = {"code": 200, "msg": "删除成功", "data": {}}


@pytest.fixture
def cat(make_company, make_user, database):
    return Catalogue(make_company, make_user)


@pytest.fixture
def storage(settings):
    return LocalStorage(settings)


def with_file(storage, picture):
    """Put a file (and its thumbnail) behind a picture row, as the upload would."""
    path = storage.path_for(picture.url)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"jpeg")
    thumbnail_path(path).write_bytes(b"thumb")
    return path


def pictures_of(product_id):
    return [(p.id, p.picture_type, p.order) for p in models.ProductPicture.select()
            .where(models.ProductPicture.product == product_id).order_by(models.ProductPicture.order)]


def articles_of(product_id):
    return [(a.title, a.content, a.order) for a in models.ProductArticle.select()
            .where(models.ProductArticle.product == product_id).order_by(models.ProductArticle.order)]


def newest_product():
    return models.Product.select().order_by(models.Product.id.desc()).first()


# ---- add ------------------------------------------------------------------------------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
async def test_add_stores_product_covers_and_ordered_articles(client, cat, as_json):
    c1, c2 = cat.picture(cat.a), cat.picture(cat.a)
    p15, p16 = (cat.picture(cat.a, picture_type=models.PICTURE_INTRO) for _ in range(2))
    articles = [{"title": "我是标题1", "order": 1}, {"content": "我是内容1", "order": 4},
                {"title": "我是标题2", "order": 2}, {"content": "我是标题2", "order": 5},
                {"picture_id": p15.id, "order": 3}, {"picture_id": p16.id, "order": 6}]
    form = product_form(covers=[c2.id, c1.id], articles=articles, as_json=as_json)
    body = await (client.post(ADD, cat.staff, json_body=form) if as_json else client.post(ADD, cat.staff, data=form))
    assert body == ADDED
    product = newest_product()
    assert (product.company_id, product.user_id, product.product_type, product.name, product.price,
            product.reason, product.status) == (cat.a.id, cat.staff.id, 2, "门票", "228", "一起度过美好时光!!", 1)
    assert pictures_of(product.id) == [(c2.id, 1, 1), (c1.id, 1, 2), (p15.id, 2, 3), (p16.id, 2, 6)]
    assert articles_of(product.id) == [("我是标题1", None, 1), ("我是标题2", None, 2), (None, "我是内容1", 4),
                                       (None, "我是标题2", 5)]
    single = (await client.get(SINGLE, cat.staff, product_id=str(product.id)))["data"]["ret_data"]
    assert single["cover_picture_id"] == [c2.id, c1.id]
    assert [item["order"] for item in single["article_data"]] == [1, 2, 3, 4, 5, 6]


@pytest.mark.gen_test
async def test_json_price_may_be_a_number_and_articles_optional(client, cat):
    body = await client.post(ADD, cat.staff, json_body=product_form(price=228, as_json=True))
    assert body == ADDED
    product = newest_product()
    assert product.price == "228" and articles_of(product.id) == [] and pictures_of(product.id) == []


@pytest.mark.gen_test
async def test_company_products_need_an_administrator(client, cat):
    before = row_counts()
    body = await client.post(ADD, cat.staff, data=product_form(product_type=1))
    assert body == {"code": 404, "msg": "非法请求", "data": {}} and row_counts() == before
    assert await client.post(ADD, cat.admin, data=product_form(product_type=1)) == ADDED
    product = newest_product()
    assert (product.product_type, product.company_id, product.user_id) == (1, cat.a.id, None)


@pytest.mark.gen_test
async def test_administrator_adds_for_another_company_with_its_pictures(client, cat):
    theirs = cat.picture(cat.b)
    assert await client.post(ADD, cat.admin, data=product_form(
        product_type=1, covers=[theirs.id], company_id=cat.b.id)) == ADDED
    product = newest_product()
    assert product.company_id == cat.b.id and pictures_of(product.id) == [(theirs.id, 1, 1)]
    listed = await client.get("/zhugeleida/admin/product/product_list", cat.outsider, product_type="1")
    assert [r["product_id"] for r in listed["data"]["ret_data"]] == [product.id]


@pytest.mark.gen_test
@pytest.mark.parametrize("who, company", [("admin", "unknown"), ("staff", "b")])
async def test_add_for_a_company_the_caller_cannot_reach_is_302(client, cat, who, company):
    company_id = 999999 if company == "unknown" else cat.b.id
    before = row_counts()
    body = await client.post(ADD, getattr(cat, who), data=product_form(company_id=company_id))
    assert body["code"] == 302 and row_counts() == before


def bad_forms(cat):
    """(form changes, expected code, field named in data or None): every field of add and update."""
    mine = cat.picture(cat.a)
    foreign = cat.picture(cat.b)
    used = cat.picture(cat.a, product=cat.product(cat.a, name="另一个"))
    intro = cat.picture(cat.a, picture_type=models.PICTURE_INTRO)
    other_article = cat.article(cat.product(cat.a, name="又一个"), title="别人的")
    return [
        ({"product_type": None}, 303, "product_type"),
        ({"product_type": "3"}, 303, "product_type"),
        ({"product_type": "个人"}, 303, "product_type"),
        ({"name": None}, 303, "name"),
        ({"name": "  "}, 303, "name"),
        ({"name": "名" * 129}, 303, "name"),
        ({"price": None}, 303, "price"),
        ({"price": "9" * 65}, 303, "price"),
        ({"reason": None}, 303, "reason"),
        ({"reason": "理" * 1025}, 303, "reason"),
        ({"cover_picture_id": None}, 303, "cover_picture_id"),
        ({"cover_picture_id": "[8,9"}, 301, "cover_picture_id"),
        ({"cover_picture_id": '{"a": 1}'}, 301, "cover_picture_id"),
        ({"cover_picture_id": "8"}, 301, "cover_picture_id"),
        ({"cover_picture_id": '["x"]'}, 303, "cover_picture_id[0]"),
        ({"cover_picture_id": "[0]"}, 303, "cover_picture_id[0]"),
        ({"cover_picture_id": "[true]"}, 303, "cover_picture_id[0]"),
        ({"cover_picture_id": f"[{MAX_ID + 1}]"}, 303, "cover_picture_id[0]"),
        ({"cover_picture_id": f"[{mine.id}, {mine.id}]"}, 303, "cover_picture_id[1]"),
        ({"cover_picture_id": "[999999]"}, 302, "cover_picture_id[0]"),
        ({"cover_picture_id": f"[{mine.id}, {foreign.id}]"}, 302, "cover_picture_id[1]"),
        ({"cover_picture_id": f"[{used.id}]"}, 302, "cover_picture_id[0]"),
        ({"article_data": "not json"}, 301, "article_data"),
        ({"article_data": '{"title": "x"}'}, 301, "article_data"),
        ({"article_data": '["x"]'}, 303, "article_data[0]"),
        ({"article_data": '[{"order": 1}]'}, 303, "article_data[0]"),
        ({"article_data": '[{"title": "t", "content": "c", "order": 1}]'}, 303, "article_data[0]"),
        ({"article_data": '[{"title": "t", "order": 1}, {"title": "t"}]'}, 303, "article_data[1].order"),
        ({"article_data": '[{"title": "t", "order": 1}, {"title": "t", "order": "x"}]'}, 303,
         "article_data[1].order"),
        ({"article_data": '[{"title": "t", "order": -1}]'}, 303, "article_data[0].order"),
        ({"article_data": '[{"title": "t", "order": 1.5}]'}, 303, "article_data[0].order"),
        ({"article_data": f'[{{"title": "{"标" * 257}", "order": 1}}]'}, 303, "article_data[0].title"),
        ({"article_data": f'[{{"content": "{"文" * 20001}", "order": 1}}]'}, 303, "article_data[0].content"),
        ({"article_data": '[{"picture_id": "p", "order": 1}]'}, 303, "article_data[0].picture_id"),
        ({"article_data": '[{"title": "t", "order": 1, "article_id": "x"}]'}, 303, "article_data[0].article_id"),
        ({"article_data": f'[{{"picture_id": {intro.id}, "order": 1, "article_id": 5}}]'}, 303,
         "article_data[0].article_id"),
        ({"cover_picture_id": f"[{mine.id}]", "article_data": f'[{{"picture_id": {mine.id}, "order": 1}}]'}, 303,
         "article_data[0].picture_id"),
        ({"article_data": f'[{{"title": "t", "order": 1}}, {{"picture_id": {foreign.id}, "order": 2}}]'}, 302,
         "article_data[1].picture_id"),
        ({"article_data": f'[{{"title": "t", "order": 1, "article_id": {other_article.id}}}]'}, 302,
         "article_data[0].article_id"),
    ]


def apply(form, changes):
    form = dict(form)
    for key, value in changes.items():
        if value is None:
            form.pop(key, None)
        else:
            form[key] = value
    return form


async def check_refusals(client, cat, path, user):
    """Send every bad form; each gets its code naming the field, and nothing in the database changes."""
    for changes, code, field in bad_forms(cat):
        before = row_counts(), [state(p.id) for p in models.Product.select()], pictures_of(None)
        body = await client.post(path, user, data=apply(product_form(), changes))
        assert (body["code"], list(body["data"])) == (code, [field]), changes
        assert (row_counts(), [state(p.id) for p in models.Product.select()], pictures_of(None)) == before


@pytest.mark.gen_test(timeout=60)
async def test_add_refuses_bad_input_and_changes_nothing(client, cat):
    await check_refusals(client, cat, ADD, cat.staff)


@pytest.mark.gen_test
async def test_add_with_json_body_bad_lists(client, cat):
    for changes, code, field in [({"cover_picture_id": "8"}, 301, "cover_picture_id"),
                                 ({"cover_picture_id": {"a": 1}}, 301, "cover_picture_id"),
                                 ({"article_data": [{"title": "t", "order": True}]}, 303, "article_data[0].order"),
                                 ({"article_data": [[1]]}, 303, "article_data[0]")]:
        before = row_counts()
        body = await client.post(ADD, cat.staff, json_body={**product_form(as_json=True), **changes})
        assert (body["code"], list(body["data"])) == (code, [field]) and row_counts() == before


# ---- update ---------------------------------------------------------------------------------------------

@pytest.fixture
def existing(cat, storage):
    """A personal product of `staff`: two articles, a cover and an intro picture, with files."""
    product = cat.product(cat.a, name="旧名", price="1", reason="旧理由", product_type=models.PRODUCT_PERSONAL,
                          owner=cat.staff)
    keep = cat.article(product, title="标题", order=1)
    drop = cat.article(product, content="内容", order=2)
    old_cover = cat.picture(cat.a, product=product, order=1)
    intro = cat.picture(cat.a, product=product, order=3, picture_type=models.PICTURE_INTRO)
    files = {"old_cover": with_file(storage, old_cover), "intro": with_file(storage, intro)}
    return product, keep, drop, old_cover, intro, files


@pytest.mark.gen_test
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
async def test_update_replaces_articles_and_pictures(client, cat, existing, storage, as_json):
    product, keep, drop, old_cover, intro, files = existing
    new_cover = cat.picture(cat.a)
    new_intro = cat.picture(cat.a, picture_type=models.PICTURE_COVER)  # uploaded as a cover, used as intro
    articles = [{"article_id": keep.id, "content": "改成内容", "order": 2},
                {"title": "新标题", "order": 1},
                {"picture_id": intro.id, "order": 5},
                {"picture_id": new_intro.id, "order": 4}]
    form = product_form(name="新名", price="50-1380元", reason="新理由", covers=[new_cover.id], articles=articles,
                        as_json=as_json)
    body = await (client.post(UPDATE.format(product.id), cat.colleague, json_body=form) if as_json
                  else client.post(UPDATE.format(product.id), cat.colleague, data=form))
    assert body == CHANGED
    fields, articles_now, _ = state(product.id)
    assert fields == ("新名", "50-1380元", "新理由", 1, 2)
    assert articles_of(product.id) == [("新标题", None, 1), (None, "改成内容", 2)]
    assert (keep.id, None, "改成内容", 2) in articles_now  # updated in place, not re-created
    assert pictures_of(product.id) == [(new_cover.id, 1, 1), (new_intro.id, 2, 4), (intro.id, 2, 5)]
    assert models.ProductPicture.get_or_none(models.ProductPicture.id == old_cover.id) is None
    assert not files["old_cover"].exists() and not thumbnail_path(files["old_cover"]).exists()
    assert files["intro"].exists()


@pytest.mark.gen_test
async def test_what_product_single_answers_can_be_sent_back_unchanged(client, cat, existing):
    product = existing[0]
    single = (await client.get(SINGLE, cat.staff, product_id=str(product.id)))["data"]["ret_data"]
    before = state(product.id)
    form = {key: single[key] for key in ("product_type", "name", "price", "reason", "cover_picture_id",
                                         "article_data")}
    assert await client.post(UPDATE.format(product.id), cat.staff, json_body=form) == CHANGED
    assert state(product.id) == before
    assert await client.post(UPDATE.format(product.id), cat.staff, data=product_form(
        covers=single["cover_picture_id"], articles=single["article_data"])) == CHANGED
    assert state(product.id)[1:] == before[1:]


@pytest.mark.gen_test
async def test_update_failing_on_the_second_picture_leaves_the_product_as_it_was(client, cat, existing):
    product, keep, drop, old_cover, intro, files = existing
    fresh = cat.picture(cat.a)
    before = row_counts(), state(product.id), pictures_of(None)
    body = await client.post(UPDATE.format(product.id), cat.staff, data=product_form(
        name="新名", covers=[fresh.id, 999999], articles=[{"title": "新", "order": 1}]))
    assert body["code"] == 302 and list(body["data"]) == ["cover_picture_id[1]"]
    assert (row_counts(), state(product.id), pictures_of(None)) == before
    assert files["old_cover"].exists() and files["intro"].exists()


@pytest.mark.gen_test
async def test_update_failing_half_way_rolls_everything_back(client, cat, existing, monkeypatch):
    """The product's fields and pictures are written before the articles: a fault there undoes them."""
    product, keep, drop, old_cover, intro, files = existing
    fresh = cat.picture(cat.a)

    def broken(*args):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(products, "_save_articles", broken)
    before = row_counts(), state(product.id), pictures_of(None)
    status, body = await client.request("POST", UPDATE.format(product.id), signed_params(cat.staff),
                                        data=product_form(name="新名", covers=[fresh.id]))
    assert status == 500 and body["code"] == 500 and body["data"]["request_id"]
    assert (row_counts(), state(product.id), pictures_of(None)) == before
    assert files["old_cover"].exists()


@pytest.mark.gen_test
async def test_update_of_an_article_of_another_product_is_302_and_changes_nothing(client, cat, existing):
    product = existing[0]
    stranger = cat.article(cat.product(cat.a, product_type=2, owner=cat.staff), title="别的产品的")
    before = row_counts(), state(product.id), state(stranger.product_id)
    body = await client.post(UPDATE.format(product.id), cat.staff, data=product_form(
        articles=[{"article_id": stranger.id, "title": "抢过来", "order": 1}]))
    assert body["code"] == 302 and list(body["data"]) == ["article_data[0].article_id"]
    assert (row_counts(), state(product.id), state(stranger.product_id)) == before


@pytest.mark.gen_test
async def test_update_may_not_change_the_product_type(client, cat, existing):
    product = existing[0]
    before = state(product.id)
    body = await client.post(UPDATE.format(product.id), cat.admin, data=product_form(product_type=1))
    assert body["code"] == 303 and list(body["data"]) == ["product_type"] and state(product.id) == before


@pytest.mark.gen_test(timeout=60)
async def test_update_refuses_bad_input_and_changes_nothing(client, cat, existing):
    await check_refusals(client, cat, UPDATE.format(existing[0].id), cat.staff)


# ---- roles and companies for every change -----------------------------------------------------------

def change_requests(cat, product):
    """(path, form) of each change an ordinary user might try on `product`."""
    return [(UPDATE.format(product.id), product_form(product_type=product.product_type)),
            (DELETE.format(product.id), {}),
            (STATUS.format(product.id), {"status": "2"}),
            (QIYEWEIXIN_STATUS.format(product.id), {"status": "2"})]


@pytest.mark.gen_test
async def test_ordinary_users_may_not_change_company_products(client, cat):
    product = cat.product(cat.a, product_type=models.PRODUCT_COMPANY)
    for path, form in change_requests(cat, product):
        before = row_counts(), state(product.id)
        body = await client.post(path, cat.staff, data=form)
        assert body == {"code": 404, "msg": "非法请求", "data": {}}, path
        assert (row_counts(), state(product.id)) == before


@pytest.mark.gen_test
@pytest.mark.parametrize("product_type", [1, 2])
async def test_other_companies_products_do_not_exist_for_ordinary_users(client, cat, product_type):
    owner = cat.outsider if product_type == 2 else None
    product = cat.product(cat.b, product_type=product_type, owner=owner)
    for path, form in change_requests(cat, product):
        before = row_counts(), state(product.id)
        body = await client.post(path, cat.staff, data=form)
        assert body["code"] == 302, path
        assert (row_counts(), state(product.id)) == before


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [UPDATE, DELETE, STATUS, QIYEWEIXIN_STATUS])
@pytest.mark.parametrize("product_id", ["0", "-1", "abc", str(MAX_ID + 1), "9" * 30, "999999", "1.0"])
async def test_ids_that_name_nothing_are_302(client, cat, path, product_id):
    cat.product(cat.a)
    before = row_counts()
    body = await client.post(path.format(product_id), cat.admin, data=product_form(product_type=1) | {"status": "2"})
    assert body["code"] == 302 and row_counts() == before


@pytest.mark.gen_test
async def test_colleagues_share_personal_products_and_administrators_reach_everything(client, cat):
    personal = cat.product(cat.a, product_type=models.PRODUCT_PERSONAL, owner=cat.staff)
    body = await client.post(STATUS.format(personal.id), cat.colleague, data={"status": "2"})
    assert body["code"] == 200 and state(personal.id)[0][3] == models.PRODUCT_OFF_SHELF
    theirs = cat.product(cat.b, product_type=models.PRODUCT_COMPANY)
    body = await client.post(UPDATE.format(theirs.id), cat.admin, data=product_form(product_type=1, name="管理员改"))
    assert body == CHANGED and state(theirs.id)[0][0] == "管理员改"
    assert await client.post(DELETE.format(theirs.id), cat.admin) == DELETED
    assert models.Product.get_or_none(models.Product.id == theirs.id) is None


# ---- delete ---------------------------------------------------------------------------------------------

def test_files_go_only_when_the_outermost_transaction_commits(cat, existing, storage):
    """A signed call runs its service inside the transaction that spends its signature: the product's own
    transaction is then a savepoint, and its files must wait for the real commit."""
    product, _, _, _, _, files = existing

    class Failed(Exception):
        pass

    with pytest.raises(Failed), models.write_transaction():
        products.delete_product(cat.staff, product.id, storage)
        assert all(path.exists() for path in files.values())  # the rows are gone, in a savepoint only
        raise Failed  # the outer transaction rolls back: the rows come back, and so must their files
    assert state(product.id)[0] is not None and all(path.exists() for path in files.values())
    with models.write_transaction():
        products.delete_product(cat.staff, product.id, storage)
    assert state(product.id)[0] is None and not any(path.exists() for path in files.values())


@pytest.mark.gen_test
async def test_delete_removes_product_articles_pictures_and_files(client, cat, existing, storage):
    product, keep, drop, old_cover, intro, files = existing
    loose = cat.picture(cat.a)  # not attached: stays
    other = cat.product(cat.a, product_type=2, owner=cat.staff)
    other_cover = cat.picture(cat.a, product=other)
    other_file = with_file(storage, other_cover)
    assert await client.post(DELETE.format(product.id), cat.staff) == DELETED
    assert state(product.id) == (None, [], [])
    assert models.ProductPicture.select().where(models.ProductPicture.id.in_([old_cover.id, intro.id])).count() == 0
    for path in files.values():
        assert not path.exists() and not thumbnail_path(path).exists()
    assert other_file.exists() and state(other.id)[2] and models.ProductPicture.get_by_id(loose.id)


@pytest.mark.gen_test
async def test_delete_with_json_body_retried_answers_again_and_replay_elsewhere_is_refused(client, cat, existing):
    product = existing[0]
    other = cat.product(cat.a)
    params = signed_params(cat.staff)
    status, body = await client.request("POST", DELETE.format(product.id), params, json_body={})
    assert body == DELETED
    status, body = await client.request("POST", DELETE.format(product.id), params, json_body={})
    assert body == DELETED  # a retry of the same call: the first answer
    status, body = await client.request("POST", DELETE.format(other.id), params, json_body={})
    assert body["code"] == 400 and models.Product.get_or_none(models.Product.id == other.id) is not None


def test_delete_product_rows_returns_the_urls_and_keeps_shared_files(cat, existing, storage):
    product, keep, drop, old_cover, intro, files = existing
    survivor = cat.product(cat.a)
    twin = models.ProductPicture.create(company=cat.a, product=survivor, url=intro.url)  # same file, other row
    with models.write_transaction():
        urls = pictures.delete_product_rows([product.id])
    assert sorted(urls) == sorted([old_cover.url, intro.url])
    assert state(product.id) == (None, [], []) and models.Product.get_by_id(survivor.id)
    pictures.delete_files(storage, urls)
    assert not files["old_cover"].exists()
    assert files["intro"].exists()  # still named by `twin`
    assert models.ProductPicture.get_by_id(twin.id).url == intro.url


# ---- change_status --------------------------------------------------------------------------------------

@pytest.mark.gen_test
@pytest.mark.parametrize("path", [STATUS, QIYEWEIXIN_STATUS])
async def test_change_status_answers_the_seed_shape(client, cat, path):
    product = cat.product(cat.a, status=models.PRODUCT_RECOMMENDED)
    body = await client.post(path.format(product.id), cat.admin, data={"status": "2"})
    assert body == {"code": 200, "msg": "修改下架状态成功",
                    "data": {"product_id": product.id, "status": "已下架", "status_code": 2}}
    assert state(product.id)[0][3] == 2
    body = await client.post(path.format(product.id) + "/", cat.admin, json_body={"status": 1})
    assert body == {"code": 200, "msg": "修改上架状态成功",
                    "data": {"product_id": product.id, "status": "已发布", "status_code": 1}}
    assert state(product.id)[0][3] == 1


@pytest.mark.gen_test
@pytest.mark.parametrize("form", [{}, {"status": ""}, {"status": "3"}, {"status": "0"}, {"status": "下架"}])
async def test_change_status_bad_status_is_303(client, cat, form):
    product = cat.product(cat.a)
    body = await client.post(STATUS.format(product.id), cat.admin, data=form)
    assert body["code"] == 303 and list(body["data"]) == ["status"] and state(product.id)[0][3] == 1


@pytest.mark.gen_test
@pytest.mark.parametrize("path", [ADD, UPDATE.format(1), DELETE.format(1), STATUS.format(1)])
async def test_get_on_a_write_endpoint_is_402(client, cat, path):
    assert (await client.get(path, cat.admin))["code"] == 402


# ---- concurrent writers ---------------------------------------------------------------------------------

def add_with_cover(user, name, picture_id, barrier):
    """add_product in a thread of its own (its own connection), started together with another."""
    barrier.wait()
    try:
        products.add_product(user, {"product_type": 2, "name": name, "price": "1", "reason": "r",
                                    "cover_picture_id": [picture_id], "article_data": []})
        return "added"
    except NotFound:
        return "302"
    finally:
        models.db.close()


def test_two_writers_racing_for_one_picture_attach_it_once(cat):
    """Each add checks the picture is free and takes it in one transaction: one wins, the other is 302."""
    for _ in range(5):
        shared = cat.picture(cat.a)
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(add_with_cover, [cat.staff, cat.colleague], ["甲", "乙"],
                                       [shared.id] * 2, [barrier] * 2))
        assert outcomes == ["302", "added"]
        owner = models.ProductPicture.get_by_id(shared.id).product
        assert owner is not None and owner.name in ("甲", "乙")
        assert models.Product.select().where(models.Product.name.in_(["甲", "乙"])).count() == 1
        models.Product.delete().where(models.Product.name.in_(["甲", "乙"])).execute()
