"""Companies: their card quota (how many users may be enabled) and expiry date."""
import datetime

from peewee import fn

from models import Company, Product, ProductPicture, User, db, locked, write_transaction
from services import clock
from services.errors import HasChildren, NameExists, invalid
from services.forms import QUERY, Date, Int, Operation, Str
from services.listing import MANAGEMENT_FORM, format_date, format_datetime, old_filters, page
from services.pictures import delete_files, delete_product_rows
from services.records import check_name_free, integrity_error_as, locked_row
from services.users import enabled_count

NAME_TAKEN = "公司名称已存在"
HAS_USERS = "公司还有用户，请先删除这些用户"

# ---- the calls (docs/api.md section 7), administrators only ---------------------------------------------

COMPANY_FORM = {
    "name": Str(max_length=128),
    "mingpian_available_num": Int(min=0),
    "expire_date": Date(required=False),  # blank: no expiry date
    # the old admin form's 企业微信 settings (and it sends no quota: accounts.default_card_quota then)
    "corp_id": Str(required=False, default="", max_length=128),
    "tongxunlu_secret": Str(required=False, default="", max_length=255),
}


def _add_form(settings):
    quota = settings["accounts"]["default_card_quota"]
    return {**COMPANY_FORM, "mingpian_available_num": Int(required=False, default=quota, min=0)}


LIST = Operation("公司列表", {**MANAGEMENT_FORM, "name": Str(required=False, max_length=128)}, source=QUERY)
ADD = Operation("添加公司", _add_form, codes=(300,))
# blank or absent: unchanged (the old form sends no quota, and no secret unless it is being replaced)
UPDATE = Operation("修改公司（不传的字段不变）", {
    **COMPANY_FORM, "mingpian_available_num": Int(required=False, min=0),
    "corp_id": Str(required=False, max_length=128), "tongxunlu_secret": Str(required=False, max_length=255)},
    codes=(300, 302))
DELETE = Operation("删除公司（须已没有用户）", codes=(302, 304))


def get_or_create_company(name, settings, quota=10, valid_days=365):
    """The company called `name`, created with `quota` cards valid `valid_days` (days of the zone of the
    edges, like every expiry date) if it does not exist."""
    with db.atomic():
        company = Company.get_or_none(Company.name == name)
        if company is None:
            company = Company.create(name=name, mingpian_available_num=quota,
                                     expire_date=clock.local_today(settings) + datetime.timedelta(days=valid_days))
    return company


def masked(secret):
    """Enough of a secret to tell which one is stored, never the whole of it."""
    return "******" + secret[-4:] if len(secret) >= 12 else "******" if secret else ""


def _row(company, tz):
    return {
        "id": company.id,
        "company_id": company.id,
        "name": company.name,
        "corp_id": company.corp_id,
        "tongxunlu_secret": masked(company.tongxunlu_secret),
        "mingpian_available_num": company.mingpian_available_num,
        "expire_date": format_date(company.expire_date),
        "create_date": format_datetime(company.create_date, tz),
        "user_count": company.user_count,
    }


ORDER_FIELDS = {"id": Company.id, "name": Company.name, "create_date": Company.create_date,
                "mingpian_available_num": Company.mingpian_available_num, "expire_date": Company.expire_date}


def list_companies(form, settings):
    """A page of companies, newest first, with how many users each has; `name` filters by substring."""
    user_count = User.select(fn.COUNT(User.id)).where(User.company == Company.id)
    query = Company.select(Company, user_count.alias("user_count")).order_by(Company.id.desc())
    if form["name"]:
        query = query.where(Company.name.contains(form["name"]))
    tz = clock.zone(settings)
    return page(old_filters(query, Company, form, ORDER_FIELDS, tz), form, lambda company: _row(company, tz))


def add_company(form):
    """`form`: name, mingpian_available_num, expire_date, corp_id, tongxunlu_secret."""
    with integrity_error_as(NameExists(NAME_TAKEN)), write_transaction():
        check_name_free(Company.name, form["name"], NAME_TAKEN)
        company = Company.create(**form)
    return {"id": company.id}


def update_company(company_id, form):
    """Rename, change the quota (never below the users already enabled), the expiry date or the 企业微信
    settings; fields the form leaves out stay as they are."""
    with integrity_error_as(NameExists(NAME_TAKEN)), write_transaction():
        company = locked_row(Company, company_id)  # the lock check_quota takes: no enable slips past a new quota
        check_name_free(Company.name, form["name"], NAME_TAKEN, exclude_id=company_id)
        changes = {k: v for k, v in form.items() if v is not None or k == "expire_date"}
        if changes.get("tongxunlu_secret") == masked(company.tongxunlu_secret):
            del changes["tongxunlu_secret"]  # the masked value a client read and sent back
        enabled = enabled_count(company_id)
        if changes.get("mingpian_available_num", enabled) < enabled:
            raise invalid("mingpian_available_num", f"名片数量不能少于已启用的用户数 {enabled}")
        Company.update(changes).where(Company.id == company_id).execute()


def _delete_owned_rows(company_id):
    """Delete the company's products and pictures; return the picture URLs to delete after the commit."""
    products = Product.select(Product.id).where(Product.company == company_id)
    urls = delete_product_rows([p.id for p in products])
    pictures = list(locked(ProductPicture.select(ProductPicture.id, ProductPicture.url).where(
        ProductPicture.company == company_id)))
    ProductPicture.delete().where(ProductPicture.id.in_([p.id for p in pictures])).execute()
    return urls + [p.url for p in pictures]


def delete_company(company_id, storage):
    """Delete a company that has no users (304 otherwise), with its products and pictures."""
    with integrity_error_as(HasChildren()), write_transaction():  # rows added meanwhile that refer to it
        locked_row(Company, company_id)
        if User.select().where(User.company == company_id).exists():
            raise HasChildren(HAS_USERS)
        urls = _delete_owned_rows(company_id)
        Company.delete().where(Company.id == company_id).execute()
    delete_files(storage, urls)
