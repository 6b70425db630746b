"""Slug rules: what may name a tenant, and the clear error when it may not."""

from __future__ import annotations

import pytest

from patone.tenants.naming import SlugError, role_for, schema_for, validate_slug


@pytest.mark.parametrize("slug", ["acme", "acme-towing", "a1", "bolt-24-7", "x" * 40])
def test_valid_slugs_are_accepted(slug: str) -> None:
    assert validate_slug(slug) == slug


@pytest.mark.parametrize(
    ("slug", "code"),
    [
        ("", "required"),
        ("a", "too_short"),
        ("x" * 41, "too_long"),
        ("Acme", "invalid"),
        ("acme_towing", "invalid"),
        ("acme--towing", "invalid"),
        ("-acme", "invalid"),
        ("acme-", "invalid"),
        ("acme.com", "invalid"),
        ("1acme", "invalid"),
        ("émile", "invalid"),
        ("www", "reserved"),
        ("api", "reserved"),
        ("admin", "reserved"),
        ("public", "reserved"),
        ("platform", "reserved"),
        ("ext", "reserved"),
        ("pg-toast", "reserved"),
        ("xn--bcher-kva", "invalid"),
    ],
)
def test_bad_slugs_get_a_clear_error(slug: str, code: str) -> None:
    with pytest.raises(SlugError) as caught:
        validate_slug(slug)
    assert caught.value.code == code
    assert caught.value.field == "slug"
    assert str(caught.value)


def test_names_derived_from_a_slug_are_one_to_one() -> None:
    assert schema_for("acme-towing") == "t_acme_towing"
    assert role_for("acme-towing") == "t_acme_towing_role"
    assert len(role_for("x" * 40)) <= 63
