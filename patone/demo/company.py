"""Realistic sample data for the `demo` tenant: a Berlin towing company with 90 days of history.

`fill_demo_tenant` gives an empty tenant what a visitor expects to see: drivers on the map, a
live board of open jobs, 2,000 customers with their cars, and 5,000 finished jobs to report on.
Everything comes from a fixed seed, so the same seed and the same clock give the same rows.

How it is made:

- All rows are built in Python first (`build_demo_data`, no database), then written with a
  handful of binary `COPY` statements on the tenant transaction's own connection, in one
  transaction: the fill is all or nothing, and takes about 1.5 s on two cores (half of it
  building the rows).
- Ids are reserved from the tables' own sequences, so later inserts by the services continue
  after them.
- Each request's life is a walk through `lifecycle.TRANSITIONS`, written by
  `service_requests.insert_history`, which checks it and derives the row (status, version,
  timestamps) as `service_requests.transition` would. Drivers are not double-booked, and
  drivers may only cancel with `gone_on_arrival`, as the services allow.
- Prices come from `service_types.quote` with the tenant's own price list and settings (the
  fill first switches them to EUR, km and Europe/Berlin), so after-hours calls cost more.
- Nothing goes to the activity log or the outbox: this history is not something anyone did,
  and 25,000 events would flood subscribers.

Addresses are real Berlin streets with approximate coordinates; names, phone numbers,
plates and VINs are made up (e-mail addresses use the reserved `example.*` domains).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import math
import random
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from typing import Any
from zoneinfo import ZoneInfo

from patone.core.common.inputs import normalize_plate
from patone.core.domain import service_requests
from patone.core.domain.service_requests import PastEvent, PastRequest
from patone.core.domain.service_types import distance_km, list_service_types, quote
from patone.core.runtime.clock import now as clock_now
from patone.core.runtime.db import engine
from patone.core.tables.fleet import DriverStatus
from patone.core.tables.requests import Priority, RequestSource, ServiceTypeRow
from patone.core.tables.requests import RequestStatus as S
from patone.tenants.isolation import TenantRef, tenant_transaction

Progress = Callable[[str, int, int], None]

DRIVERS = 60
CUSTOMERS = 2_000
OPEN_REQUESTS = 20
PAST_REQUESTS = 5_000
HISTORY_DAYS = 90

# Berlin, roughly: every position and address lies inside this box.
LAT_MIN, LAT_MAX = 52.40, 52.62
LNG_MIN, LNG_MAX = 13.20, 13.60
TIME_ZONE = "Europe/Berlin"
SETTINGS = {"currency": "EUR", "units": "km", "time_zone": TIME_ZONE}
COMPANY = {
    "company.phone": "+493023125000",
    "company.email": "dispatch@demo-towing.example",
    "company.address": "Storkower Straße 140, 10409 Berlin",
}
EMAIL_DOMAIN = "demo-towing.example"
# Two-int advisory lock key space: (this, hash of the schema) serialises fills of one tenant.
_LOCK_CLASS = 0x70A7D3

# (street, postcode, lat, lng): real streets, approximate coordinates.
STREETS: tuple[tuple[str, str, float, float], ...] = (
    ("Karl-Marx-Allee", "10243", 52.5172, 13.4400),
    ("Kurfürstendamm", "10719", 52.5030, 13.3270),
    ("Unter den Linden", "10117", 52.5170, 13.3880),
    ("Friedrichstraße", "10117", 52.5120, 13.3895),
    ("Frankfurter Allee", "10247", 52.5140, 13.4760),
    ("Schönhauser Allee", "10437", 52.5410, 13.4120),
    ("Kastanienallee", "10435", 52.5375, 13.4080),
    ("Torstraße", "10119", 52.5290, 13.4000),
    ("Oranienstraße", "10999", 52.5005, 13.4190),
    ("Sonnenallee", "12059", 52.4760, 13.4560),
    ("Hermannstraße", "12049", 52.4740, 13.4250),
    ("Karl-Marx-Straße", "12043", 52.4810, 13.4370),
    ("Bergmannstraße", "10961", 52.4895, 13.3950),
    ("Potsdamer Straße", "10785", 52.5000, 13.3640),
    ("Hauptstraße", "10827", 52.4860, 13.3530),
    ("Schloßstraße", "12163", 52.4570, 13.3210),
    ("Wilmersdorfer Straße", "10627", 52.5070, 13.3070),
    ("Kantstraße", "10623", 52.5060, 13.3150),
    ("Bismarckstraße", "10625", 52.5120, 13.3090),
    ("Turmstraße", "10551", 52.5265, 13.3420),
    ("Müllerstraße", "13353", 52.5480, 13.3530),
    ("Badstraße", "13357", 52.5510, 13.3850),
    ("Prenzlauer Allee", "10405", 52.5370, 13.4230),
    ("Greifswalder Straße", "10405", 52.5350, 13.4340),
    ("Landsberger Allee", "10249", 52.5290, 13.4600),
    ("Warschauer Straße", "10243", 52.5100, 13.4500),
    ("Boxhagener Straße", "10245", 52.5105, 13.4640),
    ("Adlergestell", "12439", 52.4330, 13.5480),
    ("Köpenicker Straße", "10179", 52.5110, 13.4200),
    ("Alt-Moabit", "10559", 52.5230, 13.3460),
    ("Tempelhofer Damm", "12101", 52.4690, 13.3850),
    ("Mehringdamm", "10961", 52.4940, 13.3880),
    ("Yorckstraße", "10965", 52.4920, 13.3760),
    ("Invalidenstraße", "10115", 52.5300, 13.3790),
    ("Chausseestraße", "10115", 52.5320, 13.3820),
    ("Brunnenstraße", "10119", 52.5350, 13.3980),
    ("Danziger Straße", "10435", 52.5400, 13.4230),
    ("Storkower Straße", "10409", 52.5330, 13.4640),
    ("Heerstraße", "14055", 52.5090, 13.2450),
    ("Clayallee", "14195", 52.4560, 13.2840),
    ("Berliner Allee", "13088", 52.5560, 13.4640),
    ("Residenzstraße", "13409", 52.5690, 13.3640),
    ("Rhinstraße", "10315", 52.5140, 13.5160),
    ("Schnellerstraße", "12439", 52.4560, 13.5140),
    ("Britzer Damm", "12347", 52.4500, 13.4330),
    ("Mariendorfer Damm", "12109", 52.4430, 13.3870),
    ("Kaiserdamm", "14057", 52.5100, 13.2850),
    ("Seestraße", "13353", 52.5480, 13.3500),
)

# Breakdowns on the city motorways (no house numbers there).
MOTORWAY_SPOTS: tuple[tuple[str, float, float], ...] = (
    ("A100 Richtung Wedding, Höhe Ausfahrt Kaiserdamm", 52.5075, 13.2810),
    ("A100 Richtung Neukölln, Höhe Ausfahrt Tempelhofer Damm", 52.4675, 13.3855),
    ("A100 Dreieck Funkturm", 52.4990, 13.2740),
    ("A111 Richtung Hamburg, Höhe Ausfahrt Holzhauser Straße", 52.5790, 13.3010),
    ("A113 Richtung Schönefeld, Höhe Ausfahrt Adlershof", 52.4305, 13.5290),
    ("A114 Richtung Prenzlau, Höhe Ausfahrt Bucher Straße", 52.5980, 13.4330),
    ("A115 (AVUS) Richtung Potsdam, Höhe Ausfahrt Hüttenweg", 52.4720, 13.2410),
)

# Where towed cars go: made-up workshops on real streets.
WORKSHOPS: tuple[tuple[str, str, str], ...] = (
    ("Autowerkstatt Friedrichshain", "Boxhagener Straße", "78"),
    ("Kfz-Service Schöneberg", "Hauptstraße", "121"),
    ("Autohaus am Tempelhofer Damm", "Tempelhofer Damm", "150"),
    ("Meisterwerkstatt Wedding", "Müllerstraße", "44"),
    ("Karosserie & Lack Neukölln", "Karl-Marx-Straße", "210"),
    ("Autoservice Moabit", "Alt-Moabit", "96"),
    ("Reifen- und Autoservice Steglitz", "Schloßstraße", "19"),
    ("Kfz-Technik Lichtenberg", "Rhinstraße", "140"),
    ("Autozentrum Adlershof", "Adlergestell", "333"),
    ("Werkstatt Prenzlauer Berg", "Greifswalder Straße", "212"),
    ("Autohof Reinickendorf", "Residenzstraße", "90"),
)

FIRST_NAMES = (
    "Anna", "Lena", "Laura", "Julia", "Sarah", "Lisa", "Marie", "Sophie", "Katharina", "Sabine",
    "Petra", "Claudia", "Monika", "Andrea", "Birgit", "Nicole", "Stefanie", "Jana", "Mia",
    "Emma", "Hannah", "Lea", "Ayşe", "Fatma", "Elif", "Zeynep", "Agnieszka", "Olga", "Natalia",
    "Maria", "Thomas", "Michael", "Andreas", "Stefan", "Christian", "Markus", "Alexander",
    "Daniel", "Tobias", "Jan", "Lukas", "Felix", "Jonas", "Paul", "Max", "Sebastian", "Florian",
    "Matthias", "Frank", "Jürgen", "Uwe", "Klaus", "Peter", "Wolfgang", "Dirk", "Holger",
    "Mehmet", "Mustafa", "Ali", "Can", "Emre", "Piotr", "Tomasz", "Dmitri", "Sergei", "Ahmad",
    "Karim", "Minh", "Leon", "Noah", "Elias", "Ben", "Finn", "Greta", "Ida", "Clara",
)  # fmt: skip
DRIVER_FIRST_NAMES = (
    "Thomas", "Michael", "Andreas", "Stefan", "Christian", "Markus", "Daniel", "Tobias", "Jan",
    "Sven", "Dennis", "René", "Marco", "Mario", "Ronny", "Steffen", "Kai", "Mehmet", "Murat",
    "Kemal", "Piotr", "Marek", "Dariusz", "Sergej", "Viktor", "Jana", "Nadine", "Sandra",
    "Katrin", "Denise", "Patrick", "Kevin", "Rico", "Enrico", "Maik", "Torsten", "Heiko",
    "Olaf", "Ralf", "Detlef",
)  # fmt: skip
SURNAMES = (
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz",
    "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Schröder", "Neumann",
    "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann", "Lange", "Schmitt",
    "Werner", "Krause", "Meier", "Lehmann", "Schulze", "Maier", "Köhler", "Herrmann", "König",
    "Walter", "Mayer", "Huber", "Kaiser", "Fuchs", "Peters", "Lang", "Scholz", "Möller", "Weiß",
    "Jung", "Hahn", "Schubert", "Vogel", "Friedrich", "Keller", "Günther", "Frank", "Berger",
    "Winkler", "Roth", "Beck", "Lorenz", "Baumann", "Franke", "Albrecht", "Schuster", "Simon",
    "Ludwig", "Böhm", "Winter", "Kraus", "Martin", "Schumacher", "Krämer", "Vogt", "Stein",
    "Jäger", "Otto", "Sommer", "Groß", "Seidel", "Heinrich", "Brandt", "Haas", "Schreiber",
    "Graf", "Dietrich", "Ziegler", "Kuhn", "Pohl", "Engel", "Horn", "Busch", "Bergmann", "Voigt",
    "Sauer", "Arnold", "Wolff", "Pfeiffer", "Y\u0131lmaz", "Kaya", "Demir", "Şahin", "Çelik",
    "Öztürk", "Kowalski", "Nowak", "Wiśniewski", "Nguyen", "Tran", "Ivanov", "Petrov", "Haddad",
)  # fmt: skip
COMPANY_SUFFIXES = (
    "Logistik GmbH", "Bau GmbH", "Kurierdienst", "Pflegedienst GmbH", "Umzüge", "Sanitär GmbH",
    "Elektro GmbH", "Catering", "Gebäudeservice GmbH",
)  # fmt: skip
CUSTOMER_NOTES = (
    "Prefers SMS over calls.",
    "Speaks little German; English is fine.",
    "Hard of hearing: call twice or send an SMS.",
    "Fleet customer: invoice to the company, not the driver.",
    "Regular customer, always friendly.",
    "Second car is kept at the office.",
)

# make -> (weight, world manufacturer id, models (name, weight, first model year)).
MAKES: dict[str, tuple[float, str, tuple[tuple[str, float, int], ...]]] = {
    "Volkswagen": (19, "WVW", (("Golf", 5, 2004), ("Polo", 3, 2004), ("Passat", 2, 2005),
                               ("Tiguan", 2, 2008), ("T-Roc", 1, 2018), ("ID.3", 1, 2020),
                               ("Touran", 1, 2004), ("Caddy", 1, 2004))),
    "Mercedes-Benz": (10, "WDD", (("A-Klasse", 2, 2005), ("C-Klasse", 3, 2004),
                                  ("E-Klasse", 2, 2004), ("GLC", 1, 2016), ("Vito", 1, 2004))),
    "BMW": (8, "WBA", (("1er", 2, 2005), ("3er", 3, 2004), ("5er", 2, 2004), ("X1", 1, 2010),
                       ("X3", 1, 2004))),
    "Audi": (7, "WAU", (("A3", 3, 2004), ("A4", 3, 2004), ("A6", 2, 2004), ("Q3", 1, 2012),
                        ("Q5", 1, 2009))),
    "Opel": (7, "W0L", (("Corsa", 4, 2004), ("Astra", 4, 2004), ("Insignia", 1, 2009),
                        ("Zafira", 1, 2005))),
    "Ford": (6, "WF0", (("Fiesta", 3, 2004), ("Focus", 3, 2004), ("Kuga", 1, 2008),
                        ("Transit", 1, 2004))),
    "Škoda": (6, "TMB", (("Octavia", 4, 2004), ("Fabia", 3, 2004), ("Superb", 1, 2008),
                         ("Kodiaq", 1, 2017))),
    "Seat": (4, "VSS", (("Leon", 3, 2005), ("Ibiza", 3, 2004), ("Arona", 1, 2018))),
    "Renault": (4, "VF1", (("Clio", 4, 2004), ("Mégane", 2, 2004), ("Captur", 2, 2013),
                           ("Kangoo", 1, 2004))),
    "Toyota": (4, "SB1", (("Yaris", 3, 2004), ("Corolla", 2, 2004), ("RAV4", 1, 2006))),
    "Hyundai": (4, "TMA", (("i30", 3, 2007), ("i20", 2, 2009), ("Tucson", 2, 2005),
                           ("Kona", 1, 2018))),
    "Fiat": (3, "ZFA", (("500", 3, 2008), ("Panda", 2, 2004), ("Ducato", 1, 2004))),
    "Tesla": (2, "XP7", (("Model 3", 2, 2019), ("Model Y", 3, 2022))),
    "Dacia": (4, "UU1", (("Sandero", 3, 2008), ("Duster", 2, 2010), ("Logan", 1, 2005))),
    "Kia": (3, "U5Y", (("Ceed", 3, 2007), ("Sportage", 2, 2005), ("Picanto", 1, 2004))),
    "Mazda": (2, "JMZ", (("3", 2, 2004), ("CX-5", 1, 2012))),
    "Peugeot": (2, "VF3", (("208", 2, 2012), ("308", 2, 2007), ("3008", 1, 2009))),
    "Volvo": (1, "YV1", (("XC60", 1, 2008), ("V60", 1, 2010))),
}  # fmt: skip
_MAKE_WEIGHTS = tuple((make, spec[0]) for make, spec in MAKES.items())
ELECTRIC = {"ID.3", "Model 3", "Model Y"}
FLEET_MODELS = (
    ("Mercedes-Benz", "Sprinter", "WDB"), ("Mercedes-Benz", "Vito", "WDF"),
    ("Volkswagen", "Crafter", "WV1"), ("Volkswagen", "Caddy", "WV2"), ("Ford", "Transit", "WF0"),
    ("Fiat", "Ducato", "ZFA"), ("Renault", "Kangoo", "VF1"),
)  # fmt: skip
COLOURS = (
    ("black", 22), ("grey", 20), ("white", 20), ("silver", 12), ("blue", 10), ("red", 7),
    ("green", 2), ("brown", 2), ("beige", 1), ("yellow", 1), ("orange", 1),
)  # fmt: skip
# District codes of Berlin and around, for plates; Berlin's own dominates.
PLATE_AREAS = (("B", 86), ("P", 4), ("LDS", 2), ("MOL", 2), ("BAR", 2), ("OHV", 2), ("TF", 2))
# Letter pairs not issued in Germany.
FORBIDDEN_LETTERS = {"HJ", "KZ", "NS", "SA", "SS"}
PLATE_LETTERS = "ABCDEFGHIJKLMNOPRSTUVWXYZ"
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O, Q
_VIN_VALUES = {**{str(d): d for d in range(10)}, **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
               **dict(zip("JKLMN", range(1, 6), strict=True)), "P": 7, "R": 9,
               **dict(zip("STUVWXYZ", range(2, 10), strict=True))}  # fmt: skip
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VIN_YEARS = "ABCDEFGHJKLMNPRSTVWXY"  # 2010, 2011, ... (1980 for the first cycle)

# Motor clubs and roadside insurers: (provider, share of customers, number digits, partner id).
MEMBERSHIPS = (
    ("ADAC", 0.16, 9, "adac"),
    ("ACE Auto Club Europa", 0.025, 8, "ace"),
    ("AvD", 0.012, 7, "avd"),
    ("Allianz Schutzbrief", 0.015, 10, "allianz-assistance"),
    ("HUK-COBURG Schutzbrief", 0.012, 10, "huk-coburg"),
)
MOBILE_PREFIXES = (
    "1511", "1512", "1515", "1516", "1520", "1522", "1523", "1570", "1573", "1575", "1577",
    "1590", "160", "162", "163", "170", "171", "172", "173", "174", "175", "176", "177", "178",
    "179",
)  # fmt: skip

# Service mix by code (codes the tenant no longer offers are skipped).
SERVICE_MIX = {
    "towing": 34,
    "jump_start": 20,
    "flat_tyre": 18,
    "lockout": 12,
    "fuel_delivery": 8,
    "winching": 8,
}
REQUEST_NOTES = {
    "towing": (
        "Engine won't start, car has to go to the workshop.",
        "Accident damage at the front, car not drivable.",
        "Clutch gone, car stuck in first gear.",
        "Warning light on, engine lost power.",
        "Car is in an underground car park, clearance 2.0 m.",
        "Gearbox failure, customer travels with the truck.",
    ),
    "jump_start": (
        "Battery flat after the car stood for two weeks.",
        "Lights left on overnight.",
        "Car clicks but won't start.",
    ),
    "flat_tyre": (
        "Rear left tyre flat, no spare wheel.",
        "Puncture; locking wheel nut key missing.",
        "Tyre burst, car on the hard shoulder.",
    ),
    "lockout": (
        "Keys locked in the boot.",
        "Key fob broken, car locked.",
        "Keys locked in, dog inside the car.",
    ),
    "fuel_delivery": (
        "Ran out of diesel.",
        "Ran out of petrol.",
        "Wrong fuel: petrol in a diesel car, not started yet.",
    ),
    "winching": (
        "Car slid off the road into a ditch.",
        "Stuck in mud at a construction site.",
        "Van stuck on a grass verge after rain.",
    ),
}
# Calls by local hour: quiet nights, peaks in the morning and evening rush hours.
HOUR_WEIGHTS = (
    2.0, 1.5, 1.2, 1.0, 1.0, 1.5, 3.0, 6.5, 8.5, 6.5, 5.0, 5.0,
    5.5, 5.5, 6.0, 7.0, 8.5, 9.0, 7.5, 5.0, 4.0, 3.5, 3.0, 2.5,
)  # fmt: skip
WEEKDAY_WEIGHTS = (1.05, 1.0, 1.0, 1.02, 1.12, 0.85, 0.75)  # Monday first
_HOURS = list(itertools.accumulate(HOUR_WEIGHTS))
PRIORITY_MIX = ((Priority.normal, 75.0), (Priority.high, 12.0), (Priority.low, 10.0),
                (Priority.emergency, 3.0))  # fmt: skip
# Median minutes from call to assignment, by priority.
ASSIGN_MINUTES = {
    Priority.emergency: 1.0,
    Priority.high: 2.5,
    Priority.normal: 6.0,
    Priority.low: 14.0,
}
# Median minutes of work on scene, by service code (towing adds the drive to the workshop).
WORK_MINUTES = {
    "towing": 18.0,
    "jump_start": 14.0,
    "flat_tyre": 25.0,
    "lockout": 12.0,
    "fuel_delivery": 10.0,
    "winching": 45.0,
}
# Why requests are cancelled, and in which state that happens.
CANCEL_MIX: tuple[tuple[str, float, tuple[tuple[S, float], ...]], ...] = (
    ("customer_cancelled", 45, ((S.pending, 4), (S.assigned, 3), (S.en_route, 3))),
    ("gone_on_arrival", 20, ((S.on_scene, 1),)),
    ("duplicate", 10, ((S.pending, 1),)),
    ("no_driver_available", 10, ((S.pending, 1),)),
    ("unable_to_service", 10, ((S.on_scene, 3), (S.in_progress, 2))),
    ("other", 5, ((S.pending, 1), (S.assigned, 1))),
)
# Why a driver comes off a job before setting off (pre-empted: an emergency needed them).
WITHDRAW_REASONS = (("driver_withdrew", 5.0), ("reassigned", 4.0), ("pre_empted", 1.0))
CANCEL_SHARE = 0.08
REASSIGN_SHARE = 0.03
OPEN_MIX = (
    (S.pending, 6),
    (S.assigned, 4),
    (S.en_route, 4),
    (S.on_scene, 3),
    (S.in_progress, 3),
)
TRUCKS_TOW = (
    "MAN TGL 8.190 Abschleppwagen",
    "Mercedes-Benz Atego 818 Plateau",
    "Iveco Daily 70C Abschlepper",
    "Mercedes-Benz Sprinter Abschleppwagen",
    "Volvo FL Bergefahrzeug",
)
TRUCKS_WINCH = ("Unimog U 423 mit Seilwinde", "MAN TGM 18.290 Bergekran")
TRUCKS_SERVICE = (
    "VW Crafter Pannenhilfe",
    "Ford Transit Custom Servicewagen",
    "Mercedes-Benz Vito Pannenhilfe",
)


@dataclass(frozen=True)
class DemoSummary:
    """What a fill did: how many rows it created, or why it created none."""

    filled: bool
    users: int = 0
    drivers: int = 0
    customers: int = 0
    vehicles: int = 0
    memberships: int = 0
    open_requests: int = 0
    past_requests: int = 0
    events: int = 0
    seconds: float = 0.0
    reason: str = ""

    def __str__(self) -> str:
        if not self.filled:
            return f"demo data: nothing to do ({self.reason})"
        return (
            f"demo data: {self.drivers} drivers, {self.customers} customers with "
            f"{self.vehicles} vehicles, {self.open_requests} open and {self.past_requests} "
            f"past requests ({self.events} events) in {self.seconds:.1f} s"
        )


# --- the data, built in memory --------------------------------------------------------------

# Who acted: ("user", index into DemoData.users), ("customer", customer index) or
# ("partner", partner id).
ActorRef = tuple[str, int | str]


@dataclass(slots=True)
class DemoUser:
    email: str
    name: str
    role: str
    created_at: datetime


@dataclass(slots=True)
class DemoDriver:
    user: int
    name: str
    phone: str
    skills: list[str]
    truck: str
    rating: int
    created_at: datetime
    weight: float  # share of jobs (full-timers get more)
    status: str = DriverStatus.off_duty.value
    lat: float = 0.0
    lng: float = 0.0
    seen_at: datetime | None = None


@dataclass(slots=True)
class DemoCustomer:
    name: str
    phone: str | None
    email: str | None
    notes: str
    created_at: datetime
    vehicles: list[int] = field(default_factory=list)
    partner: str | None = None  # set when a motor club or insurer covers them


@dataclass(slots=True)
class DemoVehicle:
    customer: int
    make: str
    model: str
    year: int
    colour: str
    plate: str
    vin: str


@dataclass(slots=True)
class DemoMembership:
    customer: int
    provider: str
    number: str
    valid_until: date


@dataclass(slots=True)
class DemoEvent:
    from_status: str | None
    to_status: str
    actor: ActorRef
    at: datetime
    reason_code: str = ""
    lat: float | None = None
    lng: float | None = None


@dataclass(slots=True)
class DemoRequest:
    customer: int
    vehicle: int
    service_code: str
    priority: str
    source: str
    pickup: tuple[float, float, str]
    destination: tuple[float, float, str] | None
    notes: str
    created_at: datetime
    steps: list[_Step]
    start: tuple[float, float]  # where the driver sets off from
    km_start: float
    is_open: bool
    created_by: ActorRef = ("user", 0)
    quoted_price: int = 0
    drivers: list[int] = field(default_factory=list)  # one per assignment, last one stays
    events: list[DemoEvent] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.steps[-1].to_status)

    @property
    def driver(self) -> int | None:
        return self.drivers[-1] if self.drivers and self.status != S.pending else None


@dataclass(slots=True)
class _Step:
    """One planned transition, `offset` seconds after the call."""

    from_status: str | None
    to_status: str
    offset: float
    by: str  # "creator", "dispatcher" or "driver"
    reason_code: str = ""
    where: str = ""  # "start", "pickup", "destination" or "" (no position)


@dataclass
class DemoData:
    """Everything a fill writes, in insertion order; references are list indexes."""

    users: list[DemoUser]
    drivers: list[DemoDriver]
    customers: list[DemoCustomer]
    vehicles: list[DemoVehicle]
    memberships: list[DemoMembership]
    requests: list[DemoRequest]  # oldest first

    @property
    def events(self) -> int:
        return sum(len(r.events) for r in self.requests)


@functools.cache
def _cumulative(pairs: tuple[tuple[Any, float], ...]) -> tuple[list[Any], list[float]]:
    return [p[0] for p in pairs], list(itertools.accumulate(p[1] for p in pairs))


def _choice(rng: random.Random, pairs: tuple[tuple[Any, float], ...]) -> Any:
    """One of the values, by weight: `pairs` is ((value, weight), ...)."""
    values, cumulative = _cumulative(pairs)
    return rng.choices(values, cum_weights=cumulative)[0]


def _ascii(text: str) -> str:
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss"), ("\u0131", "i"), ("ł", "l")):
        text = text.replace(a, b)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _mobile(rng: random.Random) -> str:
    prefix = rng.choice(MOBILE_PREFIXES)
    digits = 7 if len(prefix) == 4 else 8
    return f"+49{prefix}{rng.randrange(1, 10)}{rng.randrange(10 ** (digits - 1)):0{digits - 1}d}"


def _clamp(lat: float, lng: float) -> tuple[float, float]:
    return (
        round(min(max(lat, LAT_MIN + 0.001), LAT_MAX - 0.001), 6),
        round(min(max(lng, LNG_MIN + 0.001), LNG_MAX - 0.001), 6),
    )


def _offset(lat: float, lng: float, km: float, bearing: float) -> tuple[float, float]:
    dlat = km * math.cos(bearing) / 111.2
    dlng = km * math.sin(bearing) / (111.2 * math.cos(math.radians(lat)))
    return _clamp(lat + dlat, lng + dlng)


def _house_number(rng: random.Random) -> str:
    number = 1 + int(rng.betavariate(1.2, 3.0) * 180)  # low numbers are more common
    return f"{number}{'a' if rng.random() < 0.06 else ''}"


def _street_address(rng: random.Random) -> tuple[float, float, str]:
    street, postcode, lat, lng = rng.choice(STREETS)
    lat, lng = _clamp(lat + rng.uniform(-0.003, 0.003), lng + rng.uniform(-0.005, 0.005))
    return lat, lng, f"{street} {_house_number(rng)}, {postcode} Berlin"


def _pickup(rng: random.Random) -> tuple[float, float, str]:
    if rng.random() < 0.08:
        address, lat, lng = rng.choice(MOTORWAY_SPOTS)
        lat, lng = _clamp(lat + rng.uniform(-0.001, 0.001), lng + rng.uniform(-0.0015, 0.0015))
        return lat, lng, address
    return _street_address(rng)


def _workshop(rng: random.Random) -> tuple[float, float, str]:
    name, street, number = rng.choice(WORKSHOPS)
    _, postcode, lat, lng = next(s for s in STREETS if s[0] == street)
    return lat, lng, f"{name}, {street} {number}, {postcode} Berlin"


def _plate(rng: random.Random, electric: bool) -> str:
    area = _choice(rng, PLATE_AREAS)
    while True:
        letters = "".join(rng.choice(PLATE_LETTERS) for _ in range(rng.choice((1, 2, 2, 2))))
        if letters not in FORBIDDEN_LETTERS:
            break
    room = min(4, 8 - len(area) - len(letters) - (1 if electric else 0))
    digits = str(rng.randrange(1, 10 ** rng.randint(max(1, room - 1), room)))
    return normalize_plate(f"{area}-{letters} {digits}{'E' if electric else ''}")


def _vin(rng: random.Random, wmi: str, year: int) -> str:
    cycle = year - 2010 if year >= 2010 else year - 1980
    year_code = _VIN_YEARS[cycle] if year >= 2010 or year <= 2000 else str(year - 2000)
    body = (
        wmi
        + "".join(rng.choice(VIN_CHARS) for _ in range(5))
        + "0"  # the check digit, computed below
        + year_code
        + rng.choice(VIN_CHARS)
        + f"{rng.randrange(1_000_000):06d}"
    )
    check = sum(_VIN_VALUES[c] * w for c, w in zip(body, _VIN_WEIGHTS, strict=True)) % 11
    return body[:8] + ("X" if check == 10 else str(check)) + body[9:]


def _vehicle(rng: random.Random, customer: int, today: date, fleet: bool) -> DemoVehicle:
    if fleet:
        make, model, wmi = rng.choice(FLEET_MODELS)
        first_year = 2012
    else:
        make = _choice(rng, _MAKE_WEIGHTS)
        _, wmi, models = MAKES[make]
        model, first_year = _choice(rng, tuple(((m, y), w) for m, w, y in models))
    newest = today.year
    year = max(first_year, min(newest, newest - int(rng.expovariate(1 / 7.5))))
    return DemoVehicle(
        customer=customer,
        make=make,
        model=model,
        year=year,
        colour="white" if fleet and rng.random() < 0.7 else _choice(rng, COLOURS),
        plate=_plate(rng, model in ELECTRIC),
        vin=_vin(rng, wmi, year),
    )


def _email(rng: random.Random, first: str, last: str) -> str:
    local = _ascii(f"{first}.{last}").lower().replace(" ", "")
    if rng.random() < 0.5:
        local += str(rng.randrange(1, 100))
    return f"{local}@{rng.choice(('example.com', 'example.net', 'example.org'))}"


def driver_skills(rng: random.Random) -> list[str]:
    """A driver's skills: most drivers tow, some of them winch, many open locks."""
    tow = rng.random() < 0.82
    winch = rng.random() < (0.35 if tow else 0.2)
    lockout = rng.random() < (0.4 if tow else 0.9)
    return sorted(
        {s for s, has in (("tow", tow), ("winch", winch), ("lockout", lockout)) if has}
        or {"lockout"}
    )


