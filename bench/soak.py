"""Soak: mixed load on one service for a bounded time; prints errors and the service's RSS over time.

    .venv/bin/python bench/soak.py [--minutes 10] [--clients 4] [--port 8690]

Starts the service (SQLite, a temporary data folder) as a subprocess. Each client, as one user for all
(so uploads of one user race, as the console's do), loops: a signed product_list, a product add, an
activity batch, and a picture upload in two chunks plus its completion. Every answer must be HTTP 200
with code 200; anything else is counted and its first lines printed. The service's RSS is sampled every
10 s (heap, mapped files, shared memory such as the SQLite WAL index; threads); the last line says
whether it levelled off (growth over the second half of the run).
"""
import argparse
import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from upload import ADD, COMPLETE, REPO, Memory, make_account, port_is_free, service_environment, wait_for_port

LIST = "/zhugeleida/admin/product/product_list"
ADD_PRODUCT = "/zhugeleida/admin/product/add/0"
BATCH = "/zhugeleida/admin/activity/batch"


def picture(seed):
    from PIL import Image
    image = Image.frombytes("RGB", (64, 48), os.urandom(64 * 48 * 3) if seed else bytes(64 * 48 * 3))
    out = io.BytesIO()
    image.resize((640, 480)).save(out, "JPEG", quality=90)
    return out.getvalue()


class Client:
    def __init__(self, port, account, counters, errors, upload_ids, stamps):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.account, self.counters, self.errors, self.upload_ids = account, counters, errors, upload_ids
        self.stamps = stamps  # one user signs in every client: each signed POST needs its own timestamp

    def call(self, method, path, params, body=None, content_type="application/x-www-form-urlencoded"):
        url = f"{path}?{urllib.parse.urlencode(params)}"
        try:
            self.conn.request(method, url, body=body, headers={"Content-Type": content_type} if body else {})
            response = self.conn.getresponse()
            data = response.read()
            ok = response.status == 200 and json.loads(data)["code"] == 200
        except (OSError, http.client.HTTPException, ValueError) as e:
            self.conn.close()
            data, ok = repr(e).encode(), False
        self.counters["calls"] += 1
        if not ok:
            self.errors.append(f"{method} {path}: {data[:200]!r}")
        return data

    def round(self, jpeg):
        account = self.account
        # Every signed call takes its own timestamp: a GET's signature is noted too, so a POST signed at the
        # same millisecond by another client would be refused as a replay.
        self.call("GET", LIST, account.params(next(self.stamps), product_type=2))
        form = urllib.parse.urlencode({"product_type": 2, "name": "门票", "price": "228", "reason": "好",
                                       "cover_picture_id": "[]"})
        self.call("POST", ADD_PRODUCT, account.params(next(self.stamps)), form)
        records = [{"kind": "access", "user_id": account.user_id, "openid": f"o{i % 50}", "action": 1 + i % 12}
                   for i in range(20)]
        self.call("POST", BATCH, account.params(next(self.stamps)), json.dumps({"records": records}),
                  "application/json")
        upload_id = next(self.upload_ids)
        half = len(jpeg) // 2
        for index, piece in enumerate((jpeg[:half], jpeg[half:])):
            self.call("POST", ADD, account.params(upload_id, img_name="soak.jpg", chunk=index), piece,
                      "application/octet-stream")
        self.call("POST", COMPLETE, account.params(upload_id, img_name="soak.jpg", chunk_num=2, picture_type=1))


def threads_of(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--port", type=int, default=8690)
    args = parser.parse_args()
    if not port_is_free(args.port):
        sys.exit(f"port {args.port} is taken (a service left by an interrupted run?): choose another with --port")
    folder = Path(tempfile.mkdtemp(prefix="zgld-soak-"))
    environment = service_environment(folder, args.port)
    # Every round keeps its picture, so a long run would meet the company's picture quota (20,000 by default,
    # answered 413): the quota is not what a soak measures.
    environment["ZGLD_UPLOAD_COMPANY_MAX_PICTURES"] = str(10**9)
    account = make_account(environment)
    service = subprocess.Popen([sys.executable, str(REPO / "server.py")], cwd=folder, env=environment)
    try:
        wait_for_port(args.port, service)
        run(args, service, account)
    finally:
        service.terminate()
        service.wait(30)
    shutil.rmtree(folder, ignore_errors=True)


def run(args, service, account):
    counters, errors, stop = {"calls": 0}, [], threading.Event()
    upload_ids = iter(range(int(time.time() * 1000) - 3_600_000, 10**16, 1))
    lock = threading.Lock()

    def next_id():
        with lock:
            return next(upload_ids)

    class Ids:
        def __next__(self):
            return next_id()

    last_stamp = [0]

    class Stamps:
        def __next__(self):
            with lock:
                last_stamp[0] = max(last_stamp[0] + 1, int(time.time() * 1000))
                return last_stamp[0]

    jpeg = picture(1)

    def client_loop():
        client = Client(args.port, account, counters, errors, Ids(), Stamps())
        while not stop.is_set():
            client.round(jpeg)

    threads = [threading.Thread(target=client_loop) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    memory, samples, started = Memory(service.pid), [], time.monotonic()
    end = started + args.minutes * 60
    while time.monotonic() < end and service.poll() is None:
        time.sleep(min(10, max(0.0, end - time.monotonic())))
        rss, anon, files, shared = (memory._status(field) / 1024 / 1024
                                    for field in ("VmRSS", "RssAnon", "RssFile", "RssShmem"))
        samples.append((time.monotonic() - started, rss))
        print(f"{samples[-1][0]:6.0f} s  RSS {rss:6.1f} MB (heap {anon:5.1f}, files {files:5.1f}, shared "
              f"{shared:4.1f})  threads {threads_of(service.pid):3d}  calls {counters['calls']:7d}  "
              f"errors {len(errors)}", flush=True)
    stop.set()
    for thread in threads:
        thread.join()
    for line in errors[:10]:
        print("error:", line)
    half = [rss for t, rss in samples if t >= (samples[-1][0] / 2)]
    print(f"{counters['calls']} calls, {len(errors)} errors; RSS {samples[0][1]:.1f} -> {samples[-1][1]:.1f} MB, "
          f"second half {min(half):.1f}..{max(half):.1f} MB (growth {half[-1] - half[0]:+.1f} MB)")


if __name__ == "__main__":
    main()
