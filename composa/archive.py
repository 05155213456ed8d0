"""Training archives: a directory that holds everything a trained model needs, code included.

Layout written by ``composa train --output DIR``::

    DIR/config.cfg            the full config (overrides and seed applied)
    DIR/model.bin             the best model's bytes (Model.to_disk: msgpack, atomic write)
    DIR/model.safetensors     instead of model.bin with ``weights_format="safetensors"``
                              (``composa train --safetensors``): the params only, Model.to_safetensors
    DIR/vocab.json            the vocabulary, for text data (JSON)
    DIR/code/NAME.py          the files given with --code, their sha256 listed in meta.json
    DIR/meta.json             composa version, task, labels, vocabulary sizes, best score, code hashes
    DIR/training_state.bin    last checkpoint for --resume (model, optimizer, epoch, RNG states)
    DIR/metrics.jsonl         one JSON object per epoch
    DIR/learning_curves.png   loss and accuracy per epoch

:func:`load` reads ``config.cfg``, ``vocab.json`` and the weights file (``model.bin`` or
``model.safetensors``): it builds the
``[model]`` section through the registry (with the vocabulary current, for ``@vocab``
sizes) and loads the weights into it. Nothing is unpickled, and archived code is
imported only when asked (``trust_code=True``): without it, a config naming layers
that are not registered is an error listing them and the code that would register them.
"""
import dataclasses
import difflib
import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .config import Config, registry, section_name
from .errors import ArchiveError, ConfigurationError, SerializationError
from .model import Model
from .text import Vocabulary, use_vocabulary

__all__ = [
    "ArchiveError",
    "Archive",
    "load",
    "load_archive",
    "load_config",
    "load_vocabulary",
    "build_model",
    "save_weights",
    "archive_code",
    "import_code",
    "missing_registrations",
    "CONFIG_FILE",
    "MODEL_FILE",
    "SAFETENSORS_FILE",
    "WEIGHTS_FILES",
    "META_FILE",
    "VOCAB_FILE",
    "CODE_DIR",
]

CONFIG_FILE = "config.cfg"
MODEL_FILE = "model.bin"
SAFETENSORS_FILE = "model.safetensors"
# The file each weights format is kept in; a directory holds exactly one of them.
WEIGHTS_FILES = {"msgpack": MODEL_FILE, "safetensors": SAFETENSORS_FILE}
META_FILE = "meta.json"
STATE_FILE = "training_state.bin"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "learning_curves.png"
VOCAB_FILE = "vocab.json"
CODE_DIR = "code"


@dataclasses.dataclass
class Archive:
    """A loaded training directory: the model, its vocabulary (None for feature rows), config and meta."""

    directory: Path
    model: Model
    vocab: Optional[Vocabulary]
    config: Config
    meta: Dict[str, Any]


def load(path: Union[str, Path], *, trust_code: bool = False) -> Model:
    """Rebuild the trained model in directory `path` (from ``composa train``): config, vocabulary, weights.

    With `trust_code`, the Python files the run was trained with (``--code``, copied into
    the directory) are imported first: only pass it for a directory you trust.
    """
    return load_archive(path, trust_code=trust_code).model


def load_archive(path: Union[str, Path], *, trust_code: bool = False) -> Archive:
    """Everything in training directory `path`: the model with its weights, the vocabulary, config and meta."""
    directory = _directory(path)
    config = load_config(directory)
    meta = read_meta(directory)
    _ensure_registered(directory, config, meta, trust_code)
    vocab = load_vocabulary(directory)
    with use_vocabulary(vocab):
        model = build_model(config, where=str(directory / CONFIG_FILE))
    _load_weights(directory, model)
    return Archive(directory, model, vocab, config, meta)


def load_vocabulary(path: Union[str, Path]) -> Optional[Vocabulary]:
    """The vocabulary saved in training directory `path`, or None when it trained on feature rows."""
    vocab_path = _directory(path) / VOCAB_FILE
    if not vocab_path.is_file():
        return None
    try:
        return Vocabulary.from_disk(vocab_path)
    except SerializationError as error:
        raise ArchiveError(str(error)) from error


