"""Picture upload benchmark: prints (a) to (e) of issue 3 from one run, each beside its reference.

    .venv/bin/python bench/upload.py [--port 8201] [--bare-port 8202] [--rounds 5]

Starts the service (SQLite, a temporary data folder, upload limits raised so a 64 MB chunk is allowed) and a
bare streaming Tornado handler as subprocesses, and a prober process that sends a small signed GET every
10 ms for the whole run. Then:
 (a) raw-body chunk ingest, MB/s, beside the bare handler writing to a file;
 (b) base64 form-field (urlencoded) ingest, MB/s of decoded bytes;
 (c) the service's peak RSS growth while receiving a 20 MB picture in 1 MB chunks, and one 64 MB chunk
     (raw, and as base64 text), from /proc/PID/status (VmHWM, reset through clear_refs before each);
 (d) upload_complete of a 4000x3000 JPEG beside bare Pillow open/verify/re-encode timed in this process;
 (e) the prober's p50/p99/max latency while (a) to (d) ran;
 (f) the prober's latency while `server.worker_threads` completions of that JPEG run at once (issue 14
     item 7: the console uploads every selected file at once).
Rounds alternate between the service and the reference; medians are printed, and for (a) and (d) also
the ratio of the best rounds (the least disturbed by other load on the machine).
"""
import argparse
import base64
import hashlib
import http.client
import io
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MB = 1024 * 1024
ADD = "/zhugeleida/admin/product/add_picture/0"
COMPLETE = "/zhugeleida/admin/product/upload_complete/0"
PROBE = "/zhugeleida/admin/product/product_list"


# ---- the bare reference server (run as `upload.py --bare PORT DIR`) -------------------------------------

def bare_server(port, folder):
    import tornado.ioloop
    import tornado.web

    @tornado.web.stream_request_body
    class BareHandler(tornado.web.RequestHandler):
        def prepare(self):
            self.request.connection.set_max_body_size(1 << 30)
            self.file = tempfile.NamedTemporaryFile(dir=folder, delete=False)  # noqa: SIM115 - closed in post()

        def data_received(self, data):
            self.file.write(data)

        def post(self):
            self.file.close()
            os.replace(self.file.name, self.file.name + ".chunk")
            self.write({"code": 200})

    app = tornado.web.Application([(r"/.*", BareHandler)])
    app.listen(port, "127.0.0.1", max_body_size=1 << 30)
    tornado.ioloop.IOLoop.current().start()


# ---- signing and HTTP ------------------------------------------------------------------------------------

class Account:
    def __init__(self, user_id, token):
        self.user_id, self.token = user_id, token

    def params(self, timestamp=None, **extra):
        timestamp = str(timestamp or int(time.time() * 1000))
        rand_str = hashlib.md5(f"{timestamp}{self.token}".encode()).hexdigest()
        return {"rand_str": rand_str, "timestamp": timestamp, "user_id": str(self.user_id), **extra}


def post(conn, path, params, body=b"", content_type="application/octet-stream"):
    conn.request("POST", f"{path}?{urllib.parse.urlencode(params)}", body=body,
                 headers={"Content-Type": content_type})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200 or json.loads(data)["code"] != 200:
        raise RuntimeError(f"{path}: HTTP {response.status} {data[:300]!r}")
    return data


_upload_ids = iter(range(int(time.time() * 1000) - 3_600_000, 10**16))


def form_body(chunk):
    """An urlencoded img_data field holding the chunk as base64, quoted as `requests` quotes it."""
    text = base64.b64encode(chunk)
    return b"img_data=" + text.replace(b"+", b"%2B").replace(b"/", b"%2F").replace(b"=", b"%3D")


def send_upload(conn, account, bodies, form=False):
    """Send each body (raw chunk bytes, or form_body() text); return the upload id."""
    upload_id = next(_upload_ids)
    content_type = "application/x-www-form-urlencoded" if form else "application/octet-stream"
    for index, body in enumerate(bodies):
        post(conn, ADD, account.params(upload_id, img_name="bench.jpg", chunk=index), body, content_type)
    return upload_id


