"""Smoke test of the one-file build, run by .ci/dist-smoke: the file is copied to an empty folder and run
there with a clean environment (no virtualenv, no project folder on any path), the way an administrator
runs it on a server. This script is only the client (it may use the project's virtualenv).

    python tools/dist_smoke.py dist/zhugeleida

Steps: --version, create-admin, start, /healthz, log in, upload a picture in two chunks, add a product
with it as cover, list products, fetch the picture, `backup` while serving, stop with SIGTERM (exit 0),
`restore` into a fresh folder, start there, and find the product and the same picture bytes. Prints the
file's size and its start-up time (exec to the first /healthz 200).
"""
import base64
import hashlib
import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from PIL import Image

PROJECT = Path(__file__).resolve().parent.parent
PORTS = range(8600, 8700)
ADMIN = ("smoke-admin", "smoke-secret-1")
PRODUCT_NAME = "冒烟测试门票"
START_TIMEOUT = 60


class SmokeFailure(Exception):
    pass


def check(condition, what, detail=""):
    if not condition:
        raise SmokeFailure(f"{what}: {detail}" if detail else what)
    print(f"  ok  {what}")


def free_port():
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SmokeFailure("no free port in 8600-8699")


class Site:
    """One folder on the 'server' holding a copy of the file, run with nothing but PATH and HOME."""

    def __init__(self, folder, binary, data_dir=None):
        self.folder = folder
        self.folder.mkdir(parents=True)
        self.exe = self.folder / "zhugeleida"
        shutil.copy2(binary, self.exe)
        self.flags = ["--data-dir", data_dir] if data_dir else []
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(folder)}
        self.proc = None
        self.log = self.folder / "service.log"

    def run(self, *args):
        done = subprocess.run([str(self.exe), *args, *self.flags], cwd=self.folder, env=self.env,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise SmokeFailure(f"`zhugeleida {' '.join(args)}` exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def start(self):
        """Start serving; return seconds from exec to the first /healthz 200."""
        self.port = free_port()
        started = time.monotonic()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([str(self.exe), "--port", str(self.port), *self.flags], cwd=self.folder,
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)
        while time.monotonic() - started < START_TIMEOUT:
            if self.proc.poll() is not None:
                raise SmokeFailure(f"the service exited with {self.proc.returncode} at start")
            try:
                status, body = self.call("GET", "/healthz")
                if status == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.02)
        raise SmokeFailure(f"/healthz did not answer 200 within {START_TIMEOUT}s")

    def stop(self):
        """SIGTERM and wait: a graceful stop exits 0."""
        proc = self.proc
        assert proc is not None, "stop() before start()"
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()

    # ---- HTTP ----

    def call(self, method, path, params=None, data=None, headers=None):
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        if isinstance(data, dict):
            data = urllib.parse.urlencode(data).encode()
        if method == "POST" and data is None:
            data = b""
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def api(self, method, path, session=None, timestamp=None, params=None, data=None, headers=None):
        params = dict(params or {})
        if session is not None:
            timestamp = timestamp or str(int(time.time() * 1000))
            params.update(timestamp=timestamp, user_id=session["user_id"],
                          rand_str=hashlib.md5(f"{timestamp}{session['token']}".encode()).hexdigest())
            time.sleep(0.002)  # the next signed call gets another timestamp
        status, body = self.call(method, f"/zhugeleida/admin/{path}", params, data, headers)
        answer = json.loads(body)
        if status != 200 or answer.get("code") != 200:
            raise SmokeFailure(f"{method} {path} answered HTTP {status}: {answer}")
        return answer["data"]


def login(site):
    return site.api("POST", "login", data={"username": ADMIN[0], "password": ADMIN[1]})


def picture_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


def upload_picture(site, session):
    """Two chunks (form field img_data in base64, then a raw body), then upload_complete."""
    data = picture_bytes()
    half = len(data) // 2
    upload_id = str(int(time.time() * 1000))
    name = {"img_name": "smoke.jpg"}
    site.api("POST", "product/add_picture/0", session, upload_id, {**name, "chunk": 0},
             data={"img_data": base64.b64encode(data[:half]).decode()})
    site.api("POST", "product/add_picture/0", session, upload_id, {**name, "chunk": 1}, data=data[half:],
             headers={"Content-Type": "application/octet-stream"})
    done = site.api("POST", "product/upload_complete/0", session, upload_id,
                    {**name, "chunk_num": 2, "picture_type": 1})
    return done["ret_data"]


def find_product(site, session):
    listing = site.api("GET", "product/product_list", session, params={"product_type": 1})
    return next((p for p in listing["ret_data"] if p["name"] == PRODUCT_NAME), None)


def fetch(site, url):
    status, body = site.call("GET", f"/{url}")
    return body if status == 200 else None


def add_catalogue(site, session):
    """Upload a picture, add a product with it as cover; return the picture and its served bytes."""
    picture = upload_picture(site, session)
    check(picture["picture_url"].startswith("statics/"), "upload a picture in two chunks", str(picture))
    site.api("POST", "product/add/0", session, data={
        "product_type": 1, "name": PRODUCT_NAME, "price": "228", "reason": "冒烟测试",
        "cover_picture_id": json.dumps([picture["picture_id"]]), "article_data": json.dumps([])})
    check_catalogue(site, session, picture, "the product is listed with its cover picture")
    served = fetch(site, picture["picture_url"])
    check(served is not None and served[:2] == b"\xff\xd8", "the picture is served under /statics/")
    return picture, served


def check_catalogue(site, session, picture, what):
    product = find_product(site, session)
    check(product is not None and product["cover_picture"] == picture["picture_url"], what, str(product))


def check_legacy_driver(site):
    """import-legacy reaches the MySQL driver inside the file: a refused connection is reported as such."""
    done = subprocess.run([str(site.exe), "import-legacy", "--from", "mysql://root@127.0.0.1:1/old", *site.flags],
                          cwd=site.folder, env=site.env, capture_output=True, text=True, timeout=120)
    check(done.returncode != 0 and "cannot read the old database" in done.stderr,
          "import-legacy has its MySQL driver", done.stderr.strip()[-500:])


def first_run(site, archive):
    check(site.run("--version").split()[-1] == version(), "--version prints the version in version.py")
    check_legacy_driver(site)
    site.run("create-admin", "--company", "冒烟测试公司", "--login", ADMIN[0], "--password", ADMIN[1])
    check((site.folder / "data" / "zhugeleida.db").is_file(), "create-admin made data/zhugeleida.db")
    startup = site.start()
    status, body = site.call("GET", "/healthz")
    health = json.loads(body)["data"]
    check(status == 200 and health["version"] == version() and health["database"] is True
          and health["database_writable"] is True and health["storage"] is True, "/healthz answers 200", str(health))
    status, _ = site.call("GET", "/")
    check(status == 200, "the bundled console is served at /")
    session = login(site)
    check(bool(session.get("token")), "log in")
    picture, served = add_catalogue(site, session)
    printed = site.run("backup", str(archive))
    check(archive.is_file(), "backup while serving", printed.strip())
    check(site.stop() == 0, "SIGTERM stops the service with exit code 0")
    return startup, picture, served


def second_run(site, archive, picture, served):
    printed = site.run("restore", str(archive))
    check("restored" in printed, "restore into a fresh folder", printed.strip())
    startup = site.start()
    session = login(site)
    check(bool(session.get("token")), "log in with the restored account")
    check_catalogue(site, session, picture, "the product is still there with its cover")
    check(fetch(site, picture["picture_url"]) == served, "the picture is still there, byte for byte")
    check(site.stop() == 0, "SIGTERM stops the restored service with exit code 0")
    return startup


def version():
    namespace = {}
    exec((PROJECT / "version.py").read_text(), namespace)
    return namespace["VERSION"]


def main(binary):
    binary = Path(binary).resolve()
    top = Path(tempfile.mkdtemp(prefix="zgld-dist-smoke-"))
    sites = []
    try:
        print(f"dist smoke: {binary} ({binary.stat().st_size} bytes) in {top}")
        first = Site(top / "server-a", binary)
        sites.append(first)
        startup, picture, served = first_run(first, top / "backup.tar.gz")
        second = Site(top / "server-b", binary, data_dir="site-data")
        sites.append(second)
        restarted = second_run(second, top / "backup.tar.gz", picture, served)
    except SmokeFailure as e:
        print(f"dist smoke FAILED: {e}")
        for site in sites:
            if site.proc is not None and site.proc.poll() is None:
                site.proc.kill()
            if site.log.exists():
                print(f"---- {site.log}\n{site.log.read_text(errors='replace')[-4000:]}")
        return 1
    shutil.rmtree(top, ignore_errors=True)
    print(f"dist smoke passed: file {binary.stat().st_size / 1e6:.1f} MB, start-up to /healthz 200: "
          f"{startup:.2f} s (first start), {restarted:.2f} s (after restore)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else PROJECT / "dist" / "zhugeleida"))
