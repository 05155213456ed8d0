"""Text models end to end, as an AllenNLP or classy user runs them: train from a config, evaluate, predict, resume."""
import json
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
from rich.console import Console

import composa
from composa import ArchiveError, ComposaError
from composa.callbacks import EarlyStopping
from composa.predictor import Predictor
from composa.readers import bundled_data_path
from composa.training import bundled_config_path, dry_run, train

REVIEWS = bundled_config_path("reviews")
QUICK = {"training.max_epochs": 2, "callbacks.stop.patience": 1}


def composa_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "composa", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def reviews_run(tmp_path_factory):
    """The bundled reviews classifier trained for two epochs (a few seconds)."""
    output = tmp_path_factory.mktemp("reviews")
    summary = train(REVIEWS, output, overrides=dict(QUICK), progress=False, plot=False, console=_quiet())
    return output, summary


def _quiet():
    return Console(quiet=True)


def test_training_on_text_writes_the_vocabulary_and_the_configured_metrics(reviews_run):
    output, summary = reviews_run
    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    assert {"dev_accuracy", "dev_loss", "dev_macro_f1", "train_accuracy"} <= set(rows[-1])
    assert summary["best_score"] == max(row["dev_macro_f1"] for row in rows)
    meta = json.loads((output / "meta.json").read_text())
    assert meta["task"] == "text_classification" and sorted(meta["labels"]) == ["negative", "neutral", "positive"]
    vocab = composa.text.Vocabulary.from_disk(output / "vocab.json")
    assert meta["vocab"]["tokens"] == vocab.size("tokens") > 100


def test_two_epochs_already_beat_chance_by_far(reviews_run):
    _, summary = reviews_run
    assert summary["dev_accuracy"] > 0.6  # three balanced classes: chance is 1/3


def test_the_predictor_of_a_run_reads_raw_text_and_answers_with_labels(reviews_run):
    output, _ = reviews_run
    predictor = Predictor.from_archive(output)
    answers = predictor.predict_texts(["The zipper is really annoying.", "", "Ünïcödé wörds nobody saw"])
    assert len(answers) == 3
    for answer in answers:
        assert answer["label"] in predictor.labels
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert max(answer["probabilities"], key=answer["probabilities"].get) == answer["label"]


def test_composa_load_and_the_predictor_give_the_same_probabilities(reviews_run):
    output, _ = reviews_run
    predictor = Predictor.from_archive(output)
    model = composa.load(output)
    ids = [predictor.vocab.indices("tokens", predictor.parse("I love this phone").tokens)]
    expected = model.predict(ids)[0]
    answer = predictor.predict_texts(["I love this phone"])[0]["probabilities"]
    assert [answer[label] for label in predictor.labels] == pytest.approx(expected.tolist(), abs=1e-5)


def test_composa_predict_reads_a_text_file_line_by_line(reviews_run, tmp_path):
    output, _ = reviews_run
    texts = tmp_path / "texts.txt"
    texts.write_text("I love this great phone\nThe zipper is really annoying.\n", encoding="utf8")
    result = composa_cli("predict", str(output), str(texts), "--probabilities")
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == 2 and all(set(answer["probabilities"]) == {"negative", "neutral", "positive"} for answer in answers)


def test_composa_evaluate_prints_the_metrics_and_draws_the_confusion_matrix(reviews_run):
    output, _ = reviews_run
    test_data = str(bundled_data_path("reviews") / "test.jsonl")
    shown = composa_cli("evaluate", str(output), test_data)
    assert shown.returncode == 0, shown.stderr
    assert "macro f1" in shown.stdout and "per class" in shown.stdout
    assert (output / "confusion_matrix.png").stat().st_size > 1000
    metrics = json.loads(composa_cli("evaluate", str(output), test_data, "--json").stdout)
    assert metrics["examples"] == 600 and 0.0 <= metrics["macro_f1"] <= 1.0


def test_a_label_the_model_never_saw_is_a_clear_error_at_evaluation(reviews_run, tmp_path):
    output, _ = reviews_run
    data = tmp_path / "odd.jsonl"
    data.write_text('{"text": "fine", "label": "sarcastic"}\n', encoding="utf8")
    result = composa_cli("evaluate", str(output), str(data))
    assert result.returncode == 1
    assert "'sarcastic' is not in the vocabulary's 'labels'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_dry_run_builds_the_vocabulary_and_trains_nothing(tmp_path, capsys):
    stats = dry_run(REVIEWS, console=_quiet())
    assert stats["train"]["examples"] == 2400 and stats["dev"]["examples"] == 600
    assert stats["vocab"]["labels"] == 3 and stats["parameters"] > 0
    assert 0.0 <= stats["dev_oov_rate"] < 0.05


def test_a_resumed_text_run_ends_with_the_weights_of_an_uninterrupted_one(reviews_run, tmp_path):
    output, _ = reviews_run
    resumed = tmp_path / "resumed"
    train(REVIEWS, resumed, overrides={**QUICK, "training.max_epochs": 1}, progress=False, plot=False, console=_quiet())
    train(REVIEWS, resumed, overrides=dict(QUICK), resume=True, progress=False, plot=False, console=_quiet())
    assert composa.load(resumed).to_bytes() == composa.load(output).to_bytes()


