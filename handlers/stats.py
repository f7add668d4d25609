"""The dashboard statistics (docs/api.md section 10)."""
from collections.abc import Callable
from typing import Any

from handlers.base import BaseHandler, api
from services import stats
from services.scope import MEMBER


class CompanyStatsHandler(BaseHandler):
    """GET: `view(caller, company_id, settings)` for the caller's company or the one named."""

    access = MEMBER

    # not inline_read: today is counted from raw records, which a busy day makes slow
    view: Callable[[Any, int | None, dict], dict]

    async def get(self):
        form = self.form()
        self.reply(await self.call(type(self).view, form["company_id"], self.config))


class HomePageHandler(CompanyStatsHandler):
    view = stats.home_page
    operation = stats.HOME_PAGE


class AcountDataHandler(CompanyStatsHandler):
    view = stats.acount_data
    operation = stats.ACOUNT_DATA


class LineInfoHandler(BaseHandler):
    access = MEMBER
    operation = stats.LINE_INFO

    async def post(self):
        form = self.form()
        self.reply(await self.call(stats.line_info, form["company_id"], form["days"],
                                  form["index_type"], self.config))


default_handlers = [
    api("home_page", HomePageHandler),
    api("home_page/acount_data", AcountDataHandler),
    api("home_page/line_info", LineInfoHandler),
]
