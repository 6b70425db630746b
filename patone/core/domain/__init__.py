"""The roadside business: customers and vehicles, service requests and their life cycle,
drivers and shifts, the company's settings and service types, reports, webhooks, push
subscriptions, files, and the tenant schema (tables and migrations). Dispatch and
notifications build on it in rooms of their own."""
