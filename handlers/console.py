"""The admin console: a single page at `/` and its assets under `/console/`, plain files from statics/console.

Unsigned: the page signs its own API calls. Tornado's static file handler reads these few small files (tens of
KB) on the loop, which costs less than a hop to the executor; browsers revalidate them by ETag. A missing
asset answers the usual 404 envelope.
"""
from pathlib import Path

import tornado.web

from handlers.base import to_json
from services.errors import BadMethod
from services.scope import PUBLIC

CONSOLE_ROOT = Path(__file__).resolve().parent.parent / "statics" / "console"

# The console loads nothing from elsewhere: the service often runs offline, and this keeps it that way.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                           "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class ConsoleFileHandler(tornado.web.StaticFileHandler):
    access = PUBLIC  # files: the page signs its own API calls

    def set_default_headers(self):
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")

    def decode_argument(self, value, name=None):
        try:
            return super().decode_argument(value, name)
        except tornado.web.HTTPError:  # not UTF-8: no file has that name
            raise tornado.web.HTTPError(404) from None

    def parse_url_path(self, url_path):
        if "\x00" in url_path:  # the file system refuses such names with a ValueError
            raise tornado.web.HTTPError(404)
        return super().parse_url_path(url_path)

    def get_content_type(self):
        kind = super().get_content_type()
        return f"{kind}; charset=UTF-8" if kind.startswith("text/") or kind.endswith("javascript") else kind

    def set_extra_headers(self, path):
        # Revalidate every time (cheap: an ETag match answers 304), so an upgrade shows at once.
        self.set_header("Cache-Control", "no-cache")

    def write_error(self, status_code, **kwargs):
        """The API's envelope here too: 404 for a missing file, a wrong method answered 402 with HTTP 200.
        A path outside the folder or naming a folder (403 from Tornado) is answered like a missing file,
        so a prober learns nothing about what exists."""
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        code, msg = status_code, self._reason
        if status_code in (403, 404):
            self.set_status(404)
            code, msg = 404, "请求路径不存在"
        elif status_code == 405:
            self.set_status(200)
            code, msg = BadMethod.code, BadMethod.msg
        self.finish(to_json({"code": code, "msg": msg, "data": {}}))


ASSETS = {"path": str(CONSOLE_ROOT)}

default_handlers = [
    (r"/()", ConsoleFileHandler, {**ASSETS, "default_filename": "index.html"}),
    (r"/console/(.+)", ConsoleFileHandler, ASSETS),
]
