"""`composa train --gpu-id 0` on the bundled default learns what the CPU run learns."""
import json

import numpy
import pytest

from composa.datasets import digits

from test_cli import composa_command

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The bundled default trained once on the CPU and once on GPU 0."""
    root = tmp_path_factory.mktemp("gpu_cli")
    for name, extra in (("cpu", []), ("gpu", ["--gpu-id", "0"])):
        result = composa_command("train", "--output", root / name, "--no-progress", "--no-plot", *extra)
        assert result.returncode == 0, result.stderr
    return root


def best_dev_accuracy(directory):
    return json.loads((directory / "meta.json").read_text())["best_dev_accuracy"]


def test_gpu_training_reaches_the_cpu_accuracy(runs):
    on_gpu, on_cpu = best_dev_accuracy(runs / "gpu"), best_dev_accuracy(runs / "cpu")
    assert on_gpu >= 0.95
    assert abs(on_gpu - on_cpu) <= 0.01, f"GPU {on_gpu:.4f} vs CPU {on_cpu:.4f}"


def test_evaluate_and_predict_on_the_gpu_agree_with_the_cpu(runs, tmp_path):
    on_gpu = json.loads(composa_command("evaluate", runs / "gpu", "--json", "--gpu-id", "0").stdout)
    assert on_gpu["accuracy"] == best_dev_accuracy(runs / "gpu")
    rows = digits()[1][0][:50]
    numpy.save(tmp_path / "rows.npy", rows)
    labels = {}
    for device, extra in (("gpu", ["--gpu-id", "0"]), ("cpu", [])):
        result = composa_command("predict", runs / "gpu", tmp_path / "rows.npy", *extra)
        assert result.returncode == 0, result.stderr
        labels[device] = [int(line) for line in result.stdout.split()]
    assert labels["gpu"] == labels["cpu"]
