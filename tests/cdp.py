"""A small Chrome DevTools Protocol driver for headless Chromium, enough for the browser tests: load a page, run
JavaScript, type text and keys, wait for a condition, take a screenshot.

Run as:
    with Browser() as browser:
        browser.navigate("http://127.0.0.1:8000/")
        print(browser.evaluate("document.title"))
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", "--remote-debugging-port=0"]


class CDPError(RuntimeError):
    """The browser failed to start, a DevTools command failed, or a wait ran out."""


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium with one page. Use it as a context manager: leaving kills the browser's whole process
    group (renderers, GPU and zygote processes included) and removes its profile."""

    def __init__(self, width: int = 1200, height: int = 900, timeout: float = 60):
        binary = find_chromium()
        if binary is None:
            raise CDPError("Chromium is not installed (on Debian: apt-get install chromium)")
        self.timeout = timeout
        self.events: list[dict] = []  # every DevTools event received, in order (Network.* once enabled)
        self._next_id = 0
        self._profile = Path(tempfile.mkdtemp(prefix="chowa-chromium-"))
        self._cleanup = contextlib.ExitStack()  # undone in reverse by close(): profile, log, browser, socket
        self._cleanup.callback(shutil.rmtree, self._profile, ignore_errors=True)
        try:
            # stderr to a file, not a pipe: a full pipe would stall Chromium
            log = self._cleanup.enter_context(open(self._profile / "stderr.log", "wb"))
            self._process = subprocess.Popen(
                [binary, *FLAGS, f"--user-data-dir={self._profile}", f"--window-size={width},{height}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
            self._cleanup.callback(self._kill)
            self._socket = self._cleanup.enter_context(
                connect(self._page_socket_url(), max_size=None, open_timeout=timeout, proxy=None))
            for domain in ("Page", "Runtime", "Network"):
                self.send(f"{domain}.enable")
            self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
        except BaseException:
            self.close()
            raise

    def _page_socket_url(self) -> str:
        """The page target's WebSocket, found through the port Chromium writes to DevToolsActivePort."""
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not port_file.is_file() or not port_file.read_text().strip():
            if self._process.poll() is not None:
                raise CDPError(f"Chromium exited with code {self._process.returncode}: {self._stderr_tail()}")
            if time.monotonic() > deadline:
                raise CDPError(f"Chromium wrote no DevToolsActivePort in {self.timeout}s: {self._stderr_tail()}")
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an http_proxy
        while True:
            with direct.open(f"http://127.0.0.1:{port}/json/list", timeout=self.timeout) as response:
                pages = [t for t in json.load(response) if t["type"] == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            if time.monotonic() > deadline:
                raise CDPError(f"Chromium opened no page in {self.timeout}s")
            time.sleep(0.05)

    def _stderr_tail(self) -> str:
        return (self._profile / "stderr.log").read_text(errors="replace")[-2000:]

    def send(self, method: str, **params: Any) -> dict:
        """Run one DevTools command and return its result; events that arrive meanwhile go to `self.events`."""
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while True:
            message = json.loads(self._receive(deadline, method))
            if "method" in message:
                self.events.append(message)
            elif message.get("id") == self._next_id:
                if "error" in message:
                    raise CDPError(f"{method} failed: {message['error'].get('message')}")
                return message["result"]

    def _receive(self, deadline: float, waiting_for: str) -> str:
        try:
            return self._socket.recv(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise CDPError(f"no answer to {waiting_for} in {self.timeout}s") from None

    def navigate(self, url: str) -> None:
        """Load `url` and wait for its load event."""
        seen = len(self.events)
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CDPError(f"cannot load {url}: {result['errorText']}")
        deadline = time.monotonic() + self.timeout
        while not any(e["method"] == "Page.loadEventFired" for e in self.events[seen:]):
            self.events.append(json.loads(self._receive(deadline, f"the load event of {url}")))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (a promise is awaited); a thrown error raises CDPError."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CDPError(f"{expression!r} threw: {details.get('exception', {}).get('description') or details}")
        return result["result"].get("value")

    def wait_for(self, condition: str, timeout: float = 30) -> Any:
        """Poll a JavaScript expression until it is truthy and return its value."""
        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(condition)):
            if time.monotonic() > deadline:
                raise CDPError(f"still false after {timeout}s: {condition}")
            time.sleep(0.05)
        return value

    def insert_text(self, text: str) -> None:
        """Type text into the focused element as an input method commits it (one insertion, no key events)."""
        self.send("Input.insertText", text=text)

    def press_key(self, key: str, code: int, text: str = "", shift: bool = False) -> None:
        """A real key press (keyDown with its text, then keyUp) on the focused element."""
        common = {"key": key, "code": key, "windowsVirtualKeyCode": code, "modifiers": 8 if shift else 0}
        self.send("Input.dispatchKeyEvent", type="keyDown", text=text, **common)
        self.send("Input.dispatchKeyEvent", type="keyUp", **common)

    def press_enter(self, shift: bool = False) -> None:
        self.press_key("Enter", 13, "\r", shift=shift)

    def screenshot(self, path: Path) -> Path:
        """The viewport as a PNG."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))
        return path

    def requests(self) -> list[dict]:
        """The requests the page made so far (Network.requestWillBeSent's `request`: url, method, postData, ...)."""
        return [e["params"]["request"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def _kill(self) -> None:
        try:  # the session holds every process Chromium started, also after the main one has exited
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._process.wait(timeout=30)

    def close(self) -> None:
        self._cleanup.close()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
