"""Every error code a client can get, said once: the code, its HTTP status, what it means.

One vocabulary for every door: GraphQL errors (`extensions.code`), mutation `userErrors`, the
JSON doors (`{"error": {"code", ...}}`), OAuth's token endpoint (RFC 6749's own codes) and the
driver app's pings. Codes are lower-case words joined by `_`. A refusal's HTTP status comes
from here (`status_of`), so a code answers with the same status wherever it is raised; inside
a GraphQL answer that ran (a field's error, a mutation's `userErrors`) the HTTP status is 200
and the code alone says what went wrong.

docs/api.md lists this table (`markdown()`; a test keeps the two equal: after changing a code,
run `python -m patone.core.runtime.error_codes docs/api.md`). A code raised but not listed is logged
once as our fault (`undocumented`), and the test suite fails on it.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass

from patone.core.runtime.generated_docs import write_between

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Code:
    name: str
    status: int
    meaning: str


@dataclass(frozen=True)
class Section:
    title: str
    about: str
    codes: tuple[Code, ...]


SECTIONS = (
    Section(
        "The request",
        "Refused before anything ran; the HTTP status applies (in GraphQL, `data` is null).",
        (
            Code("unauthenticated", 401, "No access token, or one not valid for this company."),
            Code(
                "wrong_audience",
                401,
                "A company's token sent to the platform API, or the other way round.",
            ),
            Code(
                "forbidden",
                403,
                "Signed in, but your role or scopes do not allow this (in a "
                "GraphQL answer: that field is null, the rest is answered).",
            ),
            Code(
                "tenant_required",
                404,
                "No company named: use its subdomain or an `X-Tenant` header.",
            ),
            Code("tenant_not_found", 404, "No company of that name uses this service."),
            Code("tenant_suspended", 403, "The company is suspended."),
            Code(
                "not_found",
                404,
                "Nothing there, or nothing you may see (the same answer either way).",
            ),
            Code("invalid_json", 400, "The body is not the JSON this door takes."),
            Code(
                "bad_request",
                400,
                "The request is malformed (no GraphQL document, a "
                "mutation sent by GET, a method not allowed).",
            ),
            Code("too_large", 413, "The body is over this door's limit (1 MB for the API)."),
            Code(
                "rate_limited",
                429,
                "Too many requests: wait `Retry-After` seconds (`retry_after` in the error).",
            ),
            Code(
                "unavailable",
                503,
                "We are too busy to take it now: retry after `Retry-After` seconds.",
            ),
            Code("method_not_allowed", 405, "This address takes other HTTP methods."),
            Code("bad_signature", 403, "A file link that was altered or belongs elsewhere."),
            Code("link_expired", 403, "A file link past its time: ask for a new one."),
            Code("internal_error", 500, "Our fault: quote the `request_id` to support."),
        ),
    ),
    Section(
        "GraphQL documents",
        "The document was not run: it does not parse, does not fit the schema, or passes a "
        "limit (see [Limits](#limits)).",
        (
            Code(
                "syntax_error",
                400,
                "The document does not parse (a GraphQL document also when over 50,000 "
                "characters or 2,000 tokens; a message template: the line is named).",
            ),
            Code(
                "invalid_document",
                400,
                "The document does not fit the schema: an unknown "
                "field or argument, a wrong type, a fragment spreading itself.",
            ),
            Code(
                "invalid_variables",
                400,
                "A variable is missing or its value does not fit its type.",
            ),
            Code("depth_limit_exceeded", 400, "Nested deeper than the limit."),
            Code("alias_limit_exceeded", 400, "More aliases than the limit."),
            Code(
                "cost_limit_exceeded",
                400,
                "Would cost more than the limit: ask for fewer fields or smaller pages.",
            ),
            Code("query_too_complex", 400, "Too many same-named fields to check."),
        ),
    ),
    Section(
        "Persisted queries",
        "Apollo's automatic persisted queries and allow-listed clients. The messages "
        "`PersistedQueryNotFound` and `PersistedQueryNotSupported` are the protocol's own, "
        "which Apollo's and urql's clients read.",
        (
            Code(
                "persisted_query_not_found",
                404,
                "The hash is unknown here: send it again with the document.",
            ),
            Code("persisted_query_not_supported", 400, "Only `version: 1` is supported."),
            Code("persisted_query_invalid", 400, "`sha256Hash` is not 64 hex digits."),
            Code(
                "persisted_query_hash_mismatch", 400, "The document does not hash to `sha256Hash`."
            ),
            Code(
                "persisted_query_required",
                400,
                "This client sends registered documents only, by POST, one per request.",
            ),
            Code(
                "persisted_query_not_allowed",
                403,
                "This client may run registered documents only, and this one is not.",
            ),
        ),
    ),
    Section(
        "Input",
        "A value you sent is wrong; `field` names it (in `userErrors`, the argument's or input "
        "field's name). Nothing was changed.",
        (
            Code("required", 400, "The field is missing or empty."),
            Code("invalid", 400, "The value is not of the right form."),
            Code("invalid_id", 400, "Not an id of this API, or an id of another type."),
            Code(
                "invalid_choice",
                400,
                "Not one of the values allowed here (the message lists them).",
            ),
            Code("unknown_field", 400, "A field this object does not have."),
            Code("too_short", 400, "Shorter than allowed."),
            Code("too_long", 400, "Longer than allowed."),
            Code("too_many", 400, "More items than allowed."),
            Code("out_of_range", 400, "A number outside its range."),
            Code("taken", 409, "Already used by another (an email, a slug, a user's driver)."),
            Code("reserved", 400, "A name kept for the service itself."),
            Code("weak_password", 400, "Too short, too common or too like your other details."),
            Code("unchanged", 400, "The new value is the same as the current one."),
            Code("wrong_password", 400, "The current password is not right."),
            Code(
                "invalid_scope",
                400,
                "A scope that does not exist, or one this client may not have.",
            ),
            Code("invalid_key", 400, "A file name that is not allowed."),
            Code("forbidden_address", 400, "An address that points inside our network."),
            Code("unresolvable", 400, "A host name that does not resolve."),
            Code("secret_required", 400, "A plugin's target changed: enter its secret again."),
            Code(
                "undecryptable",
                400,
                "A stored secret this server can no longer read: enter it again.",
            ),
            Code(
                "idempotency_key_reused",
                409,
                "This `idempotencyKey` was used with another "
                "input: use a new key for a new request.",
            ),
            Code(
                "idempotency_key_in_use",
                409,
                "The same `idempotencyKey` is being used by another request right now: retry.",
            ),
            Code(
                "invalid_pings",
                400,
                "Some pings were wrong and none was stored; `errors` "
                "lists each (`index`, `field`, `code`).",
            ),
            Code("in_future", 400, "A ping's `recorded_at` is in the future."),
            Code("too_old", 400, "A ping's `recorded_at` is more than 24 hours ago."),
            Code("too_inaccurate", 400, "A ping's `accuracy_m` is too large to use."),
        ),
    ),
    Section(
        "State",
        "The input is fine but the thing is not in a state that allows it now.",
        (
            Code(
                "stale",
                409,
                "Changed by someone else since `expectedVersion`: reload and decide again.",
            ),
            Code(
                "illegal_transition",
                409,
                "A request cannot move to that status from its "
                "current one (the message lists the allowed next states).",
            ),
            Code("closed", 409, "The request is completed or cancelled."),
            Code("not_pending", 409, "The request is no longer waiting for a driver."),
            Code("archived", 409, "The customer or driver is archived."),
            Code("inactive", 409, "The service is not offered now."),
            Code("off_duty", 409, "The driver is off duty."),
            Code("driver_unavailable", 409, "The driver is busy or on a break."),
            Code("driver_has_offer", 409, "The driver is answering another offer."),
            Code("job_in_progress", 409, "The driver has a job under way."),
            Code("offer_closed", 409, "The offer was already answered or withdrawn."),
            Code("offer_expired", 409, "The offer lapsed before the answer."),
            Code("suggestion_overtaken", 409, "The plan's suggestion no longer stands."),
            Code("unserved", 409, "The plan has no driver for this request."),
            Code("no_suggestion", 404, "The latest plan suggests nothing for this request."),
            Code("no_position", 404, "The driver's position is unknown."),
            Code("not_retryable", 409, "The notification is not one that can be sent again."),
            Code("endpoint_disabled", 409, "The webhook endpoint is turned off."),
            Code("already_enrolled", 409, "Two-factor is already on."),
            Code("not_enrolled", 409, "Two-factor is not on."),
            Code("not_started", 409, "Start two-factor enrolment first."),
            Code("staff_only", 403, "Only a signed-in staff user can do this."),
            Code("would_lock_out", 409, "The change would leave no one able to manage roles."),
            Code("purged_slug", 409, "The name belonged to a purged company."),
            Code("deleted", 409, "The company is deleted: restore it first."),
            Code("not_deleted", 409, "The company is not deleted."),
            Code("not_suspended", 409, "The company is not suspended."),
            Code("grace_period", 409, "The company can still be restored; purge it later."),
            Code("storage_unavailable", 503, "No file storage took the file: try again later."),
        ),
    ),
    Section(
        "Signing in",
        "From `/auth/*`, `/portal/auth/*`, the platform's sign-in and two-factor.",
        (
            Code(
                "invalid_credentials",
                401,
                "The email, password or code is not right (one answer for every failed sign-in).",
            ),
            Code("locked", 429, "Too many failed sign-ins: try again after `Retry-After` seconds."),
            Code(
                "two_factor_required",
                401,
                "Send the 6-digit code from your authenticator app, or a recovery code.",
            ),
            Code(
                "two_factor_enrolment_required",
                403,
                "Your role needs two-factor: set it up with the enrolment token in the answer.",
            ),
            Code(
                "password_change_required",
                403,
                "Choose a new password first, with the token in the answer.",
            ),
            Code("sign_in_expired", 401, "The half-finished sign-in expired: sign in again."),
            Code("invalid_code", 401, "The code is wrong or has expired."),
            Code("invalid_link", 401, "The sign-in link is not valid any more."),
            Code("invalid_token", 400, "The set-up or reset link is not valid any more."),
        ),
    ),
    Section(
        "OAuth",
        "`POST /oauth/token` answers in RFC 6749 §5.2's shape, "
        '`{"error": code, "error_description": ...}`, with its codes.',
        (
            Code(
                "invalid_request",
                400,
                "A parameter is missing, repeated or malformed, or the body is not form-encoded.",
            ),
            Code(
                "invalid_client", 401, "Unknown client, wrong secret, or no client authentication."
            ),
            Code(
                "invalid_grant", 400, "The refresh token is not valid (used, revoked or expired)."
            ),
            Code("unsupported_grant_type", 400, "Use `client_credentials` or `refresh_token`."),
        ),
    ),
)

CODES: dict[str, Code] = {code.name: code for section in SECTIONS for code in section.codes}
WORD = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")  # the form of every code

# Codes raised but not listed above: our fault, logged once each; the tests fail on any. A
# plugin's own codes (raised from outside the `patone` package) are the plugin's to document.
undocumented: set[str] = set()
_plugins_own: set[str] = set()


def status_of(code: str) -> int:
    """The HTTP status a refusal with this code answers with (400 for an unlisted code)."""
    listed = CODES.get(code)
    if listed is not None:
        return listed.status
    if code not in undocumented and code not in _plugins_own:
        undocumented.add(code)
        log.error("error code %r is not in patone.core.runtime.error_codes", code)
    return 400


def check(code: str) -> str:
    """The code of an error being raised, noted as undocumented when it is not listed (unless
    a plugin raised it)."""
    if code not in CODES and code not in _plugins_own and not _raised_by_us():
        _plugins_own.add(code)
    status_of(code)
    return code


def _raised_by_us() -> bool:
    """Whether the error being built is raised by our own code (the first caller outside the
    errors' own modules is in the `patone` package)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") in _ERROR_MODULES:
        frame = frame.f_back  # type: ignore[assignment]
    name = str(frame.f_globals.get("__name__", "")) if frame is not None else ""
    return name == "patone" or name.startswith("patone.")


_ERROR_MODULES = {__name__, "patone.core.runtime.errors"}


def markdown() -> str:
    """The catalogue as docs/api.md shows it."""
    lines: list[str] = []
    for section in SECTIONS:
        lines += [f"### {section.title}", "", section.about, "", "| code | HTTP | meaning |"]
        lines.append("| --- | --- | --- |")
        lines += [f"| `{code.name}` | {code.status} | {code.meaning} |" for code in section.codes]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


START, END = "<!-- error codes: start -->", "<!-- error codes: end -->"


def write(path: str) -> bool:
    """Put `markdown()` between the markers of the file at `path`; whether it changed."""
    return write_between(path, START, END, markdown())


if __name__ == "__main__":  # python -m patone.core.runtime.error_codes docs/api.md
    print("updated" if write(sys.argv[1]) else "unchanged")
