"""CentralSystem: the websockets server OCPP chargers connect to, one OcppCharger per
configured [[charger]] with protocol = "ocpp".

Who may connect is decided at the HTTP handshake, before any OCPP frame: the charge point id
(last path segment, percent-decoded, query stripped) must be configured, a charger with a
password must send it with HTTP basic auth (security profile 1; user = its id), and it must
offer ocpp1.6 or ocpp2.0.1. With tls_cert/tls_key the server speaks wss:// (profile 2).

Typical use by the runtime:

    central = CentralSystem(config)
    port = await central.start()
    driver = central.drivers["garage"]      # an OcppCharger (a ChargerDriver)
    ...
    await driver.close(config.control.fallback_a)
    await central.stop()

A reload changes the central system piece by piece (Controller.retune): `add` a charger
(it may connect at once), `remove` and `retire` one (its id refused from then on, left at its
fallback, its link closed), `retune` the settings (every link re-initialised) or `restart` the listener;
the links of the other chargers are not touched.
"""

from __future__ import annotations

import asyncio
import hmac
import http
import logging
import ssl
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader
from websockets.headers import build_www_authenticate_basic, parse_authorization_basic, parse_subprotocol

from controller.chargers.ocpp.driver import OcppCharger, OcppSettings
from controller.chargers.ocpp.link import Link
from controller.chargers.ocpp.station import Station
from controller.chargers.ocpp.v16 import CentralCP16
from controller.chargers.ocpp.v201 import CentralCP201
from controller.config import ChargerConfig, Config

log = logging.getLogger("controller.chargers.ocpp")

SUBPROTOCOLS = {"ocpp1.6": CentralCP16, "ocpp2.0.1": CentralCP201}
MAX_FRAME_BYTES = 256 * 1024  # far above any OCPP message we ask for; bigger frames close the link
PING_INTERVAL_S = 30.0  # websocket pings find half-open links long before the lease ends
PING_TIMEOUT_S = 30.0
OPEN_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0


def charge_point_id(path: str) -> str:
    """Last path segment, percent-decoded, without query string: "/ocpp/my%20cp?x=1" -> "my cp"."""
    return unquote(urlsplit(path).path.rstrip("/").rpartition("/")[2])


def offered_subprotocols(headers: Headers) -> list[str]:
    offered: list[str] = []
    for value in headers.get_all("Sec-WebSocket-Protocol"):
        try:
            offered.extend(parse_subprotocol(value))
        except InvalidHeader:
            pass
    return offered


