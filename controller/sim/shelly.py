"""A Shelly Gen2+ switch on loopback (aiohttp): what the shelly load driver's tests, the
end-to-end tests and `evfuse demo` talk to.

It speaks the local RPC over HTTP both ways a Gen2 device does:
- GET  /rpc/Switch.Set?id=0&on=true&toggle_after=30   -> the result object as JSON
- POST /rpc  {"id": 1, "method": "Switch.Set", "params": {...}}
                                                      -> {"id": 1, "src": ..., "result": {...}}
Methods: Switch.Set (on, toggle_after: the flip-back timer the device runs by itself),
Switch.GetStatus (output, apower, voltage, current, timer fields while a timer runs),
Shelly.GetDeviceInfo. Errors come back as {"code": ..., "message": ...} (HTTP 400/404 on GET,
"error" in the JSON-RPC reply on POST).

The device's own clock runs the timer: `toggle_after` flips the output back when it ends
whether or not anyone asks (checked on every request and by a small background task), so a
killed controller's lease really ends. `draw_a()` is what the load draws now (0 when off):
add it to a LiveSite's extra loads so the simulated meter sees it.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

VOLTS = 230.0
TICK_S = 0.05


class SimShelly:
    def __init__(self, power_w: float = 3000.0, switches: int = 1, measures: bool = True,
                 clock=time.monotonic):
        self.power_w = power_w  # what the load draws when the relay is on
        self.measures = measures  # a PM model reports apower/current; a plain relay does not
        self.clock = clock
        self.output = [False] * switches
        self.timer_until: list[float | None] = [None] * switches
        self.timer_started: list[float | None] = [None] * switches
        self.calls: list[tuple[str, dict]] = []  # every RPC call, for tests
        self.offline = False  # answer nothing (HTTP 503), as a device off the network would
        self.load_wants = True  # False: the load's own thermostat is open (draws nothing)
        self.refuse: set[str] = set()  # methods answered with an error (a device that refuses them)
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task | None = None

    # ------------------------------------------------------------------ life cycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        app = web.Application()
        app.router.add_get("/rpc/{method}", self._get)
        app.router.add_post("/rpc", self._post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick_forever(), name="sim shelly timer")
        return self.port

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self._run_timers()

    # ------------------------------------------------------------------ the device

    def is_on(self, switch_id: int = 0) -> bool:
        self._run_timers()
        return self.output[switch_id]

    def draw_a(self, switch_id: int = 0) -> float:
        return self.power_w / VOLTS if self.is_on(switch_id) and self.load_wants else 0.0

    def _run_timers(self) -> None:
        now = self.clock()
        for i, until in enumerate(self.timer_until):
            if until is not None and now >= until:
                self.output[i] = not self.output[i]
                self.timer_until[i] = self.timer_started[i] = None

    def call(self, method: str, params: dict) -> dict:
        """One RPC call; raises RpcError for what a device refuses."""
        self.calls.append((method, dict(params)))
        self._run_timers()
        if method == "Shelly.GetDeviceInfo":
            return {"id": "shellyplus1pm-sim", "model": "SNSW-001P16EU", "gen": 2, "app": "Plus1PM",
                    "ver": "1.0.0-sim"}
        if method in self.refuse:
            raise RpcError(500, -108, f"Method {method} failed: refused")
        sid = _int(params.get("id", 0), "id")
        if not 0 <= sid < len(self.output):
            raise RpcError(404, -105, f"Argument 'id', value {sid} not found!")
        if method == "Switch.Set":
            if "on" not in params:
                raise RpcError(400, -103, "Missing required argument 'on'!")
            on = _bool(params["on"], "on")
            was = self.output[sid]
            self.output[sid] = on
            self.timer_until[sid] = self.timer_started[sid] = None
            if params.get("toggle_after") is not None:
                after = _float(params["toggle_after"], "toggle_after")
                if after <= 0:
                    raise RpcError(400, -103, "Argument 'toggle_after' must be positive!")
                now = self.clock()
                self.timer_started[sid], self.timer_until[sid] = now, now + after
            return {"was_on": was}
        if method == "Switch.GetStatus":
            on = self.output[sid]
            status = {"id": sid, "source": "HTTP", "output": on}
            if self.measures:
                amps = self.power_w / VOLTS if on and self.load_wants else 0.0
                status.update(apower=round(amps * VOLTS, 1), voltage=VOLTS, current=round(amps, 3))
            if self.timer_until[sid] is not None:
                status.update(timer_started_at=time.time() - (self.clock() - self.timer_started[sid]),
                              timer_duration=self.timer_until[sid] - self.timer_started[sid])
            return status
        raise RpcError(404, -114, f"Method {method} failed: No handler!")

    # ------------------------------------------------------------------ HTTP

    async def _get(self, request: web.Request) -> web.Response:
        if self.offline:
            return web.Response(status=503)
        try:
            result = self.call(request.match_info["method"], dict(request.query))
        except RpcError as e:
            return web.json_response({"code": e.code, "message": e.message}, status=e.status)
        return web.json_response(result)

    async def _post(self, request: web.Request) -> web.Response:
        if self.offline:
            return web.Response(status=503)
        try:
            body = json.loads(await request.text())
            method, params, rid = body["method"], body.get("params") or {}, body.get("id")
        except (ValueError, KeyError, TypeError):
            return web.json_response({"id": None, "src": "shellyplus1pm-sim",
                                      "error": {"code": -32700, "message": "bad request"}}, status=400)
        try:
            result = self.call(method, params)
        except RpcError as e:
            return web.json_response({"id": rid, "src": "shellyplus1pm-sim",
                                      "error": {"code": e.code, "message": e.message}})
        return web.json_response({"id": rid, "src": "shellyplus1pm-sim", "result": result})


class RpcError(Exception):
    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise RpcError(400, -103, f"Argument '{name}', expected bool!")


def _int(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise RpcError(400, -103, f"Argument '{name}', expected number!") from None


def _float(value, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise RpcError(400, -103, f"Argument '{name}', expected number!") from None
