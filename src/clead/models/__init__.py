"""Models: each one file, registered by name in `MODELS`; all follow the `Classifier` contract."""

from . import preact_resnet, small_cnn, wideresnet  # noqa: F401  (register themselves)
from .base import MODELS, Classifier, create_model

__all__ = ["MODELS", "Classifier", "create_model"]
