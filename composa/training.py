"""The training loop behind ``composa train``: config in, training directory out.

A config has four sections: ``[data]`` (a registered dataset returning
``((train_X, train_Y), (dev_X, dev_Y))``), ``[model]``, ``[optimizer]`` and ``[training]``
(``max_epochs``, ``batch_size``, ``patience``, ``seed``), plus an optional ``[loss]``.
The loop checkpoints after every epoch into one atomically written file holding the
model, the optimizer's state, the epoch and every RNG state, so ``resume=True``
continues exactly where the last completed epoch left off: the final weights are
byte-identical to those of a run that was never interrupted.

``train`` runs in named steps: ``_build_run`` (config to data, model and optimizer),
``_restore_or_clear`` (checkpoint or fresh start), ``_run_epochs``, which runs
``_run_epoch`` = ``_train_epoch`` (a ``_train_step`` per batch) + ``_evaluate_epoch``,
and ``_finish``. Only ``_restore_or_clear`` (which deletes the files of a replaced run),
the ``_write_*`` functions and ``_finish`` change the output directory.
"""
import dataclasses
import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from .archive import (
    CONFIG_FILE,
    META_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PLOT_FILE,
    STATE_FILE,
    ArchiveError,
    load_config,
)
from .about import __version__
from .config import Config, registry, with_overrides
from .errors import ConfigurationError, SerializationError, ShapeMismatchError
from .model import Model
from .serialize import msgpack_dumps, msgpack_loads, read_bytes, write_bytes_atomic
from .util import fix_random_seed

__all__ = [
    "train",
    "evaluate",
    "check_data",
    "predict_numpy",
    "default_config_path",
    "load_train_config",
    "TRAINING_DEFAULTS",
]

TRAINING_DEFAULTS: Dict[str, Any] = {
    "max_epochs": 10,
    "batch_size": 32,
    "patience": 0,
    "seed": 0,
    "init_sample_size": 32,
}
STATE_VERSION = 1

Split = Tuple[numpy.ndarray, numpy.ndarray]  # (rows of features, class ids)


def default_config_path() -> Path:
    """The bundled default config: an MLP on scikit-learn's digits."""
    return Path(__file__).parent / "default.cfg"


def load_train_config(
    path: Optional[Union[str, Path]] = None, overrides: Optional[Dict[str, Any]] = None
) -> Config:
    """Read a training config (the bundled default when `path` is None) and apply dotted overrides."""
    path = Path(path) if path is not None else default_config_path()
    if not path.is_file():
        raise ConfigurationError(f"config file {path} does not exist")
    config = Config().from_disk(path, interpolate=False)
    return apply_overrides(config, overrides or {}, where=str(path))


def apply_overrides(config: Config, overrides: Dict[str, Any], *, where: str = "the config") -> Config:
    """Copy of `config` with ``{"training.max_epochs": 5}``-style values set (sections must exist)."""
    if not overrides:
        return config
    return Config(with_overrides(Config(config, is_interpolated=False).copy(), overrides), is_interpolated=False)


def train(
    config: Optional[Union[Config, str, Path]] = None,
    output_dir: Union[str, Path] = "runs/composa",
    *,
    seed: Optional[int] = None,
    resume: bool = False,
    force: bool = False,
    overrides: Optional[Dict[str, Any]] = None,
    on_epoch_end: Optional[Callable[[Dict[str, Any]], None]] = None,
    console: Any = None,
    progress: bool = True,
    plot: bool = True,
) -> Dict[str, Any]:
    """Train the config's model on its data into `output_dir`; returns the last epoch's metrics.

    `on_epoch_end(metrics)` runs after each epoch's checkpoint is written; raising
    KeyboardInterrupt there stops training like Ctrl-C would (resume later).
    """
    output = Path(output_dir)
    reporter = _Reporter(console, progress)
    run = _build_run(_prepare_config(config, output, seed, resume, force, overrides or {}), output)
    _restore_or_clear(run, resume, force, reporter)
    _write_run_files(run)
    try:
        _run_epochs(run, reporter, on_epoch_end)
    except KeyboardInterrupt:
        reporter.stop()
        reporter.say(f"Interrupted. Continue with: composa train --output {output} --resume")
        raise
    return _finish(run, reporter, plot)


