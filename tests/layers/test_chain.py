"""chain: composition, shape inference through nested trees, layer paths in errors."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Config, Linear, Model, Relu, add, chain, concatenate, noop, registry
from composa.errors import ShapeMismatchError
from composa.testing import check_gradients


def sample(rows, width, seed=0):
    return numpy.random.RandomState(seed).uniform(-1, 1, (rows, width)).astype("float32")


def test_registered_as_chain_v1_and_needs_two_layers():
    model = registry.layers.get("chain.v1")(Linear(2, 3), Relu(4, 2))
    assert model.name == "linear>>relu"
    with pytest.raises(TypeError, match="at least 2 layers"):
        registry.layers.get("chain.v1")(Linear(2, 3))


def test_output_is_each_layer_applied_in_turn():
    first, second = Linear(4, 3).initialize(), Relu(2, 4).initialize()
    X = sample(5, 3)
    expected = second.predict(first.predict(X))
    numpy.testing.assert_allclose(chain(first, second).predict(X), expected)


def test_initialize_infers_every_width_through_a_nested_tree():
    inner = chain(Relu(), Linear())
    model = chain(Linear(7), inner, Relu())
    model.initialize(X=sample(8, 5), Y=sample(8, 2))
    assert model.get_dim("nI") == 5 and model.get_dim("nO") == 2
    assert inner.get_dim("nI") == 7
    assert model.predict(sample(3, 5)).shape == (3, 2)


def test_width_mismatch_names_the_layer_path_expected_and_actual():
    model = chain(Linear(16, 6), Relu(4, 16), Linear(2, 12)).initialize()
    with pytest.raises(ShapeMismatchError) as info:
        model.predict(sample(8, 6))
    message = str(info.value)
    assert message.startswith("chain>linear[2]: expected input width nI=12")
    assert "(8, 4)" in message


def test_width_mismatch_in_a_nested_chain_composes_the_path():
    model = chain(Linear(16, 6), chain(Relu(4, 16), Linear(2, 12))).initialize()
    with pytest.raises(ValueError, match=r"^chain>chain\[1\]>linear\[1\]: expected input width nI=12"):
        model.predict(sample(8, 6))


def test_gradients_match_finite_differences():
    model = chain(Linear(4), Relu(3), Linear(2)).initialize(X=sample(6, 5))
    check_gradients(model, sample(6, 5, seed=1))


def test_serialization_round_trip():
    model = chain(Linear(4), Relu(2)).initialize(X=sample(6, 3))
    copy = chain(Linear(4), Relu(2)).from_bytes(model.to_bytes())
    X = sample(5, 3, seed=2)
    numpy.testing.assert_array_equal(copy.predict(X), model.predict(X))
    assert copy.get_dim("nI") == 3


def test_empty_batch():
    model = chain(Linear(4), Relu(2)).initialize(X=sample(6, 3))
    Y, backprop = model.begin_update(sample(0, 3))
    assert Y.shape == (0, 2)
    assert backprop(Y).shape == (0, 3)


def test_operator_builds_a_chain():
    a, b, c = Linear(4, 3), Relu(4, 4), noop()
    with Model.define_operators({">>": chain}):
        model = a >> b >> c
    assert model.name == "linear>>relu>>noop"
    assert model.layers[0].layers == [a, b] and model.layers[1] is c


@settings(max_examples=25, deadline=None)
@given(widths=st.lists(st.integers(1, 6), min_size=3, max_size=5), rows=st.integers(0, 4))
def test_any_stack_of_linears_maps_first_width_to_last(widths, rows):
    layers = [Linear(nO, nI) for nI, nO in zip(widths, widths[1:])]
    model = chain(*layers) if len(layers) > 1 else chain(layers[0], noop())
    model.initialize()
    assert model.predict(sample(rows, widths[0])).shape == (rows, widths[-1])


def test_width_mismatch_found_at_initialize_names_the_path_and_both_widths():
    model = chain(Linear(16, 6), chain(Relu(4, 16), Linear(2, 12)))
    with pytest.raises(ValueError, match=r"^chain>chain\[1\]>linear\[1\]: expected nI=12, got 4"):
        model.initialize(X=sample(8, 6))


def test_operators_build_a_whole_network():
    with Model.define_operators({">>": chain, "|": concatenate, "+": add}):
        model = (Linear(3) | Relu(2)) >> (Linear(4) + Relu(4)) >> Linear(1)
    assert model.name == "linear|relu>>add>>linear"
    model.initialize(X=sample(6, 5))
    assert model.layers[0].layers[0].layers[0].get_dim("nI") == 5
    assert model.layers[0].layers[1].get_dim("nI") == 5  # the add node learned 3 + 2
    check_gradients(model, sample(4, 5, seed=3))


CONFIG = """
[model]
@layers = "with_array.v1"
pad = 1

[model.layer]
@layers = "chain.v1"

[model.layer.*.first]
@layers = "Linear.v1"
nO = 4

[model.layer.*.second]
@layers = "add.v1"

[model.layer.*.second.layer1]
@layers = "Relu.v1"
nO = 2

[model.layer.*.second.layer2]
@layers = "Linear.v1"
nO = 2

[model.layer.*.second.*]
"""


def test_a_config_builds_a_tree_of_registered_combinators():
    model = registry.resolve(Config().from_str(CONFIG))["model"]
    assert model.name == "with_array(linear>>add)"
    model.initialize(X=[sample(3, 5)])
    assert [Y.shape for Y in model.predict([sample(2, 5), sample(0, 5)])] == [(2, 2), (0, 2)]