def _people(
    rng: random.Random, now: datetime
) -> tuple[list[DemoUser], list[DemoDriver], list[int]]:
    """Staff users (a manager and dispatchers) and the drivers, each with a driver user."""
    users: list[DemoUser] = []
    taken: set[str] = set()

    def user(name: str, role: str, created_at: datetime) -> int:
        local = _ascii(name).lower().replace(" ", ".")
        email, n = f"{local}@{EMAIL_DOMAIN}", 2
        while email in taken:
            email, n = f"{local}{n}@{EMAIL_DOMAIN}", n + 1
        taken.add(email)
        users.append(DemoUser(email=email, name=name, role=role, created_at=created_at))
        return len(users) - 1

    def since(low: int, high: int) -> datetime:
        return now - timedelta(days=rng.uniform(low, high), minutes=rng.uniform(0, 600))

    user(f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}", "manager", since(900, 1500))
    dispatchers = [
        user(f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}", "dispatcher", since(150, 1200))
        for _ in range(5)
    ]
    drivers: list[DemoDriver] = []
    for number in range(DRIVERS):
        name = f"{rng.choice(DRIVER_FIRST_NAMES)} {rng.choice(SURNAMES)}"
        created_at = since(100, 1800)
        skills = driver_skills(rng)
        tow, winch = "tow" in skills, "winch" in skills
        if tow and winch and rng.random() < 0.4:
            truck = rng.choice(TRUCKS_WINCH)
        elif tow:
            truck = rng.choice(TRUCKS_TOW)
        else:
            truck = rng.choice(TRUCKS_SERVICE)
        drivers.append(
            DemoDriver(
                user=user(name, "driver", created_at),
                name=name,
                phone=_mobile(rng),
                skills=skills,
                truck=f"{truck}, B-DT {1001 + number}",
                rating=min(500, max(360, round(rng.gauss(456, 22)))),
                created_at=created_at,
                weight=rng.choice((1.0, 1.0, 1.0, 0.6, 0.3)),
            )
        )
    return users, drivers, dispatchers


