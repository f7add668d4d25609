"""Login, logout and password change."""
from handlers.base import BaseHandler, api
from services import audit, auth, clock
from services.listing import format_datetime
from services.scope import MEMBER, PUBLIC


def login_data(user, previous_login, tz):
    return {
        "token": user.token,
        "user_id": user.id,
        "username": user.username,
        "company_id": user.company_id,
        "company_name": user.company.name,
        "role_id": user.role_id,
        "role_name": user.role.name,
        "avatar": user.avatar,
        "set_avatar": user.avatar,  # the old server's key for the same URL
        "last_login_date": format_datetime(previous_login, tz),
        "is_reset_password": user.must_change_password,
    }


class LoginHandler(BaseHandler):
    access = PUBLIC
    operation = auth.LOGIN

    async def post(self):
        form = self.form()
        address = self.request.remote_ip or "-"
        note = audit.Note(kind="user", route="login", address=address, request_id=self.request_id, self_target=True)
        user, previous_login = await self.run(auth.login, form["username"], form["password"], self.config,
                                              address, note)
        self.reply(login_data(user, previous_login, clock.zone(self.config)), "登录成功")


class LogoutHandler(BaseHandler):
    access = MEMBER
    operation = auth.LOGOUT
    audit_kind, audit_self = "user", True

    async def post(self):
        await self.call(auth.logout)
        self.reply({}, "退出成功")


class ModifyPasswordHandler(BaseHandler):
    access = MEMBER
    audit_kind, audit_self = "user", True
    keeps_answer = False  # the new token: a retry is refused, and the user logs in with the new password
    operation = auth.MODIFY_PASSWORD

    async def post(self):
        form = self.form()
        token = await self.call(auth.change_password, form["old_password"],
                               form["new_password"], self.config)
        self.reply({"token": token}, "修改成功")


default_handlers = [
    api("login", LoginHandler),
    api("logout", LogoutHandler),
    api("modify_password", ModifyPasswordHandler),
]
