"""Tenants: the platform registry, isolation, provisioning, migrations and resolution."""
