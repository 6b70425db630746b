"""Query cost: refuse an operation whose worst-case work is too large, before it runs.

Each selected field costs 1; a field with a `first` argument multiplies the cost of what is
selected inside it by that page size (a variable's value counts, not its declaration). Depth,
token and alias limits come from strawberry; this is the one it lacks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import SchemaExtension

MAX_COST = 10_000
DEFAULT_PAGE = 50


def _page_size(field: FieldNode, variables: Mapping[str, Any]) -> int:
    for argument in field.arguments or ():
        if argument.name.value != "first":
            continue
        value = argument.value
        if isinstance(value, IntValueNode):
            return max(int(value.value), 1)
        if isinstance(value, VariableNode):
            given = variables.get(value.name.value)
            return max(int(given), 1) if isinstance(given, int) else DEFAULT_PAGE
    return 1


def selection_cost(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    seen: frozenset[str] = frozenset(),
) -> int:
    if selection_set is None:
        return 0
    total = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            inner = selection_cost(selection.selection_set, fragments, variables, seen)
            total += 1 + _page_size(selection, variables) * inner
        elif isinstance(selection, InlineFragmentNode):
            total += selection_cost(selection.selection_set, fragments, variables, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                total += selection_cost(fragment.selection_set, fragments, variables, seen | {name})
    return total


class CostLimiter(SchemaExtension):
    """Refuse operations costing more than `max_cost` (code COST_LIMIT_EXCEEDED)."""

    def __init__(self, max_cost: int = MAX_COST) -> None:
        super().__init__()
        self.max_cost = max_cost

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and not context.pre_execution_errors:
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            variables = context.variables or {}
            cost = max(
                (selection_cost(op.selection_set, fragments, variables) for op in operations),
                default=0,
            )
            if cost > self.max_cost:
                context.pre_execution_errors = [
                    GraphQLError(
                        f"This query would cost {cost}, more than the limit of {self.max_cost}; "
                        "ask for fewer fields or smaller pages.",
                        extensions={"code": "COST_LIMIT_EXCEEDED", "cost": cost},
                    )
                ]
        yield
