"""composa: neural networks by composing functions, Thinc-compatible.

``import composa`` gives what ``thinc.api`` gives: write ``from composa import
Model, chain, Relu`` where Thinc code says ``from thinc.api import ...``.

The public surface is the explicit list in ``__all__`` below, reviewed by hand and
checked against ``docs/api.md`` by ``tests/test_public_api.py``. Helpers that are
public in their own module but not part of this surface (``composa.util.partial``,
``composa.util.DATA_VALIDATION``, ``composa.types.Floats2d``, ...) stay importable
from there.
"""
from .about import __version__
from .errors import (
    ArchiveError,
    ComposaError,
    ConfigError,
    ConfigurationError,
    DataFileError,
    DataValidationError,
    DimensionConflictError,
    DistributedError,
    ExportError,
    IdOutOfRangeError,
    OpIndexError,
    PyTorchModuleError,
    SerializationError,
    ShapeMismatchError,
    PredictionInputError,
    UnknownLabelError,
    UnknownNameError,
    UnsetValueError,
)
from .types import ArgsKwargs, Padded, Ragged, Unserializable
from .backends import (
    AppleOps,
    CupyOps,
    MPSOps,
    NumpyOps,
    Ops,
    get_current_ops,
    get_ops,
    prefer_gpu,
    require_cpu,
    require_gpu,
    set_active_gpu,
    set_current_ops,
    set_gpu_allocator,
    use_ops,
    use_pytorch_for_gpu_memory,
    use_tensorflow_for_gpu_memory,
)
from .config import Config, ConfigValidationError, registry
from .initializers import (
    configure_normal_init,
    configure_uniform_init,
    glorot_normal_init,
    glorot_uniform_init,
    he_normal_init,
    he_uniform_init,
    lecun_normal_init,
    lecun_uniform_init,
    normal_init,
    uniform_init,
    zero_init,
)
from .model import (
    Model,
    change_attr_values,
    create_init,
    deserialize_attr,
    serialize_attr,
    set_dropout_rate,
    wrap_model_recursive,
)
from .util import (
    data_validation,
    fix_random_seed,
    get_array_module,
    get_width,
    is_cupy_array,
    to_categorical,
    to_numpy,
)
from .shims.conversions import get_torch_default_device, torch2xp, xp2torch
from .layers import *  # noqa: F401,F403 -- the layer names, listed explicitly in composa/layers/__init__.py
from .layers import __all__ as _layer_names
from .schedules import (
    Schedule,
    compounding,
    constant,
    constant_then,
    cyclic_triangular,
    decaying,
    plateau,
    slanted_triangular,
    to_schedule,
    warmup_linear,
)
from .optimizers import SGD, Adam, Optimizer, RAdam
from .loss import CategoricalCrossentropy, CosineDistance, L2Distance, Loss, SequenceCategoricalCrossentropy
from .shims import PyTorchGradScaler, PyTorchShim, Shim, TorchScriptShim
from .compat import enable_mxnet, enable_tensorflow, has_cupy
from . import datasets  # noqa: F401 -- registers digits.v1 and labelled_files.v1
from .archive import load
from .export import export_onnx
from .state_dict import from_state_dict, load_torch_state_dict, to_state_dict, torch_state_dict

__all__ = [
    # errors
    "ComposaError",
    "ConfigurationError",
    "ShapeMismatchError",
    "IdOutOfRangeError",
    "UnknownNameError",
    "UnsetValueError",
    "DimensionConflictError",
    "SerializationError",
    "DataValidationError",
    "ArchiveError",
    "ConfigError",
    "DataFileError",
    "OpIndexError",
    "PyTorchModuleError",
    "DistributedError",
    "ExportError",
    "UnknownLabelError",
    "PredictionInputError",
    # types
    "ArgsKwargs",
    "Padded",
    "Ragged",
    "Unserializable",
    # backends
    "Ops",
    "NumpyOps",
    "CupyOps",
    "MPSOps",
    "AppleOps",
    "get_ops",
    "get_current_ops",
    "set_current_ops",
    "use_ops",
    "set_gpu_allocator",
    "use_pytorch_for_gpu_memory",
    "use_tensorflow_for_gpu_memory",
    "set_active_gpu",
    "prefer_gpu",
    "require_gpu",
    "require_cpu",
    # config
    "Config",
    "ConfigValidationError",
    "registry",
    # initializers
    "normal_init",
    "uniform_init",
    "glorot_uniform_init",
    "glorot_normal_init",
    "he_uniform_init",
    "he_normal_init",
    "lecun_uniform_init",
    "lecun_normal_init",
    "zero_init",
    "configure_normal_init",
    "configure_uniform_init",
    # model
    "Model",
    "serialize_attr",
    "deserialize_attr",
    "set_dropout_rate",
    "change_attr_values",
    "wrap_model_recursive",
    "create_init",
    # util
    "fix_random_seed",
    "is_cupy_array",
    "data_validation",
    "to_categorical",
    "get_width",
    "get_array_module",
    "to_numpy",
    "torch2xp",
    "xp2torch",
    "get_torch_default_device",
    # layers
    *_layer_names,
    # training: schedules, optimizers, losses
    "Schedule",
    "to_schedule",
    "constant",
    "constant_then",
    "compounding",
    "decaying",
    "warmup_linear",
    "slanted_triangular",
    "cyclic_triangular",
    "plateau",
    "Optimizer",
    "Adam",
    "RAdam",
    "SGD",
    "Loss",
    "CategoricalCrossentropy",
    "SequenceCategoricalCrossentropy",
    "L2Distance",
    "CosineDistance",
    # shims
    "Shim",
    "PyTorchShim",
    "PyTorchGradScaler",
    "TorchScriptShim",
    # frameworks composa does not wrap
    "enable_tensorflow",
    "enable_mxnet",
    "has_cupy",
    # archives
    "load",
    # interop: ONNX, state dicts
    "export_onnx",
    "to_state_dict",
    "from_state_dict",
    "torch_state_dict",
    "load_torch_state_dict",
]
