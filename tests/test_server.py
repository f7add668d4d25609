"""The service as a newcomer runs it: `python server.py` on embedded defaults, its sub-commands, and a
graceful stop on SIGTERM."""
import contextlib
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

SERVER = str(Path(__file__).resolve().parent.parent / "server.py")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra):
    """The environment without ZGLD_ overrides, so the embedded defaults are what is tested."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZGLD_")}
    env["ZGLD_AUTH_SCRYPT_N"] = "1024"
    env.update(extra)
    return env


def run_cli(cwd, *args, env=None):
    return subprocess.run([sys.executable, SERVER, *args], cwd=cwd, env=env or clean_env(), capture_output=True,
                          text=True, timeout=60)


def login(port, name, password):
    data = urllib.parse.urlencode({"username": name, "password": password}).encode()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/zhugeleida/admin/login", data, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture
def start_server(tmp_path):
    procs = []

    def start(*args, env=None):
        port = free_port()
        proc = subprocess.Popen([sys.executable, SERVER, "--port", str(port), *args], cwd=tmp_path,
                                env=env or clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return proc, port
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.05)
        raise AssertionError("server did not start")

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_defaults_create_the_database_under_data_and_demo_logins_work(tmp_path, start_server):
    demo = run_cli(tmp_path, "demo")
    assert demo.returncode == 0, demo.stderr
    assert "admin" in demo.stdout and "admin123" in demo.stdout
    assert (tmp_path / "data" / "zhugeleida.db").exists()
    _, port = start_server()
    body = login(port, "admin", "admin123")
    assert body["code"] == 200 and body["data"]["role_id"] == 1


def demo_contents(folder):
    """Rows per table of the demo's database, and its picture files."""
    with contextlib.closing(sqlite3.connect(folder / "data" / "zhugeleida.db")) as database:
        tables = [name for (name,) in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        rows = {table: database.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0] for table in tables}
    return rows, sorted(p.name for p in (folder / "statics").rglob("*") if p.is_file())


def test_demo_twice_does_not_duplicate(tmp_path):
    assert run_cli(tmp_path, "demo").returncode == 0
    first = demo_contents(tmp_path)
    assert first[0]["user"] >= 3 and first[0]["product"] >= 12 and first[1]
    again = run_cli(tmp_path, "demo")
    assert again.returncode == 0, again.stderr
    rows, files = demo_contents(tmp_path)
    assert (rows.pop("audit_entry"), first[0].pop("audit_entry")) == (2, 1)  # each run is recorded
    assert (rows, files) == first


def test_create_admin_in_the_documented_form(tmp_path, start_server):
    made = run_cli(tmp_path, "create-admin", "--company", "新公司", "--login", "root", "--password", "s3cret-pass")
    assert made.returncode == 0, made.stderr
    _, port = start_server()
    body = login(port, "root", "s3cret-pass")
    assert body["code"] == 200 and body["data"]["company_name"] == "新公司" and body["data"]["role_id"] == 1
    again = run_cli(tmp_path, "create-admin", "--company", "新公司", "--login", "root", "--password", "x")
    assert again.returncode != 0 and "root" in again.stderr


def test_bad_setting_stops_with_its_name(tmp_path):
    result = run_cli(tmp_path, env=clean_env(ZGLD_SERVER_PORT="http"))
    assert result.returncode != 0 and "ZGLD_SERVER_PORT" in result.stderr


def test_config_flag_picks_another_file(tmp_path, start_server):
    (tmp_path / "other.yaml").write_text("database:\n  url: sqlite:///elsewhere/db.sqlite\n")
    assert run_cli(tmp_path, "demo", "--config", "other.yaml").returncode == 0
    assert (tmp_path / "elsewhere" / "db.sqlite").exists()
    assert not (tmp_path / "data" / "zhugeleida.db").exists()


def test_two_processes_share_replay_protection_and_stop_together(tmp_path, start_server):
    env = clean_env(ZGLD_SERVER_PROCESSES="2")
    assert run_cli(tmp_path, "demo", env=env).returncode == 0
    proc, port = start_server(env=env)
    token_data = login(port, "admin", "admin123")["data"]
    timestamp = str(int(time.time() * 1000))
    rand_str = hashlib.md5(f"{timestamp}{token_data['token']}".encode()).hexdigest()
    query = urllib.parse.urlencode({"rand_str": rand_str, "timestamp": timestamp, "user_id": token_data["user_id"]})
    url = f"http://127.0.0.1:{port}/zhugeleida/admin/home_page/line_info?{query}"

    def answers(form):  # fresh connections: the kernel spreads them over both processes
        data = urllib.parse.urlencode(form).encode()
        for _ in range(6):
            with urllib.request.urlopen(url, data, timeout=10) as r:
                yield json.loads(r.read())

    first, *retries = answers({"days": 7, "index_type": 1})
    assert first["code"] == 200 and retries == [first] * 5  # a retry of the same call: the first answer
    assert [a["code"] for a in answers({"days": 8, "index_type": 1})] == [400] * 6  # another call: refused
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
