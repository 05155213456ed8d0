"""A model's params as one flat ``{key: array}`` mapping, keyed by stable per-node paths.

A key is ``"{index}.{node name}.{param name}"``, e.g. ``"1.relu.W"``: the node's
position in ``model.walk()`` (breadth first, each node once), its name and the
param's name. Two models built by the same code have the same keys, so the
mapping moves weights between them, and between composa and other tools: the
torch state dicts of :mod:`composa.state_dict`, safetensors files and the names
of the weights in an ONNX export all use these keys.

Loading a mapping goes through the checks of :mod:`composa.model_io` (names,
shapes and dtypes per node) and is all or nothing: every missing and unexpected
key is listed in one error and the model is left as it was.
"""
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Tuple

from . import model_io
from .errors import SerializationError

if TYPE_CHECKING:
    from .model import Model

__all__ = ["param_key", "keyed_params", "to_flat", "load_flat"]

# How many keys an error message lists before it says "and N more".
MAX_LISTED = 8


def param_key(index: int, node_name: str, param_name: str) -> str:
    """The stable key of one param: walk() index, node name and param name, e.g. ``"1.relu.W"``."""
    return f"{index}.{node_name}.{param_name}"


def keyed_params(model: "Model") -> Iterator[Tuple[str, int, "Model", str]]:
    """(key, walk index, node, param name) for every registered param of the tree, set or not."""
    for index, node in enumerate(model.walk()):
        for name in node.param_names:
            yield param_key(index, node.name, name), index, node, name


def to_flat(model: "Model") -> Dict[str, Any]:
    """Every param as a numpy array under its key; an unset param is an error (initialize first)."""
    unset = [key for key, _, node, name in keyed_params(model) if not node.has_param(name)]
    if unset:
        raise SerializationError(
            f"params {listed(unset)} are not allocated yet: call model.initialize() before saving them"
        )
    return {key: node.ops.to_numpy(node.get_param(name)) for key, _, node, name in keyed_params(model)}


def load_flat(
    model: "Model",
    arrays: Mapping[str, Any],
    *,
    source: str,
    dims: Optional[List[Dict[str, Any]]] = None,
) -> None:
    """Check `arrays` (and per-node `dims`) against `model`, then write them all, or raise and change nothing."""
    nodes = list(model.walk())
    expected = {key: (index, name) for key, index, _, name in keyed_params(model)}
    check_keys(source, expected, arrays)
    if dims is not None and len(dims) != len(nodes):
        raise SerializationError(
            f"{source} describes {len(dims)} nodes, the model has {len(nodes)}: was it saved from another model?"
        )
    per_node: List[Dict[str, Any]] = [{} for _ in nodes]
    for key, (index, name) in expected.items():
        per_node[index][name] = arrays[key]
    plan = [
        plan_node_params(f"{source}: node {i} ({node.name!r})", node, per_node[i], None if dims is None else dims[i])
        for i, node in enumerate(nodes)
    ]
    model_io.apply_plan(nodes, plan)


def check_keys(source: str, expected: Mapping[str, Any], arrays: Mapping[str, Any]) -> None:
    """Raise one error listing every missing and every unexpected key, if there are any."""
    missing = [key for key in expected if key not in arrays]
    unexpected = [key for key in arrays if key not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {listed(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {listed(unexpected)}")
        raise SerializationError(
            f"{source} does not fit the model: {'; '.join(parts)} "
            f"(keys are walk index.node name.param name, e.g. '1.relu.W')"
        )


def plan_node_params(
    where: str, node: "Model", params: Dict[str, Any], dims: Optional[Dict[str, Any]]
) -> model_io.NodePlan:
    """One node's part of the load, checked by model_io's own dims and params steps."""
    state = model_io.live_state(node)
    if dims is not None and not isinstance(dims, dict):
        raise SerializationError(f"{where}: malformed dims entry")
    return model_io.NodePlan(
        dims=model_io.plan_dims(where, dims or {}, state.dims),
        refs={},
        attrs={},
        params=model_io.plan_params(where, params, state.params),
        shims=[],
    )


def listed(keys: List[str]) -> str:
    """Keys for a message: the first few, then how many more."""
    shown = ", ".join(repr(key) for key in keys[:MAX_LISTED])
    more = f" and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else ""
    return f"[{shown}{more}]"
