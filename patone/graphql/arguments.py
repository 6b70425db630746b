"""What every argument must be before anything runs: text without NUL characters, and values its
scalar can read.

Postgres refuses a NUL character in text (and a scalar such as `DateTime` fails on
"yesterday" with a message meant for programmers), so such input used to get as far as the
database, or out of graphql-core as a raw Python message. This extension walks the operation's
arguments once, literal values (with the types the schema gives them) and variable values alike,
before execution, and refuses the first bad one with a code (`invalid`) and the
field it names (`input.name`; a variable's path starts with its name: `i.name`). Ids are checked
where every id is read, `patone.graphql.ids`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    ValueNode,
    VariableNode,
    Visitor,
    specified_scalar_types,
    type_from_ast,
    visit,
)
from strawberry.extensions import SchemaExtension

NUL = "\x00"
# How to write a value of our own scalars, for the message that refuses one.
_EXAMPLES = {
    "DateTime": "a date and time in ISO 8601, such as 2026-12-07T09:30:00+00:00",
    "Date": "a date in ISO 8601, such as 2026-12-07",
}


@dataclass(frozen=True)
class Problem:
    field: str
    message: str

    def error(self) -> GraphQLError:
        return GraphQLError(self.message, extensions={"code": "invalid", "field": self.field})


def _nul_in(value: Any) -> bool:
    """Whether a NUL character is in this value or anything inside it (a JSON scalar's)."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, Mapping):
        return any(_nul_in(k) or _nul_in(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_nul_in(item) for item in value)
    return False


def _nul_in_literal(node: ValueNode) -> bool:
    if isinstance(node, StringValueNode):
        return NUL in node.value
    if isinstance(node, ListValueNode):
        return any(_nul_in_literal(item) for item in node.values)
    if isinstance(node, ObjectValueNode):
        return any(_nul_in_literal(field.value) for field in node.fields)
    return False


def _unreadable(scalar: GraphQLScalarType, field: str) -> Problem:
    how = _EXAMPLES.get(scalar.name, f"a {scalar.name}")
    return Problem(field, f"{field.rsplit('.', 1)[-1]} must be {how}.")


def _leaf(
    type_: Any, field: str, *, value: Any = None, node: ValueNode | None = None
) -> Problem | None:
    has_nul = _nul_in(value) if node is None else _nul_in_literal(node)
    if has_nul:
        return Problem(field, f"{field.rsplit('.', 1)[-1]} may not contain NUL characters.")
    # Our own scalars say what went wrong in their own words; the built-in ones, and enums, are
    # checked by graphql-core's validation in words a client can read.
    if isinstance(type_, GraphQLScalarType) and type_.name not in specified_scalar_types:
        try:
            if node is None:
                type_.parse_value(value)
            else:
                type_.parse_literal(node)
        except Exception:  # the scalar's own error, whatever it raises, means "unreadable"
            return _unreadable(type_, field)
    return None


def value_problem(type_: Any, value: Any, field: str) -> Problem | None:
    """The first problem in a variable's value of this input type, or None."""
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if value is None:
        return None
    if isinstance(type_, GraphQLList):
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            found = value_problem(type_.of_type, item, f"{field}.{index}")
            if found:
                return found
        return None
    if isinstance(type_, GraphQLInputObjectType):
        if not isinstance(value, Mapping):
            return None  # graphql-core says what is wrong with it
        for name, item in value.items():
            known = type_.fields.get(name)
            found = value_problem(known.type if known else None, item, f"{field}.{name}")
            if found:
                return found
        return None
    if isinstance(type_, GraphQLEnumType):
        return _leaf(None, field, value=value)
    return _leaf(type_, field, value=value)


def literal_problem(type_: Any, node: ValueNode, field: str) -> Problem | None:
    """The first problem in a literal value of this input type, or None (variables inside it
    are checked where they are defined)."""
    if isinstance(node, VariableNode):
        return None
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if isinstance(type_, GraphQLList) and isinstance(node, ListValueNode):
        for index, item in enumerate(node.values):
            found = literal_problem(type_.of_type, item, f"{field}.{index}")
            if found:
                return found
        return None
    if isinstance(type_, GraphQLList):
        return literal_problem(type_.of_type, node, field)
    if isinstance(type_, GraphQLInputObjectType) and isinstance(node, ObjectValueNode):
        for member in node.fields:
            known = type_.fields.get(member.name.value)
            found = literal_problem(
                known.type if known else None, member.value, f"{field}.{member.name.value}"
            )
            if found:
                return found
        return None
    if isinstance(type_, GraphQLInputObjectType | GraphQLEnumType):
        return _leaf(None, field, node=node)
    return _leaf(type_, field, node=node)


class _Literals(Visitor):
    """Visits every argument in the document once (fragments too, never expanded)."""

    def __init__(self, type_info: TypeInfo) -> None:
        super().__init__()
        self.type_info = type_info
        self.found: Problem | None = None

    def enter_argument(self, node: ArgumentNode, *_: object) -> Any:
        if self.found is None:
            argument = self.type_info.get_argument()
            self.found = literal_problem(
                argument.type if argument else None, node.value, node.name.value
            )
        return self.SKIP if self.found is None else self.BREAK


# A document's literals are checked once while it lives (the parser cache keeps one object per
# text): walking a dispatch board's document costs ~0.4 ms, its variables almost nothing.
_checked: dict[tuple[int, int], tuple[weakref.ref[DocumentNode], Problem | None]] = {}


def _literals_problem(schema: GraphQLSchema, document: DocumentNode) -> Problem | None:
    key = (id(schema), id(document))
    cached = _checked.get(key)
    if cached is not None and cached[0]() is document:
        return cached[1]
    type_info = TypeInfo(schema)
    literals = _Literals(type_info)
    visit(document, TypeInfoVisitor(type_info, literals))

    def forget(ref: weakref.ref[DocumentNode]) -> None:
        if _checked.get(key, (None, None))[0] is ref:
            del _checked[key]

    _checked[key] = (weakref.ref(document, forget), literals.found)
    return literals.found


def document_problem(
    schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any]
) -> Problem | None:
    """The first bad argument of the document run with these variables, or None."""
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        for declared in definition.variable_definitions or ():
            name = declared.variable.name.value
            if name in variables:
                type_: GraphQLInputType | None = type_from_ast(schema, declared.type)  # type: ignore[assignment]
                found = value_problem(type_, variables[name], name)
                if found:
                    return found
    return _literals_problem(schema, document)


class ArgumentRules(SchemaExtension):
    """Refuse an operation with a bad argument before it runs (code `invalid`, `field` the
    argument's path). It comes after the validation cache, which sets the operation's errors
    wholesale: a bad argument's refusal replaces graphql-core's own words for the same value."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            found = document_problem(context.schema._schema, document, context.variables or {})
            if found:
                context.pre_execution_errors = [found.error()]
        yield
