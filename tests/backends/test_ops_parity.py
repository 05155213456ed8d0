"""Every public Ops method gives NumpyOps' answer on CupyOps, and torch CUDA's where torch has the op.

Each entry of CASES calls one method (forward ops and their backprops alike) on inputs
made from fixed numpy data, so the same call runs on NumpyOps (the reference) and on the
backend under test. The base ``Ops`` is tested the same way on every machine, which also
keeps this table runnable without a GPU; the CupyOps cases are marked gpu.
"""
import numpy
import pytest

from composa.backends import CupyOps, NumpyOps, Ops

from gpu_helpers import BACKEND_CLASSES, HAS_CUDA, TWIN_BACKENDS, assert_same, to_host
from test_ops import ACTIVATIONS, torch_lstm_params

FLOATS = ["float32", "float64"]
TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-9, atol=1e-10)}
ACT = (64, 33)  # elementwise ops: enough values that an error near a kink or threshold shows
LSTM_SIZE_AT_T = [3, 3, 2, 1]  # packed time-major rows: lengths 4, 3, 2
LSTM_DEPTH, LSTM_DIRS, LSTM_NH, LSTM_NI = 2, 2, 3, 4


class Inputs:
    """Fixed pseudo-random inputs on one backend: floats of the case's dtype, ints, lengths."""

    def __init__(self, ops, dtype):
        self.ops, self.dtype = ops, dtype

    def f(self, *shape, seed=0, scale=2.0):
        return self.ops.asarray(self.host_f(*shape, seed=seed, scale=scale))

    def host_f(self, *shape, seed=0, scale=2.0):
        return (numpy.random.default_rng(seed).standard_normal(shape) * scale).astype(self.dtype)

    def i(self, values, dtype="int32"):
        return self.ops.asarray(numpy.asarray(values, dtype=dtype))

    def uniform(self, *shape, low=0.0, high=1.0, seed=0):
        return self.ops.asarray(numpy.random.default_rng(seed).uniform(low, high, shape).astype(self.dtype))


class Raised:
    """A case's outcome when the method raised: equal to another Raised of the same class."""

    def __init__(self, error):
        self.kind, self.message = type(error).__name__, str(error)

    def __eq__(self, other):
        return isinstance(other, Raised) and other.kind == self.kind

    def __repr__(self):
        return f"Raised({self.kind}: {self.message[:200]})"


def lstm_params(m):
    n_params = sum(
        LSTM_DIRS * 4 * LSTM_NH * ((LSTM_NI if layer == 0 else LSTM_DIRS * LSTM_NH) + LSTM_NH + 2)
        for layer in range(LSTM_DEPTH)
    )
    shape = (LSTM_DEPTH, LSTM_DIRS, LSTM_NH)
    X = m.f(sum(LSTM_SIZE_AT_T), LSTM_NI, seed=3)
    return m.f(n_params, seed=1, scale=0.5), m.f(*shape, seed=2, scale=0.3), m.f(*shape, seed=4, scale=0.3), X


def lstm_training(o, m):
    params, H0, C0, X = lstm_params(m)
    return params, o.lstm_forward_training(params, H0, C0, X, m.i(LSTM_SIZE_AT_T))


def backprop_lstm(o, m):
    params, (Y, state) = lstm_training(o, m)
    return o.backprop_lstm(m.f(*Y.shape, seed=5), m.i(LSTM_SIZE_AT_T), params, state, return_initial=True)


def dropout_mask(o, m):
    mask = to_host(o.get_dropout_mask((300, 200), 0.25))
    kept = float((mask > 0).mean())
    return numpy.unique(mask), abs(kept - 0.75) < 0.01, o.get_dropout_mask((2, 3), None), o.get_dropout_mask(4, 1.0)


def in_place(method, *make_args):
    """Call an in-place method and return what it changed (its first argument and its return value)."""

    def case(o, m):
        args = [make(m) for make in make_args]
        result = getattr(o, method)(*args)
        return args, result

    return case


def reduce_case(name):
    return lambda o, m: getattr(o, name)(m.f(6, 3), m.i([3, 1, 2]))


