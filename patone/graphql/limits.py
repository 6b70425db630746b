"""Query limits: refuse a document whose shape is too large, before anything expands it.

One walk of the document measures, for every operation, how deep it nests, how many aliases it
uses and what it would cost once its fragments are spread:

- each selected field costs 1; a field with a `first` argument multiplies the cost of what is
  selected inside it by that page size: the literal, the variable's value, or (when omitted)
  the argument's default as the schema declares it, so the connection's own default page counts;
- depth counts nested fields that select fields, as strawberry's depth limiter does
  (introspection fields are not counted, so GraphiQL's schema query passes);
- aliases are counted over the whole document.

Each fragment is measured once and its figures reused at every spread, so a fragment spreading
the previous one twice, twenty times over, costs twenty steps, not a million; the walk stops
as soon as a limit is passed. `QueryLimits` runs this first, and `LimitedValidationCache`
skips graphql-core's validation of a refused document, so nothing after the refusal spreads the
fragments again. `check` is a plain function of (document, schema, variables) so every
transport (HTTP, WebSocket) applies the same limits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)
from graphql.validation.rules import overlapping_fields_can_be_merged
from strawberry.extensions import SchemaExtension, ValidationCache

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_COST = 10_000
MAX_TOKENS = 2000
# graphql-core checks that fields of one name can be merged by comparing them pairwise, and
# gives up ("Validation aborted.") after spending this budget; its default (500,000) took
# 1.7 s on a document of 490 `viewer { tenant }` within the token limit. 10,000 stops that
# within about 20 ms, while the dispatch board and GraphiQL's introspection spend nothing.
OVERLAP_BUDGET = 10_000
overlapping_fields_can_be_merged.MAX_COMPLEXITY_BUDGET = OVERLAP_BUDGET
_ABORTED = "Validation aborted."
# A page size written with more digits than this is simply "too many" (and Python refuses to
# parse integers of thousands of digits).
_MAX_DIGITS = 12


@dataclass(frozen=True)
class Limits:
    """The most a document may ask for."""

    depth: int = MAX_DEPTH
    aliases: int = MAX_ALIASES
    cost: int = MAX_COST


class LimitExceeded(Exception):
    """A document passed one of its limits; `code` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_graphql_error(self) -> GraphQLError:
        return GraphQLError(self.message, extensions={"code": self.code})


@dataclass(frozen=True)
class _Size:
    cost: int = 0
    aliases: int = 0
    depth: int = 0


class _Walk:
    """One measurement: the running totals and each fragment's figures, once measured."""

    def __init__(
        self,
        document: DocumentNode,
        schema: GraphQLSchema,
        variables: Mapping[str, Any],
        limits: Limits,
    ) -> None:
        self.schema = schema
        self.variables = _with_defaults(document, variables)
        self.limits = limits
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.measured: dict[str, _Size] = {}
        self.in_progress: set[str] = set()
        self.aliases = 0

    def operation(self, operation: OperationDefinitionNode) -> _Size:
        root = {
            OperationType.QUERY: self.schema.query_type,
            OperationType.MUTATION: self.schema.mutation_type,
            OperationType.SUBSCRIPTION: self.schema.subscription_type,
        }.get(operation.operation)
        return self.selections(operation.selection_set, root)

    def selections(
        self, selection_set: SelectionSetNode | None, parent: GraphQLNamedType | None
    ) -> _Size:
        if selection_set is None:
            return _Size()
        cost = depth = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                inner, nested = self.field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                size = self.selections(selection.selection_set, target)
                inner, nested = size.cost, size.depth
            elif isinstance(selection, FragmentSpreadNode):
                size = self.fragment(selection.name.value)
                inner, nested = size.cost, size.depth
            else:  # pragma: no cover - graphql-core has no other selection
                continue
            cost += inner
            depth = max(depth, nested)
            if cost > self.limits.cost:
                raise LimitExceeded(
                    "COST_LIMIT_EXCEEDED",
                    f"This query would cost more than the limit of {self.limits.cost}; "
                    "ask for fewer fields or smaller pages.",
                )
        return _Size(cost=cost, depth=depth)

    def field(self, node: FieldNode, parent: GraphQLNamedType | None) -> tuple[int, int]:
        """The field's cost and the depth it adds."""
        if node.alias is not None:
            self.aliases += 1
            if self.aliases > self.limits.aliases:
                raise LimitExceeded(
                    "ALIAS_LIMIT_EXCEEDED",
                    f"This document uses more than {self.limits.aliases} aliases.",
                )
        definition = None
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            definition = parent.fields.get(node.name.value)
        inner_type = get_named_type(definition.type) if definition is not None else None
        inner = self.selections(node.selection_set, inner_type)
        cost = 1 + self.page_size(node, definition) * inner.cost
        if node.selection_set is None or node.name.value.startswith("__"):
            return cost, 0  # what introspection asks for is not counted (GraphiQL nests deep)
        return cost, 1 + inner.depth

    def fragment(self, name: str) -> _Size:
        known = self.measured.get(name)
        if known is not None:
            # Its aliases were counted once when it was measured: every spread repeats them.
            self.aliases += known.aliases
            if self.aliases > self.limits.aliases:
                raise LimitExceeded(
                    "ALIAS_LIMIT_EXCEEDED",
                    f"This document uses more than {self.limits.aliases} aliases.",
                )
            return known
        definition = self.fragments.get(name)
        if definition is None:
            return _Size()  # an unknown fragment: validation says so
        if name in self.in_progress:
            raise LimitExceeded("FRAGMENT_CYCLE", f"Fragment {name} spreads itself.")
        self.in_progress.add(name)
        aliases_before = self.aliases
        size = self.selections(
            definition.selection_set, self.schema.get_type(definition.type_condition.name.value)
        )
        self.in_progress.discard(name)
        measured = _Size(size.cost, self.aliases - aliases_before, size.depth)
        self.measured[name] = measured
        return measured

    def page_size(self, node: FieldNode, definition: Any) -> int:
        """How many items the field may return: its `first`, or the schema's default for it."""
        declared = definition.args.get("first") if definition is not None else None
        default = declared.default_value if declared is not None else None
        size = default if isinstance(default, int) else 1
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                digits = value.value.lstrip("-")
                size = int(value.value) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS
            elif isinstance(value, VariableNode):
                given = self.variables.get(value.name.value)
                if isinstance(given, int):
                    size = given
        return max(size, 1)


