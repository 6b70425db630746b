"""Every text argument of every mutation refuses a NUL character with `invalid` and its field,
before anything runs: the schema is walked, so a mutation added later is covered too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    get_named_type,
    is_composite_type,
)

from patone.graphql.ids import to_global_id
from patone.graphql.schema import schema
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.graphql.conftest import Gql, token_for

NUL_TEXT = "a\x00b"
_SAMPLES = {
    "String": "x",
    "ID": to_global_id("Customer", 1),
    "Int": 1,
    "Float": 1.0,
    "Boolean": True,
    "DateTime": "2026-12-07T09:30:00+00:00",
    "Date": "2026-12-07",
    "JSON": {},
}


def _sample(type_: GraphQLInputType) -> Any:
    """A value of this type that graphql-core accepts (required fields filled in)."""
    if isinstance(type_, GraphQLNonNull):
        return _sample(type_.of_type)
    if isinstance(type_, GraphQLList):
        return []
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, GraphQLInputObjectType):
        return {
            name: _sample(field.type)
            for name, field in type_.fields.items()
            if isinstance(field.type, GraphQLNonNull) and field.default_value is None
        }
    assert isinstance(type_, GraphQLScalarType)
    return _SAMPLES[type_.name]


def _text_paths(
    type_: GraphQLInputType, seen: frozenset[str] = frozenset()
) -> Iterator[tuple[str, ...]]:
    """Paths to every String inside a value of this type (lists: their first item)."""
    if isinstance(type_, GraphQLNonNull):
        yield from _text_paths(type_.of_type, seen)
    elif isinstance(type_, GraphQLList):
        for path in _text_paths(type_.of_type, seen):
            yield ("0", *path)
    elif isinstance(type_, GraphQLInputObjectType) and type_.name not in seen:
        for name, field in type_.fields.items():
            for path in _text_paths(field.type, seen | {type_.name}):
                yield (name, *path)
    elif isinstance(type_, GraphQLScalarType) and type_.name == "String":
        yield ()


def _with_text(type_: GraphQLInputType, path: tuple[str, ...]) -> Any:
    """A sample value with NUL_TEXT at `path`."""
    if isinstance(type_, GraphQLNonNull):
        return _with_text(type_.of_type, path)
    if not path:
        return NUL_TEXT
    if isinstance(type_, GraphQLList):
        return [_with_text(type_.of_type, path[1:])]
    assert isinstance(type_, GraphQLInputObjectType)
    value = _sample(type_)
    field: GraphQLInputField = type_.fields[path[0]]
    value[path[0]] = _with_text(field.type, path[1:])
    return value


def _cases() -> Iterator[tuple[str, str, dict[str, Any], str]]:
    """(mutation, document, variables, the field a refusal names) for every text argument."""
    mutations = schema._schema.mutation_type
    assert mutations is not None
    for name, field in mutations.fields.items():
        for argument_name, argument in field.args.items():
            for path in _text_paths(argument.type):
                yield name, *_document(name, field, argument_name, argument, path)


def _document(
    name: str, field: GraphQLField, target: str, argument: GraphQLArgument, path: tuple[str, ...]
) -> tuple[str, dict[str, Any], str]:
    declared, passed, variables = [], [], {}
    for index, (argument_name, arg) in enumerate(field.args.items()):
        if argument_name != target and not isinstance(arg.type, GraphQLNonNull):
            continue
        variable = f"v{index}"
        declared.append(f"${variable}: {arg.type}")
        passed.append(f"{argument_name}: ${variable}")
        variables[variable] = (
            _with_text(arg.type, path) if argument_name == target else _sample(arg.type)
        )
        if argument_name == target:
            refused_field = ".".join((variable, *path))
    selection = " { __typename }" if is_composite_type(get_named_type(field.type)) else ""
    document = f"mutation({', '.join(declared)}) {{ {name}({', '.join(passed)}){selection} }}"
    return document, variables, refused_field


async def test_every_text_argument_of_every_mutation_refuses_a_nul_character(
    gql: Gql, two_tenants: tuple[TenantInfo, TenantInfo]
) -> None:
    acme, _bolt = two_tenants
    token = await token_for(acme, "admin")
    cases = list(_cases())
    assert len(cases) > 50  # the walk found the schema's mutations
    before = [await _activity(tenant) for tenant in two_tenants]
    for mutation, document, variables, field in cases:
        result = await gql(acme, token, document, variables)
        assert "internal_error" not in json.dumps(result), (mutation, result)
        [error] = result["errors"]
        assert error["extensions"] == {
            "code": "invalid",
            "field": field,
            "request_id": error["extensions"]["request_id"],
        }, (mutation, result)
        assert result["data"] is None  # refused before anything ran
    assert [await _activity(tenant) for tenant in two_tenants] == before  # nothing changed


async def _activity(tenant: TenantInfo) -> int:
    async with tenant_transaction(tenant) as transaction:
        return int(await transaction.connection.fetchval("SELECT count(*) FROM activity_log"))
