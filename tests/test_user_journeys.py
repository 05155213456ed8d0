"""A PyTorch user's journeys through composa, and what happens when the input is wrong.

The first tests follow PyTorch's "Building Models" tutorial (build, print, count and inspect
parameters, train, save and load) and an AllenNLP/classy-style config-driven run of the
``composa`` command. The rest feed bad input on purpose: every error must be one of
composa's exception classes, name the layer and say what was expected and what came.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import composa
from composa import (
    Adam,
    CategoricalCrossentropy,
    ComposaError,
    Config,
    Dropout,
    Embed,
    HashEmbed,
    LayerNorm,
    Linear,
    LSTM,
    Model,
    Padded,
    PyTorchWrapper,
    Ragged,
    Relu,
    SerializationError,
    ShapeMismatchError,
    Softmax,
    chain,
    fix_random_seed,
    list2ragged,
    reduce_max,
    reduce_mean,
    registry,
    to_categorical,
    with_array,
    with_padded,
)
from composa.errors import ConfigurationError, IdOutOfRangeError, UnsetValueError

torch = pytest.importorskip("torch")


def count_params(model: Model) -> int:
    """What `sum(p.numel() for p in module.parameters())` is in PyTorch."""
    return sum(
        node.get_param(name).size for node in model.walk() for name in node.param_names if node.has_param(name)
    )


def tiny_model() -> Model:
    """The tutorial's TinyModel: Linear(100, 200) -> ReLU -> Linear(200, 10) -> Softmax."""
    return chain(Relu(200, 100), Softmax(10, 200))


# -- building, printing, counting ----------------------------------------------------------------


def test_tiny_model_prints_its_layers_and_has_as_many_params_as_torch():
    model = tiny_model().initialize()
    torch_model = torch.nn.Sequential(torch.nn.Linear(100, 200), torch.nn.ReLU(), torch.nn.Linear(200, 10))
    assert count_params(model) == sum(p.numel() for p in torch_model.parameters()) == 22_210
    text = str(model)
    assert "relu" in text and "softmax" in text and "22,210 params" in text
    just_one_layer = model.layers[1]
    assert just_one_layer.name == "softmax"
    assert just_one_layer.get_param("W").shape == (10, 200)  # torch's Linear(200, 10).weight shape


def test_printed_param_count_includes_wrapped_torch_modules():
    hidden = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())  # 40 params
    model = chain(PyTorchWrapper(hidden), Softmax(2)).initialize(X=numpy.ones((2, 4), "f"))
    assert "58 params" in str(model).splitlines()[0]


def test_linear_computes_what_torch_linear_computes():
    lin = torch.nn.Linear(3, 2)
    X = numpy.random.uniform(-1, 1, (4, 3)).astype("f")
    model = Linear(2, 3).initialize()
    model.set_param("W", lin.weight.detach().numpy().copy())
    model.set_param("b", lin.bias.detach().numpy().copy())
    expected = lin(torch.from_numpy(X)).detach().numpy()
    numpy.testing.assert_allclose(model.predict(X), expected, rtol=1e-5, atol=1e-6)


def test_layernorm_matches_torch_layernorm_with_the_same_epsilon():
    X = numpy.random.uniform(-2, 2, (5, 4)).astype("f")
    expected = torch.nn.LayerNorm(4, eps=1e-8)(torch.from_numpy(X)).detach().numpy()
    numpy.testing.assert_allclose(LayerNorm(4).initialize().predict(X), expected, rtol=1e-4, atol=1e-5)


def test_dropout_zeroes_and_rescales_in_training_and_is_identity_in_predict():
    fix_random_seed(0)
    X = numpy.ones((200, 10), dtype="f")
    dropout = Dropout(0.4)
    Y, _ = dropout.begin_update(X)
    kept = Y != 0
    assert 0.5 < kept.mean() < 0.7
    numpy.testing.assert_allclose(Y[kept], 1 / 0.6, rtol=1e-6)
    numpy.testing.assert_array_equal(dropout.predict(X), X)


