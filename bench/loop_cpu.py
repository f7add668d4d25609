"""Event-loop CPU of hostile add_picture bodies, beside a base64 body of the same size.

    .venv/bin/python bench/loop_cpu.py [--port 8670] [--rounds 5]

Starts the service (SQLite, a temporary data folder) as a subprocess, sends each body `rounds` times as a
signed add_picture chunk, and prints the CPU seconds the service's main thread (the event loop) spent per
request, from /proc/PID/task/PID/stat (utime + stime, in clock ticks of 10 ms): the total over the
rounds divided by their number.
"""
import argparse
import base64
import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from upload import REPO, make_account, service_environment, wait_for_port  # noqa: E402

ADD = "/zhugeleida/admin/product/add_picture/0"
SIZE = 512 * 1024
BODIES = {
    "urlencoded, only '&'": (b"&" * SIZE, "application/x-www-form-urlencoded"),
    "urlencoded, 'a&' repeated": (b"a&" * (SIZE // 2), "application/x-www-form-urlencoded"),
    "multipart, empty parts": (b"--x\r\n\r\n\r\n" * (SIZE // 10), "multipart/form-data; boundary=x"),
    "urlencoded, img_data as %XX": (b"img_data=" + b"%41" * (SIZE // 3), "application/x-www-form-urlencoded"),
    "urlencoded base64 (reference)": (b"img_data=" + base64.b64encode(os.urandom(SIZE * 3 // 4)),
                                      "application/x-www-form-urlencoded"),
}


def loop_cpu(pid):
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send(port, account, body, content_type):
    timestamp = str(int(time.time() * 1000))
    params = {"user_id": account.user_id, "timestamp": timestamp, "img_name": "a.png", "chunk": 0,
              "rand_str": hashlib.md5(f"{timestamp}{account.token}".encode()).hexdigest()}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", ADD + "?" + urllib.parse.urlencode(params), body=body,
                       headers={"Content-Type": content_type})
    answer = connection.getresponse().read()
    connection.close()
    return answer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8670)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="zgld-bench-loop-"))
    environment = service_environment(folder, args.port)
    account = make_account(environment)
    service = subprocess.Popen([sys.executable, str(REPO / "server.py")], cwd=folder, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(args.port, service)
        for name, (body, content_type) in BODIES.items():
            before = loop_cpu(service.pid)
            for _ in range(args.rounds):
                send(args.port, account, body, content_type)
            cost = (loop_cpu(service.pid) - before) / args.rounds
            print(f"{name:32} {cost:.3f} s of loop CPU per 512 KB request")
    finally:
        service.terminate()
        service.wait(10)
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
