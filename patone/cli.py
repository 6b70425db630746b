"""`patone`: serve the product, migrate tenants, manage tenants."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from patone.core.common.permissions import SYSTEM
from patone.core.identity import credentials, two_factor
from patone.core.identity.signing_keys import ACTIVATION_DELAY, JWKS_MAX_AGE, keyring_for
from patone.core.identity.signing_keys import rotate as rotate_signing_key
from patone.core.identity.tokens import issue_access_token
from patone.core.runtime import running_server
from patone.core.runtime.db import engine
from patone.core.runtime.errors import NotFound, UserError
from patone.core.runtime.redis import close_redis, connect_redis
from patone.embedded import EmbeddedServiceError, EmbeddedServices
from patone.platform import provisioning
from patone.platform.plans import list_plans
from patone.settings import Settings, SettingsError, load_settings
from patone.tenants import spares
from patone.tenants.isolation import tenant_transaction
from patone.tenants.migrations import (
    TenantMigrationResult,
    ensure_platform,
    migrate_tenants,
)
from patone.tenants.registry import TenantInfo, get_tenant, list_tenants

app = typer.Typer(
    help="Patone Cloud: roadside-assistance dispatch as a service.", no_args_is_help=True
)
tenants_app = typer.Typer(help="Create and manage tenants (companies).", no_args_is_help=True)
app.add_typer(tenants_app, name="tenants")
users_app = typer.Typer(help="Staff users of a tenant.", no_args_is_help=True)
app.add_typer(users_app, name="users")
tokens_app = typer.Typer(help="Access tokens for the API.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
documents_app = typer.Typer(help="Allow-listed GraphQL documents.", no_args_is_help=True)
app.add_typer(documents_app, name="documents")
plugins_app = typer.Typer(help="Installed plugins and their secrets.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
keys_app = typer.Typer(help="The keys that sign access tokens.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
clients_app = typer.Typer(help="Partners' API clients (OAuth2).", no_args_is_help=True)
app.add_typer(clients_app, name="clients")
operators_app = typer.Typer(
    help="Platform operators (they run tenants; two-factor always on).", no_args_is_help=True
)
app.add_typer(operators_app, name="operators")

# Where output is not a terminal (a file, a pipe, CI), rich cannot ask for a width and takes 80
# columns, which wraps tables' cells and cuts their links and slugs: such output gets this many
# for tables, and lines of text unbroken (a COLUMNS setting still wins).
PIPED_WIDTH = 200


def output_console(*, stderr: bool = False, **options: Any) -> Console:
    """A rich console on stdout (or stderr) that fits its tables whole when not a terminal."""
    made = Console(stderr=stderr, **options)
    if not made.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        made.width = PIPED_WIDTH
        made.soft_wrap = True
    return made


console = output_console()
err = output_console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def _settings(*, beside_server: bool = True, **overrides: Any) -> Settings:
    """The settings; for a command typed beside a running `patone serve` (`beside_server`),
    with that server's address wherever HOST, PORT, BASE_DOMAIN or PUBLIC_URL is not given, so
    the links it prints reach the server."""
    try:
        settings = load_settings(**overrides)
    except SettingsError as error:
        err.print(f"[red]{error}[/red]", highlight=False)
        raise typer.Exit(2) from None
    return running_server.beside_running_server(settings) if beside_server else settings


def _start(settings: Settings) -> EmbeddedServices:
    try:
        return EmbeddedServices.start(settings)
    except EmbeddedServiceError as error:
        err.print(f"[red]{error}[/red]", highlight=False)
        raise typer.Exit(1) from None


def run_with_database(work: Callable[[], Awaitable[T]], settings: Settings | None = None) -> T:
    """Connect (starting embedded servers if needed), run `work`, disconnect and stop them."""
    settings = settings or _settings()
    services = _start(settings)

    async def main() -> T:
        await engine.connect(
            {"default": services.database_url, **settings.shards},
            min_size=1,
            max_size=max(settings.db_pool_max, settings.migrate_concurrency + 1),
            max_queries=settings.db_pool_max_queries,
            max_inactive_connection_lifetime=settings.db_pool_max_idle,
        )
        try:
            await connect_redis(services.redis_url)
            await ensure_platform()
            return await work()
        finally:
            await close_redis()
            await engine.disconnect()

    try:
        return asyncio.run(main())
    except UserError as error:
        where = f" ({error.field})" if error.field else ""
        err.print(f"[red]error{where}:[/red] {error.message}", highlight=False)
        raise typer.Exit(1) from None
    finally:
        services.stop()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (PORT).")] = None,
) -> None:
    """Run the product: web app, API and (on the embedded default) its servers."""
    import uvicorn

    from patone.app import create_app

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = _settings(beside_server=False, **overrides)

    def ready(web: Any) -> None:
        running_server.record(settings)  # the commands typed beside it print links to it
        base = f"http://{settings.base_domain}:{settings.port}"
        console.print("\n[bold green]Patone Cloud is running.[/bold green]")
        console.print(f"  Platform     {base}/")
        if web.state.demo is not None:
            demo = f"http://{web.state.demo.slug}.{settings.base_domain}:{settings.port}"
            console.print(f"  Demo tenant  {demo}/")
            console.print(f"  GraphiQL     {demo}/graphql")
            link = web.state.demo_setup_link
            if link is not None:
                console.print(
                    f"  Set up       {link.url}\n"
                    f"               (choose {link.email}'s password; the link works once, "
                    f"until {link.expires_at:%Y-%m-%d %H:%M} UTC)",
                    highlight=False,
                    soft_wrap=True,
                )
            console.print(f"  API sign-in  POST {demo}/auth/sign-in", highlight=False)
        console.print(f"  Health       {base}/healthz")
        if settings.embedded_postgres or settings.embedded_redis:
            console.print(f"  Data         {settings.data_dir.resolve()} (embedded servers)")
        console.print("  Stop with Ctrl+C.\n")

    # The app's lifespan starts and stops the embedded servers: uvicorn re-raises SIGTERM after
    # its shutdown, so code after `uvicorn.run` (and atexit) would never run.
    uvicorn.run(
        create_app(settings, on_ready=ready, on_stop=lambda: running_server.forget(settings)),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        **proxy_options(settings),
    )


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's proxy-header handling, following TRUST_PROXY_HEADERS: off, it must not take
    X-Forwarded-For from anyone (uvicorn's default believes it from loopback, so any local
    client could pick its address); on, uvicorn's trusted proxies apply (FORWARDED_ALLOW_IPS,
    loopback by default). The app resolves the client's address itself either way
    (`patone.core.runtime.web.client_ip`)."""
    if settings.trust_proxy_headers:
        return {"proxy_headers": True, "forwarded_allow_ips": None}
    return {"proxy_headers": False}


