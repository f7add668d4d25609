"""Benchmark: the cost of the one log line each request writes, in microseconds per line.

    .venv/bin/python bench/log_line.py [--lines 20000]

Configures logging as the service does (logging.basicConfig with the service's format, to a file here so
the terminal does not set the pace) and calls handlers.base.log_request with a finished request's handler.
"""
import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tornado.httputil  # noqa: E402

import server  # noqa: E402
from handlers.base import log_request  # noqa: E402


class FinishedHandler:
    """What log_request reads from a handler at the end of a signed product_list."""

    def __init__(self):
        self.request = tornado.httputil.HTTPServerRequest(start_line=tornado.httputil.RequestStartLine(
            "GET", "/zhugeleida/admin/product/product_list?product_type=1&rand_str=0123&timestamp=1", "HTTP/1.1"),
            headers=tornado.httputil.HTTPHeaders({"Host": "127.0.0.1"}))
        self.request_id = "0123456789abcdef"
        self.envelope_code = 200
        self.current_user = type("User", (), {"id": 7})()
        self.log_level = logging.INFO

    def get_status(self):
        return 200


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20000)
    lines = parser.parse_args().lines
    with tempfile.TemporaryDirectory() as folder, open(Path(folder) / "log", "w") as stream:
        server.configure_logging("INFO", stream=stream)
        handler = FinishedHandler()
        for _ in range(1000):
            log_request(handler)
        started = time.perf_counter()
        for _ in range(lines):
            log_request(handler)
        elapsed = time.perf_counter() - started
    print(f"log_request: {1e6 * elapsed / lines:.1f} us per line ({lines} lines)")


if __name__ == "__main__":
    main()