# -- training and saving -------------------------------------------------------------------------

TAG_DATA = [
    ("The dog ate the apple".split(), ["DET", "NN", "V", "DET", "NN"]),
    ("Everybody read that book".split(), ["NN", "V", "DET", "NN"]),
]
TAGS = ["DET", "NN", "V"]


def lstm_tagger(vocab_size: int) -> Model:
    """The tutorial's LSTMTagger: embeddings -> LSTM -> per-token softmax over tags."""
    return chain(with_array(Embed(6, vocab_size)), with_padded(LSTM(6, 6)), with_array(Softmax(len(TAGS))))


def test_lstm_tagger_learns_the_two_tutorial_sentences(tmp_path):
    fix_random_seed(0)
    vocab = {word: i for i, word in enumerate(sorted({w for words, _ in TAG_DATA for w in words}))}
    X = [numpy.asarray([vocab[w] for w in words], dtype="int32") for words, _ in TAG_DATA]
    Y = [to_categorical(numpy.asarray([TAGS.index(t) for t in tags]), n_classes=len(TAGS)) for _, tags in TAG_DATA]
    model = lstm_tagger(len(vocab))
    model.initialize(X=X, Y=Y)
    optimizer = Adam(0.05)
    for _ in range(60):
        guesses, backprop = model.begin_update(X)
        backprop([g - y for g, y in zip(guesses, Y)])
        model.finish_update(optimizer)
    predicted = [[TAGS[i] for i in scores.argmax(axis=1)] for scores in model.predict(X)]
    assert predicted == [tags for _, tags in TAG_DATA]

    model.to_disk(tmp_path / "tagger.bin")
    restored = lstm_tagger(len(vocab)).from_disk(tmp_path / "tagger.bin")
    for a, b in zip(restored.predict(X), model.predict(X)):
        numpy.testing.assert_array_equal(a, b)


def test_a_trained_model_saves_to_bytes_and_loads_into_a_fresh_one():
    X = numpy.random.uniform(0, 1, (16, 100)).astype("f")
    Y = numpy.arange(16) % 10
    model = tiny_model().initialize()
    optimizer, loss_fn = Adam(0.001), CategoricalCrossentropy()
    guesses, backprop = model.begin_update(X)
    backprop(loss_fn.get_grad(guesses, Y))
    model.finish_update(optimizer)
    fresh = tiny_model()  # not initialized: the bytes carry the shapes
    fresh.from_bytes(model.to_bytes())
    numpy.testing.assert_array_equal(fresh.predict(X), model.predict(X))


def test_training_matches_torch_step_for_step_from_the_same_weights():
    """Same weights, same data, Adam and mean cross-entropy: composa and torch agree to float32 noise."""
    torch.manual_seed(0)
    X = numpy.random.default_rng(0).uniform(-1, 1, (16, 6)).astype("f")
    y = numpy.random.default_rng(1).integers(0, 3, 16)
    torch_model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    model = chain(Relu(8, 6), Softmax(3, 8)).initialize()
    for layer, torch_layer in zip(model.layers, (torch_model[0], torch_model[2])):
        layer.set_param("W", torch_layer.weight.detach().numpy().copy())
        layer.set_param("b", torch_layer.bias.detach().numpy().copy())
    optimizer = Adam(0.01, grad_clip=0.0)  # torch does not clip
    torch_optimizer = torch.optim.Adam(torch_model.parameters(), lr=0.01)
    loss_fn = CategoricalCrossentropy()
    for _ in range(5):
        guesses, backprop = model.begin_update(X)
        d_guesses, loss = loss_fn(guesses, y)
        backprop(d_guesses)
        model.finish_update(optimizer)
        torch_optimizer.zero_grad()
        torch_loss = torch.nn.functional.cross_entropy(torch_model(torch.from_numpy(X)), torch.from_numpy(y))
        torch_loss.backward()
        torch_optimizer.step()
        assert loss == pytest.approx(torch_loss.item(), rel=1e-5)
    numpy.testing.assert_allclose(model.layers[1].get_param("W"), torch_model[2].weight.detach().numpy(), atol=1e-5)


