"""Benchmark: a signed product_list (20 rows out of 10,000 products) against a bare Tornado handler.

    .venv/bin/python bench/products.py [--seconds 5] [--rounds 3] [--clients 2] [--port 8100]
                                       [--database-url postgresql://...]

Starts the real service (`server.py`, one process) on a fresh database in a temp folder, and a bare
Tornado handler that answers `self.write(dict)` with the same JSON body. The same load generator (keep-alive
HTTP/1.1 clients in separate processes, every service request freshly signed) drives both, alternating,
and the medians are printed with their ratio. Compare ratios from one run: absolute figures drift.
"""
import argparse
import datetime
import hashlib
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import peewee as pw  # noqa: E402

import models  # noqa: E402
from services import auth  # noqa: E402

LIST_PATH = "/zhugeleida/admin/product/product_list"
PRODUCTS = 10_000


def seed(url):
    """A company with an ordinary user and an administrator, 10,000 company products each with a cover;
    returns {"user": (user_id, token), "admin": (user_id, token)}."""
    models.connect(url)
    models.create_schema()
    company = models.Company.create(name="压测公司", mingpian_available_num=10)
    callers = {}
    for name, role in (("user", models.ROLE_USER), ("admin", models.ROLE_ADMIN)):
        token = auth.new_token()
        user = models.User.create(company=company, role=role, login_name=f"bench-{name}", username="压测",
                                  password_hash=auth.hash_password("bench-password", 1024), token=token)
        callers[name] = (user.id, token)
    start = datetime.datetime(2020, 1, 1)
    with models.db.atomic():
        for first in range(0, PRODUCTS, 1000):
            models.Product.insert_many([
                {"company": company.id, "product_type": models.PRODUCT_COMPANY, "name": f"压测产品{i}",
                 "price": f"{i}元", "reason": "理由", "create_date": start + datetime.timedelta(minutes=i)}
                for i in range(first, first + 1000)]).execute()
        ids = [p.id for p in models.Product.select(models.Product.id)]
        for first in range(0, len(ids), 1000):
            models.ProductPicture.insert_many([
                {"company": company.id, "product": pid, "url": f"statics/zhugeleida/imgs/qiyeweixin/product/{pid}.jpg"}
                for pid in ids[first:first + 1000]]).execute()
    if isinstance(models.db.obj, pw.PostgresqlDatabase):
        models.db.execute_sql("VACUUM ANALYZE")  # as autovacuum would have done on a live database
    models.db.close()
    return callers


def signed_request(port, user_id, token):
    """The raw bytes of a signed GET. A GET's signature may be used again within the skew window
    (only POSTs are once-only), so each client signs once per measurement and repeats the bytes."""
    timestamp = str(int(time.time() * 1000))
    rand_str = hashlib.md5(f"{timestamp}{token}".encode()).hexdigest()
    query = urllib.parse.urlencode({"product_type": 1, "rand_str": rand_str, "timestamp": timestamp,
                                    "user_id": user_id})
    return f"GET {LIST_PATH}?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


_LENGTH = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)


def client_loop(port, caller, seconds):
    """One keep-alive client: as many requests as it can in `seconds`; returns how many answered code 200."""
    request = signed_request(port, *caller)
    done, buffer, deadline = 0, b"", time.monotonic() + seconds
    with socket.create_connection(("127.0.0.1", port)) as sock:
        while time.monotonic() < deadline:
            sock.sendall(request)
            while b"\r\n\r\n" not in buffer:
                buffer += sock.recv(65536)
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = int(_LENGTH.search(head).group(1))
            while len(buffer) < length:
                buffer += sock.recv(65536)
            body, buffer = buffer[:length], buffer[length:]
            done += head.startswith(b"HTTP/1.1 200") and b'"code":200' in body[:16].replace(b" ", b"")
    return done


def measure(pool, clients, port, caller, seconds):
    futures = [pool.submit(client_loop, port, caller, seconds) for _ in range(clients)]
    return sum(f.result() for f in futures) / seconds


BARE_APP = """
import json, sys, tornado.ioloop, tornado.web
body = json.load(open(sys.argv[2]))
class Bare(tornado.web.RequestHandler):
    def get(self):
        self.write(body)
app = tornado.web.Application([(r"/.*", Bare)])
app.listen(int(sys.argv[1]), "127.0.0.1")
tornado.ioloop.IOLoop.current().start()
"""


def wait_for(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listening on port {port}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--port", type=int, default=8100, help="the service; the bare handler uses port+1")
    parser.add_argument("--database-url", help="default: SQLite in a temp folder (a PostgreSQL one is emptied)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        if args.database_url:
            models.connect(url)
            models.db.drop_tables(models.MODELS, safe=True, cascade=True)
            models.db.close()
        callers = seed(url)
        env = {**os.environ, "ZGLD_DATABASE_URL": url, "ZGLD_SERVER_PORT": str(args.port),
               "ZGLD_STORAGE_ROOT": f"{tmp}/statics", "ZGLD_STORAGE_STAGING": f"{tmp}/staging",
               "ZGLD_LOGGING_LEVEL": "WARNING"}
        service = subprocess.Popen([sys.executable, str(ROOT / "server.py")], cwd=tmp, env=env)
        bare = None
        try:
            wait_for(args.port)
            conn = http.client.HTTPConnection("127.0.0.1", args.port)
            conn.request("GET", signed_request(args.port, *callers["user"]).split()[1].decode())
            body = conn.getresponse().read()
            page = json.loads(body)
            assert page["code"] == 200 and len(page["data"]["ret_data"]) == 20, page
            Path(tmp, "body.json").write_bytes(body)
            bare = subprocess.Popen([sys.executable, "-c", BARE_APP, str(args.port + 1), f"{tmp}/body.json"])
            wait_for(args.port + 1)
            print(f"product_list: {len(page['data']['ret_data'])} rows of {page['data']['data_count']}, "
                  f"{len(body)} bytes; {args.clients} keep-alive clients, {args.rounds} rounds of {args.seconds}s")
            targets = {"signed product_list, user": (args.port, callers["user"]),
                       "same, admin, all companies": (args.port, callers["admin"]),
                       "bare Tornado handler": (args.port + 1, callers["user"])}
            results = {name: [] for name in targets}
            with ProcessPoolExecutor(args.clients) as pool:
                for port, caller in targets.values():
                    measure(pool, args.clients, port, caller, 1)  # warm up
                for _ in range(args.rounds):
                    for name, (port, caller) in targets.items():
                        results[name].append(measure(pool, args.clients, port, caller, args.seconds))
        finally:
            for process in (service, bare):
                if process is not None:
                    process.terminate()
                    process.wait(15)
    bare_rps = statistics.median(results["bare Tornado handler"])
    for name, rounds in results.items():
        rps = statistics.median(rounds)
        print(f"{name:28} {rps:7.0f} req/s  ratio {rps / bare_rps:5.2f}  (rounds: "
              + ", ".join(f"{r:.0f}" for r in rounds) + ")")


if __name__ == "__main__":
    main()
