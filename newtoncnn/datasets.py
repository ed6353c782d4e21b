"""Image data sets for newtoncnn: readers, a bundled subset and normalization.

Nothing here ever downloads anything.  Data come from

* the small Fashion-MNIST subset shipped inside the package
  (:func:`load_bundled`), so that examples and the command line run anywhere;
* a directory holding the four standard IDX files of Fashion-MNIST or MNIST
  (:func:`load_idx_dataset`, :func:`load_fashion_mnist`, :func:`load_mnist`);
  on Debian, ``apt-get install dataset-fashion-mnist`` puts Fashion-MNIST in
  ``/usr/share/datasets/fashion-mnist``;
* a directory holding CIFAR-10's python batches (:func:`load_cifar10`).

All loaders return ``(X_train, y_train, X_test, y_test)`` (a :class:`Dataset`
named tuple) with images as ``uint8`` arrays in NCHW layout
``(n, channels, height, width)`` and labels as ``int64`` class indices.

Environment
-----------
NEWTONCNN_DATA
    Where to look when no directory is given.  Either a directory holding the
    data files themselves, or a parent directory with one subdirectory per
    data set (``fashion-mnist/``, ``mnist/``, ``cifar-10-batches-py/``).
    When unset, Fashion-MNIST is looked for in
    ``/usr/share/datasets/fashion-mnist``.

Normalization (simpleNN's: pixels / 255 minus the mean training image) is
:class:`newtoncnn.normalizer.Normalizer`, also importable from here.
"""

import gzip
import importlib.resources
import io
import math
import os
import pickle
import zlib
from collections import namedtuple

import numpy as np

from newtoncnn.normalizer import Normalizer

__all__ = [
    "Dataset",
    "FASHION_MNIST_CLASSES",
    "DATASET_NAMES",
    "DEFAULT_FASHION_MNIST_DIR",
    "ENV_VAR",
    "read_idx",
    "idx_shape",
    "load_idx_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "load_cifar10",
    "load_bundled",
    "load_dataset",
    "shard_bounds",
    "load_shard",
    "Normalizer",
]

ENV_VAR = "NEWTONCNN_DATA"
DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
BUNDLED_FILE = "fashion_mnist_subset.npz"
DATASET_NAMES = ("bundled", "fashion-mnist", "mnist", "cifar10")

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

Dataset = namedtuple("Dataset", ["X_train", "y_train", "X_test", "y_test"])
Dataset.__doc__ = """Train/test split: uint8 NCHW images and int64 labels.

Parameters
----------
X_train : ndarray of uint8, shape (n_train, C, H, W)
    Training images.
y_train : ndarray of int64, shape (n_train,)
    Training labels.
X_test : ndarray of uint8, shape (n_test, C, H, W)
    Test images.
y_test : ndarray of int64, shape (n_test,)
    Test labels.
"""

_INSTALL_HINT = (
    "Install Fashion-MNIST with `apt-get install dataset-fashion-mnist` "
    f"(files go to {DEFAULT_FASHION_MNIST_DIR}), or pass a directory holding "
    f"the four IDX files, or set the environment variable {ENV_VAR} to it. "
    "Use load_bundled() (load_dataset('bundled')) for the small subset "
    "shipped with newtoncnn."
)
_CIFAR_HINT = (
    "Get cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
    "(newtoncnn never downloads), extract it, and pass the "
    f"'cifar-10-batches-py' directory or set {ENV_VAR} to it (or its parent)."
)

def shard_bounds(n, rank, size):
    """``(start, stop)``: the contiguous part of ``n`` instances that process ``rank`` of
    ``size`` holds (the first ``n % size`` processes hold one more).

    Parameters
    ----------
    n : int
        Number of instances.
    rank : int
        The process, ``0 <= rank < size``.
    size : int
        Number of processes.
    """
    if not (0 <= rank < size):
        raise ValueError(f"rank must lie in 0..{size - 1}, got {rank}")
    base, extra = divmod(int(n), int(size))
    start = rank * base + min(rank, extra)
    return start, start + base + (rank < extra)


