"""Models saved by Thinc 9.1.1 load into the same architecture built with composa.

The fixtures in tests/thinc_fixtures/ are ``NAME.bin`` (Thinc's ``model.to_bytes()``),
``NAME.input.msgpack`` / ``NAME.output.msgpack`` (a sample batch and Thinc's prediction)
and ``manifest.json`` (the Thinc-API expression and the node names in ``walk()`` order).
"""
import json
from pathlib import Path

import msgpack
import numpy
import pytest

from composa import (
    LSTM,
    Dish,
    Embed,
    Gelu,
    HardSwish,
    HashEmbed,
    LayerNorm,
    Linear,
    Maxout,
    Mish,
    Model,
    ParametricAttention,
    Ragged,
    Relu,
    SerializationError,
    Sigmoid,
    Softmax,
    Swish,
    add,
    chain,
    clone,
    concatenate,
    expand_window,
    list2ragged,
    reduce_max,
    reduce_mean,
    residual,
    with_array,
    with_padded,
)

FIXTURES = Path(__file__).parent / "thinc_fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
CASES = {case["name"]: case for case in MANIFEST["cases"]}


def mlp_operators():
    with Model.define_operators({">>": chain}):
        return Relu(12) >> Relu(12) >> Softmax(3)


def pytorch_linear():
    torch = pytest.importorskip("torch")
    from composa import PyTorchWrapper

    return chain(PyTorchWrapper(torch.nn.Linear(16, 8)), Softmax(4))


# The manifest's Thinc-API expressions, with thinc.api replaced by composa.
BUILD = {
    "mlp": lambda: chain(Relu(32), Relu(32), Softmax(10)),
    "mlp_operators": mlp_operators,
    "maxout_normalize": lambda: chain(Maxout(12, nP=3, normalize=True, dropout=0.0), Softmax(4)),
    "activations": lambda: chain(
        Dish(8), Gelu(8), Mish(8), Swish(8), HardSwish(8), Sigmoid(8), LayerNorm(8), Linear(3)
    ),
    "combinators": lambda: chain(
        concatenate(Relu(8), Relu(8)), residual(Relu(16)), add(Relu(16), Relu(16)), clone(Relu(16), 2), Softmax(2)
    ),
    "cnn_tagger": lambda: with_array(
        chain(
            HashEmbed(16, 500, seed=7),
            expand_window(window_size=1),
            Maxout(16, nP=2, normalize=True, dropout=0.0),
            residual(Maxout(16, nP=2, dropout=0.0)),
            Softmax(5),
        )
    ),
    "bilstm": lambda: chain(
        with_array(Embed(8, 100)), with_padded(LSTM(8, 8, bi=True, depth=2, dropout=0.0)), with_array(Softmax(3))
    ),
    "attention": lambda: chain(list2ragged(), with_array(Relu(8)), ParametricAttention(8), reduce_mean(), Softmax(2)),
    "pooling": lambda: chain(list2ragged(), concatenate(reduce_mean(), reduce_max()), Softmax(2)),
    "pytorch_linear": pytorch_linear,
}


def thinc_bytes(name):
    return (FIXTURES / f"{name}.bin").read_bytes()


def thinc_map(name):
    return msgpack.unpackb(thinc_bytes(name), raw=False, strict_map_key=False)


def read_sample(path):
    """A fixture batch: ``{dtype, shape, data}``, ``{ragged, data, lengths}`` or ``{list: [...]}``."""
    return from_plain(msgpack.unpackb(path.read_bytes(), raw=False))


def from_plain(obj):
    if "list" in obj:
        return [from_plain(item) for item in obj["list"]]
    if "ragged" in obj:
        return Ragged(from_plain(obj["data"]), from_plain(obj["lengths"]))
    return numpy.frombuffer(obj["data"], dtype=obj["dtype"]).reshape(obj["shape"])


def flat(Y):
    if isinstance(Y, list):
        return numpy.concatenate([flat(item) for item in Y])
    return numpy.asarray(Y.data if isinstance(Y, Ragged) else Y).reshape(-1)


