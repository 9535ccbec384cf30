"""The app's own HTTP guards: same-origin writes, session expiry and revocation, and login throttling.

Gradio keeps logins as random tokens in a dict (``App.tokens``) and checks nothing else: a token
lives until the process ends, survives the removal of its user, and any number of wrong passwords
may be tried. One ASGI middleware on the parent app (so it also covers routes other front ends add)
adds what is missing; the checks themselves live in small classes that tests call with plain values.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlencode

import anyio
from gradio.route_utils import FnIndexInferError
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webui.auth import User
from webui.config import MAX_REQUEST_BODY_BYTES, Settings
from webui.errors import UserError
from webui.services.api_access import bearer_token
from webui.web.hosts import HostAllowList, origin_allowed, refused_host_message
from webui.ui.app import LOGIN_WORDS
from webui.ui.uploads import UploadOwners, upload_root

log = logging.getLogger(__name__)

STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What Gradio raises on a request whose event index or data does not fit the app (client mistakes).
CLIENT_DATA_ERRORS = (KeyError, IndexError, ValueError, TypeError, AttributeError, FnIndexInferError)
ADDRESS_FAILURE_FACTOR = 5  # an address (possibly shared by a team behind NAT) gets more tries than a name
MAX_LOGIN_BODY = 64 * 1024
CROSS_SITE_REFUSED = "Refused: this request came from another web site."
# What Gradio's login page itself asks for under /gradio_api before anyone has signed in; every other
# /gradio_api route answers 401 to a visitor who is not signed in (team mode).
PRE_LOGIN_PATHS = frozenset({"/gradio_api/theme.css", "/gradio_api/startup-events"})


class LoginLocked(UserError):
    """Too many wrong passwords for a name or from an address; str() is the sentence to show."""

    def __init__(self, seconds_left: float) -> None:
        self.seconds_left = seconds_left
        minutes = max(1, round(seconds_left / 60))
        super().__init__(
            f"Too many failed logins: signing in is paused for this account or address. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        )


@dataclass(frozen=True)
class SecurityPolicy:
    """The numbers behind the guards, from Settings."""

    hosts: HostAllowList = field(default_factory=lambda: HostAllowList(names=frozenset({"127.0.0.1", "localhost", "::1"})))
    cors_origins: tuple[str, ...] = ()
    session_idle_seconds: float = 12 * 3600
    session_max_seconds: float = 7 * 86400
    max_failures: int = 10
    lockout_seconds: float = 15 * 60

    @classmethod
    def from_settings(cls, settings: Settings) -> SecurityPolicy:
        return cls(
            hosts=HostAllowList.for_settings(settings),
            cors_origins=tuple(settings.cors_origins),
            session_idle_seconds=settings.session_idle_hours * 3600,
            session_max_seconds=settings.session_max_days * 86400,
            max_failures=max(1, settings.login_max_failures),
            lockout_seconds=settings.login_lockout_minutes * 60,
        )


# -- login throttling ---------------------------------------------------------------------------


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class LoginThrottle:
    """Wrong passwords counted per user name and per client address: growing delays, then a lock.

    Our own code rather than a library: the few rate-limit packages for Starlette count requests,
    not failures, and know nothing of user names. A lock lasts ``lockout_seconds`` after the last
    counted failure; attempts refused while locked are not counted, so a lock always ends.
    """

    def __init__(self, max_failures: int, lockout_seconds: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self._clock = clock
        self._failures: dict[tuple[str, str], _Failures] = {}

    def _keys(self, name: str, address: str) -> list[tuple[tuple[str, str], int]]:
        return [(("user", name), self.max_failures),
                (("address", address), self.max_failures * ADDRESS_FAILURE_FACTOR)]

    def _current(self, key: tuple[str, str]) -> _Failures | None:
        record = self._failures.get(key)
        if record is not None and self._clock() - record.last > self.lockout_seconds:
            del self._failures[key]  # forgotten after a quiet lockout period
            return None
        return record

    def seconds_locked(self, name: str, address: str) -> float:
        """How long logins for *name* or from *address* stay refused; 0 when they are not."""
        left = 0.0
        for key, limit in self._keys(name, address):
            record = self._current(key)
            if record is not None and record.count >= limit:
                left = max(left, record.last + self.lockout_seconds - self._clock())
        return left

    def delay(self, name: str, address: str) -> float:
        """Seconds to wait before checking the next password: none for the first few failures."""
        worst = 0.0
        for key, limit in self._keys(name, address):
            record = self._current(key)
            if record is None:
                continue
            scaled = record.count * self.max_failures / limit  # an address's count, in name-sized steps
            if scaled >= 3:
                worst = max(worst, min(2.0, 0.25 * 2 ** (scaled - 3)))
        return worst

    def failed(self, name: str, address: str) -> int:
        """Count a wrong password; returns the count for the name."""
        now = self._clock()
        counts = []
        for key, _limit in self._keys(name, address):
            record = self._current(key) or self._failures.setdefault(key, _Failures())
            record.count += 1
            record.last = now
            counts.append(record.count)
        return counts[0]

    def succeeded(self, name: str) -> None:
        """A right password clears the name's failures (not the address's: one account must not
        let its owner keep guessing others')."""
        self._failures.pop(("user", name), None)


