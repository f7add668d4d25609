"""GET /metrics: the Prometheus text format, counted by route and envelope code, answered only to the
configured networks, with the figures read at scrape time (roll-up lag, open uploads, pool backlogs); and
with two worker processes, one scrape that counts the calls both served."""
import datetime
import http.client
import os
import shutil
import signal
import threading

import peewee as pw
import pytest
from prometheus_client.parser import text_string_to_metric_families

import metrics
import models
from handlers.metrics import allowed
from services import clock, images, stats
from tests.conftest import fresh_timestamp
from tests.test_faults_process import Api, data_dir, services  # noqa: F401 (fixtures)
from tests.test_health import database_down
from tests.test_pictures import send_chunk

METRICS = "/metrics"
PRODUCT_LIST = "/zhugeleida/admin/product/product_list"


def samples(text):
    """{(name, labels as sorted pairs): value} of a scrape."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def scrape(client):
    response = await client.http_client.fetch(client.base_url + METRICS, raise_error=False)
    assert response.code == 200, response.body
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return samples(response.body.decode())


def requests_of(figures, route, code):
    return figures.get(("zgld_requests_total", (("code", code), ("route", route))), 0)


@pytest.mark.gen_test
async def test_requests_are_counted_by_route_and_code_never_by_path(client, staff):
    before = await scrape(client)
    assert (await client.get(PRODUCT_LIST, staff, product_type=1))["code"] == 200
    assert (await client.get(PRODUCT_LIST, product_type=1))["code"] == 400  # unsigned
    assert (await client.request("GET", "/zhugeleida/admin/no/such/7"))[0] == 404
    after = await scrape(client)
    assert requests_of(after, PRODUCT_LIST, "200") - requests_of(before, PRODUCT_LIST, "200") == 1
    assert requests_of(after, PRODUCT_LIST, "400") - requests_of(before, PRODUCT_LIST, "400") == 1
    assert requests_of(after, "(none)", "404") - requests_of(before, "(none)", "404") == 1
    count = ("zgld_request_duration_seconds_count", (("route", PRODUCT_LIST),))
    assert after[count] - before.get(count, 0) == 2
    assert not any("no/such" in value for _, labels in after for _, value in labels)
    assert not any(name.endswith("_created") for name, _ in after)  # no second series per counter


@pytest.mark.gen_test
async def test_routes_with_path_ids_are_one_series(client, admin):
    before = await scrape(client)
    for product_id in ("7", "8", "abc"):
        await client.post(f"/zhugeleida/admin/product/delete/{product_id}", admin)
    after = await scrape(client)
    route = "/zhugeleida/admin/product/delete/{id}"
    assert requests_of(after, route, "302") - requests_of(before, route, "302") == 3


@pytest.mark.gen_test
async def test_other_networks_get_the_404_of_an_unknown_path(client, settings):
    settings["metrics"]["allowed_networks"] = "10.0.0.0/8"  # not the test client's loopback
    status, body = await client.request("GET", METRICS)
    assert (status, body) == (404, {"code": 404, "msg": "请求路径不存在", "data": {}})
    settings["metrics"]["allowed_networks"] = "10.0.0.0/8 127.0.0.0/8 ::1/128"
    assert await scrape(client)


def test_allowed_networks_match_addresses_and_ipv4_clients_of_ipv6_sockets():
    loopback = "127.0.0.0/8 ::1/128"
    assert allowed("127.0.0.1", loopback) and allowed("::1", loopback) and allowed("::ffff:127.0.0.1", loopback)
    assert not allowed("192.168.1.20", loopback) and not allowed("::2", loopback)
    assert not allowed("127.0.0.1", "") and not allowed("not an address", loopback)
    assert allowed("10.1.2.3", "10.0.0.0/8") and not allowed("11.1.2.3", "10.0.0.0/8")


@pytest.mark.gen_test
async def test_upload_bytes_and_open_uploads(client, staff):
    before = await scrape(client)
    assert (await send_chunk(client, staff, fresh_timestamp(), 0, b"x" * 1000))[1]["code"] == 200
    assert (await send_chunk(client, staff, fresh_timestamp(), 0, b"y" * 234))[1]["code"] == 200
    after = await scrape(client)
    uploaded = ("zgld_upload_bytes_total", ())
    assert after[uploaded] - before.get(uploaded, 0) == 1234
    assert after[("zgld_open_uploads", ())] == 2


@pytest.mark.gen_test
async def test_a_scrape_leaves_out_what_it_cannot_read_and_still_answers(client, app, tmp_path):
    staging = app.settings["storage"].staging
    shutil.rmtree(staging)
    staging.write_text("not a folder")
    stats.scheduled_rollup(app.settings["config"])  # a lag to read, until the database goes
    with database_down(tmp_path):
        figures = await scrape(client)
    names = {name for name, _ in figures}
    assert "zgld_open_uploads" not in names and "zgld_rollup_lag_days" not in names
    assert "zgld_requests_total" in names


@pytest.mark.gen_test
async def test_rollup_lag_and_last_success_in_metrics_and_healthz(client, settings):
    figures = await scrape(client)
    assert not any(name == "zgld_rollup_lag_days" for name, _ in figures)  # never rolled up yet
    started = datetime.datetime.now().timestamp()
    stats.scheduled_rollup(settings)
    state = models.RollupState.get_by_id(stats.ROLLUP)
    state.done_through = clock.local_today(settings) - datetime.timedelta(days=4)
    state.save()
    figures = await scrape(client)
    assert figures[("zgld_rollup_lag_days", ())] == 3
    assert figures[("zgld_rollup_last_success_timestamp_seconds", ())] >= int(started)
    assert (await client.request("GET", "/healthz"))[1]["data"]["rollup_lag_days"] == 3


@pytest.mark.gen_test
async def test_pool_backlog_counts_jobs_waiting_for_a_thread(client, app, settings):
    workers, threads = app.settings["executor"], settings["server"]["worker_threads"]
    release, started = threading.Event(), threading.Semaphore(0)

    def hold():
        started.release()
        release.wait(30)

    held = [workers.submit(hold) for _ in range(threads + 2)]  # every writer thread busy, two jobs waiting
    try:
        for _ in range(threads):
            assert started.acquire(timeout=30)
        figures = await scrape(client)
        assert figures[("zgld_pool_backlog", (("lane", "writes"),))] == 2
        assert figures[("zgld_pool_backlog", (("lane", "reads"),))] == 0
        assert (await client.request("GET", "/healthz"))[1]["data"]["pool_backlog"] == 2
    finally:
        release.set()
    for job in held:
        job.result(30)


@pytest.mark.gen_test
async def test_image_queue_depth_counts_pictures_waiting_for_an_image_thread(client, settings, monkeypatch):
    threads = settings["upload"]["image_threads"]  # the image pool is made once, with this setting
    release, started = threading.Event(), threading.Semaphore(0)

    def hold(*args):
        started.release()
        release.wait(30)

    monkeypatch.setattr(images, "_process", hold)
    held = [images.submit(None, 0, 0, 0, threads) for _ in range(threads + 3)]
    try:
        for _ in range(threads):
            assert started.acquire(timeout=30)
        assert (await scrape(client))[("zgld_image_queue_depth", ())] == 3
    finally:
        release.set()
    for job in held:
        job.result(30)


def database_errors(kind):
    """zgld_database_errors_total{kind} as this process's scrape says."""
    return samples(metrics.exposition(None, 0).decode()).get(("zgld_database_errors_total", (("kind", kind),)), 0)


