"""What clients see when something goes wrong: codes they can act on, never a traceback.

A refusal from a service (`UserError`: not found, forbidden, invalid) raised in a query becomes
a GraphQL error whose `extensions` carry `code` and `field` (a rate limit: `RATE_LIMITED` and
`retry_after`; our side too busy, e.g. no Redis connection free: `UNAVAILABLE` and
`retry_after`, logged once). Anything else is logged with its traceback (by
`patone.graphql.error_log`) and reaches the client only as "Unexpected error." with the
request id (and, when DEBUG is on, the traceback in `extensions.detail`).
"""

from __future__ import annotations

import traceback

from graphql.error import GraphQLError
from starlette.responses import JSONResponse
from strawberry.extensions import MaskErrors

from patone.core.errors import Unavailable, UserError
from patone.core.ratelimits import RateLimited
from patone.log import debug_var, request_id_var


class PatoneErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=self._should_mask)

    @staticmethod
    def _should_mask(error: GraphQLError) -> bool:
        original = error.original_error
        if original is None:
            return False  # syntax, validation and limit errors are the client's to read
        if isinstance(original, UserError | GraphQLError):
            return False
        # Logged by the schema (`patone.graphql.error_log`), not here: once per error.
        return not isinstance(original, Unavailable)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        masked = super().anonymise_error(error)
        masked.extensions = {"code": "internal_error", "request_id": request_id_var.get()}
        if debug_var.get() and error.original_error is not None:
            masked.extensions["detail"] = "".join(traceback.format_exception(error.original_error))
        return masked

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        processed = super()._process_errors(errors)
        for error in processed:
            original = error.original_error
            if isinstance(original, RateLimited):
                error.extensions = {
                    **(error.extensions or {}),
                    "code": "RATE_LIMITED",
                    "retry_after": original.retry_after,
                }
            elif isinstance(original, Unavailable):
                error.extensions = {
                    **(error.extensions or {}),
                    "code": "UNAVAILABLE",
                    "retry_after": original.retry_after,
                }
            elif isinstance(original, UserError):
                error.extensions = {
                    **(error.extensions or {}),
                    "code": original.code,
                    "field": original.field,
                }
        return processed


def refused(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A request refused before GraphQL runs, in the shape GraphQL clients read (`errors` with
    `extensions.code` and the request id); a 401 says to send a bearer token."""
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    return JSONResponse(
        {
            "data": None,
            "errors": [
                {
                    "message": message,
                    "extensions": {"code": code, "request_id": request_id_var.get()},
                }
            ],
        },
        status_code=status,
        headers=headers,
    )