# ---------------------------------------------------------------------------
# IDX files
# ---------------------------------------------------------------------------

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}

# Accepted base names of the four files (first match wins; ".gz" preferred).
_IDX_NAMES = {
    "train images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte",
                    "test-images-idx3-ubyte"),
    "test labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte",
                    "test-labels-idx1-ubyte"),
}


# Deflate expands data by at most about 1032:1, so a gzip file of s bytes cannot hold
# more than this many times s: a header declaring more is a lie, found before allocating.
_GZIP_MAX_RATIO = 1033
_READ_CHUNK = 1 << 22


def _read_exact(stream, n, path, gzipped, last=False):
    """Exactly ``n`` bytes of ``stream`` as a uint8 array, read in chunks (fewer at EOF),
    and, when these are the ``last`` bytes expected, whether anything follows them."""
    buf = np.empty(n, np.uint8)
    view = memoryview(buf)
    got = 0
    try:
        while got < n:
            count = stream.readinto(view[got:got + _READ_CHUNK])
            if not count:
                break
            got += count
        trailing = bool(stream.read(1)) if last and got == n else False
    except (OSError, EOFError, zlib.error) as exc:
        if not gzipped:
            raise
        raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    return buf[:got], trailing


def _read_idx_header(stream, path, gzipped):
    """(dtype, dims, header bytes) of an IDX stream positioned at its start."""
    head, _ = _read_exact(stream, 4, path, gzipped)
    raw = bytes(head)
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated IDX file ({len(raw)} bytes, "
                         "no complete header)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        magic = int.from_bytes(raw[:4], "big")
        raise ValueError(
            f"{path}: not an IDX file (magic number 0x{magic:08x}; expected "
            "0x0000TTDD with type code TT in 08,09,0b,0c,0d,0e and DD >= 1 "
            "dimensions)")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    dims_raw, _ = _read_exact(stream, 4 * ndim, path, gzipped)
    if 4 + dims_raw.size < header:
        raise ValueError(f"{path}: truncated IDX header ({ndim} dimensions "
                         f"need {header} bytes, file has {4 + dims_raw.size})")
    return dtype, tuple(int(d) for d in dims_raw.view(">u4")), header


def _read_idx_stream(stream, path, size_bound, gzipped, rows=None):
    """Decode an IDX stream: header first, then exactly the data it declares (or only the
    ``rows`` (start, stop) of its first dimension); ``path`` is only used in messages,
    ``size_bound`` caps the bytes the stream can hold (exact for a plain file)."""
    dtype, dims, header = _read_idx_header(stream, path, gzipped)
    expected = math.prod(dims) * dtype.itemsize
    if header + expected > size_bound:
        raise ValueError(f"{path}: IDX data truncated: dimensions {dims} need "
                         f"{expected} bytes of data, more than the file can hold")
    if rows is not None:
        if not gzipped and header + expected != size_bound:
            raise ValueError(f"{path}: IDX data has trailing bytes: dimensions {dims} "
                             f"need {expected} bytes of data, file has "
                             f"{size_bound - header}")
        start, stop = min(rows[0], dims[0]), min(rows[1], dims[0])
        row_bytes = math.prod(dims[1:]) * dtype.itemsize
        try:  # a gzip stream seeks forward by decompressing and dropping what it skips
            stream.seek(header + start * row_bytes)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
        dims = (max(stop - start, 0),) + dims[1:]
        expected = math.prod(dims) * dtype.itemsize
    data, trailing = _read_exact(stream, expected, path, gzipped, last=rows is None)
    if data.size != expected or trailing:
        what = "truncated" if data.size < expected else "has trailing bytes"
        found = f"{data.size}" if data.size < expected else "more"
        raise ValueError(f"{path}: IDX data {what}: dimensions {dims} need "
                         f"{expected} bytes of data, file has {found}")
    return data.view(dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def _with_idx_stream(path, read):
    """``read(stream, size_bound, gzipped)`` on the IDX file ``path``, plain or gzip."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if f.read(2) != b"\x1f\x8b":
            f.seek(0)
            return read(f, size, False)
        f.seek(0)
        # decompressed as it is read: never more than the header declares (+ 1 byte)
        with gzip.GzipFile(fileobj=f, mode="rb") as stream:
            return read(stream, _GZIP_MAX_RATIO * size, True)


def read_idx(path, rows=None):
    """Read an IDX file (plain or gzip-compressed), or some of its rows.

    Parameters
    ----------
    path : str or os.PathLike
        The file.  Gzip compression is detected from the content, not the
        name.
    rows : (int, int), optional
        Read only rows ``start .. stop - 1`` of the first dimension (clipped
        to it): a plain file is read from there, a gzip file decompressed up
        to ``stop`` (what comes before ``start`` is dropped as it streams by).

    Returns
    -------
    ndarray
        Array with the file's dimensions and element type in native byte
        order, e.g. ``uint8`` of shape ``(n, 28, 28)`` for images and
        ``(n,)`` for labels.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not a valid IDX file (bad magic number, unknown type
        code, truncated or over-long data, corrupt gzip stream); the message
        names the file. The header is read first and no more data than it
        declares is read or decompressed (so a gzip bomb costs nothing).
    """
    path = os.fspath(path)
    return _with_idx_stream(path, lambda stream, bound, gzipped: _read_idx_stream(
        stream, path, bound, gzipped, rows=rows))


def idx_shape(path):
    """The dimensions an IDX file declares in its header (nothing else is read).

    Parameters
    ----------
    path : str or os.PathLike
        The file (plain or gzip-compressed).
    """
    path = os.fspath(path)
    return _with_idx_stream(path, lambda stream, bound, gzipped: _read_idx_header(
        stream, path, gzipped)[1])


def _find_idx_file(directory, kind):
    """Path of the IDX file of ``kind`` in ``directory``; raise if missing."""
    names = _IDX_NAMES[kind]
    for name in names:
        for candidate in (name + ".gz", name):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                return path
    where = "" if os.path.isdir(directory) else \
        f" (directory {directory!r} does not exist)"
    raise FileNotFoundError(
        f"Missing {kind} file {os.path.join(directory, names[0] + '.gz')!r}"
        f"{where}; an uncompressed {names[0]!r} is accepted too. "
        f"{_INSTALL_HINT}")


def _has_idx_files(directory):
    """True if ``directory`` holds at least one recognised IDX file."""
    return any(os.path.isfile(os.path.join(directory, n + ext))
               for names in _IDX_NAMES.values() for n in names
               for ext in (".gz", ""))


def _env_directory(subdirs):
    """Directory from ``$NEWTONCNN_DATA`` (or a named subdirectory), or None."""
    root = os.environ.get(ENV_VAR)
    if not root:
        return None
    for sub in subdirs:
        if os.path.isdir(os.path.join(root, sub)):
            return os.path.join(root, sub)
    return root


def _resolve_directory(directory, subdirs, default):
    """Argument, else ``$NEWTONCNN_DATA``, else ``default`` (may be None)."""
    if directory is not None:
        return os.fspath(directory)
    env = _env_directory(subdirs)
    return env if env is not None else default


def _check_split(images, labels, img_path, lab_path):
    """Validate one IDX image/label pair and return it as NCHW/int64."""
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{img_path}: expected uint8 images of shape "
                         f"(n, height, width), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{lab_path}: expected integer labels of shape (n,), "
                         f"got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{img_path} has {len(images)} images but {lab_path} "
                         f"has {len(labels)} labels")
    return images[:, None, :, :], labels.astype(np.int64)


def load_idx_dataset(directory=None):
    """Load a Fashion-MNIST/MNIST style directory of four IDX files.

    The files are ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each either
    gzip-compressed (``.gz``) or not; ``train-images.idx3-ubyte`` style names
    and a ``test-`` prefix instead of ``t10k-`` are accepted too.

    Parameters
    ----------
    directory : str or os.PathLike, optional
        Directory of the files.  Default: the environment variable
        ``NEWTONCNN_DATA`` (or its ``fashion-mnist/`` subdirectory), else
        ``/usr/share/datasets/fashion-mnist`` (Debian's
        ``dataset-fashion-mnist``).

    Returns
    -------
    Dataset
        ``(X_train, y_train, X_test, y_test)``: ``uint8`` images of shape
        ``(n, 1, height, width)`` and ``int64`` labels of shape ``(n,)``.

    Raises
    ------
    FileNotFoundError
        If a file is missing; the message names it and says how to get it.
    ValueError
        If a file is corrupt or the files do not fit together.
    """
    directory = _resolve_directory(directory, ("fashion-mnist",),
                                   DEFAULT_FASHION_MNIST_DIR)
    paths = {kind: _find_idx_file(directory, kind) for kind in _IDX_NAMES}
    arrays = {kind: read_idx(path) for kind, path in paths.items()}
    splits = []
    for part in ("train", "test"):
        img, lab = f"{part} images", f"{part} labels"
        splits += _check_split(arrays[img], arrays[lab], paths[img], paths[lab])
    if splits[0].shape[1:] != splits[2].shape[1:]:
        raise ValueError(f"train images {splits[0].shape[1:]} and test images "
                         f"{splits[2].shape[1:]} in {directory} differ in size")
    return Dataset(*splits)


def load_fashion_mnist(directory=None):
    """Load Fashion-MNIST (60,000 train / 10,000 test 28x28 grey images).

    Fashion-MNIST is by Zalando Research (MIT licence).  Class names are in
    :data:`FASHION_MNIST_CLASSES`.

    Parameters
    ----------
    directory : str or os.PathLike, optional
        See :func:`load_idx_dataset` for the default resolution.

    Returns
    -------
    Dataset
        As :func:`load_idx_dataset`.
    """
    return load_idx_dataset(directory)


def load_mnist(directory=None):
    """Load MNIST from a directory of its four standard IDX files.

    MNIST is not bundled nor packaged in Debian, so it must be provided.

    Parameters
    ----------
    directory : str or os.PathLike, optional
        Directory of the files.  Default: ``NEWTONCNN_DATA`` (its ``mnist/``
        subdirectory if present, else the directory itself).

    Returns
    -------
    Dataset
        As :func:`load_idx_dataset`.

    Raises
    ------
    FileNotFoundError
        If no directory is given or found, or a file is missing.
    """
    directory = _resolve_directory(directory, ("mnist",), None)
    if directory is None:
        raise FileNotFoundError(
            "MNIST is not shipped with newtoncnn and never downloaded: pass "
            "the directory holding train-images-idx3-ubyte(.gz), "
            "train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz) and "
            f"t10k-labels-idx1-ubyte(.gz), or set {ENV_VAR} to it.")
    return load_idx_dataset(directory)


# ---------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------

_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"
_CIFAR_SUBDIRS = ("cifar-10-batches-py", "cifar10", "cifar-10")

# The only globals a CIFAR batch (a dict of numpy arrays/lists) may reference.
_SAFE_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays and plain containers."""

    def find_class(self, module, name):
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR batch only holds "
                "numpy arrays, lists and bytes")
        return super().find_class(module, name)


def _read_cifar_batch(path):
    """Read one CIFAR-10 python batch as NCHW uint8 images and int64 labels."""
    try:
        with open(path, "rb") as f:
            batch = _SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError,
            AttributeError, IndexError) as exc:
        raise ValueError(f"{path}: not a readable CIFAR-10 batch ({exc})") from exc
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(batch)}")
    batch = {k.decode() if isinstance(k, bytes) else k: v
             for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path}: CIFAR-10 batch lacks 'data' or 'labels' "
                         f"(keys: {sorted(batch)})")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 'data' of shape (n, 3072), "
                         f"got {data.dtype} {data.shape}")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu":
        raise ValueError(f"{path}: expected {len(data)} integer labels, got "
                         f"{labels.dtype} {labels.shape}")
    # Each row is 1024 red, 1024 green, 1024 blue values, each row-major 32x32.
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _cifar_directory(directory):
    """Resolve the CIFAR-10 batch directory (argument, env var, subdir)."""
    resolved = _resolve_directory(directory, _CIFAR_SUBDIRS, None)
    if resolved is None:
        raise FileNotFoundError(f"No CIFAR-10 directory given. {_CIFAR_HINT}")
    if not os.path.isfile(os.path.join(resolved, _CIFAR_TEST)):
        for sub in _CIFAR_SUBDIRS:
            if os.path.isfile(os.path.join(resolved, sub, _CIFAR_TEST)):
                return os.path.join(resolved, sub)
    return resolved


