"""composa.model_io: a tree becomes a document, a document a checked plan, a plan the model's state."""
import ast
import hashlib
import inspect
from pathlib import Path

import msgpack
import numpy
import pytest

import composa
import composa.model
from composa import Model, Unserializable, model_io
from composa.errors import SerializationError
from composa.model_io import (
    NodePlan,
    apply_plan,
    check_node_info,
    decode,
    encode,
    encode_parts,
    is_composa_document,
    plan_attrs,
    plan_dims,
    plan_load,
    plan_params,
    plan_refs,
    plan_shims,
    to_dict,
)
from composa.shims import Shim

# sha256 of fixed_model().to_bytes() in format 2 (XXH3-64 checksum):
# a change here means saved models change, which needs a new FORMAT_VERSION.
FIXED_MODEL_SHA256 = "6a08975c070a7ce072d3ec4d27447324162f6580d49ab9c69c8c3a528ea406e5"
# The same model's bytes in format 1 (CRC-32 checksum), written by composa before format 2.
FORMAT_1_BYTES = Path(__file__).parent / "data" / "fixed_model_v1.bin"
FORMAT_1_SHA256 = "e7c77c555e3065ba83909b3ee1a56cf3f393d9afce344568a4f174d63dd69b6a"


class TagShim(Shim):
    """A shim whose bytes are its tag; the tag b"refuse" makes it refuse to load."""

    def to_bytes(self):
        return self.cfg["tag"].encode()

    def from_bytes(self, data):
        if data == b"refuse":
            raise RuntimeError("this shim refuses those bytes")
        self.cfg["tag"] = data.decode()
        return self


def identity(model, X, is_train):
    return X, lambda dY: dY


def fixed_model():
    """Every kind of node state: set and unset dims and params, refs, attrs of many types, a shim."""
    leaf = Model(
        "leaf",
        identity,
        dims={"nO": 3, "nI": None},
        params={"W": numpy.arange(6, dtype="f").reshape(3, 2) / 7, "b": None},
        attrs={
            "rate": 0.25,
            "flag": True,
            "names": ("a", "b"),
            "table": {"x": [1, 2.5, None]},
            "skip": Unserializable(object()),
            "fn": len,
        },
    )
    shared = Model(
        "shared",
        identity,
        dims={"nO": 2},
        params={"E": numpy.linspace(-1, 1, 4, dtype="float64")},
        shims=[TagShim(None, {"tag": "shim:t1"})],
    )
    return Model(
        "root",
        identity,
        layers=[leaf, shared, shared],
        dims={"nO": 3},
        attrs={"vocab": ["x", "y"], "count": 7, "blob": b"\x00\x01", "arr": numpy.array([1, 2], "i")},
        refs={"first": leaf, "empty": None},
    )


def test_the_bytes_of_a_fixed_model_are_pinned():
    data = fixed_model().to_bytes()
    assert hashlib.sha256(data).hexdigest() == FIXED_MODEL_SHA256
    fresh = fixed_model()
    fresh.layers[0].set_param("W", numpy.zeros((3, 2), dtype="f"))
    assert fresh.from_bytes(data).to_bytes() == data


def test_the_seams_compose_into_the_model_methods():
    model = fixed_model()
    document = to_dict(model)
    assert encode(document) == model.to_bytes()
    decoded = decode(model.to_bytes())
    assert [node["name"] for node in decoded["nodes"]] == ["root", "leaf", "shared"]
    assert decoded["nodes"][0]["refs"] == {"first": 1, "empty": None}
    assert decoded["attrs"][1].keys() == {"rate", "flag", "names", "table"}  # runtime-only attrs left out


def test_planning_checks_everything_and_changes_nothing():
    source = fixed_model()
    source.layers[0].set_dim("nI", 2)
    source.layers[0].set_param("b", numpy.ones(3, dtype="f"))
    target = fixed_model()
    before = target.to_bytes()
    nodes = list(target.walk())
    plan = plan_load(nodes, source.to_dict())
    assert target.to_bytes() == before
    assert plan[1].dims == {"nO": 3, "nI": 2}
    assert plan[0].refs == {"first": 1, "empty": None}
    apply_plan(nodes, plan)
    assert target.layers[0].get_dim("nI") == 2
    assert target.to_bytes() == source.to_bytes()


def test_applying_rolls_back_every_node_and_shim_when_a_shim_refuses():
    source = fixed_model()
    source.layers[0].set_dim("nI", 2)
    source.attrs["count"] = 8
    target = fixed_model()
    before = target.to_bytes()
    nodes = list(target.walk())
    plan = plan_load(nodes, source.to_dict())
    plan[2] = plan[2]._replace(shims=[b"refuse"])
    with pytest.raises(SerializationError, match="could not load the model bytes: this shim refuses"):
        apply_plan(nodes, plan)
    assert target.to_bytes() == before


