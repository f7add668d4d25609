"""Who may call what (docs/api.md 1.9, 1.10): every route of the app, called by each kind of caller, against
one table of expected codes. A route added without a line in ACCESS fails test_every_route_has_one_entry,
so none ships open by forgetting; a handler without an `access` declaration cannot even be routed."""
import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import tornado.web

import models
from handlers.base import ID, BaseHandler, routes_declaring_access
from server import exact_routes, make_app
from services import scope
from tests.conftest import signed_params

CALLERS = ("unsigned", "member", "outsider", "admin")


class World:
    """Everything a request names belongs to company A: its ordinary user `member` (whose personal product
    the product calls name) and their colleague (whom the user calls name). `outsider` is an ordinary user
    of company B; the administrator belongs to company C, so what they reach in A they reach across
    companies. Company D is empty (for the delete), and role `extra` has no users."""

    def __init__(self, make_company, make_user, storage):
        self.a, self.b, self.c, self.d = (make_company(name) for name in ("甲公司", "乙公司", "丙公司", "丁公司"))
        self.member = make_user(self.a, login_name="member")
        self.colleague = make_user(self.a, login_name="colleague")
        self.outsider = make_user(self.b, login_name="outsider")
        self.admin = make_user(self.c, role=models.ROLE_ADMIN, login_name="boss")
        self.extra = models.Role.create(name="实习生")
        self.product = models.Product.create(company=self.a, user=self.member, product_type=models.PRODUCT_PERSONAL,
                                             name="门票", price="1", reason="")
        (storage.root / "probe.txt").write_text("a file")


def product_form(w, **extra):
    return {"product_type": 2, "name": "门票", "price": "228", "reason": "好", "cover_picture_id": "[]", **extra}


def user_form(w, **extra):
    return {"username": "新人", "login_name": "newbie", "role_id": 2, **extra}


def records(w):
    return {"records": json.dumps([{"kind": "binding", "user_id": w.member.id, "openid": "o-1"}])}


@dataclass
class Case:
    """One route's line: how it is called, and the code each caller gets, in the order of CALLERS (the
    envelope's code, or the HTTP status of an answer that is a file)."""
    method: str
    expected: tuple[int, int, int, int]
    path_id: Callable[[World], int] | None = None
    params: Callable[[World], dict] = lambda w: {}
    data: Callable[[World], dict] | None = None
    raw: bytes | None = None  # a body sent as application/octet-stream
    path: str | None = None  # for a route whose pattern is not a path


A = "/zhugeleida/admin/"

