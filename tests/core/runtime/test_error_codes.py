"""One vocabulary: every code our code can raise is listed once, with its status, and
docs/api.md lists exactly the catalogue."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import patone
from patone.core.runtime import error_codes
from patone.core.runtime.errors import UserError

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "patone"

# What builds an error besides the `UserError` classes, and the parameter that takes its code.
BUILDERS = {
    "patone.core.runtime.web:error_response": "code",
    "patone.graphql.errors:refused": "code",
    "patone.graphql.limits:LimitExceeded": "code",
    "patone.http.oauth:OAuthError": "error",
    "patone.tenants.naming:SlugError": "code",
    "patone.core.dispatch.positions:_Refused": "code",
    "patone.core.dispatch.positions:PingRefusal": "code",
}
# Codes put together at run time from a step's name (`staff_sign_in.StepRequired`).
COMPOSED = {"two_factor_enrolment_required", "password_change_required"}


def _user_error_classes() -> list[type[UserError]]:
    for module in pkgutil.walk_packages(patone.__path__, "patone."):
        if ".piccolo_migrations." not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found, todo = [], [UserError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


def _code_positions() -> dict[str, set[int | str]]:
    """For each builder's name: the position and the keyword where it takes a code."""
    builders: list[tuple[object, str]] = [(cls, "code") for cls in _user_error_classes()]
    for target, keyword in BUILDERS.items():
        module, _, name = target.partition(":")
        builders.append((getattr(importlib.import_module(module), name), keyword))
    positions: dict[str, set[int | str]] = {}
    for builder, keyword in builders:
        call = builder.__init__ if isinstance(builder, type) else builder  # type: ignore[misc]
        parameters = [p for p in inspect.signature(call).parameters if p != "self"]
        if keyword in parameters:
            name = builder.__name__  # type: ignore[attr-defined]
            positions.setdefault(name, set()).update({parameters.index(keyword), keyword})
    return positions


def _sources() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if "piccolo_migrations" not in path.parts:
            yield path, ast.parse(path.read_text(encoding="utf-8"))


def _raised_codes() -> dict[str, str]:
    """Every literal code our code raises, with one place that raises it."""
    positions = _code_positions()
    codes: dict[str, str] = {}
    for path, tree in _sources():
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                codes.update({c: w for c, w in _class_codes(node, where, positions).items()})
            if isinstance(node, ast.Dict):  # {"code": "..."} in an error's body
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value == "code"
                        and isinstance(value, ast.Constant)
                        and isinstance(value.value, str)
                    ):
                        codes.setdefault(value.value, f"{where}:{node.lineno}")
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                for code in _literal_codes(node, positions.get(str(name), set())):
                    codes.setdefault(code, f"{where}:{node.lineno}")
    return codes


def _literal_codes(call: ast.Call, wanted: set[int | str]) -> list[str]:
    arguments = [a for i, a in enumerate(call.args) if i in wanted]
    arguments += [k.value for k in call.keywords if k.arg in wanted]
    return [a.value for a in arguments if isinstance(a, ast.Constant) and isinstance(a.value, str)]


def _class_codes(
    node: ast.ClassDef, where: str, positions: dict[str, set[int | str]]
) -> dict[str, str]:
    """A class's `code = "..."`, and the codes its `super().__init__(...)` passes to a base
    that takes one."""
    codes: dict[str, str] = {}
    for statement in node.body:
        if (
            isinstance(statement, ast.Assign)
            and any(getattr(t, "id", None) == "code" for t in statement.targets)
            and isinstance(statement.value, ast.Constant)
        ):
            codes[statement.value.value] = f"{where}:{statement.lineno}"
    bases = [getattr(base, "id", None) or getattr(base, "attr", None) for base in node.bases]
    wanted = next((positions[str(b)] for b in bases if str(b) in positions), set())
    for call in ast.walk(node):
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "__init__"
        ):
            codes.update({c: f"{where}:{call.lineno}" for c in _literal_codes(call, wanted)})
    return codes


def test_every_code_our_code_raises_is_listed_with_its_status() -> None:
    raised = _raised_codes()
    assert {"not_found", "forbidden", "in_future", "depth_limit_exceeded"} <= set(raised)
    unlisted = {code: where for code, where in raised.items() if code not in error_codes.CODES}
    assert not unlisted, f"add these to patone/core/runtime/error_codes.py: {unlisted}"


def test_every_listed_code_is_raised_somewhere() -> None:
    literals = {
        node.value
        for path, tree in _sources()
        if path.name != "error_codes.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    unused = set(error_codes.CODES) - literals - COMPOSED
    assert not unused, f"listed but never raised: {sorted(unused)}"


def test_codes_are_lower_case_words_listed_once() -> None:
    names = [code.name for section in error_codes.SECTIONS for code in section.codes]
    assert len(names) == len(set(names))
    assert all(error_codes.WORD.fullmatch(name) for name in names)
    assert all(100 <= code.status < 600 for code in error_codes.CODES.values())


def test_the_api_guide_lists_exactly_the_catalogue() -> None:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    listed = text.split(error_codes.START)[1].split(error_codes.END)[0]
    assert listed.strip() == error_codes.markdown().strip(), (
        "run: python -m patone.core.runtime.error_codes docs/api.md"
    )


def test_a_plugins_own_code_is_its_own_and_an_unlisted_one_of_ours_is_noted() -> None:
    before = set(error_codes.undocumented)
    namespace: dict[str, object] = {"__name__": "someone_elses_plugin", "UserError": UserError}
    exec("error = UserError('out_of_hours', 'closed at night')", namespace)
    assert error_codes.undocumented == before  # a plugin documents its own codes
    namespace["__name__"] = "patone.somewhere"  # as if raised by our own code
    exec("error = UserError('not_a_listed_code', 'a code nobody listed')", namespace)
    assert namespace["error"].status == 400  # type: ignore[attr-defined]
    assert "not_a_listed_code" in error_codes.undocumented
    error_codes.undocumented.discard("not_a_listed_code")  # this test's own, on purpose