def test_plan_dims_skips_unset_dims_and_refuses_conflicts():
    current = {"nO": 3, "nI": None}
    assert plan_dims("node 0", {"nO": 3, "nI": None}, current) == {"nO": 3}
    assert plan_dims("node 0", {"nI": 0}, current) == {"nI": 0}  # an empty width is a width
    with pytest.raises(SerializationError, match="node 0: dimension 'nO' is 3 in the model but 4"):
        plan_dims("node 0", {"nO": 4}, current)
    with pytest.raises(SerializationError, match="unknown dimension 'nH'"):
        plan_dims("node 0", {"nH": 1}, current)


@pytest.mark.parametrize("index", [3, -1, "0", 1.0])
def test_plan_refs_accepts_only_indices_of_the_tree(index):
    assert plan_refs("node 0", {"r": 2, "none": None}, 3) == {"r": 2, "none": None}
    with pytest.raises(SerializationError, match="ref 'r' points to invalid node"):
        plan_refs("node 0", {"r": index}, 3)


def test_plan_params_wants_registered_float_arrays_of_the_set_shape():
    current = {"W": numpy.zeros((3, 2), dtype="f"), "b": None}
    loaded = plan_params("node 1", {"W": numpy.ones((3, 2), dtype="f"), "b": None}, current)
    assert list(loaded) == ["W"]
    with pytest.raises(SerializationError, match="param 'W' is not a float array"):
        plan_params("node 1", {"W": numpy.ones((3, 2), dtype="i")}, current)
    with pytest.raises(SerializationError, match=r"param 'W' is \(3, 2\) float32 in the model but \(2, 3\)"):
        plan_params("node 1", {"W": numpy.ones((2, 3), dtype="f")}, current)


@pytest.mark.parametrize("entry", ["leaf", None, {"name": "leaf", "dims": [3]}])
def test_check_node_info_wants_a_map_with_a_dims_map(entry):
    check_node_info("node 1", {"name": "leaf", "dims": {}}, "leaf", strict=True)
    with pytest.raises(SerializationError, match="node 1: malformed node entry"):
        check_node_info("node 1", entry, "leaf", strict=True)


@pytest.mark.parametrize(
    "saved, message",
    [
        (["rate"], "malformed attrs entry"),
        ({"rate": 0.5}, "malformed attrs entry"),
        ({1: b"\xcb"}, "attr names are strings, got 1"),
    ],
)
def test_plan_attrs_wants_a_map_of_named_bytes(saved, message):
    node = Model("leaf", identity, attrs={"rate": 0.25})
    with pytest.raises(SerializationError, match=f"node 1: {message}"):
        plan_attrs("node 1", saved, node)


def test_a_ref_outside_the_tree_cannot_be_saved():
    outside = Model("outside", identity)
    model = Model("root", identity, refs={"other": outside})
    with pytest.raises(SerializationError, match="ref 'other' points to node 'outside' outside the model"):
        model.to_bytes()


@pytest.mark.parametrize("n_keys", [1, 15, 16, 300])
def test_composa_documents_are_recognised_by_their_first_key_whatever_their_size(n_keys):
    # 1-15 keys: a one-byte fixmap header; 16 and more: a three-byte map16 header.
    document = {"composa": 2, **{f"key{i}": i for i in range(n_keys - 1)}}
    assert is_composa_document(msgpack.packb(document))


@pytest.mark.parametrize(
    "data",
    [
        msgpack.packb(["composa", 2]),
        msgpack.packb({"composer": 2}),
        msgpack.packb({"format": 1, "composa": 2}),
        msgpack.packb({f"key{i}": i for i in range(16)}),  # a map16 whose first key is another
        msgpack.packb("composa"),
        msgpack.packb({}),
        msgpack.packb([]) + msgpack.packb("composa"),  # an empty list, then the key
    ],
)
def test_other_msgpack_is_not_a_composa_document(data):
    assert not is_composa_document(data)


def test_can_from_disk_is_false_for_a_missing_path_or_a_folder(tmp_path):
    model = fixed_model()
    assert not model.can_from_disk(tmp_path / "missing.bin")
    assert not model.can_from_disk(tmp_path)
    model.to_disk(tmp_path / "model.bin")
    assert fixed_model().can_from_disk(tmp_path / "model.bin")


def test_the_module_functions_check_layer_names_by_default():
    data = fixed_model().to_bytes()
    renamed = fixed_model()
    renamed.layers[0].name = "renamed"
    assert not model_io.can_from_bytes(renamed, data)
    assert model_io.can_from_bytes(renamed, data, strict=False)


