"""Registered readers for text data, and the text datasets ``composa train`` reads with them.

Two tasks:

- **text classification** (``text_classification.v1``): one text and one label per example,
  from ``.jsonl`` (``{"text": ..., "label": ...}`` per line), ``.csv`` or ``.tsv`` (a header
  naming the ``text`` and ``label`` columns, or the columns text, label) and, unlabelled, from
  ``.txt`` (one text per line).
- **token tagging** (``tagging.v1``): a tag per token, from CoNLL-style columns (``.conll``,
  ``.conllu``, ``.iob``, ``.bio``, ``.tsv``, ``.txt``: a token per line, the token in one column
  and the tag in another, a blank line between sentences) or ``.jsonl`` (``{"tokens": [...],
  "tags": [...]}``); unlabelled, one sentence per line of ``.txt``.

A reader returns :class:`Example` objects; :class:`TextDataset` holds the train and dev
examples with the reader and tokenizer, and :func:`featurize` turns examples into the
id arrays a model reads (one Ints1d of token ids per example).
"""
import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy

from .config import registry
from .datasets import existing_data_file
from .errors import DataFileError, PredictionInputError, UnknownLabelError
from .text import Tokenizer, Vocabulary, count_strings, regex_tokenizer

__all__ = [
    "Example",
    "TextDataset",
    "TextClassificationReader",
    "TaggingReader",
    "text_classification_reader",
    "tagging_reader",
    "text_files",
    "reviews",
    "featurize",
    "build_vocabulary",
    "bundled_data_path",
    "CLASSIFICATION",
    "TAGGING",
]

CLASSIFICATION = "text_classification"
TAGGING = "tagging"
VOCAB_NAMESPACES = ("tokens", "characters")


@dataclasses.dataclass
class Example:
    """One example: its text, its tokens and, when labelled, its label or its tags (one per token)."""

    text: str
    tokens: List[str]
    label: Optional[str] = None
    tags: Optional[List[str]] = None


