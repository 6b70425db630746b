"""Random numbers keyed by name instead of drawn in sequence.

The engine run and the greedy baseline make different calls in a different order, so a shared
`random.Random` would hand them different numbers for the same trip or offer. A draw keyed by
(seed, what it is for, which one) is the same in both runs, whatever happened before it.
"""

from __future__ import annotations

import hashlib
import math
from statistics import NormalDist

_STANDARD_NORMAL = NormalDist()
_SCALE = 2.0**64


def uniforms(seed: int, *key: object, n: int = 1) -> list[float]:
    """`n` numbers uniform in (0, 1), fixed by `seed` and `key` (never exactly 0 or 1).

    `key` parts are told apart by their repr, so use plain values (str, int)."""
    digest = hashlib.blake2b(
        repr((seed, *key)).encode(), digest_size=8 * n, person=b"patone-sim"
    ).digest()
    return [(int.from_bytes(digest[8 * i : 8 * i + 8], "big") + 0.5) / _SCALE for i in range(n)]


def lognormal_factor(u: float, cv: float) -> float:
    """The log-normal value with mean 1 and coefficient of variation `cv` at quantile `u`."""
    sigma2 = math.log1p(cv * cv)
    return math.exp(_STANDARD_NORMAL.inv_cdf(u) * math.sqrt(sigma2) - sigma2 / 2)
