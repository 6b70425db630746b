"""The company and the bearer token an endpoint on a company's address checks for first."""

from __future__ import annotations

from typing import Any

import pytest

from patone.core.runtime.errors import UserError
from patone.tenants.registry import TenantInfo
from patone.tenants.web import NAME_A_COMPANY, SIGN_IN, company, company_and_bearer


def _scope(tenant: TenantInfo | None, authorization: str | None = None) -> dict[str, Any]:
    """A request's scope as the tenant middleware leaves it."""
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return {"type": "http", "headers": headers, "state": {"tenant": tenant}}


def test_each_request_gets_the_company_it_named(two_tenants: tuple[TenantInfo, TenantInfo]) -> None:
    acme, bolt = two_tenants
    assert company(_scope(acme)).id == acme.id
    assert company(_scope(bolt)).id == bolt.id


def test_a_request_naming_no_company_is_refused_with_the_doors_message() -> None:
    with pytest.raises(UserError) as default:
        company(_scope(None))
    with pytest.raises(UserError) as own:
        company({"type": "http", "headers": []}, "Sign in on your company's address.")
    assert (default.value.code, default.value.status) == ("tenant_required", 404)
    assert default.value.message == NAME_A_COMPANY
    assert own.value.message == "Sign in on your company's address."


def test_the_bearer_token_comes_with_its_company(
    two_tenants: tuple[TenantInfo, TenantInfo],
) -> None:
    acme, bolt = two_tenants
    tenant, token = company_and_bearer(_scope(acme, "Bearer  abc.def "))
    assert (tenant.id, token) == (acme.id, "abc.def")
    tenant, token = company_and_bearer(_scope(bolt, "bearer xyz"))  # the scheme in any case
    assert (tenant.id, token) == (bolt.id, "xyz")


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwdw=="])
def test_no_bearer_token_is_unauthenticated(
    two_tenants: tuple[TenantInfo, TenantInfo], authorization: str | None
) -> None:
    acme, _ = two_tenants
    with pytest.raises(UserError) as refused:
        company_and_bearer(_scope(acme, authorization))
    assert (refused.value.code, refused.value.status) == ("unauthenticated", 401)
    assert refused.value.message == SIGN_IN


def test_no_company_is_said_before_no_token() -> None:
    with pytest.raises(UserError) as refused:
        company_and_bearer(_scope(None), "Sign in as an admin: send an access token.")
    assert refused.value.code == "tenant_required"
