"""GET /openapi.json: the API described in OpenAPI 3.1, generated from the route table and each handler's
declared Operation (beside its service), the same declarations that check requests, so the description
cannot drift from what the service accepts. GET /docs: the console's page that renders it and can sign and
send a call (statics/console/docs.html). Both unsigned (docs/api.md section 14)."""
import re
from collections.abc import Iterable, Mapping
from typing import Any

import tornado.web

from handlers.base import ID, BaseHandler, to_json
from handlers.console import ASSETS, ConsoleFileHandler
from services.calls import SIGNING_PARAMS
from services.forms import BODY, CHUNK, MAX_ID, QUERY, Field, JsonList, Operation, object_schema
from services.scope import ADMIN, PUBLIC
from version import VERSION

# Codes any call may answer with HTTP 200 (docs/api.md section 1.4): done, a wrong kind of value, a bad
# form, a method the path does not take; a signed call adds the signature's and a disabled account's.
COMMON_CODES = (200, 301, 303, 402)
SIGNED_CODES = (400, 306)
ADMIN_CODES = (404,)  # an ordinary user calling an administrators' operation
# Codes sent with an HTTP status of their own (docs/api.md section 1.3)
STATUS_CODES = {413: "请求数据过大或超过上限", 503: "服务繁忙或正在停止，请稍后重试", 507: "存储空间不足"}

SECURITY_SCHEMES = {
    "rand_str": {"type": "apiKey", "in": "query", "name": "rand_str",
                 "description": "小写十六进制 MD5(timestamp + token)，token 来自 login（docs/api.md 第 2 节）"},
    "timestamp": {"type": "apiKey", "in": "query", "name": "timestamp",
                  "description": "客户端时钟，毫秒；与服务器相差不超过 auth.max_skew_seconds；签名的 POST 只接受一次"},
    "user_id": {"type": "apiKey", "in": "query", "name": "user_id", "description": "login 返回的 user_id"},
}
SIGNED: list[dict[str, list]] = [{name: [] for name in SECURITY_SCHEMES}]  # all three together
assert set(SECURITY_SCHEMES) == set(SIGNING_PARAMS)

_PATH_ID = {"name": "id", "in": "path", "required": True,
            "description": "对象 ID：正整数，其他任何写法都是 302（docs/api.md 1.1）",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}
_BODY_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "application/json")


def api_routes(routes: Iterable[tuple]) -> list[tuple[str, type[BaseHandler]]]:
    """The (pattern, handler) routes that are API calls: every BaseHandler (the files served are not)."""
    return [(route[0], route[1]) for route in routes
            if isinstance(route[1], type) and issubclass(route[1], BaseHandler)]


def handler_methods(handler: type[BaseHandler]) -> list[str]:
    """The HTTP methods a handler answers (lowercase), as BaseHandler.prepare decides."""
    return [name for name in ("get", "post")
            if getattr(handler, name) is not getattr(tornado.web.RequestHandler, name)]


def openapi_path(pattern: str) -> str:
    """`/zhugeleida/admin/user/update/([^/]+)/?` -> `/zhugeleida/admin/user/update/{id}`; `\\.` -> `.`."""
    return pattern.removesuffix("/?").replace(ID, "{id}").replace("\\.", ".")


def _tag(path: str) -> str:
    parts = path.strip("/").split("/")
    if parts[0] != "zhugeleida":
        return "service"
    name = parts[2]
    return "account" if name in ("login", "logout", "modify_password") else name


def _form_schema(field: Field) -> dict[str, Any]:
    """A field as it travels in a form: a list is JSON text (docs/api.md section 1.5)."""
    if isinstance(field, JsonList):
        return {"type": "string", "contentMediaType": "application/json", "contentSchema": field.json_schema()}
    return field.json_schema()


def _form_body(fields: Mapping[str, Field]) -> dict[str, Any]:
    json_schema = object_schema(fields)
    form_schema = {**json_schema, "properties": {name: _form_schema(f) for name, f in fields.items()}}
    return {"required": bool(json_schema.get("required")), "content": {
        kind: {"schema": json_schema if kind == "application/json" else form_schema} for kind in _BODY_TYPES}}


def _chunk_body() -> dict[str, Any]:
    base64_text = {"type": "string", "minLength": 1, "description": "分片内容的 base64 文本"}
    return {"required": True, "content": {
        "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {"img_data": base64_text},
                                                         "required": ["img_data"]}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {"img_data": base64_text},
                                           "required": ["img_data"]}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    }}


