"""The product catalogue: company products (type 1) and personal products (type 2) with their covers
and ordered articles (docs/api.md section 8).

Who may do what: everybody reads within their own company, administrators anywhere. Company products
are added, changed and deleted by administrators only (an ordinary user gets 404); personal products by
any user of the product's company. Another company's product does not exist for an ordinary user (302).
Writes run in one write_transaction(); picture files are removed only after it commits.
"""
import functools

import peewee as pw

from models import (
    PICTURE_COVER,
    PICTURE_INTRO,
    PRODUCT_COMPANY,
    PRODUCT_OFF_SHELF,
    PRODUCT_ON_SHELF,
    PRODUCT_PERSONAL,
    PRODUCT_RECOMMENDED,
    PRODUCT_STATUS_LABELS,
    Company,
    CompiledQuery,
    Product,
    ProductArticle,
    ProductPicture,
    User,
    locked,
    reads,
    tuples,
    write_transaction,
)
from services import clock, pictures, scope
from services.errors import Forbidden, FormInvalid, NotFound, invalid
from services.forms import QUERY, Int, JsonList, Operation, Str
from services.listing import MAX_LENGTH, PAGE_FORM, format_datetime
from services.records import visible_row

MAX_CONTENT = 20000  # characters of one article's text

# The `status` filter of product_list: 1 = on shelf (published or recommended), 2 = off shelf.
LIST_STATUSES = {PRODUCT_ON_SHELF: (PRODUCT_ON_SHELF, PRODUCT_RECOMMENDED), PRODUCT_OFF_SHELF: (PRODUCT_OFF_SHELF,) * 2}

STATUS_CHANGED_MSG = {PRODUCT_ON_SHELF: "修改上架状态成功", PRODUCT_OFF_SHELF: "修改下架状态成功",
                      PRODUCT_RECOMMENDED: "修改推荐状态成功"}
ON_SHELF = (PRODUCT_ON_SHELF, PRODUCT_RECOMMENDED)


# ---- queries compiled once -------------------------------------------------------------------------

def _like(field, slot):
    """`field` contains the text (an escaped LIKE pattern given at run time), ignoring case."""
    pattern = pw.NodeList((pw.Value(slot, converter=False), pw.SQL("ESCAPE"), pw.Value("\\", converter=False)))
    return pw.Expression(field, pw.OP.ILIKE, pattern)


def _escape_like(text):
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _filtered(query, slot, by_company, by_name):
    query = query.where(Product.product_type == slot("product_type"),
                        Product.status.in_([slot("status_a"), slot("status_b")]))
    if by_company:
        query = query.where(Product.company == slot("company_id"))
    if by_name:
        query = query.where(_like(Product.name, slot("pattern")))
    return query


def _list_query(slot, by_company, by_name):
    cover = ProductPicture.alias()
    first_cover = (cover.select(cover.url)
                   .where((cover.product == Product.id) & (cover.picture_type == PICTURE_COVER))
                   .order_by(cover.order, cover.id).limit(1))
    query = (Product.select(Product.id, Product.product_type, Product.name, Product.price, Product.status,
                            Product.create_date, Company.name, User.username, first_cover)
             .join(Company).switch(Product).join(User, pw.JOIN.LEFT_OUTER))
    return (_filtered(query, slot, by_company, by_name)
            .order_by(Product.create_date.desc(), Product.id.desc()).limit(slot("limit")).offset(slot("offset")))


def _count_query(slot, by_company, by_name):
    return _filtered(Product.select(pw.fn.COUNT(pw.SQL("*"))), slot, by_company, by_name)


_SHAPES = [(c, n) for c in (False, True) for n in (False, True)]
_LIST = {shape: CompiledQuery(functools.partial(_list_query, by_company=shape[0], by_name=shape[1]))
         for shape in _SHAPES}
_COUNT = {shape: CompiledQuery(functools.partial(_count_query, by_company=shape[0], by_name=shape[1]))
          for shape in _SHAPES}