def evaluate(model: Model, X: Any, Y: Any, *, batch_size: int = 1024) -> Dict[str, float]:
    """Accuracy and mean cross-entropy of `model`'s class probabilities on rows `X` with labels `Y`."""
    Y = numpy.asarray(Y)
    if len(X) != len(Y):
        raise ShapeMismatchError(f"evaluate: {len(X)} rows but {len(Y)} labels")
    if len(Y) == 0:
        return {"accuracy": 0.0, "loss": 0.0, "examples": 0}
    probs = predict_numpy(model, X, batch_size)
    if probs.ndim != 2 or Y.max() >= probs.shape[1]:
        raise ShapeMismatchError(
            f"evaluate: the model outputs shape {probs.shape}, too narrow for label {int(Y.max())}"
        )
    gold = probs[numpy.arange(len(Y)), Y]
    return {
        "accuracy": float((probs.argmax(axis=1) == Y).mean()),
        "loss": float(-numpy.log(numpy.clip(gold, 1e-12, None)).mean()),
        "examples": int(len(Y)),
    }


def accuracy(model: Model, X: Any, Y: Any) -> float:
    """Fraction of rows whose highest-scoring class is the label."""
    return evaluate(model, X, Y)["accuracy"]


def plot_learning_curves(history: Sequence[Dict[str, Any]], path: Union[str, Path]) -> str:
    """Save loss and accuracy per epoch as a PNG (matplotlib, Agg); returns a message saying what happened."""
    try:
        import matplotlib  # lazy: slow to import, and the plot is skipped without it

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # lazy: after choosing the Agg backend
    except ImportError:
        return "matplotlib is not installed: skipping the learning-curve plot (pip install matplotlib)"
    if not history:
        return "no completed epochs: nothing to plot"
    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, [row["loss"] for row in history], marker="o")
    loss_axis.set(title="Training loss", xlabel="epoch", ylabel="cross-entropy")
    accuracy_axis.plot(epochs, [row["train_accuracy"] for row in history], marker="o", label="train")
    accuracy_axis.plot(epochs, [row["dev_accuracy"] for row in history], marker="o", label="dev")
    accuracy_axis.set(title="Accuracy", xlabel="epoch", ylabel="accuracy")
    accuracy_axis.legend()
    figure.tight_layout()
    temp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    figure.savefig(temp, dpi=100)
    plt.close(figure)
    temp.replace(path)
    return f"Learning curves saved in {path}"


# Preparation -------------------------------------------------------------------------


def _prepare_config(
    config: Optional[Union[Config, str, Path]],
    output: Path,
    seed: Optional[int],
    resume: bool,
    force: bool,
    overrides: Dict[str, Any],
) -> Config:
    has_run = (output / STATE_FILE).exists() or (output / MODEL_FILE).exists()
    if seed is not None:
        overrides = {**overrides, "training.seed": seed}
    if resume and (output / CONFIG_FILE).is_file():
        # The saved config is the run's truth; a config given again must not silently win.
        # Both sides get this command's overrides, so repeating the first command with
        # --resume (same --seed and --section.key values) is accepted.
        saved = load_config(output)
        if config is not None and not isinstance(config, Config):
            given = apply_overrides(_with_training_defaults(load_train_config(config)), overrides).interpolate()
            if given != apply_overrides(_with_training_defaults(saved), overrides).interpolate():
                raise ConfigurationError(
                    f"--resume: {config} differs from the config saved in {output / CONFIG_FILE}; "
                    "resume without a config (or use --force with a new --output)"
                )
        config = saved
    elif has_run and not force:
        raise ConfigurationError(
            f"{output} already holds a training run; use --resume to continue it, "
            "--force to overwrite it, or another --output directory"
        )
    if config is None or isinstance(config, (str, Path)):
        config = load_train_config(config)
    config = _with_training_defaults(config)
    return apply_overrides(config, overrides)


