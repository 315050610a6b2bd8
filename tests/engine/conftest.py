"""Fixtures of the engine tests."""
from engine_toys import one_thread  # noqa: F401  (a fixture, registered by being imported here)
