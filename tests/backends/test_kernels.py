"""The compiled kernels against NumpyOps's pure-numpy path, and the switch between them."""
import numpy
import pytest

from composa.backends import NumpyOps
from composa.errors import ConfigurationError

from conftest import HAS_NUMBA

needs_numba = pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed")
FLOATS = ["float32", "float64"]
TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-14)}

# name: call(ops, X, dY) for each op with a compiled kernel
OPS_WITH_KERNELS = {
    "relu": lambda o, X, dY: o.relu(X),
    "backprop_relu": lambda o, X, dY: o.backprop_relu(dY, o.relu(X)),
    "sigmoid": lambda o, X, dY: o.sigmoid(X),
    "backprop_sigmoid": lambda o, X, dY: o.backprop_sigmoid(dY, o.sigmoid(X)),
    "swish": lambda o, X, dY: o.swish(X),
    "backprop_swish": lambda o, X, dY: o.backprop_swish(dY, X, o.swish(X)),
    "gelu": lambda o, X, dY: o.gelu(X),
    "backprop_gelu": lambda o, X, dY: o.backprop_gelu(dY, X),
    "hard_swish_mobilenet": lambda o, X, dY: o.hard_swish_mobilenet(X),
    "backprop_hard_swish_mobilenet": lambda o, X, dY: o.backprop_hard_swish_mobilenet(dY, X),
    "softmax": lambda o, X, dY: o.softmax(X),
    "backprop_softmax": lambda o, X, dY: o.backprop_softmax(o.softmax(X), dY),
}


def sample(shape, dtype, seed, scale=4.0):
    return (numpy.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


@needs_numba
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(OPS_WITH_KERNELS))
def test_each_kernel_matches_the_numpy_path(name, dtype):
    compiled, plain = NumpyOps(kernels="numba"), NumpyOps(kernels="numpy")
    # odd sizes exercise the vector tails; relu's kernel only runs from 4096 values
    shape = (67, 71) if name.endswith("relu") else (37, 19)
    X, dY = sample(shape, dtype, 1), sample(shape, dtype, 2)
    result = OPS_WITH_KERNELS[name](compiled, X, dY)
    assert compiled.kernels == "numba" and plain.kernels == "numpy"
    assert result.dtype == X.dtype and result.shape == X.shape
    numpy.testing.assert_allclose(result, OPS_WITH_KERNELS[name](plain, X, dY), **TOL[dtype])


@needs_numba
def test_float32_exp_is_accurate_over_its_whole_range_and_keeps_nan():
    ops = NumpyOps(kernels="numba")
    X = numpy.linspace(-87.0, 87.0, 100001, dtype="float32")
    expected = 1.0 / (1.0 + numpy.exp(-X.astype("float64")))
    numpy.testing.assert_allclose(ops.sigmoid(X), expected, rtol=4e-7, atol=0)
    assert numpy.isnan(ops.sigmoid(numpy.asarray([numpy.nan], dtype="float32"))).all()
    assert numpy.isnan(ops.relu(numpy.asarray([numpy.nan], dtype="float32"))).all()


@needs_numba
@pytest.mark.parametrize("dtype", FLOATS)
def test_table_kernels_match_numpy_add_at_with_duplicates(dtype):
    ops = NumpyOps(kernels="numba")
    table = sample((6, 5), dtype, 3)
    ids = numpy.asarray([[0, 3, 3, 5], [5, 5, 1, 0], [2, 2, 2, 2]], dtype="int32")
    numpy.testing.assert_allclose(ops.gather_add(table, ids), table[ids].sum(axis=1), **TOL[dtype])
    rows = sample((3, 5), dtype, 4)
    expected = table.copy()
    numpy.add.at(expected, ids, rows[:, None, :])
    numpy.testing.assert_allclose(ops.scatter_add(table.copy(), ids, rows[:, None, :]), expected, **TOL[dtype])
    plain = NumpyOps(kernels="numpy").scatter_add(table.copy(), ids, rows[:, None, :])
    numpy.testing.assert_allclose(plain, expected, **TOL[dtype])