def complete(conn, account, upload_id, chunk_num):
    return post(conn, COMPLETE, account.params(upload_id, img_name="bench.jpg", chunk_num=chunk_num,
                                               picture_type=1))


# ---- the prober: a small signed GET every 10 ms, in its own process so this one's work cannot delay it ----

def probe(port, user_id, token, stop, results):
    account = Account(user_id, token)
    conn = http.client.HTTPConnection("127.0.0.1", port)
    latencies, next_at = [], time.monotonic()
    while not stop.is_set():
        started = time.monotonic()
        conn.request("GET", f"{PROBE}?{urllib.parse.urlencode(account.params(product_type=2))}")
        response = conn.getresponse()
        response.read()
        latencies.append((started, time.monotonic() - started))
        next_at += 0.010
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at = max(next_at, time.monotonic() - 0.010)  # after a slow answer, do not burst to catch up
    results.put(latencies)


# ---- memory of the service process -----------------------------------------------------------------------

class Memory:
    def __init__(self, pid):
        self.pid = pid

    def _status(self, field):
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field)

    def measure(self, work):
        """Run `work()`; return the peak RSS growth of the service meanwhile, in bytes."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = self._status("VmRSS")
        peak = [before]
        done = threading.Event()

        def sample():  # a second opinion in case the kernel ignores clear_refs
            while not done.is_set():
                peak[0] = max(peak[0], self._status("VmRSS"))
                time.sleep(0.002)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            work()
        finally:
            done.set()
            sampler.join()
        return max(self._status("VmHWM"), peak[0]) - before


# ---- set-up ------------------------------------------------------------------------------------------------

def service_environment(folder, port):
    return {**os.environ, "ZGLD_DATABASE_URL": f"sqlite:///{folder}/bench.db",
            "ZGLD_STORAGE_ROOT": f"{folder}/statics", "ZGLD_STORAGE_STAGING": f"{folder}/uploads",
            "ZGLD_SERVER_PORT": str(port), "ZGLD_LOGGING_LEVEL": "WARNING",
            "ZGLD_UPLOAD_MAX_CHUNK_BYTES": str(64 * MB), "ZGLD_UPLOAD_MAX_UPLOAD_BYTES": str(128 * MB),
            "ZGLD_UPLOAD_MAX_CHUNKS": "1024", "ZGLD_UPLOAD_MAX_OPEN_UPLOADS": "100000"}


def make_account(environment):
    import config
    import models
    from services.companies import get_or_create_company
    from services.users import create_user
    settings = config.load(environ={k: v for k, v in environment.items() if k.startswith("ZGLD_")})
    models.connect(settings["database"]["url"])
    models.create_schema()
    company = get_or_create_company("压测公司", settings)
    user = create_user(company.id, models.ROLE_USER, "bench", "压测", "bench-password", 1024)
    models.db.close()
    return Account(user.id, user.token)


def port_is_free(port):
    """False if something already listens there (a service left behind by an interrupted bench would answer
    in place of the one under test)."""
    try:
        http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
    except OSError:
        return True
    return False


def wait_for_port(port, process, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def test_jpeg(width, height):
    from PIL import Image
    small = Image.frombytes("RGB", (width // 8, height // 8), os.urandom(width // 8 * height // 8 * 3))
    out = io.BytesIO()
    small.resize((width, height), Image.Resampling.BICUBIC).save(out, "JPEG", quality=92)
    return out.getvalue()


def test_png(target_bytes):
    from PIL import Image
    side = int((target_bytes / 3) ** 0.5)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG", compress_level=1)
    return out.getvalue()


def bare_pillow(data, quality):
    from PIL import Image
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        image.save(io.BytesIO(), "JPEG", quality=quality)


def split(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


def timed(fn):
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# ---- the run -----------------------------------------------------------------------------------------------

def run(args):
    folder = Path(tempfile.mkdtemp(prefix="zgld-bench-upload-"))
    environment = service_environment(folder, args.port)
    account = make_account(environment)
    logs = open(folder / "server.log", "wb")  # noqa: SIM115 - the servers write to it until the end
    service = subprocess.Popen([sys.executable, str(REPO / "server.py")], cwd=folder, env=environment,
                               stdout=logs, stderr=subprocess.STDOUT)
    (folder / "bare").mkdir()
    bare = subprocess.Popen([sys.executable, __file__, "--bare", str(args.bare_port), str(folder / "bare")],
                            stdout=logs, stderr=subprocess.STDOUT)
    stop, results = multiprocessing.Event(), multiprocessing.Queue()
    prober, finished = None, False
    try:
        wait_for_port(args.port, service)
        wait_for_port(args.bare_port, bare)
        prober = multiprocessing.Process(target=probe, args=(args.port, account.user_id, account.token, stop,
                                                             results))
        prober.start()
        phases = Phases()
        figures = measure(args, account, Memory(service.pid), phases)
        stop.set()
        latencies = results.get(timeout=30)
        report(figures, latencies, phases)
        finished = True
    finally:
        stop.set()
        if prober is not None:
            prober.join(5)
        for process in (service, bare):
            process.terminate()
            process.wait(10)
        logs.close()
        if finished:
            shutil.rmtree(folder)  # about 1 GB of staged chunks
        else:
            print(f"\nserver log and data kept in {folder}")


class Phases:
    """When each phase ran, to split the prober's latencies by phase."""

    def __init__(self):
        self.spans = []

    def run(self, name, fn):
        started = time.monotonic()
        try:
            return fn()
        finally:
            self.spans.append((name, started, time.monotonic()))


