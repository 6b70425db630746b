"""Passwords: the policy a new password must pass, and argon2id hashes.

The policy (FEATURES.md, identity issue): at least 12 characters; not a common password, nor one
built from a common password by the usual disguises (capitals, digits or symbols tacked on,
letters swapped for look-alike digits: "P@ssw0rd2024!"); not containing the account's name or
the local part of its email address. The common list is the 20,000 passwords most seen in
breaches that Django bundles (Royce Williams' list, BSD licence; `data/NOTICE.md`).

Hashes are argon2id (argon2-cffi). `verify` tells the caller when a stored hash was made with
other parameters than today's, so sign-in can rehash it with the password it just checked.
Hashing is slow by design (tens of ms): async callers use the `*_async` forms, which run it
in a thread so the event loop keeps serving others.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from patone.core.runtime.errors import UserError

MIN_LENGTH = 12
MAX_LENGTH = 256  # argon2 takes any length; this only stops megabyte "passwords"

# OWASP's argon2id guidance (m=46 MiB, t=1, p=1 or stronger); bench/auth.py prints the cost.
HASHER = PasswordHasher(time_cost=2, memory_cost=48 * 1024, parallelism=1, type=Type.ID)

# Look-alike characters people use to disguise a word ("p@ssw0rd").
_LEET = str.maketrans("0134557@$!|+", "oieassstasit")
_EDGES = re.compile(r"^[\W\d_]+|[\W\d_]+$")


class WeakPassword(UserError):
    def __init__(self, message: str) -> None:
        super().__init__("weak_password", message, "password")


@cache
def common_passwords() -> frozenset[str]:
    data = (
        resources.files("patone.core.identity")
        .joinpath("data/common-passwords.txt.gz")
        .read_bytes()
    )
    return frozenset(gzip.decompress(data).decode().split())


def _cores(password: str) -> set[str]:
    """The word a password is made of, with the usual disguises taken off."""
    lowered = password.lower()
    stripped = _EDGES.sub("", lowered)
    return {lowered, stripped, lowered.translate(_LEET), _EDGES.sub("", lowered.translate(_LEET))}


def _personal_words(name: str, email: str) -> set[str]:
    local = email.split("@", 1)[0].lower()
    words = {w for w in re.split(r"[\W_]+", f"{name} {local}".lower()) if len(w) >= 3}
    if len(local) >= 3:
        words.add(local)
    return words


def policy_problem(password: str, *, name: str = "", email: str = "") -> str | None:
    """Why `password` is refused, in words a user can act on; None if it passes."""
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters (this has {len(password)})"
    if len(password) > MAX_LENGTH:
        return f"use at most {MAX_LENGTH} characters"
    if len(set(password)) < 4:
        return "use more than a few different characters"
    common = common_passwords()
    cores = _cores(password)
    if any(core in common for core in cores if core):
        return "this is one of the most common passwords; choose one nobody would guess"
    lowered = password.lower()
    for word in _personal_words(name, email):
        if word in lowered or word in lowered.translate(_LEET):
            return "don't use your name or email address in your password"
    return None


def check_policy(password: str, *, name: str = "", email: str = "") -> None:
    """Raise `WeakPassword` (field `password`) with the reason, if the policy refuses it."""
    problem = policy_problem(password, name=name, email=email)
    if problem:
        raise WeakPassword(problem)


def hash_password(password: str) -> str:
    return HASHER.hash(password)


@dataclass(frozen=True)
class Verified:
    ok: bool
    new_hash: str | None = None  # set when the stored hash should be replaced by this one


def verify(stored: str | None, password: str) -> Verified:
    """Check `password` against a stored hash; no hash (no password set) never matches."""
    if not stored:
        # Spend the same time as a real check, so "no such account" can't be told by timing.
        _dummy_verify(password)
        return Verified(False)
    try:
        HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return Verified(False)
    if HASHER.check_needs_rehash(stored):
        return Verified(True, HASHER.hash(password))
    return Verified(True)


@cache
def _dummy_hash() -> str:
    return HASHER.hash("patone: no account has this password")


def _dummy_verify(password: str) -> None:
    with contextlib.suppress(VerificationError):
        HASHER.verify(_dummy_hash(), password)


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)


async def verify_async(stored: str | None, password: str) -> Verified:
    return await asyncio.to_thread(verify, stored, password)
