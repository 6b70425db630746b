"""The dispatch engine: candidates, offers, scoring and route optimisation."""
