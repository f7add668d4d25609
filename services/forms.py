"""Validation of request arguments, the one place that turns client input into typed values.

Arguments come as text (query string, form fields) or as JSON values (a JSON body); every field type
accepts both. A bad field is a 303 naming it; a JSON-list field that is not a JSON list is a 301.

Each API operation is declared once, as an `Operation` next to the service it feeds: its fields, where they
come from and its codes. The handler validates the request with it, and `GET /openapi.json` describes the
API from the same declarations (docs/api.md section 1.6 gives the field types).
"""
import dataclasses
import datetime
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from services.errors import FormInvalid, WrongType

MAX_ID = 2**31 - 1  # ids and counters fit a 32-bit signed column on every backend

MISSING = object()
MAX_JSON_DEPTH = 32  # every document the API takes is 2 or 3 levels deep


def parse_json(text):
    """The one place client JSON (str or bytes) is parsed; raises ValueError for bad or too deeply nested
    JSON. orjson refuses more than 1024 levels itself (the standard library recursed into a
    RecursionError on 50,000), but even 1,000 levels break Python code that recurses (repr, ==, dumps)."""
    value = orjson.loads(text)  # JSONDecodeError is a ValueError
    if text.count("[" if isinstance(text, str) else b"[") + text.count("{" if isinstance(text, str) else b"{") \
            > MAX_JSON_DEPTH:  # only then can it be too deep: skip the walk for every ordinary document
        _check_depth(value)
    return value


def _check_depth(value):
    level = [value]
    for _ in range(MAX_JSON_DEPTH):
        level = [child for item in level if isinstance(item, (list, dict))
                 for child in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return
    raise ValueError(f"JSON 嵌套超过 {MAX_JSON_DEPTH} 层")


class Field:
    def __init__(self, required=True, default=None):
        self.required = required
        self.default = default

    def clean(self, value):
        """Return the typed value, or raise ValueError with a message for the client."""
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the values this field accepts, for the API description."""
        return {}


class Int(Field):
    def __init__(self, required=True, default=None, min=1, max=MAX_ID, choices=None):
        super().__init__(required, default)
        self.min, self.max, self.choices = min, max, choices

    def clean(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError("必须是整数")
        if isinstance(value, str):
            text = value.strip()
            if not (text.isascii() and text.lstrip("-").isdigit()) or len(text) > 20:
                raise ValueError("必须是整数")
            value = int(text)
        if self.choices is not None and value not in self.choices:
            raise ValueError("取值必须是 " + ", ".join(str(c) for c in self.choices) + " 之一")
        if not self.min <= value <= self.max:
            raise ValueError(f"取值范围 {self.min} 到 {self.max}")
        return value

    def json_schema(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"type": "integer", "enum": list(self.choices)}
        return {"type": "integer", "minimum": self.min, "maximum": self.max}


class Str(Field):
    def __init__(self, required=True, default=None, max_length=128, min_length=1):
        super().__init__(required, default)
        self.max_length, self.min_length = max_length, min_length

    def clean(self, value):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError("必须是文本")
        text = str(value).strip()
        if "\x00" in text:
            raise ValueError("不能包含空字符")
        if len(text) < self.min_length:
            raise ValueError(f"长度不能少于 {self.min_length} 个字符")
        if len(text) > self.max_length:
            raise ValueError(f"长度不能超过 {self.max_length} 个字符")
        return text

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "minLength": self.min_length, "maxLength": self.max_length}


class Date(Field):
    def clean(self, value):
        if not isinstance(value, str):
            raise ValueError("必须是日期 YYYY-MM-DD")
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("必须是日期 YYYY-MM-DD") from None

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "date"}


class JsonList(Field):
    """A list, sent as JSON text in a form field or as a real array in a JSON body.

    `items` describes one item: a Field, a dict of Fields (an object), or a function giving its JSON
    Schema. The items themselves are checked by the operation's `refine` (their rules span fields)."""

    def __init__(self, required=True, default=None, max_items=200, items=None):
        super().__init__(required, default)
        self.max_items, self.items = max_items, items

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "array", "maxItems": self.max_items}
        if isinstance(self.items, Field):
            schema["items"] = self.items.json_schema()
        elif isinstance(self.items, Mapping):
            schema["items"] = object_schema(self.items)
        elif callable(self.items):
            schema["items"] = self.items()
        return schema

    def parse(self, name, value):
        if isinstance(value, str):
            try:
                value = parse_json(value)
            except ValueError:
                value = None
        if not isinstance(value, list):
            raise WrongType(data={name: ["必须是 JSON 列表"]})
        return value

    def clean(self, value):
        if len(value) > self.max_items:
            raise ValueError(f"最多 {self.max_items} 项")
        return value


def object_schema(fields: Mapping[str, Field]) -> dict[str, Any]:
    """The JSON Schema of an object whose keys are checked by `fields`."""
    schema: dict[str, Any] = {"type": "object", "properties": {name: field.json_schema()
                                                               for name, field in fields.items()}}
    required = [name for name, field in fields.items() if field.required]
    if required:
        schema["required"] = required
    return schema


def _is_blank(value):
    return value is MISSING or value is None or (isinstance(value, str) and not value.strip())


def validate(schema, args):
    """Check `args` (a dict of raw values) against `schema` (field name -> Field); return typed values.

    A blank value counts as missing: a required field is a 303, an optional one takes its default."""
    cleaned, errors = {}, {}
    for name, field in schema.items():
        value = args.get(name, MISSING)
        if _is_blank(value):
            if field.required:
                errors[name] = ["该字段是必填项"]
            else:
                cleaned[name] = field.default
            continue
        try:
            if isinstance(field, JsonList):
                value = field.parse(name, value)
            cleaned[name] = field.clean(value)
        except ValueError as e:
            errors[name] = [str(e)]
    if errors:
        raise FormInvalid(data=errors)
    return cleaned


# ---- operations: what one API call takes, declared once --------------------------------------------

QUERY, BODY, CHUNK = "query", "body", "chunk"  # where an operation's fields come from (see Operation)


@dataclasses.dataclass(frozen=True)
class Operation:
    """One API call's declaration: the single source both for checking a request and for describing it.

    `fields` maps names to Fields, or is a function of the settings giving them (limits from the
    configuration). `source`: QUERY (a GET: the query string), BODY (a POST: form-encoded, multipart or
    JSON body, or the query, docs/api.md section 1.5) or CHUNK (an upload chunk: fields in the query or
    a form, the chunk's bytes as a form field, a part or the raw body). `refine(form)` checks what spans
    several fields or the items of a list, after the fields are valid, and returns the form it feeds the
    service. `codes`: the envelope codes this call may answer beside the ones every call may."""

    summary: str
    fields: Mapping[str, Field] | Callable[[Mapping], Mapping[str, Field]] = dataclasses.field(
        default_factory=dict)
    source: str = BODY
    refine: Callable[[dict], dict] | None = None
    codes: tuple[int, ...] = ()
    description: str = ""

    def fields_for(self, settings: Mapping | None) -> Mapping[str, Field]:
        if callable(self.fields):
            if settings is None:
                raise ValueError(f"{self.summary}: its fields depend on the settings")
            return self.fields(settings)
        return self.fields

    def validate(self, args: Mapping, settings: Mapping | None = None) -> dict:
        """The typed form for raw `args`, or a 301/303 naming the bad fields."""
        form = validate(self.fields_for(settings), args)
        return self.refine(form) if self.refine else form
