"""Webhook endpoints, deliveries and their attempts."""

from __future__ import annotations