class TextClassificationReader:
    """Reads texts with one label each (.jsonl, .csv, .tsv) and unlabelled texts (.txt, .jsonl)."""

    task = CLASSIFICATION

    def __init__(self, text_field: str = "text", label_field: str = "label") -> None:
        self.text_field = text_field
        self.label_field = label_field

    def read(self, path: Union[str, Path], tokenizer: Tokenizer) -> List[Example]:
        """Labelled examples from `path`; every record needs a text and a label."""
        path = existing_data_file(path)
        records = self._records(path, labelled=True)
        return [self._example(record, tokenizer, where) for where, record in records]

    def read_unlabelled(self, path: Union[str, Path], tokenizer: Tokenizer) -> List[Example]:
        """Examples to predict: .txt (every line, empty ones too, is a text) or .jsonl/.csv/.tsv records."""
        path = existing_data_file(path)
        if path.suffix.lower() == ".txt":
            return [Example(line, tokenizer(line)) for line in _lines(path)]
        return [self._example(record, tokenizer, where, labelled=False) for where, record in self._records(path, labelled=False)]

    def from_json(self, record: Any, tokenizer: Tokenizer) -> Example:
        """An example from one JSON value: ``{"text": ...}`` or a bare string."""
        if isinstance(record, str):
            return Example(record, tokenizer(record))
        if not isinstance(record, dict) or not isinstance(record.get(self.text_field), str):
            raise PredictionInputError(f"expected a string or an object with a string {self.text_field!r}, got {_show(record)}")
        return self._example(record, tokenizer, "the input", labelled=False)

    def _records(self, path: Path, labelled: bool) -> List[Tuple[str, Any]]:
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            return _jsonl_records(path)
        if suffix in (".csv", ".tsv"):
            return self._table_records(path, "\t" if suffix == ".tsv" else ",", labelled)
        kind = "labelled" if labelled else "unlabelled"
        formats = ".jsonl, .csv or .tsv" + ("" if labelled else ", or .txt (one text per line)")
        raise DataFileError(f"{path}: unknown file type {suffix!r} for {kind} texts; use {formats}")

    def _table_records(self, path: Path, delimiter: str, labelled: bool) -> List[Tuple[str, Any]]:
        rows = list(csv.reader(io.StringIO(_read_text(path)), delimiter=delimiter))
        numbered = [(number, row) for number, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
        if not numbered:
            return []
        header = [cell.strip() for cell in numbered[0][1]]
        if self.text_field in header:
            columns, numbered = header, numbered[1:]
        else:
            columns = [self.text_field, self.label_field][: len(header)] if labelled or len(header) > 1 else [self.text_field]
        records = []
        for number, row in numbered:
            if len(row) != len(columns):
                raise DataFileError(f"{path}:{number}: expected {len(columns)} columns ({', '.join(columns)}), got {len(row)}")
            records.append((f"{path}:{number}", dict(zip(columns, row))))
        return records

    def _example(self, record: Any, tokenizer: Tokenizer, where: str, labelled: bool = True) -> Example:
        if not isinstance(record, dict):
            raise DataFileError(f"{where}: expected an object with {self.text_field!r}, got {_show(record)}")
        text = record.get(self.text_field)
        if not isinstance(text, str):
            raise DataFileError(f"{where}: expected a string {self.text_field!r}, got {_show(record)}")
        label = record.get(self.label_field)
        if labelled and (label is None or isinstance(label, (dict, list))):
            raise DataFileError(f"{where}: expected a label {self.label_field!r} (a string or number), got {_show(record)}")
        return Example(text, tokenizer(text), label=None if label is None else str(label))


class TaggingReader:
    """Reads tokens with a tag each (CoNLL-style columns, .jsonl) and unlabelled sentences (.txt, .jsonl)."""

    task = TAGGING
    COLUMN_SUFFIXES = (".conll", ".conllu", ".conll03", ".iob", ".bio", ".tsv", ".txt")

    def __init__(
        self, tokens_field: str = "tokens", tags_field: str = "tags", token_column: int = 0, tag_column: int = -1
    ) -> None:
        self.tokens_field = tokens_field
        self.tags_field = tags_field
        self.token_column = token_column
        self.tag_column = tag_column

    def read(self, path: Union[str, Path], tokenizer: Tokenizer) -> List[Example]:
        """Tagged sentences from `path` (CoNLL-style columns or .jsonl)."""
        path = existing_data_file(path)
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            return [self._tagged(record, where) for where, record in _jsonl_records(path)]
        if suffix in self.COLUMN_SUFFIXES:
            return self._read_columns(path)
        raise DataFileError(f"{path}: unknown file type {suffix!r} for tagged tokens; use .jsonl or CoNLL columns ({', '.join(self.COLUMN_SUFFIXES)})")

    def read_unlabelled(self, path: Union[str, Path], tokenizer: Tokenizer) -> List[Example]:
        """Sentences to tag: .txt (one sentence per line, tokenized) or .jsonl (``tokens`` or ``text``)."""
        path = existing_data_file(path)
        suffix = path.suffix.lower()
        if suffix == ".txt":
            return [Example(line, tokenizer(line)) for line in _lines(path)]
        if suffix in (".jsonl", ".ndjson"):
            return [self._untagged(record, tokenizer, where, DataFileError) for where, record in _jsonl_records(path)]
        raise DataFileError(f"{path}: unknown file type {suffix!r} for sentences to tag; use .txt or .jsonl")

    def from_json(self, record: Any, tokenizer: Tokenizer) -> Example:
        """An example from one JSON value: ``{"tokens": [...]}``, ``{"text": ...}`` or a bare string."""
        if isinstance(record, str):
            return Example(record, tokenizer(record))
        return self._untagged(record, tokenizer, "the input", PredictionInputError)

    def _read_columns(self, path: Path) -> List[Example]:
        examples: List[Example] = []
        tokens: List[str] = []
        tags: List[str] = []
        for number, line in enumerate(_read_text(path).splitlines(), start=1):
            cells = line.split()
            if not cells or cells[0] == "-DOCSTART-" or line.startswith("#"):
                if tokens and (not cells or cells[0] == "-DOCSTART-"):
                    examples.append(Example(" ".join(tokens), tokens, tags=tags))
                    tokens, tags = [], []
                continue
            try:
                token, tag = cells[self.token_column], cells[self.tag_column]
            except IndexError:
                raise DataFileError(
                    f"{path}:{number}: expected a token in column {self.token_column} and a tag in column "
                    f"{self.tag_column}, got {len(cells)} column(s): {line!r}"
                ) from None
            tokens.append(token)
            tags.append(tag)
        if tokens:
            examples.append(Example(" ".join(tokens), tokens, tags=tags))
        return examples

    def _tagged(self, record: Any, where: str) -> Example:
        tokens = _string_list(record, self.tokens_field, where, DataFileError)
        tags = _string_list(record, self.tags_field, where, DataFileError)
        if len(tags) != len(tokens):
            raise DataFileError(f"{where}: {len(tokens)} tokens but {len(tags)} tags")
        return Example(" ".join(tokens), tokens, tags=tags)

    def _untagged(self, record: Any, tokenizer: Tokenizer, where: str, error: Callable[[str], Exception]) -> Example:
        if isinstance(record, dict) and isinstance(record.get("text"), str) and self.tokens_field not in record:
            return Example(record["text"], tokenizer(record["text"]))
        tokens = _string_list(record, self.tokens_field, where, error)
        return Example(" ".join(tokens), tokens)


Reader = Union[TextClassificationReader, TaggingReader]


@registry.readers("text_classification.v1")
def text_classification_reader(text_field: str = "text", label_field: str = "label") -> TextClassificationReader:
    """A reader of texts with one label each; `text_field`/`label_field` name the keys or columns."""
    return TextClassificationReader(text_field, label_field)


@registry.readers("tagging.v1")
def tagging_reader(
    tokens_field: str = "tokens", tags_field: str = "tags", token_column: int = 0, tag_column: int = -1
) -> TaggingReader:
    """A reader of tagged tokens: .jsonl fields, or the token and tag columns of CoNLL-style files."""
    return TaggingReader(tokens_field, tags_field, token_column, tag_column)


@dataclasses.dataclass
class TextDataset:
    """What a text ``[data]`` section builds: train and dev examples, with the reader and tokenizer."""

    train: List[Example]
    dev: List[Example]
    reader: Reader
    tokenizer: Tokenizer
    sources: Tuple[str, str] = ("train", "dev")

    @property
    def task(self) -> str:
        """``"text_classification"`` or ``"tagging"``."""
        return self.reader.task


@registry.datasets("text_files.v1")
def text_files(train: str, dev: str, reader: Reader, tokenizer: Optional[Tokenizer] = None) -> TextDataset:
    """Your own text data: a train and a dev file, read by `reader`, split into tokens by `tokenizer`."""
    tokenizer = tokenizer if tokenizer is not None else regex_tokenizer()
    return TextDataset(reader.read(train, tokenizer), reader.read(dev, tokenizer), reader, tokenizer, (train, dev))


@registry.datasets("reviews.v1")
def reviews(tokenizer: Optional[Tokenizer] = None, reader: Optional[Reader] = None) -> TextDataset:
    """composa's bundled reviews: short product reviews labelled positive, negative or neutral."""
    return text_files(
        str(bundled_data_path("reviews/train.jsonl")),
        str(bundled_data_path("reviews/dev.jsonl")),
        reader if reader is not None else text_classification_reader(),
        tokenizer,
    )


def bundled_data_path(name: str) -> Path:
    """The path of a data file shipped in ``composa/data``, e.g. ``"reviews/test.jsonl"``."""
    return Path(__file__).parent / "data" / name


def build_vocabulary(dataset: TextDataset, settings: Optional[Dict[str, Any]] = None) -> Vocabulary:
    """The vocabulary of `dataset`: tokens (and characters) from train, labels from train and dev.

    `settings` is the config's ``[vocab]`` section: per namespace, ``min_count`` and ``max_size``,
    e.g. ``{"tokens": {"min_count": 2}, "characters": {}}``; ``characters`` is built only when listed.
    """
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(VOCAB_NAMESPACES))
    if unknown:
        raise DataFileError(f"[vocab] has unknown namespace(s) {unknown}; it takes {list(VOCAB_NAMESPACES)}")
    for namespace, options in settings.items():
        extra = sorted(set(options or {}) - {"min_count", "max_size"})
        if extra:
            raise DataFileError(f"[vocab.{namespace}] has unknown key(s) {extra}; it takes min_count, max_size")
    groups: Dict[str, Any] = {"tokens": [example.tokens for example in dataset.train]}
    if "characters" in settings:
        groups["characters"] = [list("".join(example.tokens)) for example in dataset.train]
    groups["labels"] = [_targets(example) for example in dataset.train + dataset.dev]
    counts = count_strings(groups)
    return Vocabulary.from_counts(
        counts,
        min_count={name: (options or {}).get("min_count", 1) for name, options in settings.items()},
        max_size={name: (options or {}).get("max_size") for name, options in settings.items()},
    )


