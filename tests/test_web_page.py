"""The web page in a real headless Chromium at phone width (390 px), against the real
`evfuse run` process and a simulated site on loopback (Modbus meter server, OCPP charge
points built with the ocpp package).

The phone-width screenshot is saved under the test's tmp dir; set EVFUSE_SCREENSHOT_COPY=FILE
to get a copy there as well, for a person to look at."""

import asyncio
import os
import shutil
import signal

import pytest

from controller.sim.chargepoint import SimOptions
from controller.sim.live_site import SimCharger

from e2e_kit import FAST, Service
from web_kit import PHONE, WebSite, chromium, in_thread, need_chromium, untouched, until_page

pytestmark = pytest.mark.timeout(240)

CHARGERS = (SimCharger("garage", "ABC", SimOptions(version="1.6", response_delay_s=1.0)),
            SimCharger("carport", "B", SimOptions(version="2.0.1", phases=1, response_delay_s=1.0)))
PASSWORD = "fuse box 42"
WEB = f'[web]\nlisten = "127.0.0.1:0"\npassword = "{PASSWORD}"\n'
CUT_RGB = (224, 49, 49)  # app.js COLORS.mark.cut: nothing else on the plot has this colour

SHOWN_LIMIT = "document.querySelector('.charger[data-id=\"{id}\"] dd.limit').textContent"
CUT_PIXELS = """(() => {
  const c = document.getElementById('plot-phases');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (d[i] === %d && d[i + 1] === %d && d[i + 2] === %d && d[i + 3] === 255) n++;
  return n;
})()""" % CUT_RGB


def shown_limit(charger_id: str) -> str:
    return SHOWN_LIMIT.format(id=charger_id)


async def test_the_page_follows_a_running_service(tmp_path):
    need_chromium()
    async with Service(CHARGERS, control=FAST + WEB, tmp_path=tmp_path) as svc:
        await svc.until(lambda: svc.web_url is not None, "the web page address in the log", 20)
        # Phase B carries both: 24 - 2 A household leaves 11 A each.
        await svc.steady(lambda: (svc.limit("garage"), svc.limit("carport")) == (11.0, 11.0), "11 A / 11 A")
        async with chromium() as browser:
            await in_thread(browser.get, svc.web_url)
            await until_page(browser, "document.querySelectorAll('#phases .phase').length === 3", "three phases")
            ids = await until_page(browser, "[...document.querySelectorAll('#chargers .charger')]"
                                            ".map(c => c.dataset.id).join(',')", "the chargers")
            assert ids == "garage,carport"
            await until_page(browser, f"{shown_limit('garage')}.startsWith('11.0 A')", "garage at 11 A")
            await until_page(browser, "document.getElementById('link').textContent === 'live'", "live updates")
            phase_b = await in_thread(browser.execute_script,
                                      "return document.querySelector('.phase[data-phase=\"B\"]').textContent")
            assert "of 25 A fuse" in phase_b and "A free" in phase_b
            await in_thread(browser.execute_script, "window.notReloaded = true;")

            # A limit changes: 8 A more household on phase B leaves 14 A, 7 A each (the meter
            # sees it as an 8 A overload on B, cut at once).
            svc.site.household = lambda t: (0.0, 8.0, 0.0)
            await svc.until(lambda: svc.limit("garage") == 7.0, "the controller to share 7 A / 7 A", 20)
            await until_page(browser, f"{shown_limit('garage')}.startsWith('7.0 A')", "garage's new limit")
            assert await in_thread(browser.execute_script, "return window.notReloaded === true")

            # An overload: 30 A more on phase A is cut at once, and the plot shows the cut.
            svc.site.household = lambda t: (30.0, 8.0, 0.0)
            await svc.until(lambda: svc.logged("overload on phase A"), "the overload noticed", 20)
            await until_page(browser, "document.getElementById('marks').textContent.includes('overload on phase A')",
                             "the cut listed under the plot")
            assert "cut" in await in_thread(browser.execute_script,
                                            "return document.getElementById('plot-phases').dataset.marks")
            assert await until_page(browser, CUT_PIXELS, "the cut drawn in its colour") >= 20
            faults = await until_page(browser, "document.getElementById('faults').textContent", "faults")
            assert "overload on phase A" in faults or "none" in faults  # it may be over already
            await asyncio.sleep(3)  # a few more seconds of plot after the cut
            await screenshot(browser, tmp_path / "web-phone.png")
            svc.site.household = lambda t: (0.0, 0.0, 0.0)


