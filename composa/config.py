"""Configs and the function registry, built on confection and catalogue.

We use confection (``Config``: ``.cfg`` files with ``${section:key}`` variables and
``@table`` references) and catalogue (function tables) rather than writing our own:
they are small, well kept, and exactly what Thinc users already write configs for.
"""
import catalogue
import confection
from confection import Config, ConfigValidationError

__all__ = ["Config", "registry", "ConfigValidationError"]


class registry(confection.registry):
    """Function tables under the "composa" namespace; `registry.resolve(config)` builds objects."""

    layers = catalogue.create("composa", "layers", entry_points=True)
    optimizers = catalogue.create("composa", "optimizers", entry_points=True)
    schedules = catalogue.create("composa", "schedules", entry_points=True)
    losses = catalogue.create("composa", "losses", entry_points=True)
    initializers = catalogue.create("composa", "initializers", entry_points=True)
    datasets = catalogue.create("composa", "datasets", entry_points=True)
    ops = catalogue.create("composa", "ops", entry_points=True)

    @classmethod
    def create(cls, registry_name: str, entry_points: bool = False) -> None:
        """Add a new table, e.g. ``registry.create("tokenizers")``."""
        if hasattr(cls, registry_name):
            raise ValueError(f"Registry '{registry_name}' already exists")
        setattr(cls, registry_name, catalogue.create("composa", registry_name, entry_points=entry_points))
