"""Every layer on CupyOps: the CPU model's outputs and gradients, and a finite-difference check.

Each case builds and initialises a small model on the CPU; a copy is moved with
``to_gpu(0)`` and must predict, forward and backprop as the CPU model does (same weights,
same inputs moved with ``to_ops``), and pass ``check_gradients`` on the GPU. The same
table runs with the copy on NumpyOps (``to_cpu``) everywhere, so the cases themselves are
checked on machines without a GPU.
"""
from dataclasses import dataclass
from typing import Any, Callable, Tuple

import numpy
import pytest

import composa.layers
from composa import Model, NumpyOps
from composa.layers import (
    LSTM, CauchySimilarity, ClippedLinear, Dish, Dropout, Embed, Gelu, HardSigmoid, HardSwish,
    HardSwishMobilenet, HardTanh, HashEmbed, LayerNorm, Linear, Logistic, Maxout, Mish, MultiSoftmax,
    ParametricAttention, ParametricAttention_v2, Relu, ReluK, Sigmoid, Softmax, Softmax_v2,
    SparseLinear, SparseLinear_v2, Swish, add, array_getitem, bidirectional, chain, clone,
    concatenate, expand_window, list2array, list2padded, list2ragged, map_list, noop, padded2list,
    premap_ids, ragged2list, reduce_first, reduce_last, reduce_max, reduce_mean, reduce_sum,
    remap_ids, remap_ids_v2, residual, resizable, siamese, sigmoid_activation, softmax_activation,
    strings2arrays, tuplify, uniqued, with_array, with_array2d, with_cpu, with_debug, with_flatten,
    with_flatten_v2, with_getitem, with_list, with_nvtx_range, with_padded, with_ragged, with_reshape,
)
from composa.layers.resizable import resize_linear_weighted
from composa.testing import check_gradients
from composa.types import Ragged
from composa.util import fix_random_seed, partial

from gpu_helpers import MODEL_TWINS, assert_twin_matches


@dataclass
class Case:
    """A model builder (initialised on the CPU), its input, and how to check it."""

    build: Callable[[], Model]
    X: Callable[[], Any]
    covers: Tuple[str, ...]
    random: bool = False  # dropout: training outputs differ between the devices' generators
    check_input: bool = True
    max_checks: int = 10


def floats(*shape, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, shape).astype("float32")


def seqs(*lengths, width=2):
    return [floats(length, width, seed=i) for i, length in enumerate(lengths)]


def ragged(*lengths, width=3):
    return Ragged(floats(sum(lengths), width), numpy.asarray(lengths, dtype="int32"))


def padded(*lengths, width=3):
    return NumpyOps().list2padded(seqs(*lengths, width=width))


def ids(values, dtype="int32"):
    return numpy.asarray(values, dtype=dtype)


def random_b(ops, shape):
    # away from zero: a zero bias can put a relu exactly on its kink
    return ops.asarray_f(numpy.random.uniform(0.1, 1.0, shape))


def random_W(ops, shape):
    return ops.asarray_f(numpy.random.uniform(-1.0, 1.0, shape))


def init(model, X=None, Y=None):
    return model.initialize(X=X, Y=Y)


def with_param(model, name, value):
    model.set_param(name, value)
    return model


def lstm(*args, **kwargs):
    model = LSTM(*args, **kwargs).initialize()
    return with_param(model, "HC0", floats(*model.get_param("HC0").shape, seed=9) * 0.3)


def softmax_loss(softmax, truths, blocks):
    """Loss terms ``-truths * log(Y)`` over a softmax layer, handing it the logit gradient its contract
    asks for (per block of outputs: ``c - Y * sum(c)`` for terms ``c * log(Y)``)."""

    def forward(model, X, is_train):
        T = model.ops.asarray(truths)
        Y, backprop_softmax = model.layers[0](X, is_train)

        def backprop(d_terms):
            weights = -d_terms * T
            d_logits = weights.copy()
            for start, width in zip(numpy.cumsum([0, *blocks]).tolist(), blocks):
                block = slice(start, start + width)
                d_logits[:, block] -= Y[:, block] * weights[:, block].sum(axis=1, keepdims=True)
            return backprop_softmax(d_logits)

        return -T * model.ops.xp.log(Y), backprop

    return Model("softmax_loss", forward, layers=[softmax])


def one_hot_blocks(rows, blocks):
    rng = numpy.random.RandomState(0)
    return numpy.hstack([numpy.eye(width)[rng.randint(0, width, rows)] for width in blocks]).astype("float32")


