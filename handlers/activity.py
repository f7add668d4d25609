"""Customer activity ingestion: a signed batch of bindings, follow-ups and access events."""
from handlers.base import BaseHandler, api
from services import activity
from services.scope import MEMBER


class ActivityBatchHandler(BaseHandler):
    access = MEMBER
    operation = activity.BATCH

    async def post(self):
        form = self.form()
        data = await self.call(activity.store_records, form["records"], self.config)
        self.reply(data, "添加成功")


default_handlers = [
    api("activity/batch", ActivityBatchHandler),
]
