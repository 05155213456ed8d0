"""Small programs as a Thinc user writes them, with ``thinc.api`` replaced by ``composa``.

Each test is one such program: build, initialize, train a few steps, save and load, fill a
registry config and write it back. They check the drop-in promise, not single lines.
"""
import json

import numpy
import pytest

from composa import (
    LSTM,
    SGD,
    Adam,
    CategoricalCrossentropy,
    Config,
    ConfigurationError,
    CosineDistance,
    DataValidationError,
    Embed,
    L2Distance,
    Linear,
    NumpyOps,
    Ragged,
    Relu,
    Softmax,
    add,
    chain,
    concatenate,
    data_validation,
    registry,
    with_array,
    with_array2d,
    with_padded,
    with_ragged,
)

TAGGER_CFG = """
[model]
@layers = "chain.v1"

[model.*.relu]
@layers = "Relu.v1"
nO = 8

[model.*.softmax]
@layers = "Softmax.v1"
nO = 3

[attention]
@layers = "ParametricAttention.v2"

[optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.01
"""


def test_filled_config_is_json_and_resolves_again_from_its_text():
    filled = registry.fill(Config().from_str(TAGGER_CFG))
    json.dumps(filled)  # default initializers and key transforms are left out, as in Thinc
    relu = filled["model"]["*"]["relu"]
    assert relu["init_W"] is None and relu["init_b"] is None
    assert filled["attention"]["key_transform"] is None
    resolved = registry.resolve(Config().from_str(filled.to_str()))
    model = resolved["model"]
    X = numpy.ones((2, 5), dtype="float32")
    model.initialize(X=X)
    assert model.predict(X).shape == (2, 3)


def test_train_a_few_steps_then_save_and_load():
    model = chain(Relu(16), Relu(16), Softmax(3))
    X = numpy.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    Y = numpy.eye(3, dtype="float32")[numpy.arange(20) % 3]
    model.initialize(X=X[:5], Y=Y[:5])
    optimizer = Adam(0.01)
    for _ in range(3):
        guesses, backprop = model.begin_update(X)
        backprop(guesses - Y)
        model.finish_update(optimizer)
    loaded = chain(Relu(16), Relu(16), Softmax(3)).from_bytes(model.to_bytes())
    numpy.testing.assert_allclose(loaded.predict(X), model.predict(X))


def test_version_flags_compare_with_packaging_versions():
    from packaging.version import Version

    from composa.compat import has_torch, torch, torch_version

    if has_torch:
        assert torch is not None and torch_version == Version(torch.__version__)
        assert torch_version >= Version("1.9.0")
    else:
        assert torch is None and torch_version < Version("1.9.0")


def test_deep_import_paths_resolve():
    from composa.backends import context_pools
    from composa.layers.clipped_linear import HardSigmoid
    from composa.layers.gelu import Gelu
    from composa.layers.parametricattention_v2 import KEY_TRANSFORM_REF, ParametricAttention_v2
    from composa.layers.reduce_sum import reduce_sum
    from composa.shims.pytorch import default_deserialize_torch_model, default_serialize_torch_model
    from composa.util import has_cupy, has_torch

    import composa.layers

    assert composa.layers.reduce_sum is reduce_sum  # the module import did not shadow the layer
    assert Gelu(4).name == "gelu" and HardSigmoid(4).name == "clipped_linear"
    attention = ParametricAttention_v2(key_transform=Gelu(4, 4))
    assert attention.get_ref(KEY_TRANSFORM_REF).name == "gelu"
    assert isinstance(context_pools.get(), dict)
    assert callable(default_serialize_torch_model) and callable(default_deserialize_torch_model)
    assert has_torch in (True, False) and has_cupy in (True, False)


def test_every_documented_thinc_layer_module_imports():
    import importlib

    thinc_paths = {
        "relu": "Relu", "mish": "Mish", "swish": "Swish", "gelu": "Gelu", "dish": "Dish",
        "hard_swish": "HardSwish", "hard_swish_mobilenet": "HardSwishMobilenet",
        "clipped_linear": "ReluK", "logistic": "Logistic", "sigmoid_activation": "sigmoid_activation",
        "softmax_activation": "softmax_activation", "parametricattention_v2": "ParametricAttention_v2",
        "reduce_sum": "reduce_sum", "reduce_mean": "reduce_mean", "reduce_max": "reduce_max",
        "reduce_first": "reduce_first", "reduce_last": "reduce_last", "list2array": "list2array",
        "list2ragged": "list2ragged", "ragged2list": "ragged2list", "list2padded": "list2padded",
        "padded2list": "padded2list", "with_array2d": "with_array2d", "with_flatten_v2": "with_flatten_v2",
        "with_nvtx_range": "with_nvtx_range", "premap_ids": "premap_ids", "lstm": "PyTorchLSTM",
        "torchscriptwrapper": "TorchScriptWrapper_v1", "softmax": "Softmax_v2", "hashembed": "HashEmbed",
        "array_getitem": "ints_getitem", "remap_ids": "remap_ids_v2", "sparselinear": "SparseLinear_v2",
    }
    for module, name in thinc_paths.items():
        assert hasattr(importlib.import_module(f"composa.layers.{module}"), name), module