def _customers(
    rng: random.Random, now: datetime
) -> tuple[list[DemoCustomer], list[DemoVehicle], list[DemoMembership]]:
    customers: list[DemoCustomer] = []
    vehicles: list[DemoVehicle] = []
    memberships: list[DemoMembership] = []
    today = now.date()
    for index in range(CUSTOMERS):
        fleet = rng.random() < 0.012
        first, last = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
        email: str | None
        if fleet:
            name = f"{last} {rng.choice(COMPANY_SUFFIXES)}"
            email = f"{_ascii(last).lower()}@example.com"
        else:
            name = f"{first} {last}"
            email = _email(rng, first, last) if rng.random() < 0.65 else None
        customer = DemoCustomer(
            name=name,
            phone=_mobile(rng) if rng.random() < 0.97 else None,
            email=email,
            notes=rng.choice(CUSTOMER_NOTES) if rng.random() < 0.04 else "",
            # Moved back to their first call below, if that was earlier.
            created_at=now - timedelta(days=rng.uniform(0, 3 * 365)),
        )
        customers.append(customer)
        count = rng.randint(3, 8) if fleet else _choice(rng, ((1, 82), (2, 15), (3, 3)))
        for _ in range(count):
            customer.vehicles.append(len(vehicles))
            vehicles.append(_vehicle(rng, index, today, fleet))
        if fleet:
            continue
        for provider, share, digits, partner in MEMBERSHIPS:
            if rng.random() < share:
                year = today.year + (-1 if rng.random() < 0.05 else rng.choice((0, 1)))
                number = f"{rng.randrange(1, 10)}{rng.randrange(10 ** (digits - 1)):0{digits - 1}d}"
                memberships.append(
                    DemoMembership(index, provider, number, valid_until=date(year, 12, 31))
                )
                customer.partner = customer.partner or partner
    return customers, vehicles, memberships


