"""Users of a company: list (ordinary users see their own company), add, edit, delete, enable/disable."""
from handlers.base import ID, BaseHandler, api, path_id
from handlers.management import AddHandler, DeleteHandler, ListHandler, UpdateHandler, management_routes
from models import USER_DISABLED, USER_ENABLED
from services import users
from services.forms import Int, Str, validate

STATUS = Int(choices=(USER_ENABLED, USER_DISABLED))
STATUS_FORM = {"status": STATUS}

PROFILE_FORM = {
    "login_name": Str(max_length=64),
    "username": Str(max_length=64),
    "role_id": Int(),
    "position": Str(required=False, default="", max_length=64),
    "phone": Str(required=False, default="", max_length=32),
}
ADD_FORM = {
    **PROFILE_FORM,
    "password": Str(max_length=128, min_length=6),
    "status": Int(required=False, default=USER_ENABLED, choices=STATUS.choices),
    "company_id": Int(required=False),  # administrators: the company to add to (default: their own)
}
UPDATE_FORM = {
    **PROFILE_FORM,
    "status": Int(required=False, choices=STATUS.choices),  # absent: unchanged
}


class UserListHandler(ListHandler):
    admin_only = False
    filters = {
        "username": Str(required=False, max_length=64),
        "role_id": Int(required=False),
        "status": Int(required=False, choices=STATUS.choices),
        "position": Str(required=False, max_length=64),
        "company_id": Int(required=False),  # administrators only; others always see their own company
    }

    async def rows(self, form):
        return await self.call(users.list_users, form)


class UserAddHandler(AddHandler):
    form = ADD_FORM

    async def add(self, form):
        return await self.call(users.add_user, form, self.config["auth"]["scrypt_n"])


class UserUpdateHandler(UpdateHandler):
    form = UPDATE_FORM

    async def update(self, user_id, form):
        await self.call(users.update_user, user_id, form)


class UserDeleteHandler(DeleteHandler):
    async def remove(self, user_id):
        await self.call(users.delete_user, user_id, self.settings["storage"])


class UserStatusHandler(BaseHandler):
    admin_only = True

    async def post(self, user_id):
        form = validate(STATUS_FORM, self.args())
        data = await self.call(users.set_status, path_id(user_id), form["status"])
        self.reply(data, "修改成功")


default_handlers = [
    *management_routes("user", UserListHandler, UserAddHandler, UserUpdateHandler, UserDeleteHandler),
    api(f"user/update_status/{ID}", UserStatusHandler),
]
