"""Rows leave `patone.core` typed: no public function returns `dict[str, Any]` (or a list of
them), except where the data really is free-form JSON, listed here with why."""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import pkgutil
import types
import typing
from typing import Any

import patone.core

# Serialisers (`as_dict`, `as_json`) turn a typed object into JSON on purpose.
SERIALISERS = {"as_dict", "as_json"}
FREE_FORM: dict[str, str] = {
    "patone.core.identity.signing_keys.published": "the JWKS document, as published",
    "patone.core.domain.webhooks.envelope": "the JSON body a webhook receiver gets",
    "patone.core.runtime.db.PatoneEngine.connection_options": "keyword arguments for asyncpg",
    "patone.core.notifications.planning.request_context": "a template's variables",
    "patone.core.work.jobs.list_dead_letters": "dead letters as Dramatiq stored them",
    "patone.core.domain.company.get_settings": "the company's settings, a JSON document",
    "patone.core.domain.company.update_settings": "the company's settings, a JSON document",
}


def _untyped(hint: Any) -> bool:
    if typing.get_origin(hint) is dict:
        return typing.get_args(hint) == (str, Any)
    origin = typing.get_origin(hint)
    if origin in (list, tuple, typing.Union, types.UnionType) or origin in (
        collections.abc.Sequence,
        collections.abc.Iterable,
        collections.abc.Iterator,
        collections.abc.AsyncIterator,
    ):
        return any(_untyped(arg) for arg in typing.get_args(hint) if arg is not Ellipsis)
    return False


def public_functions() -> list[tuple[str, Any]]:
    found = []
    for info in pkgutil.walk_packages(patone.core.__path__, "patone.core."):
        if ".piccolo_migrations" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(value):
                found.append((f"{info.name}.{name}", value))
            elif inspect.isclass(value):
                found += [
                    (f"{info.name}.{name}.{method}", function)
                    for method, function in vars(value).items()
                    if inspect.isfunction(function) and not method.startswith("_")
                ]
    return found


def test_no_public_function_in_core_returns_untyped_rows() -> None:
    untyped = [
        name
        for name, function in public_functions()
        if name.rsplit(".", 1)[1] not in SERIALISERS
        and name not in FREE_FORM
        and _untyped(typing.get_type_hints(function).get("return"))
    ]
    assert untyped == []
    assert set(FREE_FORM) <= {name for name, _ in public_functions()}, "a listed one is gone"
