"""Roles: the two built-in ones (administrator, ordinary user) and any an administrator adds.

Rights follow the role id: role 1 is the administrator, every other role acts as an ordinary user."""
from peewee import fn

from models import BUILTIN_ROLES, Role, User, write_transaction
from services import clock
from services.errors import Forbidden, HasChildren, NameExists
from services.forms import QUERY, Operation, Str
from services.listing import MANAGEMENT_FORM, format_datetime, old_filters, page
from services.records import check_name_free, integrity_error_as, locked_row

NAME_TAKEN = "角色名已存在"
IN_USE = "还有用户属于该角色，请先修改这些用户的角色"

# ---- the calls (docs/api.md section 6), administrators only ---------------------------------------------

ROLE_FORM = {"name": Str(max_length=64)}
LIST = Operation("角色列表", {**MANAGEMENT_FORM, "name": Str(required=False, max_length=64)}, source=QUERY)
ADD = Operation("添加角色", ROLE_FORM, codes=(300,))
UPDATE = Operation("重命名角色（内置角色不能修改）", ROLE_FORM, codes=(300, 302))
DELETE = Operation("删除角色（须已没有用户，内置角色不能删除）", codes=(302, 304))


def _row(role, tz):
    return {"id": role.id, "role_id": role.id, "name": role.name,
            "create_date": format_datetime(role.create_date, tz), "user_count": role.user_count}


ORDER_FIELDS = {"id": Role.id, "name": Role.name, "create_date": Role.create_date}


def list_roles(form, settings):
    """A page of roles, oldest first, with how many users hold each; `name` filters by substring."""
    user_count = User.select(fn.COUNT(User.id)).where(User.role == Role.id)
    query = Role.select(Role, user_count.alias("user_count")).order_by(Role.id)
    if form["name"]:
        query = query.where(Role.name.contains(form["name"]))
    tz = clock.zone(settings)
    return page(old_filters(query, Role, form, ORDER_FIELDS, tz), form, lambda role: _row(role, tz))


def _refuse_builtin(role_id):
    if role_id in BUILTIN_ROLES:
        raise Forbidden("内置角色不能修改或删除")


def add_role(name):
    with integrity_error_as(NameExists(NAME_TAKEN)), write_transaction():
        check_name_free(Role.name, name, NAME_TAKEN)
        role = Role.create(name=name)
    return {"id": role.id}


def update_role(role_id, name):
    _refuse_builtin(role_id)
    with integrity_error_as(NameExists(NAME_TAKEN)), write_transaction():
        locked_row(Role, role_id)
        check_name_free(Role.name, name, NAME_TAKEN, exclude_id=role_id)
        Role.update(name=name).where(Role.id == role_id).execute()


def delete_role(role_id):
    _refuse_builtin(role_id)
    with integrity_error_as(HasChildren(IN_USE)), write_transaction():
        locked_row(Role, role_id)
        if User.select().where(User.role == role_id).exists():
            raise HasChildren(IN_USE)
        Role.delete().where(Role.id == role_id).execute()
