"""PyTorchWrapper: a torch.nn.Module as a composa layer (plus RNN, LSTM and TorchScript variants).

The forward pass converts the composa input to torch tensors (``convert_inputs``),
runs the module through its ``PyTorchShim`` and converts the output back
(``convert_outputs``); backprop runs the same three steps in reverse. Arrays and
tensors share memory on CPU and go through DLPack on GPU, so conversion is cheap.
torch is imported only when a wrapper is built.
"""
from typing import Any, Callable, List, Optional, Tuple

import numpy

from ..config import registry
from ..checks import describe
from ..errors import ComposaError, ConfigurationError, ShapeMismatchError
from ..model import Model
from ..shims import PyTorchGradScaler, PyTorchShim, TorchScriptShim
from ..shims.conversions import cpu_view, is_torch_array, numpy_view, torch2xp, xp2torch
from ..shims.pytorch import PyTorchModuleError, no_backprop
from ..types import ArgsKwargs, Padded
from ..util import convert_recursive, is_xp_array, iterate_recursive, partial

__all__ = [
    "PyTorchWrapper",
    "PyTorchWrapper_v2",
    "PyTorchWrapper_v3",
    "PyTorchRNNWrapper",
    "PyTorchLSTM",
    "TorchScriptWrapper_v1",
    "pytorch_to_torchscript_wrapper",
]


@registry.layers("PyTorchWrapper.v1")
@registry.layers("PyTorchWrapper.v2")
@registry.layers("PyTorchWrapper.v3")
def PyTorchWrapper_v3(
    pytorch_model: Any,
    convert_inputs: Optional[Callable] = None,
    convert_outputs: Optional[Callable] = None,
    mixed_precision: bool = False,
    grad_scaler: Optional[PyTorchGradScaler] = None,
    device: Any = None,
    serialize_model: Optional[Callable[[Any], bytes]] = None,
    deserialize_model: Optional[Callable[[Any, bytes, Any], Any]] = None,
) -> Model[Any, Any]:
    """Wrap a torch.nn.Module: arrays in, arrays out, torch params trained by composa's optimizer.

    By default every array in the input (also inside lists, tuples and dicts) becomes a
    tensor: a dict is passed as keyword arguments, a list/tuple as positional ones.
    `mixed_precision` runs the forward pass under autocast (float16 on CUDA, bfloat16 on
    CPU); `grad_scaler` scales the loss for float16; `serialize_model` /
    `deserialize_model(module, bytes, device)` replace the default (pickle-free) format.
    """
    return Model(
        "pytorch",
        forward,
        attrs={
            "convert_inputs": convert_inputs or convert_pytorch_default_inputs,
            "convert_outputs": convert_outputs or convert_pytorch_default_outputs,
        },
        shims=[
            PyTorchShim(
                pytorch_model,
                mixed_precision=mixed_precision,
                grad_scaler=grad_scaler,
                device=device,
                serialize_model=serialize_model,
                deserialize_model=deserialize_model,
            )
        ],
        dims={"nI": None, "nO": None},
    )


# Shims whose run_one / backprop_one the direct steps may call (a subclass may override their methods).
_PLAIN_SHIMS = (PyTorchShim, TorchScriptShim)

# One implementation: the older versions' arguments are a prefix of v3's.
PyTorchWrapper = PyTorchWrapper_v3
PyTorchWrapper_v2 = PyTorchWrapper_v3


@registry.layers("PyTorchRNNWrapper.v1")
def PyTorchRNNWrapper(
    pytorch_model: Any,
    convert_inputs: Optional[Callable] = None,
    convert_outputs: Optional[Callable] = None,
) -> Model[Padded, Padded]:
    """Wrap a time-major torch RNN (e.g. nn.LSTM): Padded in, Padded out."""
    return PyTorchWrapper_v3(
        pytorch_model,
        convert_inputs=convert_inputs or convert_rnn_inputs,
        convert_outputs=convert_outputs or convert_rnn_outputs,
    )


