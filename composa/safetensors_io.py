"""safetensors files of a model's params, keyed by the stable per-node paths (``"1.relu.W"``).

:func:`to_safetensors` writes every param under its key from :mod:`composa.flat_params`
(the same keys as :func:`composa.to_state_dict`), with each node's name and dims in the
file's metadata so a model whose widths are still unset can be loaded into.
:func:`from_safetensors` opens the file through the memory map of ``safetensors.safe_open``
and loads it through the checks of :mod:`composa.model_io` (names, shapes, dtypes; every
missing and unexpected key listed), all or nothing. Nothing in the file is executed, which
is why the Hugging Face ecosystem trusts the format; the file opens with the safetensors
library's own loaders for numpy and torch.
"""
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Union

from . import model_io
from .errors import SerializationError
from .flat_params import load_flat, to_flat
from .serialize import write_bytes_atomic

if TYPE_CHECKING:
    from .model import Model

__all__ = ["to_safetensors", "from_safetensors", "FORMAT_NAME"]

# metadata["format"] of a file composa wrote; its "dims" entry is one JSON object per walk() node.
FORMAT_NAME = "composa"


def require_safetensors(what: str) -> Any:
    """The safetensors package, or an ImportError saying what needed it and how to install it."""
    try:
        import safetensors  # lazy: safetensors is optional
        import safetensors.numpy  # lazy: safetensors is optional
    except ImportError as error:
        raise ImportError(
            f"{what} needs the safetensors package, which is not installed: pip install 'composa[safetensors]'"
        ) from error
    return safetensors


def to_safetensors(model: "Model", path: Union[str, Path]) -> None:
    """Write every param of `model` to a safetensors file at `path` (atomically), keyed e.g. ``"1.relu.W"``."""
    safetensors = require_safetensors("to_safetensors")
    with_shims = [f"{index} ({node.name!r})" for index, node in enumerate(model.walk()) if node.shims]
    if with_shims:
        raise SerializationError(
            f"nodes {', '.join(with_shims)} keep their weights in a shim (e.g. a PyTorch module), "
            f"which a safetensors file of params cannot hold: save the model with to_disk"
        )
    metadata = {"format": FORMAT_NAME, "nodes": json.dumps(node_descriptions(model))}
    write_bytes_atomic(path, safetensors.numpy.save(to_flat(model), metadata=metadata))


def node_descriptions(model: "Model") -> List[Dict[str, Any]]:
    """Each walk() node's name and dims, as the file's metadata keeps them."""
    return [{"name": node.name, "dims": dict(model_io.live_state(node).dims)} for node in model.walk()]


def from_safetensors(model: "Model", path: Union[str, Path]) -> None:
    """Load a safetensors file of `model`'s params (memory-mapped), checked whole first; on any problem raise and change nothing."""
    safetensors = require_safetensors("from_safetensors")
    source = f"safetensors file {path}"
    if not Path(path).is_file():
        raise FileNotFoundError(f"cannot load the {source}: it does not exist or is not a file")
    try:
        with safetensors.safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}
    except (OSError, ValueError, safetensors.SafetensorError) as error:
        raise SerializationError(f"the {source} cannot be read: {error}") from error
    load_flat(model, arrays, source=f"the {source}", dims=saved_dims(source, metadata))


def saved_dims(source: str, metadata: Dict[str, str]) -> Union[List[Dict[str, Any]], None]:
    """The per-node dims kept in a composa file's metadata; None for a file another tool wrote."""
    if metadata.get("format") != FORMAT_NAME or "nodes" not in metadata:
        return None
    try:
        nodes = json.loads(metadata["nodes"])
    except json.JSONDecodeError as error:
        raise SerializationError(f"the {source} has malformed node metadata: {error}") from error
    if not isinstance(nodes, list) or not all(isinstance(node, dict) for node in nodes):
        raise SerializationError(f"the {source} has malformed node metadata: expected a list of objects")
    return [node.get("dims", {}) for node in nodes]
