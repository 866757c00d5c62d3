"""gearq: a fast, typed, Celery-style task queue on the Gearman job system."""

from .protocol.errors import GearqError

__version__ = "0.1.0.dev0"

__all__ = ["GearqError", "__version__"]
