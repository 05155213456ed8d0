"""composa's layers: each module is one layer family.

The public names are listed explicitly below (and again in ``__all__``): a new layer is
imported in its section here and added to ``__all__`` and to ``docs/api.md``.
"""
# Weight layers and activations (dense family, softmax, embeddings, normalisation, dropout)
from .linear import Linear
from .dense import (
    Relu,
    Mish,
    Swish,
    Gelu,
    Dish,
    HardSwish,
    HardSwishMobilenet,
    ClippedLinear,
    HardSigmoid,
    HardTanh,
    ReluK,
)
from .softmax import Softmax, Softmax_v2
from .sigmoid import Sigmoid, Logistic
from .sigmoid_activation import sigmoid_activation
from .softmax_activation import softmax_activation
from .maxout import Maxout
from .layernorm import LayerNorm
from .dropout import Dropout
from .multisoftmax import MultiSoftmax
from .embed import Embed
from .hashembed import HashEmbed
from .sparselinear import SparseLinear, SparseLinear_v2
from .cauchysimilarity import CauchySimilarity

# Sequence layers (LSTM, attention, reductions, windows, id mapping, resizable)
from .lstm import LSTM
from .parametricattention import ParametricAttention, ParametricAttention_v2
from .reduce_sum import reduce_sum
from .reduce_mean import reduce_mean
from .reduce_max import reduce_max
from .reduce_first import reduce_first
from .reduce_last import reduce_last
from .expand_window import expand_window
from .remap_ids import remap_ids, remap_ids_v2
from .premap_ids import premap_ids
from .strings2arrays import strings2arrays
from .resizable import resizable

# Combinators and adapters (chain, concatenate, add, with_*, conversions)
from .chain import chain
from .noop import noop
from .add import add
from .concatenate import concatenate
from .clone import clone
from .residual import residual
from .tuplify import tuplify
from .siamese import siamese
from .bidirectional import bidirectional
from .uniqued import uniqued
from .map_list import map_list
from .with_array import with_array
from .with_array2d import with_array2d
from .with_padded import with_padded
from .with_list import with_list
from .with_ragged import with_ragged
from .with_flatten import with_flatten
from .with_flatten_v2 import with_flatten_v2
from .with_getitem import with_getitem
from .with_reshape import with_reshape
from .with_debug import with_debug
from .with_nvtx_range import with_nvtx_range
from .with_cpu import with_cpu
from .list2array import list2array
from .list2ragged import list2ragged
from .ragged2list import ragged2list
from .list2padded import list2padded
from .padded2list import padded2list
from .array_getitem import array_getitem

# Framework wrappers (PyTorchWrapper, PyTorchLSTM, TorchScriptWrapper)
from .pytorchwrapper import (
    PyTorchWrapper,
    PyTorchWrapper_v2,
    PyTorchWrapper_v3,
    PyTorchRNNWrapper,
    PyTorchLSTM,
    TorchScriptWrapper_v1,
    pytorch_to_torchscript_wrapper,
)

# Thinc's module paths (``thinc.layers.gelu``, ``.reduce_sum``, ...) re-export layers that live in
# a family module here. The ones named like their layer are imported by name above: loaded here,
# a user's later ``import composa.layers.reduce_sum`` cannot rebind the package attribute.
from . import relu, mish, swish, gelu, dish, hard_swish, hard_swish_mobilenet, clipped_linear  # noqa: F401
from . import logistic, parametricattention_v2, torchscriptwrapper  # noqa: F401

__all__ = [
    "Linear",
    "Relu",
    "Mish",
    "Swish",
    "Gelu",
    "Dish",
    "HardSwish",
    "HardSwishMobilenet",
    "ClippedLinear",
    "HardSigmoid",
    "HardTanh",
    "ReluK",
    "Softmax",
    "Softmax_v2",
    "Sigmoid",
    "sigmoid_activation",
    "Logistic",
    "softmax_activation",
    "Maxout",
    "LayerNorm",
    "Dropout",
    "MultiSoftmax",
    "Embed",
    "HashEmbed",
    "SparseLinear",
    "SparseLinear_v2",
    "CauchySimilarity",
    "LSTM",
    "ParametricAttention",
    "ParametricAttention_v2",
    "reduce_sum",
    "reduce_mean",
    "reduce_max",
    "reduce_first",
    "reduce_last",
    "expand_window",
    "remap_ids",
    "remap_ids_v2",
    "premap_ids",
    "strings2arrays",
    "resizable",
    "chain",
    "noop",
    "add",
    "concatenate",
    "clone",
    "residual",
    "tuplify",
    "siamese",
    "bidirectional",
    "uniqued",
    "map_list",
    "with_array",
    "with_array2d",
    "with_padded",
    "with_list",
    "with_ragged",
    "with_flatten",
    "with_flatten_v2",
    "with_getitem",
    "with_reshape",
    "with_debug",
    "with_nvtx_range",
    "with_cpu",
    "list2array",
    "list2ragged",
    "ragged2list",
    "list2padded",
    "padded2list",
    "array_getitem",
    "PyTorchWrapper",
    "PyTorchWrapper_v2",
    "PyTorchWrapper_v3",
    "PyTorchRNNWrapper",
    "PyTorchLSTM",
    "TorchScriptWrapper_v1",
    "pytorch_to_torchscript_wrapper",
]
