"""The dispatch engine's records: decisions, offers, fleet plans, staging moves."""

from __future__ import annotations
