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


class CompanyListHandler(ListHandler):
    operation = companies.LIST

    async def rows(self, form):
        return await self.call(ignore_caller(companies.list_companies), form, self.config)


class CompanyAddHandler(AddHandler):
    operation = companies.ADD
    audit_kind = "company"

    async def add(self, form):
        return await self.call(ignore_caller(companies.add_company), form)


class CompanyUpdateHandler(UpdateHandler):
    operation = companies.UPDATE
    audit_kind = "company"
    keep_if_absent = ("expire_date",)

    async def update(self, company_id, form):
        await self.call(ignore_caller(companies.update_company), company_id, form)


class CompanyDeleteHandler(DeleteHandler):
    operation = companies.DELETE
    audit_kind = "company"

    async def remove(self, company_id):
        await self.call(ignore_caller(companies.delete_company), company_id, self.settings["storage"])


default_handlers = management_routes("company", CompanyListHandler, CompanyAddHandler, CompanyUpdateHandler,
                                     CompanyDeleteHandler)
