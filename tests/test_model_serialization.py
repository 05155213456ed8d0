"""Saving and loading models: byte-identical round trips, validation, and atomic files."""
import os
import pickle

import msgpack
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import Linear, Model, Relu, Softmax, Unserializable, chain, deserialize_attr, serialize_attr
from composa.errors import SerializationError
from composa.serialize import loads_with_checksum, msgpack_dumps, msgpack_loads


def mlp(nI=4, nH=5, nO=3):
    return chain(Relu(nH, nI), Relu(nH, nH), Softmax(nO, nH))


def trained_mlp():
    model = mlp().initialize()
    for node in model.walk():
        for name in node.param_names:
            node.set_param(name, numpy.random.uniform(-1, 1, node.get_param(name).shape).astype("f"))
    return model


def state(model):
    """Everything loading could change, copied, for before/after comparisons."""
    return [
        (
            node.name,
            dict(node._dims),
            dict(node._attrs),
            {k: (None if v is None else v.copy()) for k, v in node._params.items()},
            dict(node._refs),
        )
        for node in model.walk()
    ]


def assert_same_state(before, after):
    assert len(before) == len(after)
    for (n1, d1, a1, p1, r1), (n2, d2, a2, p2, r2) in zip(before, after):
        assert (n1, d1, a1, r1) == (n2, d2, a2, r2)
        assert p1.keys() == p2.keys()
        for key in p1:
            if p1[key] is None:
                assert p2[key] is None
            else:
                numpy.testing.assert_array_equal(p1[key], p2[key])


def test_round_trip_is_byte_identical_and_predicts_the_same():
    model = trained_mlp()
    data = model.to_bytes()
    fresh = mlp()
    assert fresh.from_bytes(data) is fresh
    assert fresh.to_bytes() == data
    X = numpy.random.uniform(-1, 1, (7, 4)).astype("f")
    numpy.testing.assert_array_equal(fresh.predict(X), model.predict(X))


def test_the_same_model_always_gives_the_same_bytes():
    model = trained_mlp()
    assert model.to_bytes() == model.to_bytes() == model.copy().to_bytes()


def test_bytes_are_plain_msgpack_with_the_documented_fields():
    msg = msgpack.unpackb(trained_mlp().to_bytes(), raw=False, strict_map_key=False)
    assert list(msg) == ["composa", "nodes", "attrs", "params", "shims", "checksum"]
    assert [node["name"] for node in msg["nodes"]] == ["relu>>relu>>softmax", "relu", "relu", "softmax"]
    assert isinstance(msg["params"][1]["W"], msgpack.ExtType)


def test_loaded_params_are_writable_copies():
    model = mlp().from_bytes(trained_mlp().to_bytes())
    W = model.layers[0].get_param("W")
    W += 1  # would raise on a read-only buffer view


def test_attrs_round_trip_including_tuples_and_skip_runtime_only_values():
    model = Model("m", lambda m, X, is_train: (X, lambda d: d), attrs={
        "window": (1, 2), "names": ["a", "b"], "table": {1: 2}, "callback": print,
        "cache": Unserializable(object()),
    })
    data = model.to_bytes()
    other = Model("m", lambda m, X, is_train: (X, lambda d: d), attrs={"callback": len})
    other.from_bytes(data)
    assert other.attrs["window"] == (1, 2)
    assert other.attrs["names"] == ["a", "b"]
    assert other.attrs["table"] == {1: 2}
    assert other.attrs["callback"] is len
    assert "cache" not in other.attrs


def test_an_attr_that_cannot_be_saved_raises_a_clear_error():
    model = Model("m", lambda m, X, is_train: (X, None), attrs={"bad": {1, 2}})
    with pytest.raises(SerializationError, match="m: attr 'bad' holds a set"):
        model.to_bytes()


def test_custom_attr_serializers_dispatch_on_the_value_type():
    class Vocab:
        def __init__(self, words):
            self.words = words

    @serialize_attr.register(Vocab)
    def _(_, value, name, model):
        return "\n".join(value.words).encode("utf8")

    @deserialize_attr.register(Vocab)
    def _(_, value, name, model):
        return Vocab(value.decode("utf8").split("\n"))

    model = Model("m", lambda m, X, is_train: (X, None), attrs={"vocab": Vocab(["a", "b"])})
    other = Model("m", lambda m, X, is_train: (X, None), attrs={"vocab": Vocab([])})
    other.from_bytes(model.to_bytes())
    assert other.attrs["vocab"].words == ["a", "b"]