def _with_training_defaults(config: Config) -> Config:
    """Copy of `config` whose [training] section lists every setting, so all can be overridden."""
    config = Config(config, is_interpolated=False).copy()
    config["training"] = {**TRAINING_DEFAULTS, **dict(config.get("training", {}))}
    return config


def _training_settings(config: Config) -> Dict[str, Any]:
    section = dict(config.get("training", {}))
    unknown = sorted(set(section) - set(TRAINING_DEFAULTS))
    if unknown:
        raise ConfigurationError(
            f"[training] has unknown key(s) {unknown}; it takes {sorted(TRAINING_DEFAULTS)}"
        )
    settings = {**TRAINING_DEFAULTS, **section}
    for key, value in settings.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigurationError(f"[training] {key}: expected a whole number >= 0, got {value!r}")
    if settings["batch_size"] < 1 or settings["init_sample_size"] < 1:
        raise ConfigurationError("[training] batch_size and init_sample_size must be at least 1")
    return settings


def check_data(data: Any) -> Tuple[Split, Split]:
    """`[data]`'s ``((train_X, train_Y), (dev_X, dev_Y))`` as float32 rows and int32 labels, checked."""
    try:
        (train_X, train_Y), (dev_X, dev_Y) = data
    except (TypeError, ValueError) as error:
        raise ConfigurationError(
            "[data] must build ((train_X, train_Y), (dev_X, dev_Y)); "
            f"got {type(data).__name__}"
        ) from error
    splits = []
    for name, X, Y in (("train", train_X, train_Y), ("dev", dev_X, dev_Y)):
        X = numpy.ascontiguousarray(X, dtype="float32")
        Y = numpy.asarray(Y)
        if X.ndim != 2 or Y.ndim != 1 or len(X) != len(Y):
            raise ShapeMismatchError(
                f"[data] {name}: expected X of shape (rows, features) and Y of shape (rows,), "
                f"got {X.shape} and {Y.shape}"
            )
        if Y.dtype.kind not in "iu" or (len(Y) and Y.min() < 0):
            raise ConfigurationError(f"[data] {name}: labels must be class ids >= 0, got dtype {Y.dtype}")
        splits.append((X, Y.astype("int32")))
    if len(splits[0][0]) == 0:
        raise ConfigurationError("[data] train: no training rows")
    if splits[0][0].shape[1] != splits[1][0].shape[1]:
        raise ShapeMismatchError(
            f"[data]: train rows have {splits[0][0].shape[1]} features, dev rows {splits[1][0].shape[1]}"
        )
    return splits[0], splits[1]


@dataclasses.dataclass
class _Run:
    """One training run: what the config built, and the history that grows epoch by epoch."""

    output: Path
    config: Config
    settings: Dict[str, Any]
    model: Model
    optimizer: Any
    loss_fn: Any
    train_X: numpy.ndarray
    train_Y: numpy.ndarray
    dev_X: numpy.ndarray
    dev_Y: numpy.ndarray
    n_classes: int
    history: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    best: Dict[str, Any] = dataclasses.field(default_factory=lambda: {"dev_accuracy": -1.0, "epoch": 0})
    start_epoch: int = 1


def _build_run(config: Config, output: Path) -> _Run:
    """Build the config's data, model, optimizer and loss (seeded) and initialise the model on a sample."""
    interpolated = config.interpolate()
    settings = _training_settings(interpolated)
    resolved = _resolve_sections(interpolated, settings["seed"])
    (train_X, train_Y), (dev_X, dev_Y) = check_data(resolved["data"])
    n_classes = int(max(train_Y.max(initial=0), dev_Y.max(initial=0))) + 1
    model: Model = resolved["model"]
    seed_random_generators(settings["seed"])
    sample = slice(0, settings["init_sample_size"])
    model.initialize(X=model.ops.asarray(train_X[sample]), Y=_one_hot(model, train_Y[sample], n_classes))
    return _Run(
        output=output, config=config, settings=settings, model=model, optimizer=resolved["optimizer"],
        loss_fn=resolved.get("loss"), train_X=train_X, train_Y=train_Y, dev_X=dev_X, dev_Y=dev_Y,
        n_classes=n_classes,
    )