def _load_weights(directory: Path, model: Model) -> None:
    model_path = weights_path(directory)
    try:
        if model_path.name == SAFETENSORS_FILE:
            model.from_safetensors(model_path)
        else:
            model.from_disk(model_path)
    except SerializationError as error:
        raise ArchiveError(
            f"{model_path} does not fit the [model] section of {directory / CONFIG_FILE}: {error}"
        ) from error
    unset = [f"{node.name}.{name}" for node in model.walk() for name in node.param_names if not node.has_param(name)]
    if unset:
        raise ArchiveError(f"{model_path} leaves params unset: {', '.join(unset[:5])}")


# Archived code --------------------------------------------------------------------------


def archive_code(directory: Union[str, Path], paths: Sequence[Union[str, Path]]) -> List[Dict[str, str]]:
    """Copy the Python files `paths` into ``DIR/code/``; returns their ``{"file", "sha256"}`` entries for meta.json."""
    target = Path(directory) / CODE_DIR
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    entries: List[Dict[str, str]] = []
    for path in paths:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"--code {path}: no such file")
        name = f"{CODE_DIR}/{source.name}"
        if any(entry["file"] == name for entry in entries):
            raise ConfigurationError(f"--code: two files are named {source.name}; the archive keeps files by name")
        shutil.copyfile(source, Path(directory) / name)
        entries.append({"file": name, "sha256": _sha256(source)})
    return entries


def import_code(paths: Sequence[Union[str, Path]]) -> None:
    """Import each Python file in `paths` (your own code: it runs), so its registrations take effect."""
    for path in paths:
        _import_file(Path(path), f"--code {path}")


def missing_registrations(config: Config) -> List[Tuple[str, str, str]]:
    """Every ``(section, table, name)`` of a ``@table = "name"`` block in `config` whose name is not registered."""
    missing: List[Tuple[str, str, str]] = []
    _collect_missing(dict(config), [], missing)
    return missing


def _collect_missing(node: Any, path: List[str], missing: List[Tuple[str, str, str]]) -> None:
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if isinstance(key, str) and key.startswith("@") and isinstance(value, str):
            table = key[1:]
            if table in registry.table_names() and not registry.has(table, value):
                missing.append((section_name(path), table, value))
        elif isinstance(value, dict):
            _collect_missing(value, path + [str(key)], missing)


def _ensure_registered(directory: Path, config: Config, meta: Dict[str, Any], trust_code: bool) -> None:
    """Import the archived code when trusted; fail with the names and the code when something is missing."""
    code = list(meta.get("code") or [])
    if trust_code:
        for entry in code:
            _import_archived(directory, entry)
    missing = missing_registrations(_loaded_sections(config))
    if not missing:
        return
    names = "; ".join(f"{section} @{table} = {name!r}{_close_match(table, name)}" for section, table, name in missing)
    if code and not trust_code:
        files = ", ".join(f"{entry['file']} (sha256 {entry['sha256'][:12]}...)" for entry in code)
        raise ArchiveError(
            f"{directory / CONFIG_FILE} names functions that are not registered: {names}. "
            f"The archive carries the code it was trained with: {files}. It is not imported unless you ask: "
            "pass --trust-code (composa.load(..., trust_code=True)) to import it (it runs as Python code), "
            "or import your own copy first (--code FILE)"
        )
    hint = "" if code else "; import the module that registers them first (--code FILE, or import it in Python)"
    raise ArchiveError(f"{directory / CONFIG_FILE} names functions that are not registered: {names}{hint}")


def _loaded_sections(config: Config) -> Config:
    """What loading builds: [model], and the tokenizer and reader a predictor reads input with (not the data)."""
    data = config.get("data", {})
    kept = {key: data[key] for key in ("tokenizer", "reader") if isinstance(data, dict) and key in data}
    return Config({"model": config.get("model", {}), "data": kept})


