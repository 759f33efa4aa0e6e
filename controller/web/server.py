"""The web page, served by the running service on its own event loop (aiohttp).

    web = WebServer(get_controller, config.web, config.ocpp)
    port = await web.start()      # the sampler starts too: history from now on
    ...
    await web.stop()

Routes (every answer under /api/ that is an error is JSON {"error": "..."} with a 4xx code):
  GET  /                     the page (controller/web/static/), assets under /static/
  GET  /api/status           exactly `evfuse status --json` (controller/status.py snapshot)
  GET  /api/history          the last hours, binary (controller/web/history.py); ?seconds=N
  GET  /api/events           server-sent events: one update a second (status, sample, marks)
  GET  /api/session          {"controls": bool, "authorized": bool, "history_s": N, "modes": [...]}
With [web] password only (without it these routes do not exist: 404, or 405 for GET):
  POST /api/login            {"password": "..."} -> session cookie
  POST /api/logout
  POST /api/pause            {"paused": true | false}  (controller/web/controls.py)
  POST /api/chargers/ID/mode {"mode": "solar-only"}    (null: back to the file's mode)
Controls need the session cookie or HTTP basic auth with the password (any user name), a JSON
body (Content-Type: application/json, which a cross-site form cannot send) and, when the
browser sends an Origin, this very site as origin.

Every handler is short and never awaits the controller: the control loop shares this event
loop, and a page must never hold up a cycle (benchmarks/bench_web.py measures it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from importlib import resources

from aiohttp import web

from controller.config import MODES, OcppConfig, WebConfig
from controller.status import snapshot
from controller.web.auth import Auth
from controller.web.controls import register_controls
from controller.web.history import History
from controller.web.live import Hub, Sampler

log = logging.getLogger("evfuse.web")

MAX_BODY_BYTES = 4096  # the largest control request is a few dozen bytes
MAX_EVENT_CLIENTS = 16
WRITE_TIMEOUT_S = 15.0  # a page that takes longer to accept one update is dropped
SHUTDOWN_S = 2.0
STATIC = {"index.html": "text/html", "app.js": "text/javascript", "app.css": "text/css"}
HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Everything comes from this server: no CDN, no inline script, no framing.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
}


def tls_context(ocpp: OcppConfig) -> ssl.SSLContext | None:
    """https with the OCPP server's certificate and key, when it has them."""
    if not ocpp.tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(ocpp.tls_cert, ocpp.tls_key)
    return context


def _assets() -> dict[str, bytes]:
    folder = resources.files("controller.web") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC}


@web.middleware
async def _errors_as_json(request: web.Request, handler):
    """aiohttp's own 404/405/413 answers become JSON like ours under /api/."""
    try:
        response = await handler(request)
    except web.HTTPException as e:
        if e.status < 400 or not request.path.startswith("/api/") or e.content_type == "application/json":
            raise
        allow = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
        response = web.json_response({"error": e.reason}, status=e.status, headers=allow)
    if not response.prepared:
        for key, value in HEADERS.items():
            response.headers.setdefault(key, value)
    return response


class WebServer:
    def __init__(self, get_controller, config: WebConfig, ocpp: OcppConfig,
                 get_slow_mode=lambda: False, history: History | None = None):
        self.get_controller = get_controller
        self.get_slow_mode = get_slow_mode
        self.config, self.ocpp = config, ocpp
        self.history = history or History()
        self.hub = Hub(MAX_EVENT_CLIENTS)
        self.sampler = Sampler(get_controller, self.history, self.hub, get_slow_mode)
        self.assets = _assets()
        self.auth: Auth | None = None
        self.url: str | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ life cycle

    async def start(self, host: str | None = None, port: int | None = None) -> int:
        """Listen on [web] listen (or the given host/port; 0 = any free port). Returns the port.
        Raises OSError when the address cannot be had."""
        host = self.config.host if host is None else host
        port = self.config.port if port is None else port
        context = tls_context(self.ocpp)
        self.auth = Auth(self.config.password, secure_cookie=context is not None) \
            if self.config.password else None
        app = self._app()
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                    reuse_port=False)
        sock.setblocking(False)
        bound = sock.getsockname()[1]
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_S)
        await self._runner.setup()
        await web.SockSite(self._runner, sock, ssl_context=context).start()
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"{'https' if context else 'http'}://{shown}:{bound}/"
        self.sampler.start()
        log.info("web page at %s (bound to %s:%s, %s)", self.url, host, bound,
                 "controls with the password" if self.auth else "read-only: no password set",
                 extra={"WEB_LISTEN": f"{host}:{bound}", "TLS": context is not None})
        return bound

    async def stop(self) -> None:
        await self.sampler.stop()
        self.hub.publish(None)  # every event stream ends, so shutdown does not wait for them
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def reconfigure(self, config: WebConfig, ocpp: OcppConfig) -> None:
        """A reload with other [web] settings (or another certificate) restarts the listener;
        the history stays."""
        if (config, ocpp.tls_cert, ocpp.tls_key) == (self.config, self.ocpp.tls_cert, self.ocpp.tls_key):
            return
        await self.stop()
        self.config, self.ocpp = config, ocpp
        await self.start()

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_errors_as_json])
        app.router.add_get("/", self._page)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/history", self._history)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/session", self._session)
        if self.auth is not None:
            self.auth.register(app)
            register_controls(app, self.auth, self.get_controller)
        return app

    # ------------------------------------------------------------------ read-only routes

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=self.assets["index.html"], content_type="text/html", charset="utf-8")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC or name == "index.html":
            raise web.HTTPNotFound(reason=f"no such file: {name}")
        return web.Response(body=self.assets[name], content_type=STATIC[name], charset="utf-8")

    async def _status(self, request: web.Request) -> web.Response:
        snap = snapshot(self.get_controller(), self.get_slow_mode())
        return web.Response(text=json.dumps(snap), content_type="application/json")

    async def _history(self, request: web.Request) -> web.Response:
        seconds = None
        unknown = set(request.query) - {"seconds"}
        if unknown:
            return _bad(f"unknown parameter {sorted(unknown)[0]!r}; allowed: seconds")
        if "seconds" in request.query:
            raw = request.query["seconds"]
            if not raw.isdigit() or not 1 <= int(raw) <= self.history.capacity:
                return _bad(f"seconds must be a whole number from 1 to {self.history.capacity}")
            seconds = int(raw)
        return web.Response(body=self.history.export(seconds), content_type="application/octet-stream")

    async def _session(self, request: web.Request) -> web.Response:
        return web.json_response({
            "controls": self.auth is not None,
            "authorized": self.auth is not None and self.auth.session_ok(request),
            "history_s": self.history.capacity,
            "modes": list(MODES) if self.auth is not None else [],
        })

    async def _events(self, request: web.Request) -> web.StreamResponse:
        queue = self.hub.subscribe()
        if queue is None:
            return web.json_response({"error": f"too many live pages open (at most {MAX_EVENT_CLIENTS})"},
                                     status=503)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-cache", **HEADERS})
        try:
            await response.prepare(request)
            await response.write(b"retry: 2000\n\n")
            if self.hub.latest is not None:
                await response.write(b"data: " + self.hub.latest + b"\n\n")
            while (payload := await queue.get()) is not None:
                await asyncio.wait_for(response.write(b"data: " + payload + b"\n\n"), WRITE_TIMEOUT_S)
        except (ConnectionError, asyncio.TimeoutError):
            pass  # the page went away (or stalled): its queue goes with it
        finally:
            self.hub.unsubscribe(queue)
        return response


def _bad(text: str) -> web.Response:
    return web.json_response({"error": text}, status=400)

