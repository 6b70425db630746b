"""Validating what people type: phones, emails, coordinates, money; pydantic errors made plain.

Services take pydantic models; `parse(Model, data)` turns pydantic's errors into
`ValidationFailed` with one (field, code, message) per problem, so every entry point reports bad
input the same way and nothing is written.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from patone.core.runtime.errors import UserError, ValidationFailed

M = TypeVar("M", bound=BaseModel)

_CODES = {
    "missing": "required",
    "string_too_short": "too_short",
    "string_too_long": "too_long",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
    "greater_than": "out_of_range",
    "less_than": "out_of_range",
    "literal_error": "invalid_choice",
    "enum": "invalid_choice",
    "extra_forbidden": "unknown_field",
    "invalid_choice": "invalid_choice",  # a validator's own PydanticCustomError
}


def parse(model: type[M], data: Any) -> M:
    """Validate `data` into `model`, or raise `ValidationFailed` naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            field = ".".join(str(part) for part in item["loc"]) or None
            message = item["msg"].removeprefix("Value error, ")
            problems.append(UserError(_CODES.get(item["type"], "invalid"), message, field))
        raise ValidationFailed(problems) from None


def normalize_phone(value: str, region: str = "US") -> str:
    """A phone number in E.164 (+15551234567), or ValueError saying it is not one."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{value!r} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{value!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(str(error)) from None


def normalize_plate(value: str) -> str:
    return "".join(value.split()).upper()


# The length caps are checked before the validators run: parsing a megabyte "address" costs
# seconds.
EMAIL_MAX_LENGTH = 254  # RFC 5321's longest path
Phone = Annotated[str, Field(max_length=64), AfterValidator(normalize_phone)]
Email = Annotated[str, Field(max_length=EMAIL_MAX_LENGTH), AfterValidator(normalize_email)]
Plate = Annotated[str, Field(max_length=20), AfterValidator(normalize_plate)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
Money = Annotated[int, Field(ge=0, le=100_000_000)]  # minor units
Name = Annotated[str, Field(min_length=1, max_length=200)]


class Input(BaseModel):
    """Base of every service input: strict about unknown fields, trims strings."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)
