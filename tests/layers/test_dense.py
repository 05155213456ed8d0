"""The dense family (Relu, Mish, Swish, Gelu, Dish, HardSwish*, ClippedLinear, HardSigmoid,
HardTanh, ReluK): one template, so every layer gets the same checks, plus PyTorch references."""
import numpy
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import (
    ClippedLinear,
    Dish,
    Gelu,
    HardSigmoid,
    HardSwish,
    HardSwishMobilenet,
    HardTanh,
    Mish,
    Relu,
    ReluK,
    Swish,
    registry,
)
from composa.errors import ShapeMismatchError
from composa.initializers import uniform_init
from composa.testing import check_gradients

F = torch.nn.functional

# factory, registered name, model name, the same activation written in torch
LAYERS = [
    (Relu, "Relu.v1", "relu", F.relu),
    (Mish, "Mish.v1", "mish", F.mish),
    (Swish, "Swish.v1", "swish", F.silu),
    (Gelu, "Gelu.v1", "gelu", F.gelu),
    (Dish, "Dish.v1", "dish", lambda z: 0.5 * z * (1 + z / torch.sqrt(1 + z * z))),
    (HardSwish, "HardSwish.v1", "hardswish", lambda z: z * torch.clamp(0.2 * z + 0.5, 0, 1)),
    (HardSwishMobilenet, "HardSwishMobilenet.v1", "hardswishmobilenet", F.hardswish),
    (ClippedLinear, "ClippedLinear.v1", "clipped_linear", lambda z: torch.clamp(z, 0, 1)),
    (HardSigmoid, "HardSigmoid.v1", "clipped_linear", lambda z: torch.clamp(0.2 * z + 0.5, 0, 1)),
    (HardTanh, "HardTanh.v1", "clipped_linear", F.hardtanh),
    (ReluK, "ReluK.v1", "clipped_linear", F.relu6),
]
IDS = [registered for _, registered, _, _ in LAYERS]
# Points where a piecewise-linear activation above changes slope.
KINKS = [-3.0, -2.5, -1.0, 0.0, 1.0, 2.5, 3.0, 6.0]


def sample(rows=6, width=3, seed=0, dtype="float32"):
    return numpy.random.RandomState(seed).uniform(-2, 2, (rows, width)).astype(dtype)


def as_float64(model):
    for node in model.walk():
        for name in node.param_names:
            if node.has_param(name):
                node.set_param(name, node.get_param(name).astype("float64"))
    return model


def random_bias(ops, shape):
    return ops.asarray_f(numpy.random.uniform(-1, 1, shape))


@pytest.mark.parametrize("factory,registered,name,torch_fn", LAYERS, ids=IDS)
def test_registered_under_its_v1_name(factory, registered, name, torch_fn):
    assert registry.layers.get(registered) is factory
    assert factory().name == name


@pytest.mark.parametrize("factory,registered,name,torch_fn", LAYERS, ids=IDS)
def test_initialize_infers_widths_from_samples(factory, registered, name, torch_fn):
    model = factory().initialize(X=sample(6, 3), Y=sample(6, 4))
    assert (model.get_dim("nI"), model.get_dim("nO")) == (3, 4)
    assert model.get_param("W").shape == (4, 3)
    assert model.get_param("b").shape == (4,)
    assert model.predict(sample(6, 3)).shape == (6, 4)


@pytest.mark.parametrize("factory,registered,name,torch_fn", LAYERS, ids=IDS)
def test_gradients_match_finite_differences(factory, registered, name, torch_fn):
    # nI != nO catches a backprop that confuses the input with the pre-activation (reference Dish bug).
    model = factory(4, 3, init_b=random_bias).initialize()
    check_gradients(model, sample(5, 3, seed=1))


@pytest.mark.parametrize("factory,registered,name,torch_fn", LAYERS, ids=IDS)
def test_outputs_and_gradients_match_pytorch(factory, registered, name, torch_fn):
    model = as_float64(factory(4, 3, init_b=random_bias).initialize())
    X = sample(7, 3, seed=2, dtype="float64")
    dY = sample(7, 4, seed=3, dtype="float64")
    Y, backprop = model(X, is_train=True)
    dX = backprop(dY)

    linear = torch.nn.Linear(3, 4).double()
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(model.get_param("W")))
        linear.bias.copy_(torch.from_numpy(model.get_param("b")))
    X_torch = torch.from_numpy(X).requires_grad_()
    Y_torch = torch_fn(linear(X_torch))
    Y_torch.backward(torch.from_numpy(dY))

    numpy.testing.assert_allclose(Y, Y_torch.detach().numpy(), atol=1e-5)
    numpy.testing.assert_allclose(dX, X_torch.grad.numpy(), atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("W"), linear.weight.grad.numpy(), atol=1e-5)
    numpy.testing.assert_allclose(model.get_grad("b"), linear.bias.grad.numpy(), atol=1e-5)


@pytest.mark.parametrize("factory,registered,name,torch_fn", LAYERS, ids=IDS)
def test_serialization_round_trip(factory, registered, name, torch_fn):
    model = factory(4, 3, init_b=random_bias).initialize()
    fresh = factory(4, 3).initialize()
    data = model.to_bytes()
    fresh.from_bytes(data)
    X = sample()
    numpy.testing.assert_array_equal(fresh.predict(X), model.predict(X))
    assert fresh.to_bytes() == data