def test_array_types_are_pydantic_fields():
    pydantic = pytest.importorskip("pydantic")
    from composa.types import Floats2d, Ints1d

    class Batch(pydantic.BaseModel):
        X: Floats2d
        ids: Ints1d

    Batch(X=numpy.zeros((2, 3), dtype="float32"), ids=numpy.zeros((2,), dtype="int64"))
    for bad in ({"X": numpy.zeros((3,), dtype="float32")}, {"X": numpy.zeros((2, 3), dtype="int32")}, {"X": [[1.0]]}):
        with pytest.raises(pydantic.ValidationError):
            Batch(**{"ids": numpy.zeros((2,), dtype="int64"), **bad})


def test_learn_rate_may_be_any_function_of_step_and_key():
    model = Linear(2, 2)
    model.initialize()
    before = model.get_param("W").copy()
    optimizer = SGD(0.0)
    seen = []

    def learn_rate(*, step, key):
        seen.append(key)
        return 1.0

    optimizer.learn_rate = learn_rate
    Y, backprop = model.begin_update(numpy.ones((1, 2), dtype="float32"))
    backprop(numpy.ones_like(Y))
    model.finish_update(optimizer)
    assert {name for _, name in seen} == {"W", "b"}
    assert not numpy.allclose(model.get_param("W"), before)


def test_bad_data_inside_data_validation_is_a_data_validation_error():
    for model, X in [
        (chain(Relu(4), Softmax(2)), numpy.ones((3, 5), dtype="int32")),
        (Embed(4, 10), numpy.ones((3,), dtype="float32")),
        (LSTM(4), numpy.ones((3, 2), dtype="float32")),
    ]:
        with data_validation(True):
            with pytest.raises(DataValidationError):
                model.initialize(X=X)
                model.predict(X)


def test_losses_take_integer_arrays():
    guesses = numpy.array([[1, 2], [3, 4]], dtype="int32")
    truths = numpy.array([[1, 1], [2, 5]], dtype="int32")
    d_guesses, loss = L2Distance()(guesses, truths)
    numpy.testing.assert_allclose(d_guesses, [[0.0, 0.5], [0.5, -0.5]])
    assert loss == pytest.approx(0.75)
    assert CosineDistance().get_grad(guesses, truths).dtype.kind == "f"


def test_missing_value_masks_one_hot_rows():
    guesses = numpy.full((3, 2), 0.5, dtype="float32")
    truths = numpy.array([[1, 0], [-1, -1], [0, 1]], dtype="float32")
    d_guesses, loss = CategoricalCrossentropy(missing_value=-1)(guesses, truths)
    numpy.testing.assert_allclose(d_guesses[1], [0.0, 0.0])
    assert d_guesses[0, 0] < 0 and d_guesses[2, 1] < 0
    assert loss == pytest.approx(2 * -numpy.log(0.5) / 3, rel=1e-5)


def test_adapters_take_an_empty_batch():
    ops = NumpyOps()
    for model, X in [
        (with_array2d(Relu(2, 3)), ops.list2padded([])),
        (with_array(Relu(2, 3)), []),
        (with_array(Relu(2, 3)), Ragged(numpy.zeros((0, 3), dtype="float32"), numpy.zeros((0,), dtype="int32"))),
        (with_padded(LSTM(2, 3)), ops.list2padded([])),
        (with_ragged(with_array(Relu(2, 3))), ops.list2padded([])),
    ]:
        model.initialize()
        Y, backprop = model.begin_update(X)
        assert type(Y) is type(X) and len(Y) == 0
        assert type(backprop(Y)) is type(X)


def test_concatenate_and_add_pass_Y_to_their_children():
    X = numpy.ones((2, 3), dtype="float32")
    Y = numpy.ones((2, 4), dtype="float32")
    for combinator in (concatenate, add):
        model = combinator(Relu(), Relu())
        model.initialize(X=X, Y=Y)
        assert [layer.get_dim("nO") for layer in model.layers] == [4, 4]


def test_set_grad_and_set_param_broadcast_a_number():
    model = Relu(3, 2)
    model.initialize()
    model.set_param("b", 0.5)
    model.set_grad("W", 0.0)
    Y, backprop = model.begin_update(numpy.ones((1, 2), dtype="float32"))
    backprop(Y)
    model.finish_update(SGD(0.1))
    assert model.get_param("b").shape == (3,)
    with pytest.raises(ConfigurationError):
        Relu(3, 2).set_param("W", 1.0)  # no shape to fill before initialize


def test_segment_reductions_report_index_errors_and_take_empty_batches():
    ops = NumpyOps()
    X = numpy.ones((3, 2), dtype="float32")
    with pytest.raises(IndexError, match="reduce_mean"):
        ops.reduce_mean(X, numpy.array([2, 2], dtype="int32"))
    empty, no_lengths = numpy.zeros((0, 2), dtype="float32"), numpy.zeros((0,), dtype="int32")
    firsts, starts_ends = ops.reduce_first(empty, no_lengths)
    assert ops.backprop_reduce_first(firsts, starts_ends).shape == (0, 2)
    lasts, which = ops.reduce_last(empty, no_lengths)
    assert ops.backprop_reduce_last(lasts, which).shape == (0, 2)