@registry.layers("PyTorchLSTM.v1")
def PyTorchLSTM(
    nO: int, nI: int, *, bi: bool = False, depth: int = 1, dropout: float = 0.0
) -> Model[Any, Any]:
    """torch.nn.LSTM over sequences (Padded, Ragged, list of arrays...) via with_padded; bi halves nO per direction."""
    import torch  # lazy: torch is optional

    from . import noop, with_padded  # with_padded lives with the combinators

    if depth == 0:
        return noop()
    if depth < 0 or nO <= 0 or nI <= 0:
        raise ConfigurationError(f"PyTorchLSTM: nO, nI must be > 0 and depth >= 0, got nO={nO}, nI={nI}, depth={depth}")
    if bi and nO % 2:
        raise ConfigurationError(f"PyTorchLSTM: a bidirectional LSTM needs an even nO, got {nO}")
    hidden = nO // 2 if bi else nO
    wrapper = PyTorchRNNWrapper(torch.nn.LSTM(nI, hidden, depth, bidirectional=bi, dropout=dropout))
    wrapper.set_dim("nO", nO)
    wrapper.set_dim("nI", nI)
    return with_padded(wrapper)


def TorchScriptWrapper_v1(
    torchscript_model: Any = None,
    convert_inputs: Optional[Callable] = None,
    convert_outputs: Optional[Callable] = None,
    mixed_precision: bool = False,
    grad_scaler: Optional[PyTorchGradScaler] = None,
    device: Any = None,
) -> Model[Any, Any]:
    """Wrap a torch.jit.ScriptModule (None: an empty model to load bytes into); saved with torch.jit.save."""
    return Model(
        "pytorch_script",
        forward,
        attrs={
            "convert_inputs": convert_inputs or convert_pytorch_default_inputs,
            "convert_outputs": convert_outputs or convert_pytorch_default_outputs,
        },
        shims=[
            TorchScriptShim(
                torchscript_model, mixed_precision=mixed_precision, grad_scaler=grad_scaler, device=device
            )
        ],
        dims={"nI": None, "nO": None},
    )


def pytorch_to_torchscript_wrapper(model: Model) -> Model:
    """A TorchScriptWrapper_v1 of ``torch.jit.script(module)``, keeping converters, scaler and device."""
    import torch  # lazy: torch is optional

    shim = model.shims[0] if model.shims else None
    if not isinstance(shim, PyTorchShim) or isinstance(shim, TorchScriptShim):
        raise ConfigurationError(
            f"pytorch_to_torchscript_wrapper expects a PyTorchWrapper model, got {model.name!r} "
            f"with shims {[type(s).__name__ for s in model.shims]}"
        )
    if not isinstance(shim._model, torch.nn.Module):
        raise ConfigurationError(
            f"pytorch_to_torchscript_wrapper: the wrapped model is a {type(shim._model).__name__}, not a torch.nn.Module"
        )
    return TorchScriptWrapper_v1(
        torch.jit.script(shim._model),
        convert_inputs=model.attrs["convert_inputs"],
        convert_outputs=model.attrs["convert_outputs"],
        mixed_precision=shim._mixed_precision,
        grad_scaler=shim._grad_scaler,
        device=shim.device,
    )


def forward(model: Model, X: Any, is_train: bool) -> Tuple[Any, Callable]:
    """X -> convert_inputs -> torch module -> convert_outputs; backprop retraces the same steps."""
    attrs = model.attrs
    convert_inputs, convert_outputs = attrs["convert_inputs"], attrs["convert_outputs"]
    shim = model.shims[0]
    if convert_inputs is convert_pytorch_default_inputs and convert_outputs is convert_pytorch_default_outputs:
        Xtorch = _cpu_input_view(shim, X, is_train)
        if Xtorch is not None:
            return _forward_one_tensor(model, shim, X, Xtorch, is_train)
    Xtorch, get_dX = convert_inputs(model, X, is_train)
    try:
        Ytorch, torch_backprop = shim(Xtorch, is_train)
    except (ComposaError, RuntimeError) as error:
        raise _forward_error(model, X, error)
    Y, get_dYtorch = convert_outputs(model, (X, Ytorch), is_train)
    return Y, _backprop_steps(model, get_dYtorch, torch_backprop, get_dX)


