"""The demo company: a city's worth of customers, drivers, open and past requests."""
