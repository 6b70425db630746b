"""Which partner's API client created a request, and partners' own permission to see them.

Partners see and change only the requests their client created (`service_requests.can_see`);
the column names that client by its public `client_id`. Requests made before this name no
client, so no partner sees them. `requests.view_own` is what a partner's `requests:read` scope
grants instead of `requests.view` (every request); Admins hold every permission, so theirs is
added too.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from patone.core.runtime.db import engine

ID = "2026-12-07T18:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "the API client that created a request"


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="tenant", description=DESCRIPTION)

    async def request_api_clients() -> None:
        await engine.execute(
            """
            ALTER TABLE service_requests
                ADD COLUMN api_client varchar(64) REFERENCES api_clients (client_id);
            CREATE INDEX service_requests_api_client ON service_requests (api_client, created_at)
                WHERE api_client IS NOT NULL;
            UPDATE roles SET permissions = array_append(permissions, 'requests.view_own')
                WHERE name = 'admin' AND NOT 'requests.view_own' = ANY (permissions);
            """
        )

    manager.add_raw(request_api_clients)

    return manager
