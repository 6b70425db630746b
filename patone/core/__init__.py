"""The tenant-aware domain: database engine, tables, services, jobs and dispatch."""