def _resolve_sections(interpolated: Config, seed: int) -> Dict[str, Any]:
    """The built [data], [model], [optimizer] and optional [loss] sections, with the RNGs seeded first."""
    torch_was_loaded = "torch" in sys.modules
    seed_random_generators(seed)
    sections = {key: interpolated[key] for key in ("data", "model", "optimizer", "loss") if key in interpolated}
    resolved = registry.resolve(sections)
    if not torch_was_loaded and "torch" in sys.modules and "model" in sections:
        # The config built a PyTorch model, whose weights torch drew before it was seeded: rebuild it seeded.
        seed_random_generators(seed)
        resolved["model"] = registry.resolve({"model": sections["model"]})["model"]
    for section in ("data", "model", "optimizer"):
        if section not in resolved:
            raise ConfigurationError(f"the config has no [{section}] section; see docs/config.md")
    return resolved


def _restore_or_clear(run: _Run, resume: bool, force: bool, reporter: "_Reporter") -> None:
    """Continue from the output's checkpoint when resuming; with `force`, delete the replaced run's files."""
    output = run.output
    if resume and (output / STATE_FILE).is_file():
        run.start_epoch, run.history, run.best = _restore_checkpoint(output / STATE_FILE, run.model, run.optimizer)
        reporter.say(f"Resuming from the checkpoint after epoch {run.start_epoch - 1} in {output}")
    elif resume:
        reporter.say(f"No checkpoint in {output} yet: starting from epoch 1")
    elif force:
        # A new run must never be resumed from, or mixed with, the files of the one it replaces.
        for name in (STATE_FILE, MODEL_FILE, METRICS_FILE, META_FILE, PLOT_FILE):
            (output / name).unlink(missing_ok=True)


# The loop -----------------------------------------------------------------------------


def _epoch_order(seed: int, epoch: int, n_rows: int) -> numpy.ndarray:
    # One generator per (seed, epoch): the shuffle needs no state to survive a resume.
    return numpy.random.default_rng([seed, epoch]).permutation(n_rows)


def _run_epochs(run: _Run, reporter: "_Reporter", on_epoch_end: Optional[Callable[[Dict[str, Any]], None]]) -> None:
    """Train epoch after epoch up to max_epochs, stopping early once patience runs out."""
    last_epoch = run.settings["max_epochs"]
    if run.history and _patience_spent(run, run.start_epoch - 1):
        reporter.say(f"The run had already stopped early (no dev improvement for {run.settings['patience']} epochs)")
        last_epoch = run.start_epoch - 1
    reporter.start(last_epoch, run.start_epoch, len(run.train_X), run.settings["batch_size"], run.history)
    for epoch in range(run.start_epoch, last_epoch + 1):
        metrics = _run_epoch(run, epoch, reporter)
        if on_epoch_end is not None:
            on_epoch_end(metrics)
        if _patience_spent(run, epoch):
            reporter.say(f"No dev improvement for {run.settings['patience']} epochs: stopping early")
            break


def _patience_spent(run: _Run, epoch: int) -> bool:
    """True when `patience` (0: unlimited) epochs up to `epoch` came after the best one."""
    # Counted from the best epoch, so the count carries on across a resume as without one.
    patience = run.settings["patience"]
    return bool(patience) and epoch - run.best["epoch"] >= patience


def _run_epoch(run: _Run, epoch: int, reporter: "_Reporter") -> Dict[str, Any]:
    """Train one epoch, evaluate it and write its files; returns the epoch's row of metrics."""
    started = time.perf_counter()
    loss = _train_epoch(run, _epoch_order(run.settings["seed"], epoch, len(run.train_X)), reporter)
    seconds = time.perf_counter() - started
    train_accuracy, dev_accuracy = _evaluate_epoch(run)
    improved = dev_accuracy > run.best["dev_accuracy"]
    if improved:
        run.best = {"dev_accuracy": dev_accuracy, "epoch": epoch}
    if hasattr(run.optimizer, "last_score"):
        run.optimizer.last_score = dev_accuracy  # plateau schedules react to the dev score
    metrics = {
        "epoch": epoch,
        "loss": loss,
        "train_accuracy": train_accuracy,
        "dev_accuracy": dev_accuracy,
        "examples_per_second": len(run.train_X) / max(seconds, 1e-9),
        "best": improved,
    }
    run.history.append(metrics)
    _write_epoch_files(run, metrics)
    reporter.epoch(metrics)
    return metrics


