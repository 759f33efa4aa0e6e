"""The web page's HTTP side, with aiohttp's real server on 127.0.0.1 (port 0) in front of a
real controller that runs against a simulated site (Modbus meter server, OCPP charge points)."""

import asyncio
import base64
import json
import logging
import os
import ssl
import tempfile

import aiohttp
import pytest

from controller.config import WebConfig
from controller.status import StatusServer, fetch
from controller.web.server import WebServer

from test_web_history import decode
from web_kit import WebSite, self_signed, untouched

pytestmark = pytest.mark.timeout(90)

JSON = {"Content-Type": "application/json"}
PAUSE_REASON = "paused on the web page"


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def keys(x):
    """The shape of a JSON value: its keys all the way down."""
    if isinstance(x, dict):
        return {k: keys(v) for k, v in x.items()}
    if isinstance(x, list):
        return [keys(v) for v in x[:1]]
    return type(x).__name__ if x is not None else None


async def test_api_status_is_the_json_of_evfuse_status(tmp_path):
    async with WebSite() as w:
        await w.until(lambda: w.controller.meter.age() is not None and all(r.online for r in w.controller.readings),
                      "meter and chargers up")
        sock = os.path.join(tempfile.mkdtemp(prefix="evfuse-"), "status.sock")
        status = StatusServer(sock, lambda: w.controller)
        assert await status.start()
        try:
            async with w.session.get(w.url + "api/status") as r:
                assert r.status == 200 and r.content_type == "application/json"
                page = await r.json()
            cli = await asyncio.to_thread(fetch, sock)
        finally:
            await status.stop()
    for volatile in ("uptime_s", "cycles", "events"):
        page.pop(volatile), cli.pop(volatile)
    assert keys(page) == keys(cli)
    for part in ("version", "site", "paused", "slow_mode", "faults"):
        assert page[part] == cli[part]
    assert [(c["id"], c["protocol"], c["connected"]) for c in page["chargers"]] == \
        [(c["id"], c["protocol"], c["connected"]) for c in cli["chargers"]] == \
        [("garage", "ocpp1.6", True), ("carport", "ocpp2.0.1", True)]


async def test_history_and_live_updates_follow_the_site():
    async with WebSite() as w:
        await w.until(lambda: w.web.history.count >= 3, "three samples in the history", 15)
        async with w.session.get(w.url + "api/history") as r:
            assert r.status == 200
            head, series = decode(await r.read())
        assert head["phases"] == ["A", "B", "C"] and head["chargers"] == ["garage", "carport"]
        assert set(series) == {"phase:A", "phase:B", "phase:C", "limit:garage", "draw:garage",
                               "limit:carport", "draw:carport"}
        last_a = [v for v in series["phase:A"] if v is not None][-1]
        assert 3.0 <= last_a <= 3.0 + 16 + 16  # household on A and at most both cars
        async with w.session.get(w.url + "api/events") as r:
            assert r.headers["Content-Type"] == "text/event-stream"
            updates = []
            async for line in r.content:
                if line.startswith(b"data: "):
                    updates.append(json.loads(line[6:]))
                    if len(updates) == 3:
                        break
        for u in updates:
            assert set(u) == {"status", "sample", "marks"}
            # the sample is the status of the same moment, in tenths of an ampere
            assert u["sample"]["phases"] == [round(p["load_a"] * 10) for p in u["status"]["phases"]]
            assert [c["id"] for c in u["status"]["chargers"]] == ["garage", "carport"]
            assert set(u["sample"]["chargers"]) == {"garage", "carport"}
        times = [u["sample"]["t"] for u in updates[1:]]  # the first may be the one kept for newcomers
        assert times[1] - times[0] == pytest.approx(1.0, abs=0.2)


async def test_an_overload_is_marked_as_a_cut():
    async with WebSite() as w:
        await w.until(lambda: w.web.history.count >= 2, "the history running", 15)
        w.site.household = lambda t: (30.0, 0.0, 0.0)  # far over the 24 A limit on phase A
        await w.until(lambda: any(m.kind == "cut" for m in w.web.history.marks), "a cut mark", 15)
        cut = next(m for m in w.web.history.marks if m.kind == "cut")
        assert "overload on phase A" in cut.text
        async with w.session.get(w.url + "api/history") as r:
            head, _ = decode(await r.read())
        assert any(m["kind"] == "cut" and m["text"] == cut.text for m in head["marks"])


