"""The notifications room: messages planned from events, sent in batches, swept when stuck."""

from patone.core.runtime.rooms import Room

ROOM = Room(
    "notifications",
    actors=(
        "patone.core.notifications",
        "patone.core.notifications.planning",
        "patone.core.notifications.sending",
    ),
)
