"""Users of a company: the list, adding and editing, enabling and disabling within the company's card
quota, and deleting (their personal products go with them; what the company owns stays)."""
from models import (
    PRODUCT_PERSONAL,
    USER_DISABLED,
    USER_ENABLED,
    Company,
    Product,
    ProductPicture,
    Role,
    User,
    locked,
    write_transaction,
)
from services import auth, clock, scope
from services.errors import FormInvalid, NameExists, NotOnSelf
from services.forms import QUERY, Int, Operation, Str
from services.listing import MANAGEMENT_FORM, format_datetime, old_filters, page
from services.pictures import delete_files, delete_product_rows
from services.records import check_name_free, integrity_error_as, locked_row, visible_row

USER_STATUS_LABELS = {USER_ENABLED: "启用", USER_DISABLED: "未启用"}
LOGIN_NAME_TAKEN = "登录名已存在"
NO_SUCH_ROLE = "角色不存在"
NO_SUCH_COMPANY = "公司不存在"

# ---- the calls (docs/api.md section 5) ----------------------------------------------------------------

STATUS = Int(choices=(USER_ENABLED, USER_DISABLED))
PROFILE_FORM = {
    # the old form has no login name: 成员姓名 (username) was the login too
    "login_name": Str(required=False, max_length=64),  # blank: the username on add, unchanged on update
    "username": Str(max_length=64),
    "role_id": Int(),
    "position": Str(required=False, default="", max_length=64),
    "phone": Str(required=False, default="", max_length=32),
    "mingpian_phone": Str(required=False, default="", max_length=32),
}
LIST = Operation("用户列表：管理员看全部公司，普通用户只看本公司", {
    **MANAGEMENT_FORM,
    "username": Str(required=False, max_length=64),
    "role_id": Int(required=False),
    "status": Int(required=False, choices=STATUS.choices),
    "position": Str(required=False, max_length=64),
    "company_id": Int(required=False),  # administrators only; others always see their own company
    "role__name": Str(required=False, max_length=64),  # the old server's exact-name filters
    "company__name": Str(required=False, max_length=128),
}, source=QUERY, codes=(302,))
ADD = Operation("添加用户", {
    **PROFILE_FORM,
    "password": Str(max_length=128, min_length=6),
    "status": Int(required=False, default=USER_ENABLED, choices=STATUS.choices),
    "company_id": Int(required=False),  # administrators: the company to add to (default: their own)
}, codes=(300, 302))
UPDATE = Operation("修改用户（不传的 status、company_id、mingpian_phone 不变）", {
    **PROFILE_FORM,
    "status": Int(required=False, choices=STATUS.choices),  # absent: unchanged
    "company_id": Int(required=False),  # moves the user (and their personal products); absent: unchanged
}, codes=(300, 302, 305))
DELETE = Operation("删除用户及其个人产品", codes=(302, 305))
SET_STATUS = Operation("启用（1）或禁用（2）用户", {"status": STATUS}, codes=(302, 305))
# absent: a one-time password is generated
RESET_PASSWORD = Operation("重置用户密码（与登录一样限制次数）", {"new_password": auth.new_password(required=False)},
                           codes=(302, 305, 401))


def visible_user(caller, user_id, lock=False):
    """The user `user_id` if the caller may see it (administrators: any; others: their company)."""
    return visible_row(caller, User, user_id, lock)


def enabled_count(company_id, excluding_user_id=None):
    query = User.select().where(User.company == company_id, User.status == USER_ENABLED)
    if excluding_user_id is not None:
        query = query.where(User.id != excluding_user_id)
    return query.count()


def check_quota(company_id, enabling_user_id=None):
    """Refuse (303) if enabling one more user would pass the company's card quota; 302 for no company.

    Call inside write_transaction(): the company row is locked so two enables cannot both pass."""
    company = locked_row(Company, company_id, NO_SUCH_COMPANY)
    if enabled_count(company_id, enabling_user_id) + 1 > company.mingpian_available_num:
        reason = f"启用的用户数不能超过名片数量 {company.mingpian_available_num}"
        raise FormInvalid(reason, data={"status": [reason]})


