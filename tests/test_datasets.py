"""Tests of newtoncnn.datasets: the oracle is data the tests write themselves."""

import gzip
import io
import os
import pickle
import zlib

import numpy as np
import pytest

from newtoncnn.datasets import (
    ENV_VAR, Normalizer, load_bundled, load_cifar10, load_dataset,
    load_fashion_mnist, load_idx_dataset, load_mnist, read_idx,
)

FASHION_DIR = "/usr/share/datasets/fashion-mnist"
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# --------------------------------------------------------------------------
# helpers writing files
# --------------------------------------------------------------------------

def idx_bytes(a):
    """Encode ``a`` as IDX (big-endian), the format's reference layout."""
    codes = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B,
             np.dtype("i4"): 0x0C, np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}
    a = np.asarray(a)
    header = bytes([0, 0, codes[a.dtype], a.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(path, a, compress):
    data = idx_bytes(a)
    if compress:
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def make_split(rng, n, h=28, w=28, k=10):
    return (rng.integers(0, 256, (n, h, w), dtype=np.uint8),
            rng.integers(0, k, n).astype(np.uint8))


def write_idx_dir(directory, rng, compress=True, n_train=12, n_test=7,
                  names=IDX_FILES):
    directory.mkdir(parents=True, exist_ok=True)
    arrays = make_split(rng, n_train) + make_split(rng, n_test)
    for name, a in zip(names, arrays):
        write_idx(directory / (name + (".gz" if compress else "")), a, compress)
    return arrays


def write_cifar_dir(directory, rng, n_per_batch=2, protocol=2):
    """Write six tiny CIFAR-10 batches; return the raw (rows, labels)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n_per_batch)]
        batch = {b"batch_label": name.encode(), b"data": rows,
                 b"labels": labels, b"filenames": [b"x.png"] * n_per_batch}
        with open(directory / name, "wb") as f:
            pickle.dump(batch, f, protocol=protocol)
        written[name] = (rows, labels)
    return written


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


# --------------------------------------------------------------------------
# read_idx
# --------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
def test_read_idx_round_trip(tmp_path, rng, compress, dtype):
    a = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    out = read_idx(write_idx(tmp_path / "a.idx", a, compress))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, a)
    out[0, 0, 0] = 1  # writable


def test_read_idx_labels_1d(tmp_path):
    y = np.array([3, 1, 4, 1, 5], np.uint8)
    out = read_idx(write_idx(tmp_path / "y.gz", y, True))
    assert out.shape == (5,)
    np.testing.assert_array_equal(out, y)


def test_read_idx_is_exactly_the_bytes(tmp_path):
    # Hand-written file: 2 images of 1x2 pixels, uint8.
    raw = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 7, 8, 9, 10])
    (tmp_path / "f").write_bytes(raw)
    np.testing.assert_array_equal(read_idx(tmp_path / "f"),
                                  [[[7, 8]], [[9, 10]]])


@pytest.mark.parametrize("header", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01",
                                    b"\x00\x00\x08\x00", b"PK\x03\x04"])
def test_read_idx_bad_magic(tmp_path, header):
    path = tmp_path / "bad-magic"
    path.write_bytes(header + b"\x00\x00\x00\x01" + b"\x05")
    with pytest.raises(ValueError, match="not an IDX file") as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_truncated_data(tmp_path, rng, compress):
    raw = idx_bytes(make_split(rng, 4)[0])[:-10]
    path = tmp_path / "short"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    with pytest.raises(ValueError, match="truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_truncated_header_and_trailing(tmp_path, rng):
    (tmp_path / "h").write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(tmp_path / "h")
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "tiny")
    (tmp_path / "long").write_bytes(idx_bytes(np.zeros(3, np.uint8)) + b"\x00")
    with pytest.raises(ValueError, match="trailing"):
        read_idx(tmp_path / "long")


def test_read_idx_truncated_gzip_stream(tmp_path, rng):
    data = gzip.compress(idx_bytes(make_split(rng, 20)[0]))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# --------------------------------------------------------------------------
# IDX directories
# --------------------------------------------------------------------------

@pytest.mark.parametrize("compress", [True, False])
def test_load_idx_dataset_round_trip(tmp_path, rng, compress):
    Xtr, ytr, Xte, yte = write_idx_dir(tmp_path, rng, compress)
    data = load_idx_dataset(tmp_path)
    assert data.X_train.shape == (12, 1, 28, 28)
    assert data.X_test.shape == (7, 1, 28, 28)
    assert data.X_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    np.testing.assert_array_equal(data.X_train[:, 0], Xtr)
    np.testing.assert_array_equal(data.y_train, ytr)
    np.testing.assert_array_equal(data.X_test[:, 0], Xte)
    np.testing.assert_array_equal(data.y_test, yte)
    assert len(data) == 4


def test_load_idx_dataset_alternative_names(tmp_path, rng):
    names = ("train-images.idx3-ubyte", "train-labels.idx1-ubyte",
             "test-images-idx3-ubyte", "t10k-labels.idx1-ubyte")
    arrays = write_idx_dir(tmp_path, rng, compress=False, names=names)
    data = load_idx_dataset(str(tmp_path))
    np.testing.assert_array_equal(data.X_test[:, 0], arrays[2])


@pytest.mark.parametrize("missing", range(4))
def test_load_idx_dataset_missing_file_message(tmp_path, rng, missing):
    write_idx_dir(tmp_path, rng)
    os.remove(tmp_path / (IDX_FILES[missing] + ".gz"))
    with pytest.raises(FileNotFoundError) as info:
        load_idx_dataset(tmp_path)
    msg = str(info.value)
    assert IDX_FILES[missing] in msg
    for other in set(IDX_FILES) - {IDX_FILES[missing]}:
        assert other not in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert ENV_VAR in msg


def test_load_idx_dataset_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_fashion_mnist(tmp_path / "absent")


def test_load_idx_dataset_count_mismatch(tmp_path, rng):
    write_idx_dir(tmp_path, rng)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz",
              np.zeros(3, np.uint8), True)
    with pytest.raises(ValueError, match="labels"):
        load_idx_dataset(tmp_path)


def test_env_var_resolution(tmp_path, rng, monkeypatch):
    arrays = write_idx_dir(tmp_path / "direct", rng)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "direct"))
    np.testing.assert_array_equal(load_fashion_mnist().y_train, arrays[1])
    np.testing.assert_array_equal(load_idx_dataset().y_test, arrays[3])
    np.testing.assert_array_equal(load_mnist().y_test, arrays[3])
    # An explicit directory wins over the environment.
    other = write_idx_dir(tmp_path / "explicit", rng, n_train=5)
    np.testing.assert_array_equal(
        load_idx_dataset(tmp_path / "explicit").y_train, other[1])


def test_env_var_parent_with_subdirectories(tmp_path, rng, monkeypatch):
    fashion = write_idx_dir(tmp_path / "fashion-mnist", rng, n_train=3)
    mnist = write_idx_dir(tmp_path / "mnist", rng, n_train=4)
    cifar = write_cifar_dir(tmp_path / "cifar-10-batches-py", rng)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    np.testing.assert_array_equal(load_dataset("fashion-mnist").y_train,
                                  fashion[1])
    np.testing.assert_array_equal(load_dataset("MNIST").y_train, mnist[1])
    assert load_dataset("cifar10").y_test.tolist() == cifar["test_batch"][1]


def test_env_var_missing_files_message(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_fashion_mnist()


def test_mnist_without_directory(monkeypatch):
    with pytest.raises(FileNotFoundError, match=ENV_VAR):
        load_mnist()


# --------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_nchw_pixel_placement(tmp_path, rng, protocol):
    written = write_cifar_dir(tmp_path, rng, protocol=protocol)
    data = load_cifar10(tmp_path)
    assert data.X_train.shape == (10, 3, 32, 32)
    assert data.X_test.shape == (2, 3, 32, 32)
    assert data.X_train.dtype == np.uint8 and data.y_train.dtype == np.int64
    rows, labels = written["data_batch_2"]  # instances 2, 3 of the train set
    for i in range(2):
        for c in range(3):
            for r, col in [(0, 0), (0, 31), (5, 7), (31, 0), (31, 31)]:
                expected = rows[i, 1024 * c + 32 * r + col]
                assert data.X_train[2 + i, c, r, col] == expected
    assert data.y_train[2:4].tolist() == labels
    rows, labels = written["test_batch"]
    np.testing.assert_array_equal(data.X_test[1, 2].ravel(), rows[1, 2048:])
    assert data.y_test.tolist() == labels


def test_cifar_parent_directory_and_autodetect(tmp_path, rng):
    written = write_cifar_dir(tmp_path / "cifar-10-batches-py", rng)
    for source in (tmp_path, tmp_path / "cifar-10-batches-py"):
        assert load_cifar10(source).y_test.tolist() == written["test_batch"][1]
        assert load_dataset(str(source)).X_train.shape == (10, 3, 32, 32)


def test_cifar_missing_batch(tmp_path, rng):
    write_cifar_dir(tmp_path, rng)
    os.remove(tmp_path / "data_batch_4")
    with pytest.raises(FileNotFoundError, match="data_batch_4") as info:
        load_cifar10(tmp_path)
    assert "cifar-10-batches-py" in str(info.value)
    with pytest.raises(FileNotFoundError, match="CIFAR-10"):
        load_cifar10()


def test_cifar_malformed_batches(tmp_path, rng):
    write_cifar_dir(tmp_path, rng)
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match="3072"):
        load_cifar10(tmp_path)
    (tmp_path / "data_batch_1").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="data_batch_1"):
        load_cifar10(tmp_path)


def test_cifar_refuses_arbitrary_pickles(tmp_path, rng):
    write_cifar_dir(tmp_path, rng)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": os.getcwd, b"labels": []}, f)
    with pytest.raises(ValueError, match="refusing"):
        load_cifar10(tmp_path)


# --------------------------------------------------------------------------
# bundled subset and load_dataset
# --------------------------------------------------------------------------

def test_bundled_subset():
    X_train, y_train, X_test, y_test = load_bundled()
    assert X_train.shape == (5000, 1, 28, 28) and X_test.shape == (1000, 1, 28, 28)
    assert X_train.dtype == np.uint8 and X_test.dtype == np.uint8
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    assert np.bincount(y_train).tolist() == [500] * 10
    assert np.bincount(y_test).tolist() == [100] * 10
    assert X_train.max() == 255 and X_train.min() == 0
    assert not np.array_equal(y_train[:10], np.sort(y_train[:10]))  # mixed


def test_load_dataset_default_is_bundled():
    data = load_dataset()
    np.testing.assert_array_equal(data.y_test, load_dataset("bundled").y_test)


def test_load_dataset_directory_idx(tmp_path, rng):
    arrays = write_idx_dir(tmp_path, rng, compress=False)
    np.testing.assert_array_equal(load_dataset(tmp_path).y_train, arrays[1])


def test_load_dataset_unknown(tmp_path):
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet")
    for name in ("bundled", "fashion-mnist", "mnist", "cifar10"):
        assert name in str(info.value)
    with pytest.raises(FileNotFoundError, match="neither"):
        load_dataset(tmp_path)  # existing but empty directory


def test_real_fashion_mnist():
    if not os.path.isdir(FASHION_DIR):
        pytest.skip(f"{FASHION_DIR} absent (apt-get install dataset-fashion-mnist)")
    X_train, y_train, X_test, y_test = load_fashion_mnist()
    assert X_train.shape == (60000, 1, 28, 28) and X_test.shape == (10000, 1, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    # The bundled subset is exactly the documented slice of the real files.
    from newtoncnn.datasets import _bundled_bytes
    with np.load(io.BytesIO(_bundled_bytes())) as npz:
        tr, te = npz["train_index"].astype(int), npz["test_index"].astype(int)
    bundled = load_bundled()
    np.testing.assert_array_equal(bundled.X_train, X_train[tr])
    np.testing.assert_array_equal(bundled.y_test, y_test[te])
    for c in range(10):
        first = np.flatnonzero(y_train == c)[:500]
        np.testing.assert_array_equal(np.sort(tr[bundled.y_train == c]), first)


# --------------------------------------------------------------------------
# Normalizer
# --------------------------------------------------------------------------

def test_normalizer_matches_numpy(rng):
    X_train = rng.integers(0, 256, (50, 1, 6, 5), dtype=np.uint8)
    X_test = rng.integers(0, 256, (9, 1, 6, 5), dtype=np.uint8)
    mean = (X_train.astype(np.float64) / 255).mean(axis=0)
    norm = Normalizer().fit(X_train)
    np.testing.assert_allclose(norm.mean_, mean, rtol=0, atol=1e-12)
    Z = norm.transform(X_test)
    assert Z.dtype == np.float32 and Z.shape == X_test.shape
    np.testing.assert_allclose(Z, X_test / 255 - mean, rtol=0, atol=1e-6)
    Z64 = norm.fit_transform(X_train, dtype="float64")
    assert Z64.dtype == np.float64
    np.testing.assert_allclose(Z64, X_train / 255 - mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(Z64.mean(axis=0), 0, atol=1e-12)


def test_normalizer_does_not_modify_input(rng):
    X = rng.random((4, 3, 2, 2))
    X0 = X.copy()
    Normalizer(dtype="float64").fit_transform(X)
    np.testing.assert_array_equal(X, X0)


def test_normalizer_validation(rng):
    X = rng.integers(0, 256, (5, 1, 4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="not fitted"):
        Normalizer().transform(X)
    norm = Normalizer().fit(X)
    with pytest.raises(ValueError, match=r"X has image shape \(1, 4, 5\)"):
        norm.transform(np.zeros((2, 1, 4, 5)))
    with pytest.raises(ValueError, match="X must have shape"):
        Normalizer().fit(np.zeros(5))
    with pytest.raises(ValueError, match="no instances"):
        Normalizer().fit(np.zeros((0, 1, 4, 4)))
    bad = np.zeros((2, 1, 4, 4))
    bad[1, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        norm.transform(bad)
    with pytest.raises(ValueError, match="numeric"):
        Normalizer().fit(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="dtype"):
        Normalizer(dtype="int32")
    with pytest.raises(ValueError, match="scale"):
        Normalizer(scale=0)


def test_normalizer_state_round_trip(rng):
    X = rng.integers(0, 256, (6, 3, 4, 4), dtype=np.uint8)
    norm = Normalizer(dtype="float64").fit(X)
    state = norm.to_dict()
    assert set(state) == {"scale", "dtype", "mean"}
    again = Normalizer.from_dict(state)
    np.testing.assert_array_equal(again.transform(X), norm.transform(X))
    listed = dict(state, mean=state["mean"].tolist())  # JSON-friendly form
    np.testing.assert_array_equal(Normalizer.from_dict(listed).mean_, norm.mean_)
    again = pickle.loads(pickle.dumps(norm))
    np.testing.assert_array_equal(again.mean_, norm.mean_)
    assert Normalizer.from_dict(Normalizer().to_dict()).to_dict()["mean"] is None


def _gzip_bomb(path, images, zeros):
    """A .gz IDX file declaring ``images`` 28x28 images, holding ``zeros`` more bytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)   # 31: gzip container
    parts = [comp.compress(idx_bytes(np.zeros((images, 28, 28), np.uint8)))]
    chunk = bytes(1 << 20)
    for _ in range(zeros >> 20):
        parts.append(comp.compress(chunk))
    parts.append(comp.flush())
    path.write_bytes(b"".join(parts))
    return path


def _peak_bytes(call):
    import tracemalloc
    tracemalloc.start()
    try:
        call()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def test_read_idx_never_decompresses_more_than_the_header_declares(tmp_path):
    """A small .gz file declaring 10 images but holding 64 MiB more: rejected as
    trailing data after decompressing about what the header declares, not 64 MiB."""
    path = _gzip_bomb(tmp_path / "bomb.gz", 10, 64 << 20)
    assert path.stat().st_size < (1 << 20)

    def read():
        with pytest.raises(ValueError, match="trailing") as info:
            read_idx(path)
        assert str(path) in str(info.value)

    assert _peak_bytes(read) < (4 << 20)


def test_read_idx_rejects_a_declared_size_the_file_cannot_hold(tmp_path):
    """Dimensions declaring more data than the (compressed) file could expand to are
    rejected before anything that size is allocated."""
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big")
                                            for d in (2**31, 2**10, 2**10))
    for name, raw in (("plain", header + bytes(100)),
                      ("packed.gz", gzip.compress(header + bytes(100)))):
        path = tmp_path / name
        path.write_bytes(raw)

        def read():
            with pytest.raises(ValueError, match="truncated") as info:
                read_idx(path)
            assert str(path) in str(info.value)

        assert _peak_bytes(read) < (1 << 20)


