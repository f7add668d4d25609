"""Benchmark: dashboard statistics as history grows, and activity ingestion through the batch endpoint.

    .venv/bin/python bench/stats.py [--database-url URL] [--port 8300] [--calls 300]

Loads 10,000 and then 1,000,000 events (bindings, follow-ups, access events) for 50 companies over 180
days, bulk-inserted and rolled up; at each size it prints the p50/p99 latency of signed `acount_data` and
`line_info` (days 30) calls against a running server, beside the time of the naive raw COUNT queries the
old system ran for the same answer (and checks both answers agree). Then it posts 1,000-record batches
to `activity/batch` and prints events per second. Targets: latency at 1M within 1.5x of 10K; ingestion
at least 20,000 events/s.

The default database is SQLite in a temporary folder; a PostgreSQL URL is EMPTIED first.
"""
import argparse
import concurrent.futures
import datetime
import gc
import hashlib
import http.client
import itertools
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import orjson
import peewee as pw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import config  # noqa: E402
import models  # noqa: E402
from services import auth, clock, stats  # noqa: E402

COMPANIES = 50
USERS_PER_COMPANY = 4
HISTORY_DAYS = 180
SIZES = (10_000, 1_000_000)
ACTIONS = [1] * 50 + [2] * 15 + [6] * 5 + [8] * 3 + [9] * 17 + [3, 4, 5, 7, 10, 11, 12] * 1 + [1, 1, 9]
ACOUNT = "/zhugeleida/admin/home_page/acount_data"
LINE = "/zhugeleida/admin/home_page/line_info"
BATCH = "/zhugeleida/admin/activity/batch"


# ---- the database -----------------------------------------------------------------------------------

def open_database(url):
    models.connect(url)
    models.create_schema()
    if isinstance(models.db.obj, pw.PostgresqlDatabase):
        tables = ", ".join(f'"{t}"' for t in models.db.get_tables())
        models.db.execute_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        models.create_schema()


def make_companies():
    """50 companies with 4 users each; returns {company_id: [(user_id, token), ...]}."""
    password = auth.hash_password("bench-password", 1024)
    users = {}
    for n in range(COMPANIES):
        company = models.Company.create(name=f"压测公司{n}", mingpian_available_num=10,
                                        expire_date=datetime.date.today() + datetime.timedelta(days=365))
        rows = [(company.id, models.ROLE_USER, f"bench{n}-{u}", f"用户{u}", password, auth.new_token())
                for u in range(USERS_PER_COMPANY)]
        models.User.insert_many(rows, fields=[models.User.company, models.User.role, models.User.login_name,
                                              models.User.username, models.User.password_hash,
                                              models.User.token]).execute()
        users[company.id] = list(models.User.select(models.User.id, models.User.token).where(
            models.User.company == company.id).tuples())
    return users


def load_events(count, users, rng, settings):
    """Bulk-insert `count` events spread over HISTORY_DAYS up to now: 4% bindings (each a new customer),
    6% follow-ups, 90% access events."""
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    span = HISTORY_DAYS * 86400

    def when():
        return now - datetime.timedelta(seconds=rng.random() * span)

    companies = list(users)
    bindings = count * 4 // 100
    # Customers, each with its first binding.
    first = models.Customer.select(pw.fn.COALESCE(pw.fn.MAX(models.Customer.id), 0)).scalar()
    customer_rows, binding_rows = [], []
    for n in range(bindings):
        company = companies[n % COMPANIES]
        at = when()
        customer_rows.append((company, f"bench-{first + n}", "", at, at))
    with models.db.atomic():
        models.insert_rows(models.Customer, [models.Customer.company, models.Customer.openid, models.Customer.name,
                                      models.Customer.create_date, models.Customer.first_bound_at], customer_rows)
    customers = {}
    for cid, company, bound in models.Customer.select(models.Customer.id, models.Customer.company,
                                                       models.Customer.first_bound_at).tuples():
        customers.setdefault(company, []).append(cid)
        if cid > first:
            binding_rows.append((company, cid, rng.choice(users[company])[0], 1, bound))
    follow_rows, access_rows = [], []
    for n in range(count - bindings):
        company = companies[n % COMPANIES]
        row = (company, rng.choice(customers[company]), rng.choice(users[company])[0])
        if n % 15 == 0:
            follow_rows.append((*row, "回访", when()))
        else:
            access_rows.append((*row, rng.choice(ACTIONS), when()))
    for model, extra, rows in ((models.CustomerBinding, models.CustomerBinding.source, binding_rows),
                               (models.FollowUp, models.FollowUp.content, follow_rows),
                               (models.AccessEvent, models.AccessEvent.action, access_rows)):
        for chunk in pw.chunked(rows, 100_000):  # transactions short enough for the server's roll-up check
            with models.db.atomic():
                models.insert_rows(model, [model.company, model.customer, model.user, extra, model.happened_at], chunk)
    # The roll-up of every day so far, as a rebuild would do it; today stays raw.
    today = clock.local_today(settings)
    stats.rebuild(today - datetime.timedelta(days=HISTORY_DAYS + 1), today - datetime.timedelta(days=1), settings)
    stats.rollup_if_due(settings)  # sets the progress row on the first load
    settle()


