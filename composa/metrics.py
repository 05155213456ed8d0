"""Registered metrics: what ``composa train`` reports per epoch and ``composa evaluate`` prints.

A metric is an object called with the gold class ids, the predicted probabilities and the
label names, and returning a dict of results::

    metric(gold, probabilities, labels=["neg", "pos"], lengths=None) -> {"macro_f1": 0.91, ...}

`gold` is an Ints1d (one id per example, or per token for tagging, flattened),
`probabilities` a Floats2d (rows, n_labels); `lengths` gives the tokens per sentence for
tagging, so span metrics can find sentence ends. Scalar results appear in the epoch table
as ``dev_<name>`` (and can be the ``[training] score``); nested ones (per-class scores, the
confusion matrix) go to ``metrics.jsonl`` and to ``composa evaluate``.

In a config::

    [metrics.f1]
    @metrics = "f1.v1"
    average = "macro"
"""
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import numpy

from .config import registry
from .errors import ConfigurationError, ShapeMismatchError

__all__ = [
    "Accuracy",
    "PrecisionRecallF1",
    "ConfusionMatrix",
    "TokenAccuracy",
    "SpanF1",
    "accuracy_metric",
    "f1_metric",
    "confusion_matrix_metric",
    "token_accuracy_metric",
    "span_f1_metric",
    "compute_metrics",
    "default_metrics",
    "plot_confusion_matrix",
    "spans",
]

AVERAGES = ("macro", "micro", "per_class")


class Accuracy:
    """Fraction of examples whose highest-probability label is the gold one."""

    name = "accuracy"

    def __call__(self, gold: Any, probabilities: Any, *, labels: Sequence[str], lengths: Any = None) -> Dict[str, Any]:
        gold, guess = _checked(gold, probabilities, labels)
        return {self.name: float((guess == gold).mean()) if len(gold) else 0.0}


class TokenAccuracy(Accuracy):
    """Fraction of tokens tagged correctly (accuracy over the flattened tokens)."""

    name = "token_accuracy"


class PrecisionRecallF1:
    """Precision, recall and F1: macro (mean over labels), micro (over all decisions) or per class."""

    def __init__(self, average: str = "macro", ignore: Sequence[str] = ()) -> None:
        if average not in AVERAGES:
            raise ConfigurationError(f"f1.v1: average must be one of {list(AVERAGES)}, got {average!r}")
        self.average = average
        self.ignore = list(ignore)

    def __call__(self, gold: Any, probabilities: Any, *, labels: Sequence[str], lengths: Any = None) -> Dict[str, Any]:
        gold, guess = _checked(gold, probabilities, labels)
        kept = [i for i, label in enumerate(labels) if label not in self.ignore]
        true_pos, pred_pos, gold_pos = _label_counts(gold, guess, len(labels))
        if self.average == "micro":
            precision, recall, f1 = _prf(true_pos[kept].sum(), pred_pos[kept].sum(), gold_pos[kept].sum())
            return {"micro_precision": precision, "micro_recall": recall, "micro_f1": f1}
        per_class = {
            labels[i]: dict(zip(("precision", "recall", "f1"), _prf(true_pos[i], pred_pos[i], gold_pos[i])),
                            support=int(gold_pos[i]))
            for i in kept
        }
        if self.average == "per_class":
            return {"per_class": per_class}
        # Macro: the mean over the labels that occur in the gold data or the predictions.
        present = [scores for i, scores in zip(kept, per_class.values()) if gold_pos[i] or pred_pos[i]]
        means = [float(numpy.mean([s[key] for s in present])) if present else 0.0 for key in ("precision", "recall", "f1")]
        return {"macro_precision": means[0], "macro_recall": means[1], "macro_f1": means[2]}


class ConfusionMatrix:
    """Counts of (gold label, predicted label): row = gold, column = predicted."""

    def __call__(self, gold: Any, probabilities: Any, *, labels: Sequence[str], lengths: Any = None) -> Dict[str, Any]:
        gold, guess = _checked(gold, probabilities, labels)
        counts = numpy.zeros((len(labels), len(labels)), dtype="int64")
        numpy.add.at(counts, (gold, guess), 1)
        return {"confusion_matrix": {"labels": list(labels), "counts": counts.tolist()}}


class SpanF1:
    """Precision, recall and F1 of labelled spans decoded from BIO (IOB2) or BIOUL/BIOES tags."""

    def __call__(self, gold: Any, probabilities: Any, *, labels: Sequence[str], lengths: Any = None) -> Dict[str, Any]:
        gold, guess = _checked(gold, probabilities, labels)
        lengths = numpy.asarray([len(gold)] if lengths is None else lengths, dtype="int64")
        if int(lengths.sum()) != len(gold):
            raise ShapeMismatchError(f"span_f1.v1: lengths add up to {int(lengths.sum())}, but there are {len(gold)} tags")
        names = numpy.asarray(labels, dtype=object)
        gold_spans: Set[Tuple[int, int, int, str]] = set()
        guess_spans: Set[Tuple[int, int, int, str]] = set()
        start = 0
        for sentence, length in enumerate(lengths.tolist()):
            window = slice(start, start + length)
            gold_spans.update((sentence,) + span for span in spans(names[gold[window]].tolist()))
            guess_spans.update((sentence,) + span for span in spans(names[guess[window]].tolist()))
            start += length
        precision, recall, f1 = _prf(len(gold_spans & guess_spans), len(guess_spans), len(gold_spans))
        return {"span_precision": precision, "span_recall": recall, "span_f1": f1}


