"""`GET /api/tenant`: who this company is and what its schema holds, for its admins only (an
admin's access token as bearer), since it names the schema, the role, the plan, the domains
and the tables. Read inside the company's own transaction, so it also shows that the request
reached the right schema."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from patone.core.common.permissions import require
from patone.core.identity.authentication import authenticate
from patone.tenants.isolation import tenant_transaction
from patone.tenants.web import company_and_bearer


async def tenant_info(request: Request) -> JSONResponse:
    tenant, token = company_and_bearer(request.scope, "Sign in as an admin: send an access token.")
    actor, _claims = await authenticate(request.app.state.signing_secret, tenant, token)
    require(actor, "settings.manage")
    async with tenant_transaction(tenant) as transaction:
        connection = transaction.connection
        where = await connection.fetchrow("SELECT current_schema() AS schema, current_user AS role")
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
        )
        migrations = await connection.fetchval("SELECT count(*) FROM migration")
    return JSONResponse(
        {
            "tenant": tenant.as_dict(),
            "schema": {
                "name": where["schema"],
                "role": where["role"],
                "tables": [row["tablename"] for row in tables],
                "migrations": migrations,
            },
        }
    )
