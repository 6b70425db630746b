"""The platform API's tests talk to the whole app, as the GraphQL tests do."""

from tests.graphql.conftest import client  # noqa: F401 (a fixture)
