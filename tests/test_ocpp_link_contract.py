"""The link drives the ocpp package through its public API only (ChargePoint construction,
route_message, call): checked in the source, and by behaviour over a raw websocket where
the package's internals used to be needed (a late answer, a refused request)."""

from __future__ import annotations

import ast
import asyncio
import json
from pathlib import Path

import controller.chargers.ocpp as ocpp_pkg
from controller.chargers.ocpp import handlers
from test_ocpp_central import make_config, site, until
from test_ocpp_server import exchange, raw_session

OCPP_DIR = Path(ocpp_pkg.__file__).parent


def private_uses(path: Path) -> list[str]:
    """`x._name` where x is anything but `self`, and `self._name` never defined in the file:
    both would reach into another object's (the ocpp package's) internals."""
    tree = ast.parse(path.read_text())
    defined = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store)}
    defined |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        on_self = isinstance(node.value, ast.Name) and node.value.id == "self"
        if not on_self or node.attr not in defined:
            found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    return found


def test_no_module_of_the_central_system_reaches_into_the_ocpp_package():
    files = [OCPP_DIR / n for n in ("link.py", "caps.py", "handlers.py", "v16.py", "v201.py", "server.py", "driver.py", "station.py")]
    assert [u for f in files for u in private_uses(f)] == []


async def test_a_late_answer_is_dropped_and_counted_and_the_session_goes_on(monkeypatch):
    monkeypatch.setattr(handlers, "CALL_TIMEOUT_S", 0.5)  # our request times out quickly
    async with site(make_config()) as (central, url):
        ws = await raw_session(url)
        try:
            await ws.send('[2, "b1", "BootNotification", {"chargePointVendor": "v", "chargePointModel": "m"}]')
            request = None
            while request is None:  # the central system's first request: leave it unanswered
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                request = frame if frame[0] == 2 else None
            await asyncio.sleep(1.0)  # past its timeout
            await ws.send(json.dumps([3, request[1], {"configurationKey": []}]))  # too late
            driver = central.drivers["cp1"]
            await until(lambda: driver.status().notes.get("dropped_responses") == "1")
            heartbeat = await exchange(ws, '[2, "h1", "Heartbeat", {}]')
            assert heartbeat[:2] == [3, "h1"]
            refused = await exchange(ws, '[2, "h2", "Heartbeat", {"surprise": 1}]')
            assert refused[:3] == [4, "h2", "FormationViolation"]  # 1.6 spelling
            assert driver.status().notes["bad_frames"] == "1"
        finally:
            await ws.close()


def test_what_both_versions_answer_alike_is_one_handler():
    from controller.chargers.ocpp.v16 import CentralCP16
    from controller.chargers.ocpp.v201 import CentralCP201
    for name in ("on_heartbeat", "on_meter_values", "on_data_transfer", "on_firmware_status", "on_security_event"):
        assert getattr(CentralCP16, name) is getattr(CentralCP201, name), name
    assert CentralCP16.on_heartbeat._on_action == "Heartbeat"
    assert CentralCP201.on_notify_report._on_action == "NotifyReport"
