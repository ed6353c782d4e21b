"""One knob for the threads of the C kernels (OpenMP) and of BLAS.

BLAS is scipy's (all GEMMs go through ``scipy.linalg.cython_blas``); its
thread pool is limited with threadpoolctl when that is installed.
"""
import os

from newtoncnn import _kernels

__all__ = ["set_num_threads", "get_num_threads"]

_blas_limiter = None


def _default_threads():
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.split(",")[0].strip().isdigit() and int(env.split(",")[0]) > 0:
        return int(env.split(",")[0])
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_num_threads(n_threads):
    """Use ``n_threads`` threads in the kernels and in BLAS (threadpoolctl, if installed)."""
    global _blas_limiter
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")
    _kernels.set_num_threads(n_threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    _blas_limiter = threadpool_limits(limits=n_threads, user_api="blas")


def get_num_threads():
    """The number of threads the kernels use."""
    return _kernels.get_num_threads()


_kernels.set_num_threads(_default_threads())
