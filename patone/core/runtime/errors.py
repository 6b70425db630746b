"""Errors people can act on: a stable code, the field at fault, and a message.

Codes and their HTTP statuses are listed once, in `patone.core.runtime.error_codes`.
"""

from __future__ import annotations

from typing import Any

from patone.core.runtime import error_codes


class UserError(Exception):
    """Bad input or a refused action; shown to the user as it is, never with a traceback."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = error_codes.check(code)
        self.message = message
        self.field = field

    @property
    def status(self) -> int:
        """The HTTP status of this refusal, by its code."""
        return error_codes.status_of(self.code)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            data["field"] = self.field
        return data


class NotFound(UserError):
    """Nothing there, or nothing the caller may see."""


class Conflict(UserError):
    """The input is fine, but the thing is not in a state that allows it."""


class ValidationFailed(UserError):
    """Several fields are wrong at once; `errors` lists each (field, code, message)."""

    def __init__(self, errors: list[UserError]) -> None:
        first = errors[0]
        super().__init__(first.code, first.message, first.field)
        self.errors = errors

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        data["errors"] = [error.as_dict() for error in self.errors]
        return data


class Unavailable(Exception):
    """Our side cannot serve the request right now (overloaded, not broken): the client gets
    503 with `Retry-After`, and the log gets one line, as our fault, not a traceback."""

    status = error_codes.status_of("unavailable")
    code = "unavailable"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
