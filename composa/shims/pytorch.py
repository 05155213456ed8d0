"""PyTorchShim: runs a ``torch.nn.Module`` inside a composa Model.

Gradients flow composa -> torch -> composa: the forward pass records torch's graph,
the backprop callback runs ``torch.autograd.backward`` with the incoming gradient and
returns the gradients of the inputs. The module's parameters stay in torch; composa's
optimizer updates them in ``finish_update`` under keys ``(shim.id, name)``, so schedules,
averages (``model.use_params(optimizer.averages)``) and optimizer state work as for
native params.

Saved bytes never contain pickle: the state dict travels as raw tensors in msgpack
(see :func:`default_serialize_model`); loading validates names and shapes first.
torch is imported only when a shim is created or used.
"""
import contextlib
import functools
import io
import math
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy

from ..checks import describe
from ..errors import ComposaError, ConfigurationError, PyTorchModuleError, SerializationError, ShapeMismatchError
from ..serialize import msgpack_dumps, msgpack_loads
from ..types import ArgsKwargs
from ..util import convert_recursive, iterate_recursive
from .conversions import get_torch_default_device, is_torch_array, require_torch, torch2xp, xp2torch
from .pytorch_grad_scaler import PyTorchGradScaler
from .shim import Shim

__all__ = [
    "PyTorchShim",
    "PyTorchModuleError",
    "default_serialize_model",
    "default_deserialize_model",
    "default_serialize_torch_model",
    "default_deserialize_torch_model",
]

STATE_FORMAT = "composa-torch-state"
STATE_VERSION = 1
_ZIP_MAGIC = b"PK\x03\x04"
# torch dtypes whose raw bytes numpy can hold under the same name; bfloat16 is stored as uint16 bits
_PLAIN_DTYPES = (
    "float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool",
)



