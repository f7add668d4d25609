"""Users of a company: list (ordinary users see their own company), add, edit, delete, enable/disable."""
from handlers.auth import new_password
from handlers.base import ID, BaseHandler, api, path_id
from handlers.management import AddHandler, DeleteHandler, ListHandler, UpdateHandler, management_routes
from models import USER_DISABLED, USER_ENABLED
from services import users
from services.forms import Int, Str, validate
from services.scope import ADMIN, MEMBER

STATUS = Int(choices=(USER_ENABLED, USER_DISABLED))
STATUS_FORM = {"status": STATUS}

PROFILE_FORM = {
    # the old form has no login name: 成员姓名 (username) was the login too
    "login_name": Str(required=False, max_length=64),  # blank: the username on add, unchanged on update
    "username": Str(max_length=64),
    "role_id": Int(),
    "position": Str(required=False, default="", max_length=64),
    "phone": Str(required=False, default="", max_length=32),
    "mingpian_phone": Str(required=False, default="", max_length=32),
}
ADD_FORM = {
    **PROFILE_FORM,
    "password": Str(max_length=128, min_length=6),
    "status": Int(required=False, default=USER_ENABLED, choices=STATUS.choices),
    "company_id": Int(required=False),  # administrators: the company to add to (default: their own)
}
RESET_FORM = {"new_password": new_password(required=False)}  # absent: a one-time password is generated
UPDATE_FORM = {
    **PROFILE_FORM,
    "status": Int(required=False, choices=STATUS.choices),  # absent: unchanged
    "company_id": Int(required=False),  # moves the user (and their personal products); absent: unchanged
}


class UserListHandler(ListHandler):
    access = MEMBER  # an ordinary user lists their own company's users
    filters = {
        "username": Str(required=False, max_length=64),
        "role_id": Int(required=False),
        "status": Int(required=False, choices=STATUS.choices),
        "position": Str(required=False, max_length=64),
        "company_id": Int(required=False),  # administrators only; others always see their own company
        "role__name": Str(required=False, max_length=64),  # the old server's exact-name filters
        "company__name": Str(required=False, max_length=128),
    }

    async def rows(self, form):
        return await self.call(users.list_users, form)


class UserAddHandler(AddHandler):
    form = ADD_FORM

    async def add(self, form):
        return await self.call(users.add_user, form, self.config["auth"]["scrypt_n"])


class UserUpdateHandler(UpdateHandler):
    form = UPDATE_FORM
    keep_if_absent = ("mingpian_phone",)

    async def update(self, user_id, form):
        await self.call(users.update_user, user_id, form)


class UserDeleteHandler(DeleteHandler):
    async def remove(self, user_id):
        await self.call(users.delete_user, user_id, self.settings["storage"])


class UserResetPasswordHandler(BaseHandler):
    access = ADMIN
    keeps_answer = False  # a generated password is shown once and never stored

    async def post(self, user_id):
        form = validate(RESET_FORM, self.args())
        data = await self.call(users.reset_password, path_id(user_id), form["new_password"],
                               self.config["auth"]["scrypt_n"])
        self.reply(data, "重置密码成功")


class UserStatusHandler(BaseHandler):
    access = ADMIN

    async def post(self, user_id):
        form = validate(STATUS_FORM, self.args())
        data = await self.call(users.set_status, path_id(user_id), form["status"])
        self.reply(data, "修改成功")


default_handlers = [
    *management_routes("user", UserListHandler, UserAddHandler, UserUpdateHandler, UserDeleteHandler),
    api(f"user/update_status/{ID}", UserStatusHandler),
    api(f"user/reset_password/{ID}", UserResetPasswordHandler),
]
