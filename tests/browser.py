"""A headless Chromium driven over the DevTools protocol, to look at the built book as a reader does.

No browser-automation package: Chromium's own `--remote-debugging-port` and `websocket-client`
(already a Jupyter dependency). Every request that leaves 127.0.0.1 is failed on purpose, so
that a page behaves the same on- and offline, and recorded; `Page.visit` returns what a reader
would meet: console errors, uncaught exceptions, failed loads, images and links.
"""

from __future__ import annotations

import base64
import functools
import http.server
import itertools
import json
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import websocket

from limits import limit

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no line per request in the test output
        pass


class StaticServer:
    """Serves a folder on 127.0.0.1 (a free port) from a thread, as a web host would."""

    def __init__(self, root: Path):
        handler = functools.partial(QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "StaticServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class PageReport:
    url: str
    title: str = ""
    final_url: str = ""  # where the page ended, after any redirect
    console_errors: list[str] = field(default_factory=list)  # console.error, uncaught exceptions, failed loads
    external: list[str] = field(default_factory=list)  # requests to other hosts, failed on purpose
    images: list[dict] = field(default_factory=list)  # src, complete, natural and rendered size, inArticle
    links: list[str] = field(default_factory=list)  # absolute hrefs of every <a>
    probe: object = None  # what the `probe` expression of `visit` returned


class Chromium:
    """One headless browser; `visit(url)` loads a page in a fresh tab and reports on it."""

    def __init__(self, executable: str, width: int = 1280, height: int = 900, timeout: float = limit(60.0)):
        self.width, self.height, self.timeout = width, height, timeout
        self.profile = tempfile.mkdtemp(prefix="reid-chromium-")
        self.proc = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{executable} exited with {self.proc.returncode}: "
                                   f"{self.proc.stderr.read().decode(errors='replace')[-2000:]}")
            if time.monotonic() > deadline:
                self.close()
                raise TimeoutError(f"{executable} did not open its DevTools port within {timeout} s")
            time.sleep(0.05)
        port, path = port_file.read_text().split()[:2]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=timeout,
                                              suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    # --- the protocol -------------------------------------------------------------------
    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send a command and return its result; events that arrive meanwhile are queued."""
        msg_id = next(self.ids)
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)
        raise TimeoutError(f"no reply to {method} within {self.timeout} s")

    def _event(self, msg: dict) -> None:
        if msg.get("method") == "Fetch.requestPaused":  # answer at once, or the page stalls
            self._route(msg)
        elif "method" in msg:
            self.events.append(msg)

    def _route(self, msg: dict) -> None:
        params, session = msg["params"], msg.get("sessionId")
        host = urlsplit(params["request"]["url"]).hostname
        reply = {"requestId": params["requestId"]}
        if host in ("127.0.0.1", "localhost") or params["request"]["url"].startswith(("data:", "blob:")):
            method = "Fetch.continueRequest"
        else:
            method = "Fetch.failRequest"
            reply["errorReason"] = "BlockedByClient"
            self.events.append({"method": "external", "url": params["request"]["url"], "sessionId": session})
        self.ws.send(json.dumps({"id": next(self.ids), "method": method, "params": reply, "sessionId": session}))

    def pump(self, seconds: float) -> None:
        """Handle events for `seconds` (late scripts, images, console messages)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.ws.settimeout(left)
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            self._event(msg)
        self.ws.settimeout(self.timeout)

    def wait_for(self, method: str, session: str) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
                return
            self.pump(0.1)
        raise TimeoutError(f"{method} did not come within {self.timeout} s")

    def evaluate(self, expression: str, session: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluating {expression[:60]!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def _until_loaded(self, session: str) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                if self.evaluate("document.readyState === 'complete' && document.body !== null", session):
                    return
            except RuntimeError:  # the context went away in a navigation: ask the new one
                pass
            self.pump(0.1)
        raise TimeoutError(f"the page did not finish loading within {self.timeout} s")

    # --- a page -------------------------------------------------------------------------
    def visit(self, url: str, screenshot: Path | None = None, settle: float = 0.15,
              scroll_to: str | None = None, probe: str | None = None) -> PageReport:
        """Load `url` in a new tab and report on it; save a screenshot of the viewport if asked, after
        scrolling the first element matching the CSS selector `scroll_to` (if any) to the middle.
        `probe`, a JavaScript expression (a promise is awaited), runs last, as a reader would act
        on the page; its value is `report.probe`."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.events.clear()
        try:
            for method in ("Page.enable", "Runtime.enable", "Log.enable"):
                self.send(method, session=session)
            self.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, session)
            self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                             "deviceScaleFactor": 1, "mobile": False}, session)
            self.send("Page.navigate", {"url": url}, session)
            self.wait_for("Page.loadEventFired", session)
            self.pump(settle)
            self._until_loaded(session)  # a page may redirect (the book's index.html does)
            # Scroll to the end and back so that anything loaded lazily loads, then let it settle.
            self.evaluate("window.scrollTo(0, document.body.scrollHeight)", session)
            self.pump(settle)
            self.evaluate("window.scrollTo(0, 0)", session)
            self.pump(settle)
            report = PageReport(url=url, title=self.evaluate("document.title", session),
                                final_url=self.evaluate("location.href", session))
            report.images = self.evaluate(
                "Array.from(document.images).map(i => ({src: i.currentSrc || i.src, complete: i.complete, "
                "naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight, "
                "width: i.getBoundingClientRect().width, height: i.getBoundingClientRect().height, "
                "inArticle: i.closest('article') !== null}))", session)
            report.links = self.evaluate("Array.from(document.querySelectorAll('a[href]')).map(a => a.href)",
                                         session)
            if screenshot is not None:
                if scroll_to:
                    self.evaluate(f"document.querySelector({json.dumps(scroll_to)})"
                                  ".scrollIntoView({block: 'center'})", session)
                    self.pump(settle)
                data = self.send("Page.captureScreenshot", {"format": "png"}, session)["data"]
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(base64.b64decode(data))
            if probe is not None:
                report.probe = self.evaluate(probe, session)
            self.pump(0.05)
            report.external = sorted({e["url"] for e in self.events if e["method"] == "external"})
            report.console_errors = self._errors(report.external)
            return report
        finally:
            self.send("Target.closeTarget", {"targetId": target})

    def _errors(self, external: list[str]) -> list[str]:
        errors = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                errors.append(f"uncaught: {d.get('exception', {}).get('description') or d.get('text')} "
                              f"({d.get('url', '')}:{d.get('lineNumber', '')})")
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                             for a in p.get("args", [])))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                entry = p["entry"]
                if entry.get("url") in external:  # the request we failed on purpose
                    continue
                errors.append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}".strip())
        return errors

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 - closing a browser that may already be gone
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
