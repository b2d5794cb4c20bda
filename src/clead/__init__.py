"""clead: C-LEAD contrastive adversarial training, the standard baselines, and honest evaluation."""

__version__ = "0.1.0"

from .evaluation.eval_config import EvalConfig  # noqa: E402
from .evaluation.evaluate import evaluate, evaluate_run  # noqa: E402
from .run import load_model  # noqa: E402
from .training.config import TrainConfig  # noqa: E402
from .training.trainer import train  # noqa: E402

__all__ = ["__version__", "EvalConfig", "TrainConfig", "evaluate", "evaluate_run", "load_model", "train"]
