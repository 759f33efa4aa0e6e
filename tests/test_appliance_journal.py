"""journald: structured fields from a real Controller through JournalHandler (with a capturing
sender instead of the journal), the rate limit, and when the journal is used at all."""

from __future__ import annotations

import asyncio
import logging
import os
import time

from controller.config import load_config
from controller.logs import RateLimit, journal_handler, under_systemd
from controller.runtime import Controller
from controller.sim.chargepoint import SimChargePoint, SimOptions
from controller.sim.meter_server import MeterServer

CONFIG = """
[site]
phases = 3
fuse_a = 25
[meter]
profile = "sdm630"
transport = "tcp"
host = "127.0.0.1"
port = {port}
poll_interval_s = 0.25
stale_after_s = 1.0
[ocpp]
listen = "127.0.0.1:0"
[[charger]]
id = "garage"
protocol = "ocpp"
phases = "ABC"
min_a = 6
max_a = 16
"""


async def until(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_limit_change_and_fault_reach_the_journal_as_fields(tmp_path):
    sent: list[dict] = []
    def capture(message, /, **fields):
        sent.append({"MESSAGE": message, **fields})

    handler = journal_handler(sender=capture)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    meter = MeterServer("sdm630")
    meter.set_all([5.0, 5.0, 5.0])
    port = await meter.start_tcp()
    path = tmp_path / "evfuse.toml"
    path.write_text(CONFIG.format(port=port))
    controller = Controller(load_config(str(path)))
    cp = None
    try:
        await controller.start("127.0.0.1", 0)
        cp = SimChargePoint("garage", f"ws://127.0.0.1:{controller.ocpp_port}/garage", SimOptions())
        await cp.start()
        await cp.plug_in()
        await until(lambda: any(e.get("CHARGER_ID") == "garage" and "LIMIT_A" in e for e in sent),
                    "a limit change")
        await meter.stop()  # the meter goes silent: after stale_after_s, a meter fault
        await until(lambda: any(e.get("FAULT") == "meter" for e in sent), "meter fault", 30)
    finally:
        if cp is not None:
            await cp.stop()
        await controller.stop()
        await meter.stop()
        root.removeHandler(handler)
        root.setLevel(old_level)

    change = next(e for e in sent if e.get("CHARGER_ID") == "garage" and "LIMIT_A" in e)
    assert {"REASON", "PRIORITY", "MESSAGE", "LOGGER"} <= change.keys()
    assert change["SYSLOG_IDENTIFIER"] == "evfuse" and change["PRIORITY"] == "6"
    assert "LIMIT_A=" not in change["MESSAGE"]  # fields travel as fields, not in the text
    fault = next(e for e in sent if e.get("FAULT") == "meter")
    assert fault["FAULT_STATE"] == "started" and fault["PRIORITY"] == "3"  # -p err finds it
    for e in sent:  # only valid journal field names go out
        assert all(k.isupper() for k in e), e.keys()


def test_a_flapping_fault_is_rate_limited_then_summarised():
    now = [0.0]
    limit = RateLimit(burst=5, window_s=60, clock=lambda: now[0])
    log = logging.getLogger("evfuse.test")

    def record(state: str) -> logging.LogRecord:
        r = log.makeRecord(log.name, logging.WARNING, __file__, 1, f"meter {state}", (), None)
        r.FAULT, r.FAULT_STATE = "meter", state
        return r

    passed = []
    for i in range(400):  # a fault that starts and ends 400 times within the window
        now[0] = i * 0.1
        r = record("started" if i % 2 == 0 else "ended")
        if limit.filter(r):
            passed.append(r)
    assert len(passed) == 5
    other = log.makeRecord(log.name, logging.INFO, __file__, 1, "garage: 6 -> 7 A", (), None)
    assert limit.filter(other)  # another kind is not held back
    now[0] = 100.0
    later = record("started")
    assert limit.filter(later)
    assert later.SUPPRESSED == 395 and "395 similar" in later.getMessage()


def test_journal_only_under_systemd(tmp_path):
    assert under_systemd({"INVOCATION_ID": "abc"})
    assert not under_systemd({})
    with open(tmp_path / "f", "w") as f:
        st = os.fstat(f.fileno())
        assert under_systemd({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stream=f)
        assert not under_systemd({"JOURNAL_STREAM": "1:2"}, stream=f)


def test_a_connector_reaches_the_journal_as_its_charger_and_its_connector():
    sent: list[dict] = []
    handler = journal_handler(sender=lambda message, /, **fields: sent.append(fields))
    log = logging.getLogger("evfuse.test.connector")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        log.info("twin/2: 6.0 -> 10.0 A", extra={"CHARGER_ID": "twin/2", "LIMIT_A": 10.0})
        log.info("garage: 6.0 -> 10.0 A", extra={"CHARGER_ID": "garage"})
    finally:
        log.removeHandler(handler)
    assert (sent[0]["CHARGER_ID"], sent[0]["CONNECTOR"]) == ("twin", 2)
    assert sent[1]["CHARGER_ID"] == "garage" and "CONNECTOR" not in sent[1]
