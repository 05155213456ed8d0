"""export_onnx: every exportable layer and the bundled models give model.predict's outputs in onnxruntime."""
from typing import Any, Callable, Dict

import numpy
import pytest

from composa import (
    LSTM,
    ClippedLinear,
    Dish,
    Dropout,
    Embed,
    ExportError,
    Gelu,
    HardSigmoid,
    HardSwish,
    HardSwishMobilenet,
    HardTanh,
    HashEmbed,
    LayerNorm,
    Linear,
    Logistic,
    Maxout,
    Mish,
    Model,
    MultiSoftmax,
    Padded,
    Ragged,
    Relu,
    ReluK,
    Sigmoid,
    Softmax,
    Softmax_v2,
    Swish,
    add,
    chain,
    clone,
    concatenate,
    list2array,
    list2ragged,
    noop,
    ragged2list,
    reduce_first,
    reduce_last,
    reduce_max,
    reduce_mean,
    reduce_sum,
    residual,
    sigmoid_activation,
    softmax_activation,
    strings2arrays,
    with_array,
    with_array2d,
    with_list,
    with_padded,
    with_ragged,
)
from composa.archive import build_model
from composa.export import TOLERANCE, export_onnx, exportable_layers, onnx_inputs
from composa.training import load_train_config

onnxruntime = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

rng = numpy.random.default_rng(0)


def floats(*shape: int) -> numpy.ndarray:
    return rng.normal(0, 1, shape).astype("float32")


def ragged(lengths, width: int = 5) -> Ragged:
    return Ragged(floats(sum(lengths), width), numpy.asarray(lengths, dtype="int32"))


def padded(lengths, width: int = 5) -> Padded:
    lengths = numpy.asarray(lengths, dtype="int32")
    data = floats(int(lengths.max()), len(lengths), width)
    size_at_t = (lengths[None, :] > numpy.arange(data.shape[0])[:, None]).sum(axis=1).astype("int32")
    return Padded(data, size_at_t, lengths, numpy.arange(len(lengths), dtype="int32"))


def sequences(lengths, width: int = 5) -> list:
    return [floats(length, width) for length in lengths]


def ids(*shape: int, high: int = 10) -> numpy.ndarray:
    return rng.integers(0, high, shape).astype("int64")


def randomize(model: Model) -> Model:
    """Draw every param from N(0, 0.7): zero-initialised layers (Softmax, LSTM's HC0) must be tested too."""
    for node in model.walk():
        for name in node.param_names:
            shape = node.get_param(name).shape
            node.set_param(name, rng.normal(0, 0.7, shape).astype("float32"))
    return model


def batch_data(batch: Any) -> numpy.ndarray:
    """The data array of what predict returns, laid out as the graph returns it."""
    if isinstance(batch, Ragged):
        return batch.dataXd
    if isinstance(batch, Padded):
        return batch.data
    if isinstance(batch, list):
        return numpy.concatenate(batch)
    return batch


