"""Notification rules, templates, preferences, the delivery log, push subscriptions."""

from __future__ import annotations
