"""GraphiQL from our own files, in Debian's Chromium: it renders, talks only to its own origin
(HTTP and websocket), passes the Authorization header, and breaks no rule of its CSP.

The server is a small Starlette app that mounts the page and the static files the way
`patone.app` does, in front of a tiny strawberry schema (the real API needs a tenant and a
token, which other tests cover).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import strawberry
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL

from patone.graphql.graphiql import STATIC_MOUNT, STATIC_ROOT, graphiql_page, static_files

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
TOKEN = "test-token-123"

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs {CHROMIUM}")


@asynccontextmanager
async def local_browser(
    pw: Any, allowed: set[str], foreign: list[str], width: int = 1400
) -> AsyncIterator[Any]:
    """Debian's Chromium with one browser context that reaches only the `allowed` hosts (any
    other request is aborted and noted in `foreign`); the browser is closed afterwards."""
    browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        context = await browser.new_context(viewport={"width": width, "height": 900})

        async def guard(route: Any) -> None:
            if urlsplit(route.request.url).hostname in allowed:
                await route.continue_()
            else:
                foreign.append(route.request.url)
                await route.abort()

        await context.route("**/*", guard)
        yield context
    finally:
        await browser.close()


@strawberry.type
class Query:
    @strawberry.field
    def authorization(self, info: strawberry.Info) -> str | None:
        return info.context["request"].headers.get("authorization")


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self, info: strawberry.Info) -> AsyncIterator[str]:
        params = info.context.get("connection_params") or {}
        for n in range(1, 4):
            yield f"tick {n} {params.get('Authorization')}"


class _Api(GraphQL[Any, None]):
    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        # strawberry adds `connection_params` (connection_init's payload) on websockets.
        return {"request": request, "response": response}


def _test_app() -> Starlette:
    api = _Api(strawberry.Schema(query=Query, subscription=Subscription), graphql_ide=None)

    class GraphQLEndpoint:  # an ASGI app, like patone.graphql.app.GraphQLApp
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            request = Request(scope, receive)
            if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
                await (await graphiql_page(request))(scope, receive, send)
            else:
                await api(scope, receive, send)

    async def no_favicon(request: Request) -> Response:
        return Response(status_code=204)

    return Starlette(
        routes=[
            Route("/graphql", GraphQLEndpoint(), methods=["GET", "POST"]),
            WebSocketRoute("/graphql", api),
            Mount(STATIC_MOUNT, app=static_files()),
            Route("/favicon.ico", no_favicon),
        ]
    )


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # not the main thread
        pass


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(_test_app(), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_static_files_and_licences_are_served(base_url: str) -> None:
    graphiql = STATIC_ROOT / "graphiql"
    for name in ("graphiql.min.js", "graphiql.min.css", "react.production.min.js"):
        response = httpx.get(f"{base_url}{STATIC_MOUNT}/graphiql/{name}")
        assert response.status_code == 200
        assert response.content == (graphiql / name).read_bytes()
    for name in ("LICENSE.graphiql", "LICENSE.react", "LICENSE.react-dom", "VENDORED.md"):
        assert (graphiql / name).is_file(), name
    assert not list(graphiql.glob("*.map")), "no source maps"


def _editor(page: Any, selector: str) -> Any:
    return page.locator(f"{selector} .CodeMirror:visible").first


async def _set_editor(page: Any, selector: str, value: str) -> None:
    await _editor(page, selector).evaluate("(el, v) => el.CodeMirror.setValue(v)", value)


async def _set_query(page: Any, query: str) -> None:
    """Set the query editor, then wait until GraphiQL has taken it in (its state updates are
    debounced; the last one stores the query)."""
    await _set_editor(page, ".graphiql-query-editor", query)
    await page.wait_for_function(
        "q => localStorage.getItem('graphiql:query') === q", arg=query, timeout=5_000
    )


async def _run(page: Any, expected: str) -> str:
    await page.locator(".graphiql-execute-button").click()
    await page.wait_for_function(
        "text => document.querySelector('.result-window .CodeMirror')"
        ".CodeMirror.getValue().includes(text)",
        arg=expected,
        timeout=10_000,
    )
    return await _result(page)


async def _result(page: Any) -> str:
    result = _editor(page, ".result-window")
    return str(await result.evaluate("el => el.CodeMirror.getValue()"))


async def test_graphiql_renders_offline_under_its_csp(base_url: str) -> None:
    foreign: list[str] = []
    urls: list[str] = []
    console: list[str] = []
    page_errors: list[str] = []

    async with (
        playwright_api.async_playwright() as pw,
        local_browser(pw, LOCAL_HOSTS, foreign) as context,
    ):
        # Recorded by the page itself: every CSP violation, whatever the console says.
        await context.add_init_script(
            "window.__csp = [];"
            "document.addEventListener('securitypolicyviolation', e =>"
            " window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
        )
        page = await context.new_page()
        page.on("request", lambda request: urls.append(request.url))
        page.on("websocket", lambda ws: urls.append(ws.url))
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda error: page_errors.append(str(error)))

        response = await page.goto(f"{base_url}/graphql", wait_until="networkidle")
        assert response is not None and response.status == 200
        csp = (await response.all_headers())["content-security-policy"]
        assert "default-src 'self'" in csp
        nonce = re.search(r"script-src 'self' 'nonce-([\w-]+)'", csp)
        assert nonce and f"style-src 'self' 'nonce-{nonce[1]}'" in csp, csp
        assert "unsafe-eval" not in csp and "style-src 'self' 'unsafe-inline'" not in csp
        assert "frame-ancestors 'none'" in csp

        container = page.locator(".graphiql-container")
        await container.wait_for(state="visible", timeout=15_000)
        await page.locator(".graphiql-query-editor .CodeMirror").wait_for(state="visible")
        assert "query Viewer" in await page.locator(".graphiql-query-editor").inner_text()

        # A token pasted into the Headers tab reaches the same-origin endpoint.
        await _set_editor(page, ".graphiql-editor-tool", f'{{"Authorization": "Bearer {TOKEN}"}}')
        await _set_query(page, "{ authorization }")
        assert f'"authorization": "Bearer {TOKEN}"' in await _run(page, "Bearer")

        # Subscriptions go over a websocket to the same host; the headers ride connection_init.
        await _set_query(page, "subscription { ticks }")
        assert f"tick 3 Bearer {TOKEN}" in await _run(page, "tick 3")
        # The token is not kept in the browser's storage.
        assert TOKEN not in await page.evaluate("JSON.stringify(localStorage)")

        # GraphiQL's dialogs and the docs explorer render without breaking the policy.
        await page.locator("button[aria-label='Show Documentation Explorer']").click()
        await page.locator(".graphiql-doc-explorer").wait_for(state="visible")
        await page.locator("button[aria-label='Open settings dialog']").click()
        await page.locator(".graphiql-dialog").first.wait_for(state="visible")
        await page.keyboard.press("Escape")
        # CodeMirror's search and jump-to-line dialogs (HTML with style attributes).
        await page.locator(".graphiql-query-editor .CodeMirror").click()
        for keys, text in (("Control+F", "Search"), ("Alt+G", "Jump to line")):
            await page.keyboard.press(keys)
            await page.locator(".CodeMirror-dialog", has_text=text).wait_for(state="visible")
            await page.keyboard.press("Escape")
        await asyncio.sleep(0.3)

        if shots := os.environ.get("PATONE_SCREENSHOTS"):
            await page.screenshot(path=str(Path(shots) / "graphiql.png"))
        violations = await page.evaluate("window.__csp")

    assert foreign == [], f"requests to other hosts: {foreign}"
    assert all(urlsplit(url).hostname in LOCAL_HOSTS for url in urls), urls
    assert any(url.startswith("ws://127.0.0.1") for url in urls), "no websocket was opened"
    assert violations == [], violations
    assert not [line for line in console if "Content Security Policy" in line], console
    assert not [line for line in console if line.startswith("error")], console
    assert page_errors == [], page_errors
