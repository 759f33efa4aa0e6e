"""The web page's controls (registered only with [web] password): the same commands as the
button and MQTT, through the same overrides (controller/overrides.py) and logged like them;
each refused with a 4xx and no change when the request is wrong.

  POST /api/pause                 {"paused": true | false}   the site pause from the web page
  POST /api/chargers/{id}/mode    {"mode": "solar-only"}     a charger's mode; null = the file's
"""

from __future__ import annotations

import logging

from aiohttp import web

from controller.overrides import SITE, OverrideError
from controller.web.auth import Auth, error, peer, read_json

log = logging.getLogger("evfuse.web")

SOURCE = "web"


def register_controls(app: web.Application, auth: Auth, get_controller) -> None:
    async def pause(request: web.Request) -> web.Response:
        await auth.require(request)
        body = await read_json(request, {"paused": bool})
        controller = get_controller()
        log.info("web page: %s requested from %s", "pause" if body["paused"] else "resume",
                 peer(request), extra={"WEB_PEER": peer(request)})
        controller.set_override(SITE, "pause", body["paused"], SOURCE)
        # A pause set elsewhere (the button) still holds after a resume here: say so.
        return web.json_response({"paused": controller.pause_reason})

    async def mode(request: web.Request) -> web.Response:
        await auth.require(request)
        charger_id = request.match_info["id"]
        controller = get_controller()
        if not any(c.id == charger_id for c in controller.config.chargers):
            raise error(web.HTTPNotFound, f'no charger "{charger_id}"')
        body = await read_json(request, {"mode": (str, type(None))})
        log.info("web page: %s mode %s requested from %s", charger_id, body["mode"] or "from the file",
                 peer(request), extra={"WEB_PEER": peer(request), "CHARGER_ID": charger_id})
        try:
            controller.set_override(charger_id, "mode", body["mode"], SOURCE)
        except OverrideError as e:
            raise error(web.HTTPBadRequest, str(e)) from None
        spec = next(c for c in controller.site.chargers if c.id == charger_id)
        return web.json_response({"id": charger_id, "mode": spec.mode,
                                  "override": controller.overrides.get(charger_id, {}).get("mode")})

    app.router.add_post("/api/pause", pause)
    app.router.add_post("/api/chargers/{id:.+}/mode", mode)  # ids may hold a "/"