def backprop_reduce_case(forward, name, pick):
    """Backprop of a reduction, fed what its forward returned (`pick` selects the argument)."""

    def case(o, m):
        X, lengths = m.f(6, 3), m.i([3, 1, 2])
        out = getattr(o, forward)(X, lengths)
        return getattr(o, name)(m.f(3, 3, seed=1), *pick(out, lengths))

    return case


SEQS = lambda m: [m.f(3, 2), m.f(1, 2, seed=1), m.f(2, 2, seed=2)]  # noqa: E731

# name: case(ops, inputs) -> anything assert_same can compare; one entry per public method
CASES = {
    "alloc": lambda o, m: [o.alloc((3, 4), dtype=m.dtype), o.alloc(5, dtype="int64"), o.alloc((2, 2), zeros=False).shape],
    "alloc1f": lambda o, m: o.alloc1f(3, dtype=m.dtype),
    "alloc2f": lambda o, m: o.alloc2f(2, 3, dtype=m.dtype),
    "alloc3f": lambda o, m: o.alloc3f(2, 3, 1),
    "alloc4f": lambda o, m: o.alloc4f(2, 1, 3, 1),
    "alloc_f": lambda o, m: o.alloc_f((2, 3)),
    "alloc1i": lambda o, m: o.alloc1i(3),
    "alloc2i": lambda o, m: o.alloc2i(2, 3, dtype="int64"),
    "alloc3i": lambda o, m: o.alloc3i(2, 3, 1),
    "alloc4i": lambda o, m: o.alloc4i(2, 1, 3, 1),
    "alloc_i": lambda o, m: o.alloc_i((2, 3)),
    "asarray": lambda o, m: [o.asarray([[1, 2], [3, 4]], dtype=m.dtype), o.asarray(m.host_f(2, 3)), o.asarray(m.f(2, 2), dtype="float16")],
    "asarray1f": lambda o, m: o.asarray1f([1.5, 2.5]),
    "asarray2f": lambda o, m: o.asarray2f(m.host_f(2, 3), dtype=m.dtype),
    "asarray3f": lambda o, m: o.asarray3f(m.host_f(2, 3, 1)),
    "asarray4f": lambda o, m: o.asarray4f(m.host_f(1, 2, 3, 1)),
    "asarray_f": lambda o, m: o.asarray_f(m.host_f(4)),
    "asarray1i": lambda o, m: o.asarray1i([1, 2, 3]),
    "asarray2i": lambda o, m: o.asarray2i([[1, 2]], dtype="int64"),
    "asarray3i": lambda o, m: o.asarray3i([[[1], [2]]]),
    "asarray4i": lambda o, m: o.asarray4i([[[[1, 2]]]]),
    "asarray_i": lambda o, m: o.asarray_i(numpy.arange(5, dtype="int16")),
    "as_contig": lambda o, m: [o.as_contig(m.f(4, 3).T), o.as_contig(m.f(4, 3).T).flags["C_CONTIGUOUS"], o.as_contig(m.f(2, 2), dtype="float16")],
    "to_numpy": lambda o, m: [o.to_numpy(m.f(3, 2)), o.to_numpy(m.f(3, 2), byte_order=">")],
    "cblas": lambda o, m: o.cblas(),
    "reshape": lambda o, m: o.reshape(m.f(12), (3, 4)),
    "reshape1": lambda o, m: o.reshape1(m.f(3, 4), 12),
    "reshape2": lambda o, m: o.reshape2(m.f(12), 3, 4),
    "reshape3": lambda o, m: o.reshape3(m.f(12), 3, 2, 2),
    "reshape4": lambda o, m: o.reshape4(m.f(12), 3, 2, 2, 1),
    "reshape1f": lambda o, m: o.reshape1f(m.f(3, 4), 12),
    "reshape2f": lambda o, m: o.reshape2f(m.f(12), 4, 3),
    "reshape3f": lambda o, m: o.reshape3f(m.f(12), 2, 3, 2),
    "reshape4f": lambda o, m: o.reshape4f(m.f(12), 1, 2, 3, 2),
    "reshape_f": lambda o, m: o.reshape_f(m.f(12), (6, 2)),
    "reshape1i": lambda o, m: o.reshape1i(m.i([[1, 2], [3, 4]]), 4),
    "reshape2i": lambda o, m: o.reshape2i(m.i(range(6)), 2, 3),
    "reshape3i": lambda o, m: o.reshape3i(m.i(range(6)), 1, 2, 3),
    "reshape4i": lambda o, m: o.reshape4i(m.i(range(6)), 1, 2, 3, 1),
    "reshape_i": lambda o, m: o.reshape_i(m.i(range(6)), (3, 2)),
    "gemm": lambda o, m: [
        o.gemm(m.f(5, 4), m.f(4, 3, seed=1)),
        o.gemm(m.f(4, 5), m.f(4, 3, seed=1), trans1=True),
        o.gemm(m.f(5, 4), m.f(3, 4, seed=1), trans2=True),
        o.gemm(m.f(4, 5), m.f(3, 4, seed=1), trans1=True, trans2=True),
        o.gemm(m.f(5, 4), m.f(4, 3, seed=1), out=o.alloc2f(5, 3, dtype=m.dtype)),
    ],
    "affine": lambda o, m: o.affine(m.f(5, 4), m.f(3, 4, seed=1), m.f(3, seed=2)),
    "sigmoid": lambda o, m: o.sigmoid(m.f(*ACT, scale=8.0)),
    "dsigmoid": lambda o, m: o.dsigmoid(m.uniform(*ACT)),
    "backprop_sigmoid": lambda o, m: o.backprop_sigmoid(m.f(*ACT), m.uniform(*ACT, seed=1)),
    "dtanh": lambda o, m: o.dtanh(m.uniform(*ACT, low=-1.0)),
    "relu": lambda o, m: o.relu(m.f(*ACT)),
    "backprop_relu": lambda o, m: o.backprop_relu(m.f(*ACT, seed=1), o.relu(m.f(*ACT))),
    "clipped_linear": lambda o, m: o.clipped_linear(m.f(*ACT), slope=1.5, offset=0.2, min_val=-1.0, max_val=2.0),
    "backprop_clipped_linear": lambda o, m: o.backprop_clipped_linear(m.f(*ACT, seed=1), m.f(*ACT), slope=1.5, offset=0.2, min_val=-1.0, max_val=2.0),
    "relu_k": lambda o, m: o.relu_k(m.f(*ACT, scale=4.0), n=3.0),
    "backprop_relu_k": lambda o, m: o.backprop_relu_k(m.f(*ACT, seed=1), m.f(*ACT, scale=4.0), n=3.0),
    "hard_sigmoid": lambda o, m: o.hard_sigmoid(m.f(*ACT, scale=4.0)),
    "backprop_hard_sigmoid": lambda o, m: o.backprop_hard_sigmoid(m.f(*ACT, seed=1), m.f(*ACT, scale=4.0)),
    "hard_tanh": lambda o, m: o.hard_tanh(m.f(*ACT)),
    "backprop_hard_tanh": lambda o, m: o.backprop_hard_tanh(m.f(*ACT, seed=1), m.f(*ACT)),
    "swish": lambda o, m: o.swish(m.f(*ACT, scale=4.0)),
    "backprop_swish": lambda o, m: o.backprop_swish(m.f(*ACT, seed=1), m.f(*ACT, scale=4.0), o.swish(m.f(*ACT, scale=4.0))),
    "hard_swish": lambda o, m: o.hard_swish(m.f(*ACT, scale=4.0)),
    "backprop_hard_swish": lambda o, m: o.backprop_hard_swish(m.f(*ACT, seed=1), m.f(*ACT, scale=4.0)),
    "hard_swish_mobilenet": lambda o, m: o.hard_swish_mobilenet(m.f(*ACT, scale=4.0)),
    "backprop_hard_swish_mobilenet": lambda o, m: o.backprop_hard_swish_mobilenet(m.f(*ACT, seed=1), m.f(*ACT, scale=4.0)),
    "dish": lambda o, m: o.dish(m.f(*ACT, scale=4.0)),
    "backprop_dish": lambda o, m: o.backprop_dish(m.f(*ACT, seed=1), m.f(*ACT, scale=4.0)),
    "erf": lambda o, m: o.erf(m.f(*ACT)),
    "gelu": lambda o, m: o.gelu(m.f(*ACT, scale=4.0)),
    "backprop_gelu": lambda o, m: o.backprop_gelu(m.f(*ACT, seed=1), m.f(*ACT, scale=4.0)),
    "gelu_approx": lambda o, m: o.gelu_approx(m.f(*ACT, scale=4.0)),
    "backprop_gelu_approx": lambda o, m: o.backprop_gelu_approx(m.f(*ACT, seed=1), m.f(*ACT, scale=4.0)),
    "mish": lambda o, m: [o.mish(m.f(*ACT, scale=4.0)), o.mish(m.f(*ACT, scale=4.0), threshold=1.0)],
    "backprop_mish": lambda o, m: [o.backprop_mish(m.f(*ACT, seed=1), m.f(*ACT, scale=4.0)), o.backprop_mish(m.f(*ACT, seed=1), m.f(*ACT, scale=4.0), threshold=1.0)],
    "sechsq": lambda o, m: o.sechsq(m.f(*ACT, scale=8.0)),
    "softmax": lambda o, m: [o.softmax(m.f(*ACT), temperature=0.7), o.softmax(m.f(*ACT), axis=0), o.softmax(m.f(2, 3, 4))],
    "backprop_softmax": lambda o, m: o.backprop_softmax(o.softmax(m.f(*ACT), temperature=0.7), m.f(*ACT, seed=1), temperature=0.7),
    "softmax_sequences": lambda o, m: o.softmax_sequences(m.f(6, 3), m.i([3, 1, 2])),
    "backprop_softmax_sequences": lambda o, m: o.backprop_softmax_sequences(m.f(6, 3, seed=1), o.softmax_sequences(m.f(6, 3), m.i([3, 1, 2])), m.i([3, 1, 2])),
    "maxout": lambda o, m: o.maxout(m.f(5, 4, 3)),
    "backprop_maxout": lambda o, m: o.backprop_maxout(m.f(5, 4, seed=1), o.maxout(m.f(5, 4, 3))[1], 3),
    "reduce_sum": lambda o, m: o.reduce_sum(m.f(5, 3), m.i([3, 0, 2])),
    "reduce_mean": lambda o, m: o.reduce_mean(m.f(5, 3), m.i([3, 0, 2])),
    "reduce_max": reduce_case("reduce_max"),
    "reduce_first": reduce_case("reduce_first"),
    "reduce_last": reduce_case("reduce_last"),
    "backprop_reduce_sum": lambda o, m: o.backprop_reduce_sum(m.f(3, 3), m.i([3, 0, 2])),
    "backprop_reduce_mean": lambda o, m: o.backprop_reduce_mean(m.f(3, 3), m.i([3, 0, 2])),
    "backprop_reduce_max": backprop_reduce_case("reduce_max", "backprop_reduce_max", lambda out, lengths: (out[1], lengths)),
    "backprop_reduce_first": backprop_reduce_case("reduce_first", "backprop_reduce_first", lambda out, lengths: (out[1],)),
    "backprop_reduce_last": backprop_reduce_case("reduce_last", "backprop_reduce_last", lambda out, lengths: (out[1],)),
    "seq2col": lambda o, m: [o.seq2col(m.f(6, 2), 1, lengths=m.i([3, 1, 2])), o.seq2col(m.f(4, 3), 2)],
    "backprop_seq2col": lambda o, m: [o.backprop_seq2col(m.f(6, 6), 1, lengths=m.i([3, 1, 2])), o.backprop_seq2col(m.f(4, 15), 2)],
    "flatten": lambda o, m: [o.flatten(SEQS(m)), o.flatten(SEQS(m), pad=1), o.flatten([])],
    "unflatten": lambda o, m: [o.unflatten(m.f(6, 2), m.i([3, 1, 2])), o.unflatten(m.f(10, 2), m.i([3, 1, 2]), pad=1)],
    "pad": lambda o, m: [o.pad(SEQS(m)), o.pad(SEQS(m), round_to=4)],
    "unpad": lambda o, m: o.unpad(m.f(3, 4, 2), m.i([4, 1, 2])),
    "list2padded": lambda o, m: o.list2padded(SEQS(m)),
    "padded2list": lambda o, m: o.padded2list(o.list2padded(SEQS(m))),
    "insert_into": lambda o, m: o.insert_into((3, 4, 2), SEQS(m)),
    "tile": lambda o, m: o.tile(m.f(2, 3), (2, 1)),
    "get_dropout_mask": dropout_mask,
    "gather_add": lambda o, m: o.gather_add(m.f(7, 3), m.i([[0, 6], [2, 2], [5, 1]])),
    "scatter_add": in_place("scatter_add", lambda m: m.f(7, 3), lambda m: m.i([0, 6, 2, 2, 0]), lambda m: m.f(5, 3, seed=1)),
    "hash": lambda o, m: [o.hash(m.i([0, 1, 2**40, 2**64 - 1], dtype="uint64"), seed) for seed in (0, 7, 2**32 - 1)],
    "hash_rows": lambda o, m: [o.hash_rows(m.i([0, 1, 2**40, 2**64 - 1], dtype="uint64"), 7, n) for n in (1, 5000, 2**31 - 1)],
    "ngrams": lambda o, m: [o.ngrams(n, m.i([1, 5, 2**63, 7, 9], dtype="uint64")) for n in (0, 1, 2, 3)],
    "position_encode": lambda o, m: o.position_encode(7, 6),
    "minibatch": lambda o, m: list(o.minibatch(3, m.f(8, 2))),
    "multibatch": lambda o, m: list(o.multibatch(3, m.f(8, 2), m.i(range(8)))),
    "update_averages": in_place("update_averages", lambda m: m.f(4, 3), lambda m: m.f(4, 3, seed=1), lambda m: 5),
    "adam": lambda o, m: o.adam(m.f(4, 3), m.f(4, 3, seed=1), m.f(4, 3, seed=2), m.uniform(4, 3, seed=3), 0.9, 0.999, 1e-8, 0.01, 0.5),
    "clip_gradient": lambda o, m: [o.clip_gradient(m.f(4, 3), 1.0), o.clip_gradient(m.f(4, 3, scale=0.01), 1.0)],
    "logloss": lambda o, m: o.logloss(m.uniform(6), m.uniform(6, seed=1)),
    "lstm_forward_training": lambda o, m: lstm_training(o, m)[1][0],
    "lstm_forward_inference": lambda o, m: o.lstm_forward_inference(*lstm_params(m), m.i(LSTM_SIZE_AT_T)),
    "backprop_lstm": backprop_lstm,
}
# Methods whose reference answer is an error (composa has no C BLAS table).
RAISES = {"cblas"}


