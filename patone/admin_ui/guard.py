"""The gate in front of the staff pages: who is signed in, where the others go, and CSRF.

For every request to a staff page (`/admin...`, `/setup/...`, `/reset-password...`) the
middleware loads the session named by the cookie (one Redis round trip) and the acting user
(`actor_for_user`, which refuses deactivated users). Pages other than the public ones (sign-in,
set-up, reset) send a visitor without a session to the sign-in page, and a session that must
choose a new password to the change-password page. Every request that could
change something (POST, PUT, PATCH, DELETE) must carry a CSRF token, in the form field
`csrf_token` or the `X-CSRF-Token` header, or it gets a 403 page and reaches no route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from patone.admin_ui import csrf
from patone.admin_ui.render import page
from patone.core.common.permissions import SYSTEM, Actor
from patone.core.identity import sessions, users
from patone.core.identity.sessions import DEFAULT_LIFETIMES, Lifetimes, Session
from patone.core.runtime.errors import UserError
from patone.core.runtime.web import read_body, replay

SIGN_IN = "/admin/sign-in"
MUST_CHANGE_PAGE = "/admin/account/password"
# What a session flagged "must change password" may reach besides the public pages.
WHILE_MUST_CHANGE = frozenset({MUST_CHANGE_PAGE, "/admin/sign-out"})
STATIC_PREFIX = "/admin/static/"
PUBLIC_PREFIXES = ("/admin/sign-in", STATIC_PREFIX, "/setup/", "/reset-password")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class UiConfig:
    """How the staff pages keep sessions. `secure_cookies` None: Secure when over HTTPS."""

    csrf_key: bytes
    lifetimes: Lifetimes = DEFAULT_LIFETIMES
    secure_cookies: bool | None = None


def is_staff_page(path: str) -> bool:
    return (
        path == "/admin"
        or path.startswith(("/admin/", "/setup/", "/reset-password/"))
        or path == "/reset-password"
    )


def is_public(path: str) -> bool:
    return path.startswith(PUBLIC_PREFIXES)


def config(request: Request) -> UiConfig:
    return request.scope["state"]["ui"]


def current_session(request: Request) -> Session | None:
    return request.scope["state"].get("session")


def current_actor(request: Request) -> Actor:
    """The signed-in user of a page behind the gate (the gate guarantees there is one)."""
    actor = request.scope["state"].get("actor")
    assert actor is not None, "current_actor on a public page"
    return actor


def not_found_page(request: Request) -> Response:
    """A staff page that does not exist, as a page rather than the API's JSON error."""
    return page(
        request,
        "message.html",
        {
            "title": "Page not found",
            "message": "There is no page at this address.",
            "link": {"href": "/admin/", "text": "Go to the start page"},
        },
        status_code=404,
    )


def secure_cookie(request: Request) -> bool:
    """Whether cookies get Secure: the setting, or else whether the request came over HTTPS."""
    setting = config(request).secure_cookies
    return request.url.scheme == "https" if setting is None else setting


def set_session_cookie(response: Response, request: Request, session_id: str) -> None:
    """The session cookie: no Max-Age (gone when the browser closes), the server ends it too."""
    _set_cookie(response, request, sessions.COOKIE_NAME, session_id)


def _set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    """A cookie for this site's pages only, out of scripts' reach, and with no Max-Age."""
    response.set_cookie(
        name, value, path="/", secure=secure_cookie(request), httponly=True, samesite="lax"
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        sessions.COOKIE_NAME, path="/", secure=secure_cookie(request), httponly=True, samesite="lax"
    )


def form_token(request: Request) -> tuple[str, str | None]:
    """The CSRF token a page's forms carry, and a double-submit cookie value to set (or None).

    Signed in: the session's token. Before sign-in: the signed double-submit token from the
    cookie when it is ours for this company, else a new one that must be set as the cookie.
    """
    session = current_session(request)
    if session is not None:
        return session.csrf_token, None
    key = config(request).csrf_key
    slug = request.scope["state"]["tenant"].slug
    existing = request.cookies.get(csrf.COOKIE_NAME, "")
    if csrf.signed_token_valid(key, slug, existing):
        return existing, None
    fresh = csrf.new_signed_token(key, slug)
    return fresh, fresh


