"""What the log says of a GraphQL error: a client's mistake is one INFO line, our fault an
ERROR with its traceback.

strawberry logs every error of a result at ERROR with a traceback (`Schema.process_errors`), so
a fuzzing client or a partner sending a bad field filled the log with tracebacks that were not
ours to fix. Our schemas log through `PatoneSchema` instead: a syntax, validation or limit
error (no original error, or a `GraphQLError`) and a refusal of ours (`UserError`: forbidden,
not found, invalid input, rate limited) are the client's; an `Unavailable` is ours but expected
(one line, no traceback); anything else is unexpected.
"""

from __future__ import annotations

import logging

import strawberry
from graphql.error import GraphQLError
from strawberry.types import ExecutionContext

from patone.core.runtime.errors import Unavailable, UserError

log = logging.getLogger(__name__)


def is_client_mistake(error: GraphQLError) -> bool:
    """Whether the error is the client's to fix, not ours."""
    original = error.original_error
    return original is None or isinstance(original, UserError | GraphQLError)


def log_error(error: GraphQLError) -> None:
    """Log one GraphQL error at the level its cause deserves."""
    original = error.original_error
    if is_client_mistake(error):
        code = getattr(original, "code", None) or (error.extensions or {}).get("code")
        log.info("client error in GraphQL: %s", error.message, extra={"code": code})
    elif isinstance(original, Unavailable):
        log.error("unavailable in GraphQL: %s (%s)", type(original).__name__, original.message)
    else:
        log.error("unexpected error in GraphQL", exc_info=original)


class PatoneSchema(strawberry.Schema):
    """A strawberry schema whose errors are logged by `log_error`."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            log_error(error)
