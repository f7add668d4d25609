"""Test data for the product tests: two companies with their people, and rows put straight into the
database (pictures as the upload would leave them)."""
import datetime
import itertools
import json
import zoneinfo

import models
from services import clock

PREFIX = "/zhugeleida/admin/product/"
LIST = PREFIX + "product_list"
SINGLE = PREFIX + "product_single"
ADD = PREFIX + "add/0"
UPDATE = PREFIX + "update/{}"
DELETE = PREFIX + "delete/{}"
STATUS = PREFIX + "change_status/{}"
QIYEWEIXIN_STATUS = "/zhugeleida/qiyeweixin/product/change_status/{}"

_pictures = itertools.count(1)


def picture_url(n):
    return f"statics/zhugeleida/imgs/qiyeweixin/product/2018062814064588{n:04d}.jpg"


def product_form(product_type=2, name="门票", price="228", reason="一起度过美好时光!!", covers=(), articles=None,
                 as_json=False, **extra):
    """The fields of add/update as existing clients send them: list fields as JSON text in a form
    (`as_json=False`), or as real arrays for a JSON body."""
    form = {"product_type": product_type, "name": name, "price": price, "reason": reason,
            "cover_picture_id": list(covers), **extra}
    if articles is not None:
        form["article_data"] = articles
    if as_json:
        return form
    return {k: json.dumps(v, ensure_ascii=False) if isinstance(v, list) else str(v) for k, v in form.items()}


SHOWN_ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")  # the tests' stats.timezone (the default): answers show times in it


def _datetime(text):
    """A product's create_date given as answers show it ('YYYY-MM-DD HH:MM:SS' in SHOWN_ZONE), as stored (UTC)."""
    return clock.stored_time(datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S"), SHOWN_ZONE) if text \
        else models.now()


class Catalogue:
    """Company A (an administrator, two ordinary users) and company B (one ordinary user)."""

    def __init__(self, make_company, make_user):
        self.a = make_company("北京合众多屏科技发展有限公司")
        self.b = make_company("北京春秋永乐文化发展有限公司")
        self.admin = make_user(self.a, role=models.ROLE_ADMIN, login_name="boss", username="张聪")
        self.staff = make_user(self.a, login_name="staff", username="李雷")
        self.colleague = make_user(self.a, login_name="colleague", username="韩梅梅")
        self.outsider = make_user(self.b, login_name="outsider", username="王五")

    def product(self, company, name="产品", price="100", reason="理由", product_type=models.PRODUCT_COMPANY,
                owner=None, status=models.PRODUCT_ON_SHELF, created=None):
        return models.Product.create(company=company, user=owner, product_type=product_type, name=name,
                                     price=price, reason=reason, status=status, create_date=_datetime(created))

    def many_products(self, company, n):
        """`n` company products a second apart; their ids, oldest first."""
        start = datetime.datetime(2020, 1, 1)
        with models.db.atomic():
            models.Product.insert_many([
                {"company": company.id, "product_type": models.PRODUCT_COMPANY, "name": f"产品{i}", "price": "1",
                 "reason": "", "create_date": start + datetime.timedelta(seconds=i)} for i in range(n)]).execute()
        return [p.id for p in models.Product.select(models.Product.id).where(models.Product.company == company)
                .order_by(models.Product.create_date, models.Product.id)]

    def picture(self, company, product=None, order=0, picture_type=models.PICTURE_COVER):
        return models.ProductPicture.create(company=company, product=product, order=order,
                                            picture_type=picture_type, url=picture_url(next(_pictures)))

    def article(self, product, title=None, content=None, order=0):
        return models.ProductArticle.create(product=product, title=title, content=content, order=order)


def state(product_id):
    """What a product is made of, to compare before and after a request."""
    product = models.Product.get_or_none(models.Product.id == product_id)
    articles = [(a.id, a.title, a.content, a.order) for a in models.ProductArticle.select()
                .where(models.ProductArticle.product == product_id).order_by(models.ProductArticle.id)]
    pictures = [(p.id, p.picture_type, p.order, p.url) for p in models.ProductPicture.select()
                .where(models.ProductPicture.product == product_id).order_by(models.ProductPicture.id)]
    fields = product and (product.name, product.price, product.reason, product.status, product.product_type)
    return fields, articles, pictures
