"""Every hook a Patone plugin can implement. One function per hook, each documented here and in
docs/plugins.md (a test fails when a hook is missing there).

Implementations may be plain functions or `async def`; the manager awaits what needs awaiting,
runs plain functions in a thread, gives each call a time-out, and isolates failures: a plugin
that raises or hangs is logged with its name and skipped, never breaking the caller. Hooks marked
first-result stop at the first implementation that returns something other than None.
Every tenant-scoped hook receives `tenant` (slug and name; never another tenant's) and `config`
(that tenant's settings for this plugin, secrets decrypted).
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "patone"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- about the plugin ---------------------------------------------------------------------------


@hookspec
def plugin_info() -> Any:
    """Describe the plugin: a `PluginInfo` with its name, title, settings model and whether it is
    on for every tenant by default."""


# --- maps ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def geocode(tenant: Any, config: dict[str, Any], address: str) -> Any:
    """Turn an address into a `GeoPoint` (lat, lng, formatted address), or None if unknown."""


@hookspec(firstresult=True)
def route(
    tenant: Any, config: dict[str, Any], origin: Any, destination: Any, depart_at: Any
) -> Any:
    """Driving distance (m) and duration (s) from `origin` to `destination` leaving at
    `depart_at`, as a `RouteEstimate`."""


@hookspec(firstresult=True)
def distance_matrix(
    tenant: Any, config: dict[str, Any], origins: list[Any], destinations: list[Any], depart_at: Any
) -> Any:
    """A matrix of `RouteEstimate`s, one row per origin, one column per destination; a cell is
    None where the provider knows there is no road between that pair (an island, a closure)."""


# --- messaging ----------------------------------------------------------------------------------


@hookspec(firstresult=True)
def send_email(tenant: Any, config: dict[str, Any], message: Any) -> Any:
    """Send an `EmailMessage`; return a `Delivery` (provider id and status)."""


@hookspec(firstresult=True)
def send_sms(tenant: Any, config: dict[str, Any], message: Any) -> Any:
    """Send an `SmsMessage`; return a `Delivery`."""


@hookspec(firstresult=True)
def send_push(tenant: Any, config: dict[str, Any], message: Any) -> Any:
    """Send a `PushMessage` to one device subscription; return a `Delivery` with status "sent",
    or "expired" when the push service says the subscription is gone (404/410), so it is
    removed."""


# --- files --------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def store_file(
    tenant: Any, config: dict[str, Any], key: str, content: bytes, content_type: str
) -> Any:
    """Store a file (a photo, a signature, a report) under `key`, replacing any file there;
    return a `StoredFile`. Keys are the tenant's own: storage keeps each tenant's files apart."""


@hookspec(firstresult=True)
def read_file(tenant: Any, config: dict[str, Any], key: str) -> Any:
    """The bytes stored under `key`, or None if this storage does not have that file."""


@hookspec(firstresult=True)
def file_url(tenant: Any, config: dict[str, Any], key: str, expires_in: int) -> Any:
    """A URL a browser can read the file from for the next `expires_in` seconds (at most
    7 days), or None if this storage does not have that file."""


@hookspec
def delete_file(tenant: Any, config: dict[str, Any], key: str) -> Any:
    """Delete the file under `key`; a file that is not there is not an error. Every storage the
    tenant enabled is told, so a copy a fallback kept goes too."""


@hookspec
def delete_all_files(tenant: Any, config: dict[str, Any]) -> Any:
    """Delete every file the tenant has in this storage (the company is being purged); none
    left is not an error. Every storage the tenant enabled is told."""


# --- domain events ------------------------------------------------------------------------------


@hookspec
def on_event(tenant: Any, config: dict[str, Any], event: Any) -> Any:
    """React to a domain event (`request.created`, `request.assigned`, `request.status_changed`,
    `request.completed`, `request.cancelled`, `payment.received`, `rating.created`, ...)."""


@hookspec(firstresult=True)
def adjust_quote(tenant: Any, config: dict[str, Any], quote: Any) -> Any:
    """Change a price quote before it is offered (a surcharge, a discount); return the new
    `Quote` or None to leave it."""


# --- extension points (not per tenant: they shape the installation) ------------------------------


@hookspec
def graphql_types() -> Any:
    """Strawberry types (queries and mutations to merge in) this plugin adds to the schema; its
    fields must refuse tenants that have not enabled the plugin."""


@hookspec
def routes(host: Any) -> Any:
    """Starlette routes this plugin serves (inbound webhooks), mounted under /plugins/<name>/ on
    every company's address. `host` (a `PluginHost`) tells a route which company called and its
    settings for this plugin, and takes delivery reports (`host.report_delivery`)."""


@hookspec
def actors() -> Any:
    """Dramatiq actors this plugin defines, so workers load them."""


@hookspec
def admin_panels() -> Any:
    """Panels (title, template, data loader) this plugin adds to the admin console."""


@hookspec
def startup(app: Any) -> Any:
    """Run once when the application starts (e.g. warm a client); may be async."""
