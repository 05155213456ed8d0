"""LSTM: a multi-layer, optionally bidirectional LSTM over Padded batches, weight-compatible with torch.

Params: ``LSTM``, one flat vector in ``torch.nn.LSTM``'s layout (per layer, per
direction: ``W_ih (4nH, nI_layer)``, ``b_ih (4nH,)``, ``W_hh (4nH, nH)``,
``b_hh (4nH,)``, gates input, forget, cell, output), and ``HC0 (2, depth, dirs, nH)``,
the initial hidden and cell states, shared by every sequence and trained like any
other weight. ``lstm_state_dict`` / ``load_lstm_state_dict`` convert to and from a
``torch.nn.LSTM`` state dict. Dropout (``dropout_rate``) applies to the
activations between layers during training, as in ``torch.nn.LSTM``.
"""
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy

from ..backends._lstm import Packing
from ..checks import describe
from ..config import registry
from ..errors import ConfigurationError, ShapeMismatchError
from ..initializers import glorot_uniform_init, zero_init
from ..model import Model
from ..types import Floats1d, Padded
from ..util import get_width, partial

__all__ = ["LSTM"]

InT = Padded
OutT = Padded


@registry.layers("LSTM.v1")
def LSTM(
    nO: Optional[int] = None,
    nI: Optional[int] = None,
    *,
    bi: bool = False,
    depth: int = 1,
    dropout: float = 0.0,
    init_W: Callable = glorot_uniform_init,
    init_b: Callable = zero_init,
) -> Model[InT, OutT]:
    """LSTM over a time-major Padded batch: (T, B, nI) -> (T, B, nO); with `bi`, nO = 2 * hidden size."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ConfigurationError(f"depth must be an int >= 1, got {depth!r}", layer="lstm")
    if not 0.0 <= dropout < 1.0:
        raise ConfigurationError(f"dropout must be in [0, 1), got {dropout!r}", layer="lstm")
    dirs = 2 if bi else 1
    if nO is not None and nO % dirs:
        raise ConfigurationError(
            f"a bidirectional LSTM needs an even nO (two halves of nO/2), got nO={nO}", layer="lstm"
        )
    return Model(
        "lstm",
        forward,
        init=partial(init, init_W, init_b),
        dims={"nO": nO, "nI": nI, "depth": depth, "dirs": dirs},
        attrs={"registry_name": "LSTM.v1", "dropout_rate": dropout},
        params={"LSTM": None, "HC0": None},
    )


def forward(model: Model[InT, OutT], Xp: InT, is_train: bool) -> Tuple[OutT, Callable]:
    ops = model.ops
    params = model.get_param("LSTM")
    HC0 = model.get_param("HC0")
    depth, dirs, nH = (int(d) for d in HC0.shape[1:])
    nI = model.get_dim("nI")
    data = _check_input(model, Xp, nI)
    T, B = data.shape[0], data.shape[1]
    nO = dirs * nH
    if T == 0 or B == 0 or int(ops.to_numpy(Xp.lengths).max()) == 0:
        return _empty_forward(model, Xp, nO)
    packing = Packing.make(ops, Xp.lengths, T, B)
    X = packing.pack(data)
    dropout = model.attrs.get("dropout_rate") or 0.0
    layer_sizes = _layer_param_sizes(nI, nH, dirs, depth)
    offsets = numpy.concatenate(([0], numpy.cumsum(layer_sizes))).tolist()
    callbacks = []
    for layer in range(depth):
        weights = params[offsets[layer] : offsets[layer + 1]]
        H0, C0 = HC0[0, layer : layer + 1], HC0[1, layer : layer + 1]
        if is_train:
            Y, state = ops.lstm_forward_training(weights, H0, C0, X, packing.size_at_t)
        else:
            Y, state = ops.lstm_forward_inference(weights, H0, C0, X, packing.size_at_t), None
        mask = None
        if is_train and dropout > 0 and layer + 1 < depth:
            mask = ops.get_dropout_mask(Y.shape, dropout)
            Y = Y * mask
        callbacks.append((weights, state, mask))
        X = Y
    Yp = Padded(packing.unpack(X, nO), Xp.size_at_t, Xp.lengths, Xp.indices)

    def backprop(dYp: OutT) -> InT:
        dY_data = dYp.data if isinstance(dYp, Padded) else dYp
        if getattr(dY_data, "shape", None) != Yp.data.shape:
            raise ShapeMismatchError(
                f"shape mismatch in backprop: the output was {Yp.data.shape}, the gradient is "
                f"{describe(dY_data)}",
                layer=model.name,
            )
        if not is_train:
            raise ConfigurationError(
                "backprop needs the forward pass to run with is_train=True", layer=model.name
            )
        dY = packing.pack(dY_data)
        d_params: List[Any] = [None] * depth
        dHC0 = ops.alloc(HC0.shape, dtype=HC0.dtype)
        for layer in range(depth - 1, -1, -1):
            weights, state, mask = callbacks[layer]
            if mask is not None:
                dY = dY * mask
            dY, d_weights, dH0, dC0 = ops.backprop_lstm(
                dY, packing.size_at_t, weights, state, return_initial=True
            )
            d_params[layer] = d_weights
            dHC0[0, layer] = dH0[0]
            dHC0[1, layer] = dC0[0]
        model.inc_grad("LSTM", ops.xp.concatenate(d_params))
        model.inc_grad("HC0", dHC0)
        return Padded(packing.unpack(dY, nI), Xp.size_at_t, Xp.lengths, Xp.indices)

    return Yp, backprop


def init(
    init_W: Callable,
    init_b: Callable,
    model: Model[InT, OutT],
    X: Optional[InT] = None,
    Y: Optional[OutT] = None,
) -> Model[InT, OutT]:
    """Infer nI from X and nO from Y; draw each gate's weights like the reference, HC0 = 0."""
    if X is not None:
        model.set_dim("nI", get_width(X))
    if Y is not None:
        model.set_dim("nO", get_width(Y))
    nO, nI = model.get_dim("nO"), model.get_dim("nI")
    depth, dirs = model.get_dim("depth"), model.get_dim("dirs")
    if nO % dirs:
        raise ConfigurationError(
            f"a bidirectional LSTM needs an even nO, got nO={nO}", layer=model.name
        )
    nH = nO // dirs
    ops = model.ops
    pieces: List[Floats1d] = []
    for layer in range(depth):
        layer_nI = nI if layer == 0 else nO
        for _ in range(dirs):
            # Each gate is drawn separately, so fan-in/fan-out are per gate.
            pieces.extend(init_W(ops, (nH, layer_nI)).ravel() for _ in range(4))
            pieces.extend(init_b(ops, (nH,)).ravel() for _ in range(4))
            pieces.extend(init_W(ops, (nH, nH)).ravel() for _ in range(4))
            pieces.extend(init_b(ops, (nH,)).ravel() for _ in range(4))
    params = ops.xp.concatenate(pieces).astype("float32")
    expected = sum(_layer_param_sizes(nI, nH, dirs, depth))
    if params.shape[0] != expected:
        raise ConfigurationError(
            f"the initializers returned {params.shape[0]} values, expected {expected}", layer=model.name
        )
    model.set_param("LSTM", params)
    model.set_param("HC0", ops.alloc((2, depth, dirs, nH), dtype="float32"))
    return model