async def test_without_a_password_there_are_no_controls():
    async with WebSite() as w:
        async with w.session.get(w.url + "api/session") as r:
            assert await r.json() == {"controls": False, "authorized": False, "history_s": 21600, "modes": []}
        for path in ("api/pause", "api/login", "api/logout", "api/chargers/garage/mode"):
            async with w.session.post(w.url + path, json={"paused": True}) as r:
                assert r.status == 404, path
        async with w.session.get(w.url + "api/pause") as r:
            assert r.status == 404
        assert untouched(w.controller)


async def test_pause_is_refused_without_the_password_and_applied_with_it(caplog):
    caplog.set_level(logging.INFO)
    async with WebSite(password="s3cret pass") as w:
        await w.until(lambda: w.site.points["garage"].composite_limit_a() > 0, "garage charging")
        async with w.session.post(w.url + "api/pause", json={"paused": True}) as r:
            assert r.status == 401 and "log in" in (await r.json())["error"]
        async with w.session.post(w.url + "api/login", json={"password": "guess"}) as r:
            assert r.status == 401
        assert untouched(w.controller)
        assert "web page: wrong password from 127.0.0.1" in caplog.text

        async with w.session.post(w.url + "api/login", json={"password": "s3cret pass"}) as r:
            assert r.status == 200
            cookie = r.cookies["evfuse_session"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
        async with w.session.get(w.url + "api/session") as r:
            assert (await r.json())["authorized"] is True
        async with w.session.post(w.url + "api/pause", json={"paused": True}) as r:
            assert r.status == 200 and await r.json() == {"paused": PAUSE_REASON}
        assert w.controller.pause_reason == "paused on the web page"
        assert w.controller.overrides == {"site": {"pause": True}}  # the same override as MQTT's
        assert "all charging paused: paused on the web page" in caplog.text
        await w.until(lambda: w.site.points["garage"].composite_limit_a() == 0, "the charge point told 0 A")
        await w.until(lambda: any(m.kind == "pause" for m in w.web.history.marks), "a pause mark", 5)

        async with w.session.post(w.url + "api/logout", json={}) as r:
            assert r.status == 200
        async with w.session.post(w.url + "api/pause", json={"paused": False}) as r:
            assert r.status == 401
        assert w.controller.pause_reason == PAUSE_REASON

        # A script: basic auth with the password, any user name, no session.
        async with aiohttp.ClientSession() as script:
            async with script.post(w.url + "api/pause", json={"paused": False},
                                   headers=basic("installer", "s3cret pass")) as r:
                assert r.status == 200 and await r.json() == {"paused": None}
            async with script.post(w.url + "api/pause", json={"paused": True},
                                   headers=basic("installer", "wrong")) as r:
                assert r.status == 401
        assert w.controller.pause_reason is None and w.controller.overrides == {}
        assert "all charging resumed" in caplog.text


@pytest.mark.parametrize("path, kwargs, status", [
    ("api/pause", {"data": b'{"paused": true}'}, 415),  # not declared as JSON
    ("api/pause", {"data": b'{"paused": tru', "headers": JSON}, 400),
    ("api/pause", {"data": b'[true]', "headers": JSON}, 400),
    ("api/pause", {"json": {"paused": "yes"}}, 400),
    ("api/pause", {"json": {"paused": 1}}, 400),
    ("api/pause", {"json": {"paused": True, "all": True}}, 400),
    ("api/pause", {"json": {}}, 400),
    ("api/pause", {"data": b'{"paused": true, "x": "' + b"a" * 5000 + b'"}', "headers": JSON}, 413),
    ("api/pause", {"json": {"paused": True}, "headers": {"Origin": "http://evil.example"}}, 403),
    ("api/pause", {"data": b'\xff\xfe', "headers": JSON}, 400),
    ("api/login", {"json": {"password": 1234}}, 400),
    ("api/login", {"json": {"pass": "s3cret"}}, 400),
])
async def test_malformed_control_requests_are_4xx_and_change_nothing(path, kwargs, status):
    async with WebSite(password="s3cret") as w:
        async with w.session.post(w.url + "api/login", json={"password": "s3cret"}) as r:
            assert r.status == 200
        async with w.session.post(w.url + path, **kwargs) as r:
            assert r.status == status
            assert "error" in await r.json()
        assert untouched(w.controller)
        async with w.session.get(w.url + "api/history") as r:
            assert r.status == 200  # still serving


@pytest.mark.parametrize("request_line, status", [
    ("GET api/history?seconds=abc", 400),
    ("GET api/history?seconds=0", 400),
    ("GET api/history?seconds=99999999", 400),
    ("GET api/history?since=1", 400),
    ("GET static/secret.py", 404),
    ("GET static/..%2Fserver.py", 404),
    ("GET api/nothing", 404),
    ("PUT api/status", 405),
    ("GET api/pause", 405),
])
async def test_bad_reads_are_4xx(request_line, status):
    method, path = request_line.split(" ")
    async with WebSite(password="s3cret") as w:
        async with w.session.request(method, w.url + path) as r:
            assert r.status == status
            if path.startswith("api/"):
                assert "error" in await r.json()
        for header in ("Bearer x", "Basic !!!", "Basic " + base64.b64encode(b"no colon").decode()):
            async with w.session.post(w.url + "api/pause", json={"paused": True},
                                      headers={"Authorization": header}) as r:
                assert r.status == 400
        assert untouched(w.controller)


async def test_page_and_assets_are_served_from_the_package():
    async with WebSite() as w:
        for path, kind in (("", "text/html"), ("static/app.js", "text/javascript"), ("static/app.css", "text/css")):
            async with w.session.get(w.url + path) as r:
                assert r.status == 200 and r.content_type == kind
                body = await r.text()
                assert "default-src 'self'" in r.headers["Content-Security-Policy"]
                assert "http://" not in body and "https://" not in body  # nothing from elsewhere
        async with w.session.get(w.url) as r:
            assert '<canvas id="plot-phases"' in await r.text()


async def test_https_with_the_ocpp_certificate(tmp_path):
    cert, key = self_signed(tmp_path)
    extra = f'tls_cert = "{cert}"\ntls_key = "{key}"'
    async with WebSite(password="s3cret", ocpp_extra=extra, start_chargers=False) as w:
        assert w.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        async with w.session.post(w.url + "api/login", json={"password": "s3cret"}, ssl=trust) as r:
            assert r.status == 200
            assert r.cookies["evfuse_session"]["secure"]
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with w.session.get(w.url + "api/status", ssl=ssl.create_default_context()):
                pass


async def test_reconfigure_keeps_the_history_and_applies_a_new_password():
    async with WebSite() as w:
        await w.until(lambda: w.web.history.count >= 2, "samples", 15)
        before = w.web.history.count
        await w.web.reconfigure(WebConfig("127.0.0.1:0", "new one"), w.controller.config.ocpp)
        assert w.web.history.count >= before
        async with w.session.get(w.web.url + "api/session") as r:
            assert (await r.json())["controls"] is True


async def test_a_taken_port_is_an_oserror():
    async with WebSite() as w:
        port = int(w.url.rsplit(":", 1)[1].strip("/"))
        other = WebServer(lambda: w.controller, WebConfig(f"127.0.0.1:{port}"), w.controller.config.ocpp)
        with pytest.raises(OSError):
            await other.start()
        await other.stop()


async def test_demo_serves_the_page_and_prints_its_address():
    import io

    from controller.sim.demo import run_demo

    out = io.StringIO()
    demo = asyncio.ensure_future(run_demo(12.0, out, web_port=0, web_password="demo"))
    try:
        for _ in range(400):
            if "web page: http://127.0.0.1:" in out.getvalue() or demo.done():
                break
            await asyncio.sleep(0.05)
        line = next(x for x in out.getvalue().splitlines() if x.startswith("web page: "))
        assert "(password for the controls: demo)" in line
        url = line.split()[2]
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "api/status") as r:
                assert [c["id"] for c in (await r.json())["chargers"]] == \
                    ["garage", "carport", "street", "twin/1", "twin/2"]  # the twin: a row per connector
            async with session.get(url + "api/session") as r:
                assert (await r.json())["controls"] is True
        assert await asyncio.wait_for(demo, 30) == 0
        assert "demo stopped as `systemctl stop evfuse` stops" in out.getvalue()
    finally:
        demo.cancel()
        await asyncio.gather(demo, return_exceptions=True)


