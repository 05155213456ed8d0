"""PyTorch state dicts: a whole model under its stable keys, and single layers under torch's own names.

:func:`to_state_dict` / :func:`from_state_dict` hold every param of a model as torch
tensors keyed ``"1.relu.W"`` (see :mod:`composa.flat_params`), the same keys as
safetensors files and ONNX weights. :func:`torch_state_dict` /
:func:`load_torch_state_dict` map one layer that torch also has to the state dict of
that torch module, so weights trained in torch initialise a composa layer that then
gives the same outputs (the table of names and layouts is in docs/interop.md):

- Linear, the dense layers, Softmax, Sigmoid <-> ``nn.Linear(nI, nO)``: W = weight, b = bias.
- LayerNorm <-> ``nn.LayerNorm(nI, eps=1e-8)``: G = weight, b = bias.
- Embed <-> ``nn.Embedding(nV, nO)``: E = weight.
- LSTM <-> ``nn.LSTM(nI, nO // dirs, depth, bidirectional=bi)``: the flat LSTM param holds
  weight_ih_l0, bias_ih_l0, weight_hh_l0, bias_hh_l0 (then ``_reverse``, then l1, ...).

Loading is checked whole before anything is written (names, shapes, dtypes, missing
and unexpected keys) through the same steps as ``Model.from_bytes``.
"""
from typing import Any, Dict, Mapping

import numpy

from . import model_io
from .errors import ConfigurationError, SerializationError
from .flat_params import check_keys, load_flat, plan_node_params, to_flat
from .layers import lstm
from .model import Model
from .shims.conversions import require_torch

__all__ = ["to_state_dict", "from_state_dict", "torch_state_dict", "load_torch_state_dict", "TORCH_NAMES"]

# composa param name -> torch state dict name, per torch module.
TORCH_NAMES: Dict[str, Dict[str, str]] = {
    "Linear": {"W": "weight", "b": "bias"},
    "LayerNorm": {"G": "weight", "b": "bias"},
    "Embedding": {"E": "weight"},
}


def to_state_dict(model: Model) -> Dict[str, Any]:
    """Every param of `model` as a torch tensor (a copy) under its stable key, e.g. ``"1.relu.W"``."""
    torch = require_torch("to_state_dict")
    return {key: torch.from_numpy(numpy.array(array, copy=True)) for key, array in to_flat(model).items()}


def from_state_dict(model: Model, state_dict: Mapping[str, Any]) -> Model:
    """Load a :func:`to_state_dict` mapping (tensors or arrays) into `model`, all or nothing; returns it."""
    load_flat(model, {key: host_array(value) for key, value in state_dict.items()}, source="the state dict")
    return model


def torch_module_kind(layer: Model) -> str:
    """Which torch module has `layer`'s params: "Linear", "LayerNorm", "Embedding" or "LSTM"."""
    names = set(layer.param_names)
    if layer.name == "lstm" and names == {"LSTM", "HC0"}:
        return "LSTM"
    if layer.name == "layernorm" and names == {"G", "b"}:
        return "LayerNorm"
    if layer.name == "embed" and names == {"E"}:
        return "Embedding"
    if names == {"W", "b"} and "nP" not in layer.dim_names:  # Maxout's W has a pieces axis
        return "Linear"
    raise ConfigurationError(
        f"no torch module holds params {sorted(names)}: the torch mapping covers Linear (and the dense "
        f"layers, Softmax, Sigmoid), LayerNorm, Embed and LSTM",
        layer=layer.name,
    )


def torch_state_dict(layer: Model) -> Dict[str, Any]:
    """One layer's weights as the state dict of its torch module (see the module docstring's table)."""
    kind = torch_module_kind(layer)
    if kind == "LSTM":
        return lstm.lstm_state_dict(layer)
    torch = require_torch("torch_state_dict")
    return {
        torch_name: torch.from_numpy(numpy.array(layer.ops.to_numpy(layer.get_param(name)), copy=True))
        for name, torch_name in TORCH_NAMES[kind].items()
    }


def load_torch_state_dict(layer: Model, source: Any) -> Model:
    """Initialise `layer` from a torch module (or its state dict) of the matching kind; returns it.

    An LSTM's HC0 is set to zeros, torch's default initial state, so the layer then gives
    the module's outputs. Everything is checked before anything is written.
    """
    kind = torch_module_kind(layer)
    state = source.state_dict() if hasattr(source, "state_dict") else source
    arrays = {name: host_array(value) for name, value in state.items()}
    where = f"torch {kind} state dict for {layer.name!r}"
    if kind == "LSTM":
        check_keys(where, {name: None for name, _, _ in lstm.torch_layout(layer)}, arrays)
        HC0 = layer.get_param("HC0")
        params = {"LSTM": lstm.params_from_torch(layer, arrays), "HC0": layer.ops.alloc(HC0.shape, dtype=HC0.dtype)}
        dims: Dict[str, int] = {}
    else:
        names = TORCH_NAMES[kind]
        check_keys(where, {torch_name: None for torch_name in names.values()}, arrays)
        params = {name: arrays[torch_name] for name, torch_name in names.items()}
        dims = torch_dims(where, kind, params)
    model_io.apply_plan([layer], [plan_node_params(where, layer, params, dims)])
    return layer


def torch_dims(where: str, kind: str, params: Dict[str, Any]) -> Dict[str, int]:
    """The layer's widths read from the torch weights (checked against the set ones when loading)."""
    weight = params["E" if kind == "Embedding" else "G" if kind == "LayerNorm" else "W"]
    expected_ndim = 1 if kind == "LayerNorm" else 2
    if weight.ndim != expected_ndim:
        raise SerializationError(f"{where}: weight has shape {tuple(weight.shape)}, expected {expected_ndim} axes")
    if kind == "LayerNorm":
        return {"nI": int(weight.shape[0]), "nO": int(weight.shape[0])}
    if kind == "Embedding":
        return {"nV": int(weight.shape[0]), "nO": int(weight.shape[1])}
    return {"nO": int(weight.shape[0]), "nI": int(weight.shape[1])}


def host_array(value: Any) -> Any:
    """A torch tensor (on any device) or an array as a numpy array."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return numpy.asarray(value)
