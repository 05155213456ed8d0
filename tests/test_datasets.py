"""Registered datasets and the feature-file readers used by `composa evaluate` and `composa predict`."""
import json

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composa import registry
from composa.datasets import DataFileError, digits, read_features, read_labelled


def test_digits_is_registered_and_split_deterministically():
    assert registry.get("datasets", "digits.v1") is digits
    (train_X, train_Y), (dev_X, dev_Y) = digits()
    assert train_X.shape == (1438, 64) and dev_X.shape == (359, 64)
    assert train_X.dtype == numpy.float32 and train_Y.dtype == numpy.int32
    assert 0.0 <= train_X.min() and train_X.max() <= 1.0
    assert set(numpy.unique(dev_Y)) == set(range(10))
    numpy.testing.assert_array_equal(digits()[1][0], dev_X)
    assert not numpy.array_equal(digits(split_seed=1)[1][1], dev_Y)


def test_digits_rejects_a_bad_fraction():
    with pytest.raises(DataFileError, match="dev_fraction"):
        digits(dev_fraction=1.5)


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(min_value=1, max_value=6),
    width=st.integers(min_value=1, max_value=5),
    fmt=st.sampled_from(["npz", "csv", "jsonl"]),
)
def test_labelled_files_read_back_what_was_written(tmp_path_factory, rows, width, fmt):
    rng = numpy.random.default_rng(rows * 10 + width)
    X = rng.random((rows, width)).astype("float32")
    Y = rng.integers(0, 4, rows).astype("int32")
    path = tmp_path_factory.mktemp("data") / f"data.{fmt}"
    if fmt == "npz":
        numpy.savez(path, X=X, y=Y)
    elif fmt == "csv":
        numpy.savetxt(path, numpy.hstack([X, Y[:, None]]), delimiter=",", fmt="%.9g")
    else:
        path.write_text("".join(json.dumps({"x": x, "y": int(y)}) + "\n" for x, y in zip(X.tolist(), Y)))
    read_X, read_Y = read_labelled(path)
    numpy.testing.assert_allclose(read_X, X, rtol=1e-6)
    numpy.testing.assert_array_equal(read_Y, Y)
    numpy.testing.assert_allclose(read_features(path) if fmt != "csv" else read_X, X, rtol=1e-6)


def test_feature_readers_accept_headers_and_bare_lists(tmp_path):
    (tmp_path / "rows.csv").write_text("a,b,label\n1,2,0\n3,4,1\n")
    numpy.testing.assert_array_equal(read_features(tmp_path / "rows.csv"), [[1, 2], [3, 4]])
    (tmp_path / "rows.jsonl").write_text("[1, 2]\n\n[3, 4]\n")
    numpy.testing.assert_array_equal(read_features(tmp_path / "rows.jsonl"), [[1, 2], [3, 4]])


@pytest.mark.parametrize("fmt", ["npz", "jsonl"])
def test_one_number_per_row_is_one_feature_column(tmp_path, fmt):
    path = tmp_path / f"data.{fmt}"
    if fmt == "npz":
        numpy.savez(path, X=numpy.array([0.5, 1.5, 2.5]), y=numpy.array([0, 1, 1]))
    else:
        path.write_text("".join(json.dumps({"x": x, "y": y}) + "\n" for x, y in [(0.5, 0), (1.5, 1), (2.5, 1)]))
    X, Y = read_labelled(path)
    numpy.testing.assert_array_equal(X, [[0.5], [1.5], [2.5]])
    numpy.testing.assert_array_equal(Y, [0, 1, 1])


def test_unusable_files_get_clear_errors(tmp_path):
    with pytest.raises(DataFileError, match="does not exist"):
        read_features(tmp_path / "missing.csv")
    (tmp_path / "rows.txt").write_text("1,2\n")
    with pytest.raises(DataFileError, match="unknown file type '.txt'"):
        read_features(tmp_path / "rows.txt")
    (tmp_path / "bad.csv").write_text("1,2\n3,x\n")
    with pytest.raises(DataFileError, match="number"):
        read_features(tmp_path / "bad.csv")
    (tmp_path / "bad.jsonl").write_text('{"x": [1]}\n{oops\n')
    with pytest.raises(DataFileError, match="bad.jsonl:2"):
        read_features(tmp_path / "bad.jsonl")
    numpy.savez(tmp_path / "nolabels.npz", X=numpy.zeros((2, 2)))
    with pytest.raises(DataFileError, match="no array named y"):
        read_labelled(tmp_path / "nolabels.npz")
    (tmp_path / "fractional.csv").write_text("1,2,0.5\n")
    with pytest.raises(DataFileError, match="integer class ids"):
        read_labelled(tmp_path / "fractional.csv")
    numpy.save(tmp_path / "nan.npy", numpy.array([[1.0, numpy.nan]]))
    with pytest.raises(DataFileError, match="NaN"):
        read_features(tmp_path / "nan.npy")


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    numpy.save(tmp_path / "objects.npy", numpy.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match="unpickling"):
        read_features(tmp_path / "objects.npy")