@pytest.mark.parametrize("factory,registered,name,torch_fn", LAYERS, ids=IDS)
def test_empty_batch(factory, registered, name, torch_fn):
    model = factory(4, 3).initialize()
    Y, backprop = model(numpy.zeros((0, 3), dtype="f"), is_train=True)
    assert Y.shape == (0, 4)
    assert backprop(numpy.zeros((0, 4), dtype="f")).shape == (0, 3)
    numpy.testing.assert_array_equal(model.get_grad("W"), numpy.zeros((4, 3)))


@pytest.mark.parametrize("factory,registered,name,torch_fn", LAYERS, ids=IDS)
def test_width_mismatch_names_layer_and_widths(factory, registered, name, torch_fn):
    model = factory(4, 3).initialize()
    with pytest.raises(ShapeMismatchError, match=rf"{name}: expected input width nI=3, got an array of shape \(8, 5\)"):
        model.predict(sample(8, 5))


@pytest.mark.parametrize("factory,registered,name,torch_fn", LAYERS, ids=IDS)
def test_normalize_and_dropout_append_layers(factory, registered, name, torch_fn):
    model = factory(4, 3, normalize=True, dropout=0.2)
    assert model.name == f"{name}>>layernorm>>dropout"
    model.initialize(X=sample(6, 3))
    assert model.layers[0].layers[1].get_dim("nI") == 4
    assert model.layers[1].attrs["dropout_rate"] == 0.2
    check_gradients(model, sample(5, 3, seed=4))


def test_bad_backprop_gradient_shape_is_a_clear_error():
    model = Relu(4, 3).initialize()
    _, backprop = model(sample(6, 3), is_train=True)
    with pytest.raises(ShapeMismatchError, match=r"relu: backprop expected a gradient of shape \(6, 4\)"):
        backprop(sample(6, 3))


@pytest.mark.parametrize("factory", [HardSigmoid, HardTanh, ReluK])
def test_clipped_aliases_honour_init_b(factory):
    # The reference drops init_b for these three.
    model = factory(4, 3, init_b=lambda ops, shape: ops.alloc_f(shape) + 0.25).initialize()
    numpy.testing.assert_array_equal(model.get_param("b"), numpy.full((4,), 0.25, dtype="f"))


def test_clipped_linear_rejects_min_above_max():
    with pytest.raises(ValueError, match="min_val=2.0 is greater than max_val=1.0"):
        ClippedLinear(min_val=2.0, max_val=1.0)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(0, 9),
    slope=st.floats(-3, 3),
    offset=st.floats(-2, 2),
    bounds=st.tuples(st.floats(-3, 3), st.floats(-3, 3)).map(sorted),
)
def test_clipped_linear_output_stays_within_bounds(rows, slope, offset, bounds):
    min_val, max_val = bounds
    model = ClippedLinear(5, 3, slope=slope, offset=offset, min_val=min_val, max_val=max_val)
    model.initialize(X=sample(2, 3), Y=sample(2, 5))
    Y = model.predict(sample(rows, 3, seed=rows) * 10)
    assert Y.shape == (rows, 5)
    assert ((Y >= numpy.float32(min_val)) & (Y <= numpy.float32(max_val))).all()


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(0, 9), nI=st.integers(1, 6), nO=st.integers(1, 6))
def test_relu_output_is_nonnegative_for_any_widths(rows, nI, nO):
    model = Relu(nO, nI).initialize()
    Y = model.predict(sample(rows, nI, seed=nI))
    assert Y.shape == (rows, nO)
    assert (Y >= 0).all()


@pytest.mark.parametrize("factory,registered,name,torch_fn", LAYERS, ids=IDS)
@settings(max_examples=25, deadline=None)
@given(values=st.lists(st.floats(-40, 40), min_size=1, max_size=8))
def test_activation_matches_torch_over_a_wide_range(factory, registered, name, torch_fn, values):
    # With W = I and b = 0 the layer is its bare activation, including the saturated tails.
    width = len(values)
    model = factory(width, width).initialize()
    model.set_param("W", numpy.eye(width))
    model.set_param("b", numpy.zeros(width))
    X = numpy.array([values], dtype="float64")
    Y, backprop = model(X, is_train=True)
    X_torch = torch.from_numpy(X).requires_grad_()
    Y_torch = torch_fn(X_torch)
    Y_torch.backward(torch.ones_like(Y_torch))
    numpy.testing.assert_allclose(Y, Y_torch.detach().numpy(), atol=1e-5, rtol=1e-5)
    # At the kinks of the piecewise activations either one-sided derivative is a valid choice.
    smooth = ~numpy.isin(X, KINKS)
    dX = backprop(numpy.ones_like(Y))
    numpy.testing.assert_allclose(dX[smooth], X_torch.grad.numpy()[smooth], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("factory,registered,name,torch_fn", LAYERS, ids=IDS)
def test_pickles_and_copies(factory, registered, name, torch_fn):
    import pickle

    model = factory(4, 3, init_b=random_bias).initialize()
    X = sample()
    for clone in (pickle.loads(pickle.dumps(model)), model.copy()):
        numpy.testing.assert_array_equal(clone.predict(X), model.predict(X))
