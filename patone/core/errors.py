"""Errors people can act on: a stable code, the field at fault, and a message."""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """Bad input or a refused action; shown to the user as it is, never with a traceback."""

    status = 400

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            data["field"] = self.field
        return data


class NotFound(UserError):
    status = 404


class Conflict(UserError):
    status = 409


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

    status = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