def dense(factory):
    return Case(lambda: factory(4, 3, init_b=random_b).initialize(), lambda: floats(5, 3), (factory.__name__,))


CASES = {
    "Linear": Case(lambda: Linear(2, 3, init_b=random_b).initialize(), lambda: floats(4, 3), ("Linear",)),
    **{f.__name__: dense(f) for f in (Relu, Mish, Swish, Gelu, Dish, HardSwish, HardSwishMobilenet, ClippedLinear, HardSigmoid, HardTanh, ReluK)},
    "Relu-normalize-dropout": Case(lambda: init(Relu(4, 3, normalize=True, dropout=0.2), floats(6, 3)), lambda: floats(6, 3), ("Relu",), random=True),
    "Softmax": Case(
        lambda: softmax_loss(Softmax(4, 3, init_W=random_W, init_b=random_W).initialize(), one_hot_blocks(5, [4]), [4]),
        lambda: floats(5, 3), ("Softmax",),
    ),
    "Softmax_v2": Case(
        lambda: softmax_loss(Softmax_v2(4, 3, init_W=random_W, init_b=random_W, temperature=0.5).initialize(), one_hot_blocks(5, [4]), [4]),
        lambda: floats(5, 3), ("Softmax_v2",),
    ),
    "MultiSoftmax": Case(
        lambda: softmax_loss(
            with_param(with_param(MultiSoftmax((2, 3), 4).initialize(), "W", floats(5, 4)), "b", floats(5, seed=1)),
            one_hot_blocks(5, [2, 3]), [2, 3],
        ),
        lambda: floats(5, 4), ("MultiSoftmax",),
    ),
    "Sigmoid": Case(lambda: Sigmoid(2, 3, init_W=random_W, init_b=random_W).initialize(), lambda: floats(4, 3), ("Sigmoid",)),
    "sigmoid_activation": Case(sigmoid_activation, lambda: floats(4, 3), ("sigmoid_activation", "Logistic")),
    "Logistic": Case(Logistic, lambda: floats(4, 3), ("Logistic",)),
    "softmax_activation": Case(
        lambda: chain(Linear(4, 3, init_b=random_b), softmax_activation()).initialize(), lambda: floats(5, 3), ("softmax_activation",)
    ),
    "Maxout": Case(lambda: Maxout(2, 3, nP=3, init_b=random_W).initialize(), lambda: floats(5, 3), ("Maxout",)),
    "Maxout-normalize-dropout": Case(lambda: init(Maxout(4, 3, normalize=True, dropout=0.1), floats(5, 3)), lambda: floats(5, 3), ("Maxout",), random=True),
    "LayerNorm": Case(
        lambda: with_param(with_param(LayerNorm(4).initialize(), "G", floats(4) + 1.5), "b", floats(4, seed=1)),
        lambda: floats(5, 4), ("LayerNorm",),
    ),
    "Dropout": Case(lambda: Dropout(0.3), lambda: floats(6, 5), ("Dropout",), random=True),
    "Dropout-list": Case(lambda: Dropout(0.5), lambda: seqs(4, 0, 3), ("Dropout",), random=True),
    "Dropout-ragged": Case(lambda: Dropout(0.5), lambda: ragged(2, 3), ("Dropout",), random=True),
    "Dropout-padded": Case(lambda: Dropout(0.5), lambda: padded(3, 1, 2), ("Dropout",), random=True),
    "Embed": Case(lambda: Embed(4, 10).initialize(), lambda: ids([3, 0, 3, 7, 1]), ("Embed",)),
    "HashEmbed": Case(lambda: HashEmbed(3, 15).initialize(), lambda: ids([12, 2**63 + 5, 12, 999999], "uint64"), ("HashEmbed",)),
    **{
        f.__name__: Case(
            lambda f=f: with_param(f(3, length=16).initialize(), "b", floats(3)),
            lambda: (ids([5, 17, 5, 2**40 + 3, 9], "uint64"), floats(5), ids([2, 0, 3])),
            (f.__name__,), check_input=False,  # sparse features get no gradient
        )
        for f in (SparseLinear, SparseLinear_v2)
    },
    "CauchySimilarity": Case(
        lambda: with_param(CauchySimilarity(3).initialize(), "W", numpy.asarray([0.5, 1.5, 2.0], dtype="f")),
        lambda: (floats(5, 3), floats(5, 3, seed=1)), ("CauchySimilarity",),
    ),
    "LSTM": Case(lambda: lstm(2, 3), lambda: padded(3, 1, 2), ("LSTM",)),
    "LSTM-bi-depth2": Case(lambda: lstm(4, 3, bi=True, depth=2), lambda: padded(3, 1, 2), ("LSTM",), max_checks=6),
    "LSTM-dropout": Case(lambda: lstm(4, 3, depth=2, dropout=0.5), lambda: padded(3, 2), ("LSTM",), random=True, max_checks=6),
    "ParametricAttention": Case(lambda: ParametricAttention(3).initialize(), lambda: ragged(3, 1, 2), ("ParametricAttention",)),
    "ParametricAttention_v2": Case(
        lambda: ParametricAttention_v2(key_transform=Linear(3, 3)).initialize(), lambda: ragged(3, 1, 2), ("ParametricAttention_v2",)
    ),
    **{f.__name__: Case(f, lambda: ragged(3, 1, 2), (f.__name__,)) for f in (reduce_sum, reduce_mean, reduce_max, reduce_first, reduce_last)},
    "reduce_sum-empty-sequence": Case(reduce_sum, lambda: ragged(3, 0, 2), ("reduce_sum", "reduce_mean")),
    "expand_window": Case(lambda: expand_window(window_size=2), lambda: floats(4, 3), ("expand_window",)),
    "expand_window-ragged": Case(lambda: expand_window(window_size=1), lambda: ragged(3, 0, 2, width=2), ("expand_window",)),
    "remap_ids": Case(lambda: remap_ids({"the": 1, "cat": 2}), lambda: ["the", "dog", "cat"], ("remap_ids",)),
    "remap_ids_v2": Case(lambda: remap_ids_v2({10: 1, 20: 2}), lambda: ids([20, 30, 10], "int64"), ("remap_ids_v2",)),
    "premap_ids": Case(lambda: premap_ids({10: 1, 20: 2}, default=5), lambda: ids([20, 30, 10], "int64"), ("premap_ids",)),
    "strings2arrays": Case(strings2arrays, lambda: [["a", "bc"], ["d"]], ("strings2arrays",)),
    "resizable": Case(
        lambda: resizable(Linear(3, 4, init_b=random_b), resize_layer=partial(resize_linear_weighted)).initialize(),
        lambda: floats(5, 4), ("resizable",),
    ),
    "chain": Case(lambda: init(chain(Linear(4), Relu(3, init_b=random_b), Linear(2)), floats(6, 5)), lambda: floats(6, 5, seed=1), ("chain",)),
    "noop": Case(lambda: noop(Linear(2, 2)), lambda: floats(3, 2), ("noop",)),
    "add": Case(lambda: init(add(Linear(3), Relu(3, init_b=random_b), chain(Relu(4, init_b=random_b), Linear(3))), floats(5, 4)), lambda: floats(5, 4, seed=1), ("add",)),
    "concatenate": Case(lambda: init(concatenate(Linear(3), Relu(2, init_b=random_b)), floats(5, 4)), lambda: floats(5, 4, seed=1), ("concatenate",)),
    "clone": Case(lambda: init(clone(Relu(3, init_b=random_b), 3), floats(5, 3)), lambda: floats(5, 3, seed=1), ("clone",)),
    "residual": Case(lambda: init(residual(chain(Relu(5, init_b=random_b), Linear())), floats(4, 3)), lambda: floats(4, 3, seed=1), ("residual",)),
    "tuplify": Case(lambda: init(tuplify(Linear(3), Relu(2, init_b=random_b)), floats(4, 5)), lambda: floats(4, 5, seed=1), ("tuplify",)),
    "siamese": Case(
        lambda: init(siamese(Relu(4, init_b=random_b), CauchySimilarity()), (floats(5, 3), floats(5, 3, seed=1))),
        lambda: (floats(5, 3, seed=2), floats(5, 3, seed=3)), ("siamese",),
    ),
    "bidirectional": Case(lambda: init(with_padded(bidirectional(LSTM(2, 3))), seqs(3, 1, width=3)), lambda: seqs(3, 1, 2, width=3), ("bidirectional",), max_checks=6),
    "uniqued": Case(lambda: init(uniqued(chain(Embed(2, 6, column=0), Linear(3))), ids([[0], [1]])), lambda: ids([[3], [1], [3], [3], [5]]), ("uniqued",)),
    "map_list": Case(lambda: init(map_list(chain(Relu(4, init_b=random_b), Linear(5))), [floats(3, 2)]), lambda: seqs(3, 0, 2), ("map_list",)),
    "with_array": Case(lambda: with_array(Linear(2, 3)).initialize(), lambda: seqs(2, 0, 3, width=3), ("with_array",)),
    "with_array2d-padded": Case(lambda: with_array2d(Linear(2, 3)).initialize(), lambda: padded(3, 1, 2), ("with_array2d",)),
    "with_padded": Case(lambda: with_padded(with_array2d(Linear(2, 3))).initialize(), lambda: seqs(3, 0, 2, width=3), ("with_padded",)),
    "with_list-ragged": Case(lambda: init(with_list(map_list(Linear(2, 3))), seqs(2, width=3)), lambda: ragged(2, 0, 3), ("with_list",)),
    "with_ragged": Case(lambda: with_ragged(with_array(Linear(2, 3))).initialize(), lambda: seqs(2, 0, 3, width=3), ("with_ragged",)),
    "with_flatten": Case(
        lambda: init(with_flatten(with_array(Linear(2, 3))), [[floats(2, 3)]]), lambda: [seqs(2, 1, width=3), [], seqs(3, width=3)], ("with_flatten",)
    ),
    "with_flatten_v2": Case(
        lambda: init(with_flatten_v2(with_array(Linear(2, 3))), [[floats(2, 3)]]), lambda: [seqs(2, 1, width=3), seqs(3, width=3)], ("with_flatten_v2",)
    ),
    "with_getitem": Case(
        lambda: init(with_getitem(0, chain(Relu(4, init_b=random_b), Linear(5))), (floats(2, 3), floats(2, 7))),
        lambda: (floats(3, 3, seed=1), floats(2, 7, seed=2)), ("with_getitem",),
    ),
    "with_reshape": Case(lambda: init(with_reshape(chain(Relu(4, init_b=random_b), Linear(2))), floats(2, 3, 5)), lambda: floats(2, 3, 5, seed=1), ("with_reshape",)),
    "with_debug-nvtx": Case(
        lambda: init(with_nvtx_range(with_debug(chain(Linear(3), Linear(2))), name="block"), floats(2, 4)),
        lambda: floats(3, 4, seed=1), ("with_debug", "with_nvtx_range"),
    ),
    "with_cpu": Case(lambda: init(with_cpu(chain(Relu(4, init_b=random_b), Linear(2)), NumpyOps()), floats(3, 5)), lambda: floats(4, 5, seed=1), ("with_cpu",)),
    "list2array": Case(lambda: chain(list2array(), Linear(2, 3)).initialize(), lambda: seqs(2, 0, 3, width=3), ("list2array",)),
    "list2ragged": Case(
        lambda: chain(list2ragged(), with_array(Linear(2, 3)), ragged2list()).initialize(), lambda: seqs(2, 3, width=3), ("list2ragged", "ragged2list")
    ),
    "list2padded": Case(
        lambda: chain(list2padded(), with_array2d(Linear(2, 3)), padded2list()).initialize(), lambda: seqs(3, 1, 3, width=3), ("list2padded", "padded2list")
    ),
    "array_getitem": Case(
        lambda: init(chain(array_getitem((slice(None), slice(1, 3))), Linear(2)), floats(4, 5)), lambda: floats(4, 5, seed=1), ("array_getitem",)
    ),
}
# Tested on CUDA with their own shims in tests/shims/test_pytorch_on_gpu.py.
ELSEWHERE = {
    "PyTorchWrapper", "PyTorchWrapper_v2", "PyTorchWrapper_v3", "PyTorchRNNWrapper", "PyTorchLSTM",
    "TorchScriptWrapper_v1", "pytorch_to_torchscript_wrapper",
}


def test_every_public_layer_has_a_case():
    covered = {name for case in CASES.values() for name in case.covers}
    assert sorted(set(composa.layers.__all__) - covered - ELSEWHERE) == []


@pytest.mark.parametrize("backend", MODEL_TWINS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_on_the_backend_matches_the_cpu_and_finite_differences(name, backend):
    case = CASES[name]
    fix_random_seed(0)
    model, X = assert_twin_matches(case.build(), case.X(), backend, random=case.random, where=name)
    check_gradients(model, X, check_input=case.check_input, max_checks=case.max_checks)
