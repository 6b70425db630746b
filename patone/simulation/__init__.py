"""The dispatch simulator's world: a synthetic city, its demand, its drivers and a maps plugin.

Everything here is pure and deterministic: each function takes its seed (or a `random.Random`)
explicitly, and the same seed gives the same city, requests, fleet, noise and driver answers, so
the real engine and the greedy baseline can be run on exactly the same world.
"""