def _with_defaults(document: DocumentNode, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The request's variables, with the documents' own defaults for those not sent (the
    largest, should two operations declare one name differently: fragments are measured once
    for all of them)."""
    values = dict(variables)
    defaults: dict[str, int] = {}
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        for declared in definition.variable_definitions or ():
            name, default = declared.variable.name.value, declared.default_value
            if name not in values and isinstance(default, IntValueNode):
                digits = default.value.lstrip("-")
                number = int(default.value) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS
                defaults[name] = max(defaults.get(name, number), number)
    return {**defaults, **values}


def measure(
    document: DocumentNode,
    schema: GraphQLSchema,
    variables: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
) -> None:
    """Raise `LimitExceeded` when the document passes a limit (depth, aliases, cost, or a
    fragment that spreads itself)."""
    walk = _Walk(document, schema, variables or {}, limits or Limits())
    total = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            # Every operation counts: validation walks the whole document, not just the one run.
            size = walk.operation(definition)
            if size.depth > walk.limits.depth:
                raise LimitExceeded(
                    "DEPTH_LIMIT_EXCEEDED",
                    f"This query nests deeper than {walk.limits.depth} levels; "
                    "ask for less nested data.",
                )
            total += size.cost
            if total > walk.limits.cost:
                raise LimitExceeded(
                    "COST_LIMIT_EXCEEDED",
                    f"This query would cost more than the limit of {walk.limits.cost}; "
                    "ask for fewer fields or smaller pages.",
                )


def check(
    document: DocumentNode,
    schema: GraphQLSchema,
    variables: Mapping[str, Any] | None = None,
    limits: Limits | None = None,
) -> GraphQLError | None:
    """The error to answer when the document passes a limit, or None."""
    try:
        measure(document, schema, variables, limits)
    except LimitExceeded as exceeded:
        return exceeded.as_graphql_error()
    return None


class QueryLimits(SchemaExtension):
    """Refuse a document over its limits before validation (put it first among the
    extensions: the ones after it see the refusal and do nothing)."""

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__()
        self.limits = limits or Limits()

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and not context.pre_execution_errors:
            error = check(document, context.schema._schema, context.variables, self.limits)
            if error is not None:
                context.pre_execution_errors = [error]
        yield


class LimitedValidationCache(ValidationCache):
    """strawberry's validation cache, which would validate (and so spread every fragment of) a
    document `QueryLimits` already refused; this one leaves a refused document alone."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if not context.pre_execution_errors:
            errors = self.cached_validate_document(
                context.schema._schema, context.graphql_document, context.validation_rules
            )
            context.pre_execution_errors = [_with_code(error) for error in errors]
        yield


def _with_code(error: GraphQLError) -> GraphQLError:
    """graphql-core's give-up on a document too costly to validate, said so with a code."""
    if error.message != _ABORTED:
        return error
    return GraphQLError(
        "This document repeats the same fields too often to be checked; ask for each once.",
        extensions={"code": "QUERY_TOO_COMPLEX"},
    )
