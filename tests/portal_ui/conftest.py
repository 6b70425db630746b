"""The notification tests' plugin runtime, worker and provider fakes, for the portal's tests."""

from tests.core.notifications.conftest import broker, runtime, smtp, twilio

__all__ = ["broker", "runtime", "smtp", "twilio"]
