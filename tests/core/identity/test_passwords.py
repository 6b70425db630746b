"""The password policy and argon2id hashing (no data touched: no tenants needed)."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, Type

from patone.core.identity import passwords
from patone.core.identity.passwords import WeakPassword, check_policy, policy_problem


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-one", "at least 12 characters"),
        ("aaaaaaaaaaaaaaaa", "different characters"),
        ("password1234", "most common"),
        ("P@ssw0rd2024!!", "most common"),
        ("Qwertyuiop123!", "most common"),
        ("iloveyou!!!!!!", "most common"),
        ("maria-gonzalez-tows", "your name or email"),
        ("x7-truck-MGONZ-22", "your name or email"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, reason: str) -> None:
    problem = policy_problem(password, name="Maria Gonzalez", email="mgonz@acme.example")
    assert problem is not None and reason in problem
    with pytest.raises(WeakPassword) as raised:
        check_policy(password, name="Maria Gonzalez", email="mgonz@acme.example")
    assert raised.value.field == "password"
    assert raised.value.code == "weak_password"


def test_a_long_unusual_password_passes() -> None:
    assert policy_problem("tow truck ferns 1987 violet", name="Maria", email="m@x.example") is None


def test_hashes_are_argon2id_and_verify() -> None:
    stored = passwords.hash_password("tow truck ferns 1987 violet")
    assert stored.startswith("$argon2id$")
    assert passwords.verify(stored, "tow truck ferns 1987 violet") == passwords.Verified(True)
    assert not passwords.verify(stored, "tow truck ferns 1987 Violet").ok
    assert not passwords.verify(None, "anything at all").ok
    assert not passwords.verify("not-a-hash", "anything at all").ok


def test_a_hash_with_old_parameters_is_replaced_on_verify() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, type=Type.ID)
    stored = old.hash("tow truck ferns 1987 violet")
    result = passwords.verify(stored, "tow truck ferns 1987 violet")
    assert result.ok and result.new_hash is not None
    assert passwords.HASHER.verify(result.new_hash, "tow truck ferns 1987 violet")
    assert not passwords.HASHER.check_needs_rehash(result.new_hash)


async def test_async_forms_give_the_same_answers() -> None:
    stored = await passwords.hash_password_async("tow truck ferns 1987 violet")
    assert (await passwords.verify_async(stored, "tow truck ferns 1987 violet")).ok
