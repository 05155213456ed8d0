"""Losses: ``loss(guesses, truths) -> (d_guesses, loss_value)``.

``get_grad`` is Thinc's gradient, unchanged, so training behaves as with Thinc.
``get_loss`` returns the *real* value of the loss whose gradient that is (Thinc
returns the sum of the squared gradient instead):

- ``CategoricalCrossentropy``: ``sum over rows of -sum_c target * log(p)``, divided by the
  number of rows (missing rows included) when ``normalize``. Without missing values this
  is ``torch.nn.functional.cross_entropy(logits, labels)`` (mean); with them it is
  ``cross_entropy(..., ignore_index=missing, reduction="sum") / n_rows``. A negative label
  ``"!X"`` contributes ``-log(1 - p_X)``. The gradient is taken w.r.t. the logits of the
  softmax that produced the guesses (what ``Softmax``'s backprop expects).
- ``L2Distance``: ``0.5 * sum((guesses - truths) ** 2)``, divided by the number of rows when
  ``normalize``; that is ``0.5 * mse_loss(..., reduction="sum") / n_rows``.
- ``CosineDistance``: ``sum(1 - cos(guess_row, truth_row))``, divided by the number of rows
  when ``normalize``.
- ``SequenceCategoricalCrossentropy``: the sum of the per-sequence (unnormalized)
  cross-entropies, divided by the number of sequences when ``normalize``.
"""
from abc import abstractmethod
from typing import Any, Dict, Generic, List, Optional, Sequence, Tuple, TypeVar, Union

import numpy

from .backends import get_array_ops
from .config import registry
from .checks import describe
from .errors import ConfigurationError, ShapeMismatchError
from .util import to_categorical

__all__ = [
    "Loss",
    "CategoricalCrossentropy",
    "SequenceCategoricalCrossentropy",
    "L2Distance",
    "CosineDistance",
]

GuessT = TypeVar("GuessT")
TruthT = TypeVar("TruthT")
GradT = TypeVar("GradT")
LossT = TypeVar("LossT")
IntsOrStrs = Union[Sequence[int], Sequence[str]]


def _per_row(value: Any, n_rows: int, normalize: bool) -> Any:
    """`value` divided by `n_rows` when `normalize` (and there are rows); arrays are divided in place."""
    if normalize and n_rows:
        value /= n_rows
    return value


def _grad_dtype(guesses: Any) -> Any:
    """The gradient's dtype: the guesses' own when floats, else float32 (integer guesses need no int gradient)."""
    return guesses.dtype if guesses.dtype.kind == "f" else numpy.dtype("float32")


def _check_same_shape(name: str, guesses: Any, truths: Any, ndim: Optional[int] = None) -> None:
    """Raise ShapeMismatchError unless guesses and truths are arrays (of rank `ndim`) of one shape."""
    rank = f"{ndim}d arrays" if ndim is not None else "arrays"
    if not hasattr(guesses, "shape") or not hasattr(truths, "shape") or (
        ndim is not None and (guesses.ndim != ndim or truths.ndim != ndim)
    ):
        raise ShapeMismatchError(
            f"{name}: guesses and truths must be {rank}, got {describe(guesses)} and {describe(truths)}"
        )
    if tuple(guesses.shape) != tuple(truths.shape):
        raise ShapeMismatchError(
            f"{name}: guesses have shape {tuple(guesses.shape)} but truths {tuple(truths.shape)}"
        )