def _train_epoch(run: _Run, order: numpy.ndarray, reporter: "_Reporter") -> float:
    """One pass over the training rows in `order`, batch by batch; returns the mean cross-entropy."""
    batch_size = run.settings["batch_size"]
    total_loss = 0.0
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        total_loss += _train_step(run, index)
        reporter.advance(len(index))
    return total_loss / len(order)


def _train_step(run: _Run, index: numpy.ndarray) -> float:
    """Forward, loss and backprop on the training rows `index`, then update; returns their summed cross-entropy."""
    model = run.model
    X = model.ops.asarray(run.train_X[index])
    truths = _one_hot(model, run.train_Y[index], run.n_classes)
    guesses, backprop = model.begin_update(X)
    if run.loss_fn is not None:
        d_guesses, _ = run.loss_fn(guesses, truths)
    else:
        d_guesses = (guesses - truths) / len(index)
    loss = _cross_entropy_sum(model, guesses, truths)
    backprop(d_guesses)
    model.finish_update(run.optimizer)
    if hasattr(run.optimizer, "step_schedules"):
        run.optimizer.step_schedules()
    return loss


def _evaluate_epoch(run: _Run) -> Tuple[float, float]:
    """Train and dev accuracy, with the optimizer's parameter averages when it keeps them."""
    with _averaged(run.model, run.optimizer):
        return accuracy(run.model, run.train_X, run.train_Y), accuracy(run.model, run.dev_X, run.dev_Y)


def _one_hot(model: Model, labels: numpy.ndarray, n_classes: int) -> Any:
    table = numpy.zeros((len(labels), n_classes), dtype="float32")
    table[numpy.arange(len(labels)), labels] = 1.0
    return model.ops.asarray(table)


def _cross_entropy_sum(model: Model, guesses: Any, truths: Any) -> float:
    gold = (guesses * truths).sum(axis=1)
    return float(-model.ops.xp.log(model.ops.xp.clip(gold, 1e-12, None)).sum())


def predict_numpy(model: Model, X: Any, batch_size: int = 1024) -> numpy.ndarray:
    """`model`'s outputs for the rows `X`, predicted `batch_size` rows at a time, as one numpy array."""
    outputs = []
    for start in range(0, len(X), batch_size):
        outputs.append(model.ops.to_numpy(model.predict(model.ops.asarray(X[start : start + batch_size]))))
    return numpy.concatenate(outputs) if outputs else numpy.zeros((0, 0), dtype="float32")


class _averaged:
    """Use the optimizer's parameter averages (when it keeps them) inside the block."""

    def __init__(self, model: Model, optimizer: Any) -> None:
        averages = getattr(optimizer, "averages", None)
        self.context = model.use_params(averages) if averages else None

    def __enter__(self) -> None:
        if self.context is not None:
            self.context.__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        if self.context is not None:
            self.context.__exit__(*exc_info)


# Checkpoints ----------------------------------------------------------------------------


def _write_checkpoint(
    path: Path, model: Model, optimizer: Any, epoch: int, history: List[Dict[str, Any]], best: Dict[str, Any]
) -> None:
    state = {
        "version": STATE_VERSION,
        "epoch": epoch,
        "model": model.to_bytes(),
        "optimizer": optimizer_state(optimizer, model),
        "history": json.dumps(history),
        "best": json.dumps(best),
        "rng": _rng_state(),
    }
    write_bytes_atomic(path, msgpack_dumps(state))


