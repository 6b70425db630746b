"""The dispatch engine: live driver positions, candidates, offers and scoring (DESIGN.md,
"Dispatch engine")."""