@pytest.mark.parametrize("error, kind", [(pw.OperationalError("database is locked"), "busy"),
                                         (pw.IntegrityError("UNIQUE constraint failed"), "other")])
def test_database_errors_are_counted_by_kind(database, error, kind):
    before = database_errors(kind)

    def failing():
        raise error

    with pytest.raises(Exception):  # noqa: B017 - the fault named (Busy) or the error itself
        models.run_job(failing)
    assert database_errors(kind) == before + 1


# ---- two worker processes -----------------------------------------------------------------------------

def scrape_service(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", METRICS)
    response = conn.getresponse()
    assert response.status == 200
    return samples(response.read().decode())


def live_pids(figures):
    return {int(dict(labels)["pid"]) for name, labels in figures if name == "zgld_pool_backlog"}


@pytest.mark.skipif("os.environ.get('ZGLD_DATABASE_URL', '').startswith('postgres')",
                    reason="the service's own SQLite file, as in test_faults_process")
def test_one_scrape_counts_the_calls_of_both_processes_and_forgets_a_dead_ones_gauges(data_dir, services):  # noqa: F811
    service = services(data_dir, ZGLD_SERVER_PROCESSES="2")
    service.wait_for_line("listening on", count=2)
    api = Api(service.port)
    calls = 20  # each on a new connection: the kernel spreads them over both processes (all on one: 2^-19)
    for _ in range(calls):
        assert api.call("GET", "home_page")[1]["code"] == 200
    figures = scrape_service(service.port)
    assert requests_of(figures, "/zhugeleida/admin/home_page", "200") == calls
    assert requests_of(figures, "/zhugeleida/admin/login", "200") == 1
    first = set(service.children())
    assert live_pids(figures) == first and len(first) == 2
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    service.wait_for_line(f"worker process {victim} ended (killed by SIGKILL); started worker process")
    service.wait_for_line("listening on", count=3)
    figures = scrape_service(service.port)
    assert requests_of(figures, "/zhugeleida/admin/home_page", "200") == calls  # the dead one's still count
    assert live_pids(figures) == set(service.children()) and victim not in live_pids(figures)
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(30) == 0