def lstm_state_dict(model: Model) -> Dict[str, Any]:
    """The LSTM's weights as a ``torch.nn.LSTM`` state dict of torch tensors (needs torch)."""
    import torch  # lazy: torch is optional

    return {
        name: torch.from_numpy(numpy.array(array, copy=True))
        for name, array in torch_arrays(model).items()
    }


def load_lstm_state_dict(model: Model, state_dict: Any) -> Model:
    """Copy weights from a ``torch.nn.LSTM`` (or its state dict) into the LSTM layer; returns it."""
    model.set_param("LSTM", params_from_torch(model, state_dict))
    return model


def params_from_torch(model: Model, state_dict: Any) -> Any:
    """The flat ``LSTM`` param holding a ``torch.nn.LSTM``'s (or its state dict's) weights, checked."""
    if hasattr(state_dict, "state_dict"):
        state_dict = state_dict.state_dict()
    params = model.get_param("LSTM")
    layout = torch_layout(model)
    missing = [name for name, _, _ in layout if name not in state_dict]
    if missing:
        raise ConfigurationError(
            f"the state dict lacks {missing[:4]}; is it from a torch.nn.LSTM of the same depth and "
            f"direction?",
            layer=model.name,
        )
    new = model.ops.alloc(params.shape, dtype=params.dtype)
    for name, where, shape in layout:
        value = state_dict[name]
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        value = numpy.asarray(value)
        if tuple(value.shape) != shape:
            raise ShapeMismatchError(
                f"{name} has shape {tuple(value.shape)} in the state dict, expected {shape}",
                layer=model.name,
            )
        new[where] = model.ops.asarray(value.ravel(), dtype=params.dtype)
    return new