def _minutes(rng: random.Random, median: float, spread: float = 0.5) -> float:
    """A duration in seconds, log-normal around `median` minutes."""
    return 60 * median * rng.lognormvariate(0, spread)


def _plan(
    rng: random.Random,
    code: str,
    priority: str,
    km_start: float,
    km_destination: float,
    *,
    stop_at: str | None = None,
) -> list[_Step]:
    """A legal path through the lifecycle with times: where and when each step happens.

    `stop_at` ends the path in that open state (for the live board); otherwise it ends in
    completed or, for some, cancelled, and a few are withdrawn from one driver and reassigned.
    """
    steps = [_Step(None, S.pending, 0.0, "creator")]
    cancel_reason, cancel_in = "", ""
    if stop_at is None and rng.random() < CANCEL_SHARE:
        cancel_reason, _, states = _choice(rng, tuple((c, c[1]) for c in CANCEL_MIX))
        cancel_in = _choice(rng, states)
    reassign = stop_at is None and rng.random() < REASSIGN_SHARE

    def add(to: str, seconds: float, by: str, reason: str = "", where: str = "") -> bool:
        steps.append(_Step(steps[-1].to_status, to, steps[-1].offset + seconds, by, reason, where))
        return to == stop_at

    def cancel(seconds: float, by: str = "dispatcher", where: str = "") -> list[_Step]:
        add(S.cancelled, seconds, by, cancel_reason, where)
        return steps

    if stop_at == S.pending:
        return steps
    if cancel_in == S.pending:
        wait = _minutes(rng, 50 if cancel_reason == "no_driver_available" else 8, 0.6)
        return cancel(wait)
    if add(S.assigned, _minutes(rng, ASSIGN_MINUTES[Priority(priority)], 0.6), "dispatcher"):
        return steps
    if reassign:
        reasons = WITHDRAW_REASONS if priority != Priority.emergency else WITHDRAW_REASONS[:2]
        reason = _choice(rng, reasons)
        add(S.pending, _minutes(rng, 3), "driver" if reason == "driver_withdrew" else "dispatcher",
            reason)  # fmt: skip
        add(S.assigned, _minutes(rng, 2.5), "dispatcher")
    if cancel_in == S.assigned:
        return cancel(_minutes(rng, 4))
    if add(S.en_route, _minutes(rng, 1.5), "driver", where="start"):
        return steps
    if cancel_in == S.en_route:
        return cancel(_minutes(rng, 6))
    travel = km_start * 1.35 / 24 * 3600 + _minutes(rng, 3)
    if add(S.on_scene, travel, "driver", where="pickup"):
        return steps
    if cancel_in == S.on_scene:
        if cancel_reason == "gone_on_arrival":
            return cancel(_minutes(rng, 4), "driver", "pickup")
        return cancel(_minutes(rng, 12))
    if add(S.in_progress, _minutes(rng, 4), "driver", where="pickup"):
        return steps
    if cancel_in == S.in_progress:
        return cancel(_minutes(rng, 20))
    work = _minutes(rng, WORK_MINUTES.get(code, 20), 0.4)
    if km_destination:
        work += km_destination * 1.35 / 26 * 3600
    add(S.completed, work, "driver", where="destination" if km_destination else "pickup")
    return steps


