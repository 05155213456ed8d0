"""Training archives: composa.load rebuilds a model from config.cfg + model.bin alone, and says what is wrong."""
import json
import os
import pickle

import numpy
import pytest

import composa
from composa import ArchiveError, Config, registry
from composa.archive import CONFIG_FILE, MODEL_FILE, build_model, load_config
from composa.datasets import digits
from composa.training import evaluate, train

MODEL_CFG = """
[model]
@layers = "chain.v1"

[model.*.hidden]
@layers = "Relu.v1"
nO = ${width.hidden}

[model.*.output]
@layers = "Softmax.v1"
nO = 3

[width]
hidden = 8
"""


def save_archive(directory, text=MODEL_CFG, n_features=5):
    """Build the config's model, initialise it, and write the two files composa.load reads."""
    directory.mkdir(parents=True, exist_ok=True)
    config = Config().from_str(text, interpolate=False)
    model = build_model(config)
    X = numpy.random.default_rng(0).random((6, n_features), dtype="float32")
    model.initialize(X=X)
    (directory / CONFIG_FILE).write_text(config.to_str())
    model.to_disk(directory / MODEL_FILE)
    return model, X


def test_load_gives_identical_predictions(tmp_path):
    model, X = save_archive(tmp_path)
    loaded = composa.load(tmp_path)
    assert loaded is not model
    numpy.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.to_bytes() == model.to_bytes()


def test_load_of_a_trained_run_is_its_best_model(tmp_path):
    train(
        None, tmp_path, progress=False, plot=False,
        overrides={"training.max_epochs": 2, "model.*.hidden1.nO": 16, "model.*.hidden2.nO": 16},
    )
    model = composa.load(tmp_path)
    _, (dev_X, dev_Y) = digits()
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert evaluate(model, dev_X, dev_Y)["accuracy"] == meta["best_dev_accuracy"]
    numpy.testing.assert_array_equal(composa.load(tmp_path).predict(dev_X), model.predict(dev_X))


def test_load_config_keeps_variables(tmp_path):
    save_archive(tmp_path)
    config = load_config(tmp_path)
    assert config["model"]["*"]["hidden"]["nO"] == "${width.hidden}"
    assert config.interpolate()["model"]["*"]["hidden"]["nO"] == 8


def test_missing_directory_file_or_weights_are_explained(tmp_path):
    with pytest.raises(ArchiveError, match="does not exist"):
        composa.load(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArchiveError, match="is a file"):
        composa.load(tmp_path / "file")
    with pytest.raises(ArchiveError, match="no config.cfg"):
        composa.load(tmp_path)
    save_archive(tmp_path / "run")
    os.remove(tmp_path / "run" / MODEL_FILE)
    with pytest.raises(ArchiveError, match="no model.bin"):
        composa.load(tmp_path / "run")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    save_archive(tmp_path)
    text = (tmp_path / CONFIG_FILE).read_text().replace("hidden = 8", "hidden = 9")
    (tmp_path / CONFIG_FILE).write_text(text)
    with pytest.raises(ArchiveError) as info:
        composa.load(tmp_path)
    message = str(info.value)
    assert "model.bin does not fit the [model] section" in message and "nO" in message


def test_a_config_without_a_model_section_is_refused(tmp_path):
    save_archive(tmp_path)
    (tmp_path / CONFIG_FILE).write_text("[training]\nseed = 0\n")
    with pytest.raises(ArchiveError, match=r"no \[model\] section"):
        composa.load(tmp_path)


def test_a_broken_config_is_reported_with_its_section(tmp_path):
    save_archive(tmp_path)
    text = (tmp_path / CONFIG_FILE).read_text().replace('"Softmax.v1"', '"Softmx.v1"')
    (tmp_path / CONFIG_FILE).write_text(text)
    with pytest.raises(ValueError, match=r"\[model\.\*\.output\] @layers.*did you mean 'Softmax.v1'"):
        composa.load(tmp_path)


def test_truncated_weights_are_refused(tmp_path):
    save_archive(tmp_path)
    data = (tmp_path / MODEL_FILE).read_bytes()
    (tmp_path / MODEL_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match="model.bin"):
        composa.load(tmp_path)


class _Exploit:
    def __reduce__(self):
        return (open, (str(_Exploit.target), "w"))


def test_a_pickle_in_place_of_the_weights_never_runs(tmp_path):
    save_archive(tmp_path)
    _Exploit.target = tmp_path / "pwned"
    (tmp_path / MODEL_FILE).write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(ArchiveError):
        composa.load(tmp_path)
    assert not (tmp_path / "pwned").exists()


def test_the_model_section_alone_is_resolved(tmp_path):
    # A [data] section naming a dataset that does not exist must not matter to load().
    model, X = save_archive(tmp_path)
    text = (tmp_path / CONFIG_FILE).read_text() + '\n[data]\n@datasets = "not_installed.v1"\n'
    (tmp_path / CONFIG_FILE).write_text(text)
    numpy.testing.assert_array_equal(composa.load(tmp_path).predict(X), model.predict(X))
    assert not registry.has("datasets", "not_installed.v1")
