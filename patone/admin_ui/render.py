"""Rendering the staff pages: one Jinja2 environment, autoescaped, branded with the company."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True),
    auto_reload=False,
)


def page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """A page in the company's colours. Signed-in pages get the session's CSRF token for the
    sign-out button every page carries."""
    state = request.scope.get("state", {})
    tenant = state.get("tenant")
    session = state.get("session")
    html = _env.get_template(template).render(
        company=tenant.name if tenant is not None else "Patone Cloud",
        signed_in=session is not None,
        session_csrf=session.csrf_token if session is not None else "",
        path=request.url.path,
        **(context or {}),
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        # Pages show personal data and carry tokens: never cache them anywhere.
        headers={"Cache-Control": "no-store"},
    )