def _local_call_time(
    rng: random.Random, today: date, zone: ZoneInfo, day_weights: list[float]
) -> datetime:
    """When a past call came in: more on weekdays, at daytime and in the rush hours."""
    days = rng.choices(range(HISTORY_DAYS), cum_weights=day_weights)[0]
    hour = rng.choices(range(24), cum_weights=_HOURS)[0]
    local = datetime.combine(
        today - timedelta(days=days),
        clock_time(hour, rng.randrange(60), rng.randrange(60), rng.randrange(1_000_000)),
        tzinfo=zone,
    )
    return local.astimezone(UTC)


def _requests(
    rng: random.Random,
    now: datetime,
    customers: list[DemoCustomer],
    service_types: dict[str, ServiceTypeRow],
    skilled: set[str],
) -> list[DemoRequest]:
    zone = ZoneInfo(TIME_ZONE)
    today = now.astimezone(zone).date()
    day_weights = list(
        itertools.accumulate(
            WEEKDAY_WEIGHTS[(today - timedelta(days=d)).weekday()] for d in range(HISTORY_DAYS)
        )
    )
    offered: list[tuple[str, float]] = [
        (code, weight)
        for code, weight in SERVICE_MIX.items()
        if code in service_types and set(service_types[code].required_skills) <= skilled
    ]
    offered += [
        (code, 3.0)
        for code, row in service_types.items()
        if code not in SERVICE_MIX and set(row.required_skills) <= skilled
    ]
    if not offered:
        return []
    services = tuple(offered)
    # Some customers call more often than others.
    loyalty = [rng.paretovariate(1.6) for _ in customers]
    cumulative = list(itertools.accumulate(loyalty))
    open_statuses = [s for s, n in OPEN_MIX for _ in range(n)]
    requests: list[DemoRequest] = []
    for index in range(PAST_REQUESTS + OPEN_REQUESTS):
        is_open = index >= PAST_REQUESTS
        customer_index = bisect.bisect(cumulative, rng.uniform(0, cumulative[-1]))
        customer_index = min(customer_index, len(customers) - 1)
        customer = customers[customer_index]
        code = _choice(rng, services)
        pickup = _pickup(rng)
        motorway = pickup[2].startswith("A1")
        priority = _choice(rng, PRIORITY_MIX)
        if motorway and priority in (Priority.normal, Priority.low):
            priority = Priority.high if rng.random() < 0.5 else priority
        if is_open and index - PAST_REQUESTS == 0:
            priority = Priority.emergency  # one on the board, to show how it stands out
        destination = None
        if service_types[code].needs_destination:
            destination = _workshop(rng) if rng.random() < 0.7 else _street_address(rng)
        km_destination = (
            distance_km(pickup[0], pickup[1], destination[0], destination[1]) if destination else 0
        )
        km_start = rng.uniform(1.5, 11.0)
        start = _offset(pickup[0], pickup[1], km_start, rng.uniform(0, 2 * math.pi))
        stop_at = open_statuses[index - PAST_REQUESTS] if is_open else None
        notes = rng.choice(REQUEST_NOTES.get(code, ("",))) if rng.random() < 0.45 else ""
        source = _choice(
            rng, ((RequestSource.admin, 78), (RequestSource.portal, 14), (RequestSource.api, 8))
        )
        if source == RequestSource.api and customer.partner is None:
            source = RequestSource.admin
        while True:
            steps = _plan(rng, code, priority, km_start, km_destination, stop_at=stop_at)
            if is_open:
                lead = rng.uniform(1, 12) if stop_at == S.pending else rng.uniform(0.5, 6)
                created_at = now - timedelta(seconds=steps[-1].offset, minutes=lead)
                break
            created_at = _local_call_time(rng, today, zone, day_weights)
            if created_at + timedelta(seconds=steps[-1].offset) < now - timedelta(minutes=2):
                break
        requests.append(
            DemoRequest(
                customer=customer_index,
                vehicle=rng.choice(customer.vehicles),
                service_code=code,
                priority=priority.value,
                source=source.value,
                pickup=pickup,
                destination=destination,
                notes=notes,
                created_at=created_at,
                steps=steps,
                start=start,
                km_start=km_start,
                is_open=is_open,
            )
        )
    requests.sort(key=lambda r: r.created_at)
    return requests