class PyTorchShim(Shim):
    """Wrap a torch.nn.Module: forward/backward through torch, updates by composa's optimizer."""

    def __init__(
        self,
        model: Any,
        config: Optional[Dict[str, Any]] = None,
        optimizer: Any = None,
        mixed_precision: bool = False,
        grad_scaler: Optional[PyTorchGradScaler] = None,
        device: Any = None,
        serialize_model: Optional[Callable[[Any], bytes]] = None,
        deserialize_model: Optional[Callable[[Any, bytes, Any], Any]] = None,
    ) -> None:
        torch = require_torch("PyTorchShim")
        super().__init__(model, config, optimizer)
        if model is not None and not isinstance(model, torch.nn.Module):
            raise ConfigurationError(
                f"PyTorchShim wraps a torch.nn.Module, got a {type(model).__name__}"
            )
        self._device = torch.device(device) if device is not None else get_torch_default_device()
        if model is not None:
            model.to(self._device)
        self._mixed_precision = bool(mixed_precision)
        self._grad_scaler = grad_scaler if grad_scaler is not None else PyTorchGradScaler(enabled=False)
        self._grad_scaler.to_(self._device)
        self._serialize_model = serialize_model if serialize_model is not None else default_serialize_model
        self._deserialize_model = (
            deserialize_model if deserialize_model is not None else default_deserialize_model
        )
        # Switching train/eval mode mutates the module: calls that switch it run one at a
        # time, so a predict never runs in another call's train mode (dropout, BatchNorm
        # batch statistics and running-stat updates) and vice versa.
        self._mode_lock = threading.RLock()
        # (module, parameter): found once, not by scanning the parameters on every access
        self._first_param: Optional[Tuple[Any, Any]] = None
        self._uniform_mode: Optional[Tuple[Any, bool]] = None

    def __getstate__(self) -> Dict[str, Any]:
        # A copy gets its own lock and finds its own module's first parameter and mode.
        state = dict(self.__dict__)
        state.update(_mode_lock=None, _first_param=None, _uniform_mode=None)
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._mode_lock = threading.RLock()

    @property
    def device(self) -> Any:
        """The torch device of the module's first parameter (or the configured device)."""
        first = self._first_param
        if first is not None and first[0] is self._model:
            return first[1].device
        if self._model is not None:
            for tensor in self._model.parameters():
                self._first_param = (self._model, tensor)
                return tensor.device
        return self._device

    @property
    def on_cpu(self) -> bool:
        """Whether `device` is the CPU (without making a device object: the hot path asks)."""
        first = self._first_param
        if first is not None and first[0] is self._model:
            return first[1].is_cpu
        return self.device.type == "cpu"

    def param_count(self) -> int:
        """The number of values in the module's parameters."""
        if self._model is None:
            return 0
        return sum(int(tensor.numel()) for tensor in self._model.parameters())

    # Running ----------------------------------------------------------------------

    def __call__(self, inputs: ArgsKwargs, is_train: bool) -> Tuple[Any, Callable[..., Any]]:
        """Run the module on ``inputs`` (args and kwargs); with is_train, also return backprop."""
        if is_train:
            return self.begin_update(inputs)
        return self.predict(inputs), no_backprop

    def predict(self, inputs: ArgsKwargs) -> Any:
        """The module's output in eval mode without autograd; the previous mode is restored."""
        import torch  # lazy: torch is optional

        _check_inputs(inputs)
        with torch.no_grad():
            return self._run(inputs.args, inputs.kwargs, training=False)

    def begin_update(self, inputs: ArgsKwargs) -> Tuple[Any, Callable[[ArgsKwargs], ArgsKwargs]]:
        """Run the module in train mode recording the graph; backprop takes ArgsKwargs for autograd.backward."""
        _check_inputs(inputs)
        return self._run(inputs.args, inputs.kwargs, training=True), self.backprop_for(inputs)

    def backprop_for(self, inputs: ArgsKwargs) -> Callable[[ArgsKwargs], ArgsKwargs]:
        """begin_update's backprop for a forward pass (in train mode) on `inputs`."""
        import torch  # lazy: torch is optional

        def backprop(grads: ArgsKwargs) -> Any:
            tensors, grad_tensors = _backward_pairs(grads)
            scaler = self._grad_scaler
            if scaler.enabled:
                leaves = list(iterate_recursive(_is_grad_leaf, inputs))
                self._scaled_backward(scaler, tensors, grad_tensors, _extra_backward_kwargs(grads), leaves)
            else:
                torch.autograd.backward(tensors, grad_tensors=grad_tensors, **_extra_backward_kwargs(grads))
            return _input_grads(inputs, scaler.found_inf)

        return backprop

    def run_one(self, tensor: Any, is_train: bool) -> Any:
        """The module's output for one input tensor: as begin_update (or predict) on ``(tensor,)``,
        without the general argument handling; backprop_one takes the output's gradient."""
        if not is_train:
            import torch  # lazy: torch is optional

            with torch.no_grad():
                return self._run((tensor,), {}, False)
        with self._mode_lock:
            model = self._model
            if self._uniform_mode == (model, True) and model.training and not self._mixed_precision:
                return model(tensor)  # the hot path: wholly in train mode already, nothing to switch back
        return self._run((tensor,), {}, True)

    def backprop_one(self, output: Any, d_output: Any, tensor: Any, *, matched: bool = False) -> Any:
        """The gradient of run_one's input `tensor`, given the gradient of its one output tensor;
        `matched`: the caller made sure `d_output` has the output's shape, dtype and device."""
        import torch  # lazy: torch is optional

        grad = d_output if matched else _matching_grad(output, d_output)
        scaler = self._grad_scaler
        leaf = tensor.requires_grad
        if scaler.enabled:
            self._scaled_backward(scaler, [output], [grad], {}, [tensor] if leaf else [])
            return _take_grad(tensor, scaler.found_inf) if leaf else tensor
        torch.autograd.backward((output,), grad_tensors=(grad,))
        return _take_grad(tensor, False) if leaf else tensor  # (a disabled scaler never finds an inf)

    def _run(self, args: Tuple[Any, ...], kwargs: Dict[str, Any], training: bool) -> Any:
        """Call the module in train or eval mode (and autocast), then restore the modes it had."""
        with self._mode_lock:
            saved_modes = self._switch_mode(training)
            try:
                if self._mixed_precision:
                    with self._autocast():
                        return self._model(*args, **kwargs)
                return self._model(*args, **kwargs)  # the hot path: no context manager to enter
            finally:
                if saved_modes:
                    _restore_mode(saved_modes)

    def _scaled_backward(
        self, scaler: PyTorchGradScaler, tensors: List[Any], grad_tensors: List[Any], extra: Dict[str, Any], leaves: List[Any]
    ) -> None:
        """torch's backward of the scaled gradients; this backward's param and input (`leaves`) grads unscaled."""
        import torch  # lazy: torch is optional

        earlier_grads = self._stash_param_grads()
        torch.autograd.backward(tensors, grad_tensors=scaler.scale(grad_tensors), **extra)
        fresh = [p.grad for p in self._model.parameters() if p.grad is not None]
        fresh += [leaf.grad for leaf in leaves if leaf.grad is not None]
        scaler.unscale(fresh)
        self._unstash_param_grads(earlier_grads)

    def _switch_mode(self, training: bool) -> List[Tuple[Any, bool]]:
        """Put the module in train/eval mode; return the submodules changed, with their old mode.

        Walking every submodule costs microseconds per call, so a module found wholly in
        one mode is remembered and the walk is skipped while its root keeps that mode
        (``module.train()``/``eval()`` on the root changes it and so triggers a walk).
        """
        model = self._model
        if self._uniform_mode == (model, training) and model.training == training:
            return []
        changed = _switch_mode(model, training)
        self._uniform_mode = None if changed else (model, training)
        return changed

    def _autocast(self) -> Any:
        import torch  # lazy: torch is optional

        if not self._mixed_precision:
            return contextlib.nullcontext()
        device_type = self.device.type
        # CPU autocast supports bfloat16; CUDA's default is float16 (with loss scaling)
        dtype = torch.bfloat16 if device_type == "cpu" else torch.float16
        return torch.autocast(device_type, dtype=dtype)

    def _stash_param_grads(self) -> List[Tuple[Any, Any]]:
        """Set aside already-unscaled grads so that only this backward's grads get unscaled."""
        stash = []
        for param in self._model.parameters():
            if param.grad is not None:
                stash.append((param, param.grad))
                param.grad = None
        return stash

    @staticmethod
    def _unstash_param_grads(stash: List[Tuple[Any, Any]]) -> None:
        for param, grad in stash:
            if param.grad is None:
                param.grad = grad
            else:
                param.grad.add_(grad)

    # Updates --------------------------------------------------------------------------

    def finish_update(self, optimizer: Callable) -> None:
        """Update every torch param with a grad via ``optimizer((shim.id, name), param, grad)``."""
        import torch  # lazy: torch is optional

        skip = self._grad_scaler.found_inf
        for name, param in self._model.named_parameters():
            if param.grad is None:
                continue
            if not skip:
                new_value, _ = optimizer((self.id, name), torch2xp(param.data), torch2xp(param.grad))
                tensor = xp2torch(new_value, device=param.device)
                if tensor.data_ptr() != param.data.data_ptr() or tensor.dtype != param.dtype:
                    with torch.no_grad():
                        param.copy_(tensor)
            param.grad = None
        self._grad_scaler.update()

    @contextlib.contextmanager
    def use_params(self, params: Dict[Tuple[int, str], Any]) -> Iterator[None]:
        """Within the block, torch params use the values keyed (shim.id, name); restored on exit or error."""
        import torch  # lazy: torch is optional

        swaps = []
        for name, param in self._model.named_parameters():
            key = (self.id, name)
            if key in params:
                value = xp2torch(params[key], device=param.device)
                if tuple(value.shape) != tuple(param.shape):
                    raise ShapeMismatchError(
                        f"use_params: param {name!r} has shape {tuple(param.shape)}, "
                        f"the replacement {tuple(value.shape)}",
                        layer="pytorch",
                    )
                swaps.append((param, value))
        backups = [(param, param.detach().clone()) for param, _ in swaps]
        try:
            with torch.no_grad():
                for param, value in swaps:
                    param.copy_(value)
            yield
        finally:
            with torch.no_grad():
                for param, backup in backups:
                    param.copy_(backup)

    # Devices --------------------------------------------------------------------------

    def to_device(self, device_type: str, device_id: int) -> None:
        """Move the module (and the grad scaler) to "cpu", "gpu" `device_id` or "mps"."""
        import torch  # lazy: torch is optional

        if device_type == "cpu":
            device = torch.device("cpu")
        elif device_type == "gpu":
            device = torch.device("cuda", device_id)
        elif device_type == "mps":
            device = torch.device("mps")
        else:
            raise ConfigurationError(
                f"PyTorchShim.to_device: unknown device type {device_type!r}; use 'cpu', 'gpu' or 'mps'"
            )
        if self._model is not None:
            self._model.to(device)
        self._grad_scaler.to_(device)
        self._device = device

    # Serialisation ----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """msgpack ``{"config", "state"}``; the state comes from ``serialize_model(module)``."""
        state = self._serialize_model(self._model)
        if not isinstance(state, bytes):
            raise SerializationError(
                f"serialize_model must return bytes, got a {type(state).__name__}", layer="pytorch"
            )
        return msgpack_dumps({"config": self.cfg, "state": state})

    def from_bytes(self, bytes_data: bytes) -> "PyTorchShim":
        """Load bytes from :meth:`to_bytes` into the module, validating before changing anything."""
        msg = load_shim_msg(bytes_data, "state")
        try:
            model = self._deserialize_model(self._model, msg["state"], self.device)
        except ComposaError:
            raise
        except Exception as error:  # a user's deserialize_model, or torch itself
            raise SerializationError(f"could not load the torch state: {error}", layer="pytorch") from error
        if model is None:
            raise SerializationError("deserialize_model returned None instead of the module", layer="pytorch")
        self._model = model
        self.cfg = dict(msg["config"])
        self._grad_scaler.to_(self.device)
        return self


