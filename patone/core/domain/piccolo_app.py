"""Piccolo app for the tables in every tenant schema."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from patone.core.tables import table_classes

APP_CONFIG = AppConfig(
    app_name="tenant",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=table_classes(),
    migration_dependencies=[],
    commands=[],
)