ACCESS = {
    # route: Case(method, (unsigned, member of A, member of B, administrator), what the request names)
    "/()": Case("GET", (200, 200, 200, 200), path="/"),
    "/console/(.+)": Case("GET", (200, 200, 200, 200), path="/console/app.js"),
    "/statics/(.+)": Case("GET", (200, 200, 200, 200), path="/statics/probe.txt"),
    "/healthz": Case("GET", (200, 200, 200, 200)),
    "/metrics": Case("GET", (200, 200, 200, 200)),  # to metrics.allowed_networks (the test's loopback)
    "/openapi\\.json": Case("GET", (200, 200, 200, 200), path="/openapi.json"),
    "/docs": Case("GET", (200, 200, 200, 200)),
    A + "login": Case("POST", (200, 200, 200, 200), data=lambda w: {"username": "member", "password": "secret123"}),
    A + "logout": Case("POST", (400, 200, 200, 200)),
    A + "modify_password": Case("POST", (400, 200, 200, 200),
                                data=lambda w: {"old_password": "secret123", "new_password": "secret456"}),
    A + "user": Case("GET", (400, 200, 302, 200), params=lambda w: {"company_id": w.a.id}),
    A + "user/add/0": Case("POST", (400, 404, 404, 200),
                           data=lambda w: user_form(w, password="secret123", company_id=w.a.id)),
    A + "user/update/{id}": Case("POST", (400, 404, 404, 200), lambda w: w.colleague.id, data=user_form),
    A + "user/delete/{id}": Case("POST", (400, 404, 404, 200), lambda w: w.colleague.id),
    A + "user/update_status/{id}": Case("POST", (400, 404, 404, 200), lambda w: w.colleague.id,
                                        data=lambda w: {"status": 2}),
    A + "user/reset_password/{id}": Case("POST", (400, 404, 404, 200), lambda w: w.colleague.id),
    A + "role": Case("GET", (400, 404, 404, 200)),
    A + "role/add/0": Case("POST", (400, 404, 404, 200), data=lambda w: {"name": "店长"}),
    A + "role/update/{id}": Case("POST", (400, 404, 404, 200), lambda w: w.extra.id, data=lambda w: {"name": "店长"}),
    A + "role/delete/{id}": Case("POST", (400, 404, 404, 200), lambda w: w.extra.id),
    A + "company": Case("GET", (400, 404, 404, 200)),
    A + "company/add/0": Case("POST", (400, 404, 404, 200), data=lambda w: {"name": "戊公司"}),
    A + "company/update/{id}": Case("POST", (400, 404, 404, 200), lambda w: w.a.id, data=lambda w: {"name": "甲"}),
    A + "company/delete/{id}": Case("POST", (400, 404, 404, 200), lambda w: w.d.id),
    A + "product/product_list": Case("GET", (400, 200, 302, 200),
                                     params=lambda w: {"product_type": 2, "company_id": w.a.id}),
    A + "product/product_single": Case("GET", (400, 200, 302, 200), params=lambda w: {"product_id": w.product.id}),
    A + "product/product_edit": Case("GET", (400, 200, 302, 200),
                                     params=lambda w: {"product_type": 2, "product_id": w.product.id}),
    A + "product/add/0": Case("POST", (400, 200, 302, 200), data=lambda w: product_form(w, company_id=w.a.id)),
    A + "product/update/{id}": Case("POST", (400, 200, 302, 200), lambda w: w.product.id, data=product_form),
    A + "product/delete/{id}": Case("POST", (400, 200, 302, 200), lambda w: w.product.id),
    A + "product/change_status/{id}": Case("POST", (400, 200, 302, 200), lambda w: w.product.id,
                                           data=lambda w: {"status": 2}),
    "/zhugeleida/qiyeweixin/product/change_status/{id}": Case("POST", (400, 200, 302, 200), lambda w: w.product.id,
                                                              data=lambda w: {"status": 3}),
    # an upload is the caller's own: anyone signed may send a chunk; completing one never sent is a 302
    A + "product/add_picture/0": Case("POST", (400, 200, 200, 200), params=lambda w: {"img_name": "a.jpg", "chunk": 0},
                                      raw=b"\xff\xd8"),
    A + "product/upload_complete/0": Case("POST", (400, 302, 302, 302),
                                          params=lambda w: {"img_name": "a.jpg", "chunk_num": 1, "picture_type": 1}),
    A + "home_page": Case("GET", (400, 200, 302, 200), params=lambda w: {"company_id": w.a.id}),
    A + "home_page/acount_data": Case("GET", (400, 200, 302, 200), params=lambda w: {"company_id": w.a.id}),
    A + "home_page/line_info": Case("POST", (400, 200, 302, 200),
                                    data=lambda w: {"company_id": w.a.id, "days": 7, "index_type": 1}),
    A + "activity/batch": Case("POST", (400, 200, 302, 200), data=records),
    A + "audit": Case("GET", (400, 404, 404, 200), params=lambda w: {"company_id": w.a.id}),
}


def route_key(pattern: str) -> str:
    """A route's pattern as ACCESS names it: no optional trailing slash, `{id}` for a path id."""
    return pattern.removesuffix("$").removesuffix("/?").replace(ID, "{id}")


def app_routes(app: tornado.web.Application) -> dict:
    return {route_key(rule.matcher.regex.pattern): rule.target for rule in app.wildcard_router.rules}


