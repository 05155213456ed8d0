"""The training loop: checkpoints, exact resume, metrics, plot, and clear errors on bad setups."""
import json
import sys

import numpy
import pytest

from composa import Config, ConfigValidationError
from composa.archive import MODEL_FILE, STATE_FILE
from composa.errors import ConfigurationError
from composa.serialize import msgpack_loads
from composa.training import train

# Small and quick, with dropout so that resuming must also restore the global RNG.
SMALL_CFG = """
[data]
@datasets = "digits.v1"

[model]
@layers = "chain.v1"

[model.*.hidden]
@layers = "Relu.v1"
nO = 24

[model.*.dropout]
@layers = "Dropout.v1"
rate = 0.2

[model.*.output]
@layers = "Softmax.v1"

[optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.005

[training]
seed = 3
max_epochs = 4
batch_size = 64
"""


def small_config(**overrides) -> Config:
    config = Config().from_str(SMALL_CFG, interpolate=False)
    for dotted, value in overrides.items():
        section, key = dotted.split(".")
        config[section][key] = value
    return config


def run(config, output, **kwargs):
    return train(config, output, progress=False, plot=False, **kwargs)


def checkpoint_model_bytes(output) -> bytes:
    return msgpack_loads((output / STATE_FILE).read_bytes())["model"]


def stop_after(epoch):
    def callback(metrics):
        if metrics["epoch"] == epoch:
            raise KeyboardInterrupt

    return callback


def test_interrupted_then_resumed_training_gives_byte_identical_weights(tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    run(small_config(), straight)
    with pytest.raises(KeyboardInterrupt):
        run(small_config(), interrupted, on_epoch_end=stop_after(2))
    assert json.loads((interrupted / "metrics.jsonl").read_text().splitlines()[-1])["epoch"] == 2
    run(None, interrupted, resume=True)
    assert checkpoint_model_bytes(interrupted) == checkpoint_model_bytes(straight)
    assert (interrupted / MODEL_FILE).read_bytes() == (straight / MODEL_FILE).read_bytes()
    losses = lambda out: [row["loss"] for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())]
    assert losses(interrupted) == losses(straight)


def test_resume_can_extend_training_to_more_epochs(tmp_path):
    straight, extended = tmp_path / "straight", tmp_path / "extended"
    run(small_config(), straight)
    run(small_config(**{"training.max_epochs": 2}), extended)
    run(None, extended, resume=True, overrides={"training.max_epochs": 4})
    assert checkpoint_model_bytes(extended) == checkpoint_model_bytes(straight)


def test_seed_changes_the_run_and_fixes_it(tmp_path):
    run(small_config(), tmp_path / "a", seed=1, overrides={"training.max_epochs": 1})
    run(small_config(), tmp_path / "b", seed=1, overrides={"training.max_epochs": 1})
    run(small_config(), tmp_path / "c", seed=2, overrides={"training.max_epochs": 1})
    a, b, c = (checkpoint_model_bytes(tmp_path / name) for name in "abc")
    assert a == b and a != c
    assert "seed = 1" in (tmp_path / "a" / "config.cfg").read_text()


