"""The platform operator's concern: companies' life cycle (provisioning, suspension, purge),
operators and their sign-in, the operators' console and the platform GraphQL API."""
