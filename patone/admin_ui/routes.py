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
from patone.admin_ui.sign_in import CODE_PAGE, ENROL_PAGE, sign_in, sign_in_form, sign_out
from patone.admin_ui.two_factor import (
    ACCOUNT_PAGE,
    account_page,
    begin,
    code,
    code_form,
    confirm,
    disable,
    enrol,
    enrol_form,
    regenerate,
)


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/", home),
        Route("/admin/sign-in", sign_in_form, methods=["GET"]),
        Route("/admin/sign-in", sign_in, methods=["POST"]),
        Route(CODE_PAGE, code_form, methods=["GET"]),
        Route(CODE_PAGE, code, methods=["POST"]),
        Route(ENROL_PAGE, enrol_form, methods=["GET"]),
        Route(ENROL_PAGE, enrol, methods=["POST"]),
        Route("/admin/sign-out", sign_out, methods=["POST"]),
        Route(ACCOUNT_PAGE, account_page, methods=["GET"]),
        Route(f"{ACCOUNT_PAGE}/begin", begin, methods=["POST"]),
        Route(f"{ACCOUNT_PAGE}/confirm", confirm, methods=["POST"]),
        Route(f"{ACCOUNT_PAGE}/recovery-codes", regenerate, methods=["POST"]),
        Route(f"{ACCOUNT_PAGE}/disable", disable, methods=["POST"]),
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
