"""Users: enabling and disabling, within the company's card quota."""
from models import USER_DISABLED, USER_ENABLED, Company, User, locked, write_transaction
from services import auth
from services.errors import FormInvalid, NameExists, NotFound, NotOnSelf

USER_STATUS_LABELS = {USER_ENABLED: "启用", USER_DISABLED: "未启用"}


def visible_user(caller, user_id):
    """The user `user_id` if the caller may see it (administrators: any; others: their company)."""
    query = User.select().where(User.id == user_id)
    if not caller.is_admin:
        query = query.where(User.company == caller.company_id)
    user = query.first()
    if user is None:
        raise NotFound()
    return user


def check_quota(company_id, enabling_user_id=None):
    """Refuse (303) if enabling one more user would pass the company's card quota.

    Call inside write_transaction(): the company row is locked so two enables cannot both pass."""
    company = locked(Company.select().where(Company.id == company_id)).get()
    enabled = User.select().where(User.company == company_id, User.status == USER_ENABLED)
    if enabling_user_id is not None:
        enabled = enabled.where(User.id != enabling_user_id)
    if enabled.count() + 1 > company.mingpian_available_num:
        raise FormInvalid(data={"status": [f"启用的用户数不能超过名片数量 {company.mingpian_available_num}"]})


def set_status(caller, user_id, status):
    """Enable (1) or disable (2) a user; only administrators, never on themselves."""
    if user_id == caller.id:
        raise NotOnSelf("不允许修改自己的状态")
    with write_transaction():
        user = visible_user(caller, user_id)
        if status == USER_ENABLED and user.status != USER_ENABLED:
            check_quota(user.company_id, user.id)
        User.update(status=status).where(User.id == user.id).execute()
    return {"user_id": user.id, "status": status, "status_text": USER_STATUS_LABELS[status]}


def create_user(company_id, role_id, login_name, username, password, scrypt_n, **fields):
    """Add a user with a fresh token; a login name already taken is a 300."""
    with write_transaction():
        if User.select().where(User.login_name == login_name).exists():
            raise NameExists("登录名已存在")
        if fields.get("status", USER_ENABLED) == USER_ENABLED:
            check_quota(company_id)
        return User.create(company=company_id, role=role_id, login_name=login_name, username=username,
                           password_hash=auth.hash_password(password, scrypt_n), token=auth.new_token(),
                           **fields)
