"""Helpers of the browser tests: a real Chromium (Playwright), a real ``lifenet web``.

Chromium comes from the system's packages (Debian's ``chromium``; ``scripts/test``
installs it where it can), driven by Playwright for Python through ``executable_path``:
Playwright's own browser downloads are never used. Where no Chromium can be found, or
Playwright is not installed, the browser tests skip and say which.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from server.app import Server
from tests.conftest import Processes, free_port, wait_for

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str | None:
    """The system Chromium: ``$LIFENET_CHROMIUM``, else the first on ``PATH``."""
    given = os.environ.get("LIFENET_CHROMIUM")
    if given:
        return given if os.access(given, os.X_OK) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for a module's tests (each test opens its own pages)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install playwright)")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium, or set "
                    "LIFENET_CHROMIUM)")
    with sync_playwright() as playwright:
        # --no-sandbox: the tests may run as root (CI), where Chromium's sandbox refuses
        chromium = playwright.chromium.launch(executable_path=path, headless=True,
                                              args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Gateway:
    """A ``lifenet web`` child process and its URL."""

    proc: subprocess.Popen[bytes]
    url: str
    port: int

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}healthz", timeout=2) as reply:
            body: dict[str, Any] = json.load(reply)
            return body


def start_gateway(processes: Processes, server: Server, *args: str,
                  port: int | None = None) -> Gateway:
    """``lifenet web`` for ``server`` on a free port; ready when ``/healthz`` answers."""
    port = port or free_port()
    proc = processes.lifenet("web", "--connect", server.lobby.bound_endpoint,
                             "--frame-port", str(server.world_info.frame_port),
                             "--http", f"127.0.0.1:{port}", *args)
    gateway = Gateway(proc, f"http://127.0.0.1:{port}/", port)

    def ready() -> bool:
        assert proc.poll() is None, f"lifenet web exited: {processes.log_of(proc)}"
        try:
            gateway.health()
        except (OSError, urllib.error.URLError):
            return False
        return True

    wait_for(ready, 30, what="lifenet web to answer")
    return gateway


class Page:
    """A browser tab on the page, collecting what its console says."""

    def __init__(self, browser: Any, url: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text)
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.goto(url)

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def state(self, name: str) -> Any:
        return self.js(f"window.lifenet.state.{name}")

    def wait(self, expression: str, timeout: float = 15.0, arg: Any = None) -> None:
        """Wait until ``expression`` is true in the page; when it never is, fail with
        what the page shows (its link, its newest messages, its console's errors)."""
        from playwright.sync_api import TimeoutError as PageTimeout

        try:
            self.page.wait_for_function(expression, arg=arg, timeout=timeout * 1000)
        except PageTimeout:
            shown = self.js("() => [document.getElementById('link').textContent, "
                            "[...document.querySelectorAll('#messages li')].slice(0, 5)"
                            ".map(li => li.textContent)]")
            pytest.fail(f"{expression!r} not true within {timeout:g} s; the page shows "
                        f"{shown[0]!r}, messages {shown[1]}, errors {self.errors}")

    def close(self) -> None:
        self.context.close()
