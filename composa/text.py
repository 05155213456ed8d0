"""Text: a vocabulary of several namespaces and the registered tokenizers.

A :class:`Vocabulary` maps strings to ids in named *namespaces*: ``tokens`` (the words a
model embeds), ``labels`` (the classes or tags it predicts) and, when a config asks for
it, ``characters``. A padded namespace reserves id 0 for padding; one with an OOV id maps
every unseen string to id 1. ``labels`` has neither: an unknown label is an error.

``composa train`` builds the vocabulary from the training data when training starts,
saves it as ``vocab.json`` in the run directory, and ``composa.load`` reads it back.
Layers read a namespace's size from it in the config, instead of a hard-coded number::

    [model.*.embed.nV]
    @vocab = "size.v1"
    namespace = "tokens"

The vocabulary those references read is the one made current by :func:`use_vocabulary`
(the trainer and the loader do this around building ``[model]``).
"""
import contextlib
import contextvars
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import numpy

from .config import registry
from .errors import ConfigurationError, SerializationError, UnknownLabelError
from .serialize import write_bytes_atomic

__all__ = [
    "Vocabulary",
    "Tokenizer",
    "use_vocabulary",
    "current_vocabulary",
    "vocab_size",
    "whitespace_tokenizer",
    "regex_tokenizer",
    "character_tokenizer",
    "PADDING",
    "OOV",
]

PADDING = "@@PADDING@@"
OOV = "@@UNKNOWN@@"
VOCAB_FORMAT = 1
# Namespaces that hold what a model predicts: no padding, no OOV id.
UNPADDED_NAMESPACES = ("labels",)


class _Namespace:
    """One namespace: its strings in id order, and whether ids 0/1 are padding/OOV."""

    def __init__(self, strings: Sequence[str], padded: bool, oov: bool) -> None:
        self.padded = padded
        self.oov = oov
        reserved = ([PADDING] if padded else []) + ([OOV] if oov else [])
        self.strings: List[str] = reserved + [s for s in strings if s not in reserved]
        self.ids: Dict[str, int] = {string: i for i, string in enumerate(self.strings)}
        if len(self.ids) != len(self.strings):
            raise SerializationError("a vocabulary namespace lists the same string twice")


