"""Training loop, evaluation, checkpoints and distributed helpers."""

from .checkpoint import (
    load_checkpoint,
    save_checkpoint,
    save_model,
    write_json_atomic,
    write_text_atomic,
)
from .config import RunConfigError, TrainConfig
from .distributed import cleanup, is_main_process, setup
from .evaluate import evaluate
from .trainer import NonFiniteLossError, Trainer

__all__ = [
    "NonFiniteLossError",
    "RunConfigError",
    "TrainConfig",
    "Trainer",
    "cleanup",
    "evaluate",
    "is_main_process",
    "load_checkpoint",
    "save_checkpoint",
    "save_model",
    "setup",
    "write_json_atomic",
    "write_text_atomic",
]