def load_cifar10(directory=None):
    """Load CIFAR-10 from its python batches.

    Parameters
    ----------
    directory : str or os.PathLike, optional
        The ``cifar-10-batches-py`` directory (holding ``data_batch_1`` ..
        ``data_batch_5`` and ``test_batch``) or its parent.  Default:
        ``NEWTONCNN_DATA`` (or its ``cifar-10-batches-py/`` subdirectory).

    Returns
    -------
    Dataset
        ``uint8`` images of shape ``(n, 3, 32, 32)`` (NCHW, channels R, G, B)
        and ``int64`` labels (50,000 train and 10,000 test for the full set).

    Raises
    ------
    FileNotFoundError
        If the directory or a batch file is missing.
    ValueError
        If a batch is malformed.  Batches are unpickled with a restricted
        unpickler that only rebuilds numpy arrays.
    """
    directory = _cifar_directory(directory)
    parts = []
    for names in (_CIFAR_TRAIN, (_CIFAR_TEST,)):
        batches = []
        for name in names:
            path = os.path.join(directory, name)
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"Missing CIFAR-10 batch file {path!r}. {_CIFAR_HINT}")
            batches.append(_read_cifar_batch(path))
        parts += [np.concatenate([b[0] for b in batches]),
                  np.concatenate([b[1] for b in batches])]
    return Dataset(*parts)


