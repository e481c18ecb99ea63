"""The report page in a real browser: headless Chromium loads it without errors or requests.

Chromium is driven over the DevTools protocol with a small WebSocket client written here (no
Selenium, no driver binary): the page is opened as ``file://`` and from a local http.server,
and the test collects console messages, uncaught exceptions, log entries (failed loads and
Content-Security-Policy violations land there) and every request the page makes.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from l2obench.record import Record
from l2obench.report import ReportFiles, build_report
from l2obench.store import ResultStore
from tests.test_report import record as synthetic_record
from tests.test_report import synthetic_records

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: A browser: the full lane only (`pytest -m "not slow"` skips it).
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not installed (Debian: apt-get install -y chromium)")]
#: The width a reader's laptop browser gives the page.
WIDTH = 1280
#: A phone's width (CSS pixels).
PHONE_WIDTH = 390
CHROMIUM_FLAGS = [f"--window-size={WIDTH},900", "--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-quic",
                  "--no-first-run",
                  "--disable-component-update", "--disable-sync"]
TIMEOUT_S = 30


class DevTools:
    """A minimal DevTools-protocol client over one WebSocket (RFC 6455, text frames only)."""

    def __init__(self, ws_url: str) -> None:
        host_port, path = ws_url.removeprefix("ws://").split("/", 1)
        host, port = host_port.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=TIMEOUT_S)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(4096)
        assert response.startswith(b"HTTP/1.1 101"), response.decode(errors="replace")
        self.buffer = response.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.sock.close()

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("DevTools connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _receive(self) -> dict[str, Any]:
        """The next message; fragmented messages are joined."""
        payload = b""
        while True:
            first, second = self._read(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._read(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._read(8))[0]
            payload += self._read(length)
            if first & 0x80:  # FIN
                return json.loads(payload)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its result, keeping the events that arrive meanwhile."""
        self.next_id += 1
        message = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        mask = os.urandom(4)
        header = bytes([0x81])  # FIN, text
        if len(message) < 126:
            header += bytes([0x80 | len(message)])
        else:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(message))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(message))
        self.sock.sendall(header + mask + masked)
        while True:
            reply = self._receive()
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str) -> None:
        """Read messages until ``event`` arrives."""
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._receive())


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    results = tmp_path_factory.mktemp("results")
    store = ResultStore(results)
    for row in synthetic_records():
        store.write(Record.from_json(row))
    # A method with a long label and every metric: its name must wrap for the statuses to stay
    # in view, and on a phone the size tables are wider than the page and scroll in their boxes.
    long_label = ("dys-implicit[alpha=0.05,bwd_max_iter=500,bwd_tol=0.02,gamma=0.0005,"
                  "linear_solver=gmres,lr=0.01,memory=5,solver=anderson]")
    for size in (5, 10):
        wide = synthetic_record("synth", long_label, size, 0)
        wide.update(bwd_iters_mean=123.4, device_peak_mem_mb=4567.8, fwd_iters_mean=1234.5)
        store.write(Record.from_json(wide))
    return build_report(results, tmp_path_factory.mktemp("report"), command="l2obench report")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A headless Chromium with remote debugging; yields its DevTools HTTP address."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    assert CHROMIUM is not None
    process = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT_S
        while not (port_file.is_file() and port_file.read_text().strip()):
            assert process.poll() is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        yield f"127.0.0.1:{port_file.read_text().split()[0]}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def served(report: ReportFiles) -> Iterator[str]:
    """The report folder on a local HTTP server; yields the page's URL."""
    handler = functools.partial(_QuietHandler, directory=str(report.out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean."""


def open_page(browser: str, url: str,
              width: int | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Load ``url`` in a fresh tab (``width``: as a phone of that width shows it); returns
    what the page shows and the events it caused."""
    request = urllib.request.Request(f"http://{browser}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        target = json.load(response)
    tools = DevTools(target["webSocketDebuggerUrl"])
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.call(f"{domain}.enable")
        if width is not None:
            tools.call("Emulation.setDeviceMetricsOverride", width=width, height=844,
                       deviceScaleFactor=3, mobile=True)
        tools.call("Page.navigate", url=url)
        tools.wait_for("Page.loadEventFired")
        state = tools.call("Runtime.evaluate", returnByValue=True, expression="""({
            nTables: document.querySelectorAll("table").length,
            rows: document.querySelectorAll("tbody tr").length,
            images: Array.from(document.images, i => ({src: i.src, complete: i.complete,
                                                       width: i.naturalWidth})),
            viewport: window.innerWidth,
            pageWidth: document.documentElement.scrollWidth,
            tables: Array.from(document.querySelectorAll("table"), t => ({
                right: t.getBoundingClientRect().right,
                boxRight: t.parentElement.getBoundingClientRect().right,
                scrolls: getComputedStyle(t.parentElement).overflowX === "auto"})),
            statuses: Array.from(document.querySelectorAll("th"))
                .filter(th => th.textContent === "statuses")
                .map(th => th.getBoundingClientRect().right),
        })""")["result"]["value"]
        time.sleep(0.5)  # let late messages (a failed favicon, a CSP report) arrive
        tools.call("Runtime.evaluate", expression="0")
        return state, tools.events
    finally:
        tools.close()


def problems(events: list[dict[str, Any]]) -> list[str]:
    """Console errors, uncaught exceptions, error log entries and failed loads."""
    found = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            found.append(f"console.{params['type']}: {params['args']}")
        elif method == "Runtime.exceptionThrown":
            found.append(f"exception: {params['exceptionDetails']}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            found.append(f"failed load: {params}")
    return found


@pytest.mark.parametrize("how", ["file", "http"])
def test_page_loads_cleanly_in_chromium(how: str, browser: str, report: ReportFiles,
                                        served: str) -> None:
    url = report.index.as_uri() if how == "file" else served
    state, events = open_page(browser, url)

    assert problems(events) == []
    assert state["viewport"] == WIDTH
    assert state["pageWidth"] <= state["viewport"], state  # the page never scrolls sideways
    for table in state["tables"]:  # each table fits, or scrolls inside a box that fits
        assert table["right"] <= state["viewport"] or (
            table["scrolls"] and table["boxRight"] <= state["viewport"]), table
    assert state["statuses"] and max(state["statuses"]) <= WIDTH  # in view without scrolling
    assert state["nTables"] >= 2 and state["rows"] >= 3
    assert len(state["images"]) >= 7  # two suites' figures
    for image in state["images"]:
        assert image["complete"] and image["width"] > 0, image

    origin = "file://" if how == "file" else served.rsplit("/", 1)[0] + "/"
    requests = [e["params"]["request"]["url"] for e in events
                if e.get("method") == "Network.requestWillBeSent"]
    assert requests, "the page's own load was not seen"
    outside = [u for u in requests if not (u.startswith(origin) or u.startswith("data:"))]
    assert outside == []


def test_page_fits_a_phone(browser: str, report: ReportFiles) -> None:
    state, events = open_page(browser, report.index.as_uri(), width=PHONE_WIDTH)
    assert problems(events) == []
    assert state["viewport"] == PHONE_WIDTH
    assert state["pageWidth"] <= state["viewport"], state  # no sideways scrolling on a phone
    for table in state["tables"]:
        assert table["right"] <= state["viewport"] or (
            table["scrolls"] and table["boxRight"] <= state["viewport"]), table
    assert any(t["right"] > state["viewport"] for t in state["tables"])  # the wide ones scroll