def _query_parameters(fields: Mapping[str, Field]) -> list[dict[str, Any]]:
    return [{"name": name, "in": "query", "required": field.required, "schema": field.json_schema()}
            for name, field in fields.items() if name not in SIGNING_PARAMS]


def envelope(codes: Iterable[int], data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The {code, msg, data} answer (docs/api.md section 1.2) with the codes it may carry."""
    return {"type": "object", "required": ["code", "msg", "data"], "properties": {
        "code": {"type": "integer", "enum": sorted(set(codes))},
        "msg": {"type": "string"},
        "data": data or {"type": "object"}}}


def _responses(handler: type[BaseHandler], operation: Operation) -> dict[str, Any]:
    if not handler.enveloped:
        schema = {"type": "object"} if handler.answer_type == "application/json" else {"type": "string"}
        return {"200": {"description": "OK", "content": {handler.answer_type: {"schema": schema}}}}
    codes = set(COMMON_CODES) | set(operation.codes)
    if handler.access != PUBLIC:
        codes |= set(SIGNED_CODES)
    if handler.access == ADMIN:
        codes |= set(ADMIN_CODES)
    answers = {"200": {"description": "一个信封；code 200 为成功，其他为拒绝（docs/api.md 1.4）",
                       "content": {"application/json": {"schema": envelope(codes - set(STATUS_CODES))}}}}
    for code, text in STATUS_CODES.items():
        answers[str(code)] = {"description": text, "content": {"application/json": {"schema": envelope([code])}}}
    return answers


def describe_operation(path: str, method: str, handler: type[BaseHandler], operation: Operation,
                       settings: Mapping) -> dict[str, Any]:
    fields = operation.fields_for(settings)
    parameters = [_PATH_ID] if "{id}" in path else []
    description = operation.description
    if handler.access == ADMIN:
        description = "仅管理员（其他用户得到 404）。" + description
    described: dict[str, Any] = {
        "operationId": f"{method}_{re.sub(r'[^A-Za-z0-9]+', '_', path.strip('/'))}",
        "summary": operation.summary, "tags": [_tag(path)], "security": [] if handler.access == PUBLIC else SIGNED}
    if description:
        described["description"] = description
    if operation.source == BODY:
        if fields:
            described["requestBody"] = _form_body(fields)
    else:
        parameters += _query_parameters(fields)
        if operation.source == CHUNK:
            described["requestBody"] = _chunk_body()
    if parameters:
        described["parameters"] = parameters
    described["responses"] = _responses(handler, operation)
    return described


def describe(routes: Iterable[tuple], settings: Mapping) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every API route; a route whose handler declares no operation is a
    mistake this refuses (tests/test_openapi.py walks the route table too)."""
    paths: dict[str, dict[str, Any]] = {}
    for pattern, handler in api_routes(routes):
        operation = handler.operation
        if operation is None:
            raise ValueError(f"{handler.__name__} ({pattern}) declares no operation")
        path = openapi_path(pattern)
        for method in handler_methods(handler):
            paths.setdefault(path, {})[method] = describe_operation(path, method, handler, operation, settings)
    return {
        "openapi": "3.1.0",
        "info": {"title": "诸葛雷达 admin service", "version": VERSION,
                 "description": "每个回答都是 {code, msg, data} 信封；除 login、/healthz 外都要签名。"
                                "完整说明见仓库的 docs/api.md。"},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"securitySchemes": SECURITY_SCHEMES},
    }


# ---- the handlers ------------------------------------------------------------------------------------

OPENAPI = Operation("本服务的 OpenAPI 3.1 描述（本文档）", source=QUERY)


class OpenApiHandler(BaseHandler):
    access = PUBLIC
    enveloped = False  # the document itself, as OpenAPI tools expect it
    operation = OPENAPI

    async def get(self):
        document = self.settings.get("openapi_document")
        if document is None:  # built once per process: a few milliseconds, from what never changes
            document = self.settings["openapi_document"] = to_json(describe(self.settings["routes"], self.config))
        self.set_header("Cache-Control", "no-cache")
        self.finish(document)


class DocsPageHandler(ConsoleFileHandler):
    """GET /docs: the reference page, a file of the console (which declares its access: public)."""

    # the route takes no path: the file is fixed (so the signatures differ from StaticFileHandler's)
    def get(self, include_body=True):  # type: ignore[override]
        return super().get("docs.html", include_body)

    def head(self):  # type: ignore[override]
        return self.get(include_body=False)


default_handlers = [
    (r"/openapi\.json", OpenApiHandler),
    (r"/docs/?", DocsPageHandler, ASSETS),
]
