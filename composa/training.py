"""The training loop behind ``composa train``: config in, training directory out.

A config has four sections: ``[data]`` (a registered dataset returning
``((train_X, train_Y), (dev_X, dev_Y))``, or a text dataset, see :mod:`composa.readers`),
``[model]``, ``[optimizer]`` and ``[training]`` (``max_epochs``, ``batch_size``, ``patience``,
``seed``, ``score``), plus optional ``[loss]``, ``[vocab]`` (how the vocabulary of text data
is built), ``[metrics]`` and ``[callbacks]``.
The loop checkpoints after every epoch into one atomically written file holding the
model, the optimizer's state, the epoch and every RNG state, so ``resume=True``
continues exactly where the last completed epoch left off: the final weights are
byte-identical to those of a run that was never interrupted.

``train`` runs in named steps: ``_build_run`` (config to data, model and optimizer),
``_restore_or_clear`` (checkpoint or fresh start), ``_write_run_files``, ``_run_epochs``, which runs
``_run_epoch`` = ``_train_epoch`` (a ``_train_step`` per batch) + ``_evaluate_epoch``,
and ``_finish``. Only ``_restore_or_clear`` (which deletes the files of a replaced run),
the ``_write_*`` functions and ``_finish`` change the output directory.

Given a ``communicator`` (see :mod:`composa.distributed`), the same loop runs data-parallel:
every rank builds the run, the ranks check at start-up that they built the same thing,
each step trains on this rank's slice of the global batch and all-reduces the gradients
before the update, evaluation is split across the ranks, and only rank 0 writes files
and prints.
"""
import dataclasses
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from ._batches import flatten_labels, flatten_outputs, lengths_of, split_rows, take, to_device
from .archive import (
    CODE_DIR,
    CONFIG_FILE,
    META_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PLOT_FILE,
    SAFETENSORS_FILE,
    STATE_FILE,
    VOCAB_FILE,
    WEIGHTS_FILES,
    ArchiveError,
    archive_code,
    load_config,
    read_meta,
    save_weights,
)
from .about import __version__
from .callbacks import TrainingContext, lower_is_better, run_callbacks
from .config import Config, check_config, registry, with_overrides
from .distributed import Communicator
from .errors import ConfigurationError, SerializationError, ShapeMismatchError
from .metrics import compute_metrics
from .model import Model
from .readers import TextDataset, build_vocabulary, featurize
from .serialize import msgpack_dumps, msgpack_loads, read_bytes, write_bytes_atomic
from .text import Vocabulary, use_vocabulary
from .util import fix_random_seed

__all__ = [
    "train",
    "dry_run",
    "evaluate",
    "check_data",
    "predict_numpy",
    "default_config_path",
    "bundled_config_path",
    "load_train_config",
    "TRAINING_DEFAULTS",
]

TRAINING_DEFAULTS: Dict[str, Any] = {
    "max_epochs": 10,
    "batch_size": 32,
    "patience": 0,
    "seed": 0,
    "init_sample_size": 32,
    "score": "dev_accuracy",
}
# Settings that are not whole numbers, with the type they take.
TEXT_SETTINGS = ("score",)
STATE_VERSION = 1

Split = Tuple[numpy.ndarray, numpy.ndarray]  # (rows of features, class ids)


def default_config_path() -> Path:
    """The bundled default config: an MLP on scikit-learn's digits."""
    return Path(__file__).parent / "default.cfg"


def bundled_config_path(name: str) -> Optional[Path]:
    """The bundled config called `name` ("digits", "reviews"), or None."""
    if name == "digits":
        return default_config_path()
    path = Path(__file__).parent / "configs" / f"{name}.cfg"
    return path if path.is_file() and "/" not in name else None


