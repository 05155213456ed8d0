"""Predictors: a trained model with what it needs to read raw input and name its answers.

A :class:`Predictor` turns input (texts, token lists or feature rows) into the arrays a
model reads, runs the model on a batch of them, and turns the output into labels and
probabilities. ``composa predict``, ``composa serve`` and your own code use the same one::

    predictor = Predictor.from_archive("runs/reviews")
    predictor.predict_texts(["I love this lamp."])
    # [{"label": "positive", "probabilities": {"negative": 0.01, "neutral": 0.02, "positive": 0.97}}]
"""
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy

from .archive import Archive, load_archive
from .config import registry
from .datasets import read_features
from .errors import PredictionInputError
from .model import Model
from .readers import CLASSIFICATION, TAGGING, Example, Reader, TaggingReader, TextClassificationReader
from .text import Tokenizer, Vocabulary, regex_tokenizer
from .training import predict_numpy

__all__ = ["Predictor"]

ROWS = "rows"


class Predictor:
    """Labels and probabilities from a model, for texts (classification or tagging) or feature rows."""

    def __init__(
        self,
        model: Model,
        labels: Sequence[str],
        *,
        task: str = ROWS,
        vocab: Optional[Vocabulary] = None,
        reader: Optional[Reader] = None,
        tokenizer: Optional[Tokenizer] = None,
        n_features: Optional[int] = None,
        batch_size: int = 256,
    ) -> None:
        if task not in (ROWS, CLASSIFICATION, TAGGING):
            raise PredictionInputError(f"Predictor: unknown task {task!r}")
        if task != ROWS and vocab is None:
            raise PredictionInputError(f"Predictor: a {task} model needs its vocabulary")
        self.model = model
        self.labels = list(labels)
        self.task = task
        self.vocab = vocab
        self.reader: Any = reader if reader is not None else _default_reader(task)  # None for feature rows
        self.tokenizer = tokenizer if tokenizer is not None else regex_tokenizer()
        self.n_features = n_features
        self.batch_size = batch_size

    @classmethod
    def from_archive(cls, archive: Union[str, Path, Archive], *, trust_code: bool = False) -> "Predictor":
        """The predictor of a training directory (or an already loaded :class:`Archive`)."""
        if not isinstance(archive, Archive):
            archive = load_archive(archive, trust_code=trust_code)
        meta = archive.meta
        task = meta.get("task", ROWS)
        data = archive.config.interpolate().get("data", {}) if task != ROWS else {}
        labels = meta.get("labels") or (archive.vocab.strings("labels") if archive.vocab is not None else [])
        return cls(
            archive.model,
            labels or [str(i) for i in range(int(meta.get("n_classes") or 0))],
            task=task,
            vocab=archive.vocab,
            reader=_resolve_block(data.get("reader")),
            tokenizer=_resolve_block(data.get("tokenizer")),
            n_features=meta.get("n_features"),
        )

    def parse(self, record: Any) -> Any:
        """One input as the model's item: a text or ``{"text": ...}`` (``{"tokens": [...]}`` for tagging), or a row."""
        if self.task == ROWS:
            return self._row(record)
        return self.reader.from_json(record, self.tokenizer)

    def read_file(self, path: Union[str, Path]) -> List[Any]:
        """The inputs in a file: .txt (a text per line) or .jsonl for text models; .npy/.csv/.jsonl rows otherwise."""
        if self.task == ROWS:
            return list(read_features(path))
        return self.reader.read_unlabelled(path, self.tokenizer)

    def predict(self, items: Sequence[Any], *, probabilities: bool = True) -> List[Dict[str, Any]]:
        """One answer per item: ``{"label", "probabilities"}``, or for tagging ``{"tokens", "tags", "confidence"}``."""
        if not items:
            return []
        if self.task == ROWS:
            inputs: Any = numpy.stack([numpy.asarray(item, dtype="float32") for item in items])
        else:
            assert self.vocab is not None
            inputs = [self.vocab.indices("tokens", item.tokens) for item in items]
        table = predict_numpy(self.model, inputs, self.batch_size)
        if self.task == TAGGING:
            return self._tagged(items, table, probabilities)
        return [self._answer(row, probabilities) for row in table]

    def predict_texts(self, texts: Sequence[str], *, probabilities: bool = True) -> List[Dict[str, Any]]:
        """:meth:`predict` on raw texts."""
        return self.predict([self.parse(text) for text in texts], probabilities=probabilities)

    def describe(self) -> Dict[str, Any]:
        """What the model does, for ``GET /health`` and the demo page: task, labels, vocabulary sizes."""
        sizes = {name: self.vocab.size(name) for name in self.vocab.namespaces} if self.vocab is not None else None
        return {"task": self.task, "labels": self.labels, "vocab": sizes, "n_features": self.n_features}

    def _answer(self, row: numpy.ndarray, probabilities: bool) -> Dict[str, Any]:
        best = int(row.argmax())
        answer: Dict[str, Any] = {"label": best if self.task == ROWS else self.labels[best]}
        if probabilities:
            answer["probabilities"] = {label: round(float(p), 6) for label, p in zip(self.labels, row.tolist())}
        return answer

    def _tagged(self, items: Sequence[Example], table: numpy.ndarray, probabilities: bool) -> List[Dict[str, Any]]:
        answers, start = [], 0
        for item in items:
            rows = table[start : start + len(item.tokens)]
            start += len(item.tokens)
            answer: Dict[str, Any] = {"tokens": item.tokens, "tags": [self.labels[int(i)] for i in rows.argmax(axis=1)]}
            if probabilities:
                answer["confidence"] = [round(float(p), 6) for p in rows.max(axis=1)] if len(rows) else []
            answers.append(answer)
        return answers

    def _row(self, record: Any) -> numpy.ndarray:
        values = record.get("x") if isinstance(record, dict) else record
        try:
            row = numpy.asarray(values, dtype="float32")
        except (TypeError, ValueError):
            raise PredictionInputError(f"expected a list of numbers (or {{\"x\": [...]}}), got {type(values).__name__}") from None
        if row.ndim != 1 or (self.n_features is not None and row.shape[0] != self.n_features):
            raise PredictionInputError(f"expected a row of {self.n_features} numbers, got shape {row.shape}")
        if not numpy.isfinite(row).all():
            raise PredictionInputError("the row holds NaN or infinity")
        return row


def _default_reader(task: str) -> Optional[Reader]:
    if task == TAGGING:
        return TaggingReader()
    if task == CLASSIFICATION:
        return TextClassificationReader()
    return None


def _resolve_block(block: Any) -> Any:
    """Build one ``@table`` block of a config (e.g. ``[data.tokenizer]``), or None when there is none."""
    if not isinstance(block, dict):
        return None
    return registry.resolve({"block": block})["block"]
