"""Pydantic models: canonical events, profiles, orders, stores, domain events."""
