"""noop: the identity layer."""
import numpy

from composa import Linear, Model, chain, noop, registry
from composa.testing import check_gradients


def test_identity_forward_and_backward_keeping_children():
    child = Linear(2, 2)
    model = registry.layers.get("noop.v1")(child)
    assert model.name == "noop" and model.layers == [child]
    X = numpy.ones((3, 2), dtype="float32")
    Y, backprop = model.begin_update(X)
    assert Y is X and backprop(Y) is X
    check_gradients(noop(), X)
    assert noop().predict([]) == []


def test_in_an_operator_chain_and_round_trip():
    with Model.define_operators({">>": chain}):
        model = Linear(2, 3) >> noop()
    model.initialize()
    assert model.predict(numpy.zeros((1, 3), dtype="float32")).shape == (1, 2)
    assert noop().from_bytes(noop().to_bytes()).name == "noop"