# ---- shared pieces ---------------------------------------------------------------------------------

def _publisher(product_type, company_name, owner_name):
    return company_name if product_type == PRODUCT_COMPANY else owner_name or ""


def _find(caller, product_id, lock=False):
    """The product if the caller may see it (administrators: any; others: their company's), else 302."""
    return visible_row(caller, Product, product_id, lock, "产品不存在")


def _require_may_change(caller, product_type):
    """Company products are the administrators' (404 for anyone else)."""
    if product_type == PRODUCT_COMPANY and not caller.is_admin:
        raise Forbidden()


def _changeable(caller, product_id):
    """The product, locked for a write, if the caller may change it."""
    product = _find(caller, product_id, lock=True)
    _require_may_change(caller, product.product_type)
    return product


# ---- reading ---------------------------------------------------------------------------------------

def list_products(caller, settings, product_type, status=PRODUCT_ON_SHELF, product_name=None, company_id=None,
                  current_page=1, length=20):
    """One page of products, newest first, as `{ret_data, data_count}` (count before paging), their times
    shown in the zone of the edges (`settings`).

    Paging: `current_page` and `length` are 1..2^31-1 (larger is a 303 from the form); `length` is cut to
    MAX_LENGTH, and a page past the end is an empty list. The largest OFFSET, about 2.1e11, fits the
    64-bit OFFSET of SQLite and PostgreSQL.
    The rows in one query (the first cover from a subquery, not a query per row), the total in another,
    each unless the SqliteReadCache still holds it; both compiled once."""
    company_id = scope.list_company_for(caller, company_id)
    length = min(length, MAX_LENGTH)
    shape = (company_id is not None, bool(product_name))
    status_a, status_b = LIST_STATUSES[status]
    values = {"product_type": product_type, "status_a": status_a, "status_b": status_b}
    if company_id is not None:
        values["company_id"] = company_id
    if product_name:
        values["pattern"] = _escape_like(product_name)
    key = (shape, *sorted(values.items()))
    tz = clock.zone(settings)

    def read_page():
        rows = _LIST[shape].execute(**values, limit=length, offset=(current_page - 1) * length).fetchall()
        return [_list_row(tz, *row) for row in rows]
    # Consoles and cards ask for the same first pages over and over; the rows are shared, read-only.
    memo = reads.snapshot()
    page = memo.get(("page", length, current_page, str(tz), *key), read_page)  # the rows show times in tz
    count = memo.get(("count", *key), lambda: _COUNT[shape].execute(**values).fetchone()[0])
    return {"ret_data": page, "data_count": count}


def _list_row(tz, product_id, product_type, name, price, status, create_date, company_name, owner_name, cover):
    return {
        "product_id": product_id,
        "cover_picture": cover or "",
        "name": name,
        "price": price,
        "publisher_date": format_datetime(create_date, tz),
        "publisher": _publisher(product_type, company_name, owner_name),
        "status": PRODUCT_STATUS_LABELS[status],
        "status_code": status,
    }


def get_product(caller, settings, product_id):
    """One product with its covers and its articles and intro pictures in order, as an edit form needs."""
    product = _find(caller, product_id)
    company_name = Company.select(Company.name).where(Company.id == product.company_id).scalar()
    owner_name = User.select(User.username).where(User.id == product.user_id).scalar() if product.user_id else ""
    pictures = (ProductPicture.select(ProductPicture.id, ProductPicture.url, ProductPicture.picture_type,
                                      ProductPicture.order)
                .where(ProductPicture.product == product.id).order_by(ProductPicture.order, ProductPicture.id))
    covers = [p for p in pictures if p.picture_type == PICTURE_COVER]
    items = [({"picture_id": p.id, "picture_url": p.url, "order": p.order}, p.id) for p in pictures
             if p.picture_type != PICTURE_COVER]
    items += [({"article_id": a.id, "title": a.title, "content": a.content, "order": a.order}, a.id)
              for a in ProductArticle.select().where(ProductArticle.product == product.id)]
    items.sort(key=lambda pair: (pair[0]["order"], "article_id" in pair[0], pair[1]))
    return {"ret_data": {
        "product_id": product.id,
        "product_type": product.product_type,
        "name": product.name,
        "price": product.price,
        "reason": product.reason,
        "status": PRODUCT_STATUS_LABELS[product.status],
        "status_code": product.status,
        "publisher": _publisher(product.product_type, company_name, owner_name),
        "publisher_date": format_datetime(product.create_date, clock.zone(settings)),
        "cover_picture_id": [p.id for p in covers],
        "cover_pictures": [{"picture_id": p.id, "picture_url": p.url} for p in covers],
        "article_data": [item for item, _ in items],
    }}