def load_train_config(
    path: Optional[Union[str, Path]] = None, overrides: Optional[Dict[str, Any]] = None
) -> Config:
    """Read a training config (the bundled default when `path` is None) and apply dotted overrides."""
    path = Path(path) if path is not None else default_config_path()
    bundled = bundled_config_path(str(path))
    if not path.is_file() and bundled is not None:
        path = bundled
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
    communicator: Optional[Communicator] = None,
    weights_format: str = "msgpack",
    code: Sequence[Union[str, Path]] = (),
) -> Dict[str, Any]:
    """Train the config's model on its data into `output_dir`; returns the last epoch's metrics.

    `on_epoch_end(metrics)` runs after each epoch's checkpoint is written; raising
    KeyboardInterrupt there stops training like Ctrl-C would (resume later). The Python
    files in `code` (already imported by the caller: they register the config's own
    layers) are copied into the run directory with their hashes. With a multi-process
    `communicator` (``composa.distributed.init_distributed()``) this process is one rank
    of a data-parallel run. The best model is kept as model.bin, or as
    model.safetensors with ``weights_format="safetensors"``.
    """
    if weights_format not in WEIGHTS_FILES:
        raise ConfigurationError(f"weights_format must be one of {sorted(WEIGHTS_FILES)}, got {weights_format!r}")
    output = Path(output_dir)
    communicator = communicator if communicator is not None else Communicator()
    reporter = _Reporter(console, progress, quiet=not communicator.is_main)
    run = _build_run(_prepare_config(config, output, seed, resume, force, overrides or {}), output, resume, communicator)
    run.weights_format = weights_format
    _restore_or_clear(run, resume, force, reporter)
    communicator.broadcast_params(run.model)
    _write_run_files(run, code, resume)
    if communicator.world_size > 1:
        reporter.say(
            f"Data-parallel on {communicator.world_size} processes ({communicator.backend}): each global batch "
            f"of {run.settings['batch_size']} examples is split across them"
        )
    _main_rank_callbacks(run, "on_train_begin", TrainingContext(output, run.model, run.vocab, run.config))
    try:
        _run_epochs(run, reporter, on_epoch_end)
    except KeyboardInterrupt:
        reporter.stop()
        ranks = f" --nproc {communicator.world_size}" if communicator.world_size > 1 else ""
        reporter.say(f"Interrupted. Continue with: composa train --output {output} --resume{ranks}")
        raise
    return _finish(run, reporter, plot)