def spans(tags: Sequence[str]) -> List[Tuple[int, int, str]]:
    """Labelled spans ``(start, end, label)`` (end exclusive) in BIO or BIOUL tags, read as conlleval does.

    An I- that does not continue a span of its label starts one; O and unprefixed tags end spans.
    """
    found: List[Tuple[int, int, str]] = []
    start: Optional[int] = None
    current = ""
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, label = tag.partition("-") if "-" in tag else ("O", "", "")
        continues = prefix in ("I", "L", "E") and start is not None and label == current
        if start is not None and not continues:
            found.append((start, i, current))
            start = None
        if prefix in ("B", "U", "S") or (prefix in ("I", "L", "E") and start is None):
            start, current = i, label
        if prefix in ("L", "E", "U", "S") and start is not None:
            found.append((start, i + 1, current))
            start = None
    return found


@registry.metrics("accuracy.v1")
def accuracy_metric() -> Accuracy:
    """Accuracy: the fraction of examples labelled correctly."""
    return Accuracy()


@registry.metrics("f1.v1")
def f1_metric(average: str = "macro", ignore: List[str] = []) -> PrecisionRecallF1:  # noqa: B006 -- read only
    """Precision, recall and F1 averaged "macro", "micro", or "per_class"; labels in `ignore` left out (e.g. "O")."""
    return PrecisionRecallF1(average, ignore)


@registry.metrics("confusion_matrix.v1")
def confusion_matrix_metric() -> ConfusionMatrix:
    """The confusion matrix (gold x predicted counts)."""
    return ConfusionMatrix()


@registry.metrics("token_accuracy.v1")
def token_accuracy_metric() -> TokenAccuracy:
    """Tagging: the fraction of tokens tagged correctly."""
    return TokenAccuracy()


@registry.metrics("span_f1.v1")
def span_f1_metric() -> SpanF1:
    """Tagging: precision, recall and F1 of the labelled spans in BIO or BIOUL tags."""
    return SpanF1()


def default_metrics(task: str) -> Dict[str, Any]:
    """What ``composa evaluate`` reports when the config has no ``[metrics]``: a full set for the task."""
    if task == "tagging":
        return {"token_accuracy": TokenAccuracy(), "span_f1": SpanF1(), "per_class": PrecisionRecallF1("per_class")}
    return {
        "accuracy": Accuracy(),
        "macro": PrecisionRecallF1("macro"),
        "micro": PrecisionRecallF1("micro"),
        "per_class": PrecisionRecallF1("per_class"),
        "confusion_matrix": ConfusionMatrix(),
    }


def compute_metrics(
    metrics: Dict[str, Any], gold: Any, probabilities: Any, *, labels: Sequence[str], lengths: Any = None
) -> Dict[str, Any]:
    """Every metric's results merged into one dict (where two return the same key, the later one's value is kept)."""
    results: Dict[str, Any] = {}
    for metric in metrics.values():
        results.update(metric(gold, probabilities, labels=labels, lengths=lengths))
    return results


def plot_confusion_matrix(matrix: Dict[str, Any], path: Union[str, Path]) -> str:
    """Draw a :class:`ConfusionMatrix` result as a PNG heat map with counts; returns what happened."""
    try:
        import matplotlib  # lazy: slow to import, and the plot is skipped without it

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # lazy: after choosing the Agg backend
    except ImportError:
        return "matplotlib is not installed: skipping the confusion matrix plot (pip install matplotlib)"
    labels, counts = matrix["labels"], numpy.asarray(matrix["counts"])
    size = max(4.0, 0.6 * len(labels) + 2.0)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(counts, cmap="Blues")
    axis.set(xticks=range(len(labels)), yticks=range(len(labels)), xlabel="predicted", ylabel="gold", title="Confusion matrix")
    axis.set_xticklabels(labels, rotation=45, ha="right")
    axis.set_yticklabels(labels)
    threshold = counts.max() / 2 if counts.size else 0
    for (row, column), count in numpy.ndenumerate(counts):
        axis.text(column, row, str(count), ha="center", va="center", color="white" if count > threshold else "black")
    figure.tight_layout()
    path = Path(path)
    temp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temp, dpi=100)
    plt.close(figure)
    temp.replace(path)
    return f"Confusion matrix saved in {path}"


def _checked(gold: Any, probabilities: Any, labels: Sequence[str]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    gold = numpy.asarray(gold).reshape(-1)
    probabilities = numpy.asarray(probabilities)
    if len(gold) == 0:
        return gold.astype("int64"), gold.astype("int64")
    if probabilities.ndim != 2 or probabilities.shape[0] != len(gold) or probabilities.shape[1] != len(labels):
        raise ShapeMismatchError(
            f"metrics: expected probabilities of shape ({len(gold)}, {len(labels)}) for {len(gold)} gold ids "
            f"and {len(labels)} labels, got {probabilities.shape}"
        )
    return gold.astype("int64"), probabilities.argmax(axis=1)


def _label_counts(gold: numpy.ndarray, guess: numpy.ndarray, n_labels: int) -> Tuple[numpy.ndarray, ...]:
    true_pos = numpy.bincount(gold[gold == guess], minlength=n_labels)
    return true_pos, numpy.bincount(guess, minlength=n_labels), numpy.bincount(gold, minlength=n_labels)


def _prf(true_pos: Any, pred_pos: Any, gold_pos: Any) -> Tuple[float, float, float]:
    precision = float(true_pos / pred_pos) if pred_pos else 0.0
    recall = float(true_pos / gold_pos) if gold_pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
