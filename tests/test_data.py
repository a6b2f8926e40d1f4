"""Tests of mlpbook.data: the offline loaders, their fixed splits, standardisation from the
training part only, the IDX reader's checks, and the mini-batch iterator."""
import gzip
import random
import socket

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mlpbook.data as data
from mlpbook.data import (Dataset, IDXFormatError, load_digits, load_mnist, load_mnist1d,
                          minibatches, num_batches, read_idx, stratified_split)


def no_network(monkeypatch):
    """Make every attempt to open a network connection fail loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError("a loader tried to use the network")

    class NoSocket(socket.socket):  # a class, so that modules subclassing socket still import
        def __init__(self, *args, **kwargs):
            refuse()

    monkeypatch.setattr(socket, "socket", NoSocket)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def assert_parts(ds: Dataset, sizes, features, dtype):
    for part, n in zip(("train", "val", "test"), sizes):
        X, y = getattr(ds, "X_" + part), getattr(ds, "y_" + part)
        assert X.shape == (n, features) and X.dtype == dtype and X.flags.c_contiguous
        assert y.shape == (n,) and y.dtype == np.int64
        assert y.min() >= 0 and y.max() < ds.num_classes


# ---------------------------------------------------------------- digits

def test_digits_shapes_dtypes_and_split_sizes(monkeypatch):
    no_network(monkeypatch)
    for dtype in (np.float32, np.float64):
        ds = load_digits(dtype=dtype)
        assert_parts(ds, (1079, 359, 359), 64, dtype)
        assert ds.sample_shape == (8, 8) and ds.num_classes == 10 and ds.name == "digits"


def test_digits_are_the_real_1797_images():
    ds = load_digits(standardize=False)
    X = np.concatenate([ds.X_train, ds.X_val, ds.X_test])
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert X.shape == (1797, 64) and ds.mean is None and ds.std is None
    assert np.array_equal(X, np.round(X)) and X.min() == 0 and X.max() == 16
    assert np.array_equal(np.bincount(y), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])


def test_digits_split_is_stratified_and_deterministic():
    a, b = load_digits(), load_digits()
    for part in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        assert np.array_equal(getattr(a, part), getattr(b, part))
    counts = np.bincount(np.concatenate([a.y_train, a.y_val, a.y_test]))
    for y in (a.y_val, a.y_test):
        assert np.array_equal(np.bincount(y, minlength=10), np.rint(0.2 * counts))


def test_digits_standardised_with_training_statistics_only():
    raw, ds = load_digits(standardize=False), load_digits()
    mean, std = raw.X_train.mean(0, keepdims=True), raw.X_train.std(0, keepdims=True)
    constant = std[0] == 0
    assert constant.sum() >= 1  # some border pixels are blank on every training image
    np.testing.assert_allclose(ds.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(ds.std[0, ~constant], std[0, ~constant], rtol=1e-12)
    assert np.all(ds.std[0, constant] == 1)  # constant pixels are only centred
    np.testing.assert_allclose(ds.X_train.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(ds.X_train.std(0)[~constant], 1, rtol=1e-12)
    # validation and test are transformed with the same (training) numbers, not their own
    np.testing.assert_allclose(ds.X_val, (raw.X_val - mean) / np.where(std == 0, 1, std), rtol=1e-12)
    np.testing.assert_allclose(ds.X_test, (raw.X_test - mean) / np.where(std == 0, 1, std), rtol=1e-12)
    assert np.abs(ds.X_val.mean(0)).max() > 1e-3  # so they are not centred exactly


def test_float32_digits_match_float64():
    a, b = load_digits(dtype=np.float32), load_digits(dtype=np.float64)
    np.testing.assert_allclose(a.X_train, b.X_train, rtol=1e-6, atol=1e-6)


def test_loaders_reject_a_non_floating_dtype():
    with pytest.raises(ValueError, match="floating"):
        load_digits(dtype=np.int32)


def test_returned_arrays_are_fresh_copies():
    a = load_digits()
    a.X_train[:] = 0
    assert np.abs(load_digits().X_train).max() > 0


# ---------------------------------------------------------------- MNIST-1D

def test_mnist1d_offline_and_leaves_global_random_state_alone(monkeypatch):
    no_network(monkeypatch)
    data._mnist1d_cache.clear()  # force the generator to run inside this test
    np.random.seed(123)
    random.seed(456)
    expected_np, expected_py = np.random.rand(3), [random.random() for _ in range(3)]
    np.random.seed(123)
    random.seed(456)
    ds = load_mnist1d()
    assert np.array_equal(np.random.rand(3), expected_np)
    assert [random.random() for _ in range(3)] == expected_py
    assert_parts(ds, (3501, 499, 1000), 40, np.float64)


def test_mnist1d_keeps_the_papers_test_split_and_carves_validation_from_training():
    raw = data._generate_mnist1d()
    assert raw["x"].shape == (4000, 40) and raw["x_test"].shape == (1000, 40)
    ds = load_mnist1d(standardize=False)
    assert np.array_equal(ds.X_test, raw["x_test"]) and np.array_equal(ds.y_test, raw["y_test"])
    # training and validation together are the 4,000 training samples, each exactly once
    both = np.concatenate([ds.X_train, ds.X_val])
    order = np.lexsort(both.T[::-1])
    assert np.array_equal(both[order], raw["x"][np.lexsort(raw["x"].T[::-1])])
    assert np.array_equal(np.bincount(ds.y_val), np.rint(0.125 * np.bincount(raw["y"])))


def test_mnist1d_standardisation_and_dtype():
    ds = load_mnist1d(dtype=np.float32)
    assert ds.X_train.dtype == np.float32
    np.testing.assert_allclose(ds.X_train.mean(0, dtype=np.float64), 0, atol=1e-5)
    np.testing.assert_allclose(ds.X_train.std(0, dtype=np.float64), 1, rtol=1e-5)


def test_mnist1d_cache_cannot_be_corrupted_by_the_caller():
    a = load_mnist1d(standardize=False)
    a.X_test[:] = 0
    assert np.abs(load_mnist1d(standardize=False).X_test).max() > 0
    with pytest.raises(ValueError):
        data._generate_mnist1d()["x"][0, 0] = 1.0  # the cached arrays are read-only


# ---------------------------------------------------------------- IDX files

def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


@pytest.mark.parametrize("dtype", list(CODES))
@pytest.mark.parametrize("compressed", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, compressed):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    raw = idx_bytes(array, CODES[dtype])
    path = tmp_path / ("a.idx.gz" if compressed else "a.idx")
    path.write_bytes(gzip.compress(raw) if compressed else raw)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative and out.shape == (2, 3, 4)
    assert np.array_equal(out, array) and out.flags.writeable


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"  # no .gz suffix, but compressed
    path.write_bytes(gzip.compress(idx_bytes(np.arange(5, dtype=np.uint8), 0x08)))
    assert read_idx(path).tolist() == [0, 1, 2, 3, 4]


GOOD = idx_bytes(np.arange(60, dtype=np.uint8).reshape(3, 4, 5), 0x08)


@pytest.mark.parametrize("content, message", [
    (GOOD[:-1], "truncated"),
    (GOOD[:30], "truncated"),
    (GOOD + b"\x00", "extra bytes"),
    (GOOD[:2], "too short"),
    (GOOD[:10], "too few"),
    (b"\x01\x02" + GOOD[2:], "not an IDX file"),
    (GOOD[:2] + b"\x07" + GOOD[3:], "dtype code 0x07"),
    (GOOD[:3] + b"\x00", "0 dimensions"),
    (gzip.compress(GOOD, mtime=0)[:-9], "gzip stream is truncated or corrupt"),
    (gzip.compress(GOOD, mtime=0)[:-4] + b"\xff\xff\xff\xff", "gzip stream is truncated or corrupt"),
])
def test_read_idx_rejects_bad_files_naming_the_file(tmp_path, content, message):
    path = tmp_path / "broken-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(IDXFormatError, match=message) as err:
        read_idx(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, ValueError)


def write_fake_mnist(folder, n_train=120, n_test=30, rows=4, cols=5, gz=True, dotted=False, labels=None):
    rng = np.random.default_rng(0)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, rows, cols), dtype=np.uint8)
        y = np.arange(n, dtype=np.uint8) % 10 if labels is None else labels
        for kind, array, code in (("images", images, "idx3"), ("labels", y, "idx1")):
            name = f"{stem}-{kind}.{code}-ubyte" if dotted else f"{stem}-{kind}-{code}-ubyte"
            raw = idx_bytes(array, 0x08)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)


@pytest.mark.parametrize("gz, dotted", [(True, False), (False, True)])
def test_load_mnist_from_synthetic_idx_files(tmp_path, monkeypatch, gz, dotted):
    no_network(monkeypatch)
    write_fake_mnist(tmp_path, gz=gz, dotted=dotted)
    ds = load_mnist(tmp_path, dtype=np.float32)
    assert_parts(ds, (100, 20, 30), 20, np.float32)  # 1/6 of each class's 12 images -> 2
    assert ds.sample_shape == (4, 5)
    raw = load_mnist(tmp_path, standardize=False)
    assert raw.X_test.max() <= 255 and np.array_equal(raw.X_test, np.round(raw.X_test))
    np.testing.assert_allclose(ds.mean, raw.X_train.mean(0, keepdims=True))


def test_load_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images"):
        load_mnist(tmp_path)
    write_fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(29, np.uint8), 0x08)))
    with pytest.raises(IDXFormatError, match=r"\(30, 4, 5\) and \(29,\)"):
        load_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.full(30, 12, np.uint8), 0x08)))
    with pytest.raises(IDXFormatError, match="0..9"):
        load_mnist(tmp_path)


# ---------------------------------------------------------------- splits

@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=200),
       st.floats(0, 0.45), st.floats(0, 0.45), st.integers(0, 2**32 - 1))
def test_stratified_split_partitions_every_class(labels, f1, f2, seed):
    y = np.array(labels)
    parts = stratified_split(y, (f1, f2), rng=seed)
    joined = np.concatenate(parts)
    assert np.array_equal(np.sort(joined), np.arange(len(y)))  # disjoint, complete
    counts = np.bincount(y, minlength=5)
    for part, f in zip(parts[1:], (f1, f2)):
        assert np.array_equal(np.bincount(y[part], minlength=5), np.rint(f * counts))
    assert all(np.all(np.diff(p) > 0) for p in parts)  # sorted
    again = stratified_split(y, (f1, f2), rng=seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


def test_stratified_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match="sum to less than 1"):
        stratified_split(np.zeros(4, int), (0.5, 0.5))
    with pytest.raises(ValueError, match="labels"):
        stratified_split(np.zeros(4), (0.5,))


def test_column_stats_in_chunks_equals_direct():
    X = np.random.default_rng(1).integers(0, 256, (1000, 7)).astype(np.uint8)
    mean, std = data._column_stats(X, chunk=64)
    np.testing.assert_allclose(mean, X.mean(0, keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(std, X.std(0, keepdims=True), rtol=1e-12)


# ---------------------------------------------------------------- mini-batches

@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 64), st.booleans(), st.booleans())
def test_minibatches_visit_every_sample_once(n, batch_size, shuffle, drop_last):
    X = np.arange(n, dtype=np.float64)[:, None] * np.ones((1, 3))
    y = np.arange(n)
    batches = list(minibatches(X, y, batch_size, shuffle=shuffle, rng=0, drop_last=drop_last))
    assert len(batches) == num_batches(n, batch_size, drop_last)
    seen = np.concatenate([yb for _, yb in batches]) if batches else np.array([], int)
    for Xb, yb in batches:
        assert np.array_equal(Xb[:, 0], yb) and len(yb) <= batch_size
    if drop_last:
        assert all(len(yb) == batch_size for _, yb in batches)
        assert len(seen) == n - n % batch_size and len(set(seen.tolist())) == len(seen)
    else:
        assert np.array_equal(np.sort(seen), y)
    if not shuffle:
        assert np.array_equal(seen, np.arange(len(seen)))


def test_minibatches_are_reproducible_and_reshuffled_every_epoch():
    X, y = np.zeros((50, 2)), np.arange(50)
    def orders(seed):
        rng = np.random.default_rng(seed)
        return [np.concatenate([yb for _, yb in minibatches(X, y, 8, rng=rng)]) for _ in range(3)]
    first, again = orders(7), orders(7)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], first[1])


def test_minibatches_without_shuffle_are_views():
    X, y = np.zeros((10, 2)), np.arange(10)
    Xb, yb = next(minibatches(X, y, 4, shuffle=False))
    assert np.shares_memory(Xb, X) and np.shares_memory(yb, y)


def test_minibatches_do_not_touch_global_random_state():
    np.random.seed(0)
    expected = np.random.rand()
    np.random.seed(0)
    list(minibatches(np.zeros((5, 1)), np.arange(5), 2, rng=3))
    assert np.random.rand() == expected


def test_minibatches_bad_input():
    with pytest.raises(ValueError, match=r"\(5, 1\) and \(4,\)"):
        minibatches(np.zeros((5, 1)), np.arange(4), 2)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            minibatches(np.zeros((5, 1)), np.arange(5), bad)


def test_dataset_batches_use_the_training_part():
    ds = load_digits()
    batches = list(ds.batches(500, rng=0))
    assert [len(yb) for _, yb in batches] == [500, 500, 79]
    assert np.array_equal(np.sort(np.concatenate([yb for _, yb in batches])), np.sort(ds.y_train))
    assert "digits" in repr(ds) and "(1079, 64)" in repr(ds)
