"""The service's Prometheus metrics (GET /metrics, docs/api.md section 12.1), one set per process.

With `server.processes` > 1 every worker process writes its figures to files in a folder of the instance
(prometheus_client's multiprocess mode) and a scrape, answered by any one of them, adds them up. The
folder is chosen, emptied and switched on by the parent before it forks (use_folder); the parent marks
a worker that ended (process_ended) so its live gauges leave the sums while its counters stay counted.

Per request the cost is a dict look-up and three increments (request counter, histogram bucket and
sum); figures that only change slowly (pool backlogs) are sampled, and those read from the database or
the storage (roll-up lag, open uploads) are computed at scrape time, so requests never pay for them.
"""
import os
import shutil
import time
from pathlib import Path

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

# The classic text format (version 0.0.4): what every Prometheus server reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
SAMPLE_MS = 1000  # how often each process writes its pool backlogs (multiprocess mode: others cannot read them)
NO_CODE = "-"  # the code label of an answer without the envelope (files, /metrics itself), as in the log line
# Request time buckets in seconds: the signed calls take ~1-20 ms, uploads and dashboards up to seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# No `*_created` series beside each counter and histogram: they doubled a scrape and Prometheus's classic
# text format has no use for them (a counter's reset shows as it dropping).
prometheus_client.disable_created_metrics()


class Metrics:
    """The metric objects of this process. Gauges that each process sets are `liveall` in multiprocess
    mode: one series per living process (a `pid` label), gone when the process ends."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("zgld_requests", "Requests answered, by route and envelope code",
                                ["route", "code"], registry=r)
        self.latency = Histogram("zgld_request_duration_seconds", "Time from request received to answer sent",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.upload_bytes = Counter("zgld_upload_bytes", "Bytes of picture chunks received and stored",
                                    registry=r)
        self.database_errors = Counter("zgld_database_errors", "Database errors met by calls and jobs, by kind",
                                       ["kind"], registry=r)
        self.pool_backlog = Gauge("zgld_pool_backlog", "Jobs waiting for a worker thread, by lane",
                                  ["lane"], multiprocess_mode="liveall", registry=r)
        self.image_queue = Gauge("zgld_image_queue_depth", "Pictures waiting for an image thread",
                                 multiprocess_mode="liveall", registry=r)
        self.rollup_success = Gauge("zgld_rollup_last_success_timestamp_seconds",
                                    "When a roll-up check last finished without error (Unix time)",
                                    multiprocess_mode="max", registry=r)
        self._request_series = {}  # (route, code) -> (counter child, histogram child): labels() costs ~2 us

    def observe_request(self, route: str, code: str, seconds: float) -> None:
        series = self._request_series.get((route, code))
        if series is None:
            series = self._request_series[(route, code)] = (self.requests.labels(route, code),
                                                            self.latency.labels(route))
        series[0].inc()
        series[1].observe(seconds)


_metrics = Metrics()
_folder: Path | None = None  # multiprocess mode: the instance's folder


def use_folder(folder: Path) -> None:
    """Multiprocess mode, in the parent before it forks: an empty folder for this instance's figures (the
    last run's are removed: counters start again from 0, as after any restart), and every metric from
    now on kept in a file there. prometheus_client picks its value class when it is first imported,
    from PROMETHEUS_MULTIPROC_DIR; we set both, since it is imported long before the settings are read."""
    global _metrics, _folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    values.ValueClass = values.MultiProcessValue()
    _folder = folder
    _metrics = Metrics()


def process_ended(pid: int) -> None:
    """In the parent: a worker process ended; its live gauges leave the scrape (its counters stay)."""
    if _folder is not None:
        multiprocess.mark_process_dead(pid, str(_folder))


# ---- what the service records -------------------------------------------------------------------------

def observe_request(route: str, code: object, seconds: float) -> None:
    _metrics.observe_request(route, NO_CODE if code is None else str(code), seconds)


def upload_bytes(count: int) -> None:
    _metrics.upload_bytes.inc(count)


def database_error(kind: str) -> None:
    _metrics.database_errors.labels(kind).inc()


def rollup_succeeded() -> None:
    _metrics.rollup_success.set(time.time())


def sample_pools(backlog: dict, image_queue: int) -> None:
    """Write this process's pool backlogs (read on the event loop, cheap: queue sizes)."""
    for lane, waiting in backlog.items():
        _metrics.pool_backlog.labels(lane).set(waiting)
    _metrics.image_queue.set(image_queue)


# ---- the scrape ---------------------------------------------------------------------------------------

class _ScrapeFigures:
    """Figures read at scrape time from what every process shares (the database, the storage)."""

    def __init__(self, rollup_lag_days: int | None, open_uploads: int | None) -> None:
        self.rollup_lag_days, self.open_uploads = rollup_lag_days, open_uploads

    def collect(self):
        """Each gauge without a sample when its figure is unknown (None)."""
        lag = GaugeMetricFamily("zgld_rollup_lag_days", "Days between the last rolled-up day and yesterday "
                                "(0: up to date; absent before the first roll-up or when the database does not answer)")
        uploads = GaugeMetricFamily("zgld_open_uploads", "Unfinished uploads in the staging storage")
        for family, value in ((lag, self.rollup_lag_days), (uploads, self.open_uploads)):
            if value is not None:
                family.add_metric([], value)
            yield family


def exposition(rollup_lag_days: int | None, open_uploads: int | None) -> bytes:
    """The text a scrape answers: every process's figures (blocking in multiprocess mode: it reads
    their files, so call it in the executor), then the scrape-time figures (None: unknown, left out)."""
    if _folder is None:
        counted = _metrics.registry
    else:
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted, str(_folder))
    shared = CollectorRegistry(auto_describe=False)
    shared.register(_ScrapeFigures(rollup_lag_days, open_uploads))
    return prometheus_client.generate_latest(counted) + prometheus_client.generate_latest(shared)
