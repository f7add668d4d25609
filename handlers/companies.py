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
}


class CompanyListHandler(ListHandler):
    filters = {"name": Str(required=False, max_length=128)}

    async def rows(self, form):
        return await self.call(ignore_caller(companies.list_companies), form)


class CompanyAddHandler(AddHandler):
    form = COMPANY_FORM

    async def add(self, form):
        return await self.call(ignore_caller(companies.add_company), form)


class CompanyUpdateHandler(UpdateHandler):
    form = COMPANY_FORM

    async def update(self, company_id, form):
        await self.call(ignore_caller(companies.update_company), company_id, form)


class CompanyDeleteHandler(DeleteHandler):
    async def remove(self, company_id):
        await self.call(ignore_caller(companies.delete_company), company_id, self.settings["storage"])


default_handlers = management_routes("company", CompanyListHandler, CompanyAddHandler, CompanyUpdateHandler,
                                     CompanyDeleteHandler)