def added_in_order(rows):
    """The rows summed one after another, as the kernels must (float addition does not reassociate)."""
    total = rows[0].copy()
    for row in rows[1:]:
        total = total + row
    return total


@needs_numba
@pytest.mark.parametrize("n_per_id", [1, 3, 4, 5])
def test_gather_add_sums_each_ids_rows_in_order_for_any_row_count(n_per_id):
    ops = NumpyOps(kernels="numba")
    table = sample((50, 7), "float32", 6)
    ids = numpy.random.default_rng(7).integers(0, 50, (11, n_per_id)).astype("int32")
    expected = numpy.stack([added_in_order(table[row]) for row in ids])
    numpy.testing.assert_array_equal(ops.gather_add(table, ids), expected)


@needs_numba
@pytest.mark.parametrize("bad", [-1, 6, 2**40])
def test_gather_add_kernel_refuses_ids_outside_the_table(bad):
    ops = NumpyOps(kernels="numba")
    ids = numpy.asarray([[0, 1, 2, 3], [4, 5, bad, 0]], dtype="int64")
    with pytest.raises(IndexError, match=r"gather_add: index out of bounds: indices span"):
        ops.gather_add(sample((6, 3), "float32", 8), ids)


@needs_numba
def test_sequence_sums_add_each_sequences_rows_in_order():
    ops = NumpyOps(kernels="numba")
    lengths = numpy.asarray([4, 8, 1, 7, 0, 9], dtype="int32")  # whole blocks of 4, and tails
    X = sample((int(lengths.sum()), 5), "float32", 9)
    starts = numpy.cumsum(lengths) - lengths
    expected = numpy.stack([added_in_order(X[s : s + n]) if n else numpy.zeros(5, "float32") for s, n in zip(starts, lengths)])
    numpy.testing.assert_array_equal(ops.reduce_sum(X, lengths), expected)
    divisors = numpy.maximum(lengths, 1).astype("float32")[:, None]
    numpy.testing.assert_array_equal(ops.reduce_mean(X, lengths), expected / divisors)


@needs_numba
@pytest.mark.parametrize("dtype", FLOATS)
def test_sequence_sums_match_the_numpy_path_with_empty_sequences(dtype):
    compiled, plain = NumpyOps(kernels="numba"), NumpyOps(kernels="numpy")
    X, lengths = sample((9, 4), dtype, 5), numpy.asarray([3, 0, 5, 1, 0], dtype="int32")
    for op in ("reduce_sum", "reduce_mean"):
        result = getattr(compiled, op)(X, lengths)
        assert result.dtype == X.dtype and not result[[1, 4]].any()
        numpy.testing.assert_allclose(result, getattr(plain, op)(X, lengths), **TOL[dtype])


@needs_numba
@needs_numba
@pytest.mark.parametrize("seed", [0, 1, 2**31 + 7, -3, 2**40])
def test_hash_kernel_gives_the_numpy_paths_words(seed):
    compiled, plain = NumpyOps(kernels="numba"), NumpyOps(kernels="numpy")
    rng = numpy.random.default_rng(0)
    for ids in [
        rng.integers(0, 2**64, size=257, dtype="uint64"),
        numpy.arange(-5, 5, dtype="int64"),  # signed ids hash as their uint64 bits
        numpy.zeros(0, dtype="uint64"),
        numpy.array([2**64 - 1], dtype="uint64"),
        rng.integers(0, 2**64, size=40, dtype="uint64")[::3],  # not contiguous
    ]:
        words = compiled.hash(ids, seed)
        assert words.dtype == numpy.uint32 and words.shape == (len(ids), 4)
        numpy.testing.assert_array_equal(words, plain.hash(ids, seed))
        # the kernel's word-by-word stores (big-endian machines) give the same words
        module = compiled._kernel_functions
        by_words = module.murmur3_128_uint64(
            numpy.ascontiguousarray(ids.astype("uint64")), seed & 0xFFFFFFFF, numpy.empty((len(ids), 4), dtype="uint32")
        )
        numpy.testing.assert_array_equal(by_words, words)