def default_serialize_model(module: Any) -> bytes:
    """The state dict as msgpack: name -> [torch dtype name, shape, numpy array of the raw values].

    numpy has no bfloat16, so bfloat16 tensors are stored as their uint16 bit patterns
    with the dtype name "bfloat16" and viewed back on load (no rounding either way).
    """
    import torch  # lazy: torch is optional

    tensors = {}
    for name, tensor in module.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            raise SerializationError(
                f"state dict entry {name!r} is a {type(tensor).__name__}, not a tensor; pass "
                f"serialize_model/deserialize_model to PyTorchWrapper_v3 to save it",
                layer="pytorch",
            )
        tensors[name] = _tensor_to_entry(name, tensor)
    return msgpack_dumps({"format": STATE_FORMAT, "version": STATE_VERSION, "tensors": tensors})


def default_deserialize_model(module: Any, state_bytes: bytes, device: Any) -> Any:
    """Load state bytes into `module` after checking every name and shape; returns the module."""
    if state_bytes[:4] == _ZIP_MAGIC:
        state = _load_legacy_torch_state(state_bytes)
    else:
        state = _decode_state(state_bytes)
    current = module.state_dict()
    missing = sorted(set(current) - set(state))
    unexpected = sorted(set(state) - set(current))
    if missing or unexpected:
        raise SerializationError(
            f"the saved state does not match the module {type(module).__name__}: "
            f"missing {missing[:10]}, unexpected {unexpected[:10]}",
            layer="pytorch",
        )
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(current[name].shape):
            raise SerializationError(
                f"state entry {name!r} has shape {tuple(tensor.shape)} in the bytes but "
                f"{tuple(current[name].shape)} in the module",
                layer="pytorch",
            )
    module.load_state_dict(state, strict=True)
    return module