# -- the composa command, config-driven (AllenNLP / classy style) -----------------------------------

RUN_CONFIG = """
[data]
@datasets = "labelled_files.v1"
train = "train.jsonl"
dev = "dev.jsonl"

[model]
@layers = "chain.v1"

[model.*.hidden]
@layers = "Relu.v1"
nO = 16

[model.*.output]
@layers = "Softmax.v1"

[optimizer]
@optimizers = "Adam.v1"
learn_rate = 0.02

[loss]
@losses = "CategoricalCrossentropy.v1"

[training]
seed = 0
max_epochs = 8
batch_size = 8
patience = 0
init_sample_size = 8
"""


def composa_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run(
        [sys.executable, "-m", "composa", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def write_blobs(path: Path, n: int, seed: int) -> None:
    """Two well-separated clusters of 4 features, labelled 0 and 1."""
    rng = numpy.random.default_rng(seed)
    with path.open("w") as file:
        for i in range(n):
            label = i % 2
            x = rng.normal(3.0 * label, 0.5, 4).round(3).tolist()
            file.write(json.dumps({"x": x, "y": label}) + "\n")


def test_config_driven_train_evaluate_predict_in_a_subprocess(tmp_path):
    write_blobs(tmp_path / "train.jsonl", 64, seed=0)
    write_blobs(tmp_path / "dev.jsonl", 20, seed=1)
    (tmp_path / "blobs.cfg").write_text(RUN_CONFIG)
    trained = composa_cli("train", "blobs.cfg", "--output", "run", "--no-progress", "--no-plot", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    evaluated = composa_cli("evaluate", "run", "--json", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["accuracy"] >= 0.9
    numpy.save(tmp_path / "rows.npy", numpy.asarray([[0.0] * 4, [3.0] * 4], dtype="f"))
    predicted = composa_cli("predict", "run", "rows.npy", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert predicted.stdout.split() == ["0", "1"]

    model = composa.load(tmp_path / "run")
    assert model.predict(numpy.asarray([[3.0] * 4], dtype="f")).argmax() == 1


@pytest.mark.parametrize(
    "config_edit, args, expected",
    [
        (("Relu.v1", "Reluu.v1"), (), "'Reluu.v1' is not registered"),
        (("nO = 16", "nO = sixteen"), (), "nO"),
        (("", ""), ("--training.batch_sise", "4"), "did you mean 'batch_size'"),
    ],
)
def test_bad_configs_fail_in_one_line_without_a_traceback(tmp_path, config_edit, args, expected):
    write_blobs(tmp_path / "train.jsonl", 8, seed=0)
    write_blobs(tmp_path / "dev.jsonl", 4, seed=1)
    (tmp_path / "bad.cfg").write_text(RUN_CONFIG.replace(*config_edit) if config_edit[0] else RUN_CONFIG)
    result = composa_cli("train", "bad.cfg", "--output", "run", "--no-progress", "--no-plot", *args, cwd=tmp_path)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_a_corrupted_model_file_in_a_run_is_reported_by_the_command(tmp_path):
    write_blobs(tmp_path / "train.jsonl", 16, seed=0)
    write_blobs(tmp_path / "dev.jsonl", 4, seed=1)
    (tmp_path / "blobs.cfg").write_text(RUN_CONFIG.replace("max_epochs = 8", "max_epochs = 1"))
    assert composa_cli("train", "blobs.cfg", "--output", "run", "--no-progress", "--no-plot", cwd=tmp_path).returncode == 0
    model_file = tmp_path / "run" / "model.bin"
    model_file.write_bytes(model_file.read_bytes()[:40])
    result = composa_cli("evaluate", "run", cwd=tmp_path)
    assert result.returncode == 1
    assert "model.bin" in result.stderr and "Traceback" not in result.stderr


USER_SCRIPT = """
import sys
from composa import Model, Relu, chain, registry
from composa.cli import main

@registry.layers("my_project.deep_mlp.v1")
def deep_mlp(width: int, depth: int) -> Model:
    return chain(*[Relu(width) for _ in range(depth)])

sys.exit(main(sys.argv[1:]))
"""


def test_a_model_registered_in_the_users_own_script_trains_through_cli_main(tmp_path):
    """`composa train` cannot import user code; a script that registers its layers and calls main() can."""
    write_blobs(tmp_path / "train.jsonl", 32, seed=0)
    write_blobs(tmp_path / "dev.jsonl", 8, seed=1)
    config = RUN_CONFIG.replace(
        '[model.*.hidden]\n@layers = "Relu.v1"\nnO = 16', '[model.*.hidden]\n@layers = "my_project.deep_mlp.v1"\nwidth = 8\ndepth = 2'
    ).replace("max_epochs = 8", "max_epochs = 2")
    assert "my_project.deep_mlp.v1" in config
    (tmp_path / "mine.cfg").write_text(config)
    (tmp_path / "train_mine.py").write_text(USER_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    result = subprocess.run(
        [sys.executable, "train_mine.py", "train", "mine.cfg", "--output", "run", "--no-progress", "--no-plot"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "my_project.deep_mlp.v1" in (tmp_path / "run" / "config.cfg").read_text()


def test_predicting_on_an_empty_csv_says_the_file_is_empty(tmp_path):
    write_blobs(tmp_path / "train.jsonl", 16, seed=0)
    write_blobs(tmp_path / "dev.jsonl", 4, seed=1)
    (tmp_path / "blobs.cfg").write_text(RUN_CONFIG.replace("max_epochs = 8", "max_epochs = 1"))
    assert composa_cli("train", "blobs.cfg", "--output", "run", "--no-progress", "--no-plot", cwd=tmp_path).returncode == 0
    (tmp_path / "empty.csv").write_text("")
    result = composa_cli("predict", "run", "empty.csv", cwd=tmp_path)
    assert result.returncode == 1
    assert "Warning" not in result.stderr
    assert "has 1" not in result.stderr and "empty.csv" in result.stderr


# -- bad input: every error is composa's, names the layer, says expected vs actual ------------------


def trained_classifier() -> Model:
    X = numpy.random.uniform(-1, 1, (4, 5)).astype("f")
    return chain(Relu(3), Softmax(2)).initialize(X=X)


@pytest.mark.parametrize(
    "build, X, error, fragments",
    [
        (trained_classifier, numpy.zeros((4, 6), "f"), ShapeMismatchError, ["chain>relu[0]", "nI=5", "(4, 6)"]),
        (trained_classifier, numpy.zeros((5,), "f"), ShapeMismatchError, ["relu", "nI=5", "(5,)"]),
        (trained_classifier, [[0.0] * 5], ShapeMismatchError, ["relu", "list"]),
        (lambda: Relu(3), numpy.zeros((4, 5), "f"), UnsetValueError, ["relu", "initialize"]),
        (lambda: Embed(4, 10).initialize(), numpy.asarray([1, 10]), IdOutOfRangeError, ["embed", "nV=10"]),
        (lambda: Embed(4, 10).initialize(), numpy.asarray([1.5]), ShapeMismatchError, ["embed", "integer", "float64"]),
        (lambda: HashEmbed(4, 10).initialize(), ["a", "b"], ShapeMismatchError, ["hashembed", "ids"]),
        (lambda: reduce_mean(), numpy.zeros((5, 2), "f"), ShapeMismatchError, ["reduce_mean", "Ragged", "(5, 2)"]),
        (
            lambda: reduce_max(),
            Ragged(numpy.ones((2, 2), "f"), numpy.asarray([0, 2], "i")),
            ShapeMismatchError,
            ["reduce_max", "empty"],
        ),
        (
            lambda: with_padded(LSTM(4, 3)).initialize(),
            [numpy.zeros((2, 4), "f")],
            ShapeMismatchError,
            ["with_padded>lstm", "nI=3"],
        ),
    ],
)
def test_wrong_input_is_a_clear_error_naming_the_layer(build, X, error, fragments):
    model = build()
    with pytest.raises(error) as caught:
        model.predict(X)
    assert all(fragment in str(caught.value) for fragment in fragments), str(caught.value)
    assert isinstance(caught.value, (ValueError, KeyError, TypeError))


@settings(max_examples=25, deadline=None)
@given(n_in=st.integers(1, 8), wrong=st.integers(1, 8), n_rows=st.integers(0, 4), depth=st.integers(1, 3))
def test_any_wrong_width_names_the_first_layer_and_both_widths(n_in, wrong, n_rows, depth):
    if wrong == n_in:
        wrong += 1
    model = chain(*[Relu(4) for _ in range(depth)], Softmax(2)).initialize(X=numpy.zeros((1, n_in), "f"))
    with pytest.raises(ShapeMismatchError) as caught:
        model.predict(numpy.zeros((n_rows, wrong), "f"))
    message = str(caught.value)
    assert message.startswith("chain>") and "relu[0]" in message
    assert f"nI={n_in}" in message and f"({n_rows}, {wrong})" in message


def test_a_gradient_of_the_wrong_shape_names_the_layer():
    model = trained_classifier()
    _, backprop = model.begin_update(numpy.zeros((4, 5), "f"))
    with pytest.raises(ShapeMismatchError, match=r"chain>softmax\[1\].*\(4, 2\)"):
        backprop(numpy.zeros((4, 3), "f"))


@pytest.mark.parametrize(
    "constructor, fragment",
    [
        (lambda: Dropout(2.0), "dropout rate"),
        (lambda: Relu(-3, 5).initialize(), "non-negative"),
        (lambda: with_padded(LSTM(3, 5, bi=True)).initialize(), "even nO"),
    ],
)
def test_impossible_hyperparameters_are_configuration_errors(constructor, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        constructor()


@pytest.mark.parametrize(
    "model, sample, X",
    [
        (chain(Relu(3), Softmax(2)), numpy.ones((2, 5), "f"), numpy.zeros((0, 5), "f")),
        (with_padded(LSTM(4, 5)), [numpy.ones((2, 5), "f")], []),
        (HashEmbed(3, 10, column=0), numpy.ones((2, 2), "uint64"), numpy.zeros((0, 2), "uint64")),
        (reduce_mean(), None, Ragged(numpy.zeros((0, 5), "f"), numpy.zeros((0,), "i"))),
    ],
)
def test_an_empty_batch_goes_forward_and_back(model, sample, X):
    model.initialize(X=sample)
    Y, backprop = model.begin_update(X)
    assert len(Y) == 0
    backprop(Y)


def test_an_empty_list_of_documents_through_a_pooling_classifier():
    model = chain(with_array(Relu(3)), list2ragged(), reduce_mean(), Softmax(2))
    model.initialize(X=[numpy.ones((2, 5), "f")])
    assert model.predict([]).shape == (0, 2)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda data: b"",
        lambda data: b"garbage",
        lambda data: data[: len(data) // 2],
        lambda data: data + b"\x00",
    ],
)
def test_corrupted_bytes_are_a_serialization_error_and_change_nothing(corrupt):
    model = trained_classifier()
    before = model.layers[0].get_param("W").copy()
    with pytest.raises(SerializationError):
        model.from_bytes(corrupt(model.to_bytes()))
    numpy.testing.assert_array_equal(model.layers[0].get_param("W"), before)


def test_bytes_of_another_architecture_are_refused_with_the_node_and_dim():
    saved = trained_classifier().to_bytes()
    with pytest.raises(SerializationError, match="nO"):
        chain(Relu(3), Softmax(4)).initialize(X=numpy.zeros((1, 5), "f")).from_bytes(saved)
    with pytest.raises(SerializationError, match="relu>>softmax"):
        chain(Linear(3), Softmax(2)).from_bytes(saved)


def test_a_flipped_bit_in_the_weights_is_detected():
    """As torch.save's zip CRC-32 would: a damaged file is refused, never loaded as other weights."""
    model = trained_classifier()
    data = bytearray(model.to_bytes())
    weights = model.layers[0].get_param("W").tobytes()
    data[bytes(data).find(weights) + 2] ^= 0x40
    with pytest.raises(SerializationError, match="corrupt"):
        trained_classifier().from_bytes(bytes(data))


def test_loading_a_missing_file_says_which_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        trained_classifier().from_disk(tmp_path / "missing.bin")


def test_an_unknown_layer_name_in_a_config_suggests_close_names():
    config = Config().from_str('[model]\n@layers = "Reluu.v1"\nnO = 3\n')
    with pytest.raises(ValueError, match="did you mean 'Relu.v1'"):
        registry.resolve(config)


def test_a_misspelled_argument_in_a_config_names_the_section_and_the_fix():
    config = Config().from_str('[model]\n@layers = "Relu.v1"\nnOO = 3\n')
    with pytest.raises(ValueError, match=r"\[model\] nOO.*did you mean 'nO'"):
        registry.resolve(config)


def test_loss_with_labels_out_of_range_names_the_loss():
    with pytest.raises(ComposaError, match=r"CategoricalCrossentropy.*\[0, 3\)"):
        CategoricalCrossentropy()(numpy.full((2, 3), 1 / 3, "f"), numpy.asarray([0, 3]))


@pytest.mark.skipif(composa.has_cupy, reason="cupy is installed")
def test_to_gpu_without_cupy_is_a_clear_error():
    with pytest.raises(ComposaError, match="to_gpu"):
        trained_classifier().to_gpu(0)


@pytest.mark.parametrize(
    "model",
    [list2ragged(), with_array(Relu(2, 5)), with_padded(LSTM(2, 5))],
    ids=["list2ragged", "with_array", "with_padded"],
)
def test_sequences_of_different_widths_are_a_clear_error(model):
    model.initialize()
    with pytest.raises(ShapeMismatchError, match=model.name.split("(")[0]):
        model.predict([numpy.ones((4, 5), "f"), numpy.ones((2, 3), "f")])


def _wrong_gradient_for(name: str):
    """A gradient that does not fit the forward output of the conversion layer `name`."""
    one_sequence_too_short = numpy.ones((3, 5), "f")
    return {
        "list2array": one_sequence_too_short,
        "list2ragged": Ragged(one_sequence_too_short, numpy.asarray([3], "i")),
        "ragged2list": [numpy.ones((2, 5), "f")],
        "list2padded": Padded(
            numpy.ones((4, 1, 5), "f"), numpy.ones(4, "i"), numpy.asarray([4], "i"), numpy.asarray([0], "i")
        ),
    }[name]


@pytest.mark.parametrize("name", ["list2array", "list2ragged", "ragged2list", "list2padded"])
def test_conversion_layers_check_the_gradient_they_get(name):
    model = getattr(composa, name)()
    X = [numpy.ones((4, 5), "f"), numpy.ones((2, 5), "f")]
    if name == "ragged2list":
        X = Ragged(numpy.ones((4, 5), "f"), numpy.asarray([1, 3], "i"))
    _, backprop = model.begin_update(X)
    with pytest.raises(ShapeMismatchError, match=name):
        backprop(_wrong_gradient_for(name))


def test_ragged_refuses_negative_lengths():
    with pytest.raises(ShapeMismatchError, match="Ragged"):
        Ragged(numpy.ones((2, 2), "f"), numpy.asarray([3, -1], "i"))


def test_remap_ids_on_unhashable_items_names_the_layer():
    with pytest.raises(ComposaError, match="remap_ids"):
        composa.remap_ids({"a": 1}).predict([["a"]])
