"""The web page lists the switchable loads: a real headless Chromium against the real
`evfuse run` process, a simulated site and a boiler on the Shelly emulator."""

import pytest

from e2e_kit import FAST
from test_e2e_loads import site_with_boiler
from web_kit import chromium, in_thread, need_chromium, until_page

pytestmark = pytest.mark.timeout(240)

WEB = '[web]\nlisten = "127.0.0.1:0"\n'
LOAD_TEXT = "(document.querySelector('#loads li[data-load=\"boiler\"]') || {}).textContent || ''"


async def test_the_page_shows_the_boiler_switching(tmp_path):
    need_chromium()
    async with site_with_boiler(tmp_path, control=WEB + FAST) as (svc, shelly):
        await svc.until(lambda: svc.web_url is not None, "the web page address in the log", 20)
        await svc.until(shelly.is_on, "the boiler on", 30)
        async with chromium() as browser:
            await in_thread(browser.get, svc.web_url)
            await until_page(browser, "!document.getElementById('loads-section').hidden", "the loads section")
            await until_page(browser, f"{LOAD_TEXT}.includes('boiler on') && {LOAD_TEXT}.includes('3000 W')",
                             "the boiler on with its measured power")
            svc.site.household = lambda t: (10.0, 0.0, 0.0)
            await until_page(browser, f"{LOAD_TEXT}.includes('boiler off')", "the boiler off after the overload")