@app.command()
def worker(
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    threads: Annotated[
        int,
        typer.Option(
            min=1, help="Threads per process: jobs mostly wait on providers, so 16 pay off."
        ),
    ] = 16,
    queue: Annotated[list[str] | None, typer.Option("--queue", help="Only these queues.")] = None,
) -> None:
    """Run background-job workers (Dramatiq) until Ctrl+C or SIGTERM."""
    from patone.app import actor_modules
    from patone.core.work.worker import run_worker

    settings = _settings()
    services = _start(settings)  # the embedded servers when no URLs are configured
    try:
        code = run_worker(
            settings,
            database_url=services.database_url,
            redis_url=services.redis_url,
            processes=processes,
            threads=threads,
            queues=queue,
            modules=actor_modules(),
        )
    finally:
        services.stop()
    raise typer.Exit(code)


@app.command()
def migrate(
    concurrency: Annotated[
        int | None, typer.Option(min=1, max=64, help="Tenants at once (MIGRATE_CONCURRENCY).")
    ] = None,
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", "-t", help="Only these tenants.")
    ] = None,
) -> None:
    """Apply new migrations to the platform schema and every tenant schema (resumable)."""
    settings = _settings()
    limit = concurrency or settings.migrate_concurrency
    failures: list[TenantMigrationResult] = []

    async def work() -> Any:
        with Progress(
            TextColumn("[bold]migrating tenants"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[last]}"),
            console=err,
            transient=False,
        ) as progress:
            task = progress.add_task("migrate", total=None, last="")

            def planned(total: int) -> None:
                progress.update(task, total=total)

            def done(result: TenantMigrationResult) -> None:
                if result.status == "failed":
                    failures.append(result)
                progress.update(task, advance=1, last=f"{result.slug}: {result.status}")

            report = await migrate_tenants(
                concurrency=limit, slugs=tenant, on_result=done, on_plan=planned
            )
        return report, await spares.refresh(engine.shards)

    report, outdated_spares = run_with_database(work, settings)
    counts = {s: 0 for s in ("migrated", "up to date", "failed")}
    for result in report.results:
        counts[result.status] += 1
    console.print(
        f"{len(report.results)} tenants in {report.seconds:.1f}s: "
        f"{counts['migrated']} migrated, {counts['up to date']} up to date, "
        f"{counts['failed']} failed"
    )
    if outdated_spares:
        console.print(f"{outdated_spares} outdated spare schemas dropped (the app rebuilds them)")
    if failures:
        table = Table("tenant", "attempts", "error", title="Failed tenants (re-run to resume)")
        for result in failures:
            table.add_row(result.slug, str(result.attempts), result.error or "")
        console.print(table)
        raise typer.Exit(1)