def _backprop_steps(model: Model, get_dYtorch: Callable, torch_backprop: Callable, get_dX: Callable) -> Callable:
    """The layer's backprop: dY -> torch gradients -> the shim's backprop -> d(input)."""

    def backprop(dY: Any) -> Any:
        dYtorch = get_dYtorch(dY)
        try:
            dXtorch = torch_backprop(dYtorch)
        except ComposaError as error:
            raise _named(error, model)
        return get_dX(dXtorch)

    return backprop


def _forward_error(model: Model, X: Any, error: Exception) -> Exception:
    """What to raise when the shim's forward raised `error`: composa's own errors named after
    this layer, torch's (a RuntimeError) as a PyTorchModuleError caused by it."""
    if isinstance(error, ComposaError):
        return _named(error, model)
    wrapped = PyTorchModuleError(
        f"the wrapped {type(model.shims[0]._model).__name__} failed on {describe(X)}: {error}", layer=model.name
    )
    wrapped.__cause__ = error  # as `raise ... from error`
    return wrapped


def _cpu_input_view(shim: Any, X: Any, is_train: bool) -> Any:
    """The tensor convert_pytorch_default_inputs makes of X when X is one float numpy array that
    torch views as is, for a CPU shim (the common case: see _forward_one_tensor); else None."""
    if type(X) is not numpy.ndarray or not X.ndim or X.dtype.kind != "f" or type(shim) not in _PLAIN_SHIMS:
        return None
    if not shim.on_cpu:
        return None
    tensor = cpu_view(X)
    if tensor is not None and is_train:
        tensor.requires_grad_()
    return tensor


def _forward_one_tensor(model: Model, shim: Any, X: Any, Xtorch: Any, is_train: bool) -> Tuple[Any, Callable]:
    """forward with the default converters for one CPU input tensor, their steps done directly for
    one output tensor and a numpy gradient (~25 us less per call); same results and errors."""
    try:
        Ytorch = shim.run_one(Xtorch, is_train)
    except (ComposaError, RuntimeError) as error:
        raise _forward_error(model, X, error)
    Y = numpy_view(Ytorch) if getattr(model.ops, "name", None) != "cupy" else None
    if Y is None:  # not one CPU tensor (or arrays are wanted on the GPU): the general steps
        return _default_output_steps(model, X, Xtorch, Ytorch, is_train)

    def backprop(dY: Any) -> Any:
        # A numpy gradient shaped and typed like Y is the output's gradient as it is; others are
        # checked (and cast) by backprop_one, and those torch cannot view (read-only, cupy) by
        # the general steps.
        matched = type(dY) is numpy.ndarray and dY.dtype == Y.dtype and dY.shape == Y.shape
        dYtorch = cpu_view(dY) if type(dY) is numpy.ndarray else None
        if dYtorch is None:
            return _default_output_steps(model, X, Xtorch, Ytorch, is_train)[1](dY)
        try:
            if not is_train:
                no_backprop()
            dXtorch = shim.backprop_one(Ytorch, dYtorch, Xtorch, matched=matched)
        except ComposaError as error:
            raise _named(error, model)
        return dXtorch.numpy()  # the CPU gradient of a numpy input's view, in its dtype

    return Y, backprop


def _default_output_steps(model: Model, X: Any, Xtorch: Any, Ytorch: Any, is_train: bool) -> Tuple[Any, Callable]:
    """convert_pytorch_default_outputs and the general backprop, after ``shim.run_one(Xtorch)``."""
    shim = model.shims[0]
    torch_backprop = shim.backprop_for(ArgsKwargs(args=(Xtorch,), kwargs={})) if is_train else no_backprop
    Y, get_dYtorch = convert_pytorch_default_outputs(model, (X, Ytorch), is_train)
    return Y, _backprop_steps(model, get_dYtorch, torch_backprop, partial(_first_arg_to_xp, model.ops))


