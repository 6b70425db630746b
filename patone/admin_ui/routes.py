"""The staff pages' routes, registered by `patone.app`."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from patone.admin_ui.account import revoke_everywhere, revoke_one, sessions_page
from patone.admin_ui.home import home
from patone.admin_ui.password import change_password, change_password_form
from patone.admin_ui.recovery import (
    request_form,
    request_link,
    reset,
    reset_form,
    setup,
    setup_form,
)
from patone.admin_ui.render import STATIC
from patone.admin_ui.sign_in import sign_in, sign_in_form, sign_out


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/", home),
        Route("/admin/sign-in", sign_in_form, methods=["GET"]),
        Route("/admin/sign-in", sign_in, methods=["POST"]),
        Route("/admin/sign-out", sign_out, methods=["POST"]),
        Route("/admin/account/sessions", sessions_page),
        Route("/admin/account/sessions/revoke", revoke_one, methods=["POST"]),
        Route("/admin/account/sessions/revoke-all", revoke_everywhere, methods=["POST"]),
        Route("/admin/account/password", change_password_form, methods=["GET"]),
        Route("/admin/account/password", change_password, methods=["POST"]),
        Route("/setup/{token}", setup_form, methods=["GET"]),
        Route("/setup/{token}", setup, methods=["POST"]),
        Route("/reset-password", request_form, methods=["GET"]),
        Route("/reset-password", request_link, methods=["POST"]),
        Route("/reset-password/{token}", reset_form, methods=["GET"]),
        Route("/reset-password/{token}", reset, methods=["POST"]),
        Mount("/admin/static", app=StaticFiles(directory=STATIC), name="admin_static"),
    ]