# Thinc's names for the two, as Thinc users import them
default_serialize_torch_model = default_serialize_model
default_deserialize_torch_model = default_deserialize_model


def _tensor_to_entry(name: str, tensor: Any) -> List[Any]:
    import torch  # lazy: torch is optional

    tensor = tensor.detach().cpu().contiguous()
    # the shape travels separately because composa.serialize turns 0-d arrays into 1-d ones
    shape = list(tensor.shape)
    if tensor.dtype == torch.bfloat16:
        return ["bfloat16", shape, tensor.view(torch.int16).numpy().view("uint16")]
    dtype_name = str(tensor.dtype).replace("torch.", "")
    if dtype_name not in _PLAIN_DTYPES:
        raise SerializationError(
            f"state entry {name!r} has dtype {dtype_name}, which composa cannot save without pickle; "
            f"pass serialize_model/deserialize_model to PyTorchWrapper_v3",
            layer="pytorch",
        )
    return [dtype_name, shape, tensor.numpy()]


def _decode_state(state_bytes: bytes) -> Dict[str, Any]:
    import torch  # lazy: torch is optional

    msg = msgpack_loads(state_bytes)
    if not isinstance(msg, dict) or msg.get("format") != STATE_FORMAT:
        raise SerializationError(
            "the shim state is not composa's torch state format (pickle and other formats are "
            "refused; use deserialize_model for custom formats)",
            layer="pytorch",
        )
    if not isinstance(msg.get("version"), int) or msg["version"] > STATE_VERSION:
        raise SerializationError(f"unsupported torch state version {msg.get('version')!r}", layer="pytorch")
    tensors = msg.get("tensors")
    if not isinstance(tensors, dict):
        raise SerializationError("malformed torch state: 'tensors' must be a map", layer="pytorch")
    state = {}
    for name, entry in tensors.items():
        if not (
            isinstance(entry, (list, tuple))
            and len(entry) == 3
            and isinstance(entry[1], (list, tuple))
            and all(type(d) is int and d >= 0 for d in entry[1])
            and isinstance(entry[2], numpy.ndarray)
            and math.prod(entry[1]) == entry[2].size  # Python ints: a huge shape cannot overflow
        ):
            raise SerializationError(f"malformed torch state entry {name!r}", layer="pytorch")
        dtype_name, shape, array = entry
        array = array.reshape(tuple(shape))
        if dtype_name == "bfloat16" and array.dtype.str == "<u2":
            state[name] = torch.from_numpy(array.view("int16").copy()).view(torch.bfloat16)
        elif dtype_name in _PLAIN_DTYPES and array.dtype.name == dtype_name:
            state[name] = torch.from_numpy(array.copy())
        else:
            raise SerializationError(
                f"torch state entry {name!r}: dtype {dtype_name!r} with data of dtype {array.dtype}",
                layer="pytorch",
            )
    return state


