"""A small city for the simulation tests: the model is the same at any size, the build quicker."""

from __future__ import annotations

import pytest

from patone.simulation.city import City

SEED = 7


@pytest.fixture(scope="session")
def city() -> City:
    return City.build(SEED, size_km=6, spacing_m=600)