async def test_controls_refused_without_the_password_and_applied_with_it(tmp_path):
    need_chromium()
    async with Service(CHARGERS, control=FAST + WEB, tmp_path=tmp_path) as svc:
        await svc.until(lambda: svc.web_url is not None, "the web page address in the log", 20)
        await svc.steady(lambda: svc.limit("garage") == 11.0, "garage at 11 A")
        async with chromium() as browser:
            await in_thread(browser.get, svc.web_url)
            await until_page(browser, "!document.getElementById('login').hidden", "the login form")
            assert await in_thread(browser.execute_script, "return document.getElementById('commands').hidden")
            refused = await in_thread(browser.execute_async_script, POST_PAUSE)
            assert refused == 401
            await type_password(browser, "not it")
            await until_page(browser, "document.getElementById('control-msg').textContent === 'wrong password'",
                             "the refusal")
            await asyncio.sleep(1.0)
            assert svc.limit("garage") == 11.0 and not svc.logged("paused on the web page")

            await type_password(browser, PASSWORD)
            await until_page(browser, "!document.getElementById('commands').hidden", "the controls")
            await in_thread(browser.execute_script, "document.getElementById('pause').click()")
            await svc.until(lambda: svc.logged("all charging paused: paused on the web page"), "the pause", 15)
            await svc.until(lambda: (svc.limit("garage"), svc.limit("carport")) == (0.0, 0.0), "both at 0 A", 15)
            await until_page(browser, "document.getElementById('banner').textContent"
                                      ".includes('All charging paused: paused on the web page')", "the banner")
            await until_page(browser, "document.getElementById('pause').textContent === 'Resume charging'",
                             "the resume button")
            await in_thread(browser.execute_script, "document.getElementById('pause').click()")
            await svc.until(lambda: svc.logged("all charging resumed"), "the resume", 15)
            await svc.until(lambda: svc.limit("garage") > 0, "charging again", 30)

            # A charger's mode: the same override as over MQTT; "off" gives it nothing.
            await until_page(browser, "document.querySelector('#chargers select[data-id=\"garage\"]')",
                             "garage's mode picker")
            await in_thread(browser.execute_script, PICK_MODE, "garage", "off")
            await svc.until(lambda: svc.logged("garage: mode = off (override from web)"), "the override", 15)
            await svc.until(lambda: svc.limit("garage") == 0.0, "garage off", 15)
            await until_page(browser, "document.querySelector('#chargers select[data-id=\"garage\"]').value === 'off'",
                             "the picker showing off")
            await in_thread(browser.execute_script, PICK_MODE, "garage", "")  # as in the config file
            await svc.until(lambda: svc.logged("garage: mode cleared (override from web)"), "cleared", 15)
            await svc.until(lambda: svc.limit("garage") > 0, "garage charging again", 30)


async def test_a_read_only_page_offers_no_controls():
    need_chromium()
    async with WebSite() as w:
        async with chromium() as browser:
            await in_thread(browser.get, w.url)
            await until_page(browser, "document.querySelectorAll('#chargers .charger').length === 2", "the chargers")
            assert await in_thread(browser.execute_script, "return document.getElementById('controls').hidden")
            assert await in_thread(browser.execute_async_script, POST_PAUSE) == 404
        assert untouched(w.controller)


PICK_MODE = """const pick = document.querySelector(`#chargers select[data-id="${arguments[0]}"]`);
pick.focus(); pick.value = arguments[1]; pick.dispatchEvent(new Event('change'));"""
POST_PAUSE = """const done = arguments[arguments.length - 1];
fetch('/api/pause', {method: 'POST', headers: {'Content-Type': 'application/json'},
                     body: JSON.stringify({paused: true})}).then(r => done(r.status), e => done(String(e)));"""


async def type_password(browser, password: str) -> None:
    def fill():
        from selenium.webdriver.common.by import By
        field = browser.find_element(By.ID, "password")
        field.clear()
        field.send_keys(password)
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
    await in_thread(fill)


async def screenshot(browser, path) -> None:
    """The whole page at phone width, saved for review."""
    height = await in_thread(browser.execute_script, "return document.documentElement.scrollHeight")
    await in_thread(browser.set_window_size, PHONE[0], height + 160)
    await asyncio.sleep(1.0)  # the plots redraw at the new size on the next update
    assert await in_thread(browser.execute_script, "return document.documentElement.scrollWidth") <= PHONE[0]
    await in_thread(browser.save_screenshot, str(path))
    assert path.stat().st_size > 10_000
    copy = os.environ.get("EVFUSE_SCREENSHOT_COPY")
    if copy:
        shutil.copyfile(path, copy)


async def test_service_runs_on_without_its_port_and_a_reload_brings_the_page(tmp_path):
    import socket
    import urllib.request

    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        web = f'[web]\nlisten = "127.0.0.1:{port}"\n'
        async with Service(CHARGERS, control=FAST + web, tmp_path=tmp_path) as svc:
            await svc.until(lambda: svc.logged("web page unavailable on 127.0.0.1:"), "the refusal logged", 20)
            await svc.until(lambda: svc.limit("garage") == 11.0, "charging all the same")
            taken.close()
            with open(svc.config_path) as f:
                text = f.read()
            with open(svc.config_path, "w") as f:
                f.write(text.replace(web, f'[web]\nlisten = "127.0.0.1:{port}"\npassword = "{PASSWORD}"\n'))
            svc.proc.send_signal(signal.SIGHUP)
            await svc.until(lambda: svc.web_url is not None, "the page after the reload", 20)
            body = await in_thread(lambda: urllib.request.urlopen(svc.web_url + "api/session", timeout=10).read())
            assert b'"controls": true' in body
            assert svc.limit("garage") == 11.0  # the reload did not disturb the chargers
    finally:
        taken.close()