def memory_figures(service, account, memory, phases):
    picture = test_png(20 * MB)
    picture_chunks = split(picture, MB)
    big_chunk = os.urandom(64 * MB)
    big_form = [form_body(big_chunk)]
    upload = {}

    def during(name, work):
        return phases.run(name, lambda: memory.measure(work))

    return {
        f"{len(picture) / MB:.1f} MB PNG in {len(picture_chunks)} raw 1 MB chunks": during(
            "(c)", lambda: upload.update(id=send_upload(service, account, picture_chunks))),
        "one 64 MB raw chunk": during("(c)", lambda: send_upload(service, account, [big_chunk])),
        "one 64 MB chunk as base64 (urlencoded)": during(
            "(c)", lambda: send_upload(service, account, big_form, form=True)),
        "upload_complete of that 20 MB PNG (extra, not a target)": during(
            "extra", lambda: complete(service, account, upload["id"], len(picture_chunks))),
    }


def measure(args, account, memory, phases):
    service = http.client.HTTPConnection("127.0.0.1", args.port)
    bare = http.client.HTTPConnection("127.0.0.1", args.bare_port)
    figures = {}
    phases.run("idle", lambda: time.sleep(2))  # the noise floor: the machine's own load

    # (c) first, on the fresh process, so no earlier phase has already grown its heap
    figures["c"] = memory_figures(service, account, memory, phases)
    chunk, chunks_per_upload = 4 * MB, 16
    raw = [os.urandom(chunk) for _ in range(chunks_per_upload)]
    forms = [form_body(c) for c in raw]
    volume = chunk * chunks_per_upload / MB
    ingest, reference, form = [], [], []
    for _ in range(args.rounds):
        reference.append(volume / phases.run("(a) bare", lambda: timed(lambda: send_upload(bare, account, raw))))
        ingest.append(volume / phases.run("(a)", lambda: timed(lambda: send_upload(service, account, raw))))
        form.append(volume / phases.run("(b)", lambda: timed(lambda: send_upload(service, account, forms, True))))
    figures["a"] = (statistics.median(ingest), statistics.median(reference), max(ingest) / max(reference))
    figures["b"] = statistics.median(form)

    jpeg = test_jpeg(4000, 3000)
    jpeg_chunks = split(jpeg, MB)
    bare_pillow(jpeg, 85)  # warm-up: Pillow's first use loads its plugins
    complete_times, pillow_times = [], []
    for _ in range(args.rounds):
        pillow_times.append(phases.run("(d) bare", lambda: timed(lambda: bare_pillow(jpeg, 85))))
        upload_id = send_upload(service, account, jpeg_chunks)
        complete_times.append(phases.run("(d)", lambda: timed(
            lambda: complete(service, account, upload_id, len(jpeg_chunks)))))  # noqa: B023 - runs at once
    figures["d"] = (statistics.median(complete_times), statistics.median(pillow_times), len(jpeg),
                    min(complete_times) / min(pillow_times))
    figures["f"] = completions_at_once(args, account, jpeg_chunks, phases)
    return figures


