"""Piccolo app for the platform schema (the registry)."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from patone.tenants.tables import (
    OAuthClientIndex,
    Operator,
    OperatorActivity,
    Plan,
    PurgedSlug,
    SigningKey,
    Tenant,
    TenantDomain,
)

APP_CONFIG = AppConfig(
    app_name="platform",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=[
        Plan,
        Tenant,
        PurgedSlug,
        TenantDomain,
        SigningKey,
        OAuthClientIndex,
        Operator,
        OperatorActivity,
    ],
    migration_dependencies=[],
    commands=[],
)
