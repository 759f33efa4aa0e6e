"""Who may press the web page's controls: whoever knows [web] password.

The page logs in with POST /api/login and gets a session cookie (HttpOnly, SameSite=Strict,
Secure under https); scripts may send HTTP basic auth with the password instead (any user
name). Passwords are compared in constant time, and a wrong one is answered only after a
second, one guess at a time for the whole server, so guessing over the network is slow; more
than a few guesses waiting at once are refused (429) instead of queued.
Sessions live in memory: a restart logs everyone out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time

from aiohttp import web

log = logging.getLogger("evfuse.web")

COOKIE = "evfuse_session"
SESSION_S = 12 * 3600
MAX_SESSIONS = 32
WRONG_PASSWORD_DELAY_S = 1.0
MAX_QUEUED_GUESSES = 8


def error(kind: type[web.HTTPException], text: str, **kwargs) -> web.HTTPException:
    return kind(text=json.dumps({"error": text}), content_type="application/json", **kwargs)


def _kind(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)


async def read_json(request: web.Request, fields: dict[str, type | tuple[type, ...]]) -> dict:
    """The request's JSON object with exactly these fields of these types, else a 4xx that
    says what was wrong. Also the cross-site guard: only JSON, only from this site."""
    if request.content_type != "application/json":
        raise error(web.HTTPUnsupportedMediaType, "send JSON with Content-Type: application/json")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise error(web.HTTPForbidden, f"requests from {origin} are not accepted")
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        raise error(web.HTTPBadRequest, "the body is not valid JSON") from None
    shape = ", ".join(f'"{k}": {_kind(t)}' for k, t in fields.items())
    if not isinstance(body, dict) or set(body) != set(fields):
        raise error(web.HTTPBadRequest, f"expected a JSON object {{{shape}}}")
    for key, kind in fields.items():
        value = body[key]
        bools = kind is bool or isinstance(kind, tuple) and bool in kind
        if not isinstance(value, kind) or (isinstance(value, bool) and not bools):
            raise error(web.HTTPBadRequest, f'"{key}" must be {_kind(kind)}; expected {{{shape}}}')
    return body


def basic_auth_password(header: str) -> str | None:
    """The password of an `Authorization: Basic base64(user:password)` header, else None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return password if colon else None


def peer(request: web.Request) -> str:
    return request.remote or "?"


class Auth:
    def __init__(self, password: str, secure_cookie: bool = False, clock=time.monotonic):
        self._digest = hashlib.sha256(password.encode()).digest()
        self.secure_cookie = secure_cookie
        self.clock = clock
        self._sessions: dict[str, float] = {}  # token -> expiry
        self._guess = asyncio.Lock()
        self._queued = 0

    def register(self, app: web.Application) -> None:
        app.router.add_post("/api/login", self._login)
        app.router.add_post("/api/logout", self._logout)

    # ------------------------------------------------------------------ checks

    async def _check(self, password: str, request: web.Request) -> bool:
        given = hashlib.sha256(password.encode()).digest()
        if self._queued >= MAX_QUEUED_GUESSES:  # a flood of guesses must not lock the owner out for long
            raise error(web.HTTPTooManyRequests, "too many password attempts at once; try again in a minute")
        self._queued += 1
        try:
            return await self._check_one(given, request)
        finally:
            self._queued -= 1

    async def _check_one(self, given: bytes, request: web.Request) -> bool:
        async with self._guess:
            if hmac.compare_digest(given, self._digest):
                return True
            log.warning("web page: wrong password from %s", peer(request),
                        extra={"WEB_PEER": peer(request)})
            await asyncio.sleep(WRONG_PASSWORD_DELAY_S)
            return False

    def session_ok(self, request: web.Request) -> bool:
        token = request.cookies.get(COOKIE, "")
        expires = self._sessions.get(token)
        if expires is None:
            return False
        if expires < self.clock():
            del self._sessions[token]
            return False
        return True

    async def require(self, request: web.Request) -> None:
        """Raises 401 unless the request carries a live session or the right basic auth."""
        if self.session_ok(request):
            return
        header = request.headers.get("Authorization", "")
        if header:
            given = basic_auth_password(header)
            if given is None:
                raise error(web.HTTPBadRequest, "Authorization header is not HTTP basic auth") from None
            if await self._check(given, request):
                return
            raise error(web.HTTPUnauthorized, "wrong password")
        raise error(web.HTTPUnauthorized, "log in first (POST /api/login), or use HTTP basic auth")

    # ------------------------------------------------------------------ routes

    async def _login(self, request: web.Request) -> web.Response:
        body = await read_json(request, {"password": str})
        if not await self._check(body["password"], request):
            raise error(web.HTTPUnauthorized, "wrong password")
        now = self.clock()
        self._sessions = {t: e for t, e in self._sessions.items() if e >= now}
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[min(self._sessions, key=self._sessions.get)]
        token = secrets.token_urlsafe(32)
        self._sessions[token] = now + SESSION_S
        log.info("web page: logged in from %s", peer(request), extra={"WEB_PEER": peer(request)})
        response = web.json_response({"authorized": True})
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=self.secure_cookie,
                            path="/", max_age=SESSION_S)
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        await read_json(request, {})
        self._sessions.pop(request.cookies.get(COOKIE, ""), None)
        response = web.json_response({"authorized": False})
        response.del_cookie(COOKIE, path="/")
        return response
