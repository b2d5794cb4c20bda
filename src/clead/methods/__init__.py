"""Training methods: each one file, registered by name in `METHODS`."""

from . import ascl, clead, mart, pgd_at, standard, trades  # noqa: F401  (register themselves)
from .base import METHODS, Budget, Method, NoParams

__all__ = ["METHODS", "Budget", "Method", "NoParams"]
