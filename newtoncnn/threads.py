"""Threads of the C kernels (OpenMP) and of BLAS, without oversubscription.

Conv layers run their instance tiles on the OpenMP threads and call BLAS
inside each tile, so while they run scipy's BLAS (the one
``scipy.linalg.cython_blas`` calls) must use one thread:
:func:`blas_single_threaded` sees to it by calling OpenBLAS's
``set_num_threads`` directly. Where that library cannot be found (a BLAS
other than scipy's OpenBLAS) BLAS keeps its own threads; results are the
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


def _find_scipy_openblas():
    """(get, set) of the thread count of scipy's OpenBLAS, or None."""
    import scipy.linalg.cython_blas  # noqa: F401  (make sure it is loaded)
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "scipy_openblas" in line}
    except OSError:
        return None
    for path in sorted(paths):
        if "openblas64" in os.path.basename(path):
            continue   # numpy's ILP64 build, not the one cython_blas calls
        try:
            lib = ctypes.CDLL(path)
            get, set_ = lib.scipy_openblas_get_num_threads, lib.scipy_openblas_set_num_threads
        except (OSError, AttributeError):
            continue
        get.restype, set_.argtypes = ctypes.c_int, [ctypes.c_int]
        return get, set_
    return None


_BLAS = _find_scipy_openblas()


@contextlib.contextmanager
def blas_single_threaded():
    """Run the block with scipy's OpenBLAS on one thread (when the kernels use several)."""
    if _BLAS is None or _kernels.get_num_threads() == 1:
        yield
        return
    get, set_ = _BLAS
    before = get()
    set_(1)
    try:
        yield
    finally:
        set_(before)


def set_num_threads(n_threads):
    """Use ``n_threads`` threads in the kernels and in scipy's BLAS."""
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")
    _kernels.set_num_threads(n_threads)
    if _BLAS is not None:
        _BLAS[1](n_threads)


def get_num_threads():
    """The number of threads the kernels use."""
    return _kernels.get_num_threads()


_kernels.set_num_threads(_default_threads())
