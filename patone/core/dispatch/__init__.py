"""The dispatch engine: driver positions, candidates and scores, offers, ETAs, route plans
(DESIGN.md, "Dispatch engine")."""
