"""Every call that takes `company_id` follows one rule (docs/api.md 1.9): an administrator may name any
company that exists and then acts on it; an ordinary user may name only their own, another company being
a 302 `公司不存在` as for one that does not exist; a company that does not exist is a 302 for anyone.
A refusal changes nothing."""
import pytest

import models
from tests.conftest import row_counts

A = "/zhugeleida/admin/"
NO_SUCH_COMPANY = {"code": 302, "msg": "公司不存在", "data": {}}
MISSING_ID = 2**31 - 1


class World:
    """Company A with an ordinary user and a product; company B with an ordinary user; the administrator
    in company C, which has a product of its own."""

    def __init__(self, make_company, make_user):
        self.a, self.b, self.c = make_company("甲公司"), make_company("乙公司"), make_company("丙公司")
        self.member = make_user(self.a, login_name="member")
        self.outsider = make_user(self.b, login_name="outsider")
        self.admin = make_user(self.c, role=models.ROLE_ADMIN, login_name="boss")
        for company in (self.a, self.c):
            models.Product.create(company=company, product_type=models.PRODUCT_COMPANY, name=f"{company.name}的产品",
                                  price="1", reason="")


@pytest.fixture
def w(make_company, make_user):
    return World(make_company, make_user)


def product_names(body):
    return {row["name"] for row in body["data"]["ret_data"]}


def user_companies(body):
    return {row["company_id"] for row in body["data"]["ret_data"]}


def newest(model):
    return model.select().order_by(model.id.desc()).first()


# endpoint: (method, path, the request's other fields, what shows that the answer is about company X, or
# None: an endpoint only administrators may call (others get 404 before the company is looked at))
ENDPOINTS = {
    "product_list": ("GET", A + "product/product_list", {"product_type": 1},
                     lambda w, body, company: product_names(body) == {f"{company.name}的产品"}),
    "product_add": ("POST", A + "product/add/0",
                    {"product_type": 2, "name": "门票", "price": "1", "reason": "好", "cover_picture_id": "[]"},
                    lambda w, body, company: newest(models.Product).company_id == company.id),
    "home_page": ("GET", A + "home_page", {},
                  lambda w, body, company: body["data"]["ret_data"]["company_name"] == company.name),
    "acount_data": ("GET", A + "home_page/acount_data", {}, lambda w, body, company: True),
    "line_info": ("POST", A + "home_page/line_info", {"days": 7, "index_type": 1}, lambda w, body, company: True),
    "user_list": ("GET", A + "user", {}, lambda w, body, company: user_companies(body) == {company.id}),
    "user_add": ("POST", A + "user/add/0", {"username": "新人", "login_name": "newbie", "password": "secret123",
                                            "role_id": 2},
                 lambda w, body, company: newest(models.User).company_id == company.id),
    "user_update": ("POST", A + "user/update/{outsider}", {"username": "李四", "role_id": 2},
                    lambda w, body, company: models.User.get_by_id(w.outsider.id).company_id == company.id),
}
ADMIN_ONLY = {"user_add", "user_update"}


async def send(client, w, endpoint, caller, company_id):
    method, path, fields, _ = ENDPOINTS[endpoint]
    fields = dict(fields)
    if company_id is not None:
        fields["company_id"] = company_id
    path = path.format(outsider=w.outsider.id)
    if method == "GET":
        return await client.get(path, caller, **fields)
    return await client.post(path, caller, data=fields)


@pytest.mark.gen_test
@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
async def test_an_ordinary_user_naming_another_company_gets_302_and_changes_nothing(client, w, endpoint):
    before = row_counts()
    body = await send(client, w, endpoint, w.member, w.b.id)
    assert body == ({"code": 404, "msg": "非法请求", "data": {}} if endpoint in ADMIN_ONLY else NO_SUCH_COMPANY)
    assert row_counts() == before


@pytest.mark.gen_test
@pytest.mark.parametrize("endpoint", sorted(set(ENDPOINTS) - ADMIN_ONLY))
async def test_an_ordinary_user_naming_their_own_company_or_none_acts_on_it(client, w, endpoint):
    for company_id in (w.a.id, None):
        body = await send(client, w, endpoint, w.member, company_id)
        assert body["code"] == 200 and ENDPOINTS[endpoint][3](w, body, w.a), (company_id, body)


@pytest.mark.gen_test
@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
async def test_a_company_that_does_not_exist_is_302_for_an_administrator_too(client, w, endpoint):
    before = row_counts()
    assert await send(client, w, endpoint, w.admin, MISSING_ID) == NO_SUCH_COMPANY
    assert row_counts() == before


@pytest.mark.gen_test
@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
async def test_an_administrator_acts_on_the_company_named(client, w, endpoint):
    body = await send(client, w, endpoint, w.admin, w.a.id)
    assert body["code"] == 200 and ENDPOINTS[endpoint][3](w, body, w.a), body


@pytest.mark.gen_test
@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
async def test_an_administrator_naming_none_gets_every_company_in_a_list_else_their_own(client, w, endpoint):
    body = await send(client, w, endpoint, w.admin, None)
    assert body["code"] == 200
    if endpoint == "product_list":
        assert product_names(body) == {"甲公司的产品", "丙公司的产品"}
    elif endpoint == "user_list":
        assert user_companies(body) == {w.a.id, w.b.id, w.c.id}
    elif endpoint == "user_update":  # no company named: the user stays where they are
        assert ENDPOINTS[endpoint][3](w, body, w.b)
    else:
        assert ENDPOINTS[endpoint][3](w, body, w.c)
