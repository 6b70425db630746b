"""Our logging set-up keeps chatty libraries at WARNING and up."""

from __future__ import annotations

import logging

from patone.log import configure_logging


def test_pika_says_only_what_goes_wrong_even_at_info() -> None:
    configure_logging("INFO")
    # pika logs each connection and channel at INFO (hundreds a minute in a worker on RabbitMQ).
    for name in ("pika", "pika.adapters.blocking_connection", "pika.channel"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO)
        assert logging.getLogger(name).isEnabledFor(logging.WARNING)
    assert logging.getLogger("patone").isEnabledFor(logging.INFO)