def settle():
    """What an operator does after a bulk load, so the measurement sees the steady state: PostgreSQL gets
    fresh planner statistics, SQLite folds its write-ahead log into the database file."""
    if isinstance(models.db.obj, pw.PostgresqlDatabase):
        models.db.execute_sql("ANALYZE")
    else:
        models.db.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    gc.collect()  # the loader's garbage, so it is not collected during the timed calls


def total_events():
    return sum(m.select().count() for m in (models.CustomerBinding, models.FollowUp, models.AccessEvent))


# ---- the old system's way: COUNT the raw records for each figure ---------------------------------------

def naive_counts(company_id, first, last, settings, metrics=stats.METRICS):
    """`metrics` over [first, last] (None: all time) with one COUNT each, straight from raw rows."""
    tz = clock.zone(settings)
    start = clock.day_start(first, tz) if first else datetime.datetime(1970, 1, 1)
    end = clock.day_start(last + datetime.timedelta(days=1), tz)
    action_of = {metric: action for action, metric in stats.ACTION_METRICS.items()}
    figures = {}
    for metric in metrics:
        if metric == "customer_num":
            query = models.Customer.select().where(models.Customer.first_bound_at >= start,
                                                   models.Customer.first_bound_at < end)
        elif metric == "follow_num":
            query = models.FollowUp.select().where(models.FollowUp.happened_at >= start,
                                                   models.FollowUp.happened_at < end)
        else:
            query = models.AccessEvent.select().where(models.AccessEvent.action == action_of[metric],
                                                      models.AccessEvent.happened_at >= start,
                                                      models.AccessEvent.happened_at < end)
        figures[metric] = query.where(query.model.company == company_id).count()
    return figures


def naive_acount(company_id, settings):
    today = clock.local_today(settings)
    day = datetime.timedelta(days=1)
    return {"count_data": naive_counts(company_id, None, today, settings),
            "yesterday_data": naive_counts(company_id, today - day, today - day, settings),
            "nearly_seven_days": naive_counts(company_id, today - 7 * day, today - day, settings),
            "nearly_thirty_days": naive_counts(company_id, today - 30 * day, today - day, settings)}


def naive_line(company_id, days, index_type, settings):
    """One COUNT per day, as the old system drew its curve."""
    metric = stats.METRICS[index_type - 1]
    today = clock.local_today(settings)
    points = []
    for n in range(days, 0, -1):
        day = today - datetime.timedelta(days=n)
        value = naive_counts(company_id, day, day, settings, [metric])[metric]
        points.append({"statics_date": day.isoformat(), "value": value})
    return points


# ---- a signing client over one keep-alive connection ------------------------------------------------------

_stamp = itertools.count(int(time.time() * 1000))


def signed(path, user, **params):
    user_id, token = user
    timestamp = str(next(_stamp))
    query = {"rand_str": hashlib.md5(f"{timestamp}{token}".encode()).hexdigest(), "timestamp": timestamp,
             "user_id": str(user_id), **params}
    return f"{path}?{urllib.parse.urlencode(query)}"