def _staff_and_events(
    rng: random.Random,
    now: datetime,
    data: DemoData,
    dispatchers: list[int],
    service_types: dict[str, ServiceTypeRow],
    settings: dict[str, Any],
) -> None:
    """Give every request its drivers (nobody on two jobs at once), actors, events and price;
    then set each driver's status and last position from what they are doing now."""
    free_at = [now - timedelta(days=HISTORY_DAYS + 1)] * len(data.drivers)
    never = now + timedelta(days=3650)
    current: dict[int, DemoRequest] = {}
    able_by_code = {
        code: [i for i, d in enumerate(data.drivers) if set(row.required_skills) <= set(d.skills)]
        for code, row in service_types.items()
    }
    for request in sorted(data.requests, key=lambda r: r.created_at):
        able = able_by_code[request.service_code]
        dispatcher = rng.choice(dispatchers)
        customer = data.customers[request.customer]
        if request.source == RequestSource.portal:
            request.created_by = ("customer", request.customer)
        elif request.source == RequestSource.api:
            request.created_by = ("partner", customer.partner or "partner")
        else:
            request.created_by = ("user", dispatcher)
        places = {
            "start": request.start,
            "pickup": request.pickup[:2],
            "destination": request.destination[:2] if request.destination else None,
        }
        driver = -1
        for step in request.steps:
            at = request.created_at + timedelta(seconds=step.offset)
            if step.to_status == S.assigned:
                free = [i for i in able if free_at[i] <= at and i != driver]
                if free:
                    driver = rng.choices(free, [data.drivers[i].weight for i in free])[0]
                else:  # everyone is busy: the one free soonest (live jobs never free up)
                    driver = min(able, key=lambda i: (free_at[i], i))
                request.drivers.append(driver)
                free_at[driver] = never
            elif step.to_status in (S.pending, S.completed, S.cancelled) and driver >= 0:
                free_at[driver] = at
            actor: ActorRef
            if step.by == "creator":
                actor = request.created_by
            elif step.by == "driver":
                actor = ("user", data.drivers[driver].user)
            else:
                actor = ("user", dispatcher)
            place = places.get(step.where) if step.where else None
            request.events.append(
                DemoEvent(
                    from_status=None if step.from_status is None else str(step.from_status),
                    to_status=str(step.to_status),
                    actor=actor,
                    at=at,
                    reason_code=step.reason_code,
                    lat=place[0] if place else None,
                    lng=place[1] if place else None,
                )
            )
        if request.is_open and request.driver is not None:
            current[request.driver] = request
        km = (
            distance_km(*request.pickup[:2], *request.destination[:2])
            if request.destination
            else None
        )
        request.quoted_price = quote(
            service_types[request.service_code], settings, request.created_at, km
        )

    for index, driver_row in enumerate(data.drivers):
        job = current.get(index)
        if job is not None:
            driver_row.status = DriverStatus.busy.value
            lat, lng = job.start
            if job.status in (S.on_scene, S.in_progress):
                lat, lng = job.pickup[:2]
            elif job.status == S.en_route:
                travel = job.km_start * 1.35 / 24 * 3600 + 180
                gone = (now - job.events[-1].at).total_seconds()
                share = min(0.9, max(0.1, gone / travel))
                lat = job.start[0] + (job.pickup[0] - job.start[0]) * share
                lng = job.start[1] + (job.pickup[1] - job.start[1]) * share
            driver_row.lat, driver_row.lng = _clamp(lat, lng)
            driver_row.seen_at = now - timedelta(seconds=rng.uniform(3, 45))
            continue
        driver_row.status = _choice(
            rng,
            (
                (DriverStatus.available, 55),
                (DriverStatus.on_break, 12),
                (DriverStatus.off_duty, 33),
            ),
        ).value
        street = rng.choice(STREETS)
        driver_row.lat, driver_row.lng = _clamp(
            street[2] + rng.uniform(-0.01, 0.01), street[3] + rng.uniform(-0.015, 0.015)
        )
        if driver_row.status == DriverStatus.off_duty:
            driver_row.seen_at = now - timedelta(hours=rng.uniform(2, 30))
        else:
            driver_row.seen_at = now - timedelta(seconds=rng.uniform(3, 120))

    # Customers were entered on their first call at the latest.
    for request in data.requests:
        customer = data.customers[request.customer]
        first_call = request.created_at - timedelta(minutes=rng.uniform(0.5, 3))
        customer.created_at = min(customer.created_at, first_call)