# ---------------------------------------------------------------------------
# Bundled subset and dispatch
# ---------------------------------------------------------------------------

def _bundled_bytes():
    """Bytes of the bundled ``.npz`` file (works from an installed wheel)."""
    resource = importlib.resources.files("newtoncnn.data") / BUNDLED_FILE
    try:
        return resource.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"The bundled data file newtoncnn/data/{BUNDLED_FILE} is missing "
            "from this installation; regenerate it with "
            "`python tools/make_bundled_subset.py` (needs the Fashion-MNIST "
            "files) or reinstall newtoncnn.") from None


def load_bundled():
    """Load the small Fashion-MNIST subset shipped with newtoncnn.

    The subset holds the first 500 training images of each class (5,000
    images, in file order) and the first 100 test images of each class
    (1,000 images) of Fashion-MNIST, made by ``tools/make_bundled_subset.py``.
    Fashion-MNIST is Copyright (c) 2017 Zalando SE (Zalando Research,
    https://github.com/zalandoresearch/fashion-mnist), MIT licence.

    Returns
    -------
    Dataset
        ``uint8`` images of shape ``(n, 1, 28, 28)`` and ``int64`` labels in
        ``0..9`` (names in :data:`FASHION_MNIST_CLASSES`).
    """
    with np.load(io.BytesIO(_bundled_bytes()), allow_pickle=False) as npz:
        arrays = [npz["X_train"], npz["y_train"], npz["X_test"], npz["y_test"]]
    X_train, y_train, X_test, y_test = arrays
    return Dataset(X_train.reshape(-1, 1, 28, 28), y_train.astype(np.int64),
                   X_test.reshape(-1, 1, 28, 28), y_test.astype(np.int64))