# name: (model factory, sample batch factory). Each builds a fresh batch, so a second call
# gives another batch size (and other lengths) than the export saw.
CASES: Dict[str, Any] = {
    "Linear": (lambda: Linear(4), lambda n: floats(n, 5)),
    "Relu": (lambda: Relu(4), lambda n: floats(n, 5)),
    "Mish": (lambda: Mish(4), lambda n: floats(n, 5) * 8),
    "Swish": (lambda: Swish(4), lambda n: floats(n, 5) * 4),
    "Gelu": (lambda: Gelu(4), lambda n: floats(n, 5) * 4),
    "Dish": (lambda: Dish(4), lambda n: floats(n, 5) * 4),
    "HardSwish": (lambda: HardSwish(4), lambda n: floats(n, 5) * 4),
    "HardSwishMobilenet": (lambda: HardSwishMobilenet(4), lambda n: floats(n, 5) * 4),
    "ClippedLinear": (
        lambda: ClippedLinear(4, slope=0.5, offset=0.1, min_val=-0.5, max_val=0.7),
        lambda n: floats(n, 5),
    ),
    "HardSigmoid": (lambda: HardSigmoid(4), lambda n: floats(n, 5) * 4),
    "HardTanh": (lambda: HardTanh(4), lambda n: floats(n, 5)),
    "ReluK": (lambda: ReluK(4, k=1.5), lambda n: floats(n, 5) * 2),
    "Relu with LayerNorm and Dropout": (lambda: Relu(4, normalize=True, dropout=0.5), lambda n: floats(n, 5)),
    "Softmax": (lambda: Softmax(3), lambda n: floats(n, 5)),
    "Softmax_v2 temperature": (lambda: Softmax_v2(3, temperature=2.5), lambda n: floats(n, 5)),
    "Softmax_v2 logits": (lambda: Softmax_v2(3, normalize_outputs=False), lambda n: floats(n, 5)),
    "Sigmoid": (lambda: Sigmoid(3), lambda n: floats(n, 5)),
    "sigmoid_activation": (lambda: sigmoid_activation(), lambda n: floats(n, 5) * 5),
    "Logistic": (lambda: Logistic(), lambda n: floats(n, 5)),
    "softmax_activation": (lambda: softmax_activation(), lambda n: floats(n, 5) * 3),
    "Maxout": (lambda: Maxout(4, nP=3), lambda n: floats(n, 5)),
    "Maxout with LayerNorm": (lambda: Maxout(4, nP=2, normalize=True), lambda n: floats(n, 5)),
    "LayerNorm": (lambda: LayerNorm(), lambda n: floats(n, 5) * 3 + 1),
    "Dropout": (lambda: chain(Dropout(0.5), Relu(3)), lambda n: floats(n, 5)),
    "noop": (lambda: chain(noop(), Relu(3)), lambda n: floats(n, 5)),
    "Embed": (lambda: Embed(4, 10), lambda n: ids(n)),
    "Embed column": (lambda: Embed(4, 10, column=1), lambda n: ids(n, 3)),
    "HashEmbed": (lambda: HashEmbed(4, 50, seed=7), lambda n: rng.integers(0, 2**63, n, dtype="uint64") * 2),
    "HashEmbed column": (lambda: HashEmbed(4, 33, column=0), lambda n: ids(n, 2, high=10**12)),
    "chain": (lambda: chain(Relu(6), Linear(4), Softmax(3)), lambda n: floats(n, 5)),
    "clone": (lambda: clone(Relu(5), 3), lambda n: floats(n, 5)),
    "concatenate": (lambda: concatenate(Relu(3), Linear(2), Mish(4)), lambda n: floats(n, 5)),
    "add": (lambda: add(Relu(3), Linear(3)), lambda n: floats(n, 5)),
    "residual": (lambda: residual(Relu(5)), lambda n: floats(n, 5)),
    "with_array over arrays": (lambda: with_array(Relu(3)), lambda n: floats(n, 5)),
    "with_array over Ragged": (lambda: with_array(Relu(3)), lambda n: ragged([2, 0, 3, 1][: max(n % 5, 1)] + [n])),
    "with_array over lists": (lambda: with_array(Linear(3)), lambda n: sequences([2, 4, n])),
    "with_array2d over Padded": (lambda: with_array2d(Relu(3)), lambda n: padded([n, 3, 1])),
    "reduce_sum": (lambda: reduce_sum(), lambda n: ragged([3, 0, n, 1])),
    "reduce_mean": (lambda: reduce_mean(), lambda n: ragged([3, 0, n, 1])),
    "reduce_max": (lambda: reduce_max(), lambda n: ragged([3, 2, n, 1])),
    "reduce_first": (lambda: reduce_first(), lambda n: ragged([3, 2, n, 1])),
    "reduce_last": (lambda: reduce_last(), lambda n: ragged([3, 2, n, 1])),
    "list2ragged": (lambda: chain(list2ragged(), reduce_mean()), lambda n: sequences([2, n, 1])),
    "ragged2list": (lambda: chain(ragged2list(), with_array(Relu(2))), lambda n: ragged([2, n])),
    "list2array": (lambda: chain(list2array(), Relu(2)), lambda n: sequences([2, n])),
    "with_list": (lambda: with_list(with_array(Relu(3))), lambda n: ragged([2, n, 1])),
    "with_ragged over lists": (lambda: with_ragged(with_array(Relu(3))), lambda n: sequences([2, n, 1])),
    "with_ragged over Ragged": (lambda: with_ragged(reduce_sum()), lambda n: ragged([2, n, 1])),
    "LSTM": (lambda: LSTM(6, 5), lambda n: padded([n, n, 2, 1])),
    "LSTM bidirectional, 2 layers": (lambda: LSTM(6, 5, bi=True, depth=2), lambda n: padded([n, 4, 2, 1])),
    "with_padded LSTM over Ragged": (lambda: with_padded(LSTM(4, 5, bi=True)), lambda n: ragged([2, n, 1, 3])),
    "with_padded LSTM over lists": (lambda: with_padded(LSTM(4, 5)), lambda n: sequences([n, 2, 5])),
}


def max_difference(session: Any, model: Model, X: Any) -> float:
    """Largest |onnxruntime - predict| on batch X."""
    got = session.run(None, onnx_inputs(X))[0]
    want = batch_data(model.predict(X))
    assert got.shape == want.shape
    return float(numpy.abs(got - want).max()) if want.size else 0.0


