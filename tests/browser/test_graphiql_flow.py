"""The GraphQL issue's "Done when", in a real browser against the real product.

`patone serve` runs in its own process on the test database with the `demo` tenant (created and
filled the first time, idempotent afterwards, left in place). A token comes from the real CLI.
Debian's Chromium opens GraphiQL at `http://demo.localhost:PORT/graphql` with every other host
blocked; page A pages through the board, creates a request and moves it through its whole life
while page B, a second tab, watches `serviceRequestUpdates` receive each change.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.demo_product import demo_env, issue_token, serving
from tests.graphql.test_graphiql import CHROMIUM, LOCAL_HOSTS, _editor, _result, local_browser
from tests.test_embedded import _free_port

playwright_api = pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs {CHROMIUM}")

DISPATCHER = "dispatcher@demo-towing.example"
DEMO_HOST = "demo.localhost"
ALLOWED_HOSTS = LOCAL_HOSTS | {DEMO_HOST}
SHOTS = Path("/tmp")

BOARD = """query Board {
  serviceRequests(first: 10%s) {
    edges { cursor node { id number status } }
    pageInfo { hasNextPage endCursor }
  }
}"""
CREATE = """mutation Create {
  createServiceRequest(input: {
    customerId: "%s"
    serviceType: "jump_start"
    pickup: {lat: 52.52, lng: 13.405, address: "Alexanderplatz 1, Berlin"}
  }) {
    serviceRequest { id number status }
    userErrors { field code message }
  }
}"""
ASSIGN = """mutation Assign {
  assignDriver(id: "%s", driverId: "%s") {
    serviceRequest { number status driver { name } }
    userErrors { field code message }
  }
}"""
TRANSITION = """mutation Move {
  transitionServiceRequest(id: "%s", status: %s) {
    serviceRequest { number status }
    userErrors { field code message }
  }
}"""
SUBSCRIBE = """subscription Watch {
  serviceRequestUpdates { change serviceRequest { number status } }
}"""


@dataclass
class Product:
    port: int
    env: dict[str, str]

    @property
    def graphiql(self) -> str:
        return f"http://{DEMO_HOST}:{self.port}/graphql"


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    """`patone serve` with the demo tenant, on the machine's (test) Postgres and Redis."""
    port = _free_port()
    env = demo_env(port)
    with serving(env, tmp_path_factory.mktemp("serve") / "patone-serve.log"):
        yield Product(port, env)


def _issue_token(product: Product) -> str:
    return issue_token(product.env, DISPATCHER)


async def _type_into(page: Any, selector: str, text: str) -> None:
    """Click into a CodeMirror editor, select everything and type `text` over it."""
    await _editor(page, selector).click()
    await page.keyboard.press("Control+A")
    await page.keyboard.insert_text(text)
    value = await _editor(page, selector).evaluate("el => el.CodeMirror.getValue()")
    assert value == text, value


async def _open_graphiql(page: Any, product: Product, token: str) -> None:
    response = await page.goto(product.graphiql, wait_until="networkidle")
    assert response is not None and response.status == 200
    await page.locator(".graphiql-query-editor .CodeMirror").wait_for(state="visible")
    # The Headers tab of the editor tools, then its editor.
    await page.locator(".graphiql-editor-tools button", has_text="Headers").click()
    await _type_into(
        page, ".graphiql-editor-tool", json.dumps({"Authorization": f"Bearer {token}"})
    )


async def _type_query(page: Any, query: str) -> None:
    """Type `query` into the query editor and wait until GraphiQL has taken it in (its state,
    with the operation name it sends, follows the editor after a debounce; the last step
    stores the query)."""
    await _type_into(page, ".graphiql-query-editor", query)
    await page.wait_for_function(
        "q => localStorage.getItem('graphiql:query') === q", arg=query, timeout=5_000
    )


async def _run(page: Any, query: str) -> dict[str, Any]:
    """Type `query`, run it with Ctrl-Enter and return what the result pane shows (checked
    against the response the page received)."""
    await _type_query(page, query)

    def ours(response: Any) -> bool:
        request = response.request
        return (
            request.method == "POST"
            and urlsplit(response.url).path == "/graphql"
            and "IntrospectionQuery" not in (request.post_data or "")
        )

    async with page.expect_response(ours, timeout=10_000) as answer:
        await page.keyboard.press("Control+Enter")
    sent = await (await answer.value).json()
    deadline = time.monotonic() + 10
    while True:
        text = await _result(page)
        try:
            shown = json.loads(text)
        except ValueError:
            shown = None
        if shown == sent:
            assert "errors" not in shown, shown
            return shown
        assert time.monotonic() < deadline, f"the result pane shows {text!r}, not {sent!r}"
        await asyncio.sleep(0.05)


async def _seen_by_subscriber(page: Any, number: int, change: str, status: str) -> None:
    """Wait until page B's result pane shows `change` to request `number` in `status`."""
    want = {
        "data": {
            "serviceRequestUpdates": {
                "change": change,
                "serviceRequest": {"number": number, "status": status},
            }
        }
    }
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = await _result(page)
        try:
            if json.loads(text) == want:
                return
        except ValueError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"page B never showed {change} {status} for #{number}; it shows {text!r}")