def _first_arg_to_xp(ops: Any, d_inputs: ArgsKwargs) -> Any:
    return torch2xp(d_inputs.args[0], ops=ops)


def convert_pytorch_default_inputs(model: Model, X: Any, is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    """Arrays in X -> tensors on the shim's device (requiring grad when training), packed as ArgsKwargs."""
    device = model.shims[0].device
    ops = model.ops
    if is_xp_array(X) and X.ndim >= 1:  # the common case, without walking containers
        to_torch = _to_torch(X, device=device, requires_grad=is_train)
        return ArgsKwargs(args=(to_torch,), kwargs={}), partial(_first_arg_to_xp, ops)
    to_xp = partial(torch2xp, ops=ops)
    to_torch = partial(_to_torch, device=device, requires_grad=is_train)
    converted = convert_recursive(is_xp_array, to_torch, X)
    if not isinstance(converted, ArgsKwargs):
        _check_convertible(model, X, converted)

    if isinstance(converted, ArgsKwargs):

        def reverse_args_kwargs(d_inputs: ArgsKwargs) -> Any:
            return convert_recursive(is_torch_array, to_xp, d_inputs)

        return converted, reverse_args_kwargs
    if isinstance(converted, dict):

        def reverse_kwargs(d_inputs: ArgsKwargs) -> Any:
            return convert_recursive(is_torch_array, to_xp, d_inputs).kwargs

        return ArgsKwargs(args=(), kwargs=converted), reverse_kwargs
    if isinstance(converted, (list, tuple)):

        def reverse_args(d_inputs: ArgsKwargs) -> Any:
            return convert_recursive(is_torch_array, to_xp, d_inputs).args

        return ArgsKwargs(args=tuple(converted), kwargs={}), reverse_args

    def reverse_single(d_inputs: ArgsKwargs) -> Any:
        return convert_recursive(is_torch_array, to_xp, d_inputs).args[0]

    return ArgsKwargs(args=(converted,), kwargs={}), reverse_single


def _check_convertible(model: Model, X: Any, converted: Any) -> None:
    """Raise unless the converted input is tensors (of rank >= 1), directly or in a list, tuple or dict.

    Anything else (None, a string, a number, a Ragged or Padded) would reach the torch module
    and fail there with torch's TypeError; ArgsKwargs are passed through as the caller built them.
    """
    if isinstance(converted, dict):
        leaves = list(converted.values())
    elif isinstance(converted, (list, tuple)):
        leaves = list(converted)
    else:
        leaves = [converted]
    if not leaves or not all(is_torch_array(leaf) and leaf.ndim >= 1 for leaf in leaves):
        raise ShapeMismatchError(
            f"expected an array (rank >= 1), or a list, tuple or dict of arrays, got {describe(X)}; "
            f"pass convert_inputs= to PyTorchWrapper for other inputs (e.g. with_array for Ragged or Padded)",
            layer=model.name,
        )


def convert_pytorch_default_outputs(model: Model, X_Ytorch: Tuple[Any, Any], is_train: bool) -> Tuple[Any, Callable]:
    """Tensors in the output -> arrays; backprop turns dY into ArgsKwargs for torch.autograd.backward."""
    _, Ytorch = X_Ytorch
    one_tensor = is_torch_array(Ytorch)
    if one_tensor:
        Y = torch2xp(Ytorch, ops=model.ops)
    else:
        Y = convert_recursive(is_torch_array, partial(torch2xp, ops=model.ops), Ytorch)
    device = model.shims[0].device

    def reverse_conversion(dY: Any) -> ArgsKwargs:
        if is_xp_array(dY):
            dYtorch = xp2torch(dY, device=device)
        else:
            dYtorch = convert_recursive(is_xp_array, partial(_to_torch, device=device, requires_grad=False), dY)
        if one_tensor:
            return ArgsKwargs(args=((Ytorch,),), kwargs={"grad_tensors": _as_tuple(dYtorch)})
        # Several outputs (a tuple, list or dict of tensors): backprop through each one that
        # has a gradient and is part of the graph, pairing dY with Y by position or key.
        pairs = [(output, grad) for output, grad in _paired_tensors(model, Ytorch, dYtorch) if output.requires_grad]
        return ArgsKwargs(
            args=(tuple(output for output, _ in pairs),), kwargs={"grad_tensors": tuple(grad for _, grad in pairs)}
        )

    return Y, reverse_conversion


def convert_rnn_inputs(model: Model, Xp: Padded, is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    """Padded -> ArgsKwargs((data tensor, None)) for a time-major torch RNN."""
    if not isinstance(Xp, Padded):
        raise ConfigurationError(f"PyTorchRNNWrapper expects a Padded batch, got {describe(Xp)}", layer=model.name)
    size_at_t, lengths, indices = Xp.size_at_t, Xp.lengths, Xp.indices
    Xtorch = _to_torch(Xp.data, device=model.shims[0].device, requires_grad=is_train)

    def convert_from_torch_backward(d_inputs: ArgsKwargs) -> Padded:
        dX = torch2xp(d_inputs.args[0], ops=model.ops)
        return Padded(dX, size_at_t, lengths, indices)

    return ArgsKwargs(args=(Xtorch, None), kwargs={}), convert_from_torch_backward


def convert_rnn_outputs(model: Model, inputs_outputs: Tuple[Padded, Any], is_train: bool) -> Tuple[Padded, Callable]:
    """(output, state) of a torch RNN -> Padded with the input's lengths; backprop feeds dY.data."""
    Xp, (Ytorch, _) = inputs_outputs
    Y = torch2xp(Ytorch, ops=model.ops)
    device = model.shims[0].device

    def convert_for_torch_backward(dYp: Padded) -> ArgsKwargs:
        dYtorch = _to_torch(dYp.data, device=device, requires_grad=False)
        return ArgsKwargs(args=(Ytorch,), kwargs={"grad_tensors": dYtorch})

    return Padded(Y, Xp.size_at_t, Xp.lengths, Xp.indices), convert_for_torch_backward


def _named(error: ComposaError, model: Model) -> ComposaError:
    """The shim's error, labelled with this layer's name instead of the shim's generic one."""
    error.layer_path[:1] = [model.name]
    error.args = (str(error),)
    return error


def _to_torch(array: Any, *, device: Any, requires_grad: bool) -> Any:
    return xp2torch(array, requires_grad=requires_grad and array.dtype.kind == "f", device=device)


def _paired_tensors(model: Model, outputs: Any, grads: Any) -> List[Tuple[Any, Any]]:
    """(output tensor, gradient tensor) pairs of two like-shaped structures; a None gradient is skipped."""
    if grads is None:
        return []
    if is_torch_array(outputs):
        if not is_torch_array(grads):
            raise ShapeMismatchError(f"backprop expected an array for an output tensor, got {describe(grads)}", layer=model.name)
        return [(outputs, grads)]
    if isinstance(outputs, dict) and isinstance(grads, dict):
        unknown = sorted(str(key) for key in grads if key not in outputs)
        if unknown:
            raise ShapeMismatchError(f"backprop got gradients for outputs {unknown}, which the module did not return", layer=model.name)
        return [pair for key in outputs for pair in _paired_tensors(model, outputs[key], grads.get(key))]
    if isinstance(outputs, (list, tuple)) and isinstance(grads, (list, tuple)) and len(outputs) == len(grads):
        return [pair for output, grad in zip(outputs, grads) for pair in _paired_tensors(model, output, grad)]
    if not any(True for _ in iterate_recursive(is_torch_array, outputs)):
        return []  # e.g. an int or string in the output: nothing to backprop
    raise ShapeMismatchError(
        f"backprop expected gradients shaped like the output {describe(outputs)}, got {describe(grads)}",
        layer=model.name,
    )


def _as_tuple(value: Any) -> Tuple[Any, ...]:
    return (value,) if is_torch_array(value) else tuple(value)
