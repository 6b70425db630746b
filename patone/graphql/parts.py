"""The schema's parts, found rather than listed: a GraphQL module marks its query, mutation
and subscription classes (and types reached only through an interface) with `@part(root,
rank)`, and the schema merges every part of the package in rank order. A new module adds its
fields without editing the schema; the ranks keep the fields' order, and so schema.graphql,
stable.

Parts are found by importing every module of `patone.graphql` except those that import the
finished schema (`SCHEMA_USERS`), which would import it half-built.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Literal, TypeVar

Root = Literal["Query", "Mutation", "Subscription", "types"]
T = TypeVar("T", bound=type)

SCHEMA_USERS = {"patone.graphql.schema", "patone.graphql.app", "patone.graphql.room"}
_parts: dict[Root, list[tuple[int, type]]] = {
    "Query": [],
    "Mutation": [],
    "Subscription": [],
    "types": [],
}


def part(root: Root, rank: int) -> Callable[[T], T]:
    """Make the decorated strawberry type a part of `root` (`types`: a type the schema must
    know although no field names it, as an interface's implementation)."""

    def mark(cls: T) -> T:
        _parts[root].append((rank, cls))
        return cls

    return mark


def parts(root: Root) -> list[type]:
    """Every part of `root` in the package, by rank."""
    import patone.graphql

    for module in pkgutil.iter_modules(patone.graphql.__path__, "patone.graphql."):
        if module.name not in SCHEMA_USERS:
            importlib.import_module(module.name)
    ranked = sorted(_parts[root], key=lambda found: found[0])
    ranks = [rank for rank, _ in ranked]
    assert len(set(ranks)) == len(ranks), f"two {root} parts share a rank: {ranks}"
    return [cls for _, cls in ranked]