def _payload(result: dict[str, Any], field: str) -> dict[str, Any]:
    payload = result["data"][field]
    assert payload["userErrors"] == [], payload
    return payload["serviceRequest"]


async def test_dispatcher_pages_creates_and_completes_a_request_watched_live(
    product: Product,
) -> None:
    started = time.monotonic()
    token = _issue_token(product)
    foreign: list[str] = []
    urls: list[str] = []
    frames: list[str] = []
    page_errors: list[str] = []

    async with (
        playwright_api.async_playwright() as pw,
        local_browser(pw, ALLOWED_HOSTS, foreign) as context,
    ):
        context.on("request", lambda request: urls.append(request.url))

        def watch(ws: Any) -> None:
            urls.append(ws.url)
            ws.on("framereceived", lambda frame: frames.append(str(frame)))

        # Page A: the dispatcher's GraphiQL.
        page_a = await context.new_page()
        page_a.on("websocket", watch)
        page_a.on("pageerror", lambda error: page_errors.append(str(error)))
        await _open_graphiql(page_a, product, token)

        viewer = await _run(page_a, "{ viewer { companyName role } }")
        assert viewer["data"]["viewer"]["role"] == "dispatcher", viewer

        first = (await _run(page_a, BOARD % ""))["data"]["serviceRequests"]
        assert len(first["edges"]) == 10
        assert first["pageInfo"]["hasNextPage"] is True
        second = await _run(page_a, BOARD % f', after: "{first["pageInfo"]["endCursor"]}"')
        second = second["data"]["serviceRequests"]
        assert len(second["edges"]) == 10
        ids_first = {edge["node"]["id"] for edge in first["edges"]}
        ids_second = {edge["node"]["id"] for edge in second["edges"]}
        assert ids_first.isdisjoint(ids_second), "the second page repeats the first"

        # Page B: a second tab that watches the company's requests.
        page_b = await context.new_page()
        page_b.on("websocket", watch)
        page_b.on("pageerror", lambda error: page_errors.append(str(error)))
        await _open_graphiql(page_b, product, token)
        await _type_query(page_b, SUBSCRIBE)
        await page_b.keyboard.press("Control+Enter")
        await page_b.locator(".graphiql-execute-button[aria-label^='Stop']").wait_for(
            state="visible", timeout=5_000
        )
        await asyncio.sleep(0.5)  # the server subscribes to Redis

        await page_a.bring_to_front()
        customers = await _run(page_a, "{ customers(first: 1) { edges { node { id } } } }")
        customer_id = customers["data"]["customers"]["edges"][0]["node"]["id"]
        drivers = await _run(page_a, "{ drivers(status: AVAILABLE) { id name } }")
        assert drivers["data"]["drivers"], "the demo tenant has no available driver"
        driver_id = drivers["data"]["drivers"][0]["id"]

        created = _payload(
            await _run(page_a, CREATE % customer_id),
            "createServiceRequest",
        )
        number, request_id = created["number"], created["id"]
        assert created["status"] == "PENDING"
        await _seen_by_subscriber(page_b, number, "CREATED", "PENDING")

        assigned = _payload(
            await _run(page_a, ASSIGN % (request_id, driver_id)),
            "assignDriver",
        )
        assert assigned == {
            "number": number,
            "status": "ASSIGNED",
            "driver": {"name": drivers["data"]["drivers"][0]["name"]},
        }
        await _seen_by_subscriber(page_b, number, "ASSIGNED", "ASSIGNED")

        for status in ("EN_ROUTE", "ON_SCENE", "IN_PROGRESS", "COMPLETED"):
            moved = _payload(
                await _run(page_a, TRANSITION % (request_id, status)),
                "transitionServiceRequest",
            )
            assert moved == {"number": number, "status": status}
            await _seen_by_subscriber(page_b, number, "STATUS_CHANGED", status)

        await page_a.screenshot(path=str(SHOTS / "flow_a.png"))
        await page_b.bring_to_front()
        await page_b.screenshot(path=str(SHOTS / "flow_b.png"))

    assert foreign == [], f"requests to other hosts: {foreign}"
    assert all(urlsplit(url).hostname == DEMO_HOST for url in urls), urls
    assert any(url.startswith(f"ws://{DEMO_HOST}:") for url in urls), "no websocket was opened"
    # Every change reached the subscriber's socket, in order (the pane shows the latest). The
    # workers may also move the ETA while the driver is en route (ETA_CHANGED): a real update,
    # whether one comes depends on timing, so it is left out of the order checked.
    ours = [
        (update["change"], update["serviceRequest"]["status"])
        for message in map(json.loads, frames)
        if message.get("type") == "next"
        for update in [message["payload"]["data"]["serviceRequestUpdates"]]
        if update["serviceRequest"]["number"] == number and update["change"] != "ETA_CHANGED"
    ]
    assert ours == [
        ("CREATED", "PENDING"),
        ("ASSIGNED", "ASSIGNED"),
        ("STATUS_CHANGED", "EN_ROUTE"),
        ("STATUS_CHANGED", "ON_SCENE"),
        ("STATUS_CHANGED", "IN_PROGRESS"),
        ("STATUS_CHANGED", "COMPLETED"),
    ], ours
    assert page_errors == [], page_errors
    assert time.monotonic() - started < 60
