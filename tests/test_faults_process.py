"""Faults at the process level, on the real service in a subprocess: SIGTERM with work in flight past the
grace, keep-alive connections during the drain, worker processes killed (-9) and supervised, the parent
killed, a second instance on the same data folder or port, and crash leftovers at start-up. Every wait is
for an event: a log line, a file, a process ending."""
import hashlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from storage.local import HOST_TAG
from tests.test_server import SERVER, clean_env, free_port, run_cli

pytestmark = pytest.mark.skipif("os.environ.get('ZGLD_DATABASE_URL', '').startswith('postgres')",
                                reason="the service's own SQLite file; the PostgreSQL paths are in test_faults.py")


class Service:
    """The service as a subprocess; its output lines are collected so a test can wait for one."""

    def __init__(self, folder, port=None, **env):
        self.folder, self.port = folder, port or free_port()
        self.lines, self._changed = [], threading.Condition()
        self.proc = subprocess.Popen([sys.executable, SERVER, "--port", str(self.port), "--data-dir", str(folder)],
                                     cwd=folder, env=clean_env(**env), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append(None)  # end of output
            self._changed.notify_all()

    def wait_for_line(self, text, count=1, timeout=30):
        with self._changed:
            found = self._changed.wait_for(
                lambda: sum(1 for line in self.lines if line and text in line) >= count or None in self.lines,
                timeout)
            assert found and sum(1 for line in self.lines if line and text in line) >= count, \
                f"no {text!r} in:\n{self.output}"

    @property
    def output(self):
        return "".join(line for line in self.lines if line)

    def wait_ready(self):
        self.wait_for_line("listening on", count=1)

    def children(self):
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


@pytest.fixture
def services():
    started = []

    def start(folder, **kwargs):
        service = Service(folder, **kwargs)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    result = run_cli(tmp_path, "--data-dir", str(folder), "create-admin", "--company", "公司", "--login", "admin",
                     "--password", "admin123")
    assert result.returncode == 0, result.stderr
    return folder


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie has ended: only its parent has not read its status
        return f.read().split()[2] == "Z"


def wait_until(predicate, timeout=30):
    """Wait for an event that has no notification (a process ending): poll it."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Api:
    def __init__(self, port):
        self.port = port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/zhugeleida/admin/login", urllib.parse.urlencode(
            {"username": "admin", "password": "admin123"}), {"Content-Type": "application/x-www-form-urlencoded"})
        data = json.loads(conn.getresponse().read())["data"]
        conn.close()
        self.user_id, self.token = data["user_id"], data["token"]
        self._stamp = int(time.time() * 1000)

    def params(self, timestamp=None, **extra):
        self._stamp += 1
        timestamp = str(timestamp or self._stamp)
        rand_str = hashlib.md5(f"{timestamp}{self.token}".encode()).hexdigest()
        return urllib.parse.urlencode({"rand_str": rand_str, "timestamp": timestamp, "user_id": self.user_id,
                                       **extra})

    def call(self, method, path, form=None, conn=None):
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        body = urllib.parse.urlencode(form) if form is not None else None
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        conn.request(method, f"/zhugeleida/admin/{path}?{self.params()}", body, headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())


PRODUCT = {"product_type": 2, "name": "门票", "price": "228", "reason": "好", "cover_picture_id": "[]"}


def product_count(folder):
    with sqlite3.connect(folder / "zhugeleida.db") as db:
        return db.execute("SELECT COUNT(*) FROM product").fetchone()[0]


# ---- stopping --------------------------------------------------------------------------------------------

# The DEBUG line of the signature check's query (services.auth): a call has read its caller, and what it
# does next (its write transaction) waits for the lock the test holds.
SIGNATURE_CHECKED = '"tongxunlu_secret" FROM "user" AS "t1" INNER JOIN "company"'


def calls_held_on_the_lock(data_dir, service, count):
    """`count` product adds sent while another connection holds SQLite's write lock, once every one is in the
    service (its signature checked, its write transaction waiting): (the holder, the callers, their answers)."""
    api = Api(service.port)
    holder = sqlite3.connect(data_dir / "zhugeleida.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    answers = []
    callers = [threading.Thread(target=lambda: answers.append(api.call("POST", "product/add/0", PRODUCT)))
               for _ in range(count)]
    for caller in callers:
        caller.start()
    service.wait_for_line(SIGNATURE_CHECKED, count=count)
    return holder, callers, answers


def test_stop_past_the_grace_is_bounded_answers_503_and_writes_nothing(data_dir, services):
    service = services(data_dir, ZGLD_SERVER_SHUTDOWN_GRACE_SECONDS="1", ZGLD_DATABASE_BUSY_TIMEOUT_MS="60000",
                       ZGLD_LOGGING_LEVEL="DEBUG")
    service.wait_ready()
    holder, callers, answers = calls_held_on_the_lock(data_dir, service, 3)  # held for the whole stop
    started = time.monotonic()
    service.proc.send_signal(signal.SIGTERM)
    for caller in callers:
        caller.join(30)
    assert service.proc.wait(30) == 0
    assert time.monotonic() - started < 1 + 3 * 2 + 1  # grace + the cut-off bounds (server.CUT_OFF_SECONDS) + slack
    holder.execute("ROLLBACK")
    holder.close()
    assert [(status, body["code"], body["msg"]) for status, body in answers] == \
        [(503, 503, "服务正在停止，请稍后重试")] * 3
    assert product_count(data_dir) == 0
    assert "cannot schedule new futures" not in service.output and "Traceback" not in service.output
    assert "cutting them off" in service.output


def test_sigterm_lets_every_request_in_flight_finish(data_dir, services):
    service = services(data_dir, ZGLD_SERVER_WORKER_THREADS="6", ZGLD_DATABASE_BUSY_TIMEOUT_MS="60000",
                       ZGLD_LOGGING_LEVEL="DEBUG")
    service.wait_ready()
    holder, callers, answers = calls_held_on_the_lock(data_dir, service, 6)  # in flight until the stop begins
    service.proc.send_signal(signal.SIGTERM)
    service.wait_for_line("stopping: no new connections")
    holder.execute("ROLLBACK")
    holder.close()
    for caller in callers:
        caller.join(30)
    assert [(status, body["code"]) for status, body in answers] == [(200, 200)] * 6
    assert service.proc.wait(30) == 0 and product_count(data_dir) == 6
    assert "stopped" in service.output


def test_chunk_cut_off_at_the_grace_leaves_no_part_and_answers_503(data_dir, services):
    service = services(data_dir, ZGLD_SERVER_SHUTDOWN_GRACE_SECONDS="1")
    service.wait_ready()
    api = Api(service.port)
    upload_id = int(time.time() * 1000)
    conn = socket.create_connection(("127.0.0.1", service.port))
    query = api.params(upload_id, img_name="a.jpg", chunk=0)
    conn.sendall(f"POST /zhugeleida/admin/product/add_picture/0?{query} HTTP/1.1\r\nHost: x\r\n"
                 f"Content-Type: application/octet-stream\r\nContent-Length: {2 * 1024 * 1024}\r\n\r\n".encode()
                 + b"\xff" * (1024 * 1024 + 1))  # half the chunk, then the client stalls
    staging = data_dir / "uploads"
    wait_until(lambda: any(staging.rglob("*.part")))
    service.proc.send_signal(signal.SIGTERM)
    answer = b""
    while chunk := conn.recv(65536):
        answer += chunk
    conn.close()
    assert service.proc.wait(30) == 0
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503") and json.loads(body)["code"] == 503
    assert list(staging.rglob("*.part")) == []
    assert "cannot schedule new futures" not in service.output and "Traceback" not in service.output


def test_drain_closes_idle_keep_alive_connections_and_finishes_busy_ones(data_dir, services):
    service = services(data_dir, ZGLD_SERVER_SHUTDOWN_GRACE_SECONDS="20", ZGLD_DATABASE_BUSY_TIMEOUT_MS="60000",
                       ZGLD_LOGGING_LEVEL="DEBUG")
    service.wait_ready()
    api = Api(service.port)
    idle = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    assert api.call("GET", ["product/product_list", "product_type=2"][0], conn=idle)[0] == 200
    holder = sqlite3.connect(data_dir / "zhugeleida.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # keeps one call in flight, so the drain lasts
    busy = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
    answers = []
    caller = threading.Thread(target=lambda: answers.append(api.call("POST", "product/add/0", PRODUCT, busy)))
    caller.start()
    service.wait_for_line(SIGNATURE_CHECKED, count=2)  # the GET's, then the POST's, which then waits
    service.proc.send_signal(signal.SIGTERM)
    service.wait_for_line("stopping: no new connections")
    assert idle.sock.recv(1) == b""  # closed by the server while it drains, not at exit
    assert service.proc.poll() is None
    holder.execute("ROLLBACK")  # the call in flight goes on and finishes
    holder.close()
    caller.join(30)
    assert answers[0][1]["code"] == 200
    assert busy.sock is None  # the answer said `Connection: close`: the client does not send on it again
    assert service.proc.wait(30) == 0
    assert product_count(data_dir) == 1


# ---- worker processes -------------------------------------------------------------------------------------

def test_killed_worker_is_logged_and_replaced_and_a_clean_stop_exits_0(data_dir, services):
    service = services(data_dir, ZGLD_SERVER_PROCESSES="2")
    service.wait_for_line("listening on", count=2)
    first = service.children()
    assert len(first) == 2
    os.kill(first[0], signal.SIGKILL)
    service.wait_for_line(f"worker process {first[0]} ended (killed by SIGKILL); started worker process")
    service.wait_for_line("listening on", count=3)
    assert len(service.children()) == 2 and first[0] not in service.children()
    assert Api(service.port).call("GET", "home_page")[0] == 200
    service.proc.send_signal(signal.SIGTERM)
    assert service.proc.wait(30) == 0


def test_workers_dying_over_and_over_stop_the_service(data_dir, services):
    service = services(data_dir, ZGLD_SERVER_PROCESSES="2")
    service.wait_for_line("listening on", count=2)
    for restart in range(6):
        victim = service.children()[0]
        os.kill(victim, signal.SIGKILL)
        if restart < 5:
            service.wait_for_line("started worker process", count=restart + 1)
            service.wait_for_line("listening on", count=3 + restart)
    assert service.proc.wait(30) == 1
    assert "restarts within 60 s: stopping the service" in service.output


def test_workers_exit_when_the_parent_is_killed(data_dir, services):
    service = services(data_dir, ZGLD_SERVER_PROCESSES="2")
    service.wait_for_line("listening on", count=2)
    workers = service.children()
    service.proc.kill()
    service.proc.wait(30)
    for pid in workers:
        wait_until(lambda pid=pid: gone(pid))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", service.port), timeout=1).close()


def test_second_instance_on_the_same_data_folder_or_port_is_refused(data_dir, services, tmp_path):
    first = services(data_dir, ZGLD_SERVER_PROCESSES="2")
    first.wait_for_line("listening on", count=2)
    same_folder = services(data_dir)
    assert same_folder.proc.wait(30) != 0
    assert "another instance of the service is running on this data folder" in same_folder.output
    other = tmp_path / "other"
    other.mkdir()
    same_port = services(other, port=first.port, ZGLD_SERVER_PROCESSES="2")
    assert same_port.proc.wait(30) != 0
    assert f"port {first.port}" in same_port.output and "in use" in same_port.output
    assert Api(first.port).call("GET", "home_page")[0] == 200  # the first one is untouched


def test_start_up_removes_crash_leftovers(data_dir, services):
    upload = data_dir / "uploads" / "1" / "1530156149132"
    upload.mkdir(parents=True)
    (upload / "0.chunk").write_bytes(b"whole")
    (upload / f"1.{HOST_TAG}.abc123.part").write_bytes(b"cut off by a crash")
    pictures = data_dir / "statics" / "zhugeleida" / "imgs" / "qiyeweixin" / "product"
    pictures.mkdir(parents=True)
    (pictures / f".20260101000000000000aaaaaa.jpg.{HOST_TAG}.x1.tmp").write_bytes(b"half a picture")
    (pictures / f".20260101000000000000aaaaaa_thumb.jpg.{HOST_TAG}.x2.tmp").write_bytes(b"half a thumbnail")
    service = services(data_dir)
    service.wait_for_line("removed 3 temporary file(s) left by a crash")
    assert [p.name for p in upload.iterdir()] == ["0.chunk"]
    assert list(pictures.iterdir()) == []