def _load_directory(directory):
    """Auto-detect the format of ``directory`` (CIFAR-10 or IDX) and load it."""
    for sub in ("",) + _CIFAR_SUBDIRS:
        if os.path.isfile(os.path.join(directory, sub, _CIFAR_TEST)):
            return load_cifar10(os.path.join(directory, sub))
    if _has_idx_files(directory):
        return load_idx_dataset(directory)
    raise FileNotFoundError(
        f"{directory!r} holds neither IDX files (train-images-idx3-ubyte[.gz] "
        "...) nor CIFAR-10 python batches (data_batch_1 .. test_batch).")


def load_dataset(name_or_dir="bundled"):
    """Load a data set by name or from a directory.

    Parameters
    ----------
    name_or_dir : str or os.PathLike, default "bundled"
        ``"bundled"`` (the subset shipped with newtoncnn),
        ``"fashion-mnist"``, ``"mnist"``, ``"cifar10"`` (case-insensitive;
        ``_`` and ``-`` variants accepted) or a path to a directory of IDX
        files or CIFAR-10 batches (the format is detected from the files).

    Returns
    -------
    Dataset
        ``(X_train, y_train, X_test, y_test)``, uint8 NCHW images and int64
        labels.

    Raises
    ------
    ValueError
        If ``name_or_dir`` is neither a known name nor an existing directory.
    FileNotFoundError
        If the data set's files cannot be found.
    """
    key = os.fspath(name_or_dir)
    loaders = {"bundled": load_bundled, "fashion-mnist": load_fashion_mnist,
               "fashionmnist": load_fashion_mnist, "mnist": load_mnist,
               "cifar10": load_cifar10, "cifar-10": load_cifar10}
    loader = loaders.get(key.lower().replace("_", "-"))
    if loader is not None:
        return loader()
    if os.path.isdir(key):
        return _load_directory(key)
    raise ValueError(f"Unknown data set {key!r}: expected one of "
                     f"{', '.join(map(repr, DATASET_NAMES))} or an existing "
                     "directory of IDX files or CIFAR-10 batches")