def _print_tenant(tenant: TenantInfo, as_json: bool = False) -> None:
    if as_json:
        console.print_json(json.dumps(tenant.as_dict()))
        return
    console.print(
        f"{tenant.slug}: {tenant.name} [{tenant.status}] plan={tenant.plan} "
        f"schema={tenant.schema_name}",
        highlight=False,
        markup=False,
    )


@tenants_app.command("create")
def tenants_create(
    slug: str,
    admin_email: Annotated[
        str, typer.Option(help="The first admin's email; they get a one-time set-up link.")
    ],
    name: Annotated[str | None, typer.Option(help="Company name shown to people.")] = None,
    plan: Annotated[str, typer.Option(help="Plan from the catalogue.")] = "standard",
    domain: Annotated[
        list[str] | None, typer.Option("--domain", help="Custom domain (repeatable).")
    ] = None,
    shard: Annotated[str, typer.Option(help="Database shard.")] = "default",
    admin_name: Annotated[str, typer.Option(help="The first admin's name.")] = "Administrator",
    reuse_purged_slug: Annotated[
        bool,
        typer.Option(
            help="Give the new company the slug of a purged one (with a new id: nothing the "
            "purged company held works for it)."
        ),
    ] = False,
) -> None:
    """Create a tenant with its own schema and role, and its first admin's set-up link."""
    settings = _settings()
    created = run_with_database(
        lambda: provisioning.create_tenant_with_admin(
            slug,
            name,
            admin_email=admin_email,
            admin_name=admin_name,
            base_url=settings.tenant_url_template().replace("{slug}", slug),
            plan=plan,
            domains=domain or (),
            shard=shard,
            reuse_purged_slug=reuse_purged_slug,
        ),
        settings,
    )
    _print_tenant(created.tenant)
    console.print(
        f"  {settings.tenant_url_template().replace('{slug}', created.tenant.slug)}/",
        highlight=False,
    )
    _print_link(created.link)


def _print_link(link: credentials.Link) -> None:
    console.print(
        f"  set-up link for {link.email} (works once, until "
        f"{link.expires_at:%Y-%m-%d %H:%M} UTC):\n  {link.url}",
        highlight=False,
        markup=False,
        soft_wrap=True,  # a wrapped link cannot be copied
    )


