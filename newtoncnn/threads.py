"""Threads of the C kernels (OpenMP) and of BLAS, without oversubscription.

Conv layers run their instance tiles on the OpenMP threads and call BLAS
inside each tile, so while they run scipy's BLAS (the one
``scipy.linalg.cython_blas`` calls) must use one thread, and numpy's BLAS
(the dense layers' batched products) too, or its idle threads spin against
the OpenMP team: :func:`blas_single_threaded` sees to both by calling each
OpenBLAS's ``set_num_threads`` directly, and :func:`set_num_threads` sets
both. Where a library cannot be found (a BLAS other than the OpenBLAS that
scipy's and numpy's wheels ship) it keeps its own threads; results are the
same, only slower.
"""
import contextlib
import ctypes
import os

from newtoncnn import _kernels

__all__ = ["set_num_threads", "get_num_threads", "blas_single_threaded"]


def _default_threads():
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if first.isdigit() and int(first) > 0:
        return int(first)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# (library file name part, get symbol, set symbol): scipy's LP64 OpenBLAS, which
# cython_blas calls, and numpy's ILP64 one
_OPENBLAS = [
    ("scipy_openblas-", "scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("scipy_openblas64_", "scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
]


def _find_openblas():
    """[(get, set)] of the thread counts of scipy's and numpy's OpenBLAS that are loaded."""
    import scipy.linalg.cython_blas  # noqa: F401  (make sure both are loaded)
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line})
    except OSError:
        return []
    found = []
    for part, get_name, set_name in _OPENBLAS:
        for path in paths:
            if part not in os.path.basename(path):
                continue
            try:
                lib = ctypes.CDLL(path)
                get, set_ = getattr(lib, get_name), getattr(lib, set_name)
            except (OSError, AttributeError):
                continue
            get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
            found.append((get, set_))
            break
    return found


_BLAS = _find_openblas()


@contextlib.contextmanager
def blas_single_threaded():
    """Run the block with scipy's and numpy's OpenBLAS on one thread (when the kernels use
    several)."""
    if not _BLAS or _kernels.get_num_threads() == 1:
        yield
        return
    before = [get() for get, _ in _BLAS]
    for _, set_ in _BLAS:
        set_(1)
    try:
        yield
    finally:
        for (_, set_), n in zip(_BLAS, before):
            set_(n)


def set_num_threads(n_threads):
    """Use ``n_threads`` threads in the kernels and in scipy's and numpy's BLAS."""
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")
    _kernels.set_num_threads(n_threads)
    for _, set_ in _BLAS:
        set_(n_threads)


def get_num_threads():
    """The number of threads the kernels use."""
    return _kernels.get_num_threads()


_kernels.set_num_threads(_default_threads())