# ---------------------------------------------------------------------------
# Shards: one process's contiguous part of the training instances
# ---------------------------------------------------------------------------

_NPY_FILES = ("X_train.npy", "y_train.npy", "X_test.npy", "y_test.npy")
_CIFAR_BATCH_SIZE = 10000  # every batch of CIFAR-10's python version


def _idx_shard(directory, bounds):
    paths = {kind: _find_idx_file(directory, kind) for kind in _IDX_NAMES}
    rows = bounds(idx_shape(paths["train labels"])[0])
    train = _check_split(read_idx(paths["train images"], rows),
                         read_idx(paths["train labels"], rows),
                         paths["train images"], paths["train labels"])
    test = _check_split(read_idx(paths["test images"]), read_idx(paths["test labels"]),
                        paths["test images"], paths["test labels"])
    return train + test


def _cifar_shard(directory, bounds):
    directory = _cifar_directory(directory)
    start, stop = bounds(_CIFAR_BATCH_SIZE * len(_CIFAR_TRAIN))
    parts = []
    for j, name in enumerate(_CIFAR_TRAIN):
        lo = j * _CIFAR_BATCH_SIZE
        if lo >= stop or lo + _CIFAR_BATCH_SIZE <= start:
            continue  # no instance of this shard: the file is not read
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Missing CIFAR-10 batch file {path!r}. {_CIFAR_HINT}")
        X, y = _read_cifar_batch(path)
        if len(y) != _CIFAR_BATCH_SIZE:
            raise ValueError(f"{path}: {len(y)} images; a shard is read from batches of "
                             f"{_CIFAR_BATCH_SIZE} (load_cifar10 reads any size)")
        sl = slice(max(start - lo, 0), min(stop - lo, _CIFAR_BATCH_SIZE))
        parts.append((X[sl], y[sl]))
    test = _read_cifar_batch(os.path.join(directory, _CIFAR_TEST))
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])) + test


