"""The company's front page (the portal grows from here), or the platform's on its own host."""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response


async def home(request: Request) -> Response:
    tenant = getattr(request.state, "tenant", None)
    title = html.escape(tenant.name if tenant else "Patone Cloud")
    subtitle = "Roadside assistance" if tenant else "Software for roadside-assistance companies"
    return HTMLResponse(
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width,initial-scale=1'><title>{title}</title>"
        f"<body><main><h1>{title}</h1><p>{subtitle}</p></main></body></html>"
    )
