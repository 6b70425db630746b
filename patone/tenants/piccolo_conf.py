"""Piccolo's configuration module: the engine and the app registry (used by `piccolo` CLI too)."""

from piccolo.conf.apps import AppRegistry

from patone.core.runtime.db import engine

DB = engine

APP_REGISTRY = AppRegistry(
    apps=["patone.tenants.piccolo_app", "patone.core.domain.piccolo_app"],
)