def get_product_for_edit(caller, settings, product_id, product_type):
    """The old edit form's read: the product as a one-item list, covers as [{id, picture_url}] ('' if
    none); 302 if it is not a product of `product_type` the caller may see."""
    product = get_product(caller, settings, product_id)["ret_data"]
    if product["product_type"] != product_type:
        raise NotFound("产品不存在")
    covers = [{"id": c["picture_id"], "picture_url": c["picture_url"]} for c in product["cover_pictures"]]
    return {"ret_data": [{
        "id": product["product_id"],
        **{key: product[key] for key in ("name", "price", "reason", "status", "status_code", "publisher",
                                         "publisher_date", "article_data")},
        "create_date": product["publisher_date"],
        "cover_picture": covers or "",
    }]}


# ---- the lists inside a product form ---------------------------------------------------------------

_PICTURE_ID = Int()
# one item of article_data: exactly one of title, content and picture_id (checked in clean_articles)
ARTICLE_ITEM = {"title": Str(required=False, max_length=256), "content": Str(required=False, max_length=MAX_CONTENT),
                "picture_id": Int(required=False), "order": Int(min=0), "article_id": Int(required=False)}


def _present(item, key):
    value = item.get(key)
    return value is not None and not (isinstance(value, str) and not value.strip())


def _clean(field, value, name, errors):
    try:
        return field.clean(value)
    except ValueError as e:
        errors[name] = [str(e)]


def clean_cover_ids(values):
    """`cover_picture_id` items: picture ids, each once. Errors name the item, e.g. cover_picture_id[1]."""
    errors, ids = {}, []
    for i, value in enumerate(values):
        name = f"cover_picture_id[{i}]"
        picture_id = _clean(_PICTURE_ID, value, name, errors)
        if picture_id in ids:
            errors[name] = ["图片ID重复"]
        elif picture_id is not None:
            ids.append(picture_id)
    if errors:
        raise FormInvalid(data=errors)
    return ids


def clean_articles(values, cover_ids=()):
    """`article_data` items: each exactly one of title, content, picture_id, with an integer order;
    article_id (optional) names an existing article. Returns dicts with every key; errors name the item."""
    errors, items, seen = {}, [], set(cover_ids)
    for i, value in enumerate(values):
        name = f"article_data[{i}]"
        if not isinstance(value, dict):
            errors[name] = ["必须是对象"]
            continue
        kinds = [key for key in ("title", "content", "picture_id") if _present(value, key)]
        if len(kinds) != 1:
            errors[name] = ["title、content、picture_id 必须且只能有一个"]
            continue
        kind = kinds[0]
        item = {"article_id": None, "title": None, "content": None, "picture_id": None,
                kind: _clean(ARTICLE_ITEM[kind], value[kind], f"{name}.{kind}", errors),
                "order": _clean(ARTICLE_ITEM["order"], value.get("order"), f"{name}.order", errors)}
        if _present(value, "article_id"):
            if kind == "picture_id":
                errors[f"{name}.article_id"] = ["图片项不能带 article_id"]
            item["article_id"] = _clean(ARTICLE_ITEM["article_id"], value["article_id"], f"{name}.article_id", errors)
        for key in ("article_id", "picture_id"):
            if item[key] is None:
                continue
            if (key, item[key]) in seen:
                errors[f"{name}.{key}"] = ["重复的ID" if key == "article_id" else "图片已在封面或其他项中使用"]
            seen.add((key, item[key]))
        items.append(item)
    if errors:
        raise FormInvalid(data=errors)
    return items


