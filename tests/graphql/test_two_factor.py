"""Two-factor through the API: a staff user enrols and confirms; admins set the policy."""

from __future__ import annotations

import pyotp

from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import Gql, token_for

BEGIN = """mutation { beginTwoFactorEnrolment {
    enrolment { otpauthUri qrSvg secret } userErrors { field code message } } }"""
CONFIRM = """mutation($code: String!) { confirmTwoFactor(code: $code) {
    recoveryCodes userErrors { field code message } } }"""
STATUS = "{ twoFactor { enabled pending required recoveryCodesLeft } twoFactorRequiredRoles }"
POLICY = """mutation($roles: [String!]!) { setTwoFactorRequiredRoles(roles: $roles) {
    requiredRoles userErrors { field code message } } }"""
DISABLE = """mutation($code: String!) { disableTwoFactor(code: $code) {
    twoFactor { enabled } userErrors { field code message } } }"""


async def test_a_staff_user_enrols_through_the_api(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    token = await token_for(acme, "dispatcher")
    began = (await gql(acme, token, BEGIN))["data"]["beginTwoFactorEnrolment"]
    enrolment = began["enrolment"]
    assert began["userErrors"] == [] and enrolment["otpauthUri"].startswith("otpauth://totp/")
    assert enrolment["qrSvg"].startswith("<svg")
    status = (await gql(acme, token, STATUS))["data"]
    assert status["twoFactor"] == {
        "enabled": False,
        "pending": True,
        "required": False,
        "recoveryCodesLeft": 0,
    }
    assert status["twoFactorRequiredRoles"] == ["admin"]

    wrong = (await gql(acme, token, CONFIRM, {"code": "12"}))["data"]["confirmTwoFactor"]
    assert wrong["recoveryCodes"] is None
    assert wrong["userErrors"][0]["field"] == "code"
    assert wrong["userErrors"][0]["code"] == "invalid_code"

    code = pyotp.TOTP(enrolment["secret"]).now()
    confirmed = (await gql(acme, token, CONFIRM, {"code": code}))["data"]["confirmTwoFactor"]
    assert len(confirmed["recoveryCodes"]) == 10
    assert (await gql(acme, token, STATUS))["data"]["twoFactor"]["enabled"] is True
    # The replayed code cannot turn it off; a recovery code can (dispatchers may opt out).
    replay = (await gql(acme, token, DISABLE, {"code": code}))["data"]["disableTwoFactor"]
    assert replay["userErrors"][0]["code"] == "invalid_code"
    off = (await gql(acme, token, DISABLE, {"code": confirmed["recoveryCodes"][0]}))["data"]
    assert off["disableTwoFactor"] == {"twoFactor": {"enabled": False}, "userErrors": []}

    other = await token_for(bolt, "dispatcher")
    assert (await gql(bolt, other, STATUS))["data"]["twoFactor"]["pending"] is False


async def test_admins_choose_the_roles_that_must_use_two_factor(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, bolt = two_tenants
    admin = await token_for(acme, "admin")
    dispatcher = await token_for(acme, "dispatcher")
    changed = (await gql(acme, admin, POLICY, {"roles": ["admin", "manager"]}))["data"]
    assert changed["setTwoFactorRequiredRoles"]["requiredRoles"] == ["admin", "manager"]
    refused = (await gql(acme, dispatcher, POLICY, {"roles": []}))["data"]
    assert refused["setTwoFactorRequiredRoles"]["userErrors"][0]["code"] == "forbidden"
    bad = (await gql(acme, admin, POLICY, {"roles": ["ceo"]}))["data"]
    assert bad["setTwoFactorRequiredRoles"]["userErrors"][0]["field"] == "roles"
    settings = (await gql(acme, admin, "{ settings }"))["data"]["settings"]
    assert settings["two_factor.required_roles"] == ["admin", "manager"]
    bolt_admin = await token_for(bolt, "admin")
    assert (await gql(bolt, bolt_admin, STATUS))["data"]["twoFactorRequiredRoles"] == ["admin"]
    assert (await gql(bolt, bolt_admin, STATUS))["data"]["twoFactor"]["required"] is True