def public_methods(cls):
    return {name for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))}


def run_case(name, ops, dtype):
    try:
        return CASES[name](ops, Inputs(ops, dtype))
    except Exception as error:  # an error is an outcome to compare, like a value
        return Raised(error)


def test_every_public_ops_method_has_a_case():
    methods = public_methods(Ops) | public_methods(NumpyOps) | public_methods(CupyOps)
    assert sorted(methods - set(CASES)) == [], "add a case for each new Ops method"
    assert sorted(set(CASES) - methods) == []


@pytest.mark.parametrize("backend", [pytest.param(name, marks=[pytest.mark.gpu] if name == "CupyOps" else []) for name in TWIN_BACKENDS])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_method_gives_the_numpy_ops_answer(name, dtype, backend):
    expected = run_case(name, NumpyOps(), dtype)
    assert not isinstance(expected, Raised) or name in RAISES, f"the case for {name} is broken: {expected!r}"
    actual = run_case(name, BACKEND_CLASSES[backend](), dtype)
    assert_same(actual, expected, where=name, **TOL[dtype])


def test_a_wrong_answer_is_caught():
    """The comparison is sharp enough to see one wrong element (so a passing table means something)."""
    expected = run_case("relu", NumpyOps(), "float32")
    wrong = expected.copy()
    wrong[2, 3] += 1e-3
    with pytest.raises(AssertionError, match="relu"):
        assert_same(wrong, expected, where="relu", **TOL["float32"])