def form_page(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> Response:
    """A page whose forms carry `csrf_token`; sets the double-submit cookie when it needs one."""
    token, new_cookie = form_token(request)
    response = page(request, template, {**context, "csrf_token": token}, status_code=status_code)
    if new_cookie is not None:
        _set_cookie(response, request, csrf.COOKIE_NAME, new_cookie)
    return response


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a staff page of this site, never another site."""
    if (
        target
        and target.startswith("/admin")
        and not target.startswith("//")
        and "\\" not in target
        and all(c.isprintable() for c in target)
    ):
        return target
    return "/admin/"


async def _submitted_token(scope: Scope, body: bytes) -> str | None:
    request = Request(scope, replay(body))
    if request.headers.get("content-type", "").startswith(FORM_TYPES):
        async with request.form(max_files=20, max_fields=200) as form:
            value = form.get(csrf.FIELD)
            return value if isinstance(value, str) else None
    return request.headers.get(csrf.HEADER)


def _token_accepted(request: Request, given: str | None) -> bool:
    session = current_session(request)
    if session is not None and csrf.same(session.csrf_token, given):
        return True
    if session is not None and not is_public(request.url.path):
        return False
    # Forms shown before sign-in: the double-submit cookie, signed by us for this company.
    cookie = request.cookies.get(csrf.COOKIE_NAME, "")
    key = config(request).csrf_key
    slug = request.scope["state"]["tenant"].slug
    return csrf.same(cookie, given) and csrf.signed_token_valid(key, slug, cookie)


class StaffPagesMiddleware:
    """Sessions, the sign-in redirect and CSRF for the staff pages (see the module docstring)."""

    def __init__(self, app: ASGIApp, config: UiConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not is_staff_page(scope["path"])
            or scope["path"].startswith(STATIC_PREFIX)  # no session needed for a stylesheet
        ):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        state["ui"] = self.config
        request = Request(scope)
        tenant = state.get("tenant")
        if tenant is None:
            response: Response = page(
                request,
                "message.html",
                {
                    "title": "Open your company's address",
                    "message": "Staff pages live at your company's own address, "
                    "such as https://yourcompany.example.com/admin/.",
                },
                status_code=404,
            )
            await response(scope, receive, send)
            return
        cookie = request.cookies.get(sessions.COOKIE_NAME)
        session = await sessions.load(tenant, cookie, lifetimes=self.config.lifetimes)
        if session is not None:
            try:
                state["actor"] = await users.actor_for_user(tenant, session.user_id)
            except UserError:
                # Deactivated (or removed): none of their sessions may come back to life later.
                await sessions.revoke_all(tenant, session.user_id, actor=SYSTEM)
                session = None
        state["session"] = session
        stale_cookie = cookie is not None and session is None

        refusal: Response | None = None
        if session is None and not is_public(scope["path"]):
            target = SIGN_IN
            if scope["method"] == "GET":
                target += "?next=" + quote(request.url.path, safe="/")
            refusal = RedirectResponse(target, status_code=303)
        elif (
            session is not None
            and session.must_change_password
            and scope["path"] not in WHILE_MUST_CHANGE
            and not is_public(scope["path"])
        ):
            refusal = RedirectResponse(MUST_CHANGE_PAGE, status_code=303)
        elif scope["method"] not in SAFE_METHODS:
            body = await read_body(receive)
            if body is None:
                refusal = page(
                    request,
                    "message.html",
                    {"title": "Too large", "message": "That form was too large to accept."},
                    status_code=413,
                )
            elif not _token_accepted(request, await _submitted_token(scope, body)):
                refusal = page(
                    request,
                    "message.html",
                    {
                        "title": "This form has expired",
                        "message": "The form was not sent from this page, or it is too old. "
                        "Nothing was changed. Go back, reload the page and try again.",
                    },
                    status_code=403,
                )
            else:
                receive = replay(body)
        if refusal is not None:
            if stale_cookie:
                clear_session_cookie(refusal, request)
            await refusal(scope, receive, send)
            return
        if stale_cookie:
            send = _clearing_cookie(send, request)
        await self.app(scope, receive, send)


def _clearing_cookie(send: Send, request: Request) -> Send:
    """Tell the browser to drop a session cookie that names no live session, unless the page
    sets a new one."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            sets_session = any(
                value.startswith(sessions.COOKIE_NAME + "=")
                for value in headers.getlist("set-cookie")
            )
            if not sets_session:
                cleared = Response()
                clear_session_cookie(cleared, request)
                headers.append("set-cookie", cleared.headers["set-cookie"])
        await send(message)

    return wrapped
