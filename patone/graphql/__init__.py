"""The GraphQL API (strawberry): one module per domain area; calls services in `patone.core`."""
