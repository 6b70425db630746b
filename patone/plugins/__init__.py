"""The plugin system (pluggy): hook specifications, the manager, and the built-in providers."""
