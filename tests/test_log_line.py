"""The request log line: cheap (buffered, formatted once), yet a WARNING is written at once and the rest
within a flush."""
import io
import json
import logging
import re
import shutil
import urllib.parse

import pytest
import tornado.tcpclient

import logs
import server


def test_warnings_are_written_at_once_and_info_lines_at_the_next_flush(tmp_path):
    path = tmp_path / "log"
    with open(path, "w", buffering=1 << 16) as stream:
        handler = server.BufferedLineHandler(stream)
        handler.setFormatter(server.LineFormatter())
        logger = logging.getLogger("zgld.test-log-line")
        logger.propagate, logger.level = False, logging.INFO
        logger.addHandler(handler)
        try:
            logger.info("request_id=abc GET /x status=200")
            assert path.read_text() == ""  # still in the buffer: no system call per line
            logger.warning("something to see now")
            lines = path.read_text().splitlines()
            assert [line.split(" ", 2)[2] for line in lines] == [
                "INFO zgld.test-log-line request_id=abc GET /x status=200",
                "WARNING zgld.test-log-line something to see now"]
            logger.info("later")
            handler.flush()
            assert path.read_text().splitlines()[-1].endswith("INFO zgld.test-log-line later")
        finally:
            logger.removeHandler(handler)


def failure_record(error):
    """A log record of 'failed here' with `error`'s traceback, as logging.exception() makes one."""
    try:
        raise error
    except type(error) as e:
        return logging.LogRecord("zgld", logging.ERROR, "", 0, "failed %s", ("here",), (type(e), e, e.__traceback__))


def test_line_format_keeps_time_with_milliseconds_and_tracebacks():
    line = server.LineFormatter().format(failure_record(ValueError("boom")))
    stamp = line.split(" ERROR ")[0]
    assert len(stamp) == len("2026-12-01 03:56:10,166") and stamp[-4] == ","
    assert " ERROR zgld failed here\nTraceback" in line and "ValueError: boom" in line


# ---- the request id on every line a request causes, in both formats ----------------------------------------

@pytest.fixture
def service_log():
    """The lines the service's loggers write during a test, formatted as `logging.format` says."""
    stream = io.StringIO()
    logger = logging.getLogger("zgld")
    saved = logger.level
    handlers = []

    def start(form):
        handler = server.BufferedLineHandler(stream)
        handler.setFormatter(server.FORMATTERS[form]())
        logger.addHandler(handler)
        handlers.append(handler)
        logger.setLevel(logging.DEBUG)  # /healthz's request line is DEBUG

    def lines():
        for handler in handlers:
            handler.flush()
        return stream.getvalue().splitlines()

    start.lines = lines
    yield start
    for handler in handlers:
        logger.removeHandler(handler)
    logger.setLevel(saved)


@pytest.mark.gen_test
@pytest.mark.parametrize("form", ["text", "json"])
async def test_a_line_written_in_a_worker_thread_carries_its_requests_id(client, app, service_log, form):
    service_log(form)
    shutil.rmtree(app.settings["storage"].staging)
    app.settings["storage"].staging.write_text("not a folder")  # /healthz's probe logs a WARNING in its job
    status, _ = await client.request("GET", "/healthz", headers={"X-Request-Id": "trace-7"})
    assert status == 503
    logging.getLogger("zgld.test").warning("written outside any request")
    lines = service_log.lines()
    if form == "json":
        entries = [json.loads(line) for line in lines]  # every line is one JSON object
        warning = next(e for e in entries if e["logger"] == "zgld.health")
        assert warning["request_id"] == "trace-7" and warning["level"] == "WARNING"
        assert warning["message"].startswith("health: storage is not writable")
        request = next(e for e in entries if e["logger"] == "zgld.request")
        assert {k: request[k] for k in ("request_id", "route", "method", "path", "status", "code", "user")} == {
            "request_id": "trace-7", "route": "/healthz", "method": "GET", "path": "/healthz", "status": 503,
            "code": 503, "user": None}
        assert request["ms"] > 0 and request["time"].endswith("+00:00")
        outside = next(e for e in entries if e["logger"] == "zgld.test")
        assert "request_id" not in outside
    else:
        assert any(" WARNING zgld.health request_id=trace-7 health: storage is not writable" in line
                   for line in lines)
        assert any(" DEBUG zgld.request request_id=trace-7 GET /healthz status=503 code=503 " in line
                   for line in lines)
        assert lines[-1].endswith(" WARNING zgld.test written outside any request")


def test_json_lines_carry_tracebacks_and_escape_what_they_quote():
    line = logs.JsonFormatter().format(failure_record(ValueError('boom "quoted"\nsecond line')))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed here" and entry["level"] == "ERROR"
    assert entry["exception"].startswith("Traceback") and 'ValueError: boom "quoted"' in entry["exception"]


@pytest.mark.gen_test
async def test_a_line_tornado_writes_between_two_requests_does_not_carry_the_first_ones_id(app, http_server,
                                                                                           base_url):
    """A keep-alive connection: one request, then a malformed one, which Tornado logs before any handler
    exists. That line belongs to no request; it must not claim the one before it."""
    stream_log = io.StringIO()
    handler = server.BufferedLineHandler(stream_log)
    handler.setFormatter(server.LineFormatter())
    tornado_log = logging.getLogger("tornado.general")
    saved = tornado_log.level
    tornado_log.addHandler(handler)
    tornado_log.setLevel(logging.INFO)
    try:
        port = urllib.parse.urlsplit(base_url).port
        stream = await tornado.tcpclient.TCPClient().connect("127.0.0.1", port)
        stream.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: first-1\r\n\r\n")
        head = await stream.read_until(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        await stream.read_bytes(length)
        stream.write(b"NOT HTTP AT ALL\r\n\r\n")
        await stream.read_until_close()
    finally:
        tornado_log.removeHandler(handler)
        tornado_log.setLevel(saved)
    handler.flush()
    malformed = [line for line in stream_log.getvalue().splitlines() if "Malformed HTTP" in line]
    assert malformed and not any("first-1" in line for line in malformed), malformed
