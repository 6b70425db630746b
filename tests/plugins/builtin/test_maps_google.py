"""Google Maps through Google's own clients (`googlemaps`, `google-maps-routing`) against a local
fake that speaks the Geocoding API's and the Routes API's JSON."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from patone.core.runtime.db import engine
from patone.core.runtime.errors import UserError, ValidationFailed
from patone.plugins import config as plugins
from patone.plugins.secrets import MASK
from patone.plugins.types import GeoPoint, RouteEstimate
from patone.tenants.isolation import tenant_transaction
from patone.tenants.registry import TenantInfo
from tests.conftest import actor_for
from tests.fakes import FakeDns
from tests.support import plugin_runtime

ADMIN = actor_for("admin")
KEY = "AIzaSy" + "LocalFakeOfGoogleMapsPlatform0000"
OTHER_KEY = "AIzaSy" + "SomebodyElsesKeyThatGoogleRefuses"
assert len(KEY) == len(OTHER_KEY) == 39

DEPOT = GeoPoint(52.5200, 13.4050)  # Berlin
BREAKDOWN = GeoPoint(52.3906, 13.0645)  # Potsdam
TOWN = {"lat": 52.4125, "lng": 12.5316}  # Brandenburg an der Havel, as a plain dict
HELIGOLAND = GeoPoint(54.1826, 7.8856)  # an island: no road goes there

ADLON = {
    "address_components": [
        {"long_name": "77", "short_name": "77", "types": ["street_number"]},
        {"long_name": "Unter den Linden", "short_name": "Unter den Linden", "types": ["route"]},
        {"long_name": "Berlin", "short_name": "Berlin", "types": ["locality", "political"]},
        {"long_name": "10117", "short_name": "10117", "types": ["postal_code"]},
    ],
    "formatted_address": "Unter den Linden 77, 10117 Berlin, Germany",
    "geometry": {
        "location": {"lat": 52.5162746, "lng": 13.3798767},
        "location_type": "ROOFTOP",
        "viewport": {
            "northeast": {"lat": 52.5176235, "lng": 13.3812256},
            "southwest": {"lat": 52.5149256, "lng": 13.3785277},
        },
    },
    "place_id": "ChIJu1wEeseFqEcRhVt0aB0Qu-Y",
    "types": ["street_address"],
}


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _google_error(status: int, code: str, message: str) -> Response:
    return _json({"error": {"code": status, "message": message, "status": code}}, status)


def road(origin: tuple[float, float], destination: tuple[float, float], preference: str) -> dict:
    """The fake's road network: 1.4 x the straight line, 15 m/s free-flowing, 11 m/s in traffic."""
    (a_lat, a_lng), (b_lat, b_lng) = origin, destination
    p1, p2 = math.radians(a_lat), math.radians(b_lat)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(b_lng - a_lng) / 2) ** 2
    )
    meters = round(2 * 6_371_000 * math.asin(math.sqrt(h)) * 1.4)
    speed = 15 if preference == "TRAFFIC_UNAWARE" else 11
    return {"distanceMeters": meters, "duration": f"{round(meters / speed)}s"}


def expected(origin: Any, destination: Any, preference: str = "TRAFFIC_AWARE") -> RouteEstimate:
    def pair(p: Any) -> tuple[float, float]:
        return (p.lat, p.lng) if isinstance(p, GeoPoint) else (p["lat"], p["lng"])

    answer = road(pair(origin), pair(destination), preference)
    return RouteEstimate(
        distance_m=answer["distanceMeters"],
        duration_s=int(answer["duration"].removesuffix("s")),
        provider="maps-google",
    )


@dataclass
class MatrixCall:
    field_mask: str
    body: dict[str, Any]
    travel_mode: str
    routing_preference: str

    @property
    def elements(self) -> int:
        return len(self.body["origins"]) * len(self.body["destinations"])


