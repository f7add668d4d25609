"""Fuzz every operation of GET /openapi.json with schemathesis against a running service (.ci/run's step).

    .venv/bin/python tools/fuzz_api.py [--max-examples 25] [--caller admin|user] [--database-url URL]

Starts the service on SQLite in a temporary data folder (or on the PostgreSQL database given, which it
fills), creates a company with an administrator, an ordinary user and a user whose token `logout` may
end, then runs `schemathesis run` with tools/fuzz_hooks.py signing each call. Checks: no HTTP 500, every
answer's status, content type and body as described (the {code, msg, data} envelope with the call's
documented codes). Schemathesis prints the summary (operations, test cases, failures) and, for each
failure, the request that reproduces it. Exits non-zero on any failure.
"""
import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ADMIN, ADMIN_PASSWORD = "fuzz-admin", "fuzz-secret-1"
START_TIMEOUT = 60
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(folder: Path, database_url: str | None) -> Path:
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({
        "database": {"url": database_url or f"sqlite:///{folder}/zhugeleida.db"},
        "storage": {"root": str(folder / "statics"), "staging": str(folder / "uploads")},
        "auth": {"scrypt_n": 1024},  # fast hashes: logins and user adds are fuzzed too
        "logging": {"level": "WARNING"},
    }))
    return path


def call(base: str, method: str, path: str, query: dict | None = None, form: dict | None = None) -> dict:
    url = f"{base}/zhugeleida/admin/{path}" + ("?" + urllib.parse.urlencode(query) if query else "")
    body = urllib.parse.urlencode(form).encode() if form is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method=method), timeout=30) as answer:
        envelope = json.loads(answer.read())
    if envelope["code"] != 200:
        raise SystemExit(f"set-up call {path} answered {envelope}")
    return envelope["data"]


def signed(login: dict) -> dict:
    timestamp = str(int(time.time() * 1000))
    time.sleep(0.002)  # the next set-up call gets another millisecond (a signed POST is accepted once)
    return {"rand_str": hashlib.md5((timestamp + login["token"]).encode()).hexdigest(), "timestamp": timestamp,
            "user_id": login["user_id"]}


def wait_until_up(base: str, service: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise SystemExit(f"the service exited with {service.returncode} at start")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the service did not answer /healthz within {START_TIMEOUT} s")


def make_accounts(base: str, caller: str) -> dict[str, str]:
    """Log in as the administrator, add an ordinary user and the one `logout` signs with; the tokens of
    the caller the run signs as (FUZZ_*) and of the one for logout (FUZZ_LOGOUT_*)."""
    admin = call(base, "POST", "login", form={"username": ADMIN, "password": ADMIN_PASSWORD})
    credentials = {}
    for login_name, key in (("fuzz-user", "FUZZ"), ("fuzz-logout", "FUZZ_LOGOUT")):
        call(base, "POST", "user/add/0", signed(admin), {"username": login_name, "login_name": login_name,
                                                          "password": ADMIN_PASSWORD, "role_id": 2})
        user = call(base, "POST", "login", form={"username": login_name, "password": ADMIN_PASSWORD})
        credentials[f"{key}_USER_ID"], credentials[f"{key}_TOKEN"] = str(user["user_id"]), user["token"]
    if caller == "admin":  # reaches every operation (an ordinary user hears 404 from the administrators' ones)
        credentials["FUZZ_USER_ID"], credentials["FUZZ_TOKEN"] = str(admin["user_id"]), admin["token"]
    return credentials


def fuzz(base: str, credentials: dict[str, str], max_examples: int, seed: int | None) -> int:
    command = [str(Path(PYTHON).parent / "schemathesis"), "run", f"{base}/openapi.json", "--checks", CHECKS,
               "--max-examples", str(max_examples), "--phases", "examples,coverage,fuzzing", "--no-shrink",
               "--workers", "2", "--request-timeout", "30", "--generation-database", "none",
               "--suppress-health-check", "all", "--no-color", "--continue-on-failure"]
    if seed is not None:
        command += ["--seed", str(seed)]
    env = {**os.environ, **credentials, "SCHEMATHESIS_HOOKS": "tools.fuzz_hooks",
           "PYTHONPATH": str(PROJECT)}
    return subprocess.run(command, cwd=PROJECT, env=env).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=25, help="test cases per operation and phase")
    parser.add_argument("--database-url", help="a PostgreSQL database to use (it is filled); default SQLite")
    parser.add_argument("--seed", type=int, help="schemathesis's seed, to replay a run")
    parser.add_argument("--caller", choices=("admin", "user"), default="admin",
                        help="sign as the administrator (default) or as an ordinary user")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zgld-fuzz-") as folder:
        config = write_config(Path(folder), args.database_url)
        port = free_port()
        subprocess.run([PYTHON, "server.py", "--config", str(config), "create-admin", "--company", "模糊测试公司",
                        "--login", ADMIN, "--password", ADMIN_PASSWORD], cwd=PROJECT, check=True,
                       stdout=subprocess.DEVNULL)
        log_path = Path(folder) / "service.log"
        with log_path.open("w") as log:
            service = subprocess.Popen([PYTHON, "server.py", "--config", str(config), "--port", str(port)],
                                       cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT)
            try:
                base = f"http://127.0.0.1:{port}"
                wait_until_up(base, service)
                code = fuzz(base, make_accounts(base, args.caller), args.max_examples, args.seed)
            finally:
                service.terminate()
                service.wait(timeout=30)
        if code != 0:  # the service's side of each failure: its errors and their tracebacks
            print("---- the service's log, from its first error ----")
            text = log_path.read_text(errors="replace")
            print(text[text.find(" ERROR "):][-20000:] if " ERROR " in text else "(no ERROR line)")
    print(f"fuzz_api: schemathesis exited {code} after {time.monotonic() - started:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
