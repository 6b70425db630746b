"""The dispatch console and back office for a company's staff (`/admin`)."""
