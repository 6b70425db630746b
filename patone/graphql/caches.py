"""Documents that passed: parsed and validated once, then reused by their text.

strawberry's parser and validation caches keep whatever they are given, so every refused
document an attacker varies sat in them (up to 512 each, thousands of nodes apiece) and made
each full garbage collection of the process walk them. Here a document is kept only once it
has passed the limits and validation: refused ones are freed as soon as they are answered.
The limits (`QueryLimits`) still run on every request, before this, because a document's cost
depends on its variables.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from graphql import DocumentNode
from strawberry.extensions import SchemaExtension

from patone.graphql.limits import explain_abort

MAX_DOCUMENTS = 512


class ValidDocuments:
    """The most recently used valid documents, by their text."""

    def __init__(self, maxsize: int = MAX_DOCUMENTS) -> None:
        self.maxsize = maxsize
        self.hits = 0
        self._documents: OrderedDict[str, DocumentNode] = OrderedDict()

    def __contains__(self, query: str) -> bool:
        return query in self._documents

    def get(self, query: str) -> DocumentNode | None:
        document = self._documents.get(query)
        if document is not None:
            self.hits += 1
            self._documents.move_to_end(query)
        return document

    def put(self, query: str, document: DocumentNode) -> None:
        self._documents[query] = document
        self._documents.move_to_end(query)
        while len(self._documents) > self.maxsize:
            self._documents.popitem(last=False)


class DocumentCache(SchemaExtension):
    """Reuse a valid document by its text (no parsing, no validation); parse and validate any
    other that the limits let through, and keep it if it is valid."""

    def __init__(self, documents: ValidDocuments) -> None:
        super().__init__()
        self.documents = documents
        self.known = False

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        document = self.documents.get(context.query) if context.query else None
        if document is not None:
            context.graphql_document = document  # strawberry does not parse it again
            self.known = True
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.pre_execution_errors or context.graphql_document is None:
            yield  # refused by the limits: not validated, not kept
            return
        if self.known:
            context.pre_execution_errors = []  # only valid documents are kept
        else:
            from strawberry.schema.schema import validate_document  # imports this module

            errors = validate_document(
                context.schema._schema, context.graphql_document, context.validation_rules
            )
            context.pre_execution_errors = [explain_abort(error) for error in errors]
            if not errors and context.query:
                self.documents.put(context.query, context.graphql_document)
        yield
