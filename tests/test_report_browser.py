"""The HTML report in a real headless Chromium (Debian's `chromium`), driven over DevTools.

Checks what an investigator's browser does with the file: no network request
at all, no console error or script exception, the charts' SVG elements with
the right number of bars and cells, the totals in the text. A screenshot and
an A4 PDF print go to test-artifacts/ (git-ignored). The harness is itself
tested on pages that do fetch and do throw, so a pass means something.

If chromium is not installed this FAILS (CI installs it): `apt-get install -y chromium`.
"""

from __future__ import annotations

import base64
import http.client
import json
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Message, Ping, Request, TextMessage

from tests.support.audit_scenario import write_key, write_logs, write_policy

ROOT = pathlib.Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--hide-scrollbars",
    "--window-size=1000,1400",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class DevTools:
    """A minimal Chrome DevTools Protocol client over one page's websocket (wsproto)."""

    def __init__(self, ws_url: str) -> None:
        u = urlsplit(ws_url)
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 80), timeout=30)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host=u.netloc, target=u.path)))
        self.events: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []
        self._text: list[str] = []
        self._id = 0
        self._open = False
        while not self._open:
            self._pump()

    def _pump(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("DevTools connection closed")
        self.ws.receive_data(data)
        for ev in self.ws.events():
            if isinstance(ev, AcceptConnection):
                self._open = True
            elif isinstance(ev, Ping):
                self.sock.sendall(self.ws.send(ev.response()))
            elif isinstance(ev, TextMessage):
                self._text.append(ev.data)
                if ev.message_finished:
                    self._pending.append(json.loads("".join(self._text)))
                    self._text = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        msg_id = self._id
        payload = json.dumps({"id": msg_id, "method": method, "params": params})
        self.sock.sendall(self.ws.send(Message(data=payload)))
        while True:
            while self._pending:
                msg = self._pending.pop(0)
                if msg.get("id") == msg_id:
                    if "error" in msg:
                        raise RuntimeError(f"{method}: {msg['error']}")
                    result: dict[str, Any] = msg.get("result", {})
                    return result
                if "method" in msg:
                    self.events.append(msg)
            self._pump()

    def wait_for(self, method: str, timeout: float = 20) -> None:
        end = time.monotonic() + timeout
        while not any(e["method"] == method for e in self.events):
            if time.monotonic() > end:
                raise TimeoutError(method)
            self.call("Runtime.evaluate", expression="1")  # pumps pending events

    def evaluate(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return r["result"].get("value")

    def close(self) -> None:
        self.sock.close()


class Browser:
    def __init__(self, exe: str, profile: pathlib.Path) -> None:
        self.profile = profile
        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if self.proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        self.port = int(port_file.read_text().split()[0])

    def open(self, url: str) -> DevTools:
        """A fresh tab with network, console and exception reporting on, then the page loaded."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("PUT", "/json/new?about:blank")
        target = json.loads(conn.getresponse().read())
        conn.close()
        tab = DevTools(target["webSocketDebuggerUrl"])
        for domain in ("Network", "Runtime", "Log", "Page"):
            tab.call(f"{domain}.enable")
        tab.call("Page.navigate", url=url)
        tab.wait_for("Page.loadEventFired")
        return tab

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def problems(tab: DevTools, page_url: str) -> list[str]:
    """Every network request other than the page itself, every console error, every exception."""
    found = []
    for e in tab.events:
        m, p = e["method"], e.get("params", {})
        if m == "Network.requestWillBeSent" and p["request"]["url"] != page_url:
            found.append(f"request: {p['request']['url']}")
        elif m == "Runtime.exceptionThrown":
            found.append(f"exception: {p['exceptionDetails'].get('text')}")
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            found.append(f"console.{p['type']}")
        elif m == "Log.entryAdded" and p["entry"]["level"] == "error":
            found.append(f"log: {p['entry']['text']}")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: run `apt-get install -y chromium` (Debian)")
    with tempfile.TemporaryDirectory(prefix="sg-chromium-") as profile:
        b = Browser(exe, pathlib.Path(profile))
        yield b
        b.close()


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """alice's report over the known scenario, 27-31 March (London), logs verified."""
    d = tmp_path_factory.mktemp("report")
    logs = write_logs(d / "logs")
    policy = write_policy(d)
    key = write_key(d)
    out = d / "alice.html"
    result = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "-c",
            "from proxy_addons.cli.main import main; main()",
            "audit",
            "report",
            "--user",
            "alice",
            "--policy",
            policy.name,
            "--key",
            key.name,
            "--since",
            "2026-03-27",
            "--until",
            "2026-03-31",
            "--html",
            out.name,
            *(str(p.relative_to(d)) for p in logs),
        ],
        capture_output=True,
        text=True,
        cwd=d,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def tab(browser: Browser, report_html: pathlib.Path) -> Iterator[DevTools]:
    t = browser.open(report_html.as_uri())
    yield t
    t.close()


# --- the report -------------------------------------------------------------------------


def test_report_makes_no_request_and_logs_no_error(
    tab: DevTools, report_html: pathlib.Path
) -> None:
    """Opened in Chromium, the report fetches nothing and logs no error."""
    assert tab.evaluate("document.readyState") == "complete"
    assert problems(tab, report_html.as_uri()) == []


CHART_COUNTS = [
    ("one allowed bar per day (27-31 March)", "svg.daily rect.bar.allowed", 5),
    ("one blocked bar per day", "svg.daily rect.bar.blocked", 5),
    ("7 weekdays x 24 hours", "svg.heatmap rect.cell", 168),
    ("top sites: allowed segments", "svg.sites rect.bar.allowed", 2),
    ("top sites: blocked segments", "svg.sites rect.bar.blocked", 2),
    ("outside-the-terms rows", "svg.misuse rect.bar", 7),
    ("events table rows: 7 accesses and the grant", "#events tbody tr", 8),
]


@pytest.mark.parametrize(
    ("selector", "count"), [c[1:] for c in CHART_COUNTS], ids=[c[0] for c in CHART_COUNTS]
)
def test_charts_have_the_right_number_of_elements(tab: DevTools, selector: str, count: int) -> None:
    """The browser's DOM has one SVG element per day, cell, site and row."""
    assert tab.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length") == count


def test_chart_values_and_totals_are_what_the_logs_hold(tab: DevTools) -> None:
    """Bars carry their counts; the text states the totals and the verified integrity."""
    daily = tab.evaluate(
        "[...document.querySelectorAll('svg.daily rect.bar')]"
        ".map(r => r.classList[1] + ' ' + r.dataset.day + ' ' + r.dataset.count)"
    )
    assert daily == [
        "allowed 2026-03-27 1",
        "blocked 2026-03-27 0",
        "allowed 2026-03-28 0",
        "blocked 2026-03-28 1",
        "allowed 2026-03-29 0",
        "blocked 2026-03-29 2",
        "allowed 2026-03-30 2",
        "blocked 2026-03-30 1",
        "allowed 2026-03-31 0",
        "blocked 2026-03-31 0",
    ]
    heat_total = tab.evaluate(
        "[...document.querySelectorAll('svg.heatmap rect.cell')]"
        ".reduce((s, r) => s + Number(r.dataset.count), 0)"
    )
    assert heat_total == 7
    text = tab.evaluate("document.body.innerText")
    assert tab.evaluate("document.getElementById('total-accesses').textContent") == "7"
    assert tab.evaluate("document.getElementById('total-allowed').textContent") == "3"
    assert tab.evaluate("document.getElementById('total-blocked').textContent") == "4"
    assert "intact: 22 records verified" in text
    assert "Press office posts official statements" in text


def test_screenshot_and_a4_print_are_saved_as_artifacts(tab: DevTools) -> None:
    """A full-page PNG and an A4 PDF land in test-artifacts/ for a human to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    height = tab.evaluate("document.documentElement.scrollHeight")
    tab.call(
        "Emulation.setDeviceMetricsOverride",
        width=1000,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    shot = tab.call("Page.captureScreenshot", format="png")
    png = base64.b64decode(shot["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (ARTIFACTS / "report.png").write_bytes(png)
    pdf = tab.call("Page.printToPDF", paperWidth=8.27, paperHeight=11.69, printBackground=True)
    data = base64.b64decode(pdf["data"])
    assert data[:5] == b"%PDF-"
    (ARTIFACTS / "report.pdf").write_bytes(data)


# --- the harness catches what it must --------------------------------------------------------

# (head, body) of pages that must be caught; {port} is a local port that refuses connections
BAD_PAGES = [
    ("an image from the network", "", '<img src="http://127.0.0.1:{port}/pixel.png">', "request:"),
    ("a script that throws", "", "<script>throw new Error('boom')</script>", "exception:"),
    ("a console error", "", "<script>console.error('bad')</script>", "console.error"),
    (
        "a fetch blocked by the report's CSP",
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'">',
        '<img src="http://127.0.0.1:{port}/pixel.png">',
        "log:",
    ),
]


@pytest.mark.parametrize(
    ("head", "body", "kind"), [c[1:] for c in BAD_PAGES], ids=[c[0] for c in BAD_PAGES]
)
def test_harness_detects_requests_and_errors(
    browser: Browser, tmp_path: pathlib.Path, head: str, body: str, kind: str
) -> None:
    """A page that fetches or fails is caught, so a clean report really is clean."""
    with socket.socket() as bound:  # bound, never listening: refused, and not reusable meanwhile
        bound.bind(("127.0.0.1", 0))
        port = str(bound.getsockname()[1])
        page = tmp_path / "bad.html"
        page.write_text(
            f"<!DOCTYPE html><html><head>{head}</head><body>{body.replace('{port}', port)}"
            "</body></html>"
        )
        t = browser.open(page.as_uri())
        try:
            time.sleep(0.3)  # let late console and network events arrive
            t.evaluate("1")
            found = problems(t, page.as_uri())
        finally:
            t.close()
    assert any(p.startswith(kind) for p in found), found
