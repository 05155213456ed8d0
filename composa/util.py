"""Utilities shared across composa: array helpers, widths, seeds and data validation."""
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import os
import random
import sys
import tempfile
from typing import Any, Callable, Iterator, Optional, Tuple

import numpy

from .errors import ConfigurationError, DataValidationError, ShapeMismatchError
from .types import ArgsKwargs, Padded, Ragged

__all__ = [
    "get_width",
    "get_array_module",
    "is_cupy_array",
    "is_numpy_array",
    "is_xp_array",
    "to_numpy",
    "fix_random_seed",
    "data_validation",
    "DataValidationError",
    "DATA_VALIDATION",
    "partial",
]

DATA_VALIDATION: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "composa_data_validation", default=False
)



def is_cupy_array(obj: Any) -> bool:
    """True for a cupy ndarray (never imports cupy)."""
    return type(obj).__module__.startswith("cupy") and hasattr(obj, "shape")


def is_numpy_array(obj: Any) -> bool:
    """True for a numpy ndarray."""
    return isinstance(obj, numpy.ndarray)


def is_xp_array(obj: Any) -> bool:
    """True for a numpy or cupy ndarray."""
    return is_numpy_array(obj) or is_cupy_array(obj)


def get_array_module(arr: Any) -> Any:
    """numpy or cupy, whichever owns `arr`."""
    if is_numpy_array(arr):
        return numpy
    if is_cupy_array(arr):
        import cupy

        return cupy
    raise ValueError(f"Only numpy and cupy arrays are supported, got {type(arr).__name__}")


def to_numpy(data: Any) -> Any:
    """`data` as a numpy array: numpy passes through, cupy is copied to the host, else numpy.array."""
    if isinstance(data, numpy.ndarray):
        return data
    if hasattr(data, "get"):
        return data.get()
    return numpy.array(data)


def get_width(X: Any, *, dim: int = -1) -> int:
    """The feature width of a batch: last axis of an array, of Ragged/Padded data, or of a list's first item."""
    if isinstance(X, (Ragged, Padded)):
        return get_width(X.data, dim=dim)
    if hasattr(X, "shape") and hasattr(X, "ndim"):
        if X.ndim == 0:
            return 0
        if X.ndim == 1:
            return int(X.max()) + 1 if X.size else 0
        return int(X.shape[dim])
    if isinstance(X, (list, tuple)):
        return 0 if len(X) == 0 else get_width(X[0], dim=dim)
    raise ValueError(f"Cannot get width of object: has neither shape nor __getitem__ ({type(X).__name__})")


def fix_random_seed(seed: int = 0) -> None:
    """Seed Python's, numpy's, torch's (CPU and every CUDA device) and cupy's random generators.

    With a CUDA GPU, cuDNN is also switched to deterministic kernels (no autotuning),
    so two runs with the same seed compute the same numbers.
    """
    random.seed(seed)
    numpy.random.seed(seed)
    try:
        import torch
    except ImportError:
        pass
    else:
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
    from .backends import has_cupy_gpu

    if has_cupy_gpu:
        import cupy

        cupy.random.seed(seed)


# Training utilities: labels, array predicates, copying and recursive containers ---------

__all__ += [
    "to_categorical",
    "is_torch_array",
    "is_torch_cuda_array",
    "is_torch_gpu_array",
    "is_torch_mps_array",
    "is_tensorflow_array",
    "is_tensorflow_gpu_array",
    "is_mxnet_array",
    "is_mxnet_gpu_array",
    "copy_array",
    "convert_recursive",
    "iterate_recursive",
    "ArrayInfo",
    "make_tempfile",
    "use_nvtx_range",
]


