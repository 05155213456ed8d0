"""The public surface of the backends: what users and Thinc-style code can call on an Ops."""
import inspect

import pytest

from composa.backends import CupyOps, NumpyOps, Ops
from composa.thinc_compat import OpsThincAliases

# Recorded from main before the LSTM engine, the argument checks and the Thinc aliases
# left backends/ops.py (plus hash_rows, HashEmbed's lookup, added on purpose): moving code must
# not add or drop a public name.
PUBLIC_NAMES = [
    "adam", "affine", "alloc", "alloc1f", "alloc1i", "alloc2f", "alloc2i", "alloc3f", "alloc3i",
    "alloc4f", "alloc4i", "alloc_f", "alloc_i", "as_contig", "asarray", "asarray1f",
    "asarray1i", "asarray2f", "asarray2i", "asarray3f", "asarray3i", "asarray4f", "asarray4i",
    "asarray_f", "asarray_i", "backprop_clipped_linear", "backprop_dish", "backprop_gelu",
    "backprop_gelu_approx", "backprop_hard_sigmoid", "backprop_hard_swish",
    "backprop_hard_swish_mobilenet", "backprop_hard_tanh", "backprop_lstm", "backprop_maxout",
    "backprop_mish", "backprop_reduce_first", "backprop_reduce_last", "backprop_reduce_max",
    "backprop_reduce_mean", "backprop_reduce_sum", "backprop_relu", "backprop_relu_k",
    "backprop_seq2col", "backprop_sigmoid", "backprop_softmax", "backprop_softmax_sequences",
    "backprop_swish", "cblas", "clip_gradient", "clipped_linear", "dish", "dsigmoid", "dtanh",
    "erf", "flatten", "gather_add", "gelu", "gelu_approx", "gemm", "get_dropout_mask",
    "hard_sigmoid", "hard_swish", "hard_swish_mobilenet", "hard_tanh", "hash", "hash_rows", "insert_into",
    "list2padded", "logloss", "lstm_forward_inference", "lstm_forward_training", "maxout",
    "minibatch", "mish", "multibatch", "name", "ngrams", "pad", "padded2list",
    "position_encode", "reduce_first", "reduce_last", "reduce_max", "reduce_mean", "reduce_sum",
    "relu", "relu_k", "reshape", "reshape1", "reshape1f", "reshape1i", "reshape2", "reshape2f",
    "reshape2i", "reshape3", "reshape3f", "reshape3i", "reshape4", "reshape4f", "reshape4i",
    "reshape_f", "reshape_i", "scatter_add", "sechsq", "seq2col", "sigmoid", "softmax",
    "softmax_sequences", "swish", "tile", "to_numpy", "unflatten", "unpad", "update_averages",
    "xp",
]


def public_names(cls: type) -> list:
    return sorted(name for name in dir(cls) if not name.startswith("_"))


@pytest.mark.parametrize("cls", [Ops, NumpyOps, CupyOps], ids=lambda cls: cls.__name__)
def test_every_backend_keeps_the_recorded_public_names(cls):
    assert public_names(cls) == PUBLIC_NAMES


def test_the_thinc_aliases_are_mixed_into_ops_and_work_on_numpy_ops():
    ops = NumpyOps()
    assert issubclass(Ops, OpsThincAliases)
    assert ops.alloc2f(2, 3).shape == (2, 3) and ops.alloc2f(2, 3).dtype == "float32"
    assert ops.alloc3i(1, 2, 3).dtype == "int32"
    assert ops.asarray1i([1, 2]).dtype == "int32"
    assert ops.reshape3f(ops.alloc1f(6), 1, 2, 3).shape == (1, 2, 3)


def test_numpy_ops_still_takes_use_blis_and_keeps_it():
    assert list(inspect.signature(NumpyOps).parameters) == ["device_type", "device_id", "use_blis", "kwargs"]
    assert NumpyOps(use_blis=True).use_blis is True
    assert NumpyOps().use_blis is False
