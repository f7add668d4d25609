"""Validation of request arguments, the one place that turns client input into typed values.

Arguments come as text (query string, form fields) or as JSON values (a JSON body); every field type
accepts both. A bad field is a 303 naming it; a JSON-list field that is not a JSON list is a 301.
"""
import datetime

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


class Date(Field):
    def clean(self, value):
        if not isinstance(value, str):
            raise ValueError("必须是日期 YYYY-MM-DD")
        try:
            return datetime.date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("必须是日期 YYYY-MM-DD") from None


class JsonList(Field):
    """A list, sent as JSON text in a form field or as a real array in a JSON body."""

    def __init__(self, required=True, default=None, max_items=200):
        super().__init__(required, default)
        self.max_items = max_items

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