def test_read_idx_reads_gzip_members_and_rejects_garbage_after_them(tmp_path, rng):
    a = rng.integers(0, 256, (6, 3, 2), dtype=np.uint8)
    raw = idx_bytes(a)
    path = tmp_path / "members.gz"
    path.write_bytes(gzip.compress(raw[:11]) + gzip.compress(raw[11:]))
    np.testing.assert_array_equal(read_idx(path), a)
    path.write_bytes(gzip.compress(raw) + b"garbage!")
    with pytest.raises(ValueError, match="gzip"):
        read_idx(path)


# --------------------------------------------------------------------------
# shards: one process's contiguous part, reading only that part
# --------------------------------------------------------------------------

from newtoncnn import datasets  # noqa: E402
from newtoncnn.datasets import idx_shape, load_shard, shard_bounds  # noqa: E402


@pytest.mark.parametrize("n, size", [(10, 1), (10, 3), (7, 7), (5, 2), (2, 3)])
def test_shard_bounds_tile_the_instances_in_order(n, size):
    bounds = [shard_bounds(n, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    lengths = [stop - start for start, stop in bounds]
    assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)
    with pytest.raises(ValueError, match="rank"):
        shard_bounds(n, size, size)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_rows_equals_slice_of_whole_file(tmp_path, rng, compress):
    a = rng.integers(0, 256, (9, 4, 3), dtype=np.uint8)
    path = write_idx(tmp_path / "a.idx", a, compress)
    assert idx_shape(path) == (9, 4, 3)
    for rows in [(0, 9), (2, 5), (7, 20), (9, 9)]:
        np.testing.assert_array_equal(read_idx(path, rows), a[rows[0]:rows[1]])


def test_read_idx_rows_reads_no_further_than_the_shard(tmp_path, rng):
    a = rng.integers(0, 256, (50, 8, 8), dtype=np.uint8)
    data = gzip.compress(idx_bytes(a))
    # cut the stream in its second half: the first rows decompress, the whole file does not
    path = tmp_path / "cut.gz"
    path.write_bytes(data[:len(data) * 3 // 5])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)
    np.testing.assert_array_equal(read_idx(path, (3, 6)), a[3:6])
    # a plain file must still have exactly the declared size
    plain = tmp_path / "long.idx"
    plain.write_bytes(idx_bytes(a) + b"\0")
    with pytest.raises(ValueError, match="trailing"):
        read_idx(plain, (0, 2))


@pytest.mark.parametrize("size", [1, 2, 3])
@pytest.mark.parametrize("n_train", [None, 8])
def test_idx_shards_concatenate_to_the_data_set(tmp_path, rng, size, n_train):
    write_idx_dir(tmp_path, rng, n_train=12)
    whole = load_dataset(tmp_path)
    n = 12 if n_train is None else n_train
    shards = [load_shard(tmp_path, r, size, n_train=n_train) for r in range(size)]
    np.testing.assert_array_equal(np.concatenate([s.X_train for s in shards]),
                                  whole.X_train[:n])
    np.testing.assert_array_equal(np.concatenate([s.y_train for s in shards]),
                                  whole.y_train[:n])
    for s in shards:
        np.testing.assert_array_equal(s.X_test, whole.X_test)
        assert s.X_train.dtype == np.uint8 and s.y_train.dtype == np.int64


def test_cifar_shard_reads_only_its_batches(tmp_path, rng, monkeypatch):
    monkeypatch.setattr(datasets, "_CIFAR_BATCH_SIZE", 2)
    write_cifar_dir(tmp_path, rng, n_per_batch=2)
    whole = load_cifar10(tmp_path)
    shards = [load_shard(tmp_path, r, 3) for r in range(3)]  # rows 0-3, 4-6, 7-9
    np.testing.assert_array_equal(np.concatenate([s.X_train for s in shards]), whole.X_train)
    np.testing.assert_array_equal(np.concatenate([s.y_train for s in shards]), whole.y_train)
    (tmp_path / "data_batch_1").write_bytes(b"not a pickle")  # outside process 2's rows
    np.testing.assert_array_equal(load_shard(tmp_path, 2, 3).X_train, whole.X_train[7:])
    with pytest.raises(ValueError, match="data_batch_1"):
        load_shard(tmp_path, 0, 3)


def test_npy_shard_is_read_through_a_memory_map(tmp_path, rng):
    X = rng.integers(0, 256, (11, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 11)
    X_test, y_test = X[:3], y[:3]
    for name, a in zip(datasets._NPY_FILES, (X, y, X_test, y_test)):
        np.save(tmp_path / name, a)
    shards = [load_shard(tmp_path, r, 2) for r in range(2)]
    np.testing.assert_array_equal(np.concatenate([s.X_train for s in shards]), X[:, None])
    np.testing.assert_array_equal(np.concatenate([s.y_train for s in shards]), y)
    assert all(type(s.X_train) is np.ndarray for s in shards)  # copies, not maps
    np.save(tmp_path / "y_train.npy", y.astype(float))
    with pytest.raises(ValueError, match="labels"):
        load_shard(tmp_path, 0, 2)


def test_bundled_shard_and_unknown_name():
    whole = load_bundled()
    part = load_shard("bundled", 1, 4, n_train=10)
    np.testing.assert_array_equal(part.X_train, whole.X_train[3:6])
    with pytest.raises(ValueError, match="Unknown data set"):
        load_shard("no-such-set", 0, 1)