@dataclass
class GoogleFake:
    """Google's Geocoding API and Routes API computeRouteMatrix, as they answer on the wire."""

    server: HTTPServer
    down: bool = False  # answer every request with HTTP 500
    geocode_calls: list[dict[str, str]] = field(default_factory=list)
    matrix_calls: list[MatrixCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.server.expect_request("/maps/api/geocode/json", method="GET").respond_with_handler(
            self.geocode
        )
        self.server.expect_request(
            "/distanceMatrix/v2:computeRouteMatrix", method="POST"
        ).respond_with_handler(self.compute_route_matrix)

    @property
    def url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def geocode(self, request: Request) -> Response:
        args = dict(request.args)
        self.geocode_calls.append(args)
        if self.down:
            return _json({"error_message": "Internal error", "status": "UNKNOWN_ERROR"}, 500)
        if args.get("key") != KEY:
            return _json({"error_message": "The provided API key is invalid.",
                          "results": [], "status": "REQUEST_DENIED"})  # fmt: skip
        if not args.get("address"):
            return _json({"error_message": "Invalid request. Missing the 'address', "
                          "'components', 'latlng' or 'place_id' parameter.",
                          "results": [], "status": "INVALID_REQUEST"})  # fmt: skip
        if args["address"].casefold() != "unter den linden 77, berlin":
            return _json({"results": [], "status": "ZERO_RESULTS"})
        result = dict(ADLON)
        if args.get("language") == "de":
            result["formatted_address"] = "Unter den Linden 77, 10117 Berlin, Deutschland"
        return _json({"results": [result], "status": "OK"})

    def compute_route_matrix(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        mask = request.headers.get("X-Goog-FieldMask") or request.args.get("$fields", "")
        call = MatrixCall(
            field_mask=mask,
            body=body,
            # Google's defaults when these are left out
            travel_mode=body.get("travelMode", "DRIVE"),
            routing_preference=body.get("routingPreference", "TRAFFIC_UNAWARE"),
        )
        self.matrix_calls.append(call)
        if self.down:
            return _google_error(500, "INTERNAL", "Internal error encountered.")
        key = request.headers.get("X-Goog-Api-Key") or request.args.get("key")
        if key != KEY:
            return _google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a "
                                 "valid API key.")  # fmt: skip
        if not mask:
            return _google_error(400, "INVALID_ARGUMENT", "FieldMask is a required parameter."
                                 " Set the X-Goog-FieldMask header or $fields.")  # fmt: skip
        limit = 100 if call.routing_preference == "TRAFFIC_AWARE_OPTIMAL" else 625
        if call.elements > limit:
            return _google_error(400, "INVALID_ARGUMENT", "Number of elements (origins x "
                                 f"destinations) must be at most {limit}.")  # fmt: skip
        departure = body.get("departureTime")
        if departure and datetime.fromisoformat(departure) < datetime.now(UTC):
            return _google_error(400, "INVALID_ARGUMENT", "Timestamp must be set to a future "
                                 "time.")  # fmt: skip
        wanted = set(mask.split(","))
        elements = []
        for i, origin in enumerate(body["origins"]):
            for j, destination in enumerate(body["destinations"]):
                a = origin["waypoint"]["location"]["latLng"]
                b = destination["waypoint"]["location"]["latLng"]
                element: dict[str, Any] = {"originIndex": i, "destinationIndex": j, "status": {}}
                if (b["latitude"], b["longitude"]) == (HELIGOLAND.lat, HELIGOLAND.lng):
                    element["condition"] = "ROUTE_NOT_FOUND"
                else:
                    element["condition"] = "ROUTE_EXISTS"
                    element |= road(
                        (a["latitude"], a["longitude"]),
                        (b["latitude"], b["longitude"]),
                        call.routing_preference,
                    )
                elements.append({k: v for k, v in element.items() if k in wanted})
        elements.reverse()  # Google promises no order: the plugin must use the indexes
        return _json(elements)


@pytest.fixture
def runtime() -> Iterator[None]:
    with plugin_runtime():
        yield


@pytest.fixture
def google(httpserver: HTTPServer) -> GoogleFake:
    return GoogleFake(httpserver)


async def enable_google(tenant: TenantInfo, google: GoogleFake, **settings: Any) -> Any:
    return await plugins.configure_plugin(
        tenant,
        ADMIN,
        "maps-google",
        enabled=True,
        config={
            "api_key": KEY,
            "geocoding_api_url": google.url,
            "routes_api_url": google.url + "/",
            **settings,
        },
    )


async def test_only_the_company_that_enabled_google_gets_googles_travel_times(
    two_tenants: tuple[TenantInfo, TenantInfo], google: GoogleFake, runtime: None
) -> None:
    acme, bolt = two_tenants
    await enable_google(acme, google)
    origins, destinations = [DEPOT, TOWN], [BREAKDOWN, HELIGOLAND, TOWN]
    depart = datetime.now(UTC) + timedelta(hours=2)

    answer = await plugins.call_first(
        acme, "distance_matrix", origins=origins, destinations=destinations, depart_at=depart
    )

    assert answer is not None and answer.plugin == "maps-google"
    assert answer.value == [
        [expected(DEPOT, BREAKDOWN), None, expected(DEPOT, TOWN)],
        [expected(TOWN, BREAKDOWN), None, expected(TOWN, TOWN)],
    ]
    [call] = google.matrix_calls
    assert (
        call.field_mask == "originIndex,destinationIndex,status,condition,distanceMeters,duration"
    )
    assert (call.travel_mode, call.routing_preference) == ("DRIVE", "TRAFFIC_AWARE")
    assert datetime.fromisoformat(call.body["departureTime"]) == depart

    # Bolt did not enable Google: the offline estimate answers and Google hears nothing.
    offline = await plugins.call_first(
        bolt, "distance_matrix", origins=origins, destinations=destinations, depart_at=depart
    )
    assert offline is not None and offline.plugin == "maps-offline"
    assert all(cell.provider == "maps-offline" for row in offline.value for cell in row)
    route = await plugins.call_first(
        bolt, "route", origin=DEPOT, destination=BREAKDOWN, depart_at=None
    )
    assert route is not None and route.value.provider == "maps-offline"
    assert await plugins.call_first(bolt, "geocode", address="Unter den Linden 77, Berlin") is None
    assert len(google.matrix_calls) == 1 and google.geocode_calls == []


async def test_route_is_one_matrix_cell_and_no_road_leaves_it_to_the_offline_estimate(
    two_tenants: tuple[TenantInfo, TenantInfo], google: GoogleFake, runtime: None
) -> None:
    acme, _ = two_tenants
    await enable_google(acme, google, routing_preference="TRAFFIC_UNAWARE")

    answer = await plugins.call_first(
        acme,
        "route",
        origin=DEPOT,
        destination=BREAKDOWN,
        depart_at=datetime.now(UTC) + timedelta(hours=1),
    )

    assert answer is not None
    assert answer.value == expected(DEPOT, BREAKDOWN, "TRAFFIC_UNAWARE")
    [call] = google.matrix_calls
    assert call.elements == 1 and call.routing_preference == "TRAFFIC_UNAWARE"
    assert "departureTime" not in call.body  # unaware of traffic, the time changes nothing

    island = await plugins.call_first(
        acme, "route", origin=DEPOT, destination=HELIGOLAND, depart_at=None
    )
    assert len(google.matrix_calls) == 2
    assert island is not None and island.plugin == "maps-offline"


async def test_a_departure_in_the_past_is_not_sent_because_google_refuses_it(
    two_tenants: tuple[TenantInfo, TenantInfo], google: GoogleFake, runtime: None
) -> None:
    acme, _ = two_tenants
    await enable_google(acme, google)

    answer = await plugins.call_first(
        acme,
        "route",
        origin=DEPOT,
        destination=BREAKDOWN,
        depart_at=datetime.now(UTC) - timedelta(minutes=5),
    )

    assert answer is not None and answer.plugin == "maps-google"
    assert "departureTime" not in google.matrix_calls[0].body


@pytest.mark.parametrize(
    ("preference", "size", "limit"),
    [("TRAFFIC_AWARE", (30, 30), 625), ("TRAFFIC_AWARE_OPTIMAL", (12, 10), 100)],
)
async def test_a_big_matrix_is_split_into_requests_within_googles_element_limits(
    two_tenants: tuple[TenantInfo, TenantInfo],
    google: GoogleFake,
    runtime: None,
    preference: str,
    size: tuple[int, int],
    limit: int,
) -> None:
    acme, _ = two_tenants
    await enable_google(acme, google, routing_preference=preference)
    origins = [GeoPoint(52.3 + i * 0.01, 13.0) for i in range(size[0])]
    destinations = [GeoPoint(52.4, 13.1 + j * 0.01) for j in range(size[1])]

    answer = await plugins.call_first(
        acme, "distance_matrix", origins=origins, destinations=destinations, depart_at=None
    )

    assert answer is not None and answer.plugin == "maps-google"
    assert len(google.matrix_calls) == 2
    assert all(call.elements <= limit for call in google.matrix_calls)
    assert sum(call.elements for call in google.matrix_calls) == size[0] * size[1]
    assert answer.value == [[expected(o, d, preference) for d in destinations] for o in origins]


async def test_geocoding_finds_the_address_in_the_tenants_language(
    two_tenants: tuple[TenantInfo, TenantInfo], google: GoogleFake, runtime: None
) -> None:
    acme, _ = two_tenants
    await enable_google(acme, google, language="de", region="de")

    answer = await plugins.call_first(acme, "geocode", address="Unter den Linden 77, Berlin")

    assert answer is not None and answer.plugin == "maps-google"
    assert answer.value == GeoPoint(
        52.5162746, 13.3798767, "Unter den Linden 77, 10117 Berlin, Deutschland"
    )
    [call] = google.geocode_calls
    assert (call["language"], call["region"], call["key"]) == ("de", "de", KEY)


async def test_an_address_google_does_not_know_is_none_not_an_error(
    two_tenants: tuple[TenantInfo, TenantInfo], google: GoogleFake, runtime: None
) -> None:
    acme, _ = two_tenants
    await enable_google(acme, google)

    [result] = await plugins.call_all(acme, "geocode", address="Nowhere Street 0, Atlantis")

    assert (result.plugin, result.value, result.error) == ("maps-google", None, None)
    assert len(google.geocode_calls) == 1


@pytest.mark.parametrize(
    ("key", "address", "message"),
    [
        (OTHER_KEY, "Unter den Linden 77, Berlin",
         "REQUEST_DENIED (The provided API key is invalid.)"),
        (KEY, "", "INVALID_REQUEST (Invalid request. Missing the 'address'"),
    ],
)  # fmt: skip
async def test_geocoding_refused_by_google_says_why(
    two_tenants: tuple[TenantInfo, TenantInfo],
    google: GoogleFake,
    runtime: None,
    key: str,
    address: str,
    message: str,
) -> None:
    acme, _ = two_tenants
    await enable_google(acme, google, api_key=key)

    [result] = await plugins.call_all(acme, "geocode", address=address)

    assert result.plugin == "maps-google" and result.value is None
    assert result.error is not None
    assert result.error.startswith("GoogleMapsError: Geocoding API refused the request: ")
    assert message in result.error


async def test_routes_refused_by_google_say_why_and_the_offline_estimate_answers(
    two_tenants: tuple[TenantInfo, TenantInfo], google: GoogleFake, runtime: None
) -> None:
    acme, _ = two_tenants
    await enable_google(acme, google, api_key=OTHER_KEY)

    google_result, offline_result = await plugins.call_all(
        acme, "route", origin=DEPOT, destination=BREAKDOWN, depart_at=None
    )

    assert google_result.plugin == "maps-google" and google_result.error is not None
    assert "API key not valid" in google_result.error
    assert OTHER_KEY not in google_result.error
    assert offline_result.plugin == "maps-offline" and offline_result.value is not None


async def test_when_google_answers_500_the_offline_estimate_answers_and_nothing_is_retried(
    two_tenants: tuple[TenantInfo, TenantInfo], google: GoogleFake, runtime: None
) -> None:
    acme, _ = two_tenants
    await enable_google(acme, google)
    google.down = True

    answer = await plugins.call_first(
        acme, "route", origin=DEPOT, destination=BREAKDOWN, depart_at=None
    )
    google_result, offline_result = await plugins.call_all(
        acme, "distance_matrix", origins=[DEPOT], destinations=[BREAKDOWN], depart_at=None
    )
    [geocoded] = await plugins.call_all(acme, "geocode", address="Unter den Linden 77, Berlin")

    assert answer is not None and answer.plugin == "maps-offline"
    assert answer.value.provider == "maps-offline"
    assert google_result.error == (
        "GoogleMapsError: Routes API answered HTTP 500 INTERNAL (Internal error encountered.)"
    )
    assert offline_result.value[0][0].provider == "maps-offline"
    assert geocoded.error == "GoogleMapsError: Geocoding API failed: HTTP 500"
    # googlemaps would retry a 500 for up to a minute in a thread nobody can stop: one try only.
    assert len(google.geocode_calls) == 1 and len(google.matrix_calls) == 2


async def test_the_api_key_is_sealed_masked_and_kept_out_of_the_log(
    two_tenants: tuple[TenantInfo, TenantInfo],
    google: GoogleFake,
    runtime: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    acme, bolt = two_tenants
    state = await enable_google(acme, google)
    assert state.config["api_key"] == MASK

    [google_state] = [
        s for s in await plugins.plugin_states(acme, ADMIN) if s.name == "maps-google"
    ]
    assert google_state.enabled and google_state.config["api_key"] == MASK
    assert google_state.config["routes_api_url"] == google.url
    [bolt_state] = [s for s in await plugins.plugin_states(bolt, ADMIN) if s.name == "maps-google"]
    assert not bolt_state.enabled and bolt_state.config == {}
    async with tenant_transaction(acme):
        raw = await engine.fetch("SELECT config FROM plugin_configs WHERE plugin = 'maps-google'")
    assert KEY not in raw[0]["config"]

    # googlemaps puts the key in the URL, and a connection error quotes the URL. (A new URL
    # takes the key entered again.)
    await plugins.configure_plugin(
        acme,
        ADMIN,
        "maps-google",
        config={"geocoding_api_url": "http://127.0.0.1:1", "api_key": KEY},
    )
    with caplog.at_level(logging.WARNING):
        [result] = await plugins.call_all(acme, "geocode", address="Unter den Linden 77, Berlin")
    assert result.error == "GoogleMapsError: Geocoding API failed: ConnectionError"
    assert "maps-google" in caplog.text and KEY not in caplog.text


async def test_bad_google_settings_are_refused_field_by_field(
    two_tenants: tuple[TenantInfo, TenantInfo], runtime: None
) -> None:
    acme, _ = two_tenants
    with pytest.raises(ValidationFailed) as caught:
        await plugins.configure_plugin(
            acme,
            ADMIN,
            "maps-google",
            enabled=True,
            config={"api_key": "not-a-key", "region": "Germany", "routing_preference": "FAST"},
        )
    assert {e.field for e in caught.value.errors} == {
        "config.api_key",
        "config.region",
        "config.routing_preference",
    }


async def test_a_google_url_pointing_inside_the_network_is_refused(
    two_tenants: tuple[TenantInfo, TenantInfo], runtime: None
) -> None:
    acme, _ = two_tenants
    plugins.get_runtime().allow_private_urls = False
    with pytest.raises(UserError) as caught:
        await plugins.configure_plugin(
            acme,
            ADMIN,
            "maps-google",
            enabled=True,
            config={
                "api_key": KEY,
                "geocoding_api_url": "https://142.250.185.74",  # public, and needs no DNS here
                "routes_api_url": "http://169.254.169.254",  # the cloud's metadata service
            },
        )
    assert (caught.value.field, caught.value.code) == ("config.routes_api_url", "forbidden_address")


def test_the_fake_refuses_a_matrix_request_without_a_field_mask_as_google_does(
    google: GoogleFake,
) -> None:
    answer = httpx.post(
        google.url + "/distanceMatrix/v2:computeRouteMatrix",
        headers={"X-Goog-Api-Key": KEY},
        json={"origins": [], "destinations": []},
    )
    assert answer.status_code == 400
    assert "FieldMask is a required parameter" in answer.json()["error"]["message"]


async def test_google_is_called_only_at_addresses_the_guard_checked(
    two_tenants: tuple[TenantInfo, TenantInfo], google: GoogleFake, runtime: None, dns: FakeDns
) -> None:
    acme, bolt = two_tenants
    port = google.url.rsplit(":", 1)[1]
    # Routes: resolved once per call and sent there (a second look-up would find nothing).
    dns.answer("maps.google.example", "127.0.0.1", "10.255.255.1")
    await enable_google(acme, google, routes_api_url=f"http://maps.google.example:{port}")
    route = await plugins.call_first(
        acme, "route", origin=DEPOT, destination=BREAKDOWN, depart_at=None
    )
    assert route is not None and route.plugin == "maps-google" and len(google.matrix_calls) == 1
    assert dns.lookups["maps.google.example"] == 1
    # Public when saved, loopback when called: neither API is called with the key.
    plugins.get_runtime().allow_private_urls = False
    urls = {"geocoding_api_url": "geo.google.example", "routes_api_url": "routes.google.example"}
    for name in urls.values():
        dns.answer(name, "93.184.216.34", "127.0.0.1")
    await plugins.configure_plugin(
        acme,
        ADMIN,
        "maps-google",
        config={
            **{setting: f"http://{name}:{port}" for setting, name in urls.items()},
            "api_key": KEY,
        },
    )
    results = await plugins.call_all(acme, "geocode", address="Unter den Linden 77, Berlin")
    results += await plugins.call_all(
        acme, "route", origin=DEPOT, destination=BREAKDOWN, depart_at=None
    )
    errors = [r.error for r in results if r.plugin == "maps-google"]
    assert len(errors) == 2 and all("(127.0.0.1, loopback)" in str(e) for e in errors)
    assert google.geocode_calls == [] and len(google.matrix_calls) == 1
    assert await plugins.call_first(bolt, "geocode", address="Unter den Linden 77") is None
