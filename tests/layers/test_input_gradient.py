"""begin_update(X, input_gradient=False): the first layer skips d(input), the weights' gradients do not change."""
import numpy

from composa import Linear, Relu, Softmax, chain, residual


def trained_grads(model, X, dY, **kwargs):
    for node in model.walk():
        for name in node.grad_names:
            node.get_grad(name).fill(0)
    _, backprop = model.begin_update(X, **kwargs)
    return backprop(dY), {key: grad.copy() for key, (_, grad) in model.get_gradients().items()}


def test_without_the_input_gradient_the_weight_gradients_are_the_same_and_dX_is_none():
    X = numpy.random.default_rng(0).standard_normal((6, 5)).astype("float32")
    model = chain(Relu(8), chain(Linear(7), Relu(7)), Softmax(3)).initialize(X=X)
    dY = numpy.ones((6, 3), dtype="float32")
    dX, with_input = trained_grads(model, X, dY)
    assert dX.shape == X.shape
    skipped, without_input = trained_grads(model, X, dY, input_gradient=False)
    assert skipped is None
    assert with_input.keys() == without_input.keys()
    for key in with_input:
        numpy.testing.assert_allclose(without_input[key], with_input[key], rtol=1e-6)


def test_weight_gradients_accumulate_over_two_backprops():
    X = numpy.random.default_rng(1).standard_normal((4, 3)).astype("float32")
    model = Linear(2).initialize(X=X)
    dY = numpy.ones((4, 2), dtype="float32")
    for _ in range(2):
        _, backprop = model.begin_update(X, input_gradient=False)
        backprop(dY)
    numpy.testing.assert_allclose(model.get_grad("W"), 2 * dY.T @ X, rtol=1e-6)


def test_a_layer_that_is_not_first_in_a_chain_still_returns_its_input_gradient():
    X = numpy.random.default_rng(2).standard_normal((4, 3)).astype("float32")
    model = residual(Linear(3)).initialize(X=X)
    _, backprop = model.begin_update(X, input_gradient=False)
    dX = backprop(numpy.ones((4, 3), dtype="float32"))
    assert dX is not None and dX.shape == X.shape
