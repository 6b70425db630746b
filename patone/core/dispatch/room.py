"""The dispatch room: offers pushed to drivers, the sweeps and plans, and the positions'
flush and partitions, as jobs and periodic jobs."""

from patone.core.runtime.rooms import Room

ROOM = Room("dispatch", actors=("patone.core.dispatch.jobs", "patone.core.dispatch.positions"))
