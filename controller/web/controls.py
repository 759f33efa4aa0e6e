"""The web page's controls (registered only with [web] password): the same commands as the
button, logged like it, each refused with a 4xx and no change when the request is wrong."""

from __future__ import annotations

import logging

from aiohttp import web

from controller.web.auth import Auth, peer, read_json

log = logging.getLogger("evfuse.web")

PAUSE_REASON = "paused on the web page"


def register_controls(app: web.Application, auth: Auth, get_controller) -> None:
    async def pause(request: web.Request) -> web.Response:
        await auth.require(request)
        body = await read_json(request, {"paused": bool})
        controller = get_controller()
        log.info("web page: %s requested from %s", "pause" if body["paused"] else "resume",
                 peer(request), extra={"WEB_PEER": peer(request)})
        controller.set_user_pause(PAUSE_REASON if body["paused"] else None)
        return web.json_response({"paused": controller.user_pause})

    app.router.add_post("/api/pause", pause)
