"""The shape the management areas (users, roles, companies) share (docs/api.md sections 5 to 7): a paged list (GET)
and `add/0`, `update/{id}`, `delete/{id}` (POST, administrators only).

An area subclasses these, names its operations (declared beside its service) and makes its one service
call in `rows`, `add`, `update` or `remove`; the declared access (ADMIN, checked with the signature),
validating, parsing the path id and the reply happen here."""
from handlers.base import ID, BaseHandler, api, path_id
from services.scope import ADMIN


class ListHandler(BaseHandler):
    access = ADMIN
    inline_read = True

    async def get(self):
        self.reply(await self.rows(self.form()))

    async def rows(self, form):
        raise NotImplementedError


class AddHandler(BaseHandler):
    access = ADMIN

    async def post(self):
        self.reply(await self.add(self.form()), "添加成功")

    async def add(self, form):
        raise NotImplementedError


class UpdateHandler(BaseHandler):
    access = ADMIN
    # fields left as they are when the request does not send them (the old forms do not)
    keep_if_absent: tuple[str, ...] = ()

    async def post(self, object_id):
        object_id = path_id(object_id)
        args = self.args()
        if self.operation is None:
            raise RuntimeError(f"{type(self).__name__} declares no operation")
        form = self.operation.validate(args, self.config)
        await self.update(object_id, {k: v for k, v in form.items() if k in args or k not in self.keep_if_absent})
        self.reply({}, "修改成功")

    async def update(self, object_id, form):
        raise NotImplementedError


class DeleteHandler(BaseHandler):
    access = ADMIN

    async def post(self, object_id):
        await self.remove(path_id(object_id))
        self.reply({}, "删除成功")

    async def remove(self, object_id):  # not `delete`: that name would answer HTTP DELETE
        raise NotImplementedError


def ignore_caller(fn):
    """For call(), a service that needs no caller: these areas are for administrators, checked by call()."""
    return lambda caller, *args, **kwargs: fn(*args, **kwargs)


def management_routes(area, list_handler, add_handler, update_handler, delete_handler):
    return [
        api(area, list_handler),
        api(f"{area}/add/0", add_handler),
        api(f"{area}/update/{ID}", update_handler),
        api(f"{area}/delete/{ID}", delete_handler),
    ]