def _restore_checkpoint(path: Path, model: Model, optimizer: Any) -> Tuple[int, List[Dict[str, Any]], Dict[str, Any]]:
    try:
        state = msgpack_loads(read_bytes(path, what="training state"))
    except SerializationError as error:
        raise ArchiveError(f"{path} is not a composa training state: {error}") from error
    epoch, history, best = _checked_checkpoint(path, state)
    before = model.to_bytes()
    try:
        model.from_bytes(state["model"])
    except SerializationError as error:
        raise ArchiveError(f"{path}: the checkpointed model does not fit the config's [model]: {error}") from error
    try:
        load_optimizer_state(optimizer, model, state["optimizer"])
    except SerializationError as error:
        model.from_bytes(before)  # all or nothing: the model goes back to how it was built
        raise ArchiveError(f"{path}: the checkpointed optimizer state does not fit: {error}") from error
    _set_rng_state(state["rng"])
    return epoch + 1, history, best


_CHECKPOINT_FIELDS = ("version", "epoch", "model", "optimizer", "history", "best", "rng")


def _checked_checkpoint(path: Path, state: Any) -> Tuple[int, List[Dict[str, Any]], Dict[str, Any]]:
    """The epoch, history and best entries of a checkpoint, after checking every field but the model's."""
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ArchiveError(f"{path} is not a composa training state (version {STATE_VERSION})")
    missing = [field for field in _CHECKPOINT_FIELDS if field not in state]
    epoch, optimizer = state.get("epoch"), state.get("optimizer")
    if missing or type(epoch) is not int or epoch < 0 or not isinstance(state["model"], bytes):
        raise ArchiveError(f"{path}: malformed training state (missing {missing}, epoch {epoch!r})")
    if optimizer is not None and not isinstance(optimizer, bytes):
        raise ArchiveError(f"{path}: malformed training state: the optimizer state is not bytes")
    try:
        history, best = json.loads(state["history"]), json.loads(state["best"])
        _check_rng_state(state["rng"])
    except (TypeError, ValueError, LookupError, OverflowError) as error:  # what json and numpy raise
        raise ArchiveError(f"{path}: malformed training state: {error}") from error
    if not isinstance(history, list) or not isinstance(best, dict):
        raise ArchiveError(f"{path}: malformed training state: bad history or best entry")
    return epoch, history, best


def _check_rng_state(state: Any) -> None:
    """Set the saved generator states on throwaway generators, so a bad one fails before anything changes."""
    name, keys, position, has_gauss, cached = state["numpy"]
    numpy.random.RandomState().set_state((name, numpy.asarray(keys, dtype="uint32"), position, has_gauss, cached))
    version, internal, gauss = json.loads(state["python"])
    random.Random().setstate((version, tuple(internal), gauss))
    if "torch" in state and not (isinstance(state["torch"], numpy.ndarray) and state["torch"].dtype == "uint8"):
        raise ValueError("the torch generator state is not an array of bytes")


def seed_random_generators(seed: int) -> None:
    """Seed Python's and numpy's generators, and torch/cupy when the process already uses them.

    Like ``fix_random_seed``, without importing torch (two seconds) for models that never use it.
    """
    if "torch" in sys.modules or "cupy" in sys.modules:
        fix_random_seed(seed)
    else:
        random.seed(seed)
        numpy.random.seed(seed)


def _rng_state() -> Dict[str, Any]:
    name, keys, position, has_gauss, cached = numpy.random.get_state()
    state: Dict[str, Any] = {
        "numpy": [name, keys, int(position), int(has_gauss), float(cached)],
        "python": json.dumps(random.getstate()),
    }
    if "torch" in sys.modules:
        state["torch"] = sys.modules["torch"].get_rng_state().numpy()
    return state


def _set_rng_state(state: Dict[str, Any]) -> None:
    name, keys, position, has_gauss, cached = state["numpy"]
    numpy.random.set_state((name, numpy.asarray(keys, dtype="uint32"), position, has_gauss, cached))
    version, internal, gauss = json.loads(state["python"])
    random.setstate((version, tuple(internal), gauss))
    if "torch" in state and "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_rng_state(torch.from_numpy(numpy.array(state["torch"], dtype="uint8")))


def optimizer_state(optimizer: Any, model: Model) -> Optional[bytes]:
    """The optimizer's state (moments, averages, step, schedules) keyed by node positions in `model`.

    None for an optimizer without ``to_bytes(model=...)``: such a run resumes with fresh optimizer state.
    """
    if not hasattr(optimizer, "to_bytes"):
        return None
    return optimizer.to_bytes(model=model)