async def test_a_flood_of_wrong_passwords_is_slowed_and_bounded():
    async with WebSite(password="s3cret") as w:
        async def guess(i):
            async with w.session.post(w.url + "api/login", json={"password": f"guess {i}"}) as r:
                return r.status
        statuses = await asyncio.gather(*(guess(i) for i in range(12)))
        assert statuses.count(401) == 8 and statuses.count(429) == 4  # one a second, eight queued at most
        async with w.session.post(w.url + "api/login", json={"password": "s3cret"}) as r:
            assert r.status == 200


async def test_a_chargers_mode_is_an_override_like_mqtts(caplog):
    caplog.set_level(logging.INFO)
    async with WebSite(password="s3cret") as w:
        await w.until(lambda: w.site.points["garage"].composite_limit_a() > 0, "garage charging")
        url = w.url + "api/chargers/garage/mode"
        async with w.session.post(url, json={"mode": "off"}) as r:
            assert r.status == 401
        async with w.session.post(w.url + "api/login", json={"password": "s3cret"}) as r:
            assert r.status == 200
        async with w.session.get(w.url + "api/session") as r:
            assert (await r.json())["modes"] == ["standard", "solar-priority", "solar-only", "excess", "off"]
        async with w.session.post(url, json={"mode": "off"}) as r:
            assert r.status == 200 and await r.json() == {"id": "garage", "mode": "off", "override": "off"}
        assert w.controller.overrides == {"garage": {"mode": "off"}}
        assert "garage: mode = off (override from web)" in caplog.text
        await w.until(lambda: w.site.points["garage"].composite_limit_a() == 0, "garage told 0 A")
        async with w.session.get(w.url + "api/status") as r:
            snap = await r.json()
        assert snap["overrides"] == {"garage": {"mode": "off"}}
        assert [c["mode"] for c in snap["chargers"]] == ["off", "standard"]
        async with w.session.post(url, json={"mode": None}) as r:  # back to the config file's
            assert r.status == 200 and (await r.json())["override"] is None
        assert untouched(w.controller)
        await w.until(lambda: w.site.points["garage"].composite_limit_a() > 0, "garage charging again")