def test_outputs_metrics_meta_plot_and_best_model(tmp_path):
    result = train(small_config(), tmp_path, progress=True, plot=True)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    assert set(rows[0]) >= {"loss", "train_accuracy", "dev_accuracy", "examples_per_second"}
    assert rows[-1]["loss"] < rows[0]["loss"]
    best = max(rows, key=lambda row: row["dev_accuracy"])
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["best_dev_accuracy"] == best["dev_accuracy"] == result["best_dev_accuracy"]
    assert meta["n_features"] == 64 and meta["n_classes"] == 10
    assert (tmp_path / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_patience_stops_early(tmp_path):
    # A learning rate of zero never improves after epoch 1.
    result = run(small_config(**{"training.patience": 1, "optimizer.learn_rate": 0.0}), tmp_path)
    assert result["epoch"] == 2


def test_patience_counts_on_across_a_resume(tmp_path):
    config = small_config(**{"training.patience": 2, "training.max_epochs": 6, "optimizer.learn_rate": 0.0})
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    assert run(config, straight)["epoch"] == 3
    with pytest.raises(KeyboardInterrupt):
        run(config, interrupted, on_epoch_end=stop_after(2))
    assert run(None, interrupted, resume=True)["epoch"] == 3


def test_resuming_a_run_that_stopped_early_trains_no_further(tmp_path):
    config = small_config(**{"training.patience": 1, "optimizer.learn_rate": 0.0})
    run(config, tmp_path)
    before = checkpoint_model_bytes(tmp_path)
    assert run(None, tmp_path, resume=True)["epoch"] == 2
    assert checkpoint_model_bytes(tmp_path) == before
    # A larger patience lets it go on.
    assert run(None, tmp_path, resume=True, overrides={"training.patience": 3})["epoch"] == 4


def test_the_dev_score_reaches_plateau_schedules(tmp_path):
    # A learning rate too small to change the dev accuracy: every epoch after the first is a plateau.
    config = small_config(**{"training.max_epochs": 3})
    config["optimizer"]["learn_rate"] = {
        "@schedules": "plateau.v1",
        "max_patience": 1,
        "scale": 0.5,
        "schedule": {"@schedules": "constant.v1", "rate": 1e-12},
    }
    run(config, tmp_path)
    optimizer_state = msgpack_loads(msgpack_loads((tmp_path / STATE_FILE).read_bytes())["optimizer"])
    assert optimizer_state["last_score"][1] == json.loads((tmp_path / "meta.json").read_text())["best_dev_accuracy"]
    assert optimizer_state["schedules"]["learn_rate"]["attrs"]["n_plateaus"] == 2


def test_refuses_to_overwrite_a_run_unless_forced(tmp_path):
    run(small_config(**{"training.max_epochs": 1}), tmp_path)
    with pytest.raises(ConfigurationError, match="--resume"):
        run(small_config(), tmp_path)
    assert (tmp_path / STATE_FILE).is_file()


class _CtrlCAtTableHeader:
    """A console that is interrupted when training prints its table header (before epoch 1)."""

    def print(self, message="", *args, **kwargs):
        if "dev acc" in str(message):
            raise KeyboardInterrupt


def test_a_forced_run_interrupted_before_its_first_epoch_leaves_nothing_to_resume(tmp_path):
    run(small_config(**{"training.max_epochs": 1}), tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train(small_config(), tmp_path, force=True, progress=False, console=_CtrlCAtTableHeader())
    assert not (tmp_path / STATE_FILE).exists() and not (tmp_path / MODEL_FILE).exists()


def test_resume_rejects_a_different_config(tmp_path):
    run(small_config(**{"training.max_epochs": 1}), tmp_path / "run")
    other = tmp_path / "other.cfg"
    small_config(**{"optimizer.learn_rate": 0.1}).to_disk(other)
    with pytest.raises(ConfigurationError, match="differs"):
        run(other, tmp_path / "run", resume=True)


def test_resume_accepts_the_first_command_repeated_with_its_seed_and_overrides(tmp_path):
    given = tmp_path / "given.cfg"
    small_config().to_disk(given)
    run(given, tmp_path / "run", seed=7, overrides={"optimizer.learn_rate": 0.01, "training.max_epochs": 1})
    more = {"optimizer.learn_rate": 0.01, "training.max_epochs": 2}
    assert run(given, tmp_path / "run", resume=True, seed=7, overrides=more)["epoch"] == 2
    with pytest.raises(ConfigurationError, match="differs"):
        run(given, tmp_path / "run", resume=True, seed=8)


def test_unknown_training_setting_is_named(tmp_path):
    with pytest.raises(ConfigurationError, match="max_epoch"):
        run(small_config(**{"training.max_epoch": 2}), tmp_path)


def test_bad_model_section_fails_before_training(tmp_path):
    config = small_config()
    config["model"]["*"]["hidden"]["nO"] = "wide"
    with pytest.raises(ConfigValidationError, match=r"\[model\.\*\.hidden\] nO"):
        run(config, tmp_path)
    assert not (tmp_path / MODEL_FILE).exists()


def test_data_that_is_not_train_and_dev_splits_is_explained(tmp_path):
    from composa import registry

    if not registry.has("datasets", "test_training_flat.v1"):
        registry.datasets.register(
            "test_training_flat.v1", func=lambda: (numpy.zeros((4, 2), "f"), numpy.zeros((4,), "i"))
        )
    config = small_config()
    config["data"] = {"@datasets": "test_training_flat.v1"}
    with pytest.raises(Exception, match=r"\[data\]"):
        run(config, tmp_path)


def test_without_matplotlib_the_plot_is_skipped_with_a_message(tmp_path, monkeypatch):
    from rich.console import Console

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    console = Console(record=True, width=200)
    train(small_config(**{"training.max_epochs": 1}), tmp_path, progress=False, console=console)
    assert "matplotlib is not installed" in console.export_text()
    assert not (tmp_path / "learning_curves.png").exists()
    assert (tmp_path / MODEL_FILE).is_file()
