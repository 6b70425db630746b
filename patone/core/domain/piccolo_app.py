"""Piccolo app for the tables in every tenant schema."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from patone.core.domain import tables

APP_CONFIG = AppConfig(
    app_name="tenant",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=[
        tables.Setting,
        tables.Role,
        tables.User,
        tables.Customer,
        tables.Membership,
        tables.Vehicle,
        tables.Driver,
        tables.Shift,
        tables.ServiceType,
        tables.ServiceRequest,
        tables.RequestEvent,
        tables.ActivityLog,
        tables.Outbox,
        tables.IdempotencyKey,
        tables.PersistedDocument,
        tables.PluginConfig,
    ],
    migration_dependencies=[],
    commands=[],
)
