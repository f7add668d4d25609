"""The product catalogue (docs/api.md section 8)."""
from handlers.base import ID, BaseHandler, api, path_id
from models import PRODUCT_COMPANY, PRODUCT_OFF_SHELF, PRODUCT_ON_SHELF, PRODUCT_PERSONAL, PRODUCT_RECOMMENDED
from services import products
from services.forms import Int, JsonList, Str, validate
from services.listing import PAGE_FORM
from services.scope import MEMBER

PRODUCT_TYPE = Int(choices=(PRODUCT_COMPANY, PRODUCT_PERSONAL))
SHELF_STATUS = (PRODUCT_ON_SHELF, PRODUCT_OFF_SHELF)

LIST_FORM = {
    "product_type": PRODUCT_TYPE,
    "status": Int(required=False, default=PRODUCT_ON_SHELF, choices=SHELF_STATUS),
    "product_name": Str(required=False, max_length=128),
    "company_id": Int(required=False),
    **PAGE_FORM,
}
SINGLE_FORM = {"product_id": Int()}
EDIT_FORM = {"product_type": PRODUCT_TYPE, "product_id": Int()}
PRODUCT_FORM = {
    "product_type": PRODUCT_TYPE,
    "name": Str(max_length=128),
    "price": Str(max_length=64),
    "reason": Str(max_length=1024),
    "cover_picture_id": JsonList(),
    "article_data": JsonList(required=False),
}
ADD_FORM = {**PRODUCT_FORM, "company_id": Int(required=False)}
STATUS_FORM = {"status": Int(choices=SHELF_STATUS)}
# the 企业微信 side also sets 3 (推荐), as the old one did (who may: products.set_status)
QIYEWEIXIN_STATUS_FORM = {"status": Int(choices=(*SHELF_STATUS, PRODUCT_RECOMMENDED))}


class ProductListHandler(BaseHandler):
    access = MEMBER
    inline_read = True

    async def get(self):
        form = validate(LIST_FORM, self.args())
        self.reply(await self.call(products.list_products, **form))


class ProductSingleHandler(BaseHandler):
    access = MEMBER
    inline_read = True

    async def get(self):
        form = validate(SINGLE_FORM, self.args())
        self.reply(await self.call(products.get_product, form["product_id"]))


class ProductEditHandler(BaseHandler):
    """The old edit form's read of one product."""

    access = MEMBER

    async def get(self):
        form = validate(EDIT_FORM, self.args())
        self.reply(await self.call(products.get_product_for_edit, **form))


class ProductAddHandler(BaseHandler):
    access = MEMBER  # company products: administrators only (products._require_may_change)
    async def post(self):
        form = validate(ADD_FORM, self.args())
        await self.call(products.add_product, form)
        self.reply({}, "添加成功")


class ProductUpdateHandler(BaseHandler):
    access = MEMBER  # company products: administrators only (products._require_may_change)
    async def post(self, product_id):
        product_id = path_id(product_id)
        form = validate(PRODUCT_FORM, self.args())
        await self.call(products.update_product, product_id, form, self.settings["storage"])
        self.reply({}, "添加成功")  # sic: the old system's text, which existing clients compare against


class ProductDeleteHandler(BaseHandler):
    access = MEMBER  # company products: administrators only (products._require_may_change)
    async def post(self, product_id):
        await self.call(products.delete_product, path_id(product_id), self.settings["storage"])
        self.reply({}, "删除成功")


class ProductStatusHandler(BaseHandler):
    access = MEMBER  # company products: administrators only (products._require_may_change)
    form = STATUS_FORM
    qiyeweixin = False

    async def post(self, product_id):
        product_id = path_id(product_id)
        form = validate(self.form, self.args())
        data = await self.call(products.set_status, product_id, form["status"], self.qiyeweixin)
        self.reply(data, products.STATUS_CHANGED_MSG[form["status"]])


class QiyeweixinStatusHandler(ProductStatusHandler):
    form = QIYEWEIXIN_STATUS_FORM
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
