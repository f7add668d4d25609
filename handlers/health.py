"""GET /healthz for load balancers and service managers: unsigned, outside the /zhugeleida prefix."""
import logging

from handlers.base import BaseHandler
from services import health
from services.scope import PUBLIC


class HealthHandler(BaseHandler):
    access = PUBLIC
    log_level = logging.DEBUG  # polled every few seconds: keep it out of the INFO log
    operation = health.HEALTH

    async def get(self):
        backlog = sum(self.settings["executor"].backlog().values())  # what this request met in this process
        data, ok = await self.run(health.check, self.settings["storage"], self.config)
        data["pool_backlog"] = backlog
        if ok:
            self.reply(data)
        else:
            self.set_status(503)
            self.reply(data, "服务不可用", 503)


default_handlers = [
    (r"/healthz/?", HealthHandler),
]