def test_early_stopping_watches_any_metric_of_the_epoch_row():
    stop = EarlyStopping(monitor="dev_loss", patience=2)
    history = [{"epoch": 1, "dev_loss": 0.5}, {"epoch": 2, "dev_loss": 0.6}, {"epoch": 3, "dev_loss": 0.7}]
    assert not stop.on_epoch_end(history[1], history[:2])
    assert stop.on_epoch_end(history[2], history)  # lower is better for a loss: best was epoch 1


CUSTOM_LAYER = '''
from composa import registry, reduce_mean


@registry.layers("archived_mean.v1")
def archived_mean():
    return reduce_mean()
'''


def test_archived_code_is_imported_only_when_trusted(tmp_path):
    code = tmp_path / "my_layers.py"
    code.write_text(CUSTOM_LAYER)
    config = tmp_path / "custom.cfg"
    config.write_text(REVIEWS.read_text().replace('@layers = "reduce_mean.v1"', '@layers = "archived_mean.v1"'))
    output = tmp_path / "run"
    trained = composa_cli("train", str(config), "--output", str(output), "--code", str(code), "--no-progress",
                          "--no-plot", "--training.max_epochs", "1")
    assert trained.returncode == 0, trained.stderr
    code.unlink()  # the run directory carries its own copy
    texts = tmp_path / "texts.txt"
    texts.write_text("great phone\n")
    refused = composa_cli("predict", str(output), str(texts), cwd=tmp_path)
    assert refused.returncode == 1
    assert "archived_mean.v1" in refused.stderr and "--trust-code" in refused.stderr
    trusted = composa_cli("predict", str(output), str(texts), "--trust-code", cwd=tmp_path)
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.strip() in ("negative", "neutral", "positive")
    with pytest.raises(ArchiveError, match="--trust-code"):
        composa.load(output)


TAGGED = "John B-PER\nSmith I-PER\nruns O\n\nMary B-PER\nsings O\n\nthe O\ndog O\nbarks O\n\n"

TAGGER = '''
[data]
@datasets = "text_files.v1"
train = "{train}"
dev = "{dev}"

[data.reader]
@readers = "tagging.v1"

[data.tokenizer]
@tokenizers = "whitespace.v1"

[model]
@layers = "with_array.v1"

[model.layer]
@layers = "chain.v1"

[model.layer.*.embed]
@layers = "Embed.v1"
nO = 16

[model.layer.*.embed.nV]
@vocab = "size.v1"
namespace = "tokens"

[model.layer.*.output]
@layers = "Softmax.v1"

[model.layer.*.output.nO]
@vocab = "size.v1"
namespace = "labels"

[optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.05

[metrics]

[metrics.spans]
@metrics = "span_f1.v1"

[training]
max_epochs = 30
batch_size = 2
score = "dev_span_f1"
'''


def test_a_tagger_trains_from_conll_files_and_tags_new_sentences(tmp_path):
    train_file = tmp_path / "train.conll"
    train_file.write_text(TAGGED * 4)
    config = tmp_path / "tagger.cfg"
    config.write_text(TAGGER.format(train=train_file, dev=train_file))
    summary = train(config, tmp_path / "run", progress=False, plot=False, console=_quiet())
    assert summary["best_score"] == pytest.approx(1.0)
    answer = Predictor.from_archive(tmp_path / "run").predict([Predictor.from_archive(tmp_path / "run").parse({"tokens": ["Mary", "runs"]})])[0]
    assert answer["tags"] == ["B-PER", "O"]


def test_a_missing_data_file_names_the_config_section(tmp_path):
    config = tmp_path / "tagger.cfg"
    config.write_text(TAGGER.format(train=tmp_path / "nope.conll", dev=tmp_path / "nope.conll"))
    with pytest.raises(ComposaError, match=r"\[data\].*DataFileError: data file .*nope.conll does not exist"):
        train(config, tmp_path / "run", progress=False, plot=False, console=_quiet())


def test_feature_row_runs_keep_working_with_the_predictor(tmp_path):
    output = tmp_path / "digits"
    train(None, output, overrides={"training.max_epochs": 1}, progress=False, plot=False, console=_quiet())
    predictor = Predictor.from_archive(output)
    answers = predictor.predict([numpy.zeros(64, dtype="float32")])
    assert 0 <= answers[0]["label"] < 10 and len(answers[0]["probabilities"]) == 10


def test_a_text_run_on_two_processes_matches_one_process(tmp_path):
    pytest.importorskip("torch")
    flags = ["--no-progress", "--no-plot", "--training.max_epochs", "1", "--model.*.hidden.dropout", "0"]
    one = composa_cli("train", "reviews", "--output", str(tmp_path / "one"), *flags)
    two = composa_cli("train", "reviews", "--output", str(tmp_path / "two"), "--nproc", "2", *flags)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    rows = [json.loads((tmp_path / name / "metrics.jsonl").read_text()) for name in ("one", "two")]
    for key in ("loss", "train_accuracy", "dev_accuracy", "dev_macro_f1"):
        assert rows[1][key] == pytest.approx(rows[0][key], abs=1e-5)