def test_plan_shims_wants_one_bytes_entry_per_shim():
    assert plan_shims("node 2", [b"x"], 1) == [b"x"]
    with pytest.raises(SerializationError, match="the model has 1 shims, bytes 2"):
        plan_shims("node 2", [b"x", b"y"], 1)
    with pytest.raises(SerializationError, match="malformed shim entry"):
        plan_shims("node 2", ["x"], 1)


def test_a_plan_names_what_each_node_receives():
    plan = plan_load(list(fixed_model().walk()), fixed_model().to_dict())
    assert all(isinstance(node_plan, NodePlan) for node_plan in plan)
    assert plan[2].shims == [b"shim:t1"]
    assert plan[1].attrs["names"] == ("a", "b")


def test_the_attr_hooks_are_the_same_functions_everywhere():
    assert composa.serialize_attr is composa.model.serialize_attr is model_io.serialize_attr
    assert composa.deserialize_attr is composa.model.deserialize_attr is model_io.deserialize_attr


def top_level_imports(module):
    """The modules `module` imports when it is imported (TYPE_CHECKING blocks left out)."""
    imported = []
    for statement in ast.parse(inspect.getsource(module)).body:
        if isinstance(statement, ast.ImportFrom):
            imported.append("." * statement.level + (statement.module or ""))
        elif isinstance(statement, ast.Import):
            imported.extend(alias.name for alias in statement.names)
    return imported


def test_model_io_does_not_import_model_at_import_time():
    imported = top_level_imports(model_io)
    assert ".serialize" in imported
    assert not [name for name in imported if name in (".", ".model", "composa", "composa.model")]


def test_bytes_of_format_1_still_load():
    data = FORMAT_1_BYTES.read_bytes()
    assert hashlib.sha256(data).hexdigest() == FORMAT_1_SHA256
    fresh = fixed_model()
    fresh.layers[0].set_param("W", numpy.zeros((3, 2), dtype="f"))
    assert fresh.from_bytes(data).to_bytes() == fixed_model().to_bytes()
    corrupted = bytearray(data)
    corrupted[data.find(b"composa") + 20] ^= 1
    with pytest.raises(SerializationError, match="checksum mismatch"):
        fixed_model().from_bytes(bytes(corrupted))


def big_model(n=300):
    """A node with a param big enough to be written from its own buffer."""
    return Model("big", identity, params={"W": numpy.arange(n * n, dtype="f").reshape(n, n)})


def test_a_large_param_is_written_straight_from_its_own_memory():
    model = big_model()
    parts = encode_parts(to_dict(model))
    W = model.get_param("W")
    assert any(isinstance(part, memoryview) and numpy.shares_memory(numpy.asarray(part), W) for part in parts)
    assert b"".join(parts) == model.to_bytes()


def test_decoded_params_are_read_only_views_of_the_input():
    data = big_model().to_bytes()
    W = decode(data)["params"][0]["W"]
    assert numpy.shares_memory(W, numpy.frombuffer(data, dtype="u1"))
    assert not W.flags.writeable


def test_loading_copies_into_the_arrays_the_model_already_has():
    target = big_model()
    W = target.get_param("W")
    source = big_model()
    source.set_param("W", source.get_param("W") * 2)
    target.from_bytes(source.to_bytes())
    assert target.get_param("W") is W
    numpy.testing.assert_array_equal(W, source.get_param("W"))
    assert W.flags.writeable


def test_a_refusing_shim_leaves_every_param_value_as_it_was():
    source = fixed_model()
    source.layers[1].set_param("E", numpy.full(4, 9.0))
    source.layers[0].set_param("W", numpy.ones((3, 2), dtype="f"))
    target = fixed_model()
    before = target.to_bytes()
    E = target.layers[1].get_param("E")
    document = source.to_dict()
    document["shims"][2] = [b"refuse"]
    with pytest.raises(SerializationError, match="this shim refuses"):
        target.from_dict(document)
    assert target.to_bytes() == before
    assert target.layers[1].get_param("E") is E and E[0] == -1.0


def test_another_byte_format_plugs_into_decode(monkeypatch):
    source = fixed_model()
    foreign = b"FOREIGN:" + source.to_bytes()

    def detect(data):
        return bytes(data[:8]) == b"FOREIGN:"

    def decoder(data):  # e.g. another library's msgpack, turned into composa's document
        return decode(data[8:])

    monkeypatch.setattr(model_io, "DECODERS", [(detect, decoder), *model_io.DECODERS])
    assert fixed_model().from_bytes(foreign).to_bytes() == source.to_bytes()