def test_every_route_has_one_entry(app):
    """A new route needs its line in ACCESS (and a removed one loses it)."""
    routes = app_routes(app)
    assert sorted(set(routes) - set(ACCESS)) == [], "routes without a line in ACCESS"
    assert sorted(set(ACCESS) - set(routes)) == [], "lines in ACCESS for no route"


@pytest.fixture
def w(make_company, make_user, app):
    return World(make_company, make_user, app.settings["storage"])


async def answer(client, w: World, key: str, caller: str) -> int:
    """The code `caller` gets for the route's request: the envelope's, or the HTTP status of a file."""
    case = ACCESS[key]
    path = case.path or key.replace("{id}", str(case.path_id(w)) if case.path_id else "")
    params = case.params(w)
    if caller != "unsigned":
        params = signed_params(getattr(w, caller), **params)
    headers, body = {}, case.raw
    if case.data is not None:
        headers["Content-Type"], body = "application/x-www-form-urlencoded", urllib.parse.urlencode(case.data(w))
    elif case.raw is not None:
        headers["Content-Type"] = "application/octet-stream"
    url = f"{client.base_url}{path}?{urllib.parse.urlencode(params)}"
    response = await client.http_client.fetch(url, method=case.method, headers=headers, raise_error=False,
                                              body=body if body is not None or case.method == "GET" else b"")
    body = json.loads(response.body) if response.headers.get("Content-Type", "").startswith(
        "application/json") else None
    if isinstance(body, dict) and "code" in body:  # an envelope (not /openapi.json's document)
        return body["code"]
    return response.code


@pytest.mark.gen_test
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("key", sorted(ACCESS))
async def test_each_caller_gets_the_code_the_table_says(client, w, key, caller):
    assert await answer(client, w, key, caller) == ACCESS[key].expected[CALLERS.index(caller)]


# ---- a handler that does not say who may call it ----

class Undeclared(BaseHandler):
    """Answers without a word about who may call it."""

    async def get(self):
        self.reply({"secret": 1})


def test_an_app_with_an_undeclared_handler_is_not_built(settings, database, workers, monkeypatch):
    from handlers import health
    monkeypatch.setattr(health, "default_handlers", [*health.default_handlers, (r"/undeclared", Undeclared)])
    with pytest.raises(TypeError, match="Undeclared .*declares no access"):
        make_app(settings, workers)
    assert routes_declaring_access([(r"/declared", type("Declared", (Undeclared,), {"access": scope.MEMBER}))])


@pytest.mark.gen_test
async def test_an_undeclared_handler_routed_anyway_is_denied(client, app, w):
    app.add_handlers(".*", [(r"/undeclared", Undeclared)])  # past make_app's check
    for params in ({}, signed_params(w.admin)):
        status, body = await client.request("GET", "/undeclared", params)
        assert (status, body) == (200, {"code": 404, "msg": "非法请求", "data": {}})


# ---- routing: most paths are found by one look-up, to the handler Tornado's own search would pick ----

def first_match(app: tornado.web.Application, path: str):
    """The handler of the first route whose pattern matches `path`: how Tornado routes."""
    return next((rule.target for rule in app.wildcard_router.rules if rule.matcher.regex.match(path)), None)


def test_every_path_looked_up_directly_reaches_the_handler_tornado_would_choose(app):
    assert len(app.exact_routes) > 40  # the look-up serves most routes
    for path, (handler, _) in app.exact_routes.items():
        assert first_match(app, path) is handler, path


def test_a_path_an_earlier_pattern_matches_is_left_to_tornado():
    class Earlier(BaseHandler):
        access = scope.PUBLIC

    class Later(BaseHandler):
        access = scope.PUBLIC
    shadowed = exact_routes([(r"/a/([^/]+)/?", Earlier), (r"/a/b/?", Later)])
    assert "/a/b" not in shadowed and "/a/b/" not in shadowed
    assert exact_routes([(r"/a/b/?", Later), (r"/a/([^/]+)/?", Earlier)])["/a/b/"] == (Later, {})
