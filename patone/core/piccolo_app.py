"""Piccolo app for the tables in every tenant schema."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from patone.core.tables import Setting

APP_CONFIG = AppConfig(
    app_name="tenant",
    migrations_folder_path=str(Path(__file__).parent / "piccolo_migrations"),
    table_classes=[Setting],
    migration_dependencies=[],
    commands=[],
)
