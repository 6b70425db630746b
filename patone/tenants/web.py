"""What a JSON endpoint on a company's address checks first: that the request names a company,
and that it carries a bearer token.

The tenant middleware (`patone/http/tenancy.py`) has already put the company, or None, in the
request's state. The refusals are `UserError`s rather than responses so that each door answers
them in its own shape: JSON errors (the app's handler, `user_error_response`), GraphQL's
`errors` (`patone/graphql/errors.refused`). This sits below the plugins so that built-in
providers' routes reach it too, through `patone/plugins/host.py`.
"""

from __future__ import annotations

from starlette.types import Scope

from patone.core.runtime.errors import UserError
from patone.core.runtime.web import bearer_token
from patone.tenants.registry import TenantInfo

NAME_A_COMPANY = "Name a company: use its subdomain or an X-Tenant header."
SIGN_IN = "Sign in: send an access token."


def company(scope: Scope, message: str = NAME_A_COMPANY) -> TenantInfo:
    """The company the request is for; `tenant_required` (404) with `message` if it names none."""
    tenant: TenantInfo | None = scope.get("state", {}).get("tenant")
    if tenant is None:
        raise UserError("tenant_required", message)
    return tenant


def company_and_bearer(scope: Scope, message: str = SIGN_IN) -> tuple[TenantInfo, str]:
    """The company and the bearer token, checked in that order; `unauthenticated` (401) with
    `message` without a token. The token is not verified here: each door knows which kinds
    it accepts."""
    tenant = company(scope)
    token = bearer_token(scope)
    if token is None:
        raise UserError("unauthenticated", message)
    return tenant, token
