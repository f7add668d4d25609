"""Roles, administrators only: list, add, rename, delete (the two built-in roles stay as they are)."""
from handlers.management import (
    AddHandler,
    DeleteHandler,
    ListHandler,
    UpdateHandler,
    ignore_caller,
    management_routes,
)
from services import roles


class RoleListHandler(ListHandler):
    operation = roles.LIST

    async def rows(self, form):
        return await self.call(ignore_caller(roles.list_roles), form, self.config)


class RoleAddHandler(AddHandler):
    operation = roles.ADD
    audit_kind = "role"

    async def add(self, form):
        return await self.call(ignore_caller(roles.add_role), form["name"])


class RoleUpdateHandler(UpdateHandler):
    operation = roles.UPDATE
    audit_kind = "role"

    async def update(self, role_id, form):
        await self.call(ignore_caller(roles.update_role), role_id, form["name"])


class RoleDeleteHandler(DeleteHandler):
    operation = roles.DELETE
    audit_kind = "role"

    async def remove(self, role_id):
        await self.call(ignore_caller(roles.delete_role), role_id)


default_handlers = management_routes("role", RoleListHandler, RoleAddHandler, RoleUpdateHandler, RoleDeleteHandler)
