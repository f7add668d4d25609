"""The audit trail (administrators): who changed what, when, from where, and how it ended."""
from handlers.base import BaseHandler, api
from services import audit
from services.errors import invalid
from services.forms import Date, Int, Str, validate
from services.listing import MANAGEMENT_LENGTH
from services.scope import ADMIN


class Kind(Str):
    """One of the kinds of target the trail records (services.audit.KINDS)."""

    def __init__(self):
        super().__init__(required=False, max_length=16)

    def clean(self, value: object) -> str:
        text = super().clean(value)
        if text not in audit.KINDS:
            raise ValueError("取值必须是 " + ", ".join(audit.KINDS) + " 之一")
        return text


LIST_FORM = {
    "current_page": Int(required=False, default=1),
    "length": Int(required=False, default=MANAGEMENT_LENGTH, min=0),  # 0: every row, up to 1,000
    "company_id": Int(required=False),
    "actor_id": Int(required=False),  # the user who acted (user_id is the caller's signing parameter)
    "login_name": Str(required=False, max_length=64),
    "kind": Kind(),
    "target_id": Int(required=False),
    "start_date": Date(required=False),  # UTC days, both included
    "end_date": Date(required=False),
}


class AuditListHandler(BaseHandler):
    access = ADMIN
    # not inline_read: counting the rows of a long range is not a short read, and must not hold the loop

    async def get(self) -> None:
        form = validate(LIST_FORM, self.args())
        if form["start_date"] and form["end_date"] and form["end_date"] < form["start_date"]:
            raise invalid("end_date", "结束日期不能早于开始日期")
        self.reply(await self.call(audit.list_entries, form))


default_handlers = [
    api("audit", AuditListHandler),
]