class Loss(Generic[GuessT, TruthT, GradT, LossT]):
    """Base class: ``__call__`` returns ``(get_grad(...), get_loss(...))``."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def __call__(self, guesses: GuessT, truths: TruthT) -> Tuple[GradT, LossT]:
        """The gradient w.r.t. the guesses and the loss value."""
        return self.get_grad(guesses, truths), self.get_loss(guesses, truths)

    @abstractmethod
    def get_grad(self, guesses: GuessT, truths: TruthT) -> GradT:
        """The gradient of the loss w.r.t. the guesses."""

    @abstractmethod
    def get_loss(self, guesses: GuessT, truths: TruthT) -> LossT:
        """The value of the loss."""


class CategoricalCrossentropy(Loss):
    """Cross-entropy of class probabilities against labels (ids, names or one-hot rows)."""

    names: Optional[Sequence[str]]
    _name_to_i: Dict[str, int]

    def __init__(
        self,
        *,
        normalize: bool = True,
        names: Optional[Sequence[str]] = None,
        missing_value: Optional[Union[str, int]] = None,
        neg_prefix: Optional[str] = None,
        label_smoothing: float = 0.0,
    ) -> None:
        self.normalize = normalize
        self.names = names
        self.missing_value = missing_value
        self.neg_prefix = neg_prefix
        self.label_smoothing = label_smoothing
        if label_smoothing < 0:
            raise ConfigurationError(f"CategoricalCrossentropy: label_smoothing must be >= 0, got {label_smoothing}")
        if names is not None:
            self._name_to_i = {name: i for i, name in enumerate(names)}
            if len(self._name_to_i) != len(names):
                raise ConfigurationError("CategoricalCrossentropy: names must be unique")
        else:
            self._name_to_i = {}

    def __call__(self, guesses: Any, truths: Any) -> Tuple[Any, float]:
        """The gradient and the loss, converting the truths once."""
        target, mask, negatives = self._convert(truths, guesses)
        return self._grad(guesses, target, mask), self._loss(guesses, target, mask, negatives)

    def convert_truths(self, truths: Any, guesses: Any) -> Tuple[Any, Any]:
        """Truths as ``(target, mask)``: float (N, nC) target rows and a 0/1 mask of the same shape."""
        target, mask, _ = self._convert(truths, guesses)
        return target, mask

    def get_grad(self, guesses: Any, truths: Any) -> Any:
        """``(guesses - target) * mask``, divided by the number of rows if `normalize`."""
        target, mask, _ = self._convert(truths, guesses)
        return self._grad(guesses, target, mask)

    def get_loss(self, guesses: Any, truths: Any) -> float:
        """The cross-entropy ``-sum(target * log(guesses))`` over unmasked cells (see the module docs)."""
        target, mask, negatives = self._convert(truths, guesses)
        return self._loss(guesses, target, mask, negatives)

    def _grad(self, guesses: Any, target: Any, mask: Any) -> Any:
        ops = get_array_ops(guesses)
        d_guesses = ops.xp.subtract(guesses, target, dtype=_grad_dtype(guesses))
        d_guesses *= mask
        return _per_row(d_guesses, guesses.shape[0], self.normalize)

    def _loss(self, guesses: Any, target: Any, mask: Any, negatives: Optional[Tuple[Any, Any]]) -> float:
        ops = get_array_ops(guesses)
        xp = ops.xp
        tiny = xp.finfo(guesses.dtype).tiny
        # Only cells with a positive target contribute, so log(0) of an unlikely class is never taken.
        weights = target * mask
        total = -(weights * xp.log(xp.maximum(guesses, tiny))).sum(dtype="float64")
        if negatives is not None:
            rows, columns = negatives
            total -= xp.log(xp.maximum(1.0 - guesses[rows, columns], tiny)).sum(dtype="float64")
        return float(_per_row(total, guesses.shape[0], self.normalize))

    def _convert(self, truths: Any, guesses: Any) -> Tuple[Any, Any, Optional[Tuple[Any, Any]]]:
        ops = get_array_ops(guesses)
        xp = ops.xp
        name = type(self).__name__
        if getattr(guesses, "ndim", None) != 2:
            raise ShapeMismatchError(f"{name}: guesses must be a 2d array of probabilities, got {describe(guesses)}")
        n_rows, n_classes = guesses.shape
        # A little slack: a float32 softmax can round a hair past 1.
        if n_rows and (float(guesses.min()) < -1e-5 or float(guesses.max()) > 1.0 + 1e-5):
            raise ConfigurationError(
                f"{name}: guesses must be probabilities in [0, 1] (the output of a softmax), "
                f"got values in [{float(guesses.min())}, {float(guesses.max())}]"
            )
        mask = ops.alloc2f(n_rows, n_classes, dtype=guesses.dtype)
        mask += 1
        negatives = None
        if hasattr(truths, "ndim") and truths.ndim == 2:
            if self.label_smoothing:
                raise ConfigurationError(f"{name}: label smoothing needs class labels, not probability rows")
            if tuple(truths.shape) != tuple(guesses.shape):
                raise ShapeMismatchError(
                    f"{name}: truths have shape {tuple(truths.shape)} but guesses {tuple(guesses.shape)}"
                )
            target = ops.asarray(truths, dtype=guesses.dtype)
            if self.missing_value is not None and not isinstance(self.missing_value, str):
                # a row that is all missing_value is masked out, as a missing id is
                missing_rows = (target == self.missing_value).all(axis=1)
                target[missing_rows] = 0
                mask[missing_rows] = 0
            if target.size and (float(target.min()) < 0.0 or float(target.max()) > 1.0):
                raise ConfigurationError(f"{name}: truth rows must hold values in [0, 1]")
            return target, mask, None
        labels = truths
        if not hasattr(truths, "ndim"):
            labels = list(truths)
            as_array = numpy.asarray(labels) if labels else numpy.zeros((0,), dtype="int64")
            if as_array.ndim == 1 and as_array.dtype.kind in "iu":
                labels = as_array  # plain class ids: no per-label Python loop
        if len(labels) != n_rows:
            raise ShapeMismatchError(f"{name}: {len(labels)} truths for {n_rows} rows of guesses")
        if hasattr(labels, "ndim"):
            if labels.ndim != 1 or labels.dtype.kind not in "iu":
                raise ConfigurationError(f"{name}: truths must be class ids, names or 2d rows, got {describe(truths)}")
            ids = ops.asarray(labels, dtype="int64")
            missing = ids == self.missing_value if self.missing_value is not None else None
        else:
            ids, missing, negatives = self._labels_to_ids(labels, n_classes, xp)
        if missing is not None:
            ids = xp.where(missing, 0, ids)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= n_classes):
            raise ConfigurationError(
                f"{name}: class ids must be in [0, {n_classes}), got values in [{int(ids.min())}, {int(ids.max())}]"
            )
        target = to_categorical(ids, n_classes=n_classes, label_smoothing=self.label_smoothing)
        target = ops.asarray(target, dtype=guesses.dtype)
        if missing is not None:
            mask[missing] = 0
        if negatives is not None:
            rows, columns = negatives
            mask[rows] = 0
            mask[rows, columns] = 1
            target[rows, columns] = 0
        return target, mask, negatives

    def _labels_to_ids(self, labels: List[Any], n_classes: int, xp: Any) -> Tuple[Any, Any, Any]:
        name = type(self).__name__
        ids = []
        missing = []
        negative_rows = []
        for row, label in enumerate(labels):
            if self.missing_value is not None and label == self.missing_value:
                ids.append(0)
                missing.append(True)
                continue
            missing.append(False)
            if isinstance(label, str):
                if self.names is None:
                    raise ConfigurationError(f"{name}: string truths like {label!r} need names=[...]")
                if self.neg_prefix and label.startswith(self.neg_prefix):
                    label = label[len(self.neg_prefix):]
                    negative_rows.append(row)
                if label not in self._name_to_i:
                    raise ConfigurationError(f"{name}: unknown label {label!r}; known: {list(self.names)[:20]}")
                ids.append(self._name_to_i[label])
            elif isinstance(label, (int,)) or hasattr(label, "__index__"):
                ids.append(int(label))
            else:
                raise ConfigurationError(f"{name}: a truth must be a class id or name, got {label!r}")
        id_array = xp.asarray(ids, dtype="int64").reshape((len(ids),))
        missing_array = xp.asarray(missing, dtype=bool).reshape((len(missing),)) if any(missing) else None
        negatives = None
        if negative_rows:
            rows = xp.asarray(negative_rows, dtype="int64")
            negatives = (rows, id_array[rows])
        return id_array, missing_array, negatives


class SequenceCategoricalCrossentropy(Loss):
    """Categorical cross-entropy over a list of sequences (one guesses array per sequence)."""

    def __init__(
        self,
        *,
        normalize: bool = True,
        names: Optional[Sequence[str]] = None,
        missing_value: Optional[Union[str, int]] = None,
        neg_prefix: Optional[str] = None,
        label_smoothing: float = 0.0,
    ) -> None:
        self.normalize = normalize
        self.cc = CategoricalCrossentropy(
            normalize=False,
            names=names,
            missing_value=missing_value,
            neg_prefix=neg_prefix,
            label_smoothing=label_smoothing,
        )

    def __call__(self, guesses: Sequence[Any], truths: Sequence[Any]) -> Tuple[List[Any], float]:
        """Per-sequence gradients and the total loss."""
        self._check(guesses, truths)
        d_guesses, total = [], 0.0
        scale = 1.0 / len(guesses) if self.normalize and len(guesses) else 1.0
        for guess, truth in zip(guesses, truths):
            grad, loss = self.cc(guess, truth)
            d_guesses.append(grad * scale if scale != 1.0 else grad)
            total += loss * scale
        return d_guesses, total

    def get_grad(self, guesses: Sequence[Any], truths: Sequence[Any]) -> List[Any]:
        """One gradient per sequence, divided by the number of sequences if `normalize`."""
        return self(guesses, truths)[0]

    def get_loss(self, guesses: Sequence[Any], truths: Sequence[Any]) -> float:
        """The summed cross-entropy, divided by the number of sequences if `normalize`."""
        return self(guesses, truths)[1]

    def _check(self, guesses: Sequence[Any], truths: Sequence[Any]) -> None:
        if len(guesses) != len(truths):
            raise ShapeMismatchError(
                f"SequenceCategoricalCrossentropy: {len(guesses)} guess sequences but {len(truths)} truth sequences"
            )


class L2Distance(Loss):
    """Half the squared error: gradient ``guesses - truths`` (per row, divided by the row count if normalize)."""

    def __init__(self, *, normalize: bool = True) -> None:
        self.normalize = normalize

    def __call__(self, guesses: Any, truths: Any) -> Tuple[Any, float]:
        """The gradient and the loss."""
        grad = self.get_grad(guesses, truths)
        return grad, self._loss_from_difference(guesses, truths)

    def get_grad(self, guesses: Any, truths: Any) -> Any:
        """``guesses - truths``, divided by the number of rows if `normalize`."""
        self._check(guesses, truths)
        ops = get_array_ops(guesses)
        difference = ops.xp.subtract(guesses, truths, dtype=_grad_dtype(guesses))
        return _per_row(difference, guesses.shape[0], self.normalize)

    def get_loss(self, guesses: Any, truths: Any) -> float:
        """``0.5 * sum((guesses - truths) ** 2)``, divided by the number of rows if `normalize`."""
        self._check(guesses, truths)
        return self._loss_from_difference(guesses, truths)

    def _loss_from_difference(self, guesses: Any, truths: Any) -> float:
        ops = get_array_ops(guesses)
        difference = ops.xp.subtract(guesses, truths, dtype="float64")
        total = 0.5 * float((difference * difference).sum())
        return _per_row(total, guesses.shape[0], self.normalize)

    def _check(self, guesses: Any, truths: Any) -> None:
        _check_same_shape("L2Distance", guesses, truths)


class CosineDistance(Loss):
    """``1 - cosine similarity`` between each guess row and its truth row."""

    def __init__(self, *, normalize: bool = True, ignore_zeros: bool = False) -> None:
        self.normalize = normalize
        self.ignore_zeros = ignore_zeros
        self.eps = 1e-8

    def get_similarity(self, guesses: Any, truths: Any) -> Any:
        """Row-wise cosine similarities, shape (N, 1)."""
        self._check(guesses, truths)
        return self._cosine(guesses, truths, get_array_ops(guesses).xp)[0]

    def get_grad(self, guesses: Any, truths: Any) -> Any:
        """d(1 - cos)/d(guesses) per row; zero-truth rows get 0 if `ignore_zeros`; / rows if `normalize`."""
        self._check(guesses, truths)
        xp = get_array_ops(guesses).xp
        cosine, norm_guesses, norm_truths = self._cosine(guesses, truths, xp)
        d_cosine = truths / (norm_guesses * norm_truths) - cosine * guesses / (norm_guesses**2)
        d_guesses = (-d_cosine).astype(_grad_dtype(guesses), copy=False)
        if self.ignore_zeros:
            d_guesses *= self._nonzero_rows(truths, xp)
        return _per_row(d_guesses, guesses.shape[0], self.normalize)

    def get_loss(self, guesses: Any, truths: Any) -> float:
        """``sum(1 - cos)`` over rows (zero-truth rows skipped if `ignore_zeros`), / rows if `normalize`."""
        cosine = self.get_similarity(guesses, truths)
        losses = 1.0 - cosine
        if self.ignore_zeros:
            losses = losses * self._nonzero_rows(truths, get_array_ops(guesses).xp)
        return _per_row(float(losses.sum(dtype="float64")), guesses.shape[0], self.normalize)

    def _cosine(self, guesses: Any, truths: Any, xp: Any) -> Tuple[Any, Any, Any]:
        """Row-wise cosine similarities (N, 1) and the row norms of guesses and truths."""
        # Clamp tiny norms (as torch's cosine_similarity does) so zero rows give 0, not nan.
        norm_guesses = xp.maximum(xp.sqrt((guesses * guesses).sum(axis=1, keepdims=True)), self.eps)
        norm_truths = xp.maximum(xp.sqrt((truths * truths).sum(axis=1, keepdims=True)), self.eps)
        cosine = (guesses * truths).sum(axis=1, keepdims=True) / (norm_guesses * norm_truths)
        return cosine, norm_guesses, norm_truths

    def _nonzero_rows(self, truths: Any, xp: Any) -> Any:
        return (xp.abs(truths).sum(axis=1, keepdims=True) != 0).astype(truths.dtype)

    def _check(self, guesses: Any, truths: Any) -> None:
        _check_same_shape("CosineDistance", guesses, truths, ndim=2)


@registry.losses("CategoricalCrossentropy.v1")
def configure_CategoricalCrossentropy_v1(
    normalize: bool = True, names: Optional[Sequence[str]] = None, missing_value: Optional[Union[str, int]] = None
) -> CategoricalCrossentropy:
    """The registered `CategoricalCrossentropy.v1`: a `CategoricalCrossentropy` from config values."""
    return CategoricalCrossentropy(normalize=normalize, names=names, missing_value=missing_value)


@registry.losses("CategoricalCrossentropy.v2")
def configure_CategoricalCrossentropy_v2(
    normalize: bool = True,
    names: Optional[Sequence[str]] = None,
    missing_value: Optional[Union[str, int]] = None,
    neg_prefix: Optional[str] = None,
) -> CategoricalCrossentropy:
    """The registered `CategoricalCrossentropy.v2`: v1 plus `neg_prefix` (a truth "!PER" with neg_prefix "!" says the row is not PER)."""
    return CategoricalCrossentropy(
        normalize=normalize, names=names, missing_value=missing_value, neg_prefix=neg_prefix
    )


@registry.losses("CategoricalCrossentropy.v3")
def configure_CategoricalCrossentropy_v3(
    normalize: bool = True,
    names: Optional[Sequence[str]] = None,
    missing_value: Optional[Union[str, int]] = None,
    neg_prefix: Optional[str] = None,
    label_smoothing: float = 0.0,
) -> CategoricalCrossentropy:
    """The registered `CategoricalCrossentropy.v3`: v2 plus `label_smoothing`."""
    return CategoricalCrossentropy(
        normalize=normalize,
        names=names,
        missing_value=missing_value,
        neg_prefix=neg_prefix,
        label_smoothing=label_smoothing,
    )


@registry.losses("SequenceCategoricalCrossentropy.v1")
def configure_SequenceCategoricalCrossentropy_v1(
    normalize: bool = True, names: Optional[Sequence[str]] = None
) -> SequenceCategoricalCrossentropy:
    """The registered `SequenceCategoricalCrossentropy.v1`: one loss over a list of sequences."""
    return SequenceCategoricalCrossentropy(normalize=normalize, names=names)


@registry.losses("SequenceCategoricalCrossentropy.v2")
def configure_SequenceCategoricalCrossentropy_v2(
    normalize: bool = True, names: Optional[Sequence[str]] = None, neg_prefix: Optional[str] = None
) -> SequenceCategoricalCrossentropy:
    """The registered `SequenceCategoricalCrossentropy.v2`: v1 plus `neg_prefix`."""
    return SequenceCategoricalCrossentropy(normalize=normalize, names=names, neg_prefix=neg_prefix)


@registry.losses("SequenceCategoricalCrossentropy.v3")
def configure_SequenceCategoricalCrossentropy_v3(
    normalize: bool = True,
    names: Optional[Sequence[str]] = None,
    neg_prefix: Optional[str] = None,
    missing_value: Optional[Union[str, int]] = None,
    label_smoothing: float = 0.0,
) -> SequenceCategoricalCrossentropy:
    """The registered `SequenceCategoricalCrossentropy.v3`: v2 plus `missing_value` and `label_smoothing`."""
    return SequenceCategoricalCrossentropy(
        normalize=normalize,
        names=names,
        neg_prefix=neg_prefix,
        missing_value=missing_value,
        label_smoothing=label_smoothing,
    )


@registry.losses("L2Distance.v1")
def configure_L2Distance(normalize: bool = True) -> L2Distance:
    """The registered `L2Distance.v1`: an `L2Distance` from config values."""
    return L2Distance(normalize=normalize)


@registry.losses("CosineDistance.v1")
def configure_CosineDistance(normalize: bool = True, ignore_zeros: bool = False) -> CosineDistance:
    """The registered `CosineDistance.v1`: a `CosineDistance` from config values."""
    return CosineDistance(normalize=normalize, ignore_zeros=ignore_zeros)