def build_demo_data(
    seed: int,
    now: datetime,
    service_types: dict[str, ServiceTypeRow],
    settings: dict[str, Any],
) -> DemoData:
    """Build the demo company's rows in memory (no database): the same arguments give the same
    data. `service_types` maps code to its price-list row; `settings` are the tenant's settings
    that `service_types.quote` reads (time zone, units, business hours)."""
    people, customers_rng, requests_rng = (
        random.Random(f"patone-demo:{seed}:{part}") for part in ("people", "customers", "requests")
    )
    users, drivers, dispatchers = _people(people, now)
    customers, vehicles, memberships = _customers(customers_rng, now)
    skilled = {skill for d in drivers for skill in d.skills}
    requests = _requests(requests_rng, now, customers, service_types, skilled)
    data = DemoData(users, drivers, customers, vehicles, memberships, requests)
    _staff_and_events(requests_rng, now, data, dispatchers, service_types, settings)
    return data


# --- writing it -----------------------------------------------------------------------------

DRIVER_COLUMNS = (
    "id", "user", "name", "phone", "status", "skills", "truck", "last_lat", "last_lng",
    "last_seen_at", "rating", "created_at", "updated_at",
)  # fmt: skip
CUSTOMER_COLUMNS = ("id", "name", "phone", "email", "notes", "created_at", "updated_at")
VEHICLE_COLUMNS = (
    "id", "customer", "make", "model", "year", "colour", "plate", "vin", "created_at",
)  # fmt: skip
MEMBERSHIP_COLUMNS = ("customer", "provider", "number", "valid_until", "created_at")


@dataclass(frozen=True)
class _Ids:
    """Database ids of the rows built in memory, by list index."""

    users: list[int]
    drivers: list[int]
    customers: list[int]
    vehicles: list[int]

    def actor(self, actor: ActorRef) -> str:
        kind, ref = actor
        if kind == "user":
            return str(self.users[int(ref)])
        if kind == "customer":
            return str(self.customers[int(ref)])
        return str(ref)


class _ActorNames(dict[ActorRef, str]):
    """Each actor's database id as text, worked out once per actor."""

    def __init__(self, ids: _Ids) -> None:
        super().__init__()
        self.ids = ids

    def __missing__(self, actor: ActorRef) -> str:
        self[actor] = name = self.ids.actor(actor)
        return name


