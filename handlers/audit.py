"""The audit trail (administrators): who changed what, when, from where, and how it ended."""
from handlers.base import BaseHandler, api
from services import audit
from services.scope import ADMIN


class AuditListHandler(BaseHandler):
    access = ADMIN
    operation = audit.LIST
    # not inline_read: counting the rows of a long range is not a short read, and must not hold the loop

    async def get(self) -> None:
        self.reply(await self.call(audit.list_entries, self.form(), self.config))


default_handlers = [
    api("audit", AuditListHandler),
]
