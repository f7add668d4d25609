"""GET /metrics: the service's figures in Prometheus's text format (docs/api.md section 12.1). Not signed:
answered only to clients in `metrics.allowed_networks` (default loopback); anyone else gets the 404 of an
unknown path, so the route's existence is not told to the world."""
import functools
import ipaddress
import logging

import tornado.web

import metrics
from handlers.base import BaseHandler
from services import health, images
from services.scope import PUBLIC


@functools.lru_cache(maxsize=4)
def _networks(setting: str) -> tuple:
    return tuple(ipaddress.ip_network(network) for network in setting.split())


def allowed(address: str, setting: str) -> bool:
    """True if `address` is in one of the networks of `setting` (an IPv4 client of an IPv6 socket, which
    shows as ::ffff:a.b.c.d, counts as its IPv4 address)."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])  # an IPv6 zone (fe80::1%eth0) names no network
    except ValueError:
        return False
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return any(ip in network for network in _networks(setting))


class MetricsHandler(BaseHandler):
    access = PUBLIC  # no signature; metrics.allowed_networks decides instead
    log_level = logging.DEBUG  # scraped every few seconds: keep it out of the INFO log
    operation = health.METRICS
    enveloped = False  # Prometheus's text format
    answer_type = "text/plain"

    async def get(self):
        if not allowed(self.request.remote_ip or "", self.config["metrics"]["allowed_networks"]):
            raise tornado.web.HTTPError(404)
        # this process's pools, read on the loop (another process's are sampled every metrics.SAMPLE_MS)
        metrics.sample_pools(self.settings["executor"].backlog(), images.queue_depth())
        text = await self.run(health.metrics_text, self.settings["storage"], self.config)
        self.set_header("Content-Type", metrics.CONTENT_TYPE)
        self.finish(text)


default_handlers = [
    (r"/metrics/?", MetricsHandler),
]
