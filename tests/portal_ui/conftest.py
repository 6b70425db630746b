"""The notification tests' plugin runtime and worker, for the portal's tests."""

from tests.core.conftest import broker, runtime

__all__ = ["broker", "runtime"]
