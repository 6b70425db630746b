"""Customers (motorists), their vehicles and memberships."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar

from piccolo.columns import (
    Date,
    ForeignKey,
    OnDelete,
    SmallInt,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from patone.core.runtime.db import engine
from patone.core.tables.records import Record


class Customer(Table, tablename="customers", db=engine):
    """A motorist the company serves."""

    name = Varchar(length=200)
    phone = Varchar(length=20, null=True, default=None, index=True)
    email = Varchar(length=254, null=True, default=None)
    notes = Text(default="")
    archived_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


@dataclass(frozen=True, slots=True)
class CustomerRow(Record):
    table: ClassVar[type[Table]] = Customer
    id: int
    name: str
    phone: str | None
    email: str | None
    notes: str
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime


class Vehicle(Table, tablename="vehicles", db=engine):
    """A customer's vehicle."""

    customer = ForeignKey(references=Customer, on_delete=OnDelete.restrict, index=True)
    make = Varchar(length=60, default="")
    model = Varchar(length=60, default="")
    year = SmallInt(null=True, default=None)
    colour = Varchar(length=40, default="")
    plate = Varchar(length=20, default="", index=True)
    vin = Varchar(length=17, default="")
    archived_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


@dataclass(frozen=True, slots=True)
class VehicleRow(Record):
    table: ClassVar[type[Table]] = Vehicle
    id: int
    customer: int | None  # nullable in the table, though every vehicle has one
    make: str
    model: str
    year: int | None
    colour: str
    plate: str
    vin: str
    archived_at: datetime | None
    created_at: datetime


class Membership(Table, tablename="memberships", db=engine):
    """A customer's membership of a motor club or insurer's roadside cover."""

    customer = ForeignKey(references=Customer, on_delete=OnDelete.cascade, index=True)
    provider = Varchar(length=100)
    number = Varchar(length=100)
    valid_until = Date(null=True, default=None)
    created_at = Timestamptz()


@dataclass(frozen=True, slots=True)
class MembershipRow(Record):
    table: ClassVar[type[Table]] = Membership
    id: int
    customer: int | None  # nullable in the table, though every membership has one
    provider: str
    number: str
    valid_until: date | None
    created_at: datetime
