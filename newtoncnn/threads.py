"""Threads of the C kernels (OpenMP) and of BLAS, without oversubscription.

Conv layers run their instance tiles on the OpenMP threads and call BLAS
inside each tile, so while they run every BLAS in the process (scipy's, which
``scipy.linalg.cython_blas`` calls, and numpy's, which the dense layers'
batched products use) must use one thread, or its idle threads spin against
the OpenMP team: :func:`blas_single_threaded` sees to that, and
:func:`set_num_threads` sets the kernels and every BLAS. The BLAS libraries
are found and driven by threadpoolctl, on every platform and for every BLAS
it knows (OpenBLAS, MKL, BLIS, ...).
"""
import contextlib
import os

from newtoncnn import _kernels
from newtoncnn.validation import INT_MAX, check_int

__all__ = ["set_num_threads", "get_num_threads", "num_threads", "blas_single_threaded",
           "blas_controller"]

_controller = None


def blas_controller():
    """The ``threadpoolctl.ThreadpoolController`` of the BLAS libraries in this process.

    Made on first use, after scipy's BLAS is loaded (numpy's is loaded by numpy).
    """
    global _controller
    if _controller is None:
        import scipy.linalg.cython_blas  # noqa: F401  (load the BLAS the kernels call)
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController().select(user_api="blas")
    return _controller


def _default_threads():
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if first.isdigit() and int(first) > 0:
        return int(first)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def blas_single_threaded():
    """Run the block with every BLAS on one thread (when the kernels use several)."""
    if _kernels.get_num_threads() == 1:
        yield
        return
    with blas_controller().limit(limits=1):
        yield


def set_num_threads(n_threads):
    """Use ``n_threads`` threads in the kernels and in every BLAS of the process.

    Parameters
    ----------
    n_threads : int >= 1
        Threads of the kernels and of every BLAS.
    """
    try:
        n_threads = check_int("n_threads", n_threads, low=1)
    except (TypeError, ValueError):  # one error type for a bad count, as always
        raise ValueError(f"n_threads must be a positive integer of at most {INT_MAX}, "
                         f"got {n_threads!r}") from None
    _kernels.set_num_threads(n_threads)
    blas_controller().limit(limits=n_threads)


def get_num_threads():
    """The number of threads the kernels use."""
    return _kernels.get_num_threads()


@contextlib.contextmanager
def num_threads(n_threads):
    """Use ``n_threads`` threads (as :func:`set_num_threads`) inside the block, then the
    kernels' previous count again; None leaves the setting alone.

    Parameters
    ----------
    n_threads : int or None
        Threads inside the block (None: unchanged).
    """
    if n_threads is None:
        yield
        return
    before = get_num_threads()
    set_num_threads(n_threads)
    try:
        yield
    finally:
        set_num_threads(before)


_kernels.set_num_threads(_default_threads())