def call(conn, method, url, body=None, content_type="application/x-www-form-urlencoded"):
    headers = {"Content-Type": content_type} if body is not None else {}
    conn.request(method, url, body=body, headers=headers)
    response = conn.getresponse()
    data = orjson.loads(response.read())
    if data["code"] != 200:
        raise SystemExit(f"{method} {url.split('?')[0]} answered {data}")
    return data


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def timed(fn, repeat, before=None):
    """Milliseconds of each of `repeat` calls of fn; `before` runs, untimed, ahead of each."""
    samples = []
    for _ in range(repeat):
        if before:
            before()
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def measure(port, users, calls, settings, rng):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    companies = list(users)
    # Agreement first: the endpoint and the naive counts give the same answer.
    for company in companies[:3]:
        user = users[company][0]
        assert call(conn, "GET", signed(ACOUNT, user))["data"]["ret_data"] == naive_acount(company, settings)
        line = call(conn, "POST", signed(LINE, user), "days=30&index_type=3")["data"]["ret_data"]
        assert line == naive_line(company, 30, 3, settings)
    def acount_call():
        call(conn, "GET", signed(ACOUNT, rng.choice(users[rng.choice(companies)])))

    def line_call():
        call(conn, "POST", signed(LINE, rng.choice(users[rng.choice(companies)])),
             f"days=30&index_type={rng.randint(1, 6)}")

    timed(acount_call, 50), timed(line_call, 50)  # warm-up, not counted
    # On SQLite the dashboard's sums are remembered until the database changes: each timed acount_data
    # follows a committed POST (its signature is recorded), so it is the query that is measured.
    acount, line = timed(acount_call, calls, before=line_call), timed(line_call, calls)
    naive_runs = max(calls // 10, 10)
    naive_a = timed(lambda: naive_acount(rng.choice(companies), settings), naive_runs)
    naive_l = timed(lambda: naive_line(rng.choice(companies), 30, 3, settings), naive_runs)
    conn.close()
    return {"acount": acount, "line": line, "naive_acount": naive_a, "naive_line": naive_l}


def ingest(port, users, batches, threads, rng):
    """Post `batches` batches of 1,000 records from `threads` connections; return (events, seconds)."""
    bodies = []
    for _ in range(batches):
        company = rng.choice(list(users))
        company_users = users[company]
        records = []
        for i in range(1000):
            user_id = rng.choice(company_users)[0]
            openid = f"ingest-{company}-{rng.randrange(5000)}"
            kind = "binding" if i % 25 == 0 else "follow_up" if i % 15 == 0 else "access"
            record = {"kind": kind, "user_id": user_id, "openid": openid}
            if kind == "access":
                record["action"] = rng.choice(ACTIONS)
            records.append(record)
        bodies.append((company_users[0], orjson.dumps({"records": records})))

    def worker(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port)
        for user, body in chunk:
            call(conn, "POST", signed(BATCH, user), body, "application/json")
        conn.close()

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, [bodies[i::threads] for i in range(threads)]))
    return batches * 1000, time.perf_counter() - started


# ---- the server under test --------------------------------------------------------------------------

def start_server(url, port):
    env = {**os.environ, "ZGLD_DATABASE_URL": url, "ZGLD_SERVER_PORT": str(port), "ZGLD_LOGGING_LEVEL": "WARNING",
           "ZGLD_SERVER_PROCESSES": "1"}
    process = subprocess.Popen([sys.executable, str(ROOT / "server.py")], cwd=ROOT, env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/")
            conn.getresponse().read()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder; PostgreSQL is EMPTIED")
    parser.add_argument("--port", type=int, default=8300)
    parser.add_argument("--calls", type=int, default=300, help="signed calls per endpoint and size")
    parser.add_argument("--batches", type=int, default=100, help="1,000-record batches for the ingestion figure")
    parser.add_argument("--threads", type=int, default=4, help="client connections posting batches")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="event counts to measure at")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    folder = tempfile.mkdtemp(prefix="zgld-bench-")
    url = args.database_url or f"sqlite:///{folder}/bench.db"
    settings = config.load(environ={})
    rng = random.Random(4)

    open_database(url)
    users = make_companies()
    server = start_server(url, args.port)
    try:
        results = {}
        for size in sizes:
            started = time.perf_counter()
            load_events(size - total_events(), users, rng, settings)
            print(f"loaded {total_events():,} events and rolled up in {time.perf_counter() - started:.1f} s",
                  flush=True)
            results[size] = measure(args.port, users, args.calls, settings, rng)
        events, seconds = ingest(args.port, users, args.batches, args.threads, rng)
    finally:
        server.terminate()
        server.wait(15)
        shutil.rmtree(folder, ignore_errors=True)

    backend = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    print(f"\nstatistics on {backend}, {COMPANIES} companies, {HISTORY_DAYS} days of history, "
          f"{args.calls} signed calls each (ms)")
    print(f"{'events':>10} | {'acount_data p50/p99':>20} | {'naive 24 COUNTs p50':>20} | "
          f"{'line_info p50/p99':>18} | {'naive 30 COUNTs p50':>20}")
    for size, r in results.items():
        print(f"{size:>10,} | {percentile(r['acount'], 50):8.2f} / {percentile(r['acount'], 99):7.2f} | "
              f"{percentile(r['naive_acount'], 50):20.2f} | "
              f"{percentile(r['line'], 50):7.2f} / {percentile(r['line'], 99):7.2f} | "
              f"{percentile(r['naive_line'], 50):20.2f}")
    small, large = results[sizes[0]], results[sizes[-1]]
    for name in ("acount", "line", "naive_acount", "naive_line"):
        ratio = percentile(large[name], 50) / percentile(small[name], 50)
        target = "  (target <= 1.5x)" if not name.startswith("naive") else ""
        print(f"p50 at {sizes[-1]:,} / at {sizes[0]:,} events, {name:>12}: {ratio:5.2f}x{target}")
    print(f"ingestion through {BATCH}: {events:,} events in {seconds:.2f} s = {events / seconds:,.0f} events/s "
          f"({args.threads} connections; target >= 20,000)")


if __name__ == "__main__":
    main()
