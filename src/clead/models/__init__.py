"""Models: each one file, registered by name in `MODELS`; all follow the `Classifier` contract."""
from . import small_cnn  # noqa: F401  (registers itself)
from .base import MODELS, Classifier, create_model

__all__ = ["MODELS", "Classifier", "create_model"]
