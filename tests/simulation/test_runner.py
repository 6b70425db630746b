"""The simulator's figures made from a run's counts."""

from __future__ import annotations

import pytest

from patone.simulation.runner import even_split_spread


def test_the_most_even_split_of_whole_jobs_is_the_floor_of_the_load_spread() -> None:
    assert even_split_spread([8] * 40) == 0.0
    assert even_split_spread([9, 7] * 20) == 0.0  # 320 jobs split evenly: 8 each
    assert even_split_spread([7, 8]) == pytest.approx(0.5 / 7.5)
    # 315 jobs among 40 drivers (mean 7.875): at best 35 at 8 and 5 at 7, 11 % below the mean.
    assert even_split_spread([7] * 7 + [8] * 31 + [9] * 2) == pytest.approx(0.875 / 7.875)
    # 311 jobs (mean 7.775): 9 at 7 and 31 at 8 is within 10 %.
    assert even_split_spread([7] * 9 + [8] * 31) == pytest.approx(0.775 / 7.775)
    assert even_split_spread([7] * 9 + [8] * 31) < 0.10
    assert even_split_spread([]) is None and even_split_spread([0, 0]) is None