def _load_legacy_torch_state(state_bytes: bytes) -> Dict[str, Any]:
    """A state dict written by ``torch.save`` (Thinc's format), loaded with weights_only=True.

    torch's weights-only unpickler only rebuilds tensors and plain containers; anything
    else (e.g. a payload that would run code) is refused.
    """
    import torch  # lazy: torch is optional

    try:
        state = torch.load(io.BytesIO(state_bytes), map_location="cpu", weights_only=True)
    except Exception as error:
        raise SerializationError(
            f"refusing torch.save data that is not a plain state dict of tensors: {error}",
            layer="pytorch",
        ) from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SerializationError("torch.save data is not a state dict of tensors", layer="pytorch")
    return state


def load_shim_msg(bytes_data: bytes, payload_key: str) -> Dict[str, Any]:
    """The msgpack map of a shim's bytes, checked to hold ``config`` and bytes under `payload_key` (never a pickle)."""
    if not isinstance(bytes_data, (bytes, bytearray)):
        raise SerializationError(f"expected shim bytes, got a {type(bytes_data).__name__}", layer="pytorch")
    if bytes_data[:1] == b"\x80":
        raise SerializationError(
            "these shim bytes look like a pickle, which composa never loads (it can run code)",
            layer="pytorch",
        )
    msg = msgpack_loads(bytes(bytes_data))
    if (
        not isinstance(msg, dict)
        or not isinstance(msg.get("config"), dict)
        or not isinstance(msg.get(payload_key), bytes)
    ):
        raise SerializationError(
            f"malformed shim bytes: expected a map with 'config' and '{payload_key}'", layer="pytorch"
        )
    return msg