class Credentials(Protocol):
    """What the guards ask of the users (the users service, or a UserStore in tests)."""

    def verify(self, name: str, password: str) -> User | None: ...

    def credential_stamp(self, name: str) -> str | None: ...


class LoginGuard:
    """Password checks in a worker thread, at most a few at once, with the throttle around them.

    argon2 takes ~90 ms of CPU on purpose; on the event loop, every login froze every user's page.
    """

    def __init__(self, users: Credentials, throttle: LoginThrottle, *, concurrency: int | None = None) -> None:
        self.users = users
        self.throttle = throttle
        # One check at a time per two cores: argon2 runs several threads itself.
        self.concurrency = concurrency or max(1, (os.cpu_count() or 2) // 2)
        self._limiter: anyio.CapacityLimiter | None = None  # made on first use, inside the event loop

    async def verify(self, name: str, password: str) -> User | None:
        """The user when the password is right; runs off the event loop."""
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.concurrency)
        return await anyio.to_thread.run_sync(self.users.verify, name, password, limiter=self._limiter)

    async def check(self, name: str, password: str) -> bool:
        """Gradio's ``auth=`` callback (the middleware has throttled the attempt already)."""
        return await self.verify(name, password) is not None

    async def before_attempt(self, name: str, address: str) -> None:
        """Raise :class:`LoginLocked` while locked; otherwise wait the delay earned by failures."""
        left = self.throttle.seconds_locked(name, address)
        if left > 0:
            log.warning("login refused for %r from %s: locked for %.0f more seconds", name, address, left)
            raise LoginLocked(left)
        delay = self.throttle.delay(name, address)
        if delay:
            await asyncio.sleep(delay)

    def after_attempt(self, name: str, address: str, ok: bool) -> None:
        if ok:
            self.throttle.succeeded(name)
            log.info("login of %r from %s", name, address)
            return
        count = self.throttle.failed(name, address)
        log.warning("failed login for %r from %s (%d in a row)", name, address, count)
        if self.throttle.seconds_locked(name, address) > 0:
            log.warning("logins for %r or from %s are locked for %.0f minutes", name, address,
                        self.throttle.lockout_seconds / 60)

    async def attempt(self, name: str, password: str, address: str) -> User | None:
        """A whole throttled login (Basic auth on /status); raises :class:`LoginLocked`."""
        await self.before_attempt(name, address)
        user = await self.verify(name, password)
        self.after_attempt(name, address, user is not None)
        return user


# -- sessions ----------------------------------------------------------------------------------


class TokenTable(Protocol):
    """What the guards need of the mounted Gradio app: its login tokens, cookie names and Blocks."""

    tokens: dict[str, str]
    cookie_id: str

    def get_blocks(self) -> Any: ...


def session_token(app: TokenTable, cookies: dict[str, str]) -> str | None:
    """The login token in a request's cookies, read the way Gradio reads it."""
    return cookies.get(f"access-token-{app.cookie_id}") or cookies.get(f"access-token-unsecure-{app.cookie_id}")


@dataclass
class _Session:
    user: str
    stamp: str
    started: float
    last_seen: float = field(default=0.0)


