"""Benchmark: the cost of the one log line each request writes, and of its /metrics figures, in
microseconds per request.

    .venv/bin/python bench/log_line.py [--lines 20000] [--format text|json] [--multiprocess]

Configures logging as the service does (server.configure_logging, to a file here so the terminal does not
set the pace) and calls, with a finished request's handler: handlers.base.log_request (the line),
metrics.observe_request (the counter and histogram), and server.log_and_forget (what Tornado calls at the
end of every request: both). --multiprocess keeps the metrics in files as with server.processes > 1.
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

import metrics  # noqa: E402
import server  # noqa: E402
from handlers.base import log_request  # noqa: E402

ROUTE = "/zhugeleida/admin/product/product_list"


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
        self.settings = {"route_names": {FinishedHandler: ROUTE}, "requests": set()}

    def get_status(self):
        return 200


def per_call(fn, lines):
    """Microseconds per call of fn(), after a warm-up."""
    for _ in range(1000):
        fn()
    started = time.perf_counter()
    for _ in range(lines):
        fn()
    return 1e6 * (time.perf_counter() - started) / lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20000)
    parser.add_argument("--format", choices=sorted(server.FORMATTERS), default="text")
    parser.add_argument("--multiprocess", action="store_true", help="metrics in files, as with 2+ processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, open(Path(folder) / "log", "w") as stream:
        if args.multiprocess:
            metrics.use_folder(Path(folder) / "metrics")
        server.configure_logging("INFO", stream=stream, form=args.format)
        handler = FinishedHandler()
        figures = {"log_request": per_call(lambda: log_request(handler), args.lines),
                   "metrics.observe_request": per_call(lambda: metrics.observe_request(ROUTE, 200, 0.0012),
                                                       args.lines),
                   "log_and_forget (both)": per_call(lambda: server.log_and_forget(handler), args.lines)}
    for name, microseconds in figures.items():
        print(f"{name}: {microseconds:.1f} us per request ({args.format}, {args.lines} lines"
              f"{', multiprocess' if args.multiprocess else ''})")


if __name__ == "__main__":
    main()
