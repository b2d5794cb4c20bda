"""clead: C-LEAD contrastive adversarial training, the standard baselines, and honest evaluation."""

__version__ = "0.1.0"

from .evaluate import evaluate, evaluate_run  # noqa: E402
from .run import load_model  # noqa: E402

__all__ = ["__version__", "evaluate", "evaluate_run", "load_model"]
