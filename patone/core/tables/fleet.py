"""Drivers (with their trucks), their shifts and positions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from piccolo.columns import (
    Array,
    DoublePrecision,
    ForeignKey,
    Integer,
    OnDelete,
    Real,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from patone.core.runtime.db import engine
from patone.core.tables.identity import User
from patone.core.tables.records import Record


class DriverStatus(StrEnum):
    off_duty = "off_duty"
    available = "available"
    busy = "busy"
    on_break = "on_break"


class Driver(Table, tablename="drivers", db=engine):
    """A driver and truck: status, skills, and last known position."""

    user = ForeignKey(references=User, on_delete=OnDelete.set_null, null=True, default=None)
    name = Varchar(length=200)
    phone = Varchar(length=20, null=True, default=None)
    status = Varchar(length=20, choices=DriverStatus, default=DriverStatus.off_duty, index=True)
    skills = Array(base_column=Varchar(length=40), default=list)
    truck = Varchar(length=100, default="")
    last_lat = DoublePrecision(null=True, default=None)
    last_lng = DoublePrecision(null=True, default=None)
    last_seen_at = Timestamptz(null=True, default=None)
    rating = Integer(null=True, default=None)  # average rating x 100 (e.g. 472 = 4.72)
    archived_at = Timestamptz(null=True, default=None)
    # When they last came on duty from off duty (a break does not restart it): their hours on
    # shift today count from then (tenant_0020).
    on_duty_since = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


@dataclass(frozen=True, slots=True)
class DriverRow(Record):
    table: ClassVar[type[Table]] = Driver
    id: int
    user: int | None
    name: str
    phone: str | None
    status: str
    skills: list[str]
    truck: str
    last_lat: float | None
    last_lng: float | None
    last_seen_at: datetime | None
    rating: int | None
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime


class Shift(Table, tablename="shifts", db=engine):
    """A driver's planned or worked shift."""

    driver = ForeignKey(references=Driver, on_delete=OnDelete.cascade, index=True)
    starts_at = Timestamptz()
    ends_at = Timestamptz()


@dataclass(frozen=True, slots=True)
class ShiftRow(Record):
    table: ClassVar[type[Table]] = Shift
    id: int
    driver: int | None  # nullable in the table, though every shift has one
    starts_at: datetime
    ends_at: datetime


class DriverPosition(Table, tablename="driver_positions", db=engine):
    """Drivers' GPS history, partitioned by day (`dispatch/positions.py` makes and drops the
    partitions). No foreign key to drivers: an append-only log of millions of rows a day keeps
    a stale id cheaper than checking each one. The key is (driver_id, recorded_at)."""

    driver_id = Integer(primary_key=True)
    recorded_at = Timestamptz()
    lat = DoublePrecision()
    lng = DoublePrecision()
    accuracy_m = Real()
    speed_mps = Real(null=True, default=None)
    heading_deg = Real(null=True, default=None)
    received_at = Timestamptz()