def _check_inputs(inputs: Any) -> None:
    if not isinstance(inputs, ArgsKwargs):
        raise ConfigurationError(
            f"PyTorchShim expects ArgsKwargs inputs (convert_inputs must return ArgsKwargs), "
            f"got {describe(inputs)}",
            layer="pytorch",
        )


def no_backprop(*args: Any, **kwargs: Any) -> Any:
    """The backprop of a forward pass run with is_train=False: always a clear error."""
    raise ConfigurationError(
        "backprop is not available: the forward pass ran with is_train=False", layer="pytorch"
    )


def _switch_mode(module: Any, training: bool) -> List[Tuple[Any, bool]]:
    """Put the module in train/eval mode; return the submodules changed, with their old mode."""
    changed = [(sub, sub.training) for sub in module.modules() if sub.training != training]
    if changed:
        module.train(training)
    return changed


def _restore_mode(changed: List[Tuple[Any, bool]]) -> None:
    for sub, training in changed:
        sub.training = training


def _is_grad_leaf(obj: Any) -> bool:
    return is_torch_array(obj) and obj.requires_grad


def _input_grads(inputs: ArgsKwargs, found_inf: bool) -> ArgsKwargs:
    """The gradients of the input tensors that require grad, in place of those tensors."""
    args = inputs.args
    if len(args) == 1 and not inputs.kwargs and _is_grad_leaf(args[0]):  # one tensor: no walk
        return ArgsKwargs(args=(_take_grad(args[0], found_inf),), kwargs={})
    return convert_recursive(_is_grad_leaf, functools.partial(_take_grad, found_inf=found_inf), inputs)


def _take_grad(tensor: Any, found_inf: bool) -> Any:
    """An input tensor's gradient (zeros if none, or after an overflow), taken off the tensor."""
    grad = tensor.grad
    tensor.grad = None  # a second backprop must not see this one's gradient
    if grad is None:
        import torch  # lazy: torch is optional

        return torch.zeros_like(tensor)
    if found_inf:
        grad.zero_()
    return grad


def _backward_pairs(grads: ArgsKwargs) -> Tuple[List[Any], List[Any]]:
    """The (outputs, output gradients) of an autograd.backward ArgsKwargs, gradients cast to match."""
    if not isinstance(grads, ArgsKwargs):
        raise ConfigurationError(
            f"PyTorchShim backprop expects ArgsKwargs for torch.autograd.backward, got {describe(grads)}",
            layer="pytorch",
        )
    # whatever the caller passed: a tensor or an iterable of them (checked by torch)
    tensors: Any = grads.args[0] if grads.args else grads.kwargs.get("tensors")
    grad_tensors: Any = grads.args[1] if len(grads.args) > 1 else grads.kwargs.get("grad_tensors")
    tensors = [tensors] if is_torch_array(tensors) else list(tensors)
    if grad_tensors is None:
        return tensors, [None] * len(tensors)
    grad_tensors = [grad_tensors] if is_torch_array(grad_tensors) else list(grad_tensors)
    if len(grad_tensors) != len(tensors):
        raise ShapeMismatchError(
            f"backprop got {len(grad_tensors)} gradients for {len(tensors)} outputs", layer="pytorch"
        )
    return tensors, [None if grad is None else _matching_grad(output, grad) for output, grad in zip(tensors, grad_tensors)]


def _matching_grad(output: Any, grad: Any) -> Any:
    """`grad` checked to have `output`'s shape, cast to its dtype and device where they differ."""
    if grad.shape != output.shape:
        raise ShapeMismatchError(
            f"backprop expected a gradient of shape {tuple(output.shape)}, got {tuple(grad.shape)}",
            layer="pytorch",
        )
    # (two CPU tensors need no device objects compared: each costs a fresh one)
    if grad.dtype != output.dtype or not (grad.is_cpu and output.is_cpu) and grad.device != output.device:
        grad = grad.to(device=output.device, dtype=output.dtype)
    return grad


def _extra_backward_kwargs(grads: ArgsKwargs) -> Dict[str, Any]:
    if len(grads.kwargs) == 1 and "grad_tensors" in grads.kwargs:
        return {}
    return {k: v for k, v in grads.kwargs.items() if k not in ("tensors", "grad_tensors")}
