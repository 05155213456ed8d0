"""End to end with composa's training pieces: an MLP learns scikit-learn's digits, reproducibly,
and a run resumed from model + optimizer bytes matches the uninterrupted run byte for byte.

(``tests/test_training.py`` tests the ``composa.training`` loop of the command line.)
"""
import runpy
from pathlib import Path

import numpy
import pytest

from composa import (
    Adam,
    CategoricalCrossentropy,
    Dropout,
    Model,
    Relu,
    Softmax,
    chain,
    compounding,
    fix_random_seed,
    slanted_triangular,
)
from composa.datasets import digits as load_digits

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(scope="module")
def digits():
    """(train_X, train_y), (test_X, test_y): 1438 / 359 rows of 64 pixels scaled to [0, 1]."""
    return load_digits(dev_fraction=0.2)


def make_mlp(width=64, dropout=0.1):
    with Model.define_operators({">>": chain}):
        return Relu(width) >> Dropout(dropout) >> Relu(width) >> Dropout(dropout) >> Softmax()


def train(model, optimizer, train_data, n_epochs):
    """Shuffled minibatches growing from 16 to 64 rows, one optimizer step each."""
    X, y = train_data
    loss_fn = CategoricalCrossentropy()
    batch_sizes = compounding(16.0, 64.0, 1.01)
    for _ in range(n_epochs):
        for X_batch, y_batch in model.ops.multibatch(batch_sizes, X, y, shuffle=True):
            guesses, backprop = model.begin_update(X_batch)
            d_guesses, _ = loss_fn(guesses, y_batch)
            backprop(d_guesses)
            model.finish_update(optimizer)
            optimizer.step_schedules()


def accuracy(model, data):
    X, y = data
    return float((model.predict(X).argmax(axis=1) == y).mean())


def fresh_run(train_data, seed, n_epochs):
    fix_random_seed(seed)
    model = make_mlp().initialize(X=train_data[0][:5], Y=numpy.zeros((5, 10), dtype="f"))
    optimizer = Adam(slanted_triangular(0.01, 300))
    train(model, optimizer, train_data, n_epochs)
    return model, optimizer


def test_mlp_learns_digits_to_95_percent_held_out_accuracy(digits):
    train_data, test_data = digits
    model, optimizer = fresh_run(train_data, seed=0, n_epochs=8)
    with model.use_params(optimizer.averages):
        averaged = accuracy(model, test_data)
    assert accuracy(model, test_data) >= 0.95
    assert averaged >= 0.95


def test_same_seed_gives_byte_identical_models(digits):
    train_data, _ = digits
    first, _ = fresh_run(train_data, seed=7, n_epochs=1)
    second, _ = fresh_run(train_data, seed=7, n_epochs=1)
    other, _ = fresh_run(train_data, seed=8, n_epochs=1)
    assert first.to_bytes() == second.to_bytes()
    assert first.to_bytes() != other.to_bytes()


def test_resumed_training_matches_uninterrupted_training(digits):
    train_data, _ = digits
    fix_random_seed(1)
    model = make_mlp().initialize(X=train_data[0][:5], Y=numpy.zeros((5, 10), dtype="f"))
    optimizer = Adam(slanted_triangular(0.01, 300), L2=1e-5)
    train(model, optimizer, train_data, n_epochs=1)
    saved_model, saved_optimizer = model.to_bytes(), optimizer.to_bytes(model=model)
    rng_state = numpy.random.get_state()  # shuffling and dropout draw from numpy's generator

    train(model, optimizer, train_data, n_epochs=1)

    restored = make_mlp().initialize(X=train_data[0][:5], Y=numpy.zeros((5, 10), dtype="f"))
    restored.from_bytes(saved_model)
    restored_optimizer = Adam(slanted_triangular(0.01, 300), L2=1e-5).from_bytes(saved_optimizer, model=restored)
    numpy.random.set_state(rng_state)
    train(restored, restored_optimizer, train_data, n_epochs=1)

    assert restored.to_bytes() == model.to_bytes()
    assert restored_optimizer.to_bytes(model=restored) == optimizer.to_bytes(model=model)


def test_resuming_without_the_optimizer_state_would_not_match(digits):
    """The control for the test above: the saved moments, counts and step really matter."""
    train_data, _ = digits
    fix_random_seed(1)
    model = make_mlp().initialize(X=train_data[0][:5], Y=numpy.zeros((5, 10), dtype="f"))
    optimizer = Adam(slanted_triangular(0.01, 300))
    train(model, optimizer, train_data, n_epochs=1)
    saved_model = model.to_bytes()
    rng_state = numpy.random.get_state()
    train(model, optimizer, train_data, n_epochs=1)

    restored = make_mlp().initialize(X=train_data[0][:5], Y=numpy.zeros((5, 10), dtype="f")).from_bytes(saved_model)
    numpy.random.set_state(rng_state)
    train(restored, Adam(slanted_triangular(0.01, 300)), train_data, n_epochs=1)
    assert restored.to_bytes() != model.to_bytes()


@pytest.mark.parametrize(
    "script,n_epochs,at_least",
    [("mlp_digits.py", 1, 0.85), ("bag_of_embeddings_text.py", 3, 0.4)],
)
def test_examples_run_and_learn(script, n_epochs, at_least, capsys):
    example = runpy.run_path(str(EXAMPLES / script), run_name="example")
    assert example["main"](n_epochs) >= at_least
    assert "held-out accuracy" in capsys.readouterr().out