def featurize(
    examples: Sequence[Example], vocab: Vocabulary, task: str, *, labelled: bool = True, where: str = "the data"
) -> Tuple[List[numpy.ndarray], Any]:
    """Token ids per example and, when `labelled`, label ids (classification) or tag ids per example (tagging)."""
    X = [vocab.indices("tokens", example.tokens) for example in examples]
    if not labelled:
        return X, None
    try:
        if task == TAGGING:
            return X, [vocab.indices("labels", _targets(example)) for example in examples]
        return X, vocab.indices("labels", [_targets(example)[0] for example in examples])
    except UnknownLabelError as error:
        raise DataFileError(f"{where}: {error} (the model can only predict the labels it was trained on)") from error


def _targets(example: Example) -> List[str]:
    if example.tags is not None:
        return list(example.tags)
    if example.label is None:
        raise DataFileError(f"the example {example.text[:40]!r} has no label")
    return [example.label]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: a byte-order mark is not part of the first text
    except UnicodeDecodeError as error:
        raise DataFileError(f"{path}: not UTF-8 text ({error})") from error


def _lines(path: Path) -> List[str]:
    return _read_text(path).splitlines()


def _jsonl_records(path: Path) -> List[Tuple[str, Any]]:
    records = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"{path}:{number}", json.loads(line)))
        except json.JSONDecodeError as error:
            raise DataFileError(f"{path}:{number}: not valid JSON ({error.msg})") from error
    return records


def _string_list(record: Any, field: str, where: str, error: Callable[[str], Exception]) -> List[str]:
    value = record.get(field) if isinstance(record, dict) else None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise error(f"{where}: expected a list of strings {field!r}, got {_show(record)}")
    return value


def _show(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, Exception) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
