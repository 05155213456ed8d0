"""safetensors files: model.to_safetensors / from_safetensors under the stable keys, all or nothing."""
import json
import re
import sys

import numpy
import pytest

import composa
from composa import Embed, LayerNorm, Relu, SerializationError, Softmax, chain, to_state_dict, with_array
from composa import cli
from composa.archive import MODEL_FILE, SAFETENSORS_FILE, save_weights
from composa.errors import ArchiveError
from composa.training import evaluate

safetensors_numpy = pytest.importorskip("safetensors.numpy")


def mlp(width=8, n_classes=3):
    return chain(Relu(width), LayerNorm(), Softmax(n_classes))


def trained_mlp(seed=0):
    X = numpy.random.default_rng(seed).random((6, 5), dtype="float32")
    model = mlp()
    model.initialize(X=X)
    return model, X


def params_of(model):
    return {key: value.copy() for key, value in composa.flat_params.to_flat(model).items()}


def test_round_trip_gives_the_same_predictions_without_initialize(tmp_path):
    model, X = trained_mlp()
    model.to_safetensors(tmp_path / "mlp.safetensors")
    loaded = mlp().from_safetensors(tmp_path / "mlp.safetensors")  # widths come from the file's metadata
    numpy.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_keys_are_walk_index_node_name_param_name(tmp_path):
    model, _ = trained_mlp()
    model.to_safetensors(tmp_path / "mlp.safetensors")
    arrays = safetensors_numpy.load_file(str(tmp_path / "mlp.safetensors"))
    assert sorted(arrays) == ["1.relu.W", "1.relu.b", "2.layernorm.G", "2.layernorm.b", "3.softmax.W", "3.softmax.b"]
    assert sorted(arrays) == sorted(to_state_dict(model))
    numpy.testing.assert_array_equal(arrays["1.relu.W"], model.layers[0].get_param("W"))


def test_the_file_opens_with_the_safetensors_torch_loader(tmp_path):
    torch_loader = pytest.importorskip("safetensors.torch")
    model, _ = trained_mlp()
    model.to_safetensors(tmp_path / "mlp.safetensors")
    tensors = torch_loader.load_file(str(tmp_path / "mlp.safetensors"))
    numpy.testing.assert_array_equal(tensors["3.softmax.W"].numpy(), model.layers[2].get_param("W"))


def test_a_file_written_by_the_safetensors_library_loads_into_an_initialised_model(tmp_path):
    model, X = trained_mlp()
    safetensors_numpy.save_file(params_of(model), str(tmp_path / "plain.safetensors"))  # no composa metadata
    target, _ = trained_mlp(seed=1)
    target.from_safetensors(tmp_path / "plain.safetensors")
    numpy.testing.assert_array_equal(target.predict(X), model.predict(X))


def test_missing_and_unexpected_keys_are_all_listed_and_nothing_changes(tmp_path):
    model, _ = trained_mlp()
    arrays = params_of(model)
    del arrays["1.relu.b"], arrays["3.softmax.W"]
    arrays["4.softmax.W"] = numpy.zeros((3, 8), dtype="float32")
    safetensors_numpy.save_file(arrays, str(tmp_path / "bad.safetensors"))
    target, _ = trained_mlp(seed=1)
    before = params_of(target)
    with pytest.raises(SerializationError) as caught:
        target.from_safetensors(tmp_path / "bad.safetensors")
    message = str(caught.value)
    assert "missing keys ['1.relu.b', '3.softmax.W']" in message
    assert "unexpected keys ['4.softmax.W']" in message
    for key, value in params_of(target).items():
        numpy.testing.assert_array_equal(value, before[key])


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("3.softmax.W", numpy.zeros((4, 8), dtype="float32"), "node 3 ('softmax'): param 'W' is (3, 8) float32 in the model but (4, 8)"),
        ("2.layernorm.G", numpy.ones((8,), dtype="float64"), "node 2 ('layernorm'): param 'G' is (8,) float32 in the model but (8,) float64"),
    ],
)
def test_a_wrong_shape_or_dtype_names_the_node_and_changes_nothing(tmp_path, key, value, expected):
    model, _ = trained_mlp()
    arrays = {**params_of(model), key: value}
    safetensors_numpy.save_file(arrays, str(tmp_path / "bad.safetensors"))
    target, _ = trained_mlp(seed=1)
    before = params_of(target)
    with pytest.raises(SerializationError, match=re.escape(expected)):
        target.from_safetensors(tmp_path / "bad.safetensors")
    assert all(numpy.array_equal(value, before[name]) for name, value in params_of(target).items())