def load_optimizer_state(optimizer: Any, model: Model, state: Optional[bytes]) -> None:
    """Put back a state from :func:`optimizer_state` into a fresh optimizer for `model`."""
    if state is None or not hasattr(optimizer, "from_bytes"):
        return
    optimizer.from_bytes(state, model=model)


# Files and display --------------------------------------------------------------------


def _write_run_files(run: _Run) -> None:
    """Create the output directory and write the run's config and (so far) meta."""
    run.output.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(run.output / CONFIG_FILE, run.config.to_str().encode("utf8"))
    _write_meta(run.output, run.train_X.shape[1], run.n_classes, run.best)


def _write_epoch_files(run: _Run, metrics: Dict[str, Any]) -> None:
    """Write what an epoch leaves: the model when it is the best yet (averaged), the checkpoint, metrics and meta."""
    if metrics["best"]:
        with _averaged(run.model, run.optimizer):
            run.model.to_disk(run.output / MODEL_FILE)
    _write_checkpoint(run.output / STATE_FILE, run.model, run.optimizer, metrics["epoch"], run.history, run.best)
    _write_metrics(run.output, run.history)
    _write_meta(run.output, run.train_X.shape[1], run.n_classes, run.best)


def _finish(run: _Run, reporter: "_Reporter", plot: bool) -> Dict[str, Any]:
    """Stop the progress bar, plot the learning curves, say where the best model is; returns the summary."""
    reporter.stop()
    if plot:
        reporter.say(plot_learning_curves(run.history, run.output / PLOT_FILE))
    reporter.say(
        f"Best dev accuracy {run.best['dev_accuracy']:.4f} at epoch {run.best['epoch']}; "
        f"model saved in {run.output / MODEL_FILE}"
    )
    metrics = run.history[-1] if run.history else {}
    return {**metrics, "best_dev_accuracy": run.best["dev_accuracy"], "best_epoch": run.best["epoch"]}


def _write_metrics(output: Path, history: List[Dict[str, Any]]) -> None:
    text = "".join(json.dumps(row) + "\n" for row in history)
    write_bytes_atomic(output / METRICS_FILE, text.encode("utf8"))


def _write_meta(output: Path, n_features: int, n_classes: int, best: Dict[str, Any]) -> None:
    meta = {
        "composa_version": __version__,
        "n_features": n_features,
        "n_classes": n_classes,
        "best_dev_accuracy": best["dev_accuracy"],
        "best_epoch": best["epoch"],
    }
    write_bytes_atomic(output / META_FILE, (json.dumps(meta, indent=2) + "\n").encode("utf8"))


class _Reporter:
    """Progress bar and per-epoch table with rich (plain lines when disabled)."""

    def __init__(self, console: Any, progress: bool) -> None:
        self.console = console if console is not None else Console()
        self.enabled = progress
        self.progress: Any = None
        self.task: Any = None

    def say(self, message: str) -> None:
        self.console.print(message)

    def start(self, max_epochs: int, start_epoch: int, n_rows: int, batch_size: int, history: List[Dict[str, Any]]) -> None:
        columns = ("epoch", "loss", "train acc", "dev acc", "examples/s", "")
        self.console.print(" ".join(f"{name:>10}" for name in columns))
        for row in history:
            self.epoch(row)
        remaining = max(0, max_epochs - start_epoch + 1) * n_rows
        if self.enabled and remaining:
            self.progress = Progress(
                "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), console=self.console, transient=True,
            )
            self.task = self.progress.add_task("training", total=remaining)
            self.progress.start()

    def advance(self, rows: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, rows)

    def epoch(self, metrics: Dict[str, Any]) -> None:
        mark = "best" if metrics.get("best") else ""
        self.console.print(
            f"{metrics['epoch']:>10} {metrics['loss']:>10.4f} {metrics['train_accuracy']:>10.4f} "
            f"{metrics['dev_accuracy']:>10.4f} {metrics['examples_per_second']:>10.0f} {mark:>10}"
        )

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