def set_status(caller, user_id, status):
    """Enable (1) or disable (2) a user; only administrators, never on themselves."""
    if user_id == caller.id:
        raise NotOnSelf("不允许修改自己的状态")
    with write_transaction():
        user = visible_user(caller, user_id, lock=True)
        if status == USER_ENABLED and user.status != USER_ENABLED:
            check_quota(user.company_id, user.id)
        User.update(status=status).where(User.id == user.id).execute()
    return {"user_id": user.id, "status": status, "status_text": USER_STATUS_LABELS[status]}


def create_user(company_id, role_id, login_name, username, password, scrypt_n, **fields):
    """Add a user with a fresh token: 300 for a login name already taken, 302 for an unknown company or
    role, 303 if an enabled user would pass the company's quota."""
    password_hash = auth.hash_password(password, scrypt_n)  # slow: before the write lock is taken
    with integrity_error_as(NameExists(LOGIN_NAME_TAKEN)), write_transaction():
        locked_row(Company, company_id, NO_SUCH_COMPANY)
        locked_row(Role, role_id, NO_SUCH_ROLE)  # so it cannot be deleted before this commits
        check_name_free(User.login_name, login_name, LOGIN_NAME_TAKEN)
        if fields.get("status", USER_ENABLED) == USER_ENABLED:
            check_quota(company_id)
        return User.create(company=company_id, role=role_id, login_name=login_name, username=username,
                           password_hash=password_hash, token=auth.new_token(), **fields)


# ---- the management API ---------------------------------------------------------------------------

def _row(user, tz):
    return {
        "id": user.id,
        "login_name": user.login_name,
        "username": user.username,
        "role_id": user.role_id,
        "role_name": user.role.name,
        "status": user.status,
        "status_text": USER_STATUS_LABELS.get(user.status, ""),
        "position": user.position,
        "phone": user.phone,
        "company_id": user.company_id,
        "company_name": user.company.name,
        "company": user.company.name,  # the old server's key
        "avatar": user.avatar,
        "mingpian_phone": user.mingpian_phone,
        "create_date": format_datetime(user.create_date, tz),
        "last_login_date": format_datetime(user.last_login_date, tz),
    }


ORDER_FIELDS = {"id": User.id, "create_date": User.create_date, "login_name": User.login_name,
                "username": User.username, "last_login_date": User.last_login_date, "status": User.status,
                "position": User.position, "role_id": User.role, "company_id": User.company,
                "role__name": Role.name, "company__name": Company.name}


def list_users(caller, form, settings):
    """A page of users, newest first: the caller's company, or for an administrator all companies or the
    one named by `company_id`. Filters: `username` (substring), `role_id`, `status`, `position` (exact)."""
    query = User.select(User, Role, Company).join(Role).switch(User).join(Company).order_by(User.id.desc())
    company_id = scope.list_company_for(caller, form["company_id"])
    if company_id is not None:
        query = query.where(User.company == company_id)
    if form["username"]:
        query = query.where(User.username.contains(form["username"]))
    if form["position"]:
        query = query.where(User.position == form["position"])
    if form["role_id"] is not None:
        query = query.where(User.role == form["role_id"])
    if form["status"] is not None:
        query = query.where(User.status == form["status"])
    if form.get("role__name"):
        query = query.where(Role.name == form["role__name"])
    if form.get("company__name"):
        query = query.where(Company.name == form["company__name"])
    tz = clock.zone(settings)
    return page(old_filters(query, User, form, ORDER_FIELDS, tz), form, lambda user: _row(user, tz))


def add_user(caller, form, scrypt_n):
    """Add a user to the caller's company, or for an administrator to the company named by `company_id`."""
    company = scope.company_for(caller, form["company_id"])
    user = create_user(company.id, form["role_id"], form["login_name"] or form["username"], form["username"],
                       form["password"], scrypt_n, position=form["position"], phone=form["phone"],
                       status=form["status"], mingpian_phone=form["mingpian_phone"])
    return {"id": user.id}


def _refuse_on_self(caller, user, role_id, status):
    """An administrator may edit their own profile, but not lock themselves out."""
    if user.id != caller.id:
        return
    if status == USER_DISABLED:
        raise NotOnSelf("不允许禁用自己")
    if role_id != caller.role_id:
        raise NotOnSelf("不允许修改自己的角色")