def to_categorical(Y: Any, n_classes: Optional[int] = None, *, label_smoothing: float = 0.0) -> Any:
    """One-hot float32 rows ``Y.shape + (n_classes,)`` for integer labels, optionally label-smoothed.

    The gold class gets ``1 - label_smoothing`` and every other class
    ``label_smoothing / (n_classes - 1)``. The result lives where `Y` does (numpy or cupy).
    """
    xp = get_array_module(Y) if is_xp_array(Y) else numpy
    labels = xp.asarray(Y)
    if labels.size == 0:
        labels = labels.astype("int64")
    elif labels.dtype.kind not in "iu":
        raise ConfigurationError(f"to_categorical: labels must be integers, got dtype {labels.dtype}")
    if n_classes is None:
        if labels.size == 0:
            raise ConfigurationError("to_categorical: cannot infer n_classes from no labels; pass n_classes")
        n_classes = int(labels.max()) + 1
    if n_classes < 1:
        raise ConfigurationError(f"to_categorical: n_classes must be >= 1, got {n_classes}")
    if label_smoothing < 0:
        raise ConfigurationError(f"to_categorical: label_smoothing must be >= 0, got {label_smoothing}")
    if label_smoothing > 0:
        if n_classes <= 1:
            raise ConfigurationError("to_categorical: label smoothing needs at least 2 classes")
        if label_smoothing >= (n_classes - 1) / n_classes:
            raise ConfigurationError(
                f"to_categorical: label_smoothing must be < (n_classes - 1) / n_classes = "
                f"{(n_classes - 1) / n_classes:.4g}, or the gold class is no longer the most likely; "
                f"got {label_smoothing}"
            )
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ConfigurationError(
            f"to_categorical: labels must be in [0, {n_classes}), got values in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    off_value = label_smoothing / (n_classes - 1) if label_smoothing > 0 else 0.0
    out = xp.full((labels.size, n_classes), off_value, dtype="float32")
    out[xp.arange(labels.size), labels.reshape(-1)] = 1.0 - label_smoothing
    return out.reshape(tuple(labels.shape) + (n_classes,))


def is_torch_array(obj: Any) -> bool:
    """True for a torch.Tensor (False when torch was never imported: then it cannot be one)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def is_torch_cuda_array(obj: Any) -> bool:
    """True for a torch tensor on a CUDA device."""
    return is_torch_array(obj) and obj.is_cuda


def is_torch_mps_array(obj: Any) -> bool:
    """True for a torch tensor on Apple's MPS device."""
    return is_torch_array(obj) and obj.device.type == "mps"


def is_torch_gpu_array(obj: Any) -> bool:
    """True for a torch tensor on any GPU (CUDA or MPS)."""
    return is_torch_cuda_array(obj) or is_torch_mps_array(obj)


def is_tensorflow_array(obj: Any) -> bool:
    """True for a TensorFlow tensor (False when TensorFlow was never imported)."""
    tensorflow = sys.modules.get("tensorflow")
    return tensorflow is not None and bool(tensorflow.is_tensor(obj))


def is_tensorflow_gpu_array(obj: Any) -> bool:
    """True for a TensorFlow tensor on a GPU."""
    return is_tensorflow_array(obj) and "GPU:" in str(getattr(obj, "device", ""))


def is_mxnet_array(obj: Any) -> bool:
    """True for an MXNet NDArray (False when MXNet was never imported)."""
    mxnet = sys.modules.get("mxnet")
    return mxnet is not None and isinstance(obj, mxnet.nd.NDArray)


def is_mxnet_gpu_array(obj: Any) -> bool:
    """True for an MXNet NDArray on a GPU."""
    return is_mxnet_array(obj) and obj.context.device_type != "cpu"


def copy_array(dst: Any, src: Any) -> None:
    """Copy `src` into `dst` in place, across numpy and cupy (numpy broadcasting applies)."""
    try:
        if is_cupy_array(dst):
            import cupy

            cupy.copyto(dst, cupy.asarray(src))
        else:
            numpy.copyto(dst, to_numpy(src))
    except ValueError as error:
        raise ShapeMismatchError(
            f"copy_array: cannot copy an array of shape {tuple(src.shape)} into one of shape {tuple(dst.shape)}"
        ) from error


def convert_recursive(is_match: Callable[[Any], bool], convert_item: Callable[[Any], Any], obj: Any) -> Any:
    """`obj` with every leaf that `is_match` replaced by ``convert_item(leaf)``.

    Walks dicts (keys and values), lists, tuples and ArgsKwargs, keeping their types.
    """
    if is_match(obj):
        return convert_item(obj)
    if isinstance(obj, ArgsKwargs):
        # Convert the arguments, never the positional indices.
        args = tuple(convert_recursive(is_match, convert_item, arg) for arg in obj.args)
        kwargs = {key: convert_recursive(is_match, convert_item, value) for key, value in obj.kwargs.items()}
        return ArgsKwargs(args=args, kwargs=kwargs)
    if isinstance(obj, dict):
        return {
            convert_recursive(is_match, convert_item, key): convert_recursive(is_match, convert_item, value)
            for key, value in obj.items()
        }
    if isinstance(obj, list):
        return [convert_recursive(is_match, convert_item, item) for item in obj]
    if isinstance(obj, tuple):
        items = [convert_recursive(is_match, convert_item, item) for item in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else tuple(items)
    return obj


def iterate_recursive(is_match: Callable[[Any], bool], obj: Any) -> Iterator[Any]:
    """Yield every leaf of `obj` that `is_match`, through dicts (keys too), lists, tuples and ArgsKwargs."""
    if is_match(obj):
        yield obj
    elif isinstance(obj, ArgsKwargs):
        yield from iterate_recursive(is_match, list(obj.args))
        yield from iterate_recursive(is_match, list(obj.kwargs.values()))
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from iterate_recursive(is_match, key)
            yield from iterate_recursive(is_match, value)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from iterate_recursive(is_match, item)


@dataclasses.dataclass
class ArrayInfo:
    """The shape and dtype of an array, to check that a gradient matches its forward output."""

    shape: Tuple[int, ...]
    dtype: Any

    @classmethod
    def from_array(cls, arr: Any) -> "ArrayInfo":
        return cls(shape=tuple(arr.shape), dtype=arr.dtype)

    def check_consistency(self, arr: Any) -> None:
        """Raise ShapeMismatchError unless `arr` has this shape and dtype."""
        if tuple(arr.shape) != tuple(self.shape):
            raise ShapeMismatchError(f"Shape mismatch in backprop. Y: {tuple(self.shape)}, dY: {tuple(arr.shape)}")
        if arr.dtype != self.dtype:
            raise ShapeMismatchError(f"Type mismatch in backprop. Y: {self.dtype}, dY: {arr.dtype}")


@contextlib.contextmanager
def make_tempfile(mode: str = "r") -> Iterator[Any]:
    """A named temporary file, open in `mode`, deleted when the block ends."""
    handle, name = tempfile.mkstemp()
    os.close(handle)
    file_ = open(name, mode)
    try:
        yield file_
    finally:
        file_.close()
        os.unlink(name)


@contextlib.contextmanager
def use_nvtx_range(message: str, id_color: int = -1) -> Iterator[None]:
    """Mark the block as an NVTX range for GPU profilers (a no-op without a CUDA GPU)."""
    from .backends import has_cupy_gpu

    if not has_cupy_gpu:
        yield
        return
    from cupy.cuda import nvtx

    nvtx.RangePush(message, id_color)
    try:
        yield
    finally:
        nvtx.RangePop()


@contextlib.contextmanager
def data_validation(validation: bool) -> Iterator[None]:
    """Within the block, ``Model.initialize`` checks sample data against forward's annotations."""
    token = DATA_VALIDATION.set(validation)
    try:
        yield
    finally:
        DATA_VALIDATION.reset(token)


def validate_fwd_input_output(name: str, func: Callable, X: Any, Y: Any) -> None:
    """Check that `func` takes (model, X, is_train) and that X/Y match array annotations."""
    from .types import _ArrayAnnotation, validate_array

    signature = inspect.signature(func)
    if len(signature.parameters) != 3:
        raise DataValidationError(name, X, Y, ["forward must take exactly (model, X, is_train)"])
    annotation = list(signature.parameters.values())[1].annotation
    errors = []
    for value, expected in ((X, annotation), (Y, signature.return_annotation)):
        if value is None or not (isinstance(expected, type) and issubclass(expected, _ArrayAnnotation)):
            continue
        try:
            validate_array(value, expected.ndim, expected.kind)
        except (TypeError, ValueError) as error:
            errors.append(error)
    if errors:
        raise DataValidationError(name, X, Y, errors)


def partial(func: Callable, *args: Any, **kwargs: Any) -> Callable:
    """functools.partial that keeps the wrapped function's docstring."""
    result = functools.partial(func, *args, **kwargs)
    result.__doc__ = func.__doc__
    return result


# Torch interop -- owned by the PyTorch interop work ------------------------------------
# torch is optional: nothing here imports it unless a torch tensor is already in play
# or a conversion to torch is requested.

__all__ += ["xp2torch", "torch2xp", "get_torch_default_device"]


def _require_torch(what: str) -> Any:
    """The torch module, or an ImportError saying what needed it and how to install it."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(f"{what} needs PyTorch, which is not installed: pip install 'composa[torch]'") from error
    return torch


def get_torch_default_device() -> Any:
    """torch.device matching the current ops: ``cuda:<current>`` under CupyOps, else ``cpu``."""
    torch = _require_torch("get_torch_default_device")
    from .backends import get_current_ops

    ops = get_current_ops()
    if ops.device_type == "gpu" or getattr(ops, "name", "") == "cupy":
        return torch.device("cuda", torch.cuda.current_device())
    if ops.device_type == "mps":
        return torch.device("mps")
    return torch.device("cpu")


def xp2torch(xp_tensor: Any, requires_grad: bool = False, device: Any = None) -> Any:
    """numpy/cupy array -> torch tensor on `device` (default: get_torch_default_device()).

    CPU arrays share memory with the tensor (``torch.from_numpy``), cupy arrays go
    through DLPack (no copy); a copy is made only when moving between devices or when
    the array is read-only or has negative strides, which torch cannot view.
    """
    torch = _require_torch("xp2torch")
    if isinstance(xp_tensor, torch.Tensor):
        tensor = xp_tensor
    elif is_cupy_array(xp_tensor):
        tensor = torch.utils.dlpack.from_dlpack(xp_tensor)
    else:
        array = xp_tensor if isinstance(xp_tensor, numpy.ndarray) else numpy.asarray(xp_tensor)
        if not array.flags.writeable or (array.ndim and min(array.strides) < 0):
            array = array.copy()
        try:
            tensor = torch.from_numpy(array)
        except TypeError as error:
            from .errors import ConfigurationError

            raise ConfigurationError(
                f"xp2torch: cannot convert an array of dtype {array.dtype} to a torch tensor"
            ) from error
    if device is None:
        device = get_torch_default_device()
    elif not isinstance(device, torch.device):
        device = torch.device(device)
    if tensor.device != device:  # .to() is a no-op for "cuda" when already on the current GPU
        tensor = tensor.to(device)
    if requires_grad and (tensor.is_floating_point() or tensor.is_complex()):
        tensor.requires_grad_()
    return tensor


def torch2xp(torch_tensor: Any, *, ops: Any = None) -> Any:
    """torch tensor -> numpy (CPU) or cupy (CUDA) array; `ops` picks the target explicitly.

    CPU tensors become numpy arrays sharing their memory and CUDA tensors become cupy
    arrays via DLPack. numpy has no bfloat16, so bfloat16 tensors come back as float32
    (a copy).
    """
    torch = _require_torch("torch2xp")
    tensor = torch_tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    target = None if ops is None else getattr(ops, "name", None)
    if tensor.is_cuda and target != "numpy":
        import cupy

        return cupy.from_dlpack(tensor)
    array = tensor.cpu().numpy()
    if target == "cupy":
        import cupy

        return cupy.asarray(array)
    return array

