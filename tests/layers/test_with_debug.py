"""with_debug and with_nvtx_range: callbacks wrapped around a layer, in place."""
import numpy

from composa import Linear, chain, wrap_model_recursive, with_debug, with_nvtx_range
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def test_callbacks_see_init_forward_and_backprop():
    events = []
    layer = Linear(2)
    model = with_debug(
        layer,
        on_init=lambda model, X, Y: events.append(("init", model.name, X.shape)),
        on_forward=lambda model, X, is_train: events.append(("forward", X.shape, is_train)),
        on_backprop=lambda dY: events.append(("backprop", dY.shape)),
    )
    assert model is layer
    model.initialize(X=sample(3, 4))
    assert model.get_dim("nI") == 4
    Y, backprop = model.begin_update(sample(5, 4))
    backprop(Y)
    assert events == [("init", "linear", (3, 4)), ("forward", (5, 4), True), ("backprop", (5, 2))]


def test_chain_initialisation_runs_forward_on_each_debugged_child():
    seen = []
    model = wrap_model_recursive(
        chain(Linear(3), Linear(2)),
        lambda node: with_debug(node, on_forward=lambda model, X, is_train: seen.append(model.name)),
    )
    model.initialize(X=sample(2, 4))
    assert seen.count("linear") == 2


def test_wrapped_layers_keep_their_gradients():
    model = with_nvtx_range(with_debug(chain(Linear(3), Linear(2))), name="block")
    model.initialize(X=sample(2, 4))
    check_gradients(model, sample(3, 4, seed=1))
    assert model.predict(sample(0, 4)).shape == (0, 2)