def _npy_images(array, path):
    if array.dtype.kind not in "uif" or array.ndim not in (3, 4):
        raise ValueError(f"{path}: expected numeric images (n, H, W) or (n, C, H, W), got "
                         f"{array.dtype} {array.shape}")
    return array[:, None] if array.ndim == 3 else array


def _npy_shard(directory, bounds):
    X, y, X_test, y_test = (np.load(os.path.join(directory, name), mmap_mode="r",
                                    allow_pickle=False) for name in _NPY_FILES)
    start, stop = bounds(len(y))
    out = []
    for images, labels, name in ((X[start:stop], y[start:stop], "train"),
                                 (X_test, y_test, "test")):
        labels = np.array(labels)  # only these rows are read from the mapped file
        if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(images) != len(labels):
            raise ValueError(f"{directory}: {name} labels must be {len(images)} integers, "
                             f"got {labels.dtype} {labels.shape}")
        out += [np.array(_npy_images(images, os.path.join(directory, f"X_{name}.npy"))),
                labels.astype(np.int64)]
    return out


def load_shard(name_or_dir="bundled", rank=0, size=1, n_train=None):
    """One process's contiguous part of a data set's training instances, and its test set.

    Process ``rank`` of ``size`` gets instances ``shard_bounds(n, rank, size)`` of the
    first ``n`` training instances (``n = n_train``, or all) and reads only those: rows
    of the IDX files (gzip files are decompressed up to the shard's end), the CIFAR-10
    batches that hold them, or rows of memory-mapped ``.npy`` files (a directory
    holding ``X_train.npy``, ``y_train.npy``, ``X_test.npy`` and ``y_test.npy``). The
    bundled subset is small and read whole. The test images are read whole.

    Parameters
    ----------
    name_or_dir : str or os.PathLike, default "bundled"
        As :func:`load_dataset`, or a directory of the four ``.npy`` files.
    rank : int, default 0
        This process.
    size : int, default 1
        Number of processes.
    n_train : int, optional
        Use only the first ``n_train`` training instances.

    Returns
    -------
    Dataset
        ``X_train``, ``y_train`` of this shard; ``X_test``, ``y_test`` whole.
    """
    def bounds(n):
        n = n if n_train is None else min(int(n_train), n)
        return shard_bounds(n, rank, size)

    key = os.fspath(name_or_dir)
    name = key.lower().replace("_", "-")
    if name == "bundled":
        X, y, X_test, y_test = load_bundled()
        start, stop = bounds(len(y))
        return Dataset(X[start:stop], y[start:stop], X_test, y_test)
    if name in ("cifar10", "cifar-10"):
        return Dataset(*_cifar_shard(None, bounds))
    if name in ("fashion-mnist", "fashionmnist"):
        directory = _resolve_directory(None, ("fashion-mnist",), DEFAULT_FASHION_MNIST_DIR)
    elif name == "mnist":
        directory = _resolve_directory(None, ("mnist",), None)
        if directory is None:
            load_mnist()  # raises, saying where MNIST must come from
    elif os.path.isdir(key):
        directory = key
    else:
        raise ValueError(f"Unknown data set {key!r}: expected one of "
                         f"{', '.join(map(repr, DATASET_NAMES))} or an existing directory")
    if all(os.path.isfile(os.path.join(directory, f)) for f in _NPY_FILES):
        return Dataset(*_npy_shard(directory, bounds))
    for sub in ("",) + _CIFAR_SUBDIRS:
        if os.path.isfile(os.path.join(directory, sub, _CIFAR_TEST)):
            return Dataset(*_cifar_shard(os.path.join(directory, sub), bounds))
    return Dataset(*_idx_shard(directory, bounds))