def test_a_model_of_other_widths_is_refused_by_the_dims_in_the_metadata(tmp_path):
    model, _ = trained_mlp()
    model.to_safetensors(tmp_path / "mlp.safetensors")
    with pytest.raises(SerializationError, match="node 0 .*dimension 'nO' is 4 in the model but 3"):
        mlp(n_classes=4).from_safetensors(tmp_path / "mlp.safetensors")


def test_metadata_holds_each_nodes_name_and_dims(tmp_path):
    model, _ = trained_mlp()
    model.to_safetensors(tmp_path / "mlp.safetensors")
    with safetensors_numpy.safe_open(str(tmp_path / "mlp.safetensors"), framework="numpy") as handle:
        nodes = json.loads(handle.metadata()["nodes"])
    assert [node["name"] for node in nodes] == [node.name for node in model.walk()]
    assert nodes[1]["dims"] == {"nO": 8, "nI": 5}


def test_a_truncated_file_is_a_serialization_error(tmp_path):
    model, _ = trained_mlp()
    path = tmp_path / "mlp.safetensors"
    model.to_safetensors(path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(SerializationError, match="cannot be read"):
        mlp().from_safetensors(path)


def test_a_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mlp().from_safetensors(tmp_path / "none.safetensors")


def test_saving_before_initialize_names_the_unset_params(tmp_path):
    with pytest.raises(SerializationError, match="'1.relu.W'"):
        mlp().to_safetensors(tmp_path / "mlp.safetensors")


def test_a_model_with_weights_in_a_shim_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    model = composa.PyTorchWrapper(torch.nn.Linear(2, 2))
    with pytest.raises(SerializationError, match="shim"):
        model.to_safetensors(tmp_path / "wrapped.safetensors")
    assert not (tmp_path / "wrapped.safetensors").exists()


def test_embed_tables_round_trip(tmp_path):
    ids = numpy.array([[1], [4], [2]], dtype="uint64")
    model = with_array(Embed(6, nV=10, column=0))
    model.initialize(X=[ids])
    model.to_safetensors(tmp_path / "embed.safetensors")
    loaded = with_array(Embed(6, nV=10, column=0)).from_safetensors(tmp_path / "embed.safetensors")
    numpy.testing.assert_array_equal(loaded.predict([ids])[0], model.predict([ids])[0])


def test_composa_train_safetensors_keeps_an_archive_that_composa_load_reads(tmp_path):
    status = cli.main([
        "train", "--output", str(tmp_path), "--epochs", "1", "--safetensors", "--no-progress", "--no-plot",
        "--model.*.hidden1.nO", "8", "--model.*.hidden2.nO", "8",
    ])
    assert status == 0
    assert (tmp_path / SAFETENSORS_FILE).is_file() and not (tmp_path / MODEL_FILE).exists()
    model = composa.load(tmp_path)
    _, (dev_X, dev_Y) = composa.datasets.digits()
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert evaluate(model, dev_X, dev_Y)["accuracy"] == meta["best_dev_accuracy"]


def test_save_weights_keeps_one_weights_file(tmp_path):
    model, _ = trained_mlp()
    save_weights(model, tmp_path, "msgpack")
    save_weights(model, tmp_path, "safetensors")
    assert sorted(path.name for path in tmp_path.iterdir()) == [SAFETENSORS_FILE]
    with pytest.raises(ArchiveError, match="unknown weights format 'onnx'"):
        save_weights(model, tmp_path, "onnx")


def test_an_archive_with_both_weights_files_is_refused(tmp_path):
    model, _ = trained_mlp()
    (tmp_path / "config.cfg").write_text("[model]\n@layers = \"Relu.v1\"\nnO = 8\n")
    model.to_disk(tmp_path / MODEL_FILE)
    model.to_safetensors(tmp_path / SAFETENSORS_FILE)
    with pytest.raises(ArchiveError, match="holds both model.bin and model.safetensors"):
        composa.load(tmp_path)


def test_without_the_package_the_error_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import safetensors now fails
    model, _ = trained_mlp()
    with pytest.raises(ImportError, match=re.escape("pip install 'composa[safetensors]'")):
        model.to_safetensors(tmp_path / "mlp.safetensors")