# Against torch on the same GPU -----------------------------------------------------------


@pytest.fixture
def torch_cuda():
    torch = pytest.importorskip("torch")
    if not HAS_CUDA:
        pytest.skip("needs a CUDA GPU for both cupy and torch")
    return torch


def cuda_tensor(torch, array, requires_grad=False):
    """A CUDA torch tensor sharing the cupy array's memory (DLPack), optionally a grad leaf."""
    tensor = torch.from_dlpack(array)
    return tensor.detach().clone().requires_grad_() if requires_grad else tensor


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_and_its_gradient_match_torch_cuda(torch_cuda, name, dtype):
    forward, backward, torch_fn = ACTIVATIONS[name]
    ops, m = CupyOps(), Inputs(CupyOps(), dtype)
    X, dY = m.f(64, 33, scale=3.0), m.f(64, 33, seed=1)
    Y = forward(ops, X.copy())
    dX = backward(ops, dY.copy(), X.copy(), Y.copy())
    X_t = cuda_tensor(torch_cuda, X, requires_grad=True)
    Y_t = torch_fn(X_t)
    Y_t.backward(torch_cuda.from_dlpack(dY))
    assert_same(Y, Y_t.detach().cpu().numpy(), where=f"{name} output", **TOL[dtype])
    assert_same(dX, X_t.grad.cpu().numpy(), where=f"{name} gradient", **TOL[dtype])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", FLOATS)
