"""End-to-end fixtures: the real service as a subprocess on the test's config (SQLite in the temp folder, or
the PostgreSQL database ZGLD_DATABASE_URL names, emptied first), loaded with the demo company, and Debian's
chromium driven by Playwright. Nothing is downloaded: `make setup` installs chromium.
Screenshots go to test-output/e2e/ (git ignores it)."""
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from services import demo

ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOTS = ROOT / "test-output" / "e2e"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PORTS = range(8500, 8600)
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def free_ports():
    """Ports of the range set aside for these tests that nothing listens on now, in random order (so two
    runs side by side seldom reach for the same one)."""
    for port in random.sample(PORTS, len(PORTS)):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        yield port


def start_server(config_path, port, log_path):
    """Starts the service; answers the process once it listens and serves the console, or None if the port
    was taken meanwhile. Its log line says it bound the port, so a stranger on that port is never mistaken
    for it."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "server.py", "--config", str(config_path), "--port", str(port)],
                                   cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if process.poll() is not None:
            if "Address already in use" in text:
                return None
            pytest.fail(f"the server exited with {process.returncode}:\n{text}")
        if "listening on" in text:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                assert response.status == 200
            return process
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"the server did not start within 20s:\n{log_path.read_text(errors='replace')}")


def stop_server(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def server(settings, database, tmp_path):
    """The service on a free port, with the demo company (users, products, 90 days of activity) loaded;
    yields its base URL."""
    demo.load(settings)
    log_path = tmp_path / "server.log"
    for port in free_ports():
        process = start_server(tmp_path / "config.yaml", port, log_path)
        if process is not None:
            break
    else:
        pytest.fail(f"no free port in {PORTS.start}-{PORTS.stop - 1} for the e2e server")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)
    log_text = log_path.read_text(errors="replace")
    assert "Traceback" not in log_text, f"the server logged an error:\n{log_text}"


@pytest.fixture(scope="module")
def browser():
    """One chromium per test module (Playwright starts it on a fresh temporary profile); each test gets its
    own context, which shares no cookies, storage or cache with any other. Module scope, not session: the
    sync driver holds an event loop while it runs, which pytest-tornado's tests elsewhere must not meet."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` as root (it installs Debian's chromium package)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


# E2E_HASHCHANGE_DELAY_MS=400 runs every page with the console's hashchange handlers delayed by that
# long: the console draws a screen in that handler, after a click on a link has returned, so this mode makes
# any test that reads the screen before it is drawn fail every time instead of once in a while (.ci/run
# runs the suite once this way).
HASHCHANGE_DELAY_MS = int(os.environ.get("E2E_HASHCHANGE_DELAY_MS") or 0)
DELAY_HASHCHANGE = """
(() => {
  const delay = %d;
  const addEventListener = EventTarget.prototype.addEventListener;
  EventTarget.prototype.addEventListener = function (type, listener, options) {
    if (type !== "hashchange" || this !== window) return addEventListener.call(this, type, listener, options);
    const late = (event) => setTimeout(() => listener.call(window, event), delay);
    return addEventListener.call(this, type, late, options);
  };
})();
"""


@pytest.fixture
def open_page(browser):
    """open_page(viewport) -> a page in a new browser context; errors in the page fail the test."""
    contexts, errors = [], []

    def open_(viewport=DESKTOP):
        context = browser.new_context(viewport=viewport, locale="zh-CN")
        context.set_default_timeout(5000)
        if HASHCHANGE_DELAY_MS:
            context.add_init_script(DELAY_HASHCHANGE % HASHCHANGE_DELAY_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture
def screenshot(request):
    """screenshot(page, name): saves test-output/e2e/<test>-<name>.png of the whole page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name):
        page.screenshot(path=SCREENSHOTS / f"{request.node.name}-{name}.png", full_page=True)
    return take