def completions_at_once(args, account, chunks, phases):
    """`server.worker_threads` uploads completed at once, over connections of their own; returns how many."""
    import config
    environment = service_environment(Path("."), args.port)
    settings = config.load(environ={k: v for k, v in environment.items() if k.startswith("ZGLD_")})
    count = settings["server"]["worker_threads"]
    connections = [http.client.HTTPConnection("127.0.0.1", args.port) for _ in range(count)]
    for _ in range(args.rounds):
        uploads = [(conn, send_upload(conn, account, chunks)) for conn in connections]
        workers = [threading.Thread(target=complete, args=(conn, account, upload_id, len(chunks)))
                   for conn, upload_id in uploads]
        phases.run("(f)", lambda: [[w.start() for w in workers], [w.join() for w in workers]])  # noqa: B023
    return count


def percentiles(latencies):
    ordered = sorted(latencies)
    if not ordered:
        return "no requests"
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{len(ordered):5d} requests, p50 {1000 * p50:5.1f} ms, p99 {1000 * p99:5.1f} ms, "
            f"max {1000 * ordered[-1]:6.1f} ms")


def report(figures, latencies, phases):
    ingest, reference, best = figures["a"]
    print(f"(a) raw chunk ingest       : {ingest:8.1f} MB/s   bare streaming handler to a file: {reference:8.1f} MB/s"
          f"   ratio {ingest / reference:.2f} (best rounds {best:.2f})")
    print(f"(b) base64 form ingest     : {figures['b']:8.1f} MB/s (decoded bytes)          "
          f"ratio to bare raw: {figures['b'] / reference:.2f}")
    print("(c) peak RSS growth of the service (target < 16 MB):")
    for what, growth in figures["c"].items():
        print(f"      {what:52}: {growth / MB:6.1f} MB")
    service_time, pillow_time, size, best = figures["d"]
    print(f"(d) upload_complete 4000x3000 JPEG ({size / MB:.1f} MB): {1000 * service_time:7.1f} ms   "
          f"bare Pillow open/verify/re-encode: {1000 * pillow_time:7.1f} ms   ratio {service_time / pillow_time:.2f}"
          f" (best rounds {best:.2f}; target <= 1.5)")
    def during(names):
        spans = [(start, end) for name, start, end in phases.spans if name in names]
        return [t for at, t in latencies if any(start <= at < end for start, end in spans)]

    print(f"(e) signed GET every 10 ms while (a)-(d) ran: {percentiles(during({'(a)', '(b)', '(c)', '(d)'}))}"
          "  (p99 target < 50)")
    print(f"(f) the same while {figures['f']} completions ran at once: {percentiles(during({'(f)'}))}"
          "  (p99 target < 50)")
    for name in dict.fromkeys(name for name, _, _ in phases.spans):
        print(f"      during {name:9}: {percentiles(during({name}))}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8201)
    parser.add_argument("--bare-port", type=int, default=8202)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bare", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_server(int(args.bare[0]), args.bare[1])
    else:
        run(args)


if __name__ == "__main__":
    main()
