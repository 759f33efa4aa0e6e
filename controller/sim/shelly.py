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

With `password` set it asks for authentication as a Gen2 device with auth enabled does: every
request but Shelly.GetDeviceInfo gets HTTP 401 with a `WWW-Authenticate: Digest` challenge
(SHA-256, qop "auth", realm = the device id, user "admin", RFC 7616) unless it carries a valid
response to a nonce it issued; `auth_failures` counts the refused ones.

The device's own clock runs the timer: `toggle_after` flips the output back when it ends
whether or not anyone asks (checked on every request and by a small background task), so a
killed controller's lease really ends. `draw_a()` is what the load draws now (0 when off):
add it to a LiveSite's extra loads so the simulated meter sees it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import time

from aiohttp import web

VOLTS = 230.0
TICK_S = 0.05
DEVICE_ID = "shellyplus1pm-sim"
UNPROTECTED = ("Shelly.GetDeviceInfo",)


class SimShelly:
    def __init__(self, power_w: float = 3000.0, switches: int = 1, measures: bool = True,
                 clock=time.monotonic, password: str | None = None):
        self.password = password  # None: authentication off
        self.nonces: set[str] = set()  # issued in challenges
        self.auth_failures = 0
        self.power_w = power_w  # what the load draws when the relay is on
        self.measures = measures  # a PM model reports apower/current; a plain relay does not
        self.clock = clock
        self.output = [False] * switches
        self.timer_until: list[float | None] = [None] * switches
        self.timer_started: list[float | None] = [None] * switches
        self.calls: list[tuple[str, dict]] = []  # every RPC call, for tests
        self.switched: list[tuple[float, int, bool, str]] = []  # (clock, id, output, "set" | "timer"): every change
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
                self.switched.append((now, i, self.output[i], "timer"))

    def offs(self, switch_id: int = 0, since: float = float("-inf")) -> int:
        """How many times the output went off (by a Switch.Set or its own timer) since `since`."""
        return sum(1 for t, i, on, _ in self.switched if i == switch_id and not on and t >= since)

    def call(self, method: str, params: dict) -> dict:
        """One RPC call; raises RpcError for what a device refuses."""
        self.calls.append((method, dict(params)))
        self._run_timers()
        if method == "Shelly.GetDeviceInfo":
            return {"id": DEVICE_ID, "model": "SNSW-001P16EU", "gen": 2, "app": "Plus1PM",
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
            if on != was:
                self.switched.append((self.clock(), sid, on, "set"))
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

    # ------------------------------------------------------------------ authentication

    def _challenge(self) -> web.Response:
        nonce = secrets.token_hex(8)
        self.nonces.add(nonce)
        header = f'Digest qop="auth", realm="{DEVICE_ID}", nonce="{nonce}", algorithm=SHA-256'
        return web.json_response({"code": 401, "message": "unauthorized"}, status=401,
                                 headers={"WWW-Authenticate": header})

    def _authorised(self, request: web.Request, method: str) -> bool:
        if self.password is None or method in UNPROTECTED:
            return True
        header = request.headers.get("Authorization", "")
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "digest":
            return False
        fields = _digest_fields(rest)
        nonce, uri = fields.get("nonce", ""), fields.get("uri", "")
        if nonce not in self.nonces or fields.get("username") != "admin" or fields.get("realm") != DEVICE_ID \
                or fields.get("qop") != "auth" or fields.get("algorithm", "").upper() != "SHA-256" \
                or uri != request.path_qs:
            self.auth_failures += 1
            return False
        ha1 = _sha256(f"admin:{DEVICE_ID}:{self.password}")
        ha2 = _sha256(f"{request.method}:{uri}")
        expected = _sha256(f"{ha1}:{nonce}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:auth:{ha2}")
        if not secrets.compare_digest(expected, fields.get("response", "")):
            self.auth_failures += 1
            return False
        return True

    # ------------------------------------------------------------------ HTTP

    async def _get(self, request: web.Request) -> web.Response:
        if self.offline:
            return web.Response(status=503)
        if not self._authorised(request, request.match_info["method"]):
            return self._challenge()
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
            return web.json_response({"id": None, "src": DEVICE_ID,
                                      "error": {"code": -32700, "message": "bad request"}}, status=400)
        if not self._authorised(request, method):
            return self._challenge()
        try:
            result = self.call(method, params)
        except RpcError as e:
            return web.json_response({"id": rid, "src": DEVICE_ID,
                                      "error": {"code": e.code, "message": e.message}})
        return web.json_response({"id": rid, "src": DEVICE_ID, "result": result})


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _digest_fields(text: str) -> dict[str, str]:
    """key=value and key="value" pairs of an Authorization: Digest header."""
    return {k: quoted or bare for k, quoted, bare in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', text)}


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
