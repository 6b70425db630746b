"""The domain room: its jobs are the webhooks' deliveries and sweep."""

from patone.core.runtime.rooms import Room

ROOM = Room("domain", actors=("patone.core.domain.webhooks",))
