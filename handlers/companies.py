"""Companies, administrators only: list, add, edit (name, card quota, expiry date), delete."""
from handlers.management import (
    AddHandler,
    DeleteHandler,
    ListHandler,
    UpdateHandler,
    ignore_caller,
    management_routes,
)
from services import companies
from services.forms import Date, Int, Str

COMPANY_FORM = {
    "name": Str(max_length=128),
    "mingpian_available_num": Int(min=0),
    "expire_date": Date(required=False),  # blank: no expiry date
    # the old admin form's 企业微信 settings (and it sends no quota: accounts.default_card_quota then)
    "corp_id": Str(required=False, default="", max_length=128),
    "tongxunlu_secret": Str(required=False, default="", max_length=255),
}


class CompanyListHandler(ListHandler):
    filters = {"name": Str(required=False, max_length=128)}

    async def rows(self, form):
        return await self.call(ignore_caller(companies.list_companies), form)


class CompanyAddHandler(AddHandler):
    audit_kind = "company"
    @property
    def form(self):
        quota = self.config["accounts"]["default_card_quota"]
        return {**COMPANY_FORM, "mingpian_available_num": Int(required=False, default=quota, min=0)}

    async def add(self, form):
        return await self.call(ignore_caller(companies.add_company), form)


class CompanyUpdateHandler(UpdateHandler):
    audit_kind = "company"
    # blank or absent: unchanged (the old form sends no quota, and no secret unless it is being replaced)
    form = {**COMPANY_FORM, "mingpian_available_num": Int(required=False, min=0),
            "corp_id": Str(required=False, max_length=128), "tongxunlu_secret": Str(required=False, max_length=255)}
    keep_if_absent = ("expire_date",)

    async def update(self, company_id, form):
        await self.call(ignore_caller(companies.update_company), company_id, form)


class CompanyDeleteHandler(DeleteHandler):
    audit_kind = "company"

    async def remove(self, company_id):
        await self.call(ignore_caller(companies.delete_company), company_id, self.settings["storage"])


default_handlers = management_routes("company", CompanyListHandler, CompanyAddHandler, CompanyUpdateHandler,
                                     CompanyDeleteHandler)