@pytest.mark.parametrize("path, body, status, says", [
    ("api/chargers/garage/mode", {"mode": "turbo"}, 400, '"solar-only"'),
    ("api/chargers/garage/mode", {"mode": 3}, 400, "must be str or null"),
    ("api/chargers/garage/mode", {"mode": True}, 400, "must be str or null"),
    ("api/chargers/garage/mode", {"mode": "off", "priority": 1}, 400, "expected a JSON object"),
    ("api/chargers/nobody/mode", {"mode": "off"}, 404, 'no charger "nobody"'),
    ("api/chargers/garage/priority", {"priority": 1}, 404, "Not Found"),
])
async def test_bad_mode_requests_are_4xx_and_change_nothing(path, body, status, says):
    async with WebSite(password="s3cret") as w:
        async with w.session.post(w.url + path, json=body, headers=basic("x", "s3cret")) as r:
            assert r.status == status
            assert says in (await r.json())["error"]
        assert untouched(w.controller)


async def test_each_connector_of_a_twin_is_listed_and_has_its_own_mode():
    from controller.sim.chargepoint import SimOptions
    from controller.sim.live_site import SimCharger, SimConnector
    twin = (SimCharger("twin", options=SimOptions(version="1.6", response_delay_s=0.5), max_a=20,
                       connectors=(SimConnector(1), SimConnector(2, "BCA"))),)
    async with WebSite(password="s3cret", chargers=twin) as w:
        cp = w.site.points["twin"]
        await w.until(lambda: cp.draws_a()[1] > 0 and cp.draws_a()[2] > 0, "both cars charging")
        async with w.session.get(w.url + "api/status") as r:
            snap = await r.json()
        assert [(c["id"], c["charger"], c["connector"]) for c in snap["chargers"]] == \
            [("twin/1", "twin", 1), ("twin/2", "twin", 2)]
        async with w.session.post(w.url + "api/chargers/twin%2F2/mode", json={"mode": "off"},
                                  headers=basic("x", "s3cret")) as r:
            assert r.status == 200 and (await r.json())["id"] == "twin/2"
        await w.until(lambda: cp.draws_a()[2] == 0, "connector 2 off")
        assert cp.draws_a()[1] > 0 and w.controller.overrides == {"twin/2": {"mode": "off"}}