@tenants_app.command("list")
def tenants_list(
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List tenants."""
    tenants = run_with_database(lambda: list_tenants(status))
    if as_json:
        for tenant in tenants:
            sys.stdout.write(json.dumps(tenant.as_dict()) + "\n")
        return
    table = Table("slug", "name", "status", "plan", "shard", "domains", "created")
    for t in tenants:
        table.add_row(
            t.slug, t.name, t.status, t.plan, t.shard, ", ".join(t.domains),
            f"{t.created_at:%Y-%m-%d}",
        )  # fmt: skip
    console.print(table)


@tenants_app.command("suspend")
def tenants_suspend(
    slug: str, reason: Annotated[str, typer.Option(help="Shown with the 403.")]
) -> None:
    """Suspend a tenant: its requests get 403 with the reason."""
    _print_tenant(run_with_database(lambda: provisioning.suspend_tenant(slug, reason)))


@tenants_app.command("resume")
def tenants_resume(slug: str) -> None:
    """Resume a suspended tenant."""
    _print_tenant(run_with_database(lambda: provisioning.resume_tenant(slug)))


@tenants_app.command("change-plan")
def tenants_change_plan(slug: str, plan: Annotated[str, typer.Option(help="Plan name.")]) -> None:
    """Move a tenant to another plan of the catalogue."""
    _print_tenant(run_with_database(lambda: provisioning.change_plan(slug, plan)))


@tenants_app.command("plans")
def tenants_plans(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List the plan catalogue: the names `--plan` takes, and their limits."""
    catalogue = run_with_database(list_plans)
    if as_json:
        for plan in catalogue:
            sys.stdout.write(json.dumps(vars(plan)) + "\n")
        return
    table = Table("name", "title", "API requests/min", "drivers", "users", "plugins")
    for p in catalogue:
        limits = (p.max_drivers, p.max_users, p.max_plugins)
        table.add_row(
            p.name, p.title, str(p.api_requests_per_minute),
            *("unlimited" if limit is None else str(limit) for limit in limits),
        )  # fmt: skip
    console.print(table)


@tenants_app.command("delete")
def tenants_delete(
    slug: str, reason: Annotated[str, typer.Option(help="Why, for the record.")] = ""
) -> None:
    """Soft-delete a tenant; it can be restored until its grace period ends."""
    settings = _settings()
    tenant = run_with_database(
        lambda: provisioning.delete_tenant(slug, settings.tenant_delete_grace_days, reason),
        settings,
    )
    _print_tenant(tenant)
    if tenant.purge_after:
        console.print(f"  restorable until {tenant.purge_after:%Y-%m-%d %H:%M} UTC")


@tenants_app.command("restore")
def tenants_restore(slug: str) -> None:
    """Restore a soft-deleted tenant."""
    _print_tenant(run_with_database(lambda: provisioning.restore_tenant(slug)))


@tenants_app.command("purge")
def tenants_purge(
    slug: str,
    force: Annotated[bool, typer.Option(help="Purge before the grace period ends.")] = False,
) -> None:
    """Drop a deleted tenant's files, schema, role and Redis keys for good; its slug is taken
    again only with `tenants create --reuse-purged-slug`."""
    run_with_database(lambda: provisioning.purge_tenant(slug, force=force))
    console.print(f"{slug}: purged")


async def _active_tenant(slug: str) -> TenantInfo:
    tenant = await get_tenant(slug)
    if tenant is None or tenant.status == "deleted":
        raise NotFound("not_found", f"tenant {slug!r} does not exist", "tenant")
    return tenant


@users_app.command("create")
def users_create(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    email: Annotated[str, typer.Option(help="Their email address.")],
    name: Annotated[str, typer.Option(help="Their name.")],
    role: Annotated[str, typer.Option(help="admin, manager, dispatcher or driver.")],
) -> None:
    """Add a staff user to a tenant and print their one-time set-up link."""
    settings = _settings()

    async def work() -> credentials.Invitation:
        return await credentials.invite_user(
            await _active_tenant(tenant),
            SYSTEM,
            {"email": email, "name": name, "role": role},
            base_url=settings.tenant_url_template().replace("{slug}", tenant),
        )

    invitation = run_with_database(work, settings)
    user = invitation.user
    console.print(f"{user['email']}: {user['name']} ({user['role']})", highlight=False)
    _print_link(invitation.link)


@users_app.command("setup-link")
def users_setup_link(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    email: Annotated[str, typer.Option(help="The staff user's email.")],
) -> None:
    """Print a fresh one-time set-up link for a staff user (earlier unused ones stop working)."""
    settings = _settings()

    async def work() -> credentials.Link:
        return await credentials.issue_setup_link(
            await _active_tenant(tenant),
            SYSTEM,
            email,
            base_url=settings.tenant_url_template().replace("{slug}", tenant),
        )

    _print_link(run_with_database(work, settings))


@tokens_app.command("issue")
def tokens_issue(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    user: Annotated[str, typer.Option("--user", help="The staff user's email.")],
    ttl: Annotated[int, typer.Option(min=60, max=86400, help="Seconds it stays valid.")] = 3600,
    allow_list_only: Annotated[
        bool, typer.Option(help="Its bearer may run only the tenant's registered documents.")
    ] = False,
) -> None:
    """Print an access token for a staff user (send it as `Authorization: Bearer ...`)."""
    settings = _settings()

    async def work() -> str:
        found = await _active_tenant(tenant)
        async with tenant_transaction(found):
            rows = await engine.fetch(
                "SELECT id FROM users WHERE lower(email) = lower($1) AND active", user
            )
        if not rows:
            raise NotFound("not_found", f"{user} is not an active user of {tenant}", "user")
        await keyring_for(settings.resolved_secret_key(), settings.secret_key_fallbacks).load()
        return issue_access_token(
            settings.resolved_secret_key(),
            found,
            rows[0]["id"],
            ttl,
            allow_list_only=allow_list_only,
        )

    sys.stdout.write(run_with_database(work, settings) + "\n")


@keys_app.command("rotate")
def keys_rotate(
    activate_in: Annotated[
        float,
        typer.Option(
            min=JWKS_MAX_AGE,
            help="Seconds between publishing the new key and its first signature: at least "
            f"the {JWKS_MAX_AGE} s verifiers may cache the published keys.",
        ),
    ] = ACTIVATION_DELAY,
) -> None:
    """Publish a new signing key now; it signs once verifiers have had time to fetch it, and
    older keys verify until their last token expires."""
    settings = _settings()

    async def work() -> tuple[str, float, list[str]]:
        keyring = keyring_for(settings.resolved_secret_key(), settings.secret_key_fallbacks)
        kid = await rotate_signing_key(keyring, activate_in=activate_in)
        key = keyring.get(kid)
        return kid, key.active_from if key else time.time() + activate_in, keyring.kids()

    kid, active_from, kids = run_with_database(work, settings)
    starts = datetime.fromtimestamp(active_from, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    console.print(
        f"new signing key {kid}, published now at /.well-known/jwks.json; "
        f"it signs from {starts} (in {max(0.0, active_from - time.time()):.0f} s)",
        highlight=False,
    )
    console.print(f"keys that verify: {', '.join(kids)}", highlight=False)


@clients_app.command("create")
def clients_create(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    name: Annotated[str, typer.Option(help="Who the client is for, e.g. the partner's name.")],
    scope: Annotated[
        list[str], typer.Option("--scope", help="requests:read, requests:write or reports:read.")
    ],
    allow_list_only: Annotated[
        bool, typer.Option(help="It may run only the tenant's registered documents.")
    ] = False,
    as_env: Annotated[
        bool,
        typer.Option(
            "--env",
            help="Print CLIENT_ID=... and CLIENT_SECRET=... lines, for a .env file or a "
            'shell\'s eval "$(...)".',
        ),
    ] = False,
) -> None:
    """Create a partner's API client; prints its client_id and secret (shown only once)."""
    from patone.core.identity import api_clients
    from patone.core.tables.identity import ApiClientRow

    async def work() -> tuple[ApiClientRow, str]:
        return await api_clients.create_client(
            await _active_tenant(tenant),
            SYSTEM,
            name=name,
            scopes=scope,
            allow_list_only=allow_list_only,
        )

    row, secret = run_with_database(work)
    if as_env:
        sys.stdout.write(
            f"CLIENT_ID={shlex.quote(row.client_id)}\nCLIENT_SECRET={shlex.quote(secret)}\n"
        )
        err.print("The secret is shown only now; keep it somewhere safe.", highlight=False)
        return
    console.print(f"client_id      {row.client_id}", highlight=False)
    console.print(f"client_secret  {secret}", highlight=False)
    console.print(f"scopes         {' '.join(row.scopes)}", highlight=False)
    console.print("The secret is shown only now; keep it somewhere safe.", highlight=False)


@documents_app.command("register")
def documents_register(
    tenant: Annotated[str, typer.Option(help="Tenant slug.")],
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A .graphql file.")],
    name: Annotated[str | None, typer.Option(help="Defaults to the file name.")] = None,
) -> None:
    """Allow-list a GraphQL document for a tenant; prints its sha256."""
    from patone.core.domain import documents  # graphql-core: only this command needs it
    from patone.core.tables.company import DocumentRow

    text = path.read_text()

    async def work() -> DocumentRow:
        return await documents.register_document(
            await _active_tenant(tenant), SYSTEM, {"name": name or path.stem, "document": text}
        )

    row = run_with_database(work)
    console.print(f"{row.sha256}  {row.name}", highlight=False)


@plugins_app.command("list")
def plugins_list() -> None:
    """The plugins installed here (entry points), and which are on by default."""
    from patone.plugins.manager import PluginManager

    manager = PluginManager()
    table = Table("name", "title", "on by default", "settings")
    for name, info in sorted(manager.infos().items()):
        fields = ", ".join(info.settings.model_fields) if info.settings else ""
        table.add_row(name, info.title, "yes" if info.default_enabled else "no", fields)
    console.print(table)
    manager.close()


@plugins_app.command("rotate-secrets")
def plugins_rotate_secrets(
    tenant_slugs: Annotated[
        list[str] | None,
        typer.Option("--tenant", help="Only these tenants (repeatable); default: every one."),
    ] = None,
) -> None:
    """Re-encrypt every tenant's plugin and webhook secrets with SECRET_KEY (old keys:
    SECRET_KEY_FALLBACKS)."""
    from cryptography.fernet import InvalidToken

    from patone.core.domain import webhooks
    from patone.plugins import config as plugin_config

    settings = _settings()

    failures: list[tuple[str, str]] = []

    async def work() -> int:
        plugin_config.set_runtime(plugin_config.runtime_from_settings(settings))
        total = 0
        tenants = [t for t in await list_tenants() if not tenant_slugs or t.slug in tenant_slugs]
        missing = set(tenant_slugs or ()) - {t.slug for t in tenants}
        failures.extend((slug, "no such tenant") for slug in sorted(missing))
        with Progress(console=err) as progress:
            task = progress.add_task("re-encrypting", total=len(tenants))
            for tenant in tenants:
                try:
                    total += await plugin_config.rotate_secrets(tenant)
                    total += await webhooks.reseal_secrets(tenant)
                except InvalidToken:
                    failures.append(
                        (
                            tenant.slug,
                            "a secret is sealed with a key that is neither SECRET_KEY nor in "
                            "SECRET_KEY_FALLBACKS",
                        )
                    )
                except Exception as error:  # one tenant's failure is reported, not fatal
                    failures.append(
                        (tenant.slug, f"{type(error).__name__}: {error} (run `patone migrate`)")
                    )
                progress.advance(task)
        return total

    console.print(f"{run_with_database(work, settings)} secrets re-encrypted")
    for slug, error in failures:
        err.print(f"[red]{slug}[/red]: {error}", highlight=False)
    if failures:
        raise typer.Exit(1)


OPERATOR_PASSWORD_ENV = "PATONE_OPERATOR_PASSWORD"  # noqa: S105 (a variable's name)


@operators_app.command("create")
def operators_create(
    email: Annotated[str, typer.Option(help="Their email address (they sign in with it).")],
    name: Annotated[str, typer.Option(help="Their name.")],
) -> None:
    """Add a platform operator. The password is asked twice (or read from
    PATONE_OPERATOR_PASSWORD, for scripts); prints the two-factor QR code and recovery codes."""
    import os

    import segno

    from patone.platform.operators import create_operator

    settings = _settings()
    password = os.environ.get(OPERATOR_PASSWORD_ENV) or typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    two_factor.configure(settings.resolved_secret_key(), settings.secret_key_fallbacks)
    created = run_with_database(lambda: create_operator(email, name, password), settings)
    console.print(
        f"Operator {created.operator.email} ({created.operator.name}) created.", highlight=False
    )
    console.print(
        "\nTwo-factor is always on for operators. Scan this QR code with an authenticator app:"
    )
    segno.make(created.otpauth_uri, error="m").terminal(compact=True)
    console.print(
        f"or add it by hand: {created.otpauth_uri}", highlight=False, markup=False, soft_wrap=True
    )
    console.print("\nRecovery codes (each works once; keep them somewhere safe):")
    for code in created.recovery_codes:
        console.print(f"  {code}", highlight=False)


@app.command("schema")
def export_schema(
    check: Annotated[bool, typer.Option(help="Only check that schema.graphql is current.")] = False,
) -> None:
    """Write the GraphQL schema (SDL) to schema.graphql at the repository root."""
    from patone.graphql.schema import SDL_PATH, sdl

    current = sdl()
    if check:
        if not SDL_PATH.exists() or SDL_PATH.read_text() != current:
            err.print(f"{SDL_PATH} is out of date: run `patone schema`")
            raise typer.Exit(1)
        console.print(f"{SDL_PATH} is current")
        return
    SDL_PATH.write_text(current)
    console.print(f"wrote {SDL_PATH}")


@app.command("simulate")
def simulate(
    drivers: Annotated[int, typer.Option(help="Drivers in the fleet.", min=1)] = 50,
    requests: Annotated[
        int, typer.Option(help="Calls over the run; 0: sized to keep the fleet ~70 % busy.")
    ] = 0,
    hours: Annotated[float, typer.Option(help="Length of the simulated day.", min=0.25)] = 12.0,
    seed: Annotated[int, typer.Option(help="Seed of the city, demand, noise and drivers.")] = 1,
    seeds: Annotated[
        str, typer.Option(help="Several seeds, run in turn and averaged: 1,2,3 (overrides --seed).")
    ] = "",
    out: Annotated[Path | None, typer.Option(help="Write the figures as JSON here.")] = None,
    chart: Annotated[Path | None, typer.Option(help="Write a PNG chart here.")] = None,
    keep: Annotated[bool, typer.Option(help="Keep the two simulation companies.")] = False,
    engine_settings: Annotated[
        str, typer.Option(help='Dispatch settings for the engine\'s run, as JSON: {"weights": ...}')
    ] = "",
    baseline: Annotated[bool, typer.Option(help="Also run the greedy baseline.")] = True,
    history_days: Annotated[
        int, typer.Option(help="Earlier days of calls the company has on record.", min=0, max=28)
    ] = 7,
    frozen_clock: Annotated[
        bool,
        typer.Option(
            help="Stop business time while the engine works: a run repeats exactly, for "
            "comparing settings (the engine's own time is then not counted)."
        ),
    ] = False,
) -> None:
    """Run a synthetic city through the dispatch engine and the greedy baseline; print both."""
    from patone.simulation.simulate import Options
    from patone.simulation.simulate import simulate as run_simulation

    options = Options(
        drivers=drivers,
        requests=requests or None,
        hours=hours,
        seed=seed,
        seeds=_seed_list(seeds),
        out=out,
        chart=chart,
        keep=keep,
        engine_settings=_engine_settings(engine_settings),
        baseline=baseline,
        history_days=history_days,
        frozen_clock=frozen_clock,
    )
    run_with_database(lambda: run_simulation(options, console))


def _engine_settings(text: str) -> dict[str, Any] | None:
    """`--engine-settings`: a JSON object of dispatch settings, checked before anything runs."""
    if not text:
        return None
    from patone.core.common.inputs import parse
    from patone.core.dispatch.settings import DispatchSettingsInput
    from patone.core.runtime.errors import ValidationFailed

    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"not JSON: {error}", param_hint="--engine-settings") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(
            'a JSON object of dispatch settings, e.g. {"offer_seconds": 45}',
            param_hint="--engine-settings",
        )
    try:
        parse(DispatchSettingsInput, data)
    except ValidationFailed as failed:
        problems = "; ".join(f"{e.field}: {e.message}" for e in failed.errors)
        raise typer.BadParameter(problems, param_hint="--engine-settings") from None
    return data


def _seed_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(
            "seeds are whole numbers separated by commas", param_hint="--seeds"
        ) from None


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