def torch_arrays(model: Model) -> Dict[str, Any]:
    """The LSTM's weights as numpy arrays under ``torch.nn.LSTM``'s names (views of the flat param)."""
    params = model.ops.to_numpy(model.get_param("LSTM"))
    return {name: params[where].reshape(shape) for name, where, shape in torch_layout(model)}


def torch_layout(model: Model) -> List[Tuple[str, slice, Tuple[int, ...]]]:
    """(torch name, slice of the flat vector, shape) for every weight, in storage order."""
    nO, nI = model.get_dim("nO"), model.get_dim("nI")
    depth, dirs = model.get_dim("depth"), model.get_dim("dirs")
    nH = nO // dirs
    layout: List[Tuple[str, slice, Tuple[int, ...]]] = []
    offset = 0
    for layer in range(depth):
        layer_nI = nI if layer == 0 else nO
        for direction in range(dirs):
            suffix = f"l{layer}" + ("_reverse" if direction else "")
            for kind, shape in (
                ("weight_ih", (4 * nH, layer_nI)),
                ("bias_ih", (4 * nH,)),
                ("weight_hh", (4 * nH, nH)),
                ("bias_hh", (4 * nH,)),
            ):
                size = int(numpy.prod(shape))
                layout.append((f"{kind}_{suffix}", slice(offset, offset + size), shape))
                offset += size
    return layout


def _layer_param_sizes(nI: int, nH: int, dirs: int, depth: int) -> List[int]:
    sizes = []
    for layer in range(depth):
        layer_nI = nI if layer == 0 else nH * dirs
        sizes.append(dirs * 4 * nH * (layer_nI + nH + 2))
    return sizes


def _check_input(model: Model, Xp: Any, nI: int) -> Any:
    if not isinstance(Xp, Padded):
        raise ShapeMismatchError(
            f"expected a Padded batch (wrap the layer in with_padded for lists or Ragged), "
            f"got {describe(Xp)}",
            layer=model.name,
        )
    data = Xp.data
    if data.ndim != 3 or data.shape[2] != nI:
        raise ShapeMismatchError(
            f"expected Padded data of shape (T, B, nI={nI}), got {describe(data)}", layer=model.name
        )
    if data.dtype.kind != "f":
        raise ShapeMismatchError(f"expected float data, got dtype {data.dtype}", layer=model.name)
    if len(Xp.lengths) != data.shape[1]:
        raise ShapeMismatchError(
            f"the Padded batch has {data.shape[1]} columns but {len(Xp.lengths)} lengths",
            layer=model.name,
        )
    return data


def _empty_forward(model: Model, Xp: Padded, nO: int) -> Tuple[Padded, Callable]:
    data = Xp.data
    Y = model.ops.alloc((data.shape[0], data.shape[1], nO), dtype=data.dtype)

    def backprop(dYp: Padded) -> Padded:
        dX = model.ops.alloc(data.shape, dtype=data.dtype)
        return Padded(dX, Xp.size_at_t, Xp.lengths, Xp.indices)

    return Padded(Y, Xp.size_at_t, Xp.lengths, Xp.indices), backprop