def test_refs_round_trip():
    model = trained_mlp()
    model.set_ref("output", model.layers[2])
    other = mlp()
    other.from_bytes(model.to_bytes())
    assert other.get_ref("output") is other.layers[2]


def test_to_disk_and_from_disk(tmp_path):
    model = trained_mlp()
    path = tmp_path / "sub" / "model.bin"
    model.to_disk(path)
    assert path.read_bytes() == model.to_bytes()
    assert mlp().from_disk(str(path)).to_bytes() == model.to_bytes()
    assert [p.name for p in path.parent.iterdir()] == ["model.bin"]  # no temp files left


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX file modes")
def test_saved_files_get_the_usual_mode_not_a_private_temp_file_mode(tmp_path):
    path = tmp_path / "model.bin"
    previous = os.umask(0o022)
    try:
        trained_mlp().to_disk(path)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o640)  # an existing file keeps the mode its owner gave it
    trained_mlp().to_disk(path)
    assert path.stat().st_mode & 0o777 == 0o640


def test_from_disk_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mlp().from_disk(tmp_path / "missing.bin")
    with pytest.raises(IsADirectoryError):
        mlp().from_disk(tmp_path)


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "model.bin"
    first = trained_mlp()
    first.to_disk(path)
    original = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        trained_mlp().to_disk(path)
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


def test_can_from_bytes_reports_compatibility():
    data = trained_mlp().to_bytes()
    assert mlp().can_from_bytes(data)
    assert not mlp(nH=6).initialize().can_from_bytes(data)
    assert not chain(Linear(), Linear()).can_from_bytes(data)
    assert not mlp().can_from_bytes(b"garbage")


def test_can_from_bytes_checks_layer_names_unless_told_not_to():
    data = chain(Linear(3, 2), Linear(2, 3)).initialize().to_bytes()
    renamed = chain(Relu(3, 2), Linear(2, 3))  # the same shapes, another first layer
    assert not renamed.can_from_bytes(data)
    assert renamed.can_from_bytes(data, strict=False)


# Bad input: every failure leaves the model exactly as it was -------------------------------


@pytest.fixture
def target():
    return trained_mlp()


def assert_rejected(model, data, match=None):
    before = state(model)
    with pytest.raises(SerializationError, match=match):
        model.from_bytes(data)
    assert_same_state(before, state(model))


def test_mismatched_structure_is_rejected(target):
    assert_rejected(target, chain(Linear(3, 4), Linear(3, 3)).initialize().to_bytes(), "mismatched structure")


def test_a_different_layer_type_is_rejected_by_name(target):
    other = chain(Relu(5, 4), Relu(5, 5), Relu(3, 5)).initialize()
    assert_rejected(target, other.to_bytes(), "node 0 .*named 'relu>>relu>>relu'")


def test_mismatched_param_shapes_are_rejected_without_partial_loads(target):
    bigger = mlp(nO=4).initialize()
    assert_rejected(target, bigger.to_bytes(), "dimension 'nO' is 3 in the model but 4")


def test_newer_format_versions_are_rejected(target):
    msg = loads_with_checksum(target.to_bytes())
    msg["composa"] = 99
    assert_rejected(target, msgpack_dumps(msg), "format version 99")


def test_wrong_field_types_are_rejected(target):
    msg = loads_with_checksum(target.to_bytes())
    msg["params"][1]["W"] = "not an array"
    assert_rejected(target, msgpack_dumps(msg), "param 'W' is not a float array")
    msg = loads_with_checksum(target.to_bytes())
    msg["nodes"] = {"oops": 1}
    assert_rejected(target, msgpack_dumps(msg), "'nodes' must be a list")


