"""Training archives: a directory that rebuilds a trained model without the code that made it.

Layout written by ``composa train --output DIR``::

    DIR/config.cfg            the full config (overrides and seed applied)
    DIR/model.bin             the best model's bytes (Model.to_disk: msgpack, atomic write)
    DIR/meta.json             composa version, input width, class count, best dev accuracy
    DIR/training_state.bin    last checkpoint for --resume (model, optimizer, epoch, RNG states)
    DIR/metrics.jsonl         one JSON object per epoch
    DIR/learning_curves.png   loss and accuracy per epoch

:func:`load` reads only ``config.cfg`` and ``model.bin``: it builds the ``[model]``
section through the registry and loads the weights into it. Nothing is unpickled.
"""
import json
from pathlib import Path
from typing import Any, Dict, Union

from .config import Config, registry
from .errors import ArchiveError, SerializationError
from .model import Model

__all__ = ["ArchiveError", "load", "load_config", "build_model", "CONFIG_FILE", "MODEL_FILE", "META_FILE"]

CONFIG_FILE = "config.cfg"
MODEL_FILE = "model.bin"
META_FILE = "meta.json"
STATE_FILE = "training_state.bin"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "learning_curves.png"



def load(path: Union[str, Path]) -> Model:
    """Rebuild the trained model in directory `path` (from ``composa train``): config + weights."""
    directory = _directory(path)
    config = load_config(directory)
    model = build_model(config, where=str(directory / CONFIG_FILE))
    model_path = directory / MODEL_FILE
    if not model_path.is_file():
        raise ArchiveError(f"{directory} has no {MODEL_FILE}: was training interrupted before the first epoch ended?")
    try:
        model.from_disk(model_path)
    except SerializationError as error:
        raise ArchiveError(
            f"{model_path} does not fit the [model] section of {directory / CONFIG_FILE}: {error}"
        ) from error
    unset = [f"{node.name}.{name}" for node in model.walk() for name in node.param_names if not node.has_param(name)]
    if unset:
        raise ArchiveError(f"{model_path} leaves params unset: {', '.join(unset[:5])}")
    return model


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
