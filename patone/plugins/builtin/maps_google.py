"""Google Maps: addresses through the Geocoding API, travel times through the Routes API.

Geocoding goes through Google's own client, `googlemaps`, whose `base_url` points it at any
server (a local fake of Google's JSON in tests). Two of its defaults are changed on purpose:
- it retries HTTP 5xx and OVER_QUERY_LIMIT with back-off sleeps for up to a minute, in a thread
  the plugin manager cannot stop once its own time-out has passed. Here it makes one attempt (a
  response hook on its session turns a 5xx into an error before its retry loop sees it): a
  failure goes straight to the manager, which lets the next provider answer and counts it for the
  circuit breaker;
- it sends the key in the query string, and its transport errors quote that URL, so its errors
  are re-raised as `GoogleMapsError` without the original chained: the key never reaches a log.

Travel times come from the Routes API's computeRouteMatrix (the legacy Distance Matrix API is
not used), spoken as Google documents its JSON, over httpx. Google's client for it,
`google-maps-routing`, was tried: its REST transport does reach a plain-http fake, but it reads
the answer one byte at a time and parses it character by character in Python (0.55 s of CPU,
holding the GIL, for one 625-element answer), and it installs grpcio, protobuf, google-auth and
OpenTelemetry (about 30 MB) for a transport we would not use. Over httpx the hooks are async, so
the manager's time-out cancels a slow request instead of abandoning a thread, and a matrix split
into several requests sends them at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import googlemaps
import httpx
from pydantic import BaseModel, Field, field_validator

from patone.plugins import ssrf
from patone.plugins.hookspecs import hookimpl
from patone.plugins.types import (
    GeoPoint,
    NetworkTarget,
    PluginInfo,
    RouteEstimate,
    SecretFor,
    UserError,
)

NAME = "maps-google"
MATRIX_PATH = "/distanceMatrix/v2:computeRouteMatrix"
# Google's limits on origins x destinations in one computeRouteMatrix request.
MAX_ELEMENTS = 625
MAX_ELEMENTS_OPTIMAL = 100  # with TRAFFIC_AWARE_OPTIMAL
# Without this header Google answers 400. `status` must be in it, or every element looks OK.
FIELD_MASK = "originIndex,destinationIndex,status,condition,distanceMeters,duration"
# Google refuses a departure time in the past. One this close to now is "now", which is what
# Google assumes when there is none, and leaving it out keeps a slow request from being refused.
DEPARTURE_SLACK = timedelta(minutes=1)

Preference = Literal["TRAFFIC_UNAWARE", "TRAFFIC_AWARE", "TRAFFIC_AWARE_OPTIMAL"]


class GoogleMapsError(Exception):
    """Google refused or failed a request; the message says which API and why."""


class GoogleMapsSettings(BaseModel):
    api_key: Annotated[str, SecretFor("geocoding_api_url", "routes_api_url")] = Field(
        pattern=r"^AIza[0-9A-Za-z_-]{35}$",
        description="A Google Maps Platform API key with the Geocoding API and Routes API on.",
    )
    geocoding_api_url: Annotated[str, NetworkTarget("url")] = "https://maps.googleapis.com"
    routes_api_url: Annotated[str, NetworkTarget("url")] = "https://routes.googleapis.com"
    timeout: float = Field(4, gt=0, le=30, description="Seconds per request to Google.")
    language: str = Field(
        "", pattern=r"^([A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*)?$", description="e.g. de, en-GB"
    )
    region: str = Field("", pattern=r"^([A-Za-z]{2})?$", description="Country bias, e.g. de")
    routing_preference: Preference = Field(
        "TRAFFIC_AWARE",
        description="TRAFFIC_UNAWARE is cheaper and ignores live traffic; "
        "TRAFFIC_AWARE_OPTIMAL is the most accurate and the slowest.",
    )

    @field_validator("geocoding_api_url", "routes_api_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        # googlemaps appends "/maps/api/..." to the base URL as it is.
        return value.rstrip("/")


@hookimpl
def plugin_info() -> PluginInfo:
    return PluginInfo(
        name=NAME,
        title="Google Maps",
        description="Addresses, distances and live-traffic travel times from Google Maps.",
        settings=GoogleMapsSettings,
        secret_fields=frozenset({"api_key"}),
    )


# --- geocoding ----------------------------------------------------------------------------------


class _ServerError(Exception):
    """Google answered 5xx. Raised from a response hook, so googlemaps does not retry it."""


def _fail_on_server_error(response: Any, *args: Any, **kwargs: Any) -> Any:
    if response.status_code >= 500:
        raise _ServerError(f"HTTP {response.status_code}")
    return response


@hookimpl
def geocode(config: dict[str, Any], address: str) -> GeoPoint | None:
    """Google's best match for `address`, or None when it knows no such place (ZERO_RESULTS).
    Blocking client: the plugin manager runs it in its thread pool."""
    settings = GoogleMapsSettings.model_validate(config)
    try:  # googlemaps resolves the name itself: checked just before, not pinned
        ssrf.check_url(
            settings.geocoding_api_url,
            field="config.geocoding_api_url",
            allow_private=ssrf.allow_private_targets(),
        )
    except UserError as refused:
        raise GoogleMapsError(f"Geocoding API not called: {refused.message}") from None
    client = googlemaps.Client(
        key=settings.api_key,
        base_url=settings.geocoding_api_url,
        timeout=settings.timeout,
        retry_timeout=settings.timeout,
        retry_over_query_limit=False,
    )
    client.session.hooks["response"].append(_fail_on_server_error)
    options = {k: v for k, v in (("language", settings.language), ("region", settings.region)) if v}
    try:
        results = client.geocode(address, **options)
    except googlemaps.exceptions.ApiError as error:  # REQUEST_DENIED, OVER_QUERY_LIMIT, ...
        detail = f" ({error.message})" if error.message else ""
        raise GoogleMapsError(
            f"Geocoding API refused the request: {error.status}{detail}"
        ) from None
    except googlemaps.exceptions.HTTPError as error:
        raise GoogleMapsError(f"Geocoding API answered HTTP {error.status_code}") from None
    except googlemaps.exceptions.Timeout:
        raise GoogleMapsError(
            f"Geocoding API did not answer within {settings.timeout:g} s"
        ) from None
    except googlemaps.exceptions.TransportError as error:
        cause = error.base_exception
        reason = str(cause) if isinstance(cause, _ServerError) else type(cause).__name__
        raise GoogleMapsError(f"Geocoding API failed: {reason}") from None
    finally:
        client.session.close()
    if not results:
        return None
    best = results[0]
    location = best["geometry"]["location"]
    return GeoPoint(
        lat=float(location["lat"]),
        lng=float(location["lng"]),
        address=best.get("formatted_address", ""),
    )


# --- routes -------------------------------------------------------------------------------------


def _waypoint(value: Any) -> dict[str, Any]:
    if isinstance(value, GeoPoint):
        lat, lng = value.lat, value.lng
    else:  # {"lat": ..., "lng": ...}, as the offline plugin also takes
        lat, lng = value["lat"], value["lng"]
    return {"waypoint": {"location": {"latLng": {"latitude": float(lat), "longitude": float(lng)}}}}


def blocks(origins: int, destinations: int, limit: int) -> Iterator[tuple[range, range]]:
    """Split an origins x destinations matrix into rectangles of at most `limit` elements,
    whole rows of destinations where they fit, so there are as few requests as possible."""
    columns = min(destinations, limit)
    rows = max(1, limit // columns)
    for first_row in range(0, origins, rows):
        for first_column in range(0, destinations, columns):
            yield (
                range(first_row, min(first_row + rows, origins)),
                range(first_column, min(first_column + columns, destinations)),
            )


def _departure(settings: GoogleMapsSettings, depart_at: datetime | None) -> str | None:
    """The departure time to send (RFC 3339, UTC): only a future one, and only where traffic
    counts (without traffic Google's durations do not depend on the time)."""
    if depart_at is None or settings.routing_preference == "TRAFFIC_UNAWARE":
        return None
    if depart_at.tzinfo is None:
        depart_at = depart_at.replace(tzinfo=UTC)
    if depart_at <= datetime.now(UTC) + DEPARTURE_SLACK:
        return None
    return depart_at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _failure(response: httpx.Response) -> GoogleMapsError:
    """Google's error body ({"error": {"code", "message", "status"}}) as a readable error."""
    try:
        error = response.json()["error"]
        detail = f"{error.get('status', '')} ({error.get('message', '')})".strip()
    except (ValueError, KeyError, TypeError):  # not Google's JSON: a proxy, a load balancer
        detail = response.reason_phrase
    return GoogleMapsError(f"Routes API answered HTTP {response.status_code} {detail}".rstrip())


def _estimate(element: dict[str, Any]) -> RouteEstimate | None:
    """One element of Google's answer; None when it has no route (proto3 JSON leaves out zero
    values, so a missing number is 0 and a missing or empty status is OK)."""
    if element.get("status", {}).get("code") or element.get("condition") != "ROUTE_EXISTS":
        return None
    return RouteEstimate(
        distance_m=int(element.get("distanceMeters", 0)),
        duration_s=round(float(element.get("duration", "0s").removesuffix("s"))),
        provider=NAME,
    )


async def _matrix(
    settings: GoogleMapsSettings,
    origins: list[Any],
    destinations: list[Any],
    depart_at: datetime | None,
) -> list[list[RouteEstimate | None]]:
    matrix: list[list[RouteEstimate | None]] = [[None] * len(destinations) for _ in origins]
    if not origins or not destinations:
        return matrix
    limit = (
        MAX_ELEMENTS_OPTIMAL
        if settings.routing_preference == "TRAFFIC_AWARE_OPTIMAL"
        else MAX_ELEMENTS
    )
    common: dict[str, Any] = {
        "travelMode": "DRIVE",
        "routingPreference": settings.routing_preference,
    }
    if departure := _departure(settings, depart_at):
        common["departureTime"] = departure

    async def block(client: httpx.AsyncClient, rows: range, columns: range) -> None:
        body = {
            "origins": [_waypoint(origins[i]) for i in rows],
            "destinations": [_waypoint(destinations[j]) for j in columns],
            **common,
        }
        response = await client.post(MATRIX_PATH, json=body, extensions=target.extensions)
        if response.is_error:
            raise _failure(response)
        for element in response.json():  # in any order: the indexes say where each goes
            row = rows[element.get("originIndex", 0)]
            matrix[row][columns[element.get("destinationIndex", 0)]] = _estimate(element)

    target = await _pinned(settings.routes_api_url, "routes_api_url")
    try:
        async with (
            httpx.AsyncClient(
                base_url=target.url,
                headers={
                    **target.headers,
                    "X-Goog-Api-Key": settings.api_key,
                    "X-Goog-FieldMask": FIELD_MASK,
                },
                timeout=settings.timeout,
            ) as client,
            asyncio.TaskGroup() as requests,  # one fails: the others are cancelled
        ):
            for rows, columns in blocks(len(origins), len(destinations), limit):
                requests.create_task(block(client, rows, columns))
    except* Exception as failed:
        raise failed.exceptions[0] from None  # the failure itself, not a group of one
    return matrix


async def _pinned(url: str, setting: str) -> ssrf.Target:
    """The company's API URL pinned to the address the SSRF guard checked."""
    try:
        return await asyncio.to_thread(
            ssrf.pin_url, url, field=f"config.{setting}", allow_private=ssrf.allow_private_targets()
        )
    except UserError as refused:
        raise GoogleMapsError(f"Routes API not called: {refused.message}") from None


@hookimpl
async def distance_matrix(
    config: dict[str, Any], origins: list[Any], destinations: list[Any], depart_at: Any
) -> list[list[RouteEstimate | None]]:
    """Driving times from Google's computeRouteMatrix, split into requests within its element
    limits (sent at the same time); a pair with no road between them is None."""
    settings = GoogleMapsSettings.model_validate(config)
    return await _matrix(settings, origins, destinations, depart_at)


@hookimpl
async def route(
    config: dict[str, Any], origin: Any, destination: Any, depart_at: Any
) -> RouteEstimate | None:
    """One origin, one destination: a 1 x 1 matrix. None when Google finds no route, so the next
    maps provider (the offline estimate) answers instead."""
    settings = GoogleMapsSettings.model_validate(config)
    [[estimate]] = await _matrix(settings, [origin], [destination], depart_at)
    return estimate