class CentralSystem:
    def __init__(self, config: Config, clock=None):
        self.config = config
        self.clock = clock
        self.settings = OcppSettings(ocpp=config.ocpp, control=config.control,
                                     voltage_v=config.site.voltage_v, grid=config.site.grid)
        self.drivers: dict[str, OcppCharger] = {}  # by load id: a charger, or "twin/2"
        self.stations: dict[str, Station] = {}  # by OCPP identity
        for c in config.chargers:
            if c.protocol == "ocpp":
                self.add(c)
        self._server = None
        self._closing: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ reload, piece by piece

    def add(self, charger: ChargerConfig) -> OcppCharger:
        """A new charger (or connector): its identity is accepted from now on."""
        station = self.stations.get(charger.station)
        if station is None:
            station = self.stations[charger.station] = Station(charger.station, self.settings, self.clock)
        driver = self.drivers[charger.id] = OcppCharger(charger, station)
        station.add(driver)
        return driver

    def remove(self, charger_id: str) -> OcppCharger:
        """Forget a charger (or connector): a charger with none left is refused from now on.
        The caller retires the driver."""
        driver = self.drivers.pop(charger_id)
        station = driver.station  # keeps its connectors until they are retired
        if self.stations.get(station.id) is station and \
                not any(d.station is station for d in self.drivers.values()):
            del self.stations[station.id]  # re-added (relinked): a new station, a new link
        return driver

    @staticmethod
    async def retire(driver: OcppCharger, fallback_a: float | None) -> None:
        """Leave a removed driver's charger at fallback_a (bounded), then close its link once
        no connector of that charger is kept."""
        await driver.close(fallback_a)
        if driver.link is not None and driver.station.closed:
            await driver.link.connection.close(1000, "removed from the evfuse configuration")

    def retune(self, config: Config) -> None:
        """New [ocpp] settings, fallback or voltage: each charger's link is closed, so the
        charger reconnects and is initialised with them (its fallback profile included)."""
        self.config = config
        self.settings = OcppSettings(ocpp=config.ocpp, control=config.control,
                                     voltage_v=config.site.voltage_v, grid=config.site.grid)
        for station in self.stations.values():
            station.settings = self.settings
            for driver in station.loads():
                driver.retune_watch()
            if station.link is not None:
                self._close_in_background(station.link.connection, "evfuse settings changed")

    async def restart(self, config: Config) -> int:
        """A new listen address or TLS: the server is made anew on it (every link drops)."""
        await self.stop()
        self.retune(config)
        return await self.start()

    def _close_in_background(self, connection, why: str) -> None:
        # a dead peer would hold us up for the close timeout
        task = asyncio.create_task(connection.close(1000, why))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def start(self, host: str | None = None, port: int | None = None) -> int:
        """Listen on [ocpp] listen (or the given host/port; port 0 = any free one).
        Returns the bound port."""
        host = self.config.ocpp.host if host is None else host
        port = self.config.ocpp.port if port is None else port
        self._server = await serve(
            self._serve, host, port,
            subprotocols=list(SUBPROTOCOLS),
            process_request=self._check_handshake,
            max_size=MAX_FRAME_BYTES,
            ping_interval=PING_INTERVAL_S, ping_timeout=PING_TIMEOUT_S,
            open_timeout=OPEN_TIMEOUT_S, close_timeout=CLOSE_TIMEOUT_S,
            compression=None,  # small frames; deflate costs CPU on a Pi for nothing
            ssl=self._tls(),
        )
        bound = self._server.sockets[0].getsockname()[1]
        log.info("OCPP central system listening on %s:%s", host, bound,
                 extra={"LISTEN": f"{host}:{bound}", "TLS": bool(self.config.ocpp.tls_cert)})
        return bound

    async def stop(self) -> None:
        """Close every connection and the listening socket. Chargers keep their profiles and
        fall back to control.fallback_a by themselves when the lease ends."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _tls(self) -> ssl.SSLContext | None:
        if not self.config.ocpp.tls_cert:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.config.ocpp.tls_cert, self.config.ocpp.tls_key)
        return context

    def _check_handshake(self, connection: ServerConnection, request):
        cp_id = charge_point_id(request.path)
        driver = self.stations.get(cp_id)
        peer = connection.remote_address[0] if connection.remote_address else "?"
        if driver is None:
            return self._refuse(connection, http.HTTPStatus.NOT_FOUND, "unknown charge point id",
                                cp_id, peer)
        password = driver.config.password
        if password:
            try:
                user, given = parse_authorization_basic(request.headers["Authorization"])
            except (KeyError, InvalidHeader):
                user, given = "", ""
            ok = hmac.compare_digest(user.encode(errors="surrogateescape"), cp_id.encode()) and \
                hmac.compare_digest(given.encode(errors="surrogateescape"), password.encode())
            if not ok:
                response = self._refuse(connection, http.HTTPStatus.UNAUTHORIZED,
                                        "missing or wrong password", cp_id, peer)
                response.headers["WWW-Authenticate"] = build_www_authenticate_basic("evfuse")
                return response
        if not set(offered_subprotocols(request.headers)) & set(SUBPROTOCOLS):
            return self._refuse(connection, http.HTTPStatus.BAD_REQUEST,
                                "no supported subprotocol (ocpp1.6, ocpp2.0.1) offered", cp_id, peer)
        return None

    @staticmethod
    def _refuse(connection, status, why: str, cp_id: str, peer: str):
        log.warning("refused charge point %r from %s: %s", cp_id, peer, why,
                    extra={"CHARGER_ID": cp_id, "PEER": peer, "REASON": why})
        return connection.respond(status, why + "\n")

    async def _serve(self, connection: ServerConnection) -> None:
        driver = self.stations[charge_point_id(connection.request.path)]
        old = driver.link
        if old is not None:  # the charger reconnected while its old link looked alive
            self._close_in_background(old.connection, "replaced by a new connection")
        await Link(driver, connection, SUBPROTOCOLS[connection.subprotocol]).run()
