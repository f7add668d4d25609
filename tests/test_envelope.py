"""The envelope around every answer, the request log line, and faults reported with a request id."""
import logging
import re

import pytest

from services import auth
from services.forms import Int, JsonList, Str, validate


@pytest.mark.gen_test
async def test_unexpected_fault_is_500_with_the_logged_request_id(client, admin, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(auth, "login", broken)
    with caplog.at_level(logging.INFO, logger="zgld.request"):
        status, body = await client.request("POST", "/zhugeleida/admin/login",
                                            data={"username": "boss", "password": "secret123"})
    assert status == 500 and body["code"] == 500
    request_id = body["data"]["request_id"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and request_id in errors[0].getMessage() and errors[0].exc_info
    assert "disk on fire" not in body["msg"]  # internals stay in the log


@pytest.mark.gen_test
async def test_one_log_line_per_request_with_its_id_and_code(client, admin, caplog):
    with caplog.at_level(logging.INFO, logger="zgld.request"):
        response = await client.http_client.fetch(client.base_url + "/zhugeleida/admin/login", method="POST",
                                                  body="username=boss&password=wrong", raise_error=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "zgld.request"]
    assert len(lines) == 1
    assert f"request_id={response.headers['X-Request-Id']}" in lines[0] and "code=401" in lines[0]


@pytest.mark.gen_test
async def test_client_request_id_is_kept(client, admin):
    response = await client.http_client.fetch(client.base_url + "/nowhere", headers={"X-Request-Id": "abc-123"},
                                              raise_error=False)
    assert response.headers["X-Request-Id"] == "abc-123"


@pytest.mark.gen_test
@pytest.mark.parametrize("sent", ["a b", "x" * 65, "<script>", "id;rm", "caf\xe9"], ids=["space", "long", "markup",
                                                                                   "semicolon", "non-ascii"])
async def test_a_client_request_id_that_could_forge_a_log_line_is_replaced(client, admin, sent, caplog):
    caplog.set_level(logging.INFO, logger="zgld.request")
    response = await client.http_client.fetch(client.base_url + "/nowhere", headers={"X-Request-Id": sent},
                                              raise_error=False)
    replaced = response.headers["X-Request-Id"]
    assert replaced != sent and re.fullmatch(r"[0-9a-f]{16}", replaced)
    assert all(sent not in record.getMessage() for record in caplog.records)


# ---- the form rules every endpoint shares ----

@pytest.mark.parametrize("value", ["abc", "1.5", "", "99999999999999999999999", True, [1], {"a": 1}, "１２"])
def test_int_fields_refuse_what_is_not_a_small_integer(value):
    with pytest.raises(Exception) as caught:
        validate({"n": Int()}, {"n": value})
    assert caught.value.code == 303 and "n" in caught.value.data


def test_int_fields_accept_text_and_numbers():
    assert validate({"a": Int(), "b": Int()}, {"a": "42", "b": 7}) == {"a": 42, "b": 7}


def test_str_fields_trim_and_bound():
    assert validate({"s": Str(max_length=3)}, {"s": "  ab "}) == {"s": "ab"}
    with pytest.raises(Exception) as caught:
        validate({"s": Str(max_length=3)}, {"s": "abcd"})
    assert caught.value.code == 303
    with pytest.raises(Exception) as caught:
        validate({"s": Str()}, {"s": "a\x00b"})
    assert caught.value.code == 303


@pytest.mark.parametrize("value", ["[1,2", "{\"a\": 1}", "7", "null"])
def test_json_list_fields_that_are_not_lists_are_301(value):
    with pytest.raises(Exception) as caught:
        validate({"ids": JsonList()}, {"ids": value})
    assert caught.value.code == 301 and "ids" in caught.value.data


def test_json_list_fields_accept_text_and_arrays():
    assert validate({"a": JsonList(), "b": JsonList()}, {"a": "[8, 9]", "b": [1]}) == {"a": [8, 9], "b": [1]}