def evaluate(
    model: Model,
    X: Any,
    Y: Any,
    *,
    batch_size: int = 1024,
    metrics: Optional[Dict[str, Any]] = None,
    labels: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    """Accuracy, mean cross-entropy and each of `metrics` of `model`'s class probabilities on `X` with labels `Y`.

    `X` is a 2d array of rows or a list of id arrays (text); `Y` holds one label id per
    example, or, for tagging, one array of tag ids per example (scored per token).
    `labels` names the classes for the metrics (default: "0", "1", ...).
    """
    if len(X) != len(Y):
        raise ShapeMismatchError(f"evaluate: {len(X)} rows but {len(Y)} labels")
    gold = flatten_labels(Y)
    probs = predict_numpy(model, X, batch_size) if len(gold) else numpy.zeros((0, len(labels or ())), "float32")
    if len(gold) and (probs.ndim != 2 or gold.max() >= probs.shape[1] or len(probs) != len(gold)):
        raise ShapeMismatchError(
            f"evaluate: the model outputs shape {probs.shape}, which does not fit {len(gold)} labels up to {int(gold.max())}"
        )
    scores = probs[numpy.arange(len(gold)), gold]
    result: Dict[str, Any] = {
        "accuracy": float((probs.argmax(axis=1) == gold).mean()) if len(gold) else 0.0,
        "loss": float(-numpy.log(numpy.clip(scores, 1e-12, None)).mean()) if len(gold) else 0.0,
        "examples": int(len(Y)),
    }
    if metrics:
        names = list(labels) if labels is not None else [str(i) for i in range(probs.shape[1])]
        result.update(compute_metrics(metrics, gold, probs, labels=names, lengths=lengths_of(Y)))
    return result


def dry_run(
    config: Optional[Union[Config, str, Path]] = None,
    *,
    overrides: Optional[Dict[str, Any]] = None,
    console: Any = None,
) -> Dict[str, Any]:
    """Build the config's data, vocabulary and model without training; print and return dataset statistics."""
    prepared = apply_overrides(_with_training_defaults(
        config if isinstance(config, Config) else load_train_config(config)), overrides or {})
    run = _build_run(prepared, Path("."), resume=False)
    stats = dataset_statistics(run)
    _print_statistics(console if console is not None else Console(), stats)
    return stats


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


def dataset_statistics(run: "_Run") -> Dict[str, Any]:
    """What ``--dry-run`` prints: per split the examples, lengths and labels; the vocabulary sizes and dev OOV rate."""
    stats: Dict[str, Any] = {"task": run.task, "labels": run.labels, "parameters": _parameter_count(run.model)}
    for split, X, Y in (("train", run.train_X, run.train_Y), ("dev", run.dev_X, run.dev_Y)):
        counts = numpy.bincount(flatten_labels(Y), minlength=run.n_classes).tolist() if len(Y) else [0] * run.n_classes
        entry: Dict[str, Any] = {"examples": len(X), "label_counts": dict(zip(run.labels, counts))}
        if isinstance(X, list):
            lengths = numpy.asarray([len(ids) for ids in X]) if X else numpy.zeros((1,), "int64")
            entry.update(tokens=int(lengths.sum()), mean_length=float(lengths.mean()), max_length=int(lengths.max()),
                         empty=int((lengths == 0).sum()))
        else:
            entry["features"] = int(X.shape[1])
        stats[split] = entry
    if run.vocab is not None:
        stats["vocab"] = {name: run.vocab.size(name) for name in run.vocab.namespaces}
        dev_ids = numpy.concatenate(run.dev_X) if run.dev_X else numpy.zeros((0,), "int32")
        stats["dev_oov_rate"] = float((dev_ids == run.vocab.oov_id("tokens")).mean()) if len(dev_ids) else 0.0
    stats["dev_only_labels"] = [label for label in run.labels
                                if stats["dev"]["label_counts"][label] and not stats["train"]["label_counts"][label]]
    return stats


def _parameter_count(model: Model) -> int:
    return int(sum(node.get_param(name).size for node in model.walk() for name in node.param_names if node.has_param(name)))


def _print_statistics(console: Any, stats: Dict[str, Any]) -> None:
    table = Table(title=f"Dry run: {stats['task']} data, nothing trained")
    table.add_column("")
    for split in ("train", "dev"):
        table.add_column(split, justify="right")
    keys = [key for key in ("examples", "features", "tokens", "mean_length", "max_length", "empty") if key in stats["train"]]
    for key in keys:
        table.add_row(key.replace("_", " "), *(_cell(stats[split][key]) for split in ("train", "dev")))
    for label in stats["labels"]:
        table.add_row(f"label {escape(label)}", *(str(stats[split]["label_counts"][label]) for split in ("train", "dev")))
    console.print(table)
    if "vocab" in stats:
        sizes = ", ".join(f"{name} {size}" for name, size in stats["vocab"].items())
        console.print(f"Vocabulary: {sizes}; {stats['dev_oov_rate']:.1%} of dev tokens are out of the vocabulary")
    if stats["dev_only_labels"]:
        console.print(f"Labels in dev but never in train (the model cannot learn them): {stats['dev_only_labels']}")
    console.print(f"The model builds and initialises: {stats['parameters']:,} parameters")


def _cell(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


# Preparation -------------------------------------------------------------------------


def _prepare_config(
    config: Optional[Union[Config, str, Path]],
    output: Path,
    seed: Optional[int],
    resume: bool,
    force: bool,
    overrides: Dict[str, Any],
) -> Config:
    has_run = any((output / name).exists() for name in (STATE_FILE, MODEL_FILE, SAFETENSORS_FILE))
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
    if not isinstance(settings["score"], str) or not settings["score"]:
        raise ConfigurationError(f"[training] score: expected the name of a metric, e.g. 'dev_accuracy', got {settings['score']!r}")
    for key, value in settings.items():
        if key in TEXT_SETTINGS:
            continue
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
    train_X: Any  # a 2d array of feature rows, or a list of token-id arrays (text)
    train_Y: Any  # class ids, or a list of tag-id arrays (tagging)
    dev_X: Any
    dev_Y: Any
    n_classes: int
    labels: List[str] = dataclasses.field(default_factory=list)
    task: str = "rows"
    vocab: Optional[Vocabulary] = None
    metrics: Dict[str, Any] = dataclasses.field(default_factory=dict)
    callbacks: Dict[str, Any] = dataclasses.field(default_factory=dict)
    code: List[Dict[str, str]] = dataclasses.field(default_factory=list)
    columns: List[str] = dataclasses.field(default_factory=list)  # the dev metrics shown in the epoch table
    communicator: Communicator = dataclasses.field(default_factory=Communicator)
    history: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    best: Dict[str, Any] = dataclasses.field(default_factory=lambda: {"dev_accuracy": -1.0, "epoch": 0, "value": None})
    start_epoch: int = 1
    weights_format: str = "msgpack"


# Sections built after [data] and its vocabulary, in this order.
BUILT_SECTIONS = ("model", "optimizer", "loss", "metrics", "callbacks")


def _build_run(
    config: Config, output: Path, resume: bool = False, communicator: Optional[Communicator] = None
) -> _Run:
    """Build the config's data (and vocabulary), model, optimizer, loss, metrics and callbacks; initialise the model.

    With several ranks, checks that every rank built the same (config, param shapes, data).
    """
    communicator = communicator if communicator is not None else Communicator()
    interpolated = config.interpolate()
    settings = _training_settings(interpolated)
    saved_vocab = output / VOCAB_FILE if resume and (output / VOCAB_FILE).is_file() else None
    resolved = _resolve_sections(interpolated, settings["seed"], lambda data: _vocabulary_for(data, interpolated, saved_vocab))
    run = _Run(
        output=output, config=config, settings=settings, model=resolved["model"], optimizer=resolved["optimizer"],
        loss_fn=resolved.get("loss"), vocab=resolved["vocab"], metrics=dict(resolved.get("metrics") or {}),
        callbacks=dict(resolved.get("callbacks") or {}), communicator=communicator, **_prepare_data(resolved["data"], resolved["vocab"]),
    )
    seed_random_generators(settings["seed"])
    sample = numpy.arange(min(settings["init_sample_size"], len(run.train_X)))
    run.model.initialize(X=to_device(run.model, take(run.train_X, sample)), Y=_init_truths(run, take(run.train_Y, sample)))
    _check_score(run)
    communicator.check_same(run.model, config=config, data=_data_arrays(run))
    if communicator.rank:
        # Dropout masks of different ranks must not repeat each other (rank 0 draws as one process would).
        seed_random_generators(settings["seed"] + 7919 * communicator.rank)
    return run


def _data_arrays(run: _Run) -> List[numpy.ndarray]:
    """The run's splits as flat arrays (text: the examples' ids end to end), for comparing ranks' data."""
    splits = (run.train_X, run.train_Y, run.dev_X, run.dev_Y)
    return [numpy.concatenate(split) if isinstance(split, list) and split else numpy.asarray(split) for split in splits]


def _resolve_sections(interpolated: Config, seed: int, vocabulary_for: Callable[[Any], Optional[Vocabulary]]) -> Dict[str, Any]:
    """The built [data] section, its vocabulary, then the sections that may read it, with the RNGs seeded first."""
    torch_was_loaded = "torch" in sys.modules
    for section in ("data", "model", "optimizer"):
        if section not in interpolated:
            raise ConfigurationError(f"the config has no [{section}] section; see docs/config.md")
    sections = {key: interpolated[key] for key in BUILT_SECTIONS if key in interpolated}
    check_config({"data": interpolated["data"], **sections})  # every error before anything is built
    seed_random_generators(seed)
    data = registry.resolve({"data": interpolated["data"]})["data"]
    vocab = vocabulary_for(data)
    with use_vocabulary(vocab):
        seed_random_generators(seed)
        resolved = registry.resolve(sections)
        if not torch_was_loaded and "torch" in sys.modules:
            # The config built a PyTorch model, whose weights torch drew before it was seeded: rebuild it seeded.
            seed_random_generators(seed)
            resolved["model"] = registry.resolve({"model": sections["model"]})["model"]
    return {**resolved, "data": data, "vocab": vocab}


def _vocabulary_for(data: Any, config: Config, saved: Optional[Path]) -> Optional[Vocabulary]:
    """Text data's vocabulary: the run's saved one when resuming, else built from the data by [vocab]."""
    if not isinstance(data, TextDataset):
        if "vocab" in config:
            raise ConfigurationError("[vocab] builds a vocabulary of text data, but [data] builds feature rows")
        return None
    if saved is not None:
        return Vocabulary.from_disk(saved)
    return build_vocabulary(data, dict(config.get("vocab", {})))


def _prepare_data(data: Any, vocab: Optional[Vocabulary]) -> Dict[str, Any]:
    """The _Run fields of the data: ids (text) or checked rows, the class count and names, the task."""
    if not isinstance(data, TextDataset) or vocab is None:
        (train_X, train_Y), (dev_X, dev_Y) = check_data(data)
        n_classes = int(max(train_Y.max(initial=0), dev_Y.max(initial=0))) + 1
        labels = [str(i) for i in range(n_classes)]
        return dict(train_X=train_X, train_Y=train_Y, dev_X=dev_X, dev_Y=dev_Y, n_classes=n_classes, labels=labels)
    if not data.train:
        raise ConfigurationError(f"[data] train: no training examples in {data.sources[0]}")
    train_ids, train_targets = featurize(data.train, vocab, data.task, where=f"[data] train ({data.sources[0]})")
    dev_ids, dev_targets = featurize(data.dev, vocab, data.task, where=f"[data] dev ({data.sources[1]})")
    labels = vocab.strings("labels")
    return dict(
        train_X=train_ids, train_Y=train_targets, dev_X=dev_ids, dev_Y=dev_targets, n_classes=len(labels), labels=labels,
        task=data.task,
    )


def _init_truths(run: _Run, labels: Any) -> Any:
    """One-hot sample labels for initialize: one table, or one per example for tagging."""
    if isinstance(labels, list):
        return [_one_hot(run.model, item, run.n_classes) for item in labels]
    return _one_hot(run.model, labels, run.n_classes)


def _check_score(run: _Run) -> None:
    """Fail before training when [training] score names no metric of the epoch rows."""
    sample = numpy.arange(min(8, len(run.dev_X)))
    row = _dev_scores(run, take(run.dev_X, sample), take(run.dev_Y, sample))
    row["train_accuracy"] = 0.0
    _score_value(run, row)
    run.columns = [
        key for key, value in row.items()
        if isinstance(value, float) and key not in ("dev_accuracy", "train_accuracy")
        and (key == run.settings["score"] or key.endswith(("_f1", "accuracy")))
    ]


def _score_value(run: _Run, row: Dict[str, Any]) -> float:
    name = run.settings["score"]
    if not isinstance(row.get(name), float):
        scalars = sorted(key for key, value in row.items() if isinstance(value, float))
        raise ConfigurationError(
            f"[training] score = {name!r} is not a metric of this run; it has {scalars} "
            "(add metrics in [metrics], e.g. @metrics = \"f1.v1\" gives dev_macro_f1)"
        )
    return row[name]


def _restore_or_clear(run: _Run, resume: bool, force: bool, reporter: "_Reporter") -> None:
    """Continue from the output's checkpoint when resuming; with `force`, delete the replaced run's files."""
    output, communicator = run.output, run.communicator
    # Rank 0 reads the checkpoint and sends it, so the other ranks need not see its disk.
    has_state = communicator.is_main and resume and (output / STATE_FILE).is_file()
    state = read_bytes(output / STATE_FILE, what="training state") if has_state else b""
    if communicator.world_size > 1 and resume:
        state = communicator.broadcast_bytes(state if communicator.is_main else None)
    if state:
        run.start_epoch, run.history, run.best = _restore_checkpoint(
            state, output / STATE_FILE, run.model, run.optimizer, communicator
        )
        reporter.say(f"Resuming from the checkpoint after epoch {run.start_epoch - 1} in {output}")
    elif resume:
        reporter.say(f"No checkpoint in {output} yet: starting from epoch 1")
    elif force and communicator.is_main:
        # A new run must never be resumed from, or mixed with, the files of the one it replaces.
        for name in (STATE_FILE, MODEL_FILE, SAFETENSORS_FILE, METRICS_FILE, META_FILE, PLOT_FILE, VOCAB_FILE):
            (output / name).unlink(missing_ok=True)
        shutil.rmtree(output / CODE_DIR, ignore_errors=True)


# The loop -----------------------------------------------------------------------------


def _epoch_order(seed: int, epoch: int, n_rows: int) -> numpy.ndarray:
    # One generator per (seed, epoch): the shuffle needs no state to survive a resume.
    return numpy.random.default_rng([seed, epoch]).permutation(n_rows)


def _run_epochs(run: _Run, reporter: "_Reporter", on_epoch_end: Optional[Callable[[Dict[str, Any]], None]]) -> None:
    """Train epoch after epoch up to max_epochs, stopping early once patience runs out."""
    last_epoch = run.settings["max_epochs"]
    if run.history and (_patience_spent(run, run.start_epoch - 1) or run.history[-1].get("stopped_by")):
        reporter.say("The run had already stopped early")
        last_epoch = run.start_epoch - 1
    reporter.start(last_epoch, run.start_epoch, len(run.train_X), run.columns, run.history)
    for epoch in range(run.start_epoch, last_epoch + 1):
        metrics = _run_epoch(run, epoch, reporter)
        if on_epoch_end is not None:
            on_epoch_end(metrics)
        if _callbacks_stop(run, metrics, reporter):
            break
        if _patience_spent(run, epoch):
            reporter.say(f"No improvement of {run.settings['score']} for {run.settings['patience']} epochs: stopping early")
            break


def _callbacks_stop(run: _Run, metrics: Dict[str, Any], reporter: "_Reporter") -> bool:
    """Run the epoch-end callbacks; when one asks to stop, record it in the history (so a resume stops too)."""
    stoppers = [name for name, callback in run.callbacks.items()
                if run_callbacks({name: callback}, "on_epoch_end", metrics, run.history)]
    if not stoppers:
        return False
    metrics["stopped_by"] = stoppers[0]
    _write_epoch_files(run, {**metrics, "best": False})
    reporter.say(f"[callbacks.{stoppers[0]}] stopped training after epoch {metrics['epoch']}")
    return True


def _main_rank_callbacks(run: _Run, hook: str, *args: Any) -> None:
    """Run a callback hook on rank 0 only (it sees the files rank 0 writes); on_epoch_end runs on every rank."""
    if run.communicator.is_main:
        run_callbacks(run.callbacks, hook, *args)


def _patience_spent(run: _Run, epoch: int) -> bool:
    """True when `patience` (0: unlimited) epochs up to `epoch` came after the best one."""
    # Counted from the best epoch, so the count carries on across a resume as without one.
    patience = run.settings["patience"]
    return bool(patience) and epoch - run.best["epoch"] >= patience


def _run_epoch(run: _Run, epoch: int, reporter: "_Reporter") -> Dict[str, Any]:
    """Train one epoch, evaluate it and write its files; returns the epoch's row of metrics."""
    started = time.perf_counter()
    loss = _train_epoch(run, epoch, _epoch_order(run.settings["seed"], epoch, len(run.train_X)), reporter)
    seconds = time.perf_counter() - started
    scores = _evaluate_epoch(run)
    value = _score_value(run, scores)
    minimise = lower_is_better(run.settings["score"])
    improved = run.best["value"] is None or (value < run.best["value"] if minimise else value > run.best["value"])
    if improved:
        run.best = {"dev_accuracy": scores["dev_accuracy"], "epoch": epoch, "value": value}
    if hasattr(run.optimizer, "last_score"):
        run.optimizer.last_score = -value if minimise else value  # plateau schedules react to the dev score
    metrics = {
        "epoch": epoch,
        "loss": loss,
        **scores,
        "examples_per_second": len(run.train_X) / max(seconds, 1e-9),
        "best": improved,
    }
    run.history.append(metrics)
    _write_epoch_files(run, metrics)
    if improved:
        _main_rank_callbacks(run, "on_best_model", metrics, run.output / WEIGHTS_FILES[run.weights_format])
    reporter.epoch(metrics)
    return metrics


def _train_epoch(run: _Run, epoch: int, order: numpy.ndarray, reporter: "_Reporter") -> float:
    """One pass over the training rows in `order`, batch by batch; returns the mean cross-entropy per label."""
    batch_size = run.settings["batch_size"]
    steps_before = (epoch - 1) * -(-len(order) // batch_size)
    total_loss, total_labels = 0.0, 0
    for number, start in enumerate(range(0, len(order), batch_size), start=1):
        index = order[start : start + batch_size]
        loss, n_labels = _train_step(run, index)
        total_loss += loss
        total_labels += n_labels
        reporter.advance(len(index))
        if run.callbacks:
            step = {"epoch": epoch, "step": steps_before + number, "examples": len(index), "loss": loss / max(n_labels, 1)}
            _main_rank_callbacks(run, "on_step", step)
    if run.communicator.world_size > 1:
        summed = run.communicator.sum([total_loss, total_labels])
        total_loss, total_labels = float(summed[0]), int(summed[1])
    return total_loss / max(total_labels, 1)


def _train_step(run: _Run, index: numpy.ndarray) -> Tuple[float, int]:
    """Backprop on this rank's share of the global batch `index`, average gradients, update; returns (summed cross-entropy, labels)."""
    rows = run.communicator.shard(index)
    loss, n_labels = _backprop_rows(run, rows) if len(rows) else (0.0, 0)
    if run.communicator.world_size > 1:
        # every rank holds all the data, so each knows the global batch's label count without asking
        share = n_labels / max(len(flatten_labels(take(run.train_Y, index))), 1)
        run.communicator.all_reduce_gradients(run.model, share=share)
    run.model.finish_update(run.optimizer)
    if hasattr(run.optimizer, "step_schedules"):
        run.optimizer.step_schedules()
    return loss, n_labels


def _backprop_rows(run: _Run, index: numpy.ndarray) -> Tuple[float, int]:
    """Forward, loss and backprop on the training examples `index`; returns (summed cross-entropy, labels)."""
    model = run.model
    X = to_device(model, take(run.train_X, index))
    truths = _one_hot(model, flatten_labels(take(run.train_Y, index)), run.n_classes)
    guesses, backprop = model.begin_update(X, input_gradient=False)
    flat = flatten_outputs(model, guesses)  # tagging: every token's row, sentence after sentence
    if run.loss_fn is not None:
        d_flat, _ = run.loss_fn(flat, truths)
    else:
        d_flat = (flat - truths) / len(truths)
    loss = _cross_entropy_sum(model, flat, truths)
    backprop(split_rows(model, d_flat, guesses) if isinstance(guesses, list) else d_flat)
    return loss, len(truths)


def _evaluate_epoch(run: _Run) -> Dict[str, Any]:
    """Train accuracy and the dev scores, with the optimizer's parameter averages when it keeps them.

    With several ranks, each scores its slice of the training examples (the correct counts
    add up to one process's); the dev scores, which the metrics need whole, every rank
    computes on all of dev, so every rank takes the same decisions (best epoch, stopping).
    """
    communicator = run.communicator
    with _averaged(run.model, run.optimizer):
        if communicator.world_size == 1:
            train_accuracy = evaluate(run.model, run.train_X, run.train_Y)["accuracy"]
        else:
            correct, total = communicator.sum(_count_correct(run.model, communicator.shard(run.train_X), communicator.shard(run.train_Y)))
            train_accuracy = float(correct) / max(float(total), 1.0)
        return {"train_accuracy": train_accuracy, **_dev_scores(run, run.dev_X, run.dev_Y)}


def _count_correct(model: Model, X: Any, Y: Any) -> Tuple[int, int]:
    """How many labels of the examples `X` get the highest score from the model, and how many there are."""
    gold = flatten_labels(Y)
    if len(gold) == 0:
        return 0, 0
    return int((predict_numpy(model, X).argmax(axis=1) == gold).sum()), len(gold)


def _dev_scores(run: _Run, X: Any, Y: Any) -> Dict[str, Any]:
    """dev_accuracy, dev_loss and a dev_<name> entry per result of the config's [metrics]."""
    result = evaluate(run.model, X, Y, metrics=run.metrics, labels=run.labels)
    scores = {"dev_accuracy": result.pop("accuracy"), "dev_loss": result.pop("loss")}
    result.pop("examples")
    scores.update({f"dev_{name}": value for name, value in result.items() if f"dev_{name}" not in scores})
    return scores


def _one_hot(model: Model, labels: numpy.ndarray, n_classes: int) -> Any:
    table = numpy.zeros((len(labels), n_classes), dtype="float32")
    table[numpy.arange(len(labels)), labels] = 1.0
    return model.ops.asarray(table)


def _cross_entropy_sum(model: Model, guesses: Any, truths: Any) -> float:
    gold = (guesses * truths).sum(axis=1)
    return float(-model.ops.xp.log(model.ops.xp.clip(gold, 1e-12, None)).sum())


def predict_numpy(model: Model, X: Any, batch_size: int = 1024) -> numpy.ndarray:
    """`model`'s outputs for the rows (or list of id arrays) `X`, `batch_size` at a time, as one numpy array.

    A model that outputs one array per example (a tagger) gives their rows stacked.
    """
    outputs = []
    for start in range(0, len(X), batch_size):
        predicted = model.predict(to_device(model, X[start : start + batch_size]))
        outputs.append(model.ops.to_numpy(flatten_outputs(model, predicted)))
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
    path: Path,
    model: Model,
    optimizer: Any,
    epoch: int,
    history: List[Dict[str, Any]],
    best: Dict[str, Any],
    rng_ranks: Optional[List[Dict[str, Any]]] = None,
) -> None:
    state: Dict[str, Any] = {
        "version": STATE_VERSION,
        "epoch": epoch,
        "model": model.to_bytes(),
        "optimizer": optimizer_state(optimizer, model),
        "history": json.dumps(history),
        "best": json.dumps(best),
        "rng": _rng_state(),
    }
    if rng_ranks is not None:
        state["rng_ranks"] = rng_ranks  # each rank's generators, so a distributed run resumes exactly
    write_bytes_atomic(path, msgpack_dumps(state))


def _restore_checkpoint(
    data: bytes, path: Path, model: Model, optimizer: Any, communicator: Communicator
) -> Tuple[int, List[Dict[str, Any]], Dict[str, Any]]:
    try:
        state = msgpack_loads(data)
    except SerializationError as error:
        raise ArchiveError(f"{path} is not a composa training state: {error}") from error
    epoch, history, best, rng = _checked_checkpoint(path, state, communicator)
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
    _set_rng_state(rng)
    return epoch + 1, history, best


_CHECKPOINT_FIELDS = ("version", "epoch", "model", "optimizer", "history", "best", "rng")


def _checked_checkpoint(
    path: Path, state: Any, communicator: Communicator
) -> Tuple[int, List[Dict[str, Any]], Dict[str, Any], Dict[str, Any]]:
    """The epoch, history, best and generator entries of a checkpoint, every field but the model's checked."""
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
        ranks = state.get("rng_ranks") or []
        # each rank's own generators when the run resumes with as many ranks, else rank 0's
        rng = ranks[communicator.rank] if len(ranks) == communicator.world_size else state["rng"]
        _check_rng_state(rng)
        if not isinstance(history, list) or not isinstance(best, dict):
            raise ValueError("bad history or best entry")
        best.setdefault("value", best["dev_accuracy"] if best.get("epoch") else None)  # written before [training] score
    except (TypeError, ValueError, LookupError, OverflowError) as error:  # what json and numpy raise
        raise ArchiveError(f"{path}: malformed training state: {error}") from error
    return epoch, history, best, rng


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


def _write_run_files(run: _Run, code: Sequence[Union[str, Path]] = (), resume: bool = False) -> None:
    """Create the output directory and write the run's config, vocabulary, code and (so far) meta (rank 0 only)."""
    if not run.communicator.is_main:
        return
    run.output.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(run.output / CONFIG_FILE, run.config.to_str().encode("utf8"))
    if run.vocab is not None:
        run.vocab.to_disk(run.output / VOCAB_FILE)
    if code:
        run.code = archive_code(run.output, code)
    elif resume:
        run.code = list(read_meta(run.output).get("code", []))  # a resume keeps the code the run was started with
    _write_meta(run)


def _write_epoch_files(run: _Run, metrics: Dict[str, Any]) -> None:
    """Write what an epoch leaves: the model when it is the best yet (averaged), the checkpoint, metrics and meta.

    With several ranks, first checks that their weights are still identical and gathers
    every rank's RNG state into the checkpoint; then rank 0 alone writes.
    """
    communicator, rng_ranks = run.communicator, None
    if communicator.world_size > 1:
        communicator.check_in_sync(run.model)
        rng_ranks = [msgpack_loads(data) for data in communicator.all_gather_bytes(msgpack_dumps(_rng_state()))]
    if not communicator.is_main:
        return
    if metrics["best"]:
        with _averaged(run.model, run.optimizer):
            save_weights(run.model, run.output, run.weights_format)
    _write_checkpoint(
        run.output / STATE_FILE, run.model, run.optimizer, metrics["epoch"], run.history, run.best, rng_ranks
    )
    _write_metrics(run.output, run.history)
    _write_meta(run)


def _finish(run: _Run, reporter: "_Reporter", plot: bool) -> Dict[str, Any]:
    """Stop the progress bar, plot the learning curves, say where the best model is; returns the summary."""
    reporter.stop()
    if plot and run.communicator.is_main:
        reporter.say(plot_learning_curves(run.history, run.output / PLOT_FILE))
    score = run.settings["score"]
    value = run.best["value"] if run.best["value"] is not None else float("nan")
    reporter.say(
        f"Best {score.replace('_', ' ')} {value:.4f} at epoch {run.best['epoch']}; "
        f"model saved in {run.output / WEIGHTS_FILES[run.weights_format]}"
    )
    metrics = run.history[-1] if run.history else {}
    summary = {**metrics, "best_dev_accuracy": run.best["dev_accuracy"], "best_epoch": run.best["epoch"], "best_score": value}
    _main_rank_callbacks(run, "on_train_end", summary)
    return summary


def _write_metrics(output: Path, history: List[Dict[str, Any]]) -> None:
    text = "".join(json.dumps(row) + "\n" for row in history)
    write_bytes_atomic(output / METRICS_FILE, text.encode("utf8"))


def _write_meta(run: _Run) -> None:
    meta: Dict[str, Any] = {
        "composa_version": __version__,
        "task": run.task,
        "n_features": None if isinstance(run.train_X, list) else int(run.train_X.shape[1]),
        "n_classes": run.n_classes,
        "labels": run.labels,
        "score": run.settings["score"],
        "best_score": run.best["value"],
        "best_dev_accuracy": run.best["dev_accuracy"],
        "best_epoch": run.best["epoch"],
        "vocab": {name: run.vocab.size(name) for name in run.vocab.namespaces} if run.vocab is not None else None,
        "code": run.code,
    }
    write_bytes_atomic(run.output / META_FILE, (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode("utf8"))


class _Reporter:
    """Progress bar and per-epoch table with rich (plain lines when disabled)."""

    def __init__(self, console: Any, progress: bool, *, quiet: bool = False) -> None:
        # The other ranks of a distributed run stay quiet: rank 0 reports for all of them.
        self.console = Console(quiet=True) if quiet else (console if console is not None else Console())
        self.enabled = progress and not quiet
        self.progress: Any = None
        self.task: Any = None
        self.columns: List[str] = []

    def say(self, message: str) -> None:
        self.console.print(escape(message))  # messages name [sections]: not rich markup

    def start(self, max_epochs: int, start_epoch: int, n_rows: int, columns: List[str], history: List[Dict[str, Any]]) -> None:
        self.columns = list(columns)
        extra = [name[len("dev_"):].replace("_", " ")[:10] for name in self.columns]
        header = ("epoch", "loss", "train acc", "dev acc", *extra, "examples/s", "")
        self.console.print(" ".join(f"{name:>10}" for name in header))
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
        extra = "".join(f"{metrics.get(name, float('nan')):>10.4f} " for name in self.columns)
        self.console.print(
            f"{metrics['epoch']:>10} {metrics['loss']:>10.4f} {metrics['train_accuracy']:>10.4f} "
            f"{metrics['dev_accuracy']:>10.4f} {extra}{metrics['examples_per_second']:>10.0f} {mark:>10}"
        )

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
