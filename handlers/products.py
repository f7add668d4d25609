"""The product catalogue (docs/api.md section 8)."""
from handlers.base import ID, BaseHandler, api, path_id
from services import products
from services.scope import MEMBER


class ProductListHandler(BaseHandler):
    access = MEMBER
    inline_read = True
    operation = products.LIST

    async def get(self):
        form = self.form()
        self.reply(await self.call(products.list_products, self.config, **form))


class ProductSingleHandler(BaseHandler):
    access = MEMBER
    inline_read = True
    operation = products.SINGLE

    async def get(self):
        form = self.form()
        self.reply(await self.call(products.get_product, self.config, form["product_id"]))


class ProductEditHandler(BaseHandler):
    """The old edit form's read of one product."""

    access = MEMBER
    operation = products.EDIT

    async def get(self):
        form = self.form()
        self.reply(await self.call(products.get_product_for_edit, self.config, **form))


class ProductAddHandler(BaseHandler):
    access = MEMBER  # company products: administrators only (products._require_may_change)
    operation = products.ADD
    audit_kind = "product"

    async def post(self):
        form = self.form()
        await self.call(products.add_product, form)
        self.reply({}, "添加成功")


class ProductUpdateHandler(BaseHandler):
    access = MEMBER  # company products: administrators only (products._require_may_change)
    operation = products.UPDATE
    audit_kind = "product"

    async def post(self, product_id):
        product_id = path_id(product_id)
        form = self.form()
        await self.call(products.update_product, product_id, form, self.settings["storage"])
        self.reply({}, "添加成功")  # sic: the old system's text, which existing clients compare against


class ProductDeleteHandler(BaseHandler):
    access = MEMBER  # company products: administrators only (products._require_may_change)
    operation = products.DELETE
    audit_kind = "product"

    async def post(self, product_id):
        await self.call(products.delete_product, path_id(product_id), self.settings["storage"])
        self.reply({}, "删除成功")


class ProductStatusHandler(BaseHandler):
    access = MEMBER  # company products: administrators only (products._require_may_change)
    operation = products.SET_STATUS
    audit_kind = "product"
    qiyeweixin = False

    async def post(self, product_id):
        product_id = path_id(product_id)
        form = self.form()
        data = await self.call(products.set_status, product_id, form["status"], self.qiyeweixin)
        self.reply(data, products.STATUS_CHANGED_MSG[form["status"]])


class QiyeweixinStatusHandler(ProductStatusHandler):
    operation = products.QIYEWEIXIN_SET_STATUS
    qiyeweixin = True


default_handlers = [
    api("product/product_list", ProductListHandler),
    api("product/product_single", ProductSingleHandler),
    api("product/product_edit", ProductEditHandler),
    api("product/add/0", ProductAddHandler),
    api(f"product/update/{ID}", ProductUpdateHandler),
    api(f"product/delete/{ID}", ProductDeleteHandler),
    api(f"product/change_status/{ID}", ProductStatusHandler),
    api(f"product/change_status/{ID}", QiyeweixinStatusHandler, area="qiyeweixin"),
]
