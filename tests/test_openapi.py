"""GET /openapi.json describes every route the service has, with every field its declaration checks, and
the limits it describes are the ones the service enforces; GET /docs serves the page that renders it."""
import json
import re

import pytest
import tornado.web

from handlers.base import BaseHandler
from services.calls import SIGNING_PARAMS
from services.forms import CHUNK, Str
from tests.conftest import signed_params

BODY_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data", "application/json"}


async def fetch_document(client):
    response = await client.http_client.fetch(client.base_url + "/openapi.json")
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


def routed_calls(app):
    """(OpenAPI path, method, handler) for each API call in the router Tornado dispatches with."""
    calls = []
    for rule in app.wildcard_router.rules:
        handler = rule.target
        if not (isinstance(handler, type) and issubclass(handler, BaseHandler)):
            continue  # files: the console, /docs, the pictures
        path = rule.matcher.regex.pattern.removesuffix("$").removesuffix("/?").replace("([^/]+)", "{id}")
        path = re.sub(r"\\(.)", r"\1", path)  # a regex's escaped character is itself in the path
        for method in ("get", "post"):
            if getattr(handler, method) is not getattr(tornado.web.RequestHandler, method):
                calls.append((path, method, handler))
    return calls


def described_names(operation):
    """The field names an operation's description gives: query parameters and body properties."""
    names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    for content in operation.get("requestBody", {}).get("content", {}).values():
        names |= set(content["schema"].get("properties", {}))
    return names


@pytest.mark.gen_test
async def test_every_route_is_described_and_every_description_is_a_route(app, client):
    document = await fetch_document(client)
    described = {(path, method) for path, methods in document["paths"].items() for method in methods}
    routed = {(path, method) for path, method, _ in routed_calls(app)}
    assert routed == described
    assert len(routed) >= 30  # the walk found the API, not an empty table


@pytest.mark.gen_test
async def test_every_declared_field_is_a_described_parameter_and_nothing_else(app, client, settings):
    document = await fetch_document(client)
    for path, method, handler in routed_calls(app):
        expected = set(handler.operation.fields_for(settings))
        if handler.operation.source == CHUNK:
            # its fields travel in the query, where its timestamp is the signing one; the bytes in the body
            expected = expected - SIGNING_PARAMS | {"img_data"}
        assert described_names(document["paths"][path][method]) == expected, (path, method)
        path_ids = [p for p in document["paths"][path][method].get("parameters", []) if p["in"] == "path"]
        assert len(path_ids) == path.count("{id}"), path


@pytest.mark.gen_test
async def test_signing_envelope_and_bodies_are_described(client):
    document = await fetch_document(client)
    assert document["openapi"].startswith("3.1")
    assert set(document["components"]["securitySchemes"]) == SIGNING_PARAMS
    paths = document["paths"]
    assert paths["/zhugeleida/admin/login"]["post"]["security"] == []
    assert paths["/healthz"]["get"]["security"] == []
    product_add = paths["/zhugeleida/admin/product/add/0"]["post"]
    assert set(product_add["security"][0]) == SIGNING_PARAMS
    assert set(product_add["requestBody"]["content"]) == BODY_TYPES
    answer = product_add["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["required"] == ["code", "msg", "data"]
    assert {200, 303, 400, 404} <= set(answer["properties"]["code"]["enum"])  # 404: a company product
    content = product_add["requestBody"]["content"]
    assert content["application/json"]["schema"]["properties"]["cover_picture_id"]["type"] == "array"
    as_text = content["application/x-www-form-urlencoded"]["schema"]["properties"]["cover_picture_id"]
    assert as_text["contentMediaType"] == "application/json"  # a list in a form is JSON text
    company_list = paths["/zhugeleida/admin/company"]["get"]["responses"]["200"]["content"]["application/json"]
    assert 404 in company_list["schema"]["properties"]["code"]["enum"]  # administrators only


# text fields whose value must also have a form (a file name, a date, a field name) or match stored data
# (the old password): a value of only x's is refused whatever its length, so only the excess is checked
HAVE_A_FORMAT = {"img_name", "create_date", "order", "old_password"}


async def send_fields(client, admin, method, path, fields):
    url = path.replace("{id}", "1")
    if method == "get":
        return await client.request("GET", url, signed_params(admin, **fields))
    return await client.request("POST", url, signed_params(admin), data=fields)


@pytest.mark.gen_test
async def test_described_limits_are_the_ones_enforced(app, client, admin, settings):
    """For every text field of every call: its described maxLength is accepted, one more character is a
    303 naming it."""
    document = await fetch_document(client)
    checked = 0
    for path, method, handler in routed_calls(app):
        if handler.operation.source == CHUNK:
            continue
        described = document["paths"][path][method]
        schemas = {p["name"]: p["schema"] for p in described.get("parameters", []) if p["in"] == "query"}
        body = described.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        schemas.update(body.get("properties", {}))
        for name, field in handler.operation.fields_for(settings).items():
            if not isinstance(field, Str):
                continue
            limit = schemas[name]["maxLength"]
            status, answer = await send_fields(client, admin, method, path, {name: "x" * (limit + 1)})
            assert (status, answer["code"]) == (200, 303) and name in answer["data"], (path, name, answer)
            if name not in HAVE_A_FORMAT:
                status, answer = await send_fields(client, admin, method, path, {name: "x" * limit})
                assert status == 200 and name not in (answer["data"] if answer["code"] == 303 else {}), \
                    (path, name, answer)
            checked += 1
    assert checked >= 25


@pytest.mark.gen_test
async def test_docs_page_is_served_offline(client):
    response = await client.http_client.fetch(client.base_url + "/docs")
    assert response.headers["Content-Type"].startswith("text/html")
    assert b"/console/docs.js" in response.body and b"http" not in response.body.replace(b"http-equiv", b"")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
