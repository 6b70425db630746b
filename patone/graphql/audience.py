"""What a customer may run on the company's API: watching their own requests, nothing else.

A customer's token (from the portal's sign-in, `core.customer_sign_in`) is accepted by the
tenant API so the tracking page can subscribe to `requestTracking`. Its actor holds no
permission, so every resolver that checks one refuses it already; this extension refuses, before
anything runs, every operation whose top-level fields are not on `CUSTOMER_FIELDS`, so a field
that checks nothing (a company's public name, say) is not opened to customers by accident.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import FieldNode, GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

CUSTOMER_FIELDS = frozenset({"requestTracking", "__typename"})


class CustomerScope(SchemaExtension):
    """Refuse a customer's operation that asks for anything but `CUSTOMER_FIELDS` (code
    `forbidden`, like a missing permission)."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        actor = getattr(context.context, "actor", None)
        document = context.graphql_document
        if actor is not None and actor.kind == "customer" and document is not None:
            asked = [
                selection.name.value if isinstance(selection, FieldNode) else "..."
                for definition in document.definitions
                if isinstance(definition, OperationDefinitionNode)
                for selection in definition.selection_set.selections
            ]
            refused = sorted(set(asked) - CUSTOMER_FIELDS)
            if refused:
                context.pre_execution_errors = [
                    GraphQLError(
                        f"A customer may only watch their own requests (requestTracking), "
                        f"not {', '.join(refused)}.",
                        extensions={"code": "forbidden"},
                    )
                ]
        yield
