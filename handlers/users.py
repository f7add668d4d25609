"""Users of a company: list (ordinary users see their own company), add, edit, delete, enable/disable."""
from handlers.base import ID, BaseHandler, api, path_id
from handlers.management import AddHandler, DeleteHandler, ListHandler, UpdateHandler, management_routes
from services import users
from services.scope import ADMIN, MEMBER


class UserListHandler(ListHandler):
    access = MEMBER  # an ordinary user lists their own company's users
    operation = users.LIST

    async def rows(self, form):
        return await self.call(users.list_users, form, self.config)


class UserAddHandler(AddHandler):
    operation = users.ADD
    audit_kind = "user"

    async def add(self, form):
        return await self.call(users.add_user, form, self.config["auth"]["scrypt_n"])


class UserUpdateHandler(UpdateHandler):
    operation = users.UPDATE
    audit_kind = "user"
    keep_if_absent = ("mingpian_phone",)

    async def update(self, user_id, form):
        await self.call(users.update_user, user_id, form)


class UserDeleteHandler(DeleteHandler):
    operation = users.DELETE
    audit_kind = "user"
    async def remove(self, user_id):
        await self.call(users.delete_user, user_id, self.settings["storage"])


class UserResetPasswordHandler(BaseHandler):
    access = ADMIN
    audit_kind = "user"
    keeps_answer = False  # a generated password is shown once and never stored
    operation = users.RESET_PASSWORD

    async def post(self, user_id):
        form = self.form()
        data = await self.call(users.reset_password, path_id(user_id), form["new_password"], self.config,
                               self.request.remote_ip or "-")
        self.reply(data, "重置密码成功")


class UserStatusHandler(BaseHandler):
    access = ADMIN
    operation = users.SET_STATUS
    audit_kind = "user"

    async def post(self, user_id):
        form = self.form()
        data = await self.call(users.set_status, path_id(user_id), form["status"])
        self.reply(data, "修改成功")


default_handlers = [
    *management_routes("user", UserListHandler, UserAddHandler, UserUpdateHandler, UserDeleteHandler),
    api(f"user/update_status/{ID}", UserStatusHandler),
    api(f"user/reset_password/{ID}", UserResetPasswordHandler),
]
