"""The project's own plugins, registered through the same entry points as third-party ones."""