def update_user(caller, user_id, form):
    """Change a user's name, role, position, phone and, if given, login name, card phone, status and
    company (administrators move users; the new company's card quota is checked)."""
    with integrity_error_as(NameExists(LOGIN_NAME_TAKEN)), write_transaction():
        user = visible_user(caller, user_id, lock=True)
        status = form["status"] or user.status
        _refuse_on_self(caller, user, form["role_id"], status)
        locked_row(Role, form["role_id"], NO_SUCH_ROLE)
        login_name = form["login_name"] or user.login_name
        check_name_free(User.login_name, login_name, LOGIN_NAME_TAKEN, exclude_id=user.id)
        named = form.get("company_id")
        company_id = user.company_id if named is None else scope.company_for(caller, named).id
        moving = company_id != user.company_id
        if moving:
            locked_row(Company, company_id, NO_SUCH_COMPANY)
        if status == USER_ENABLED and (user.status != USER_ENABLED or moving):
            check_quota(company_id, user.id)
        changes = {"login_name": login_name, "username": form["username"], "role": form["role_id"],
                   "position": form["position"], "phone": form["phone"], "status": status, "company": company_id}
        if "mingpian_phone" in form:
            changes["mingpian_phone"] = form["mingpian_phone"]
        User.update(changes).where(User.id == user.id).execute()
        if moving:
            _move_personal_rows(user.id, company_id)


def _move_personal_rows(user_id, company_id):
    """A user's personal products and the pictures they uploaded go with them to their new company;
    company products and customers' history stay where they are."""
    personal = Product.select(Product.id).where(Product.user == user_id, Product.product_type == PRODUCT_PERSONAL)
    ProductPicture.update(company=company_id).where(
        ProductPicture.product.in_(personal) | ((ProductPicture.user == user_id) & ProductPicture.product.is_null())
    ).execute()
    Product.update(company=company_id).where(Product.user == user_id,
                                             Product.product_type == PRODUCT_PERSONAL).execute()


def _delete_personal_rows(user_id):
    """Delete the user's personal products and the pictures they uploaded that nothing uses; return the
    picture URLs whose files must go once this commits. Company products they made stay (owner cleared)."""
    personal = Product.select(Product.id).where(Product.user == user_id, Product.product_type == PRODUCT_PERSONAL)
    urls = delete_product_rows([p.id for p in personal])
    loose = list(locked(ProductPicture.select(ProductPicture.id, ProductPicture.url).where(
        ProductPicture.user == user_id, ProductPicture.product.is_null())))
    ProductPicture.delete().where(ProductPicture.id.in_([p.id for p in loose])).execute()
    return urls + [p.url for p in loose]


def reset_password(caller, user_id, new_password, settings, address):
    """An administrator sets a user's password: `new_password`, or a generated one-time password when it is
    None. The user's token is replaced (their signed-in clients must log in again) and login asks them to
    choose their own password until they do. Answers the generated password, the only time it is shown.
    Throttled like login, per user from one address and per address (auth.count_attempt); only a reset
    that is done counts (a refused one rolls its count back)."""
    if user_id == caller.id:
        raise NotOnSelf("不允许重置自己的密码，请使用修改密码")
    password = new_password or auth.one_time_password()
    password_hash = auth.hash_password(password, settings["auth"]["scrypt_n"])  # slow: before the write lock
    with write_transaction():
        user = visible_user(caller, user_id, lock=True)
        auth.count_attempt(auth.reset_keys(user.id, address), settings, auth.RESET_THROTTLED)
        User.update(password_hash=password_hash, token=auth.new_token(), must_change_password=True).where(
            User.id == user.id).execute()
    return {"user_id": user.id} if new_password else {"user_id": user.id, "new_password": password}


def delete_user(caller, user_id, storage):
    """Delete a user (never yourself); their personal products, pictures and unfinished uploads go, files
    after the commit."""
    if user_id == caller.id:
        raise NotOnSelf("不允许删除自己")
    with write_transaction():
        user = visible_user(caller, user_id, lock=True)
        urls = _delete_personal_rows(user.id)
        User.delete().where(User.id == user.id).execute()
    delete_files(storage, urls)
    for upload_id in storage.open_uploads(user.id):  # their unfinished uploads go with them
        storage.abort((user.id, upload_id))
