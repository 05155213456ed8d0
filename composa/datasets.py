"""Registered datasets and the readers for feature files (.npy, .npz, .csv, .jsonl).

A dataset function returns ``((train_X, train_Y), (dev_X, dev_Y))``: float32 feature
rows and int32 class ids, the shape ``composa train`` expects. Readers never unpickle:
``.npy``/``.npz`` load with ``allow_pickle=False``.
"""
import json
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

import numpy

from .config import registry
from .errors import DataFileError

__all__ = ["DataFileError", "digits", "labelled_files", "read_features", "read_labelled", "existing_data_file"]

Split = Tuple[numpy.ndarray, numpy.ndarray]



@registry.datasets("digits.v1")
def digits(dev_fraction: float = 0.2, split_seed: int = 0, scale: bool = True) -> Tuple[Split, Split]:
    """scikit-learn's 8x8 handwritten digits (1797 rows of 64 features, 10 classes), split train/dev."""
    if not 0.0 < dev_fraction < 1.0:
        raise DataFileError(f"digits.v1: dev_fraction must be between 0 and 1, got {dev_fraction}")
    from sklearn.datasets import load_digits  # lazy: scikit-learn takes a second to import

    bunch = load_digits()
    X = numpy.asarray(bunch.data, dtype="float32")
    if scale:
        X /= 16.0  # pixel intensities are 0..16
    Y = numpy.asarray(bunch.target, dtype="int32")
    order = numpy.random.default_rng(split_seed).permutation(len(X))
    n_dev = int(round(len(X) * dev_fraction))
    dev, train = order[:n_dev], order[n_dev:]
    return (X[train], Y[train]), (X[dev], Y[dev])


@registry.datasets("labelled_files.v1")
def labelled_files(train: str, dev: str) -> Tuple[Split, Split]:
    """Your own data: two files of labelled rows (see :func:`read_labelled` for the formats)."""
    return read_labelled(train), read_labelled(dev)


