"""Helpers for the web page tests: a controller with its web page in this process against a
simulated site, and a real headless Chromium (Debian's chromium + chromium-driver) driven by
Selenium, which is pointed at both binaries so that it never downloads anything.

    async with WebSite(password="s3cret") as w:
        async with w.session.get(w.url + "api/status") as r: ...

Everything is stopped on exit, also when a test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import tomllib

import aiohttp
import pytest

from controller.config import WebConfig, parse_config
from controller.runtime import Controller
from controller.sim.chargepoint import SimOptions
from controller.sim.live_site import LiveSite, SimCharger
from controller.web.server import WebServer

from e2e_kit import FAST

CHARGERS = (SimCharger("garage", "ABC", SimOptions(version="1.6", response_delay_s=0.5)),
            SimCharger("carport", "B", SimOptions(version="2.0.1", phases=1, response_delay_s=0.5)))
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PHONE = (390, 844)


class WebSite:
    def __init__(self, password: str = "", chargers=CHARGERS, ocpp_extra: str = "", household=None,
                 start_chargers: bool = True):
        self.password = password
        self.start_chargers = start_chargers
        self.site = LiveSite(chargers=chargers, household=household)
        self.ocpp_extra = ocpp_extra
        self.controller: Controller | None = None
        self.web: WebServer | None = None
        self.session: aiohttp.ClientSession | None = None
        self.url = ""

    async def __aenter__(self) -> WebSite:
        try:
            meter_port = await self.site.start_meter()
            text = self.site.config(meter_port, extra=FAST, ocpp_extra=self.ocpp_extra)
            config = parse_config(tomllib.loads(text), "test")
            self.controller = Controller(config)
            await self.controller.start()
            if self.start_chargers:
                await self.site.start_chargers(self.controller.ocpp_port)
            self.web = WebServer(lambda: self.controller, WebConfig("127.0.0.1:0", self.password), config.ocpp)
            await self.web.start()
            self.url = self.web.url
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20),
                                                 cookie_jar=aiohttp.CookieJar(unsafe=True))  # an IP address
            return self
        except BaseException:
            await self.__aexit__(None, None, None)
            raise

    async def __aexit__(self, *exc) -> None:
        if self.session is not None:
            await self.session.close()
        if self.web is not None:
            await self.web.stop()
        if self.controller is not None:
            await self.controller.stop()
        await self.site.stop()

    async def until(self, predicate, what: str, timeout: float = 30.0) -> None:
        start = time.monotonic()
        while not predicate():
            if time.monotonic() - start > timeout:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            await asyncio.sleep(0.05)


def untouched(controller) -> bool:
    """No pause and no override: what a refused control must leave behind."""
    return controller.pause_reason is None and controller.overrides == {}


def self_signed(folder) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key (openssl, as the OCPP TLS test makes them)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available to make a test certificate")
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


# ---------------------------------------------------------------------- the browser

def need_chromium() -> None:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("chromium and chromium-driver are not installed (bash .ci/dev.sh installs them as root)")


@contextlib.asynccontextmanager
async def chromium(width: int = PHONE[0], height: int = PHONE[1]):
    """A headless Chromium with a fresh profile, at phone size; quit and removed on exit.
    Started and quit in a thread: the event loop serving the page must not stall."""
    need_chromium()
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never reach out, whatever happens
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="evfuse-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = None
    try:
        driver = await asyncio.to_thread(webdriver.Chrome, service=Service(CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(30)
        driver.set_script_timeout(30)
        yield driver
    finally:
        if driver is not None:
            await asyncio.to_thread(driver.quit)
        shutil.rmtree(profile, ignore_errors=True)


async def in_thread(fn, *args):
    """Selenium blocks: run its calls off the event loop that serves the page."""
    return await asyncio.to_thread(fn, *args)


async def until_page(driver, script: str, what: str, timeout: float = 30.0):
    """Wait until the page's JavaScript `script` (an expression) is truthy; returns its value."""
    start = time.monotonic()
    while True:
        value = await in_thread(driver.execute_script, f"return ({script});")
        if value:
            return value
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for the page to show {what}; "
                                 f"last value {value!r}")
        await asyncio.sleep(0.2)
