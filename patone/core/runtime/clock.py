"""Business time comes from here, so tests and the simulator can move it (DESIGN.md, "Jobs")."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime


def _wall() -> datetime:
    return datetime.now(UTC)


_source: contextvars.ContextVar[Callable[[], datetime]] = contextvars.ContextVar(
    "patone_clock", default=_wall
)


def now() -> datetime:
    """The current business time (timezone-aware UTC)."""
    return _source.get()()


@contextmanager
def use_clock(source: Callable[[], datetime]) -> Iterator[None]:
    """Run a block (and the tasks it starts) on another clock."""
    token = _source.set(source)
    try:
        yield
    finally:
        _source.reset(token)