def export_and_compare(tmp_path: Any, make_model: Callable, make_batch: Callable, Y: Any = None) -> float:
    """Export on a batch of 7; the largest difference on batches of 7, 3 and 12."""
    model = make_model()
    model.initialize(X=make_batch(7), Y=Y)
    randomize(model)
    path = tmp_path / "model.onnx"
    result = export_and_check(model, make_batch(7), path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = max(max_difference(session, model, make_batch(n)) for n in (7, 3, 12))
    assert result.max_difference is not None and result.max_difference <= worst + TOLERANCE
    return worst


def export_and_check(model: Model, X: Any, path: Any) -> Any:
    result = export_onnx(model, X, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return result


@pytest.mark.parametrize("name", list(CASES))
def test_every_exportable_layer_gives_predicts_outputs_in_onnxruntime(tmp_path, name):
    make_model, make_batch = CASES[name]
    assert export_and_compare(tmp_path, make_model, make_batch) <= TOLERANCE


def test_the_bundled_default_config_model_exports(tmp_path):
    config = load_train_config(None, {}).interpolate()
    model = build_model(config)
    labels = numpy.eye(10, dtype="float32")[numpy.arange(7) % 10]
    assert export_and_compare(tmp_path, lambda: model, lambda n: floats(n, 64), labels) <= TOLERANCE


def test_the_mlp_digits_example_model_exports(tmp_path):
    with Model.define_operators({">>": chain}):
        model = Relu(64) >> Dropout(0.1) >> Relu(64) >> Dropout(0.1) >> Softmax(10)
    assert export_and_compare(tmp_path, lambda: model, lambda n: floats(n, 64)) <= TOLERANCE


def text_classifier() -> Model:
    """The bag-of-embeddings example's model (examples/bag_of_embeddings_text.py)."""
    with Model.define_operators({">>": chain}):
        return (
            strings2arrays()
            >> with_array(HashEmbed(64, 4000, column=0))
            >> list2ragged()
            >> reduce_mean()
            >> Softmax(14)
        )


def test_the_text_example_exports_from_its_hashed_ids_on(tmp_path):
    # Strings have no ONNX hashing: the graph starts at the ids strings2arrays makes.
    model = text_classifier()
    words = [["a", "b", "c"], ["d"], ["e", "f"]]
    model.initialize(X=words)
    randomize(model)
    after_strings = chain(*model.layers[0].layers[0].layers[0].layers[1:], *model.layers[0].layers[0].layers[1:],
                          *model.layers[0].layers[1:], *model.layers[1:])
    hashed = model.layers[0].layers[0].layers[0].layers[0].predict(words)
    path = tmp_path / "text.onnx"
    export_and_check(after_strings, hashed, path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert max_difference(session, after_strings, hashed) <= TOLERANCE
    assert numpy.allclose(after_strings.predict(hashed), model.predict(words))


def test_a_layer_without_a_converter_is_named_with_its_path(tmp_path):
    model = chain(Relu(4), MultiSoftmax((2, 2)))
    model.initialize(X=floats(3, 5))
    with pytest.raises(ExportError, match=r"chain>multisoftmax\[1\]: cannot export this layer to ONNX \(walk node 2\)"):
        export_onnx(model, floats(3, 5), tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


def test_the_text_example_with_its_strings_names_strings2arrays(tmp_path):
    model = text_classifier()
    model.initialize(X=[["a", "b"]])
    with pytest.raises(ExportError, match=r"chain>chain\[0\]>chain\[0\]>chain\[0\]>strings2arrays\[0\]"):
        export_onnx(model, [numpy.asarray([1, 2], dtype="uint64")], tmp_path / "text.onnx")


def test_the_weights_are_stored_under_their_stable_keys(tmp_path):
    model = chain(Relu(4), Softmax(3))
    model.initialize(X=floats(2, 5))
    export_onnx(model, floats(2, 5), tmp_path / "model.onnx")
    names = {tensor.name for tensor in onnx.load(str(tmp_path / "model.onnx")).graph.initializer}
    assert {"1.relu.W", "1.relu.b", "2.softmax.W", "2.softmax.b"} <= names


def test_the_batch_axis_is_dynamic(tmp_path):
    model = Relu(4)
    model.initialize(X=floats(2, 5))
    export_onnx(model, floats(2, 5), tmp_path / "model.onnx")
    shape = onnx.load(str(tmp_path / "model.onnx")).graph.input[0].type.tensor_type.shape
    assert [dim.dim_param or dim.dim_value for dim in shape.dim] == ["batch", 5]


def test_every_listed_layer_has_a_case_here():
    assert len(exportable_layers()) >= 30
