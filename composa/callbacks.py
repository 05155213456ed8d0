"""Registered training callbacks: code that ``composa train`` runs at each step, epoch end and new best model.

A callback is any object with some of these methods (those it lacks are skipped)::

    on_train_begin(context)          context.output, context.model, context.vocab, context.config
    on_step(step)                    {"epoch", "step", "examples", "loss"} after each update
    on_epoch_end(row, history)       the epoch's row of metrics; return True to stop training
    on_best_model(row, path)         after a new best model was written to `path`
    on_train_end(summary)

Callbacks see the history, not private state, so they behave the same after ``--resume``.
Chosen in the config::

    [callbacks.stop]
    @callbacks = "early_stopping.v1"
    monitor = "dev_macro_f1"
    patience = 3
"""
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

from .config import registry
from .errors import ConfigurationError

__all__ = [
    "TrainingContext",
    "EarlyStopping",
    "StepLog",
    "KeepBestModels",
    "early_stopping",
    "step_log",
    "keep_best_models",
    "run_callbacks",
    "lower_is_better",
]


@dataclasses.dataclass
class TrainingContext:
    """What ``on_train_begin`` receives: the run directory and what the config built."""

    output: Path
    model: Any
    vocab: Any
    config: Any


def lower_is_better(metric: str) -> bool:
    """Losses are minimised; every other metric is maximised."""
    return metric.endswith("loss")


class EarlyStopping:
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs."""

    def __init__(self, monitor: str = "dev_accuracy", patience: int = 3, min_delta: float = 0.0, mode: str = "auto") -> None:
        if patience < 1:
            raise ConfigurationError(f"early_stopping.v1: patience must be at least 1, got {patience}")
        if mode not in ("auto", "max", "min"):
            raise ConfigurationError(f"early_stopping.v1: mode must be auto, max or min, got {mode!r}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.minimise = mode == "min" or (mode == "auto" and lower_is_better(monitor))

    def on_epoch_end(self, row: Dict[str, Any], history: List[Dict[str, Any]]) -> bool:
        """True once the best value is `patience` or more epochs old."""
        if self.monitor not in row:
            scalars = sorted(key for key, value in row.items() if isinstance(value, float))
            raise ConfigurationError(f"early_stopping.v1: monitor {self.monitor!r} is not a metric of the run; it has {scalars}")
        sign = -1.0 if self.minimise else 1.0
        best_epoch, best = history[0]["epoch"], sign * history[0][self.monitor]
        for past in history[1:]:
            if sign * past[self.monitor] > best + self.min_delta:
                best_epoch, best = past["epoch"], sign * past[self.monitor]
        return row["epoch"] - best_epoch >= self.patience


class StepLog:
    """Append the loss of every `every`-th step to a JSON-lines file in the run directory."""

    def __init__(self, every: int = 10, file_name: str = "steps.jsonl") -> None:
        if every < 1:
            raise ConfigurationError(f"step_log.v1: every must be at least 1, got {every}")
        self.every = every
        self.file_name = file_name
        self.path: Optional[Path] = None

    def on_train_begin(self, context: TrainingContext) -> None:
        self.path = context.output / self.file_name

    def on_step(self, step: Dict[str, Any]) -> None:
        if self.path is not None and step["step"] % self.every == 0:
            with self.path.open("a", encoding="utf8") as file_:
                file_.write(json.dumps(step) + "\n")


class KeepBestModels:
    """Keep a copy of each new best model as ``model-epochN.bin``, the last `keep` of them."""

    def __init__(self, keep: int = 3) -> None:
        if keep < 1:
            raise ConfigurationError(f"keep_best_models.v1: keep must be at least 1, got {keep}")
        self.keep = keep

    def on_best_model(self, row: Dict[str, Any], path: Path) -> None:
        shutil.copyfile(path, path.with_name(f"model-epoch{row['epoch']}.bin"))
        copies = sorted(path.parent.glob("model-epoch*.bin"), key=lambda p: int(p.stem.rsplit("epoch", 1)[1]))
        for old in copies[: -self.keep]:
            old.unlink()


@registry.callbacks("early_stopping.v1")
def early_stopping(monitor: str = "dev_accuracy", patience: int = 3, min_delta: float = 0.0, mode: str = "auto") -> EarlyStopping:
    """Stop training once `monitor` (any scalar of the epoch row) stops improving; losses count as lower-is-better."""
    return EarlyStopping(monitor, patience, min_delta, mode)


@registry.callbacks("step_log.v1")
def step_log(every: int = 10, file_name: str = "steps.jsonl") -> StepLog:
    """Write the loss of every `every`-th step to `file_name` in the run directory."""
    return StepLog(every, file_name)


@registry.callbacks("keep_best_models.v1")
def keep_best_models(keep: int = 3) -> KeepBestModels:
    """Keep the last `keep` best models as ``model-epochN.bin`` beside ``model.bin``."""
    return KeepBestModels(keep)


def run_callbacks(callbacks: Dict[str, Any], hook: str, *args: Any) -> bool:
    """Call `hook` on every callback that has it; True when any returned True (a request to stop)."""
    stop = False
    for callback in callbacks.values():
        method = getattr(callback, hook, None)
        if method is not None and method(*args) is True:
            stop = True
    return stop
