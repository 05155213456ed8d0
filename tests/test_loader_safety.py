"""No input crashes, hangs or half-loads a loader: each one loads, or raises composa's error and changes nothing."""
import os
import subprocess
import sys
import textwrap

import msgpack
import numpy
import pytest

import composa
from composa import Adam, ArchiveError, Config, Linear, Relu, chain, constant
from composa.archive import CONFIG_FILE, MODEL_FILE, build_model
from composa.errors import ComposaError, SerializationError
from composa.model_io import can_from_dict, to_dict
from composa.serialize import PARTIAL_SUFFIX, msgpack_dumps, msgpack_loads, remove_stale_partials, write_parts_atomic


def small_model():
    model = chain(Relu(4, 3), Linear(2, 4)).initialize()
    for node in model.walk():
        for name in node.param_names:
            node.set_param(name, numpy.random.default_rng(0).random(node.get_param(name).shape, dtype="float32"))
    return model


def nested_tuples(depth):
    """msgpack bytes of a tuple inside a tuple ... `depth` deep: each level is one extension."""
    data = msgpack.packb([1])
    for _ in range(depth):
        data = msgpack.packb(msgpack.ExtType(43, data))
    return data


def test_deeply_nested_tuples_are_refused_instead_of_overflowing_the_stack():
    # Run in a child: before the depth limit this input killed the interpreter (segfault).
    code = textwrap.dedent(
        """
        import msgpack
        from composa.errors import SerializationError
        from composa.serialize import msgpack_loads
        data = msgpack.packb([1])
        for _ in range(100_000):
            data = msgpack.packb(msgpack.ExtType(43, data))
        try:
            msgpack_loads(data)
        except SerializationError as error:
            print("refused:", error)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "refused: tuples nested more than" in result.stdout


def test_tuples_within_the_depth_limit_still_round_trip():
    value = (1, (2, (3, ("four",))))
    assert msgpack_loads(msgpack_dumps(value)) == value


def test_deeply_nested_lists_are_refused():
    data = b"\x91" * 500 + b"\x01"  # a list holding a list ... 500 deep
    with pytest.raises(SerializationError, match="nests containers more than 64 deep"):
        msgpack_loads(data)


def test_an_array_that_claims_a_trillion_elements_is_refused_without_allocating():
    header = msgpack.packb(["<f4", [10**6, 10**6], b""], use_bin_type=True)
    with pytest.raises(SerializationError, match="needs 4000000000000 bytes, got 0"):
        msgpack_loads(msgpack.packb(msgpack.ExtType(42, header)))


def test_a_list_header_that_claims_billions_of_items_is_refused():
    with pytest.raises(SerializationError):
        msgpack_loads(b"\xdd\xff\xff\xff\xff" + b"\x00" * 64)


@pytest.mark.parametrize("dtype", ["|O", ">f4", "<c8", "|V8", "<M8[s]"])
def test_only_plain_little_endian_numeric_dtypes_load(dtype):
    header = msgpack.packb([dtype, [1], b"\x00" * 8], use_bin_type=True)
    with pytest.raises(SerializationError, match="dtype"):
        msgpack_loads(msgpack.packb(msgpack.ExtType(42, header)))


def test_refs_that_are_not_a_map_are_refused_and_can_from_dict_says_no():
    model = small_model()
    document = to_dict(model)
    document["nodes"][0]["refs"] = ["not", "a", "map"]
    assert can_from_dict(model, document) is False
    with pytest.raises(SerializationError, match="node 0 .*malformed refs entry: expected a map, got list"):
        model.from_dict(document)


def test_refs_and_attrs_must_be_named_by_strings():
    model = small_model()
    document = to_dict(model)
    document["nodes"][1]["refs"] = {3: None}
    with pytest.raises(SerializationError, match="node 1 .*ref names are strings, got 3"):
        model.from_dict(document)


# The optimizer ------------------------------------------------------------------------------


def trained_optimizer(model, **settings):
    optimizer = Adam(0.01, **settings)
    X = numpy.ones((2, 3), dtype="float32")
    Y, backprop = model.begin_update(X)
    backprop(Y)
    model.finish_update(optimizer)
    optimizer.step_schedules()
    return optimizer


def optimizer_state(optimizer, model):
    return optimizer.to_bytes(model=model)


def test_optimizer_state_missing_a_field_is_refused_before_anything_changes():
    model = small_model()
    optimizer = trained_optimizer(model)
    before = optimizer_state(optimizer, model)
    saved = optimizer.to_dict(model=model)
    del saved["params"][-1]["average"]
    saved["params"][0]["nr_update"] = 7  # would be applied first, if loading applied as it went
    optimizer.from_dict(saved, model=model)  # a missing average is fine: it starts afresh
    saved["params"][-1]["key"] = ["node", "one", "W"]
    with pytest.raises(SerializationError, match="malformed param key"):
        optimizer.from_dict(saved, model=model)
    optimizer.from_bytes(before, model=model)
    saved = optimizer.to_dict(model=model)
    saved["params"][-1]["mom2"] = numpy.zeros(1, dtype="float32")
    with pytest.raises(SerializationError, match="mom2 of .* has 1 values but the param has"):
        optimizer.from_dict(saved, model=model)
    assert optimizer_state(optimizer, model) == before


@pytest.mark.parametrize(
    "name, state, message",
    [
        ("learn_rate", {"name": "constant", "attrs": {"rate": b"0.1"}}, "attr 'rate' is a float"),
        ("b1", {"name": "constant", "attrs": {"rate": -1.0}}, "gives -1.0 at step 1, expected a number in"),
        ("b2", {"name": "constant", "attrs": {"rate": float("nan")}}, "must be finite"),
        ("b1", {"name": "constant", "attrs": {"rate": 1.0}}, r"gives 1.0 at step 1, expected a number in \[0.0, 1.0\)"),
        ("b2", {"name": "constant", "attrs": {"rate": 1.0}}, r"gives 1.0 at step 1, expected a number in \[0.0, 1.0\)"),
        ("eps", {"name": "constant", "attrs": {"size": 3}}, "unknown attr 'size'"),
        ("L2", {"name": "constant", "attrs": {}, "code": "x"}, "malformed saved state"),
    ],
)
def test_bad_schedule_state_is_refused_before_anything_changes(name, state, message):
    model = small_model()
    optimizer = trained_optimizer(model, beta1=constant(0.9), beta2=constant(0.999))
    before = optimizer_state(optimizer, model)
    saved = optimizer.to_dict(model=model)
    saved["schedules"][name] = state
    saved["step"] = 1
    with pytest.raises(SerializationError, match=f"schedule '{name}'.*{message}"):
        optimizer.from_dict(saved, model=model)
    assert optimizer_state(optimizer, model) == before


@pytest.mark.parametrize("name", ["b1", "b2"])
def test_a_schedule_state_at_the_low_end_of_its_range_loads(name):
    model = small_model()
    optimizer = trained_optimizer(model, beta1=constant(0.9), beta2=constant(0.999))
    saved = optimizer.to_dict(model=model)
    saved["schedules"][name] = {"name": "constant", "attrs": {"rate": 0.0}}
    optimizer.from_dict(saved, model=model)
    assert getattr(optimizer, name)(optimizer.step) == 0.0


def test_optimizer_params_that_are_not_a_list_are_refused():
    optimizer = Adam(0.01)
    saved = optimizer.to_dict()
    saved["params"] = {"key": ["id", 1, "W"]}
    with pytest.raises(SerializationError, match="Optimizer: malformed params entry"):
        optimizer.from_dict(saved)


def test_optimizer_state_keyed_by_id_needs_int_ids():
    optimizer = Adam(0.01)
    saved = optimizer.to_dict()
    saved["params"] = [{"key": ["id", [1], "W"], "nr_update": 1, "mom1": None, "mom2": None, "average": None}]
    with pytest.raises(SerializationError, match="malformed param key"):
        optimizer.from_dict(saved)


# Shims ------------------------------------------------------------------------------------


def test_a_torch_state_entry_with_a_huge_shape_is_refused():
    torch = pytest.importorskip("torch")
    from composa import PyTorchWrapper_v3

    model = PyTorchWrapper_v3(torch.nn.Linear(2, 2))
    shim = model.shims[0]
    state = msgpack_dumps(
        {"format": "composa-torch-state", "version": 1, "tensors": {"weight": ["float32", [2**40, 2**40], numpy.zeros(4)]}}
    )
    with pytest.raises(SerializationError, match="malformed torch state entry 'weight'"):
        shim.from_bytes(msgpack_dumps({"config": {}, "state": state}))


# composa.load and checkpoints -----------------------------------------------------------------------


MODEL_CFG = """
[model]
@layers = "Relu.v1"
nO = 3
"""


def archive(directory, text=MODEL_CFG):
    directory.mkdir(parents=True, exist_ok=True)
    config = Config().from_str(text, interpolate=False)
    model = build_model(config)
    model.initialize(X=numpy.ones((2, 4), dtype="float32"))
    (directory / CONFIG_FILE).write_text(config.to_str())
    model.to_disk(directory / MODEL_FILE)
    return directory


@pytest.mark.parametrize(
    "config",
    [
        '[model]\n@layers = "Relu.v1"\nnO = "three"\n',  # confection's ConfigValidationError
        "[model]\n@layers = \"Relu.v1\"\nnO = ${a.b}\n\n[a]\nb = ${a.c}\nc = ${a.b}\n",  # a cycle
        '[model]\n@layers = "NoSuchLayer.v1"\n',  # an unknown registry name
        '[model]\n@layers = "Relu.v1"\nnO = -4\n',  # the layer refuses it
    ],
)
def test_composa_load_turns_every_config_problem_into_an_archive_error(tmp_path, config):
    directory = archive(tmp_path)
    (directory / CONFIG_FILE).write_text(config)
    with pytest.raises(ArchiveError):
        composa.load(directory)


def test_a_damaged_model_file_in_an_archive_is_an_archive_error(tmp_path):
    directory = archive(tmp_path)
    (directory / MODEL_FILE).write_bytes(nested_tuples(20))
    with pytest.raises(ArchiveError, match="does not fit"):
        composa.load(directory)
    assert issubclass(ArchiveError, ComposaError)


# Files -------------------------------------------------------------------------------------


def test_the_next_save_removes_partial_files_left_by_a_killed_save(tmp_path):
    path = tmp_path / "model.bin"
    small_model().to_disk(path)
    stale = tmp_path / f".model.bin.abc123{PARTIAL_SUFFIX}"
    stale.write_bytes(b"\x00" * 1000)  # what a kill -9 in the middle of to_disk leaves
    other = tmp_path / "notes.tmp"
    other.write_text("not ours")
    small_model().to_disk(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "notes.tmp"]
    assert remove_stale_partials(tmp_path) == []


def test_a_partial_file_of_a_save_still_running_is_left_alone(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    partial = tmp_path / f".model.bin.xyz{PARTIAL_SUFFIX}"
    with open(partial, "wb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # as a live writer holds it
        assert remove_stale_partials(tmp_path) == []
    assert remove_stale_partials(tmp_path) == [partial.name]
    assert not os.path.exists(partial)


def test_a_partial_file_that_cannot_be_removed_is_not_reported_removed(tmp_path, monkeypatch):
    # As when another save's cleanup removed it first, between this one's lock and its unlink.
    partial = tmp_path / f".model.bin.xyz{PARTIAL_SUFFIX}"
    partial.write_bytes(b"\x00")

    def unlink_fails(path, *args, **kwargs):
        raise FileNotFoundError(path)

    monkeypatch.setattr(os, "unlink", unlink_fails)
    assert remove_stale_partials(tmp_path) == []


def test_a_save_in_progress_is_not_cleaned_up_by_another_save(tmp_path):
    path = tmp_path / "model.bin"
    seen_by_the_other_save = []

    def parts():
        yield b"first half, "
        seen_by_the_other_save.append(remove_stale_partials(tmp_path))  # what a second save does first
        yield b"second half"

    write_parts_atomic(path, parts())
    assert seen_by_the_other_save == [[]]
    assert path.read_bytes() == b"first half, second half"