def _past_request(
    request: DemoRequest, ids: _Ids, names: _ActorNames, service_type_id: int
) -> PastRequest:
    destination = request.destination or (None, None, "")
    driver = request.driver
    return PastRequest(
        ids.customers[request.customer], ids.vehicles[request.vehicle], service_type_id,
        request.priority, request.source, request.pickup[0], request.pickup[1],
        request.pickup[2], destination[0], destination[1], destination[2], request.notes,
        request.quoted_price, SETTINGS["currency"],
        f"{request.created_by[0]}:{names[request.created_by]}",
        None if driver is None else ids.drivers[driver],
        tuple([
            PastEvent(e.from_status, e.to_status, e.actor[0], names[e.actor], e.at,
                      e.reason_code, "", e.lat, e.lng)
            for e in request.events
        ]),
    )  # fmt: skip


async def _reserve(sequence: str, count: int) -> list[int]:
    """Take `count` values from a sequence, ascending."""
    rows = await engine.fetch(
        "SELECT nextval($1::regclass) AS id FROM generate_series(1, $2)", sequence, count
    )
    return sorted(int(row["id"]) for row in rows)


async def _copy(
    raw: Any,
    table: str,
    columns: Sequence[str],
    records: list[tuple[Any, ...]],
    progress: Progress | None,
    stage: str,
    chunk: int = 2_500,
) -> None:
    """Binary COPY in chunks, reporting progress after each."""
    total = len(records)
    if progress:
        progress(stage, 0, total)
    for start in range(0, total, chunk):
        await raw.copy_records_to_table(
            table, records=records[start : start + chunk], columns=list(columns)
        )
        if progress:
            progress(stage, min(start + chunk, total), total)


async def _prepare_settings() -> dict[str, Any]:
    """EUR, km and Berlin time; the company's contact details where it has none. Returns all."""
    for key, value in SETTINGS.items():
        await engine.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2::jsonb, now()) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
            key,
            json.dumps(value),
        )
    for key, value in COMPANY.items():
        await engine.execute(
            "UPDATE settings SET value = $2::jsonb, updated_at = now() "
            "WHERE key = $1 AND value = '\"\"'::jsonb",
            key,
            json.dumps(value),
        )
    rows = await engine.fetch("SELECT key, value FROM settings")
    return {row["key"]: json.loads(row["value"]) for row in rows}


async def _insert_users(users: list[DemoUser]) -> list[int]:
    """Staff may exist already (someone signed up first): merge by e-mail, return the ids."""
    emails = [u.email for u in users]
    await engine.execute(
        "INSERT INTO users (email, name, role, active, created_at, updated_at) "
        "SELECT e, n, r, TRUE, c, c FROM unnest($1::text[], $2::text[], $3::text[], "
        "$4::timestamptz[]) AS u(e, n, r, c) ON CONFLICT (email) DO NOTHING",
        emails,
        [u.name for u in users],
        [u.role for u in users],
        [u.created_at for u in users],
    )
    rows = await engine.fetch("SELECT id, email FROM users WHERE email = ANY($1::text[])", emails)
    by_email = {row["email"]: int(row["id"]) for row in rows}
    return [by_email[email] for email in emails]


async def fill_demo_tenant(
    tenant: TenantRef, *, seed: int = 2026, progress: Progress | None = None
) -> DemoSummary:
    """Fill an empty tenant with a Berlin towing company's drivers, customers and 90 days of
    requests; a tenant that already has drivers, customers or requests is left alone.

    Runs in one tenant transaction (all or nothing) and sets the tenant's currency, units and
    time zone to EUR, km and Europe/Berlin. The same seed on the same clock (`clock.now`) gives
    the same data. `progress(stage, done, total)` is called as each table is written; the
    stages are prepare, users, drivers, customers, vehicles, memberships, requests, events.
    """
    started = time.perf_counter()
    async with tenant_transaction(tenant) as transaction:
        # Two processes starting together: the second waits here, then finds the data.
        await engine.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))", _LOCK_CLASS
        )
        rows = await engine.fetch(
            "SELECT EXISTS (SELECT 1 FROM drivers) OR EXISTS (SELECT 1 FROM customers) "
            "OR EXISTS (SELECT 1 FROM service_requests) AS used"
        )
        if rows[0]["used"]:
            return DemoSummary(
                filled=False,
                seconds=time.perf_counter() - started,
                reason=f"tenant {tenant.slug!r} already has drivers, customers or requests",
            )
        if progress:
            progress("prepare", 0, 1)
        settings = await _prepare_settings()
        service_types = {row.code: row for row in await list_service_types(tenant)}
        data = build_demo_data(seed, clock_now(), service_types, settings)
        if progress:
            progress("prepare", 1, 1)

        user_ids = await _insert_users(data.users)
        if progress:
            progress("users", len(user_ids), len(user_ids))
        ids = _Ids(
            users=user_ids,
            drivers=await _reserve("drivers_id_seq", len(data.drivers)),
            customers=await _reserve("customers_id_seq", len(data.customers)),
            vehicles=await _reserve("vehicles_id_seq", len(data.vehicles)),
        )
        # COPY is not in the wrapper that serialises statements; nothing else runs meanwhile.
        raw = getattr(transaction.connection, "raw", transaction.connection)
        drivers = [
            (ids.drivers[i], ids.users[d.user], d.name, d.phone, d.status, d.skills, d.truck,
             d.lat, d.lng, d.seen_at, d.rating, d.created_at, d.seen_at or d.created_at)
            for i, d in enumerate(data.drivers)
        ]  # fmt: skip
        await _copy(raw, "drivers", DRIVER_COLUMNS, drivers, progress, "drivers")
        customers = [
            (ids.customers[i], c.name, c.phone, c.email, c.notes, c.created_at, c.created_at)
            for i, c in enumerate(data.customers)
        ]
        await _copy(raw, "customers", CUSTOMER_COLUMNS, customers, progress, "customers")
        vehicles = [
            (ids.vehicles[i], ids.customers[v.customer], v.make, v.model, v.year, v.colour,
             v.plate, v.vin, data.customers[v.customer].created_at)
            for i, v in enumerate(data.vehicles)
        ]  # fmt: skip
        await _copy(raw, "vehicles", VEHICLE_COLUMNS, vehicles, progress, "vehicles")
        memberships = [
            (ids.customers[m.customer], m.provider, m.number, m.valid_until,
             data.customers[m.customer].created_at)
            for m in data.memberships
        ]  # fmt: skip
        await _copy(raw, "memberships", MEMBERSHIP_COLUMNS, memberships, progress, "memberships")
        names = _ActorNames(ids)
        await service_requests.insert_history(
            [_past_request(r, ids, names, service_types[r.service_code].id) for r in data.requests],
            progress=progress,
        )
    open_count = sum(r.is_open for r in data.requests)
    return DemoSummary(
        filled=True,
        users=len(data.users),
        drivers=len(data.drivers),
        customers=len(data.customers),
        vehicles=len(data.vehicles),
        memberships=len(data.memberships),
        open_requests=open_count,
        past_requests=len(data.requests) - open_count,
        events=data.events,
        seconds=time.perf_counter() - started,
    )
