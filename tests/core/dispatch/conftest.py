"""Business time the dispatch tests move by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from patone.core.runtime.clock import use_clock
from tests.core.dispatch.world import MORNING, Clock


@pytest.fixture
def clock() -> Iterator[Clock]:
    clock = Clock(MORNING + timedelta(minutes=1))
    with use_clock(clock):
        yield clock