def clean_contents(form: dict) -> dict:
    """The form with its lists checked: `cover_picture_id` as ids, `article_data` as dicts with every key."""
    covers = clean_cover_ids(form["cover_picture_id"])
    items = clean_articles(form.get("article_data") or [], [("picture_id", c) for c in covers])
    return {**form, "cover_picture_id": covers, "article_data": items}


# ---- the calls (docs/api.md section 8) -------------------------------------------------------------

PRODUCT_TYPE = Int(choices=(PRODUCT_COMPANY, PRODUCT_PERSONAL))
SHELF_STATUS = (PRODUCT_ON_SHELF, PRODUCT_OFF_SHELF)
PRODUCT_FORM = {
    "product_type": PRODUCT_TYPE,
    "name": Str(max_length=128),
    "price": Str(max_length=64),
    "reason": Str(max_length=1024),
    "cover_picture_id": JsonList(items=_PICTURE_ID),
    "article_data": JsonList(required=False, items=ARTICLE_ITEM),
}
LIST = Operation("产品列表（官网产品或个人产品），可按名称、状态、公司筛选", {
    "product_type": PRODUCT_TYPE,
    "status": Int(required=False, default=PRODUCT_ON_SHELF, choices=SHELF_STATUS),
    "product_name": Str(required=False, max_length=128),
    "company_id": Int(required=False),
    **PAGE_FORM,
}, source=QUERY, codes=(302,))
SINGLE = Operation("一个产品：封面、文章和介绍图片按顺序", {"product_id": Int()}, source=QUERY, codes=(302,))
EDIT = Operation("旧编辑表单读取的一个产品", {"product_type": PRODUCT_TYPE, "product_id": Int()}, source=QUERY,
                 codes=(302,))
ADD = Operation("添加产品（官网产品仅管理员）", {**PRODUCT_FORM, "company_id": Int(required=False)},
                refine=clean_contents, codes=(302, 404))
UPDATE = Operation("修改产品：字段、封面、文章和图片整体替换", PRODUCT_FORM, refine=clean_contents, codes=(302, 404))
DELETE = Operation("删除产品及其图片", codes=(302, 404))
SET_STATUS = Operation("上架（1）或下架（2）", {"status": Int(choices=SHELF_STATUS)}, codes=(302, 404))
# the 企业微信 side also sets 3 (推荐), as the old one did (who may: set_status)
QIYEWEIXIN_SET_STATUS = Operation("企业微信端：上架（1）、下架（2）或推荐（3）",
                                  {"status": Int(choices=(*SHELF_STATUS, PRODUCT_RECOMMENDED))}, codes=(302, 404))


# ---- writing ---------------------------------------------------------------------------------------

def _attach_pictures(product, covers, items):
    """Point the listed pictures at `product` (covers in list order, intro pictures at their item's order).

    Each must be a picture of the product's company that no other product uses: else 302 naming it."""
    wanted = {pid: (f"cover_picture_id[{i}]", PICTURE_COVER, i + 1) for i, pid in enumerate(covers)}
    for i, item in enumerate(items):
        if item["picture_id"] is not None:
            wanted[item["picture_id"]] = (f"article_data[{i}].picture_id", PICTURE_INTRO, item["order"])
    if not wanted:
        return
    rows = {p.id: p for p in locked(ProductPicture.select().where(ProductPicture.id.in_(list(wanted))))}
    for picture_id, (name, _, _) in wanted.items():
        row = rows.get(picture_id)
        if row is None or row.company_id != product.company_id or row.product_id not in (None, product.id):
            raise NotFound("图片不存在", data={name: ["图片不存在或已被其他产品使用"]})
    for picture_id, (_, picture_type, order) in wanted.items():
        ProductPicture.update(product=product.id, picture_type=picture_type, order=order).where(
            ProductPicture.id == picture_id).execute()


