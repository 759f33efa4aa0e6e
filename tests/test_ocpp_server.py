"""Who may connect, and what bad input gets: unknown ids and wrong passwords are refused at the
HTTP handshake; malformed JSON, unknown actions and schema violations get CALLERRORs; frames
over the size limit close the link; a flooding charger disturbs nobody else."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import ssl
import subprocess
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from controller.chargers.ocpp import charge_point_id
from controller.chargers.ocpp.server import MAX_FRAME_BYTES
from controller.config import ChargerConfig
from test_ocpp_central import charge_point, make_config, online, site, until


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("path, expected", [
    ("/cp1", "cp1"), ("/ocpp/cp1", "cp1"), ("/ocpp/cp1/", "cp1"), ("/ocpp/my%20cp?token=x", "my cp"),
    ("/a/b%2Fc", "b/c"), ("/", ""),
])
def test_charge_point_id_is_the_last_path_segment_decoded(path, expected):
    assert charge_point_id(path) == expected


async def handshake_status(url: str, **kwargs) -> int:
    try:
        async with connect(url, open_timeout=10, **kwargs):
            return 101
    except InvalidStatus as e:
        return e.response.status_code


async def test_only_configured_ids_with_the_right_password_get_in():
    cfg = make_config(ChargerConfig(id="open"), ChargerConfig(id="locked", password="s3cret"),
                      ChargerConfig(id="with space"))
    async with site(cfg) as (central, url):
        v16 = {"subprotocols": ["ocpp1.6"]}
        assert await handshake_status(f"{url}/stranger", **v16) == 404
        assert await handshake_status(f"{url}/locked", **v16) == 401
        assert await handshake_status(f"{url}/locked", additional_headers=basic("locked", "wrong"), **v16) == 401
        assert await handshake_status(f"{url}/locked", additional_headers=basic("open", "s3cret"), **v16) == 401
        assert await handshake_status(f"{url}/open") == 400  # no OCPP subprotocol offered
        assert await handshake_status(f"{url}/open", subprotocols=["ocpp0.1"]) == 400
        assert await handshake_status(f"{url}/ocpp/with%20space?x=1", **v16) == 101
        async with charge_point(url, "locked", password="s3cret", version="2.0.1"):
            await online(central, "locked")
        await until(lambda: all(not d.reading(0).online for d in central.drivers.values()))


async def raw_session(url: str, protocol: str = "ocpp1.6"):
    # short close timeout: a throttled server reads a flooder's close frame late
    return await connect(f"{url}/cp1", subprotocols=[protocol], open_timeout=10, close_timeout=1,
                         max_size=None)


async def exchange(ws, frame: str) -> list:
    await ws.send(frame)
    while True:  # skip the central system's own requests (GetConfiguration, ...)
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if reply[0] != 2:
            return reply


@pytest.mark.parametrize("protocol, format_code", [("ocpp1.6", "FormationViolation"),
                                                   ("ocpp2.0.1", "RpcFrameworkError")])
async def test_malformed_frames_get_a_callerror_and_the_session_survives(protocol, format_code):
    async with site(make_config()) as (central, url):
        ws = await raw_session(url, protocol)
        try:
            assert await exchange(ws, "{not json") == [4, "-1", format_code, "not valid JSON", {}]
            assert (await exchange(ws, '{"a": 1}'))[:3] == [4, "-1", format_code]
            assert (await exchange(ws, '[2, "x1"]'))[:3] == [4, "x1", format_code]
            wrong_type = await exchange(ws, '[7, "x2", "Heartbeat", {}]')
            assert wrong_type[:2] == [4, "x2"]
            unknown = await exchange(ws, '[2, "x3", "MakeCoffee", {}]')
            assert unknown[:3] == [4, "x3", "NotSupported"]
            violation = await exchange(ws, '[2, "x4", "StatusNotification", {"connectorId": "one"}]')
            assert violation[:3] == [4, "x4", "TypeConstraintViolation"]
            extra = await exchange(ws, '[2, "x6", "Heartbeat", {"surprise": 1}]')
            assert extra[:3] == [4, "x6", "FormationViolation" if protocol == "ocpp1.6" else "FormatViolation"]
            # still a working session afterwards
            await ws.send('[3, "nobody-asked", {}]')  # a stray answer is ignored, not an error
            heartbeat = await exchange(ws, '[2, "x5", "Heartbeat", {}]')
            assert heartbeat[:2] == [3, "x5"] and "currentTime" in heartbeat[2]
            assert central.drivers["cp1"].status().notes["bad_frames"] == "7"
        finally:
            await ws.close()


async def test_oversized_frame_closes_only_that_connection():
    cfg = make_config(ChargerConfig(id="cp1"), ChargerConfig(id="cp2"))
    async with site(cfg) as (central, url), charge_point(url, "cp2") as good:
        await online(central, "cp2")
        ws = await raw_session(url)
        try:
            await ws.send('[2, "big", "DataTransfer", {"vendorId": "x", "data": "' + "a" * MAX_FRAME_BYTES + '"}]')
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd.code == 1009  # message too big
        finally:
            await ws.close()
        assert await asyncio.wait_for(central.drivers["cp2"].apply(9), 10)
        assert good.composite_limit_a() == 9.0


async def test_a_flooding_charger_does_not_starve_the_others():
    cfg = make_config(ChargerConfig(id="cp1"), ChargerConfig(id="cp2"))
    async with site(cfg) as (central, url), charge_point(url, "cp2", version="2.0.1") as good:
        driver = await online(central, "cp2")
        ws = await raw_session(url)

        async def flood():
            for i in range(100000):
                await ws.send(f'[2, "f{i}", "Heartbeat", {{}}]' if i % 2 else "garbage")

        async def drain():
            async for _ in ws:
                pass

        tasks = [asyncio.create_task(flood()), asyncio.create_task(drain())]
        try:
            await asyncio.sleep(0.5)
            # the event loop still turns promptly, and the other charger still gets its limits
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            assert time.perf_counter() - start < 1.0
            for limit in (8, 12, 10):
                assert await asyncio.wait_for(driver.apply(limit), 10)
                assert good.composite_limit_a() == limit
            flooder = central.drivers["cp1"]
            await until(lambda: flooder.status().notes.get("bad_frames", "0") != "0"
                        and flooder.status().notes.get("flood") == "throttled")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ws.close()


@pytest.fixture
def tls_files(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not available to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
    return cert, key


async def test_tls_with_basic_auth_is_security_profile_2(tls_files):
    cert, key = tls_files
    cfg = make_config(ChargerConfig(id="cp1", password="s3cret"), tls_cert=str(cert), tls_key=str(key))
    trust = ssl.create_default_context(cafile=str(cert))
    async with site(cfg) as (central, url):
        assert url.startswith("wss://")
        async with charge_point(url, password="s3cret", ssl=trust) as sim:
            driver = await online(central)
            assert await asyncio.wait_for(driver.apply(9), 10)
            assert sim.composite_limit_a() == 9.0
        with pytest.raises(ssl.SSLError):  # a client that does not trust the certificate
            async with connect(f"{url}/cp1", subprotocols=["ocpp1.6"], ssl=ssl.create_default_context(),
                               open_timeout=10):
                pass
