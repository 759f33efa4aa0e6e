"""A Shelly Gen2+ switch (Plus 1PM, Plus Plug S, Pro 1PM/2PM/4PM, ...) over its local RPC over
HTTP: no cloud, no account (DESIGN.md section 5).

- on:  GET /rpc/Switch.Set?id=N&on=true&toggle_after=LEASE: the device switches itself off
       LEASE seconds later unless renewed; the driver renews every third of it, so a dead
       evfuse (or Pi, or network) leaves the load off within LEASE seconds.
- off: GET /rpc/Switch.Set?id=N&on=false, never with toggle_after (it would flip back on).
- GET /rpc/Switch.GetStatus?id=N: output, and apower / current on models that measure.
- With `password` set: the device's own authentication (Gen2 "Authentication": HTTP digest,
  SHA-256, user "admin", realm the device id), answered by aiohttp's DigestAuthMiddleware on
  the device's 401 challenge and its nonce reused while the device takes it. A wrong password
  (a 401 after the answer) is a link fault that says "authentication failed": the load counts
  as unreachable, what the core assumes of any load it cannot talk to.
"""

from __future__ import annotations

import asyncio

import aiohttp

from controller.config import LoadConfig
from controller.loads.base import LinkError, SwitchDriver

REQUEST_TIMEOUT_S = 2.0


class ShellySwitch(SwitchDriver):
    protocol = "shelly"

    def __init__(self, config: LoadConfig, voltage_v: float, **kw):
        super().__init__(config, voltage_v, **kw)
        self.lease_s = config.lease_s
        self.base = f"http://{config.host}:{config.port}/rpc/"
        self._session: aiohttp.ClientSession | None = None

    async def _open(self) -> None:
        auth = (aiohttp.DigestAuthMiddleware("admin", self.config.password),) if self.config.password else ()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
                                              middlewares=auth)

    async def _shut(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _rpc(self, method: str, **params) -> dict:
        if self._session is None or self._session.closed:
            raise LinkError("not started")
        query = {k: ("true" if v is True else "false" if v is False else str(v)) for k, v in params.items()}
        try:
            async with self._session.get(self.base + method, params=query) as reply:
                if reply.status == 401:
                    raise LinkError(f"the Shelly at {self.config.host}:{self.config.port}: authentication failed "
                                    + ("(check the load's password)" if self.config.password else
                                       "(it has authentication on: set the load's password)"))
                body = await reply.json(content_type=None)
                if reply.status != 200:
                    message = body.get("message", "") if isinstance(body, dict) else ""
                    raise LinkError(f"{self.config.host} refused {method}: HTTP {reply.status} {message}".strip())
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
            raise LinkError(f"no answer from the Shelly at {self.config.host}:{self.config.port} "
                            f"({type(e).__name__})") from None
        if not isinstance(body, dict):
            raise LinkError(f"{self.config.host} answered {method} with something that is not an object")
        return body

    async def _write(self, on: bool, lease_s: float | None = None) -> None:
        if on:
            lease = max(1, int(lease_s or self.lease_s))
            await self._rpc("Switch.Set", id=self.config.switch_id, on=True, toggle_after=lease)
        else:
            await self._rpc("Switch.Set", id=self.config.switch_id, on=False)

    async def _read(self) -> tuple[bool, float | None, float | None]:
        status = await self._rpc("Switch.GetStatus", id=self.config.switch_id)
        output = status.get("output")
        if not isinstance(output, bool):
            self.faults["bad-data"] += 1
            raise LinkError(f"{self.config.host} reported no output state")
        return output, _number(status.get("apower")), _number(status.get("current"))


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