def _save_articles(product, items):
    """Make the product's articles those listed: items with an id update that article (302 if it is not
    this product's), the others are added, and articles no longer listed are deleted."""
    texts = [item for item in items if item["picture_id"] is None]
    ids = [item["article_id"] for item in texts if item["article_id"] is not None]
    own = {a for (a,) in tuples(ProductArticle.select(ProductArticle.id).where(
        ProductArticle.product == product.id, ProductArticle.id.in_(ids)))} if ids else set()
    for i, item in enumerate(items):
        if item["article_id"] is not None and item["article_id"] not in own:
            raise NotFound("文章不存在", data={f"article_data[{i}].article_id": ["文章不存在"]})
    ProductArticle.delete().where(ProductArticle.product == product.id, ProductArticle.id.not_in(ids)).execute()
    new = []
    for item in texts:
        fields = {"title": item["title"], "content": item["content"], "order": item["order"]}
        if item["article_id"] is None:
            new.append({"product": product.id, **fields})
        else:
            ProductArticle.update(fields).where(ProductArticle.id == item["article_id"]).execute()
    if new:
        ProductArticle.insert_many(new).execute()


def add_product(caller, form):
    """Add a product with its covers, articles and intro pictures; all or nothing. `form`: as ADD checks it."""
    covers, items = form["cover_picture_id"], form["article_data"]
    _require_may_change(caller, form["product_type"])
    with write_transaction():
        company_id = scope.company_for(caller, form.get("company_id")).id
        product = Product.create(company=company_id, user=caller.id if form["product_type"] != PRODUCT_COMPANY
                                 else None, product_type=form["product_type"], name=form["name"],
                                 price=form["price"], reason=form["reason"])
        _attach_pictures(product, covers, items)
        _save_articles(product, items)
    return product


def update_product(caller, product_id, form, storage):
    """Replace a product's fields, covers, articles and intro pictures with the form's, in one transaction.

    Articles and pictures no longer listed are removed; their files after the commit. `form`: as UPDATE
    checks it."""
    covers, items = form["cover_picture_id"], form["article_data"]
    with write_transaction():
        product = _changeable(caller, product_id)
        if form["product_type"] != product.product_type:
            raise invalid("product_type", "不能修改产品类型")
        Product.update(name=form["name"], price=form["price"], reason=form["reason"]).where(
            Product.id == product.id).execute()
        _attach_pictures(product, covers, items)
        _save_articles(product, items)
        kept_pictures = covers + [item["picture_id"] for item in items if item["picture_id"] is not None]
        urls = pictures.delete_picture_rows(ProductPicture.product == product.id,
                                            ProductPicture.id.not_in(kept_pictures))
    pictures.delete_files(storage, urls)


def delete_product(caller, product_id, storage):
    """Delete a product, its articles and picture rows, then (after the commit) its picture files."""
    with write_transaction():
        product = _changeable(caller, product_id)
        urls = pictures.delete_product_rows([product.id])
    pictures.delete_files(storage, urls)


def set_status(caller, product_id, status, qiyeweixin=False):
    """Put a product on (1) or off (2) the shelf, or recommend it (3). On the 企业微信 side, as on the old
    one, any user of the company may switch a company product between 1 and 3 (taking it off the shelf, or
    back on, stays with administrators)."""
    with write_transaction():
        product = _find(caller, product_id, lock=True)
        switching = status in ON_SHELF and product.status in ON_SHELF
        if not (qiyeweixin and switching):
            _require_may_change(caller, product.product_type)
        Product.update(status=status).where(Product.id == product.id).execute()
    return {"product_id": product.id, "status": PRODUCT_STATUS_LABELS[status], "status_code": status}
