"""The process's plumbing, below the companies: database pools, Redis, the business clock, the
periodic scheduler, HTTP plumbing (request ids, JSON errors, body limits, headers) and the one
list of error codes. Knows nothing of tenants, people or requests."""