class Vocabulary:
    """Strings <-> ids in named namespaces, with padding (id 0) and OOV (id 1) where wanted."""

    def __init__(self) -> None:
        self._namespaces: Dict[str, _Namespace] = {}

    @classmethod
    def from_counts(
        cls,
        counts: Mapping[str, Mapping[str, int]],
        *,
        min_count: Union[int, Mapping[str, int]] = 1,
        max_size: Union[None, int, Mapping[str, Optional[int]]] = None,
    ) -> "Vocabulary":
        """Build from per-namespace counts, keeping strings seen `min_count` times, at most `max_size` of them.

        The most frequent strings get the smallest ids (ties in alphabetical order), so the
        same data always gives the same ids. ``labels`` is never pruned nor padded.
        """
        vocab = cls()
        for namespace, namespace_counts in counts.items():
            unpadded = namespace in UNPADDED_NAMESPACES
            least = 1 if unpadded else _per_namespace(min_count, namespace, 1)
            most = None if unpadded else _per_namespace(max_size, namespace, None)
            vocab.add_namespace(
                namespace, _ranked(namespace_counts, least, most), padded=not unpadded, oov=not unpadded
            )
        return vocab

    def add_namespace(self, namespace: str, strings: Iterable[str], *, padded: bool = True, oov: bool = True) -> None:
        """Add (or replace) `namespace` holding `strings` in id order, after padding and OOV when wanted."""
        if not isinstance(namespace, str) or not namespace:
            raise ConfigurationError(f"a vocabulary namespace needs a name, got {namespace!r}")
        self._namespaces[namespace] = _Namespace(list(strings), padded, oov)

    @property
    def namespaces(self) -> List[str]:
        """The namespace names, in the order they were added."""
        return list(self._namespaces)

    def __contains__(self, namespace: object) -> bool:
        return namespace in self._namespaces

    def size(self, namespace: str = "tokens") -> int:
        """The number of ids in `namespace`, padding and OOV included."""
        return len(self._get(namespace).strings)

    def strings(self, namespace: str = "tokens") -> List[str]:
        """Every string of `namespace`, in id order (a copy)."""
        return list(self._get(namespace).strings)

    def padding_id(self, namespace: str = "tokens") -> Optional[int]:
        """0 when `namespace` is padded, else None."""
        return 0 if self._get(namespace).padded else None

    def oov_id(self, namespace: str = "tokens") -> Optional[int]:
        """The id every unseen string maps to, or None when `namespace` has no OOV id."""
        entry = self._get(namespace)
        return entry.ids[OOV] if entry.oov else None

    def index(self, namespace: str, string: str) -> int:
        """The id of `string` (the OOV id when unseen; UnknownLabelError in a namespace without one)."""
        entry = self._get(namespace)
        found = entry.ids.get(string)
        if found is not None:
            return found
        if entry.oov:
            return entry.ids[OOV]
        raise UnknownLabelError(f"{string!r} is not in the vocabulary's {namespace!r}: {_listing(entry.strings)}")

    def indices(self, namespace: str, strings: Sequence[str]) -> numpy.ndarray:
        """The ids of `strings` as an int32 array (see :meth:`index`)."""
        entry = self._get(namespace)
        ids = entry.ids
        if entry.oov:
            oov = ids[OOV]
            found = [ids.get(string, oov) for string in strings]
        else:
            found = [self.index(namespace, string) for string in strings]
        return numpy.asarray(found, dtype="int32")

    def string(self, namespace: str, index: int) -> str:
        """The string with id `index` in `namespace`."""
        entry = self._get(namespace)
        if not 0 <= int(index) < len(entry.strings):
            raise UnknownLabelError(f"id {index} is outside the vocabulary's {namespace!r} (size {len(entry.strings)})")
        return entry.strings[int(index)]

    def to_dict(self) -> Dict[str, Any]:
        """Plain data (JSON-ready): the format version and, per namespace, its strings and flags."""
        return {
            "composa_vocabulary": VOCAB_FORMAT,
            "namespaces": {
                name: {"padded": entry.padded, "oov": entry.oov, "strings": entry.strings}
                for name, entry in self._namespaces.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "the vocabulary") -> "Vocabulary":
        """Rebuild from :meth:`to_dict`'s data, checking every field first."""
        if not isinstance(data, dict) or data.get("composa_vocabulary") != VOCAB_FORMAT:
            raise SerializationError(f"{where} is not a composa vocabulary (format {VOCAB_FORMAT})")
        namespaces = data.get("namespaces")
        if not isinstance(namespaces, dict):
            raise SerializationError(f"{where}: 'namespaces' must be an object")
        vocab = cls()
        for name, entry in namespaces.items():
            strings = entry.get("strings") if isinstance(entry, dict) else None
            if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
                raise SerializationError(f"{where}: namespace {name!r} needs a list of strings")
            padded, oov = bool(entry.get("padded")), bool(entry.get("oov"))
            reserved = ([PADDING] if padded else []) + ([OOV] if oov else [])
            if strings[: len(reserved)] != reserved:
                raise SerializationError(f"{where}: namespace {name!r} must start with {reserved}")
            vocab.add_namespace(name, strings[len(reserved):], padded=padded, oov=oov)
        return vocab

    def to_disk(self, path: Union[str, Path]) -> None:
        """Write the vocabulary as JSON, atomically."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n"
        write_bytes_atomic(path, text.encode("utf8"))

    @classmethod
    def from_disk(cls, path: Union[str, Path]) -> "Vocabulary":
        """Read a vocabulary written by :meth:`to_disk`."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SerializationError(f"cannot read the vocabulary {path}: {error}") from error
        return cls.from_dict(data, where=str(path))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={self.size(name)}" for name in self._namespaces)
        return f"Vocabulary({sizes})"

    def _get(self, namespace: str) -> _Namespace:
        try:
            return self._namespaces[namespace]
        except KeyError:
            raise UnknownLabelError(
                f"the vocabulary has no namespace {namespace!r}; it has {self.namespaces}"
            ) from None


def _per_namespace(setting: Any, namespace: str, default: Any) -> Any:
    if isinstance(setting, Mapping):
        return setting.get(namespace, default)
    return default if setting is None else setting


def _ranked(counts: Mapping[str, int], min_count: int, max_size: Optional[int]) -> List[str]:
    kept = sorted((string for string, n in counts.items() if n >= min_count), key=lambda s: (-counts[s], s))
    return kept if max_size is None else kept[:max_size]


def _listing(strings: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(repr(s) for s in strings[:limit])
    return f"it holds {shown}" + (f" and {len(strings) - limit} more" if len(strings) > limit else "")


def count_strings(groups: Mapping[str, Iterable[Iterable[str]]]) -> Dict[str, Counter]:
    """Per namespace, how often each string occurs in its sequences of strings."""
    counts: Dict[str, Counter] = {}
    for namespace, sequences in groups.items():
        counter: Counter = Counter()
        for sequence in sequences:
            counter.update(sequence)
        counts[namespace] = counter
    return counts


# The current vocabulary ---------------------------------------------------------------

_CURRENT: "contextvars.ContextVar[Optional[Vocabulary]]" = contextvars.ContextVar("composa_vocabulary", default=None)


@contextlib.contextmanager
def use_vocabulary(vocab: Optional[Vocabulary]) -> Iterator[Optional[Vocabulary]]:
    """Make `vocab` the one ``@vocab`` references in a config read, inside the block."""
    token = _CURRENT.set(vocab)
    try:
        yield vocab
    finally:
        _CURRENT.reset(token)


def current_vocabulary() -> Vocabulary:
    """The vocabulary made current by :func:`use_vocabulary`; ConfigurationError when there is none."""
    vocab = _CURRENT.get()
    if vocab is None:
        raise ConfigurationError(
            "the config reads a vocabulary size (@vocab), but there is no vocabulary: "
            "composa train builds one from text data ([data] with a text reader), and "
            "composa.load reads it from the run directory's vocab.json"
        )
    return vocab


@registry.vocab("size.v1")
def vocab_size(namespace: str = "tokens") -> int:
    """The size of `namespace` in the current vocabulary: a layer's nV (tokens) or nO (labels)."""
    vocab = current_vocabulary()
    if namespace not in vocab:
        raise ConfigurationError(f"@vocab size.v1: the vocabulary has no namespace {namespace!r}; it has {vocab.namespaces}")
    return vocab.size(namespace)


# Tokenizers ---------------------------------------------------------------------------


class Tokenizer:
    """A text -> tokens function: Unicode-normalised (NFC), optionally lowercased, then split."""

    def __init__(self, name: str, pattern: str, lowercase: bool) -> None:
        self.name = name
        self.pattern = pattern
        self.lowercase = lowercase
        try:
            self._regex = re.compile(pattern)
        except re.error as error:
            raise ConfigurationError(f"{name}: pattern {pattern!r} is not a regular expression ({error})") from error

    def __call__(self, text: str) -> List[str]:
        if not isinstance(text, str):
            raise ConfigurationError(f"{self.name}: expected a string, got {type(text).__name__}")
        # NFC: "é" typed as one code point or as e + combining accent is the same token.
        text = unicodedata.normalize("NFC", text)
        if self.lowercase:
            text = text.lower()
        return self._regex.findall(text)

    def __repr__(self) -> str:
        return f"{self.name}(pattern={self.pattern!r}, lowercase={self.lowercase})"


@registry.tokenizers("whitespace.v1")
def whitespace_tokenizer(lowercase: bool = False) -> Tokenizer:
    """Split on runs of whitespace."""
    return Tokenizer("whitespace.v1", r"\S+", lowercase)


@registry.tokenizers("regex.v1")
def regex_tokenizer(pattern: str = r"\w+(?:'\w+)?|[^\w\s]", lowercase: bool = True) -> Tokenizer:
    """Every match of `pattern` is a token (default: words, with "don't" kept whole, and each punctuation mark)."""
    return Tokenizer("regex.v1", pattern, lowercase)


@registry.tokenizers("characters.v1")
def character_tokenizer(lowercase: bool = False, keep_spaces: bool = False) -> Tokenizer:
    """Each character is a token (spaces dropped unless `keep_spaces`)."""
    return Tokenizer("characters.v1", r"(?s)." if keep_spaces else r"\S", lowercase)