def _close_match(table: str, name: str) -> str:
    close = difflib.get_close_matches(name, list(getattr(registry, table).get_all()), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _import_archived(directory: Path, entry: Dict[str, str]) -> None:
    path = directory / entry["file"]
    if not path.is_file():
        raise ArchiveError(f"{directory}: meta.json lists {entry['file']}, which is missing")
    digest = _sha256(path)
    if digest != entry["sha256"]:
        raise ArchiveError(
            f"{path} changed after training: its sha256 is {digest[:12]}..., meta.json recorded {entry['sha256'][:12]}...; "
            "not importing it"
        )
    module_name = f"composa_archived_code_{digest[:16]}"
    if module_name not in sys.modules:  # the same file (by hash) is imported once per process
        _import_file(path, str(path), module_name)


def _import_file(location: Path, what: str, module_name: Optional[str] = None) -> None:
    if not location.is_file():
        raise FileNotFoundError(f"{what}: no such file")
    name = module_name or f"composa_user_code_{_sha256(location)[:16]}"
    spec = importlib.util.spec_from_file_location(name, location)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"{what}: not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def weights_path(directory: Path) -> Path:
    """The one weights file of a training directory (model.bin or model.safetensors)."""
    present = [directory / name for name in WEIGHTS_FILES.values() if (directory / name).is_file()]
    if not present:
        raise ArchiveError(
            f"{directory} has no {MODEL_FILE} or {SAFETENSORS_FILE}: was training interrupted before the first epoch ended?"
        )
    if len(present) > 1:
        raise ArchiveError(
            f"{directory} holds both {MODEL_FILE} and {SAFETENSORS_FILE}, so which is the trained model is unclear: "
            f"delete the stale one"
        )
    return present[0]


def save_weights(model: Model, directory: Union[str, Path], weights_format: str = "msgpack") -> Path:
    """Write `model`'s weights into training directory `directory` in `weights_format`; removes the other format's file."""
    if weights_format not in WEIGHTS_FILES:
        raise ArchiveError(f"unknown weights format {weights_format!r}: expected one of {sorted(WEIGHTS_FILES)}")
    path = Path(directory) / WEIGHTS_FILES[weights_format]
    if weights_format == "safetensors":
        model.to_safetensors(path)
    else:
        model.to_disk(path)
    for name in WEIGHTS_FILES.values():
        if name != path.name:
            (Path(directory) / name).unlink(missing_ok=True)
    return path


def load_config(path: Union[str, Path]) -> Config:
    """The config saved in training directory `path`, variables not yet interpolated."""
    directory = _directory(path)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise ArchiveError(f"{directory} has no {CONFIG_FILE}; is it a directory written by `composa train`?")
    try:
        return Config().from_disk(config_path, interpolate=False)
    except Exception as error:
        raise ArchiveError(f"{config_path} is not a valid config: {error}") from error


def build_model(config: Config, *, where: str = "the config") -> Model:
    """Resolve only the ``[model]`` section of `config` (no data is loaded, nothing is trained)."""
    try:
        interpolated = config if getattr(config, "is_interpolated", True) else config.interpolate()
        if "model" not in interpolated:
            raise ArchiveError(f"{where} has no [model] section")
        model = registry.resolve({"model": interpolated["model"]})["model"]
    except ArchiveError:
        raise
    except Exception as error:  # confection, configparser, RecursionError and the layers: all become ArchiveError
        raise ArchiveError(f"the [model] section of {where} could not be built: {error}") from error
    if not isinstance(model, Model):
        raise ArchiveError(f"the [model] section of {where} builds a {type(model).__name__}, not a Model")
    return model


def read_meta(path: Union[str, Path]) -> Dict[str, Any]:
    """The ``meta.json`` of a training directory ({} if there is none)."""
    meta_path = _directory(path) / META_FILE
    if not meta_path.is_file():
        return {}
    try:
        return json.loads(meta_path.read_text())
    except json.JSONDecodeError as error:
        raise ArchiveError(f"{meta_path} is not valid JSON: {error}") from error


def _directory(path: Union[str, Path]) -> Path:
    directory = Path(path)
    if not directory.exists():
        raise ArchiveError(f"training directory {directory} does not exist")
    if not directory.is_dir():
        raise ArchiveError(f"{directory} is a file; expected a directory written by `composa train`")
    return directory
