"""What clients see when something goes wrong: codes they can act on, never a traceback.

Every error's `extensions` carry a `code` from `patone.core.runtime.error_codes` and the
`request_id`.
A refusal from a service (`UserError`: not found, forbidden, invalid) raised in a query adds
the `field` (a rate limit, or our side too busy, e.g. no Redis connection free: `retry_after`;
the latter logged once). graphql-core's refusals of a document get `syntax_error`,
`invalid_document` or `invalid_variables`, and such an answer (nothing ran) the HTTP status of
its code. Anything else is logged with its traceback (by `patone.graphql.error_log`) and
reaches the client only as "Unexpected error." (`internal_error`; when DEBUG is on, the
traceback in `extensions.detail`).
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from typing import Any

from cross_web import HTTPException
from graphql.error import GraphQLError
from starlette.responses import JSONResponse
from strawberry.extensions import MaskErrors

from patone.core.runtime import error_codes
from patone.core.runtime.errors import Unavailable, UserError
from patone.log import debug_var, request_id_var

# The codes of a document that was not run (see `patone.core.runtime.error_codes`).
DOCUMENT_CODES = {
    "syntax_error",
    "invalid_document",
    "invalid_variables",
    "depth_limit_exceeded",
    "alias_limit_exceeded",
    "cost_limit_exceeded",
    "query_too_complex",
}


def extensions_for(error: UserError | Unavailable) -> dict[str, Any]:
    """What a refusal of ours says in a GraphQL error's `extensions`: its code, the field at
    fault, how long to wait, and the request's id."""
    extensions: dict[str, Any] = {"code": error.code}
    if isinstance(error, UserError) and error.field:
        extensions["field"] = error.field
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        extensions["retry_after"] = retry_after
    extensions["request_id"] = request_id_var.get()
    return extensions


def _document_code(error: GraphQLError) -> str:
    """The code of graphql-core's own refusal of a document, which carries none."""
    if error.message.startswith("Syntax Error"):
        return "syntax_error"
    if error.message.startswith("Variable '$") and "invalid value" in error.message:
        return "invalid_variables"
    return "invalid_document"


class PatoneErrors(MaskErrors):
    """Mask our faults; give every error a code and the request id; answer a document that
    was not run (syntax, validation, variables, limits) with the HTTP status of its code."""

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
            if isinstance(original, UserError | Unavailable):
                error.extensions = {**(error.extensions or {}), **extensions_for(original)}
                continue
            extensions = dict(error.extensions or {})
            extensions.setdefault("code", _document_code(error))
            extensions["request_id"] = request_id_var.get()
            error.extensions = extensions
        return processed

    def on_operation(self) -> Iterator[None]:
        yield from super().on_operation()
        result = self.execution_context.result
        if result is None or getattr(result, "data", None) is not None:
            return
        errors = getattr(result, "errors", None) or []
        codes = {(error.extensions or {}).get("code") for error in errors}
        not_run = codes and codes <= DOCUMENT_CODES
        response = getattr(self.execution_context.context, "response", None)
        if not_run and response is not None and hasattr(response, "status_code"):  # not a socket
            response.status_code = max(error_codes.status_of(str(code)) for code in codes)


def refused(code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A request refused before GraphQL runs, in the shape GraphQL clients read (`errors` with
    `extensions.code` and the request id), with the code's HTTP status; a 401 says to send a
    bearer token."""
    status = error_codes.status_of(code)
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


def malformed(error: HTTPException) -> JSONResponse:
    """strawberry's refusal of a malformed request (plain text there) in our shape."""
    if error.status_code == 405:
        return refused("method_not_allowed", "Send GraphQL by GET or POST.")
    if "JSON" in error.reason:
        return refused("invalid_json", error.reason)
    return refused("bad_request", error.reason)
