"""The schema: the parts of every GraphQL module (`parts.py`) and plugins' types merged, with
limits and caches."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import strawberry
from strawberry.extensions import MaxTokensLimiter
from strawberry.tools import merge_types
from strawberry.types import Info

from patone.graphql.arguments import ArgumentRules
from patone.graphql.audience import CustomerScope
from patone.graphql.caches import DocumentCache, ValidDocuments
from patone.graphql.context import Context
from patone.graphql.error_log import PatoneSchema
from patone.graphql.errors import PatoneErrors
from patone.graphql.ids import from_global_id
from patone.graphql.limits import MAX_TOKENS, QueryLimits
from patone.graphql.nodes import resolve_node
from patone.graphql.parts import part, parts
from patone.graphql.types import Node
from patone.plugins.manager import PluginManager

SDL_PATH = Path(__file__).resolve().parents[2] / "schema.graphql"


@part("Query", 0)
@strawberry.type
class NodeQuery:
    @strawberry.field(
        description="Any object by its global id; null when this company has none the viewer "
        "may see."
    )
    async def node(self, info: Info[Context, None], id: strawberry.ID) -> Node | None:
        type_name, pk = from_global_id(id)
        return await resolve_node(info.context, type_name, pk)


def _plugin_types(third_party: bool) -> tuple[list[type], list[type]]:
    """Query and mutation types that plugins contribute (`graphql_types` hook)."""
    queries: list[type] = []
    mutations: list[type] = []
    manager = PluginManager(load_entry_points=True)
    try:
        for _name, impl in manager.implementations("graphql_types"):
            own = getattr(impl.plugin, "__name__", "").startswith("patone.")
            if not own and not third_party:
                continue
            contributed = cast(dict[str, list[type]], impl.function() or {})
            queries.extend(contributed.get("query", []))
            mutations.extend(contributed.get("mutation", []))
    finally:
        manager.close()
    return queries, mutations


def build_schema(
    *, third_party: bool = True, documents: ValidDocuments | None = None
) -> PatoneSchema:
    """The schema of this installation; `third_party=False` keeps only our own plugins' types
    (what schema.graphql records). Valid documents are kept in `documents` (a cache of its
    own when not given)."""
    plugin_queries, plugin_mutations = _plugin_types(third_party)
    query = merge_types("Query", (*parts("Query"), *plugin_queries))
    mutation = merge_types("Mutation", (*parts("Mutation"), *plugin_mutations))
    documents = documents if documents is not None else ValidDocuments()
    return PatoneSchema(
        query=query,
        mutation=mutation,
        subscription=merge_types("Subscription", tuple(parts("Subscription"))),
        types=parts("types"),
        # Factories: a fresh extension per request (the cache behind them is shared).
        # QueryLimits comes first: the document cache after it skips a refused document.
        extensions=[
            QueryLimits,
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            lambda: DocumentCache(documents),
            ArgumentRules,  # after the cache, which sets the operation's errors wholesale
            CustomerScope,
            PatoneErrors,
        ],
    )


documents = ValidDocuments()
schema = build_schema(documents=documents)


def sdl() -> str:
    """The schema in SDL with the project's own plugins, as committed in schema.graphql."""
    return build_schema(third_party=False).as_str() + "\n"