def test_the_manifest_lists_the_ten_fixtures():
    assert sorted(CASES) == sorted(BUILD) and len(CASES) == 10


@pytest.mark.parametrize("name", sorted(CASES))
def test_node_tree_matches_thincs(name):
    model = BUILD[name]()
    saved = thinc_map(name)
    assert [node.name for node in model.walk()] == CASES[name]["nodes"]
    for node, info, params in zip(model.walk(), saved["nodes"], saved["params"]):
        assert sorted(node.dim_names) == sorted(info["dims"]), node.name
        assert sorted(node.ref_names) == sorted(info["refs"]), node.name
        assert sorted(node.param_names) == sorted(params), node.name


@pytest.mark.parametrize("name", sorted(CASES))
def test_thinc_saved_model_loads_and_predicts_as_thinc_did(name):
    model = BUILD[name]().from_bytes(thinc_bytes(name))
    X = read_sample(FIXTURES / f"{name}.input.msgpack")
    expected = read_sample(FIXTURES / f"{name}.output.msgpack")
    numpy.testing.assert_allclose(flat(model.predict(X)), flat(expected), atol=1e-5)
    # every param holds exactly the array Thinc saved (msgpack-numpy: type, shape, raw data)
    for node, params in zip(model.walk(), thinc_map(name)["params"]):
        for param_name, saved in params.items():
            array = numpy.frombuffer(saved[b"data"], dtype=saved[b"type"]).reshape(saved[b"shape"])
            numpy.testing.assert_array_equal(node.get_param(param_name), array)


def test_from_disk_reads_a_thinc_file_and_composa_writes_its_own_format(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(thinc_bytes("cnn_tagger"))
    model = BUILD["cnn_tagger"]().from_disk(path)
    ours = msgpack.unpackb(model.to_bytes(), raw=False, strict_map_key=False, ext_hook=lambda code, data: code)
    assert "composa" in ours and "checksum" in ours
    again = BUILD["cnn_tagger"]().from_bytes(model.to_bytes())
    ids = numpy.arange(6, dtype="uint64")
    numpy.testing.assert_array_equal(again.predict(ids), model.predict(ids))


def with_param(name, node_index, param, value):
    """Thinc's bytes for fixture `name` with one param replaced by `value`."""
    saved = thinc_map(name)
    saved["params"][node_index][param] = value
    return msgpack.packb(saved, use_bin_type=True)


def test_object_arrays_are_refused_without_unpickling():
    # msgpack-numpy writes object arrays as a pickle in "data"; these bytes would be one
    pickled = {b"nd": True, b"type": "|O", b"kind": b"O", b"shape": [1], b"data": b"\x80\x04K\x01."}
    model = BUILD["mlp"]()
    with pytest.raises(SerializationError, match="node 1: param 'W'.*only numeric"):
        model.from_bytes(with_param("mlp", 1, "W", pickled))
    assert model.layers[0].has_param("W") is not True  # nothing was loaded


def test_a_mismatched_thinc_model_is_refused_all_or_nothing():
    model = chain(Relu(32), Relu(32), Softmax(10))
    model.initialize(X=numpy.zeros((2, 16), dtype="float32"))
    before = [node.get_param("W").copy() for node in model.layers]
    wrong = with_param("mlp", 3, "b", {b"nd": True, b"type": "<f4", b"kind": b"", b"shape": [3], b"data": bytes(12)})
    with pytest.raises(SerializationError, match=r"node 3 \('softmax'\): param 'b'"):
        model.from_bytes(wrong)
    for node, W in zip(model.layers, before):
        numpy.testing.assert_array_equal(node.get_param("W"), W)  # the first nodes were not loaded either
    with pytest.raises(SerializationError, match="nodes"):
        BUILD["mlp"]().from_bytes(thinc_bytes("cnn_tagger"))


def test_truncated_array_data_is_refused():
    short = {b"nd": True, b"type": "<f4", b"kind": b"", b"shape": [32, 16], b"data": bytes(10)}
    with pytest.raises(SerializationError, match="needs 2048 bytes, got 10"):
        BUILD["mlp"]().from_bytes(with_param("mlp", 1, "W", short))
