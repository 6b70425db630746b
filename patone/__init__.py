"""Patone Cloud: a multi-tenant SaaS for roadside-assistance companies."""

import os

# Piccolo finds its engine through a `piccolo_conf` module; point it at ours before any table
# class is touched, so migrations and the ORM share the one tenant-aware engine.
os.environ.setdefault("PICCOLO_CONF", "patone.tenants.piccolo_conf")

__version__ = "0.1.0"