def test_affine_and_gemm_match_torch_cuda(torch_cuda, dtype):
    ops, m = CupyOps(), Inputs(CupyOps(), dtype)
    X, W, b = m.f(33, 17), m.f(9, 17, seed=1), m.f(9, seed=2)
    t = lambda a: cuda_tensor(torch_cuda, a)  # noqa: E731
    expected = torch_cuda.nn.functional.linear(t(X), t(W), t(b))
    assert_same(ops.affine(X, W, b), expected.cpu().numpy(), where="affine", **TOL[dtype])
    assert_same(ops.gemm(X, W, trans2=True), (t(X) @ t(W).T).cpu().numpy(), where="gemm", **TOL[dtype])


@pytest.mark.gpu
def test_lstm_forward_and_backward_match_torch_cuda(torch_cuda):
    torch = torch_cuda
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(LSTM_NI, LSTM_NH, num_layers=LSTM_DEPTH, bidirectional=True).double().cuda()
    parts = torch_lstm_params(lstm, LSTM_DEPTH, LSTM_DIRS)
    ops, m = CupyOps(), Inputs(CupyOps(), "float64")
    params = ops.asarray(torch.cat([p.detach().reshape(-1) for p in parts]))
    _, H0, C0, X = lstm_params(m)
    size_at_t = m.i(LSTM_SIZE_AT_T)
    Y, state = ops.lstm_forward_training(params, H0, C0, X, size_at_t)
    dY = m.f(*Y.shape, seed=5)
    dX, d_params = ops.backprop_lstm(dY, size_at_t, params, state)

    X_t = cuda_tensor(torch, X, requires_grad=True)
    batch = LSTM_SIZE_AT_T[0]
    h0 = cuda_tensor(torch, H0).reshape(LSTM_DEPTH * LSTM_DIRS, 1, LSTM_NH).expand(-1, batch, -1).contiguous()
    c0 = cuda_tensor(torch, C0).reshape(LSTM_DEPTH * LSTM_DIRS, 1, LSTM_NH).expand(-1, batch, -1).contiguous()
    packed = torch.nn.utils.rnn.PackedSequence(X_t, torch.tensor(LSTM_SIZE_AT_T, dtype=torch.int64))
    with torch.backends.cudnn.flags(enabled=False):  # torch's own kernels, exact float64
        out, _ = lstm(packed, (h0, c0))
        out.data.backward(cuda_tensor(torch, dY))
    expected_d_params = torch.cat([p.grad.reshape(-1) for p in parts])
    assert_same(Y, out.data.detach().cpu().numpy(), where="Y", rtol=1e-9, atol=1e-10)
    assert_same(dX, X_t.grad.cpu().numpy(), where="dX", rtol=1e-9, atol=1e-10)
    assert_same(d_params, expected_d_params.cpu().numpy(), where="d_params", rtol=1e-9, atol=1e-10)