class SessionRegistry:
    """Gradio's login tokens, watched: idle and absolute expiry, and the end of a session whose user
    was removed or given a new password (by the page or by the ``users`` command in another process:
    the users file's credential stamp is compared on every request)."""

    SWEEP_SECONDS = 60.0

    def __init__(self, users: Credentials, *, idle_seconds: float, max_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.users = users
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._last_sweep = clock()

    def started(self, tokens: dict[str, str], token: str) -> None:
        """Record a login the moment Gradio issues its token."""
        user = tokens.get(token)
        stamp = self.users.credential_stamp(user) if user else None
        if user is None or stamp is None:
            tokens.pop(token, None)
            return
        now = self._clock()
        self._sessions[token] = _Session(user=user, stamp=stamp, started=now, last_seen=now)

    def check(self, tokens: dict[str, str], token: str) -> str | None:
        """The user of a live session, or None after ending it (expired, revoked, or unknown)."""
        now = self._clock()
        if now - self._last_sweep > self.SWEEP_SECONDS:
            self._sweep(tokens, now)
        user = tokens.get(token)
        if user is None:
            self._sessions.pop(token, None)
            return None
        session = self._sessions.get(token)
        if session is None:  # issued before we watched (cannot happen once mounted): trust it from now
            self.started(tokens, token)
            return tokens.get(token)
        why = self._why_ended(session, now)
        if why:
            self._end(tokens, token, why)
            return None
        session.last_seen = now
        return user

    def _end(self, tokens: dict[str, str], token: str, why: str) -> None:
        """Sign a session out, with its reason in the log whichever check found it."""
        session = self._sessions.pop(token)
        tokens.pop(token, None)
        log.info("signed out %r: %s", session.user, why)

    def _why_ended(self, session: _Session, now: float) -> str | None:
        if now - session.started > self.max_seconds:
            return "the session reached its maximum age"
        if now - session.last_seen > self.idle_seconds:
            return "the session was idle too long"
        stamp = self.users.credential_stamp(session.user)
        if stamp is None:
            return "the user was removed"
        if stamp != session.stamp:
            return "the password was changed"
        return None

    def _sweep(self, tokens: dict[str, str], now: float) -> None:
        """End sessions nobody uses any more, so dead tokens do not pile up in memory."""
        self._last_sweep = now
        for token, session in list(self._sessions.items()):
            if token not in tokens:
                del self._sessions[token]
            elif why := self._why_ended(session, now):
                self._end(tokens, token, why)


# -- the single-user app's key -------------------------------------------------------------------

PAGE_KEY_COOKIE = "webui-page-key"
PAGE_KEY_FORM_PATH = "/page-key"
PAGE_KEY_COOKIE_DAYS = 30
PAGE_KEY_NAME = "(the app's API key)"  # what the throttle counts wrong keys under

_PAGE_KEY_FORM = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Local LLM: key needed</title>
<style>body{{font-family:ui-sans-serif,system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}
input,button{{font-size:1rem;padding:.4rem;margin:.3rem 0;width:100%;box-sizing:border-box}}
@media (prefers-color-scheme: dark){{body{{background:#111;color:#eee}}}}</style></head>
<body><h1>Local LLM</h1><p>This app was started with <code>--api-key</code>. Enter that key to open it
(or open the address the launcher printed, which carries it).</p>{problem}
<form method="post" action="{action}"><label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" autofocus required>
<button type="submit">Open</button></form></body></html>"""


class PageKey:
    """``--api-key`` on a single-user app, required by every route, not only ``/v1`` and ``/api``.

    Scripts send the key as ``Authorization: Bearer KEY`` (or ``x-api-key``); a browser opens the page
    once as ``/?key=KEY`` or types it into a form, and keeps a cookie derived from the key (never the
    key itself), as Jupyter does with its token. ``/v1`` and ``/api`` check the key themselves, so
    their refusals keep their own error shapes. Wrong keys are throttled like wrong passwords.
    """

    def __init__(self, key: str, throttle: LoginThrottle) -> None:
        self._key = key
        self._cookie = hmac.new(key.encode("utf-8"), b"webui page session", hashlib.sha256).hexdigest()
        self.throttle = throttle

    def allows(self, scope: Scope, headers: Headers) -> bool:
        """True when the request carries the key (header or cookie), or goes to a route that checks it."""
        if _api_route(scope.get("path", "")):
            return True
        for sent in (bearer_token(headers.get("authorization")), headers.get("x-api-key")):
            if sent and hmac.compare_digest(sent.encode("utf-8"), self._key.encode("utf-8")):
                return True
        cookie = _cookies(headers).get(PAGE_KEY_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode("utf-8"), self._cookie.encode("utf-8"))

    async def gate(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a request without the key: the form for a page, the cookie for the right key, 401 else."""
        method, path = scope.get("method", "GET"), scope.get("path", "")
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered: str | None = None
        if method == "POST" and path == PAGE_KEY_FORM_PATH:
            limited = BodyLimit(scope, receive, send, MAX_LOGIN_BODY)
            receive, send = limited.receive, limited.send
            try:
                offered = parse_qs((await _read_body(receive)).decode("utf-8")).get("key", [""])[0]
            except UnicodeDecodeError:
                offered = ""
            back = "/"
        elif method in ("GET", "HEAD") and "key" in query:
            offered = query.pop("key")[-1]
            rest = urlencode(query, doseq=True)
            back = path + (f"?{rest}" if rest else "")
        if offered is not None:
            address = _client(scope)
            left = self.throttle.seconds_locked(PAGE_KEY_NAME, address)
            if left > 0:
                await self._form(scope, receive, send, str(LoginLocked(left)), 429)
                return
            if hmac.compare_digest(offered.encode("utf-8"), self._key.encode("utf-8")):
                self.throttle.succeeded(PAGE_KEY_NAME)
                response = RedirectResponse(back, status_code=303)
                response.set_cookie(PAGE_KEY_COOKIE, self._cookie, max_age=PAGE_KEY_COOKIE_DAYS * 86400,
                                    httponly=True, samesite="strict", secure=scope.get("scheme") == "https")
                await response(scope, receive, send)
                return
            self.throttle.failed(PAGE_KEY_NAME, address)
            log.warning("a wrong API key was offered for the page from %s", address)
            await self._form(scope, receive, send, "That is not the key this app was started with.", 401)
            return
        if method == "GET" and (path == "/" or "text/html" in Headers(scope=scope).get("accept", "")):
            await self._form(scope, receive, send, None, 401)
            return
        await JSONResponse({"detail": "This app was started with --api-key: send that key as "
                                      "'Authorization: Bearer KEY', or open the page once as /?key=KEY."},
                           status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)

    @staticmethod
    async def _form(scope: Scope, receive: Receive, send: Send, problem: str | None, status: int) -> None:
        shown = f'<p role="alert" style="color:#c00">{html.escape(problem)}</p>' if problem else ""
        await HTMLResponse(_PAGE_KEY_FORM.format(problem=shown, action=PAGE_KEY_FORM_PATH),
                           status_code=status)(scope, receive, send)


# -- the middleware ----------------------------------------------------------------------------

# Shown on the login page: Gradio's form only says "Incorrect credentials" on a 400 and nothing at
# all otherwise, so this shows the server's own sentence (a lock, with its duration) in that place.
_LOGIN_PAGE_SCRIPT = """<script>(() => {
  const original = window.fetch.bind(window);
  window.fetch = async (...args) => {
    const response = await original(...args);
    const target = args[0] && args[0].url ? args[0].url : String(args[0]);
    if (![400, 429].includes(response.status) || !/\\/login\\/?$/.test(new URL(target, location.href).pathname)) {
      return response;
    }
    const body = await response.clone().text();
    let detail = null;
    try { detail = JSON.parse(body).detail; } catch (e) {}
    if (typeof detail === "string") {
      let tries = 0;
      const show = () => {
        const place = document.querySelector("p.creds");
        if (place) { place.textContent = detail; } else if (tries++ < 50) { setTimeout(show, 20); }
      };
      setTimeout(show, 0);
    }
    return new Response(body, {status: 400, headers: response.headers});
  };
})();</script>"""

_API_INFO = re.compile(r"(<script>window\.gradio_api_info = ).*?(;</script>)", re.DOTALL)


def _login_page(html: str) -> str:
    """The login page without the API description Gradio embeds in it, with the script above and the
    form's own words (Gradio sends no translations with the login page's config)."""
    html = _API_INFO.sub(r"\1{}\2", html, count=1)
    words = json.dumps(LOGIN_WORDS.translations_dict).replace("</", "<\\/")
    html = html.replace("window.gradio_config = {", f'window.gradio_config = {{"i18n_translations": {words}, ', 1)
    return html.replace("</head>", _LOGIN_PAGE_SCRIPT + "</head>", 1)


class SecurityMiddleware:
    """Refuses cross-site writes, ends stale sessions, throttles logins and hardens the cookie.

    ``gradio`` returns the mounted Gradio app once it is mounted; ``guard`` and ``sessions`` are None
    in single-user mode.
    """

    def __init__(self, app: ASGIApp, *, policy: SecurityPolicy, guard: LoginGuard | None,
                 sessions: SessionRegistry | None, gradio: Callable[[], TokenTable | None],
                 uploads: UploadOwners | None = None, page_key: PageKey | None = None) -> None:
        self.app = app
        self.policy = policy
        self.guard = guard
        self.sessions = sessions
        self.gradio = gradio
        self.uploads = uploads
        self.page_key = page_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = scope.get("path", "")
        # DNS rebinding: before anything else, a request must name one of the app's own hosts.
        if not self.policy.hosts.allows(headers.get("host")):
            log.warning("refused a request for %s naming the unknown host %r (from %s)", path,
                        headers.get("host"), _client(scope))
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            else:
                await JSONResponse({"detail": refused_host_message(headers.get("host"))},
                                   status_code=400)(scope, receive, send)
            return
        if scope["type"] != "http":  # Gradio 6 talks over HTTP and SSE only
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        origin = headers.get("origin")
        if origin is not None and method in STATE_CHANGING_METHODS and not origin_allowed(
                origin, headers.get("host", ""), scope.get("scheme", "http"), self.policy.cors_origins,
                self.policy.hosts):
            log.warning("refused a cross-site %s %s from %s", method, path, origin)
            await JSONResponse({"detail": CROSS_SITE_REFUSED}, status_code=403)(scope, receive, send)
            return
        if _FILE_ROUTE.match(path) and _names_url(path):
            # Gradio would fetch a URL named in a file route from the server: a network call for anyone.
            log.warning("refused a file request naming a URL: %s", path)
            await JSONResponse({"detail": "Refused: this app fetches no URLs."}, status_code=403)(scope, receive, send)
            return
        if self.page_key is not None and not self.page_key.allows(scope, headers):
            await self.page_key.gate(scope, receive, send)
            return
        gradio = self.gradio()
        signed_in, user = True, None
        if gradio is not None and self.sessions is not None:  # team mode
            token = session_token(gradio, _cookies(headers))
            user = self.sessions.check(gradio.tokens, token) if token is not None else None
            signed_in = user is not None
        if gradio is not None and self.guard is not None and method == "POST" and path.rstrip("/") == "/login":
            limited = BodyLimit(scope, receive, send, MAX_LOGIN_BODY)
            await self._login(scope, limited.receive, limited.send, gradio)
            return
        if not signed_in and method == "GET" and path == "/":
            await self._login_page(scope, receive, send)
            return
        if not signed_in and path.startswith("/gradio_api/") and path.rstrip("/") not in PRE_LOGIN_PATHS \
                and method != "OPTIONS":  # CORS preflights carry no cookie; CORSMiddleware answers them
            # Checked before any body is read: an anonymous client learns nothing and costs nothing.
            await JSONResponse({"detail": "Log in first."}, status_code=401)(scope, receive, send)
            return
        if user is not None and self.uploads is not None and _FILE_ROUTE.match(path) and \
                self.uploads.held_by_others(user, _file_route_path(path) or Path("/")):
            log.warning("refused %r another user's upload: %s", user, path)
            await JSONResponse({"detail": "That file is another user's upload."}, status_code=403)(scope, receive, send)
            return
        upload = method == "POST" and path.rstrip("/") == "/gradio_api/upload"
        # Uploads stream to disk under Gradio's own limit; /v1 and /api cap bodies in their own error shape.
        if method in STATE_CHANGING_METHODS and not upload and not _api_route(path):
            declared = headers.get("content-length", "")
            limited = BodyLimit(scope, receive, send, MAX_REQUEST_BODY_BYTES)
            if declared.isdigit() and int(declared) > MAX_REQUEST_BODY_BYTES:
                await limited.refuse()
                return
            receive, send = limited.receive, limited.send
        if upload and user is not None and self.uploads is not None:
            await self._upload(scope, receive, send, user)
        elif method == "POST" and path.startswith("/gradio_api/"):
            await self._client_errors(scope, receive, send, gradio)
        else:
            await self.app(scope, receive, _hardened_cookies(send))

    async def _client_errors(self, scope: Scope, receive: Receive, send: Send, gradio: TokenTable | None) -> None:
        """Gradio's API routes, with malformed requests answered 400 instead of 500.

        Gradio lets a bad ``fn_index`` or data shape escape as an exception (a 500 and a reset
        connection), and answers a refused input on its direct-call route (``/gradio_api/run/...``,
        an ``Error`` such as "not in the list of choices" or our handlers' own refusals) with 500.
        Both are the client's fault. Anything else stays a 500, logged.
        """
        scope = dict(scope)  # uncompressed answers, so an error body can be read
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]
        direct = _DIRECT_CALL.fullmatch(scope.get("path", ""))
        if gradio is not None and direct:
            receive, problem = await _check_direct_call(receive, gradio, direct.group(1))
            if problem:
                log.warning("refused a malformed request to %s: %s", scope.get("path"), problem)
                await JSONResponse({"detail": problem}, status_code=400)(scope, receive, send)
                return
        held: dict[str, Any] = {}
        chunks: list[bytes] = []
        sent = False

        async def watch(message: Message) -> None:
            nonlocal sent
            if message["type"] == "http.response.start" and message["status"] == 500:
                held.update(message)
                return
            if held and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                return
            sent = True
            await send(message)

        try:
            await self.app(scope, receive, _hardened_cookies(watch))
        except CLIENT_DATA_ERRORS as exc:
            if sent:
                raise
            log.warning("refused a malformed request to %s: %s: %s", scope.get("path"), type(exc).__name__, exc)
            await JSONResponse({"detail": "Malformed request: the event, its inputs or their shape are wrong."},
                               status_code=400)(scope, receive, send)
            return
        if held:
            body = b"".join(chunks)
            try:
                payload = json.loads(body)
            except ValueError:
                payload = None
            if isinstance(payload, dict) and "title" in payload:  # a gradio Error: a refusal, not a crash
                held["status"] = 400
            await send(held)
            await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _upload(self, scope: Scope, receive: Receive, send: Send, user: str) -> None:
        """Gradio's upload route, with the copies it made recorded as *user*'s."""
        assert self.uploads is not None  # noqa: S101 (checked by the caller)
        scope = dict(scope)  # an uncompressed answer, so the paths in it can be read
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]
        status: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, watch)
        if status.get("code") != 200:
            return
        try:
            paths = json.loads(b"".join(chunks))
        except ValueError:
            return
        if isinstance(paths, list):
            self.uploads.record(user, [p for p in paths if isinstance(p, str)])

    async def _login(self, scope: Scope, receive: Receive, send: Send, gradio: TokenTable) -> None:
        """Gradio's POST /login, throttled, with the new session recorded."""
        assert self.guard is not None and self.sessions is not None  # noqa: S101 (set together)
        body = await _read_body(receive)

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            form = await Request(scope, replay).form()
            name = str(form.get("username") or "").strip()
        except Exception:  # noqa: BLE001 - any unparsable form is a client error, never a 500
            await JSONResponse({"detail": "Send a user name and a password."}, status_code=400)(scope, receive, send)
            return
        address = (scope.get("client") or ("unknown", 0))[0]
        try:
            await self.guard.before_attempt(name, address)
        except LoginLocked as locked:
            response = JSONResponse({"detail": str(locked)}, status_code=429,
                                    headers={"Retry-After": str(int(locked.seconds_left) + 1)})
            await response(scope, receive, send)
            return
        status: dict[str, Any] = {}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                for key, value in message.get("headers", []):
                    if key.lower() == b"set-cookie":
                        status.setdefault("cookies", []).append(value.decode("latin-1"))
            await send(message)

        await self.app(scope, replay, _hardened_cookies(watch))
        ok = status.get("code") == 200
        self.guard.after_attempt(name, address, ok)
        if ok:
            for token in _issued_tokens(status.get("cookies", []), gradio.cookie_id):
                self.sessions.started(gradio.tokens, token)

    async def _login_page(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Gradio's page for a visitor who is not signed in, rewritten by :func:`_login_page`."""
        # Ask for an uncompressed page so it can be edited (Gradio compresses with Brotli otherwise).
        scope = dict(scope)
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                headers = MutableHeaders(raw=list(start.get("headers", [])))
                body = b"".join(chunks)
                if headers.get("content-type", "").startswith("text/html"):
                    body = _login_page(body.decode("utf-8")).encode("utf-8")
                    headers["content-length"] = str(len(body))
                start["headers"] = headers.raw
                await send(start)
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, _hardened_cookies(collect))


_DIRECT_CALL = re.compile(r"/gradio_api/(?:run|api)/([^/]+)/?")


async def _check_direct_call(receive: Receive, gradio: TokenTable, api_name: str) -> tuple[Receive, str | None]:
    """Read a direct call's body (``/gradio_api/run/<name>``); say what is wrong when its inputs cannot
    fit the event.

    Gradio answers too few inputs with a 500; the page always sends them all. Returns a receive that
    replays the body for Gradio.
    """
    body = await _read_body(receive)

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        request = json.loads(body)
    except ValueError:
        return replay, None  # Gradio's own validation answers 422
    if not isinstance(request, dict) or not isinstance(request.get("data"), list):
        return replay, None
    index = request.get("fn_index")
    fns = gradio.get_blocks().fns
    if isinstance(index, int):
        fn = fns.get(index)
    else:
        fn = next((f for f in fns.values() if f.api_name == api_name), None)
    if fn is None:
        return replay, None
    needed = len(fn.inputs)
    named = len([block for block in fn.inputs if not getattr(block, "skip_api", False)])
    sent = len(request["data"])
    if sent < needed and sent != named:
        return replay, f"This event takes {needed} inputs; the request sent {sent}."
    return replay, None


class BodyLimit:
    """A request's receive and send, cut off once more than *limit* body bytes have arrived.

    At the limit the client gets a 413 at once and the app sees the client gone. A limit that raised
    instead would not reach the client: FastAPI turns any error while reading a body into a 400, and
    Gradio reads bodies through FastAPI.
    """

    def __init__(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        self.scope, self._receive, self._send, self.limit = scope, receive, send, limit
        self.total = 0
        self.refused = False
        self.started = False

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self.total += len(message.get("body", b""))
            if self.total > self.limit:
                await self.refuse()
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the app's answer to a body it never got whole
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)

    async def refuse(self) -> None:
        """Answer 413 (unless an answer has begun) and drop whatever the app sends after."""
        self.refused = True
        log.warning("refused a request body over %d bytes to %s from %s", self.limit, self.scope.get("path"),
                    _client(self.scope))
        if self.started:
            return

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await JSONResponse({"detail": f"The request body is larger than {_size(self.limit)}."},
                           status_code=413)(self.scope, nothing, self._send)


def _size(count: int) -> str:
    return f"{count // 2**20} MB" if count >= 2**20 else f"{count // 1024} KB"


async def _read_body(receive: Receive) -> bytes:
    """A whole request body, its chunks joined once (``+=`` copied it all again for every chunk)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _api_route(path: str) -> bool:
    """The OpenAI and Ollama routes, which check keys and body sizes themselves, in their own shapes."""
    return path in ("/v1", "/api") or path.startswith(("/v1/", "/api/"))


def _client(scope: Scope) -> str:
    return (scope.get("client") or ("unknown", 0))[0]


_FILE_ROUTE = re.compile(r"/gradio_api/file[=/]")


def _file_route_path(path: str) -> Path | None:
    """The file a ``/gradio_api/file=<path>`` request names, resolved as Gradio resolves it; None for
    a name no file can have (Gradio refuses those itself)."""
    named = unquote(_FILE_ROUTE.sub("", path, count=1))
    try:
        return Path(named).resolve() if Path(named).is_absolute() else (upload_root() / named).resolve()
    except (ValueError, OSError):
        return None


def _names_url(path: str) -> bool:
    named = unquote(_FILE_ROUTE.sub("", path, count=1)).lower()
    return named.startswith(("http:", "https:", "//", "ftp:")) or "://" in named


def _cookies(headers: Headers) -> dict[str, str]:
    jar = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # noqa: BLE001 - a malformed Cookie header means no cookies, not a 500
        return {}
    return {key: morsel.value for key, morsel in jar.items()}


def _issued_tokens(set_cookies: list[str], cookie_id: str) -> set[str]:
    names = {f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"}
    tokens = set()
    for header in set_cookies:
        jar = SimpleCookie()
        jar.load(header)
        tokens.update(morsel.value for key, morsel in jar.items() if key in names and morsel.value)
    return tokens


_SAMESITE_NONE = re.compile(rb"samesite=none", re.IGNORECASE)


def _hardened_cookies(send: Send) -> Send:
    """Gradio sets its login cookie ``SameSite=None`` (for embedding in other sites); ours is ``Lax``,
    so no other web site's page can make the browser send it along with a request."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [
                (key, _SAMESITE_NONE.sub(b"SameSite=lax", value) if key.lower() == b"set-cookie" else value)
                for key, value in message.get("headers", [])
            ]
        await send(message)

    return wrapped
