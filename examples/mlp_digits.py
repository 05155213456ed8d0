"""Train a small MLP on scikit-learn's bundled 8x8 digits and print its held-out accuracy.

    .venv/bin/python examples/mlp_digits.py [--epochs 10] [--seed 0]

Everything is local: the digits ship inside scikit-learn (no download), and
``composa.datasets.digits`` scales and splits them. The script shows the training
pieces working together: operators (``>>``), Dropout, ``ops.multibatch`` with a
growing batch-size schedule, Adam with a learning-rate schedule,
``CategoricalCrossentropy``, parameter averaging and saving a checkpoint (model +
optimizer state) that a later run could resume from.
"""
import argparse
import tempfile
from pathlib import Path

import numpy

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
from composa.datasets import digits


def main(n_epochs: int = 10, seed: int = 0) -> float:
    fix_random_seed(seed)
    (train_X, train_y), (test_X, test_y) = digits(dev_fraction=0.2)
    with Model.define_operators({">>": chain}):
        model = Relu(64) >> Dropout(0.1) >> Relu(64) >> Dropout(0.1) >> Softmax()
    model.initialize(X=train_X[:5], Y=numpy.zeros((5, 10), dtype="float32"))
    n_steps = n_epochs * len(train_X) // 32
    optimizer = Adam(slanted_triangular(0.01, n_steps))
    loss_fn = CategoricalCrossentropy()
    for epoch in range(n_epochs):
        total_loss = 0.0
        batches = model.ops.multibatch(compounding(16.0, 64.0, 1.01), train_X, train_y, shuffle=True)
        for X, y in batches:
            guesses, backprop = model.begin_update(X)
            d_guesses, loss = loss_fn(guesses, y)
            backprop(d_guesses)
            model.finish_update(optimizer)
            optimizer.step_schedules()
            total_loss += loss * len(y)
        with model.use_params(optimizer.averages):
            accuracy = float((model.predict(test_X).argmax(axis=1) == test_y).mean())
        optimizer.last_score = accuracy
        print(f"epoch {epoch + 1:2d}  loss {total_loss / len(train_X):.4f}  held-out accuracy {accuracy:.3f}")
    with tempfile.TemporaryDirectory() as folder:
        model.to_disk(Path(folder) / "model.bin")
        optimizer.to_disk(Path(folder) / "optimizer.bin", model=model)  # resume: from_disk(..., model=model)
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.epochs, args.seed)
