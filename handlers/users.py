"""Users of a company."""
from handlers.base import ID, BaseHandler, api, path_id
from models import USER_DISABLED, USER_ENABLED
from services import users
from services.forms import Int, validate

STATUS_FORM = {"status": Int(choices=(USER_ENABLED, USER_DISABLED))}


class UserStatusHandler(BaseHandler):
    async def post(self, user_id):
        self.require_admin()
        form = validate(STATUS_FORM, self.args())
        data = await self.run(users.set_status, self.current_user, path_id(user_id), form["status"])
        self.reply(data, "修改成功")


default_handlers = [
    api(f"user/update_status/{ID}", UserStatusHandler),
]
