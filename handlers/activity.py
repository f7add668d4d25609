"""Customer activity ingestion: a signed batch of bindings, follow-ups and access events."""
from handlers.base import BaseHandler, api
from services import activity
from services.forms import JsonList, validate
from services.scope import MEMBER

BATCH_FORM = {"records": JsonList(max_items=activity.MAX_BATCH)}


class ActivityBatchHandler(BaseHandler):
    access = MEMBER

    async def post(self):
        form = validate(BATCH_FORM, self.args())
        data = await self.call(activity.store_records, form["records"], self.config)
        self.reply(data, "添加成功")


default_handlers = [
    api("activity/batch", ActivityBatchHandler),
]