@needs_numba
@pytest.mark.parametrize("n_rows", [1, 2, 3, 5000, 7919, 2**20, 1_000_003, 2**31 - 1])
def test_hash_rows_kernel_gives_numpys_remainders_for_every_kind_of_word(n_rows):
    compiled, plain = NumpyOps(kernels="numba"), NumpyOps(kernels="numpy")
    ids = numpy.random.default_rng(1).integers(0, 2**64, size=3001, dtype="uint64")
    rows = compiled.hash_rows(ids, 7, n_rows)
    assert rows.dtype == numpy.int32 and rows.shape == (3001, 4)
    numpy.testing.assert_array_equal(rows, plain.hash_rows(ids, 7, n_rows))
    # the remainder's hard cases: the smallest and largest words, multiples of n_rows and their neighbours
    multiples = numpy.arange(1, 3000, dtype="uint64") * numpy.uint64(n_rows)
    words = numpy.concatenate([
        numpy.arange(3000, dtype="uint64"), numpy.arange(2**32 - 3000, 2**32, dtype="uint64"),
        multiples % 2**32, (multiples - 1) % 2**32, (multiples + 1) % 2**32,
    ]).astype("uint32").reshape(-1, 3)
    module = compiled._kernel_functions
    remainders = module.rows_of_words(words, n_rows, numpy.empty(words.shape, dtype="int32"))
    numpy.testing.assert_array_equal(remainders, (words % n_rows).astype("int32"))


@needs_numba
@pytest.mark.parametrize("n_rows", [0, -1, 2**31])
def test_hash_rows_refuses_a_table_size_int32_rows_cannot_name(n_rows):
    for ops in (NumpyOps(kernels="numba"), NumpyOps(kernels="numpy")):
        with pytest.raises(ValueError, match=r"hash_rows: n_rows must be in \[1, 2\*\*31\)"):
            ops.hash_rows(numpy.arange(3, dtype="uint64"), 0, n_rows)


def test_adam_kernel_matches_the_numpy_step_and_zeroes_the_gradient():
    arrays = [sample((50,), "float32", seed) for seed in range(4)]
    arrays[3] = numpy.abs(arrays[3])
    expected = [a.copy() for a in arrays]
    NumpyOps(kernels="numba").adam(*arrays, 0.9, 0.999, 1e-8, 0.01, 1.5)
    NumpyOps(kernels="numpy").adam(*expected, 0.9, 0.999, 1e-8, 0.01, 1.5)
    for got, want in zip(arrays, expected):
        numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert not arrays[1].any()


def test_non_contiguous_and_integer_arrays_take_the_numpy_path():
    ops = NumpyOps()
    X = sample((8, 6), "float32", 5)
    numpy.testing.assert_array_equal(ops.relu(X[:, ::2]), numpy.maximum(X[:, ::2], 0))
    numpy.testing.assert_array_equal(ops.relu(numpy.arange(-3, 3)), numpy.maximum(numpy.arange(-3, 3), 0))


def test_an_unknown_kernel_choice_is_refused(monkeypatch):
    with pytest.raises(ConfigurationError, match="COMPOSA_KERNELS / kernels must be one of"):
        NumpyOps(kernels="fortran")
    monkeypatch.setenv("COMPOSA_KERNELS", "numpy")
    ops = NumpyOps()
    ops.relu(numpy.ones((2, 2), dtype="float32"))
    assert ops.kernels == "numpy"


def test_gemm_accumulate_adds_the_product_into_out_without_copying_it():
    ops = NumpyOps()
    a, b = sample((32, 7), "float32", 6), sample((32, 9), "float32", 7)
    out = numpy.ones((7, 9), dtype="float32")
    result = ops.gemm(a, b, out=out, trans1=True, accumulate=True)
    assert result is out
    numpy.testing.assert_allclose(out, 1.0 + a.T @ b, rtol=1e-5, atol=1e-5)