def read_features(path: Union[str, Path]) -> numpy.ndarray:
    """Feature rows from .npy (2d array), .npz (key "X"), .csv (numbers) or .jsonl (a list, or {"x": [...]}, per line)."""
    path = existing_data_file(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        X = _load_numpy(path)
    elif suffix == ".npz":
        X = _npz_array(path, ("X", "x", "features"))
    elif suffix == ".csv":
        X = _read_csv(path)
        header = _csv_header(path)
        if X.shape[1] and header and header[-1].lower() in _LABEL_NAMES:
            X = X[:, :-1]
    elif suffix in (".jsonl", ".ndjson"):
        X = _jsonl_column(path, _FEATURE_NAMES, required=True)
    else:
        raise DataFileError(f"{path}: unknown file type {suffix!r}; use .npy, .npz, .csv or .jsonl")
    return _as_feature_rows(X, path)


def read_labelled(path: Union[str, Path]) -> Split:
    """Features and integer labels from .npz (keys "X", "y"), .csv (last column is the label) or .jsonl ({"x": [...], "y": 3})."""
    path = existing_data_file(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        X = _npz_array(path, ("X", "x", "features"))
        Y = _npz_array(path, ("y", "Y", "labels", "label"))
    elif suffix == ".csv":
        table = _read_csv(path)
        if table.shape[1] < 2:
            raise DataFileError(f"{path}: expected feature columns then a label column, got {table.shape[1]} column(s)")
        X, Y = table[:, :-1], table[:, -1]
    elif suffix in (".jsonl", ".ndjson"):
        X = _jsonl_column(path, _FEATURE_NAMES, required=True)
        Y = _jsonl_column(path, _LABEL_NAMES, required=True)
    elif suffix == ".npy":
        raise DataFileError(f"{path}: a .npy file holds one array and has no labels; use .npz with keys X and y")
    else:
        raise DataFileError(f"{path}: unknown file type {suffix!r}; use .npz, .csv or .jsonl")
    X = _as_feature_rows(X, path)
    Y = _as_labels(Y, path)
    if len(Y) != len(X):
        raise DataFileError(f"{path}: {len(X)} feature rows but {len(Y)} labels")
    return X, Y


_FEATURE_NAMES = ("x", "X", "features")
_LABEL_NAMES = ("y", "Y", "label", "labels")


def existing_data_file(path: Union[str, Path]) -> Path:
    """`path` as a Path, or DataFileError when it is missing or a directory."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"data file {path} does not exist")
    if path.is_dir():
        raise DataFileError(f"{path} is a directory; expected a data file")
    return path


def _load_numpy(path: Path) -> Any:
    try:
        return numpy.load(path, allow_pickle=False)
    except ValueError as error:  # object arrays would need pickle: refuse them
        raise DataFileError(f"{path}: cannot read without unpickling ({error})") from error
    except OSError as error:
        raise DataFileError(f"{path}: not a numpy file ({error})") from error


def _npz_array(path: Path, names: Tuple[str, ...]) -> numpy.ndarray:
    archive = _load_numpy(path)
    if not hasattr(archive, "files"):
        raise DataFileError(f"{path}: expected a .npz archive")
    with archive:
        for name in names:
            if name in archive.files:
                return archive[name]
    raise DataFileError(f"{path}: no array named {' or '.join(names)}; it holds {sorted(archive.files)}")


def _csv_header(path: Path) -> Optional[List[str]]:
    with path.open() as file_:
        first = file_.readline().strip()
    cells = [cell.strip() for cell in first.split(",")]
    try:
        [float(cell) for cell in cells]
    except ValueError:
        return cells
    return None


def _read_csv(path: Path) -> numpy.ndarray:
    skip = 1 if _csv_header(path) else 0
    if not any(line.strip() for line in path.read_text().splitlines()[skip:]):
        raise DataFileError(f"{path}: the file has no rows of data")
    try:
        table = numpy.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype="float64")
    except ValueError as error:
        raise DataFileError(f"{path}: every cell must be a number ({error})") from error
    return table


def _jsonl_column(path: Path, names: Tuple[str, ...], required: bool) -> Any:
    rows = []
    with path.open() as file_:
        for line_number, line in enumerate(file_, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataFileError(f"{path}:{line_number}: not valid JSON ({error.msg})") from error
            if isinstance(record, dict):
                key = next((name for name in names if name in record), None)
                if key is None:
                    raise DataFileError(f"{path}:{line_number}: expected a key {' or '.join(names)}, got {sorted(record)}")
                rows.append(record[key])
            elif names is _FEATURE_NAMES and isinstance(record, list):
                rows.append(record)
            else:
                raise DataFileError(f"{path}:{line_number}: expected an object with key {names[0]!r}")
    try:
        return numpy.asarray(rows, dtype="float64")
    except ValueError as error:
        raise DataFileError(f"{path}: rows must all be numbers of the same length ({error})") from error


def _as_feature_rows(X: Any, path: Path) -> numpy.ndarray:
    X = numpy.asarray(X)
    if X.dtype.kind not in "biuf":
        raise DataFileError(f"{path}: features must be numbers, got dtype {X.dtype}")
    if X.ndim == 1 and X.size:
        # One number per row (a .jsonl of {"x": 0.5} lines, a 1d array): a single feature column.
        X = X.reshape(-1, 1)
    if X.ndim != 2:
        raise DataFileError(f"{path}: expected a 2d table of feature rows, got shape {X.shape}")
    if not numpy.isfinite(X).all():
        raise DataFileError(f"{path}: features contain NaN or infinity")
    return numpy.ascontiguousarray(X, dtype="float32")


def _as_labels(Y: Any, path: Path) -> numpy.ndarray:
    Y = numpy.asarray(Y).reshape(-1)
    if Y.dtype.kind not in "biuf" or (Y.dtype.kind == "f" and not numpy.all(Y == numpy.round(Y))):
        raise DataFileError(f"{path}: labels must be integer class ids, got {Y[:5].tolist()}...")
    if Y.size and Y.min() < 0:
        raise DataFileError(f"{path}: labels must be class ids >= 0, got {int(Y.min())}")
    return Y.astype("int32")
