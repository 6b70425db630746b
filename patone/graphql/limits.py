"""Query limits: refuse a document whose shape is too large, before anything expands it.

One walk of the document measures, for every operation, how deep it nests, how many aliases it
uses and what it would cost once its fragments are spread:

- each selected field costs 1; a field with a `first` (or `last`) argument multiplies the cost
  of what is selected inside it by that page size: the literal, the variable's value, or (when
  omitted) the default of `first` as the schema declares it, so the connection's own default
  page counts;
- depth counts nested fields that select fields, as strawberry's depth limiter does
  (introspection fields are not counted, so GraphiQL's schema query passes);
- aliases are counted over the whole document;
- one response name may be selected at most `MAX_REPEATS` times in one place (what graphql-core
  compares pairwise), checked last so a fan-out is refused for its cost.

Each fragment is measured once and its figures reused at every spread, so a fragment spreading
the previous one twice, twenty times over, costs twenty steps, not a million; the walk stops
as soon as a limit is passed. `QueryLimits` runs this first, and the document cache after it
(`patone.graphql.caches`) does not validate a refused document, so nothing after the refusal
spreads the fragments again. `check` is a plain function of (document, schema, variables), so
every transport (HTTP, WebSocket) can apply the same limits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
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
from strawberry.extensions import SchemaExtension

MAX_DEPTH = 10
MAX_ALIASES = 30
MAX_COST = 10_000
# graphql-core checks that fields of one response name in one place can be merged by comparing
# every pair of them; a document of 2,000 tokens repeating one field took 30-80 ms to validate
# even with the budget below. Real documents repeat a name a few times (`id`, `__typename` in
# each fragment), so one name more than this often in one selection is refused before that.
MAX_REPEATS = 50
MAX_TOKENS = 2000
# Comments, commas and long string literals are not tokens, yet graphql-core reads them a
# character at a time: 1 MB of comments took 0.2-0.3 s to parse. 2,000 tokens of ordinary
# GraphQL are about 15,000 characters; graphql-core refuses a longer text before reading it.
MAX_DOCUMENT_CHARS = 50_000
# graphql-core checks that fields of one name can be merged by comparing them pairwise, and
# gives up ("Validation aborted.") after spending this budget; its default (500,000) took
# 1.7 s on a document of 490 `viewer { tenant }` within the token limit. 10,000 stops that
# within about 20 ms, while the dispatch board and GraphiQL's introspection spend nothing.
OVERLAP_BUDGET = 10_000
overlapping_fields_can_be_merged.MAX_COMPLEXITY_BUDGET = OVERLAP_BUDGET
_ABORTED = "Validation aborted."
_TOO_REPETITIVE = (
    "This document repeats the same fields too often to be checked; ask for each once."
)
# A page size written with more digits than this is simply "too many" (and Python refuses to
# parse integers of thousands of digits).
_MAX_DIGITS = 12


@dataclass(frozen=True)
class Limits:
    """The most a document may ask for."""

    depth: int = MAX_DEPTH
    aliases: int = MAX_ALIASES
    cost: int = MAX_COST
    repeats: int = MAX_REPEATS


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
    # How often each response name is selected at this level, fragments spread.
    names: Mapping[str, int] = field(default_factory=dict)


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
        self.most_repeated = 0

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
        names: dict[str, int] = {}
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                inner, nested = self.field(selection, parent)
                name = (selection.alias or selection.name).value
                names[name] = names.get(name, 0) + 1
            else:
                if isinstance(selection, InlineFragmentNode):
                    condition = selection.type_condition
                    target = self.schema.get_type(condition.name.value) if condition else parent
                    size = self.selections(selection.selection_set, target)
                elif isinstance(selection, FragmentSpreadNode):
                    size = self.fragment(selection.name.value)
                else:  # pragma: no cover - graphql-core has no other selection
                    continue
                inner, nested = size.cost, size.depth
                for name, times in size.names.items():
                    names[name] = names.get(name, 0) + times
            cost += inner
            depth = max(depth, nested)
            if cost > self.limits.cost:
                raise _too_costly(self.limits)
        self.most_repeated = max(self.most_repeated, *names.values(), 0)
        return _Size(cost=cost, depth=depth, names=names)

    def field(self, node: FieldNode, parent: GraphQLNamedType | None) -> tuple[int, int]:
        """The field's cost and the depth it adds."""
        if node.alias is not None:
            self.count_aliases(1)
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
            self.count_aliases(known.aliases)
            return known
        definition = self.fragments.get(name)
        if definition is None:
            return _Size()  # an unknown fragment: validation says so
        if name in self.in_progress:
            raise LimitExceeded("invalid_document", f"Fragment {name} spreads itself.")
        self.in_progress.add(name)
        aliases_before = self.aliases
        size = self.selections(
            definition.selection_set, self.schema.get_type(definition.type_condition.name.value)
        )
        self.in_progress.discard(name)
        measured = _Size(size.cost, self.aliases - aliases_before, size.depth, size.names)
        self.measured[name] = measured
        return measured

    def count_aliases(self, more: int) -> None:
        self.aliases += more
        if self.aliases > self.limits.aliases:
            raise LimitExceeded(
                "alias_limit_exceeded",
                f"This document uses more than {self.limits.aliases} aliases.",
            )

    def page_size(self, node: FieldNode, definition: Any) -> int:
        """How many items the field may return: its `first` (or `last`, which takes over when
        given), or the schema's default for it."""
        declared = definition.args.get("first") if definition is not None else None
        default = declared.default_value if declared is not None else None
        size = default if isinstance(default, int) else 1
        # `last` read after `first`, so that a given `last` is the size that counts.
        arguments = sorted(node.arguments or (), key=lambda a: a.name.value == "last")
        for argument in arguments:
            if argument.name.value not in ("first", "last"):
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


def _too_costly(limits: Limits) -> LimitExceeded:
    return LimitExceeded(
        "cost_limit_exceeded",
        f"This query would cost more than the limit of {limits.cost}; "
        "ask for fewer fields or smaller pages.",
    )


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
                    "depth_limit_exceeded",
                    f"This query nests deeper than {walk.limits.depth} levels; "
                    "ask for less nested data.",
                )
            total += size.cost
            if total > walk.limits.cost:
                raise _too_costly(walk.limits)
    # Checked last, so a fan-out is refused for its cost, the figure a client can act on.
    if walk.most_repeated > walk.limits.repeats:
        raise LimitExceeded("query_too_complex", _TOO_REPETITIVE)


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
    """Refuse a text too long to parse (`MAX_DOCUMENT_CHARS`), and a document over its limits
    before validation (put it first among the extensions: the ones after it see the refusal
    and do nothing)."""

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__()
        self.limits = limits or Limits()

    def on_operation(self) -> Iterator[None]:
        # A syntax error like the token limit's: "Source contains more than 50000 code points".
        # (graphql-core 3.3 takes the option; strawberry's ParseOptions type does not list it.)
        options = self.execution_context.parse_options
        options["max_source_length"] = MAX_DOCUMENT_CHARS  # type: ignore[typeddict-unknown-key]
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and not context.pre_execution_errors:
            error = check(document, context.schema._schema, context.variables, self.limits)
            if error is not None:
                context.pre_execution_errors = [error]
        yield


def explain_abort(error: GraphQLError) -> GraphQLError:
    """graphql-core's give-up on a document too costly to validate, said so with a code."""
    if error.message != _ABORTED:
        return error
    return GraphQLError(_TOO_REPETITIVE, extensions={"code": "query_too_complex"})
