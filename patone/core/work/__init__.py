"""Work done later, for one company at a time: Dramatiq jobs that carry their tenant, the
worker process, the outbox of events and its handlers, and the relay that publishes events to
live subscribers."""
