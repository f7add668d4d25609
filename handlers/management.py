"""The shape the management areas (users, roles, companies) share (docs/api.md sections 5 to 7): a paged list (GET)
and `add/0`, `update/{id}`, `delete/{id}` (POST, administrators only).

An area subclasses these, names its forms and makes its one service call in `rows`, `add`, `update` or
`remove`; the declared access (ADMIN, checked with the signature), validating, parsing the path id and the
reply happen here."""
from collections.abc import Mapping

from handlers.base import ID, BaseHandler, api, path_id
from services.forms import Field, validate
from services.listing import MANAGEMENT_FORM
from services.scope import ADMIN


class ListHandler(BaseHandler):
    access = ADMIN
    inline_read = True
    filters: Mapping[str, Field] = {}  # filter fields beside current_page and length

    async def get(self):
        self.reply(await self.rows(validate({**MANAGEMENT_FORM, **self.filters}, self.args())))

    async def rows(self, form):
        raise NotImplementedError


class AddHandler(BaseHandler):
    access = ADMIN

    @property
    def form(self) -> Mapping[str, Field]:
        """The fields of an addition (a subclass names them, or computes them from the settings)."""
        return {}

    async def post(self):
        self.reply(await self.add(validate(self.form, self.args())), "添加成功")

    async def add(self, form):
        raise NotImplementedError


class UpdateHandler(BaseHandler):
    access = ADMIN
    form: Mapping[str, Field] = {}
    # fields left as they are when the request does not send them (the old forms do not)
    keep_if_absent: tuple[str, ...] = ()

    async def post(self, object_id):
        object_id = path_id(object_id)
        args = self.args()
        form = validate(self.form, args)
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
