"""The composa command end to end, in subprocesses: train the bundled default, evaluate, predict."""
import json
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

import composa
import composa.cli
from composa.cli import parse_overrides
from composa.datasets import digits

REPO = Path(__file__).resolve().parents[1]


def composa_command(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "composa", *map(str, args)],
        capture_output=True, text=True, cwd=cwd or REPO, timeout=120,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`composa train --output DIR` on the bundled default, exactly as the README says."""
    directory = tmp_path_factory.mktemp("cli") / "runs" / "digits"
    result = composa_command("train", "--output", directory)
    assert result.returncode == 0, result.stderr
    return directory, result


@pytest.fixture(scope="module")
def dev_split():
    _, (dev_X, dev_Y) = digits()
    return dev_X, dev_Y


def test_train_default_reaches_95_percent_and_writes_the_archive(trained):
    directory, result = trained
    for name in ("config.cfg", "model.bin", "meta.json", "training_state.bin", "metrics.jsonl", "learning_curves.png"):
        assert (directory / name).is_file(), name
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["best_dev_accuracy"] >= 0.95
    assert "dev acc" in result.stdout and "examples/s" in result.stdout
    assert "Best dev accuracy" in result.stdout


def test_evaluate_reports_the_best_dev_accuracy(trained):
    directory, _ = trained
    result = composa_command("evaluate", directory, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["accuracy"] == json.loads((directory / "meta.json").read_text())["best_dev_accuracy"]
    assert metrics["examples"] == 359
    table = composa_command("evaluate", directory)
    assert table.returncode == 0 and "accuracy" in table.stdout


def test_evaluate_on_labelled_files(trained, dev_split, tmp_path):
    directory, _ = trained
    dev_X, dev_Y = dev_split
    numpy.savez(tmp_path / "dev.npz", X=dev_X, y=dev_Y)
    numpy.savetxt(tmp_path / "dev.csv", numpy.hstack([dev_X, dev_Y[:, None]]), delimiter=",", fmt="%.8g")
    from_npz = json.loads(composa_command("evaluate", directory, tmp_path / "dev.npz", "--json").stdout)
    from_csv = json.loads(composa_command("evaluate", directory, tmp_path / "dev.csv", "--json").stdout)
    default = json.loads(composa_command("evaluate", directory, "--json").stdout)
    assert from_npz["accuracy"] == from_csv["accuracy"] == default["accuracy"]


def test_predict_prints_the_class_of_every_row(trained, dev_split, tmp_path):
    directory, _ = trained
    rows = dev_split[0][:20]
    numpy.save(tmp_path / "rows.npy", rows)
    result = composa_command("predict", directory, tmp_path / "rows.npy")
    assert result.returncode == 0, result.stderr
    printed = [int(line) for line in result.stdout.split()]
    expected = composa.load(directory).predict(rows).argmax(axis=1).tolist()
    assert printed == expected


def test_predict_reads_csv_and_jsonl_and_writes_files(trained, dev_split, tmp_path):
    directory, _ = trained
    rows = dev_split[0][:7]
    numpy.savetxt(tmp_path / "rows.csv", rows, delimiter=",", fmt="%.8g")
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"x": row}) + "\n" for row in rows.tolist()))
    expected = composa.load(directory).predict(rows).argmax(axis=1).tolist()
    for source in ("rows.csv", "rows.jsonl"):
        out = tmp_path / f"{source}.predictions.jsonl"
        result = composa_command("predict", directory, tmp_path / source, "--output", out, "--probabilities")
        assert result.returncode == 0, result.stderr
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert [record["label"] for record in records] == expected
        assert all(abs(sum(record["probabilities"]) - 1.0) < 1e-4 for record in records)
    result = composa_command("predict", directory, tmp_path / "rows.csv", "--output", tmp_path / "labels.npy")
    assert result.returncode == 0, result.stderr
    assert numpy.load(tmp_path / "labels.npy").tolist() == expected


def test_predict_with_the_wrong_width_says_so(trained, tmp_path):
    directory, _ = trained
    numpy.save(tmp_path / "narrow.npy", numpy.zeros((3, 10), dtype="float32"))
    result = composa_command("predict", directory, tmp_path / "narrow.npy")
    assert result.returncode == 1
    assert "takes rows of 64 features" in result.stderr and "has 10" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_errors_are_one_clear_line_not_a_traceback(trained, tmp_path):
    directory, _ = trained
    again = composa_command("train", "--output", directory)
    assert again.returncode == 1 and "--resume" in again.stderr
    typo = composa_command("train", "--output", tmp_path / "new", "--training.max_epoch", "2")
    assert typo.returncode == 1 and "did you mean 'max_epochs'" in typo.stderr
    bad_name = composa_command("train", "--output", tmp_path / "new", "--optimizer.@optimizers", "Adma.v1")
    assert bad_name.returncode == 1 and "did you mean 'Adam.v1'" in bad_name.stderr
    missing = composa_command("evaluate", tmp_path / "nowhere")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    results = [again, typo, bad_name, missing]
    if not composa.compat.has_cupy_gpu:
        no_gpu = composa_command("predict", directory, tmp_path / "rows.npy", "--gpu-id", "0")
        assert no_gpu.returncode == 1 and "require_gpu" in no_gpu.stderr
        results.append(no_gpu)
    for result in results:
        assert "Traceback" not in result.stderr


def test_config_command_prints_the_default_with_overrides():
    result = composa_command("config", "--training.max_epochs", "3", "--model.*.hidden1.nO=128")
    assert result.returncode == 0, result.stderr
    assert "max_epochs = 3" in result.stdout and "nO = 128" in result.stdout
    assert '@datasets = "digits.v1"' in result.stdout


def test_no_command_prints_help_and_version_works():
    result = composa_command()
    assert result.returncode == 2 and "train" in result.stdout and "predict" in result.stdout
    version = composa_command("--version")
    assert version.returncode == 0 and composa.__version__ in version.stdout


def test_the_console_script_is_installed():
    script = Path(sys.executable).parent / "composa"
    if not script.exists():
        pytest.skip("composa is not installed as a console script in this environment")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "composa train" in result.stdout


def test_parse_overrides_reads_json_values_and_strings():
    assert parse_overrides(["--training.max_epochs", "5", "--a.b=true", "--a.c", "relu", "--a.d", "[1, 2]"]) == {
        "training.max_epochs": 5, "a.b": True, "a.c": "relu", "a.d": [1, 2]
    }
    with pytest.raises(ValueError, match="needs a value"):
        parse_overrides(["--training.max_epochs"])


def test_code_option_imports_user_registered_layers(tmp_path):
    (tmp_path / "my_layers.py").write_text(
        "from composa import registry, Relu\n"
        "@registry.layers('my_wide_relu.v1')\n"
        "def my_wide_relu(width: int = 48):\n"
        "    return Relu(width)\n"
    )
    config = (Path(composa.__file__).parent / "default.cfg").read_text()
    (tmp_path / "mine.cfg").write_text(config.replace('[model.*.hidden1]\n@layers = "Relu.v1"\nnO = 64', '[model.*.hidden1]\n@layers = "my_wide_relu.v1"'))
    args = ["train", str(tmp_path / "mine.cfg"), "--output", str(tmp_path / "run"), "--epochs", "1", "--no-progress", "--no-plot"]
    assert composa.cli.main(args + ["--code", str(tmp_path / "my_layers.py")]) == 0
    assert composa.load(tmp_path / "run").layers[0].get_dim("nO") == 48


def test_code_option_with_a_missing_file_is_a_clear_error(tmp_path, capsys):
    assert composa.cli.main(["evaluate", str(tmp_path), "--code", "nowhere.py"]) == 1
    assert "--code nowhere.py: no such file" in capsys.readouterr().err


def test_a_composa_runtime_error_is_one_line_and_exit_status_1(tmp_path, capsys):
    code = tmp_path / "failing.py"
    code.write_text("from composa.shims.pytorch import PyTorchModuleError\nraise PyTorchModuleError('the module failed')\n")
    assert composa.cli.main(["evaluate", str(tmp_path), "--code", str(code)]) == 1
    assert "composa evaluate: error: the module failed" in capsys.readouterr().err


def test_export_writes_an_onnx_graph_that_gives_the_trained_models_predictions(trained, dev_split, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    directory, _ = trained
    result = composa_command("export", directory, "--onnx", tmp_path / "digits.onnx")
    assert result.returncode == 0, result.stderr
    assert "onnxruntime matches predict within" in result.stderr
    session = onnxruntime.InferenceSession(str(tmp_path / "digits.onnx"), providers=["CPUExecutionProvider"])
    dev_X, _ = dev_split
    model = composa.load(directory)
    assert numpy.abs(session.run(None, {"X": dev_X})[0] - model.predict(dev_X)).max() <= 1e-5


def test_export_needs_the_onnx_option(trained):
    directory, _ = trained
    result = composa_command("export", directory)
    assert result.returncode == 2 and "--onnx" in result.stderr