def test_an_array_whose_bytes_do_not_match_its_shape_is_rejected(target):
    header = msgpack.packb(["<f4", [5, 4], b"\x00" * 12], use_bin_type=True)
    msg = msgpack.unpackb(target.to_bytes(), raw=False, strict_map_key=False)
    del msg["checksum"]
    msg["params"][1]["W"] = msgpack.ExtType(42, header)
    assert_rejected(target, msgpack.packb(msg, use_bin_type=True), "needs 80 bytes, got 12")


def test_object_dtype_arrays_are_refused(target):
    header = msgpack.packb(["|O", [1], b"\x00" * 8], use_bin_type=True)
    msg = msgpack.unpackb(target.to_bytes(), raw=False, strict_map_key=False)
    del msg["checksum"]
    msg["params"][1]["b"] = msgpack.ExtType(42, header)
    assert_rejected(target, msgpack.packb(msg, use_bin_type=True), "only numeric data loads")


def test_every_truncation_is_rejected(target):
    data = target.to_bytes()
    for end in list(range(0, 64)) + list(range(64, len(data), max(1, len(data) // 97))):
        assert_rejected(target, data[:end])


def test_every_bit_flip_is_detected_and_changes_nothing(target):
    data = bytearray(target.to_bytes())
    rng = numpy.random.RandomState(0)
    for position in rng.choice(len(data), size=150, replace=False):
        corrupted = bytearray(data)
        corrupted[position] ^= 1 << int(rng.randint(8))
        assert_rejected(target, bytes(corrupted))


def test_a_changed_weight_fails_the_checksum(target):
    data = bytearray(target.to_bytes())
    weights = target.layers[0].get_param("W").tobytes()
    data[bytes(data).find(weights) + 5] ^= 0x01
    assert_rejected(target, bytes(data), "checksum mismatch")


def test_messages_without_a_checksum_still_load():
    model = trained_mlp()
    plain = msgpack_dumps(model.to_dict())
    assert mlp().from_bytes(plain).to_bytes() == model.to_bytes()


def test_pickle_payloads_are_refused_and_run_nothing(target, tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for payload in (pickle.dumps(Exploit()), pickle.dumps({"nodes": Exploit()})):
        assert_rejected(target, payload)
    assert not marker.exists()


def test_non_bytes_input_is_rejected(target):
    assert_rejected(target, "a string", "expected bytes")


# Property tests over random model trees --------------------------------------------------


def random_tree(draw, depth=0):
    kind = draw(st.sampled_from(["linear", "relu", "chain"] if depth < 3 else ["linear", "relu"]))
    if kind == "chain":
        children = [random_tree(draw, depth + 1) for _ in range(draw(st.integers(2, 3)))]
        return chain(*children)
    width = draw(st.integers(1, 4))
    return (Linear if kind == "linear" else Relu)(nO=width)


@st.composite
def model_trees(draw):
    return random_tree(draw), draw(st.integers(1, 5)), draw(st.integers(0, 3))


@settings(max_examples=25, deadline=None)
@given(model_trees())
def test_random_trees_round_trip_byte_identically(spec):
    model, width, batch = spec
    X = numpy.random.uniform(-1, 1, (batch, width)).astype("f")
    model.initialize(X=X if batch else numpy.zeros((1, width), dtype="f"))
    data = model.to_bytes()
    clone = model.copy()
    for node in clone.walk():  # scramble the copy, then load the original back into it
        for name in node.param_names:
            node.get_param(name)[...] = 0.5
    clone.from_bytes(data)
    assert clone.to_bytes() == data
    numpy.testing.assert_array_equal(clone.predict(X), model.predict(X))


def test_zero_dimensional_and_non_contiguous_arrays_keep_their_shape():
    scalar = numpy.array(3.0, dtype="f")
    strided = numpy.arange(12, dtype="f").reshape((3, 4))[:, ::2]
    loaded_scalar, loaded_strided = msgpack_loads(msgpack_dumps([scalar, strided]))
    assert loaded_scalar.shape == () and loaded_scalar == 3.0
    numpy.testing.assert_array_equal(loaded_strided, strided)


def test_nodes_and_shims_draw_ids_from_one_counter():
    from composa.shims import Shim

    ids = [Linear().id, Shim(None).id, Linear().id]
    assert ids == sorted(ids) and len(set(ids)) == 3
