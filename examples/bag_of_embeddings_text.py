"""A bag-of-embeddings text classifier on the only real text that ships with our dependencies.

    .venv/bin/python examples/bag_of_embeddings_text.py [--epochs 10]

No labelled text corpus is installed with composa's dependencies (scikit-learn's
``fetch_20newsgroups`` downloads, so it is not used). scikit-learn does ship the
descriptions of its 14 datasets as ``.rst`` files, so the task here is: given 12
consecutive words, which dataset description do they come from? About 440 snippets;
a fifth are held out. Chance is 1/14 and always guessing the largest class gives
about 26%; the model reaches about 64% after 10 epochs.

The model hashes each word (``strings2arrays``), looks the hashes up in a
``HashEmbed`` table, averages each snippet's vectors (``list2ragged >> reduce_mean``)
and classifies the average with ``Softmax``.
"""
import argparse
import re
from pathlib import Path
from typing import List, Tuple

import numpy
import sklearn

from composa import (
    Adam,
    CategoricalCrossentropy,
    HashEmbed,
    Model,
    Softmax,
    chain,
    fix_random_seed,
    list2ragged,
    reduce_mean,
    strings2arrays,
    with_array,
)

SNIPPET_WORDS = 12


def load_snippets() -> Tuple[List[List[str]], numpy.ndarray, List[str]]:
    """12-word snippets of scikit-learn's dataset descriptions, labelled by description."""
    folder = Path(sklearn.__file__).parent / "datasets" / "descr"
    snippets, labels, names = [], [], []
    for path in sorted(folder.glob("*.rst")):
        words = re.findall(r"[a-z]+", path.read_text(encoding="utf8").lower())
        for start in range(0, len(words) - SNIPPET_WORDS // 2, SNIPPET_WORDS):
            snippets.append(words[start : start + SNIPPET_WORDS])
            labels.append(len(names))
        names.append(path.stem)
    return snippets, numpy.asarray(labels, dtype="int32"), names


def main(n_epochs: int = 10, seed: int = 0) -> float:
    fix_random_seed(seed)
    snippets, labels, names = load_snippets()
    order = numpy.random.permutation(len(snippets))
    snippets, labels = [snippets[i] for i in order], labels[order]
    n_test = len(snippets) // 5
    train_X, train_y = snippets[n_test:], labels[n_test:]
    test_X, test_y = snippets[:n_test], labels[:n_test]
    majority = float((test_y == numpy.bincount(train_y).argmax()).mean())
    print(f"{len(snippets)} snippets of {len(names)} descriptions; majority-class accuracy {majority:.3f}")

    with Model.define_operators({">>": chain}):
        model = (
            strings2arrays()
            >> with_array(HashEmbed(64, 4000, column=0))
            >> list2ragged()
            >> reduce_mean()
            >> Softmax(len(names))
        )
    model.initialize(X=train_X[:5], Y=numpy.zeros((5, len(names)), dtype="float32"))
    optimizer = Adam(0.01)
    loss_fn = CategoricalCrossentropy()
    for epoch in range(n_epochs):
        for X, y in model.ops.multibatch(16, train_X, train_y, shuffle=True):
            guesses, backprop = model.begin_update(X)
            d_guesses, _ = loss_fn(guesses, y)
            backprop(d_guesses)
            model.finish_update(optimizer)
            optimizer.step_schedules()
        with model.use_params(optimizer.averages):
            accuracy = float((model.predict(test_X).argmax(axis=1) == test_y).mean())
        print(f"epoch {epoch + 1:2d}  held-out accuracy {accuracy:.3f}")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.epochs, args.seed)
