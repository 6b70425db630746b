"""The graphql room: the company's API at /graphql (HTTP and graphql-transport-ws) and
GraphiQL's files."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from patone.core.runtime.rooms import Assembly, Room
from patone.graphql.app import GraphQLApp
from patone.graphql.graphiql import static_files


def _routes(assembly: Assembly) -> list[BaseRoute]:
    graphql = GraphQLApp(assembly.secret)
    return [
        Route("/graphql", graphql),  # other methods: `method_not_allowed`, as GraphQL
        WebSocketRoute("/graphql", graphql),
        Mount("/graphql/static", app=static_files()),
    ]


ROOM = Room("graphql", routes=_routes)
