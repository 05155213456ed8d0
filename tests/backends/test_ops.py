"""Every op on every available Ops class, against PyTorch or a plain reference loop."""
import json
import warnings
from pathlib import Path

import numpy
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from composa.backends import NumpyOps, OpIndexError
from composa.errors import ShapeMismatchError
from composa.types import Padded, SizedGenerator
from composa.util import fix_random_seed

from conftest import OPS_CLASSES, to_host
from murmur_reference import murmur3_x64_128, murmur64a, thinc_hash_words

FLOATS = ["float32", "float64"]
TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-7, atol=1e-7)}
small_settings = settings(max_examples=25, deadline=None)


def random(shape, dtype="float64", seed=0, scale=2.0):
    return (numpy.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def lengths_strategy(max_seqs=5, max_len=4):
    return st.lists(st.integers(0, max_len), min_size=0, max_size=max_seqs)


# Activations ---------------------------------------------------------------------------

# name: (forward(ops, X), backward(ops, dY, X, Y), torch reference function)
ACTIVATIONS = {
    "relu": (lambda o, X: o.relu(X), lambda o, dY, X, Y: o.backprop_relu(dY, Y), F.relu),
    "sigmoid": (
        lambda o, X: o.sigmoid(X),
        lambda o, dY, X, Y: o.backprop_sigmoid(dY, Y),
        torch.sigmoid,
    ),
    "tanh": (lambda o, X: o.xp.tanh(X), lambda o, dY, X, Y: dY * o.dtanh(Y), torch.tanh),
    "clipped_linear": (
        lambda o, X: o.clipped_linear(X, slope=1.5, offset=0.2, min_val=-1.0, max_val=2.0),
        lambda o, dY, X, Y: o.backprop_clipped_linear(dY, X, slope=1.5, offset=0.2, min_val=-1.0, max_val=2.0),
        lambda x: torch.clamp(x * 1.5 + 0.2, -1.0, 2.0),
    ),
    "relu_k": (lambda o, X: o.relu_k(X, n=2.0), lambda o, dY, X, Y: o.backprop_relu_k(dY, X, n=2.0), lambda x: torch.clamp(x, 0, 2.0)),
    "relu_k_default": (lambda o, X: o.relu_k(X), lambda o, dY, X, Y: o.backprop_relu_k(dY, X), F.relu6),
    "hard_sigmoid": (
        lambda o, X: o.hard_sigmoid(X),
        lambda o, dY, X, Y: o.backprop_hard_sigmoid(dY, X),
        lambda x: torch.clamp(0.2 * x + 0.5, 0, 1),
    ),
    "hard_tanh": (lambda o, X: o.hard_tanh(X), lambda o, dY, X, Y: o.backprop_hard_tanh(dY, X), F.hardtanh),
    "swish": (lambda o, X: o.swish(X), lambda o, dY, X, Y: o.backprop_swish(dY, X, Y), F.silu),
    "hard_swish": (
        lambda o, X: o.hard_swish(X),
        lambda o, dY, X, Y: o.backprop_hard_swish(dY, X),
        lambda x: x * torch.clamp(0.2 * x + 0.5, 0, 1),
    ),
    "hard_swish_mobilenet": (
        lambda o, X: o.hard_swish_mobilenet(X),
        lambda o, dY, X, Y: o.backprop_hard_swish_mobilenet(dY, X),
        F.hardswish,
    ),
    "dish": (
        lambda o, X: o.dish(X),
        lambda o, dY, X, Y: o.backprop_dish(dY, X),
        lambda x: 0.5 * x * (1 + x / torch.sqrt(1 + x * x)),
    ),
    "gelu": (lambda o, X: o.gelu(X), lambda o, dY, X, Y: o.backprop_gelu(dY, X), F.gelu),
    "gelu_approx": (
        lambda o, X: o.gelu_approx(X),
        lambda o, dY, X, Y: o.backprop_gelu_approx(dY, X),
        lambda x: F.gelu(x, approximate="tanh"),
    ),
    "mish": (lambda o, X: o.mish(X), lambda o, dY, X, Y: o.backprop_mish(dY, X), F.mish),
    "softmax": (
        lambda o, X: o.softmax(X, temperature=0.7),
        lambda o, dY, X, Y: o.backprop_softmax(Y, dY, temperature=0.7),
        lambda x: torch.softmax(x / 0.7, dim=-1),
    ),
}


def torch_forward_backward(fn, X, dY):
    Xt = torch.tensor(X, requires_grad=True)
    Yt = fn(Xt)
    Yt.backward(torch.tensor(dY))
    return Yt.detach().numpy(), Xt.grad.numpy()


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_torch(ops, name, dtype):
    forward, backward, torch_fn = ACTIVATIONS[name]
    X, dY = random((16, 7), dtype, seed=1, scale=3.0), random((16, 7), dtype, seed=2)
    X[0, :4] = [25.0, -25.0, 0.5, -0.5]  # far beyond thresholds
    expected_Y, expected_dX = torch_forward_backward(torch_fn, X, dY)
    X_ops, dY_ops = ops.asarray(X.copy()), ops.asarray(dY.copy())  # copies: asarray may return its input
    Y = forward(ops, X_ops)
    dX = backward(ops, dY_ops, X_ops, Y)
    assert Y.dtype == X.dtype and dX.dtype == X.dtype
    numpy.testing.assert_allclose(to_host(Y), expected_Y, **TOL[dtype])
    numpy.testing.assert_allclose(to_host(dX), expected_dX, **TOL[dtype])
    numpy.testing.assert_array_equal(to_host(X_ops), X)  # not in place unless asked
    numpy.testing.assert_array_equal(to_host(dY_ops), dY)


@pytest.mark.parametrize("slope", [1.0, -1.0])
def test_clipped_linear_passes_no_gradient_at_its_bounds_like_torch_hardtanh(ops, slope):
    X = numpy.asarray([0.0, -1.0, -0.5, 1.0, 0.5]) * slope  # Z = slope * X: 0, -1, -0.5, 1, 0.5
    torch_X = torch.tensor(X, requires_grad=True)
    F.hardtanh(torch_X * slope, 0.0, 1.0).sum().backward()
    dX = ops.backprop_clipped_linear(ops.asarray(numpy.ones(5)), ops.asarray(X), slope=slope, min_val=0.0, max_val=1.0)
    numpy.testing.assert_array_equal(to_host(dX), torch_X.grad.numpy())


@pytest.mark.parametrize(
    "name", ["relu", "sigmoid", "clipped_linear", "swish", "hard_swish", "gelu", "mish", "dish", "softmax", "hard_swish_mobilenet", "gelu_approx"]
)
def test_inplace_activation_writes_into_its_input(ops, name):
    methods = {"clipped_linear": lambda X, **kw: ops.clipped_linear(X, slope=0.5, **kw)}
    forward = methods.get(name, getattr(ops, name))
    X = ops.asarray(random((5, 4), "float32", seed=3))
    expected = forward(X.copy())
    result = forward(X, inplace=True)
    assert result is X
    numpy.testing.assert_allclose(to_host(X), to_host(expected), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_of_an_empty_batch_is_empty(ops, name):
    forward, backward, _ = ACTIVATIONS[name]
    X = ops.alloc2f(0, 5)
    Y = forward(ops, X)
    assert Y.shape == (0, 5)
    assert backward(ops, ops.alloc2f(0, 5), X, Y).shape == (0, 5)


def test_backprop_rejects_a_gradient_of_another_shape(ops):
    X = ops.alloc2f(3, 4)
    with pytest.raises(ShapeMismatchError, match=r"backprop_mish.*\(3, 5\).*\(3, 4\)"):
        ops.backprop_mish(ops.alloc2f(3, 5), X)


@pytest.mark.parametrize("dtype", FLOATS)
def test_sigmoid_is_accurate_in_the_tails(ops, dtype):
    X = numpy.asarray([-30.0, -15.0, 15.0, 30.0, -200.0, 200.0], dtype=dtype)
    expected = torch.sigmoid(torch.tensor(X)).numpy()
    numpy.testing.assert_allclose(to_host(ops.sigmoid(ops.asarray(X)))[:4], expected[:4], rtol=1e-5)
    numpy.testing.assert_allclose(to_host(ops.sigmoid(ops.asarray(X)))[4:], expected[4:], atol=1e-30)


@pytest.mark.parametrize("dtype", FLOATS)
def test_erf_and_sechsq_match_torch(ops, dtype):
    X = random((50,), dtype, seed=4)
    erf = to_host(ops.erf(ops.asarray(X)))
    assert erf.dtype == X.dtype
    # float32 on the CPU uses a polynomial good to 1.5e-7 (plus float32 rounding); float64 is exact
    numpy.testing.assert_allclose(erf, torch.erf(torch.tensor(X)).numpy(), atol=4e-7 if dtype == "float32" else 1e-15)
    sechsq = to_host(ops.sechsq(ops.asarray(X)))
    numpy.testing.assert_allclose(sechsq, 1 / torch.cosh(torch.tensor(X)).numpy() ** 2, rtol=1e-5)
    numpy.testing.assert_allclose(to_host(ops.dsigmoid(ops.sigmoid(ops.asarray(X)))), torch.sigmoid(torch.tensor(X)).numpy() * (1 - torch.sigmoid(torch.tensor(X)).numpy()), **TOL[dtype])


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_sequences_matches_softmax_over_each_sequence(ops, dtype):
    lengths = numpy.asarray([3, 0, 4, 1], dtype="int32")
    X, dY = random((8, 3), dtype, seed=5), random((8, 3), dtype, seed=6)
    Y = ops.softmax_sequences(ops.asarray(X), ops.asarray(lengths))
    dX = ops.backprop_softmax_sequences(ops.asarray(dY), Y, ops.asarray(lengths))
    pieces = [(X[s : s + n], dY[s : s + n]) for s, n in zip(numpy.cumsum(lengths) - lengths, lengths)]
    expected = [torch_forward_backward(lambda x: torch.softmax(x, dim=0), x, d) for x, d in pieces]
    numpy.testing.assert_allclose(to_host(Y), numpy.concatenate([e[0] for e in expected]), **TOL[dtype])
    numpy.testing.assert_allclose(to_host(dX), numpy.concatenate([e[1] for e in expected]), **TOL[dtype])


# Linear algebra and maxout ----------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("trans1,trans2", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_and_affine_match_torch(ops, dtype, trans1, trans2):
    x, y = random((4, 6), dtype, seed=7), random((6, 5), dtype, seed=8)
    x_in, y_in = (x.T.copy() if trans1 else x), (y.T.copy() if trans2 else y)
    out = ops.alloc2f(4, 5, dtype=dtype)
    result = ops.gemm(ops.asarray(x_in), ops.asarray(y_in), out=out, trans1=trans1, trans2=trans2)
    assert result is out
    numpy.testing.assert_allclose(to_host(out), (torch.tensor(x) @ torch.tensor(y)).numpy(), **TOL[dtype])
    b = random((5,), dtype, seed=9)
    affine = ops.affine(ops.asarray(x), ops.asarray(y.T.copy()), ops.asarray(b))
    numpy.testing.assert_allclose(to_host(affine), F.linear(torch.tensor(x), torch.tensor(y.T), torch.tensor(b)).numpy(), **TOL[dtype])


def test_gemm_rejects_mismatched_inner_dimensions(ops):
    with pytest.raises(ShapeMismatchError, match=r"gemm.*\(4, 6\) @ \(5, 5\)"):
        ops.gemm(ops.alloc2f(4, 6), ops.alloc2f(5, 5))
    with pytest.raises(ShapeMismatchError, match="gemm expects 2d"):
        ops.gemm(ops.alloc1f(4), ops.alloc2f(4, 4))


@pytest.mark.parametrize("dtype", FLOATS)
def test_maxout_matches_torch_max(ops, dtype):
    X, dY = random((6, 4, 3), dtype, seed=10), random((6, 4), dtype, seed=11)
    best, which = ops.maxout(ops.asarray(X))
    expected_best, expected_dX = torch_forward_backward(lambda x: x.max(dim=-1).values, X, dY)
    assert to_host(which).dtype == numpy.int32
    numpy.testing.assert_array_equal(to_host(which), X.argmax(axis=-1))
    numpy.testing.assert_allclose(to_host(best), expected_best)
    dX = ops.backprop_maxout(ops.asarray(dY), which, 3)
    numpy.testing.assert_allclose(to_host(dX), expected_dX)
    assert ops.maxout(ops.alloc3f(0, 4, 3))[0].shape == (0, 4)


def test_maxout_errors_name_the_op(ops):
    with pytest.raises(ShapeMismatchError, match=r"maxout: expected a 3d array for X, got an array of shape \(2, 3\)"):
        ops.maxout(ops.alloc2f(2, 3))
    with pytest.raises(IndexError, match="backprop_maxout"):
        ops.backprop_maxout(ops.alloc2f(1, 2), ops.asarray(numpy.asarray([[0, 5]], dtype="int32")), 3)


# Sequence reductions -------------------------------------------------------------------


def reference_reductions(X, lengths):
    starts = numpy.cumsum(lengths) - lengths
    pieces = [X[s : s + n] for s, n in zip(starts, lengths)]
    zero = numpy.zeros(X.shape[1], dtype=X.dtype)
    return {
        "sum": numpy.asarray([p.sum(axis=0) if len(p) else zero for p in pieces]).reshape(len(lengths), X.shape[1]),
        "mean": numpy.asarray([p.mean(axis=0) if len(p) else zero for p in pieces]).reshape(len(lengths), X.shape[1]),
    }


@pytest.mark.parametrize("lengths_dtype", ["int32", "int64"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_reduce_sum_and_mean_with_empty_sequences(ops, dtype, lengths_dtype):
    lengths = numpy.asarray([2, 0, 3, 1, 0], dtype=lengths_dtype)
    X = random((6, 4), dtype, seed=12)
    expected = reference_reductions(X, lengths)
    numpy.testing.assert_allclose(to_host(ops.reduce_sum(ops.asarray(X), ops.asarray(lengths))), expected["sum"], **TOL[dtype])
    numpy.testing.assert_allclose(to_host(ops.reduce_mean(ops.asarray(X), ops.asarray(lengths))), expected["mean"], **TOL[dtype])
    d_out = random((5, 4), dtype, seed=13)
    d_sum = to_host(ops.backprop_reduce_sum(ops.asarray(d_out), ops.asarray(lengths)))
    d_mean = to_host(ops.backprop_reduce_mean(ops.asarray(d_out), ops.asarray(lengths)))
    numpy.testing.assert_allclose(d_sum, numpy.repeat(d_out, lengths, axis=0))
    numpy.testing.assert_allclose(d_mean, numpy.repeat(d_out / numpy.maximum(lengths, 1)[:, None], lengths, axis=0), **TOL[dtype])


@small_settings
@given(lengths=lengths_strategy(), width=st.integers(1, 3))
def test_reduce_sum_and_mean_agree_with_a_loop_for_any_lengths(lengths, width):
    lengths = numpy.asarray(lengths, dtype="int32")
    X = random((int(lengths.sum()), width), "float64", seed=14)
    expected = reference_reductions(X, lengths)
    for cls in OPS_CLASSES:
        ops = cls()
        numpy.testing.assert_allclose(to_host(ops.reduce_sum(ops.asarray(X), ops.asarray(lengths))), expected["sum"])
        numpy.testing.assert_allclose(to_host(ops.reduce_mean(ops.asarray(X), ops.asarray(lengths))), expected["mean"])


@pytest.mark.parametrize("lengths_dtype", ["int32", "int64"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_reduce_max_first_last_and_backprops(ops, dtype, lengths_dtype):
    lengths = numpy.asarray([2, 3, 1], dtype=lengths_dtype)
    X = random((6, 4), dtype, seed=15)
    X[3, 1] = X[4, 1] = 99.0  # a tie: the first row wins
    maxes, which = ops.reduce_max(ops.asarray(X), ops.asarray(lengths))
    numpy.testing.assert_allclose(to_host(maxes), [X[0:2].max(0), X[2:5].max(0), X[5]])
    numpy.testing.assert_array_equal(to_host(which), [X[0:2].argmax(0), X[2:5].argmax(0), [0, 0, 0, 0]])
    assert to_host(which)[1, 1] == 1
    d_max = random((3, 4), dtype, seed=16)
    dX = to_host(ops.backprop_reduce_max(ops.asarray(d_max), which, ops.asarray(lengths)))
    expected = numpy.zeros_like(X)
    for seq, start in enumerate([0, 2, 5]):
        expected[start + to_host(which)[seq], numpy.arange(4)] = d_max[seq]
    numpy.testing.assert_allclose(dX, expected)

    firsts, starts_ends = ops.reduce_first(ops.asarray(X), ops.asarray(lengths))
    numpy.testing.assert_allclose(to_host(firsts), X[[0, 2, 5]])
    numpy.testing.assert_array_equal(to_host(starts_ends), [0, 2, 5, 6])
    d_first = to_host(ops.backprop_reduce_first(ops.asarray(d_max), starts_ends))
    assert d_first.shape == X.shape and numpy.allclose(d_first[[0, 2, 5]], d_max) and d_first.sum() == pytest.approx(d_max.sum())
    lasts_rows, lasts = ops.reduce_last(ops.asarray(X), ops.asarray(lengths))
    numpy.testing.assert_allclose(to_host(lasts_rows), X[[1, 4, 5]])
    d_last = to_host(ops.backprop_reduce_last(ops.asarray(d_max), lasts))
    assert d_last.shape == X.shape and numpy.allclose(d_last[[1, 4, 5]], d_max)


def test_reductions_of_an_empty_batch(ops):
    X, lengths = ops.alloc2f(0, 3), ops.alloc1i(0)
    assert ops.reduce_sum(X, lengths).shape == (0, 3)
    assert ops.reduce_mean(X, lengths).shape == (0, 3)
    assert [array.shape for array in ops.reduce_max(X, lengths)] == [(0, 3), (0, 3)]
    assert ops.reduce_first(X, lengths)[0].shape == (0, 3)
    assert ops.reduce_last(X, lengths)[0].shape == (0, 3)
    assert ops.backprop_reduce_sum(ops.alloc2f(0, 3), lengths).shape == (0, 3)


@pytest.mark.parametrize("op", ["reduce_sum", "reduce_mean", "reduce_max", "reduce_first", "reduce_last"])
def test_reductions_reject_bad_lengths_naming_the_op_and_shapes(ops, op):
    X = ops.alloc2f(5, 2)
    reduce = getattr(ops, op)
    with pytest.raises(ValueError, match=rf"{op}: lengths sum to 4 but the array has 5 rows"):
        reduce(X, ops.asarray(numpy.asarray([1, 3], dtype="int32")))
    with pytest.raises(ValueError, match=rf"{op}: lengths must be"):
        reduce(X, ops.asarray(numpy.asarray([6, -1], dtype="int32")))
    with pytest.raises(ValueError, match=rf"{op}: lengths must be integers"):
        reduce(X, ops.asarray(numpy.asarray([2.0, 3.0])))
    with pytest.raises(ValueError, match=rf"{op}: expected a 2d array for X, got an array of shape \(5,\)"):
        reduce(ops.alloc1f(5), ops.asarray(numpy.asarray([5], dtype="int32")))


def test_backprop_reduce_first_needs_the_offsets_reduce_first_gave(ops):
    with pytest.raises(ShapeMismatchError, match="backprop_reduce_first: starts_ends needs B\\+1 >= 1 entries"):
        ops.backprop_reduce_first(ops.alloc2f(0, 3), ops.alloc1i(0))


def test_reduce_max_and_first_refuse_empty_sequences(ops):
    with pytest.raises(ValueError, match="reduce_max: lengths must be positive"):
        ops.reduce_max(ops.alloc2f(2, 2), ops.asarray(numpy.asarray([2, 0], dtype="int32")))
    with pytest.raises(ValueError, match="reduce_first: lengths must be positive"):
        ops.reduce_first(ops.alloc2f(2, 2), ops.asarray(numpy.asarray([0, 2], dtype="int32")))


# Windows ---------------------------------------------------------------------------------


def reference_seq2col(X, nW, lengths):
    out = numpy.zeros((X.shape[0], (2 * nW + 1) * X.shape[1]), dtype=X.dtype)
    start = 0
    for length in lengths:
        for i in range(length):
            for k in range(-nW, nW + 1):
                if 0 <= i + k < length:
                    out[start + i, (k + nW) * X.shape[1] : (k + nW + 1) * X.shape[1]] = X[start + i + k]
        start += length
    return out


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("nW", [0, 1, 2])
def test_seq2col_matches_a_loop_and_backprop_is_its_adjoint(ops, nW, dtype):
    lengths = numpy.asarray([3, 0, 1, 4], dtype="int32")
    X = random((8, 3), dtype, seed=17)
    cols = ops.seq2col(ops.asarray(X), nW, lengths=ops.asarray(lengths))
    numpy.testing.assert_allclose(to_host(cols), reference_seq2col(X, nW, lengths))
    dY = random(cols.shape, dtype, seed=18)
    dX = to_host(ops.backprop_seq2col(ops.asarray(dY), nW, lengths=ops.asarray(lengths)))
    # <seq2col(X), dY> == <X, backprop_seq2col(dY)> for a linear map and its adjoint
    assert (to_host(cols) * dY).sum() == pytest.approx((X * dX).sum(), rel=1e-5)


@small_settings
@given(lengths=lengths_strategy(), nW=st.integers(0, 3))
def test_seq2col_for_any_lengths(lengths, nW):
    lengths = numpy.asarray(lengths, dtype="int64")
    X = random((int(lengths.sum()), 2), "float32", seed=19)
    for cls in OPS_CLASSES:
        ops = cls()
        numpy.testing.assert_allclose(
            to_host(ops.seq2col(ops.asarray(X), nW, lengths=ops.asarray(lengths))), reference_seq2col(X, nW, lengths)
        )


def test_seq2col_without_lengths_is_one_sequence(ops):
    X = random((4, 2), "float32", seed=20)
    numpy.testing.assert_allclose(to_host(ops.seq2col(ops.asarray(X), 1)), reference_seq2col(X, 1, [4]))


def test_seq2col_rejects_lengths_that_do_not_cover_the_rows(ops):
    with pytest.raises(ValueError, match="seq2col: lengths sum to 3 but the array has 4 rows"):
        ops.seq2col(ops.alloc2f(4, 2), 1, lengths=ops.asarray(numpy.asarray([3], dtype="int32")))


# Padding, flattening ---------------------------------------------------------------------


def test_flatten_and_unflatten_round_trip_with_padding(ops):
    seqs = [ops.asarray(random((n, 3), "float32", seed=n)) for n in (2, 0, 3)]
    for pad in (0, 2):
        flat = ops.flatten(seqs, pad=pad)
        assert flat.shape == (5 + pad * 3, 3)  # the empty item is dropped before padding
        back = ops.unflatten(flat, [2, 3], pad=pad)
        numpy.testing.assert_allclose(to_host(back[0]), to_host(seqs[0]))
        numpy.testing.assert_allclose(to_host(back[1]), to_host(seqs[2]))
    assert ops.flatten([]).shape == (0, 0)
    assert ops.unflatten(ops.alloc2f(0, 3), []) == []


def test_unflatten_rejects_lengths_that_do_not_cover_the_rows(ops):
    with pytest.raises(ValueError, match="unflatten: lengths cover 4 rows but the array has 5"):
        ops.unflatten(ops.alloc2f(5, 2), [1, 3])


def test_pad_matches_torch_pad_sequence_and_unpad_inverts_it(ops):
    seqs = [random((n, 2), "float32", seed=n) for n in (2, 5, 0, 3)]
    padded = ops.pad([ops.asarray(s) for s in seqs], round_to=4)
    expected = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in seqs], batch_first=True).numpy()
    assert padded.shape == (4, 8, 2)
    numpy.testing.assert_allclose(to_host(padded)[:, :5], expected)
    assert not to_host(padded)[:, 5:].any()
    for seq, piece in zip(seqs, ops.unpad(padded, [2, 5, 0, 3])):
        numpy.testing.assert_allclose(to_host(piece), seq)


def test_pad_rejects_mixed_inputs(ops):
    with pytest.raises(ValueError, match="round_to"):
        ops.pad([ops.alloc2f(2, 2)], round_to=0)
    with pytest.raises(ValueError, match="empty list"):
        ops.pad([])
    with pytest.raises(ValueError, match=r"pad: sequence 1 has shape \(2, 3\)"):
        ops.pad([ops.alloc2f(2, 2), ops.alloc2f(2, 3)])


def test_list2padded_sorts_by_length_and_padded2list_restores_order(ops):
    seqs = [ops.asarray(random((n, 3), "float32", seed=n)) for n in (2, 4, 2, 0, 1)]
    padded = ops.list2padded(seqs)
    assert isinstance(padded, Padded)
    assert padded.data.shape == (4, 5, 3)
    numpy.testing.assert_array_equal(to_host(padded.lengths), [4, 2, 2, 1, 0])
    numpy.testing.assert_array_equal(to_host(padded.indices), [1, 2, 0, 4, 3])  # ties: later first
    numpy.testing.assert_array_equal(to_host(padded.size_at_t), [4, 3, 1, 1])
    for array in (padded.size_at_t, padded.lengths, padded.indices):
        assert array.dtype == numpy.int32
    numpy.testing.assert_allclose(to_host(padded.data[:, 0]), to_host(seqs[1]))
    for original, restored in zip(seqs, ops.padded2list(padded)):
        numpy.testing.assert_allclose(to_host(restored), to_host(original))
    assert ops.padded2list(ops.list2padded([])) == []


def test_unpad_and_padded2list_refuse_lengths_longer_than_the_padding(ops):
    # Slicing would silently cut such sequences short.
    with pytest.raises(ValueError, match=r"unpad: .*length 5.* padded to 3 steps"):
        ops.unpad(ops.alloc3f(2, 3, 4), ops.asarray1i([5, 1]))
    lengths, size_at_t = ops.asarray1i([5, 1]), ops.asarray1i([2, 1, 1])
    too_long = Padded(ops.alloc3f(3, 2, 4), size_at_t, lengths, ops.asarray1i([0, 1]))
    with pytest.raises(ValueError, match=r"padded2list: .*length 5.* 3 steps"):
        ops.padded2list(too_long)


def test_padded2list_refuses_indices_that_are_not_a_permutation(ops):
    # indices [0, 0] would leave sequence 1 out of the list (a None in its place).
    lengths, size_at_t = ops.asarray1i([3, 1]), ops.asarray1i([2, 1, 1])
    padded = Padded(ops.alloc3f(3, 2, 4), size_at_t, lengths, ops.asarray1i([0, 0]))
    with pytest.raises(ValueError, match=r"padded2list: indices must be a permutation of 0..1, got \[0, 0\]"):
        ops.padded2list(padded)
    wrong_count = Padded(ops.alloc3f(3, 2, 4), size_at_t, ops.asarray1i([3]), ops.asarray1i([0]))
    with pytest.raises(ValueError, match=r"padded2list: .*2 sequences.*1 lengths"):
        ops.padded2list(wrong_count)


def test_insert_into_tile_and_as_contig(ops):
    out = ops.insert_into((2, 3, 1), [ops.alloc2f(2, 1) + 1, ops.alloc2f(3, 1) + 2])
    numpy.testing.assert_array_equal(to_host(out)[:, :, 0], [[1, 1, 0], [2, 2, 2]])
    numpy.testing.assert_array_equal(to_host(ops.tile(ops.asarray(numpy.asarray([1, 2])), 2)), [1, 2, 1, 2])
    X = ops.alloc2f(3, 4)
    assert ops.as_contig(X) is X
    transposed = ops.as_contig(X.T, dtype="float64")
    assert transposed.flags["C_CONTIGUOUS"] and transposed.dtype == numpy.float64


def test_dropout_mask_keeps_expected_fraction_and_scales(ops):
    fix_random_seed(0)
    mask = to_host(ops.get_dropout_mask((200, 50), 0.25))
    numpy.testing.assert_allclose(numpy.unique(mask), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs((mask == 0).mean() - 0.25) < 0.03
    assert to_host(ops.get_dropout_mask((3,), None)).tolist() == [1, 1, 1]
    assert to_host(ops.get_dropout_mask((3,), 1.0)).tolist() == [0, 0, 0]


# Embedding tables ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
def test_gather_add_and_scatter_add_with_duplicates(ops, dtype):
    table = random((6, 3), dtype, seed=21)
    indices = numpy.asarray([[0, 5, 5], [2, 2, 2], [1, 0, 3]], dtype="int32")
    out = to_host(ops.gather_add(ops.asarray(table), ops.asarray(indices)))
    numpy.testing.assert_allclose(out, numpy.asarray([table[row].sum(axis=0) for row in indices]), **TOL[dtype])
    target = ops.asarray(numpy.zeros((6, 3), dtype=dtype))
    values = random((9, 3), dtype, seed=22)
    ops.scatter_add(target, ops.asarray(indices.ravel()), ops.asarray(values))
    expected = numpy.zeros((6, 3), dtype=dtype)
    for index, value in zip(indices.ravel(), values):
        expected[index] += value
    numpy.testing.assert_allclose(to_host(target), expected, **TOL[dtype])


def test_gather_and_scatter_add_bounds_checked(ops):
    table = ops.alloc2f(4, 2)
    with pytest.raises(IndexError, match=r"gather_add: index out of bounds: indices span \[0, 4\] but the table has 4 rows"):
        ops.gather_add(table, ops.asarray(numpy.asarray([[0, 4]], dtype="int32")))
    with pytest.raises(OpIndexError, match="scatter_add"):
        ops.scatter_add(table, ops.asarray(numpy.asarray([-1], dtype="int32")), ops.alloc2f(1, 2))
    with pytest.raises(ValueError, match=r"scatter_add: values should have shape \(1, 2\)"):
        ops.scatter_add(table, ops.asarray(numpy.asarray([1], dtype="int32")), ops.alloc2f(1, 3))


# Hashing and encodings ---------------------------------------------------------------------


THINC_HASHES = json.loads((Path(__file__).parents[1] / "thinc_fixtures" / "hash.json").read_text())


@pytest.mark.parametrize("seed", sorted(THINC_HASHES["by_seed"], key=int))
def test_hash_equals_what_thinc_computes(ops, seed):
    # hash.json holds Thinc 9.1.1's Ops.hash output for these ids and seeds.
    ids = numpy.asarray(THINC_HASHES["ids"], dtype="uint64")
    hashes = to_host(ops.hash(ops.asarray(ids), int(seed)))
    assert hashes.shape == (len(ids), 4) and hashes.dtype == numpy.uint32
    numpy.testing.assert_array_equal(hashes, numpy.asarray(THINC_HASHES["by_seed"][seed], dtype="uint32"))


def test_hash_columns_are_independent(ops):
    # Small ids and large ones alike select four different rows, not two or three.
    ids = numpy.asarray([0, 1, 2, 17, 2**32 + 7, 2**64 - 1], dtype="uint64")
    for row in to_host(ops.hash(ops.asarray(ids), 0)):
        assert len(set(row.tolist())) == 4


@pytest.mark.parametrize("seed", [0, 1, 2**31 + 5])
def test_hash_matches_plain_python_murmurhash3(ops, seed):
    ids = numpy.asarray([0, 1, 2**32 + 7, 2**64 - 1, 123456789012345], dtype="uint64")
    hashes = to_host(ops.hash(ops.asarray(ids), seed))
    expected = [thinc_hash_words(int(key), seed) for key in ids]
    numpy.testing.assert_array_equal(hashes, numpy.asarray(expected, dtype="uint32"))
    assert ops.hash(ops.asarray(numpy.zeros((0,), dtype="uint64")), seed).shape == (0, 4)


@small_settings
@given(keys=st.lists(st.integers(0, 2**64 - 1), max_size=6), seed=st.integers(0, 2**32 - 1))
def test_hash_is_murmurhash3_for_any_key_on_every_backend(keys, seed):
    ids = numpy.asarray(keys, dtype="uint64")
    expected = numpy.asarray([thinc_hash_words(k, seed) for k in keys], dtype="uint32").reshape(-1, 4)
    for cls in OPS_CLASSES:
        ops = cls()
        numpy.testing.assert_array_equal(to_host(ops.hash(ops.asarray(ids), seed)), expected)


def test_murmur_reference_hashes_multi_block_keys_stably():
    # The reference also covers 16-byte bodies and tails; two keys differing in one byte differ.
    assert murmur3_x64_128(b"", 0) == (0, 0)
    assert murmur3_x64_128(b"a" * 33, 1) != murmur3_x64_128(b"a" * 32 + b"b", 1)


def test_hash_rejects_float_ids(ops):
    with pytest.raises(ValueError, match="hash: ids must be integers"):
        ops.hash(ops.alloc1f(3), 0)


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_ngrams_match_plain_python_murmurhash64a(ops, n):
    keys = numpy.asarray([5, 2**63 + 1, 7, 0, 9], dtype="uint64")
    result = to_host(ops.ngrams(n, ops.asarray(keys)))
    expected = [murmur64a(keys[i : i + n].tobytes()) for i in range(len(keys) - n + 1)] if n >= 1 else []
    assert result.dtype == numpy.uint64
    numpy.testing.assert_array_equal(result, numpy.asarray(expected, dtype="uint64"))


def test_position_encode_is_sinusoidal(ops):
    enc = to_host(ops.position_encode(5, 6, period=100))
    assert enc.dtype == numpy.float32 and enc.shape == (5, 6)
    for pos in range(5):
        for d in range(6):
            angle = pos / 100 ** (2 * (d // 2) / 6)
            assert enc[pos, d] == pytest.approx(numpy.sin(angle) if d % 2 == 0 else numpy.cos(angle), abs=1e-6)


# Batching --------------------------------------------------------------------------------------


class LinearSchedule:
    """A schedule-like object: callable with a step, with a to_generator method."""

    def __call__(self, step):
        return 2 + step

    def to_generator(self):
        step = 0
        while True:
            yield self(step)
            step += 1


@pytest.mark.parametrize(
    "make_size,expected_sizes",
    [
        (lambda: 4, [4, 4, 2]),
        (lambda: iter([3, 5, 100]), [3, 5, 2]),
        (LinearSchedule, [2, 3, 4, 1]),
        (lambda: (lambda step: 6), [6, 4]),
    ],
    ids=["int", "iterator", "schedule", "callable"],
)
def test_minibatch_accepts_ints_iterators_and_schedules(ops, make_size, expected_sizes):
    batches = ops.minibatch(make_size(), list(range(10)))
    assert isinstance(batches, SizedGenerator)
    assert len(batches) == len(expected_sizes)
    assert [len(batch) for batch in batches] == expected_sizes
    assert [item for batch in batches for item in batch] == list(range(10))  # re-iterable


def test_minibatch_slices_arrays_tuples_and_shuffles(ops):
    X = ops.asarray(numpy.arange(10, dtype="float32"))
    batches = list(ops.minibatch(4, X, shuffle=True, buffer=2))
    assert [b.shape for b in batches] == [(4,), (4,), (2,)]
    assert sorted(to_host(numpy.concatenate([to_host(b) for b in batches])).tolist()) == list(range(10))
    assert list(ops.minibatch(3, (1, 2, 3, 4)))[1] == (4,)


def test_minibatch_moves_only_each_batch_to_the_device():
    # On a GPU backend, converting the whole host array for every batch would copy the
    # dataset once per batch; only the batch's rows may cross.
    class RecordingOps(NumpyOps):
        converted = []

        def asarray(self, data, *, dtype=None):
            self.converted.append(len(data))
            return super().asarray(data, dtype=dtype)

    X = numpy.arange(100, dtype="f").reshape((50, 2))
    batches = list(RecordingOps().minibatch(8, X))
    numpy.testing.assert_array_equal(numpy.concatenate(batches), X)
    assert max(RecordingOps.converted) == 8


def test_multibatch_keeps_sequences_aligned(ops):
    X, Y = list(range(7)), numpy.arange(7) * 10
    for xs, ys in ops.multibatch(3, X, Y, shuffle=True):
        assert [x * 10 for x in xs] == to_host(ys).tolist()
    assert len(ops.multibatch(3, X, Y)) == 3


def test_minibatch_errors(ops):
    with pytest.raises(ValueError, match="Can't minibatch data"):
        ops.minibatch(2, (i for i in range(3)))
    with pytest.raises(ValueError, match="batch sizes must be >= 1"):
        ops.minibatch(0, [1, 2])
    with pytest.raises(ValueError, match="ran out"):
        ops.minibatch(iter([1]), [1, 2, 3])


# Optimizer kernels ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("mod_rate", [1.0, 0.5])
def test_adam_step_follows_the_formula_and_zeroes_the_gradient(ops, dtype, mod_rate):
    weights, gradient = random((10,), dtype, seed=23), random((10,), dtype, seed=24)
    mom1, mom2 = random((10,), dtype, seed=25), numpy.abs(random((10,), dtype, seed=26))
    arrays = [ops.asarray(a.copy()) for a in (weights, gradient, mom1, mom2)]
    result = ops.adam(*arrays, 0.9, 0.999, 1e-8, 0.01, mod_rate=mod_rate)
    assert all(r is a for r, a in zip(result, arrays))
    m1 = 0.9 * mom1 + 0.1 * gradient
    m2 = 0.999 * mom2 + 0.001 * gradient**2
    numpy.testing.assert_allclose(to_host(arrays[0]), weights - 0.01 * m1 / (mod_rate * numpy.sqrt(m2) + 1e-8), **TOL[dtype])
    numpy.testing.assert_allclose(to_host(arrays[2]), m1, **TOL[dtype])
    numpy.testing.assert_allclose(to_host(arrays[3]), m2, **TOL[dtype])
    assert not to_host(arrays[1]).any()


def test_adam_rejects_mismatched_shapes(ops):
    with pytest.raises(ValueError, match=r"adam: weights and mom2 must have the same shape"):
        ops.adam(ops.alloc1f(3), ops.alloc1f(3), ops.alloc1f(3), ops.alloc1f(4), 0.9, 0.999, 1e-8, 0.1)


def test_clip_gradient_matches_torch_clip_grad_norm(ops):
    gradient = random((20,), "float64", seed=27)
    clipped = to_host(ops.clip_gradient(ops.asarray(gradient.copy()), 1.5))
    parameter = torch.nn.Parameter(torch.zeros(20, dtype=torch.float64))
    parameter.grad = torch.tensor(gradient)
    torch.nn.utils.clip_grad_norm_([parameter], 1.5)
    numpy.testing.assert_allclose(clipped, parameter.grad.numpy(), rtol=1e-5)
    small = ops.asarray(numpy.asarray([0.1, 0.2]))
    numpy.testing.assert_allclose(to_host(ops.clip_gradient(small, 10.0)), [0.1, 0.2])


def test_update_averages_and_logloss(ops):
    ema, weights = ops.asarray(numpy.ones(3)), ops.asarray(numpy.zeros(3))
    ops.update_averages(ema, weights, t=0)
    numpy.testing.assert_allclose(to_host(ema), 0.1)  # decay = 1/10
    y_true, y_pred = numpy.asarray([0.0, 1.0, 1.0]), numpy.asarray([0.2, 0.7, 0.99])
    expected = F.binary_cross_entropy(torch.tensor(y_pred), torch.tensor(y_true), reduction="none").numpy()
    numpy.testing.assert_allclose(to_host(ops.logloss(ops.asarray(y_true), ops.asarray(y_pred))), expected, rtol=1e-6)


# LSTM --------------------------------------------------------------------------------------------


def torch_lstm_params(lstm, depth, dirs):
    """Flatten a torch.nn.LSTM's weights in composa's documented layout."""
    parts = []
    for layer in range(depth):
        for direction in range(dirs):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh"):
                parts.append(getattr(lstm, name + suffix))
    return parts


@pytest.mark.parametrize("depth,bidirectional", [(1, False), (2, False), (1, True), (2, True)])
@pytest.mark.parametrize("sizes", [[3, 3, 2, 1, 1], [3, 3, 3]], ids=["lengths 5-3-2", "equal lengths"])
def test_lstm_matches_torch_with_copied_weights(ops, depth, bidirectional, sizes):
    torch.manual_seed(depth)
    nI, nH, dirs = 4, 3, 2 if bidirectional else 1
    lstm = torch.nn.LSTM(nI, nH, num_layers=depth, bidirectional=bidirectional).double()
    params = numpy.concatenate([p.detach().numpy().ravel() for p in torch_lstm_params(lstm, depth, dirs)])
    H0, C0 = random((depth, dirs, nH), seed=28), random((depth, dirs, nH), seed=29)
    size_at_t = numpy.asarray(sizes, dtype="int32")  # the rows of each step, packed time-major
    N = int(size_at_t.sum())
    X, dY = random((N, nI), seed=30), random((N, nH * dirs), seed=31)

    Y, state = ops.lstm_forward_training(ops.asarray(params), ops.asarray(H0), ops.asarray(C0), ops.asarray(X), ops.asarray(size_at_t))
    dX, d_params, dH0, dC0 = ops.backprop_lstm(ops.asarray(dY), ops.asarray(size_at_t), ops.asarray(params), state, return_initial=True)

    X_t = torch.tensor(X, requires_grad=True)
    h0 = torch.tensor(H0.reshape(depth * dirs, 1, nH), requires_grad=True)
    c0 = torch.tensor(C0.reshape(depth * dirs, 1, nH), requires_grad=True)
    packed = torch.nn.utils.rnn.PackedSequence(X_t, torch.tensor(size_at_t, dtype=torch.int64))
    out, _ = lstm(packed, (h0.expand(-1, 3, -1).contiguous(), c0.expand(-1, 3, -1).contiguous()))
    (out.data * torch.tensor(dY)).sum().backward()
    expected_d_params = numpy.concatenate([p.grad.numpy().ravel() for p in torch_lstm_params(lstm, depth, dirs)])

    numpy.testing.assert_allclose(to_host(Y), out.data.detach().numpy(), atol=1e-10)
    numpy.testing.assert_allclose(to_host(dX), X_t.grad.numpy(), atol=1e-10)
    numpy.testing.assert_allclose(to_host(d_params), expected_d_params, atol=1e-10)
    numpy.testing.assert_allclose(to_host(dH0), h0.grad.numpy().reshape(depth, dirs, nH), atol=1e-10)
    numpy.testing.assert_allclose(to_host(dC0), c0.grad.numpy().reshape(depth, dirs, nH), atol=1e-10)
    inference = ops.lstm_forward_inference(ops.asarray(params), ops.asarray(H0), ops.asarray(C0), ops.asarray(X), ops.asarray(size_at_t))
    numpy.testing.assert_allclose(to_host(inference), to_host(Y))


def test_lstm_in_float32_and_on_an_empty_batch(ops):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(2, 3)
    params = numpy.concatenate([p.detach().numpy().ravel() for p in torch_lstm_params(lstm, 1, 1)])
    H0 = C0 = numpy.zeros((1, 1, 3), dtype="float32")
    X = random((4, 2), "float32", seed=32)
    Y, _ = ops.lstm_forward_training(ops.asarray(params), ops.asarray(H0), ops.asarray(C0), ops.asarray(X), ops.asarray(numpy.asarray([2, 2], dtype="int32")))
    expected, _ = lstm(torch.tensor(X).reshape(2, 2, 2))
    assert Y.dtype == numpy.float32
    numpy.testing.assert_allclose(to_host(Y), expected.detach().numpy().reshape(4, 3), atol=1e-6)
    empty, state = ops.lstm_forward_training(ops.asarray(params), ops.asarray(H0), ops.asarray(C0), ops.alloc2f(0, 2), ops.alloc1i(0))
    assert empty.shape == (0, 3)
    dX, d_params = ops.backprop_lstm(ops.alloc2f(0, 3), ops.alloc1i(0), ops.asarray(params), state)
    assert dX.shape == (0, 2) and not to_host(d_params).any()


def test_lstm_rejects_bad_shapes(ops):
    H0 = ops.alloc3f(1, 1, 3)
    with pytest.raises(ValueError, match=r"lstm_forward: expected 84 params for depth=1, dirs=1, nH=3, nI=2, got 80"):
        ops.lstm_forward_training(ops.alloc1f(80), H0, H0, ops.alloc2f(2, 2), ops.asarray(numpy.asarray([2], dtype="int32")))
    with pytest.raises(ValueError, match="lstm_forward: lengths sum to 3 but the array has 2 rows"):
        ops.lstm_forward_training(ops.alloc1f(84), H0, H0, ops.alloc2f(2, 2), ops.asarray(numpy.asarray([3], dtype="int32")))
    with pytest.raises(ValueError, match="size_at_t must be non-increasing"):
        ops.lstm_forward_training(ops.alloc1f(84), H0, H0, ops.alloc2f(3, 2), ops.asarray(numpy.asarray([1, 2], dtype="int32")))


# Fast-path coverage: each branch of the optimised implementations ------------------------


@small_settings
@given(ids=st.lists(st.integers(0, 5), max_size=40))
def test_scatter_add_equals_numpy_add_at_for_any_duplicates(ids):
    indices = numpy.asarray(ids, dtype="int64")
    values = random((len(ids), 3), "float64", seed=len(ids))
    expected = numpy.zeros((6, 3))
    numpy.add.at(expected, indices, values)
    for cls in OPS_CLASSES:
        ops = cls()
        table = ops.asarray(numpy.zeros((6, 3)))
        ops.scatter_add(table, ops.asarray(indices), ops.asarray(values))
        numpy.testing.assert_allclose(to_host(table), expected, atol=1e-12)


def test_reduce_max_of_long_sequences_matches_short_sequence_path(ops):
    lengths = numpy.asarray([40, 1, 3], dtype="int32")  # 40 > the looped path's limit
    X = random((44, 5), "float32", seed=33)
    maxes, which = ops.reduce_max(ops.asarray(X), ops.asarray(lengths))
    starts = [0, 40, 41]
    for seq, (start, length) in enumerate(zip(starts, lengths)):
        numpy.testing.assert_allclose(to_host(maxes)[seq], X[start : start + length].max(axis=0))
        numpy.testing.assert_array_equal(to_host(which)[seq], X[start : start + length].argmax(axis=0))


@pytest.mark.parametrize("scale", [1.0, 500.0])
def test_softmax_is_stable_for_large_inputs(ops, scale):
    X = random((4, 6), "float32", seed=34) * scale
    Y = to_host(ops.softmax(ops.asarray(X)))
    numpy.testing.assert_allclose(Y, torch.softmax(torch.tensor(X), dim=-1).numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_of_a_wide_axis_with_large_logits_sums_to_one(ops, axis):
    # 20000 classes with logits near 80: exp(80) fits in float32 but their sum does not,
    # so a softmax that skips the max shift would return zeros.
    X = numpy.full((2, 20000), 79.9, dtype="float32")
    X[:, 0] = 70.0
    if axis == 0:
        X = numpy.ascontiguousarray(X.T)
    Y = to_host(ops.softmax(ops.asarray(X), axis=axis))
    numpy.testing.assert_allclose(Y.sum(axis=axis), 1.0, rtol=1e-4)
    expected = torch.softmax(torch.tensor(X), dim=axis).numpy()
    numpy.testing.assert_allclose(Y, expected, rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("dtype", FLOATS)
def test_mish_with_a_low_threshold_is_the_identity_above_it(ops, dtype):
    X = numpy.asarray([-3.0, 0.5, 2.0, 3.0, 50.0], dtype=dtype)
    Y = to_host(ops.mish(ops.asarray(X), threshold=2.0))
    numpy.testing.assert_allclose(Y[2:], X[2:])
    numpy.testing.assert_allclose(Y[:2], F.mish(torch.tensor(X[:2])).numpy(), rtol=1e-6)
    dX = to_host(ops.backprop_mish(ops.asarray(numpy.ones_like(X)), ops.asarray(X), threshold=2.0))
    numpy.testing.assert_allclose(dX[2:], 1.0)


@small_settings
@given(
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=3).map(tuple),
    name=st.sampled_from(sorted(ACTIVATIONS)),
    dtype=st.sampled_from(FLOATS),
)
def test_activations_of_any_shape_match_torch(shape, name, dtype):
    forward, backward, torch_fn = ACTIVATIONS[name]
    X, dY = random(shape, dtype, seed=35), random(shape, dtype, seed=36)
    expected_Y, expected_dX = torch_forward_backward(torch_fn, X, dY)
    for cls in OPS_CLASSES:
        ops = cls()
        Y = forward(ops, ops.asarray(X))
        numpy.testing.assert_allclose(to_host(Y), expected_Y, **TOL[dtype])
        numpy.testing.assert_allclose(to_host(backward(ops, ops.asarray(dY), ops.asarray(X), Y)), expected_dX, **TOL[dtype])


def test_table_ops_reject_float_indices_and_wrong_ranks(ops):
    table = ops.alloc2f(4, 2)
    with pytest.raises(ValueError, match="gather_add: indices must be integers, got dtype float32"):
        ops.gather_add(table, ops.alloc2f(2, 2))
    with pytest.raises(ValueError, match=r"gather_add: expected a 2d array for indices, got an array of shape \(3,\)"):
        ops.gather_add(table, ops.asarray(numpy.zeros(3, dtype="int32")))
    with pytest.raises(ValueError, match=r"softmax_sequences: expected a 2d array for Xs"):
        ops.softmax_sequences(ops.alloc3f(1, 2, 2), ops.asarray(numpy.asarray([1], dtype="int32")))


def test_float32_gelu_and_its_gradient_stay_within_float32_resolution_of_the_exact_curve(ops):
    from scipy.special import erfc

    X = numpy.linspace(-12.0, 12.0, 4001).astype("float32")
    exact_X = X.astype("float64")
    cdf = 0.5 * erfc(-exact_X / numpy.sqrt(2.0))
    density = numpy.exp(-0.5 * exact_X**2) / numpy.sqrt(2.0 * numpy.pi)
    Y = to_host(ops.gelu(ops.asarray(X)))
    dX = to_host(ops.backprop_gelu(ops.asarray(numpy.ones_like(X)), ops.asarray(X)))
    numpy.testing.assert_allclose(Y, exact_X * cdf, rtol=1e-5, atol=5e-7)
    numpy.testing.assert_allclose(dX, cdf + exact_X * density, atol=5e-7)
    # The negative tail keeps its sign and size (not rounded to 0 or to noise of 1e-8).
    tail = X < -4
    numpy.testing.assert_allclose(Y[tail], (exact_X * cdf)[tail], rtol=0.05)


def test_sigmoid_saturates_without_warnings_and_is_accurate_in_the_tails(ops):
    X = ops.asarray(numpy.asarray([-1000.0, -100.0, -30.0, 0.0, 30.0, 1000.0], dtype="float32"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Y = to_host(ops.sigmoid(X))
    with numpy.errstate(over="ignore"):  # the float64 reference saturates through inf too
        expected = 1.0 / (1.0 + numpy.exp(-to_host(X).astype("float64")))
    numpy.testing.assert_allclose(Y, expected, rtol=1e-6, atol=1e-37)
    assert Y[-1] == 1.0


def test_scatter_add_with_a_heavily_repeated_id_matches_add_at(ops):
    indices = numpy.asarray([3] * 50 + [1, 0, 1, 7, 3, 2, 2, 2], dtype="int32")
    values = random((indices.size, 4), "float64", seed=40)
    expected = random((8, 4), "float64", seed=41)
    table = ops.asarray(expected.copy())
    numpy.add.at(expected, indices, values)
    ops.scatter_add(table, ops.asarray(indices), ops.asarray(values))
    numpy.testing.assert_allclose(to_host(table), expected, atol=1e-12)
