"""Helpers shared by the optimizers in :mod:`newtoncnn.newton` and :mod:`newtoncnn.sgd`.

Nothing here knows about neural networks: the objective protocol, termination
statuses, float64 reductions, a wall clock, the per-iteration hooks
(validation and callback) and the progress printer.

Objective protocol
------------------
:meth:`NewtonCG.minimize <newtoncnn.newton.NewtonCG.minimize>` accepts any object with

``n_samples`` : int
    The number ``l`` of training instances.
``fun(x)`` -> float
    The full-data objective ``f(x)``.
``grad(x)`` -> ndarray
    Its gradient, same shape as ``x``.
``fun_grad(x)`` -> (float, ndarray)
    Both at once (optional; ``fun`` + ``grad`` are used if it is missing).
``fun_grad(x, subset=idx)``, ``fun(x, subset=idx)`` (optional)
    The objective with the loss averaged over the instances ``idx`` only: the
    gradient sample (``gradient_sample < 1``) needs ``fun_grad``; with ``fun``
    too, which must return ``fun_grad``'s ``f`` to the bit, its line-search
    trials skip the gradient where it will not be used.
``gauss_newton(x, subset=idx, mode=gn_mode)`` -> LinearOperator
    The subsampled Gauss-Newton matrix ``G_S`` at ``x`` for the instance
    indices ``idx`` (a sorted int array), symmetric positive definite,
    including the regularization term ``v / (C l)`` but *not* the damping
    ``λ``. Anything supporting ``G @ v`` for a 1-d ``v`` works.
``dtype`` (optional)
    The floating dtype the objective computes in. The iterate ``x`` is kept
    in it (otherwise in ``x0``'s floating dtype); CG scalars and norms are
    always accumulated in float64.
``fingerprint()`` -> dict (optional)
    JSON-ready values that define the problem (e.g. its constants and a
    digest of its data); a checkpoint records them and a resumed run must
    agree with them (:mod:`newtoncnn.checkpoint`).

:class:`~newtoncnn.sgd.SGD` needs only ``n_samples`` and ``fun_grad(x, subset=None)``.

Termination statuses
--------------------
``OptimizeResult.status`` of both optimizers is a :class:`Status` (an ``IntEnum``):

=====================  ==  =================================================
``CONVERGED``           0  ``‖g‖ <= gtol ‖g₀‖`` (or ``‖g‖ = 0``)
``MAX_ITER``            1  ``max_iter`` iterations done (the normal end)
``MAX_TIME``            2  wall-clock time exceeded ``max_time`` seconds
``CALLBACK``            3  a callback returned True or raised StopIteration
``LINE_SEARCH_FAILED``  4  ``max_failures`` consecutive rejected iterations
``DAMPING_TOO_LARGE``   5  ``λ`` exceeded ``max_damping``
``NON_FINITE``          6  ``f`` or ``g`` non-finite at ``x0`` or at an
                           accepted point (that point is discarded)
``INTERRUPTED``         7  ``KeyboardInterrupt``: the best point so far is
                           returned
=====================  ==  =================================================
"""

import enum
import inspect
import math
import numbers
import sys
import time
import warnings
from collections.abc import Mapping

import numpy as np

from newtoncnn.validation import check_int

__all__ = ["Status", "STATUS_MESSAGES", "SUCCESS_STATUSES"]


class Status(enum.IntEnum):
    """Why an optimizer stopped (``OptimizeResult.status``).

    ``CONVERGED``, ``MAX_ITER``, ``MAX_TIME`` and ``CALLBACK`` are normal
    terminations (``success=True``); the others are failures
    (``success=False``). In every case ``x`` is finite and is the best
    point the optimizer has accepted.
    """

    CONVERGED = 0  #: gradient norm small enough
    MAX_ITER = 1  #: iteration (Newton) or epoch (SGD) budget used up
    MAX_TIME = 2  #: wall-clock budget ``max_time`` used up
    CALLBACK = 3  #: the callback asked to stop
    LINE_SEARCH_FAILED = 4  #: too many consecutive rejected Newton steps
    DAMPING_TOO_LARGE = 5  #: the Levenberg-Marquardt damping exceeded its cap
    NON_FINITE = 6  #: the objective returned NaN/Inf (or ‖g‖ overflowed) at an accepted point
    INTERRUPTED = 7  #: KeyboardInterrupt (Ctrl-C)


STATUS_MESSAGES = {
    Status.CONVERGED: "Converged: gradient norm below gtol * initial gradient norm.",
    Status.MAX_ITER: "Maximum number of iterations reached.",
    Status.MAX_TIME: "Time limit max_time reached.",
    Status.CALLBACK: "Stopped by the callback.",
    Status.LINE_SEARCH_FAILED: (
        "Line search failed: no step length satisfied the sufficient-decrease "
        "condition in too many consecutive iterations."
    ),
    Status.DAMPING_TOO_LARGE: "Damping (lambda) exceeded max_damping; no progress possible.",
    Status.NON_FINITE: (
        "The objective returned a non-finite value or gradient norm; stopped at the last "
        "finite point (float64, or inputs of a smaller scale, may help)."
    ),
    Status.INTERRUPTED: "Interrupted by the user (KeyboardInterrupt).",
}

SUCCESS_STATUSES = frozenset(
    {Status.CONVERGED, Status.MAX_ITER, Status.MAX_TIME, Status.CALLBACK}
)


# ---------------------------------------------------------------- the objective
def check_objective(objective, methods):
    """Check the objective protocol; return ``n_samples`` as int."""
    for m in methods:
        if not callable(getattr(objective, m, None)):
            raise TypeError(f"objective must have a callable {m!r} method")
    n = getattr(objective, "n_samples", None)
    if n is None:
        raise TypeError("objective must have an 'n_samples' attribute")
    return check_int("objective.n_samples", n, low=1)


def prepare_x0(x0, objective):
    """Copy ``x0`` into a fresh 1-d float array of the objective's dtype.

    The objective's ``dtype`` attribute wins (the model computes in it);
    otherwise ``x0``'s floating dtype is kept, and non-float input becomes
    float64. The caller's array is never modified.
    """
    arr = np.asarray(x0)
    if arr.ndim != 1:
        raise ValueError(f"x0 must be a 1-d array, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError("x0 must not be empty")
    dtype = getattr(objective, "dtype", None)
    if dtype is not None:
        dtype = np.dtype(dtype)
    elif np.issubdtype(arr.dtype, np.floating):
        dtype = arr.dtype
    else:
        dtype = np.dtype(np.float64)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"objective.dtype must be a floating dtype, got {dtype}")
    x = np.array(arr, dtype=dtype, copy=True)
    if not np.all(np.isfinite(x)):
        raise ValueError("x0 contains NaN or Inf")
    return x


def as_vector(v, x):
    """Objective output as a fresh 1-d array of x's dtype, shape-checked.

    Copied because it is kept across objective calls, and a fast objective
    may hand out a buffer it reuses.
    """
    v = np.asarray(v).reshape(-1)
    if v.shape != x.shape:
        raise ValueError(f"objective gradient has shape {v.shape}, expected {x.shape}")
    return v.astype(x.dtype, copy=True)


def takes_subset(fun):
    """Whether the callable ``fun`` has a ``subset`` parameter."""
    try:
        return "subset" in inspect.signature(fun).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def fun_grad(objective, x):
    """(f, g) at x, through fun_grad when the objective has it."""
    fg = getattr(objective, "fun_grad", None)
    if callable(fg):
        f, g = fg(x)
    else:
        f, g = objective.fun(x), objective.grad(x)
    return float(f), as_vector(g, x)


# ---------------------------------------------------------------- float64 reductions
def dot64(a, b):
    """``aᵀb`` accumulated in float64 (CG scalars must not lose digits in float32)."""
    return float(np.dot(a.astype(np.float64, copy=False), b.astype(np.float64, copy=False)))


# Below this sum of squares, squares of small entries may have underflowed.
_SQUARES_MIN = float(np.finfo(np.float64).tiny / np.finfo(np.float64).eps)


def norm64(a):
    """Euclidean norm accumulated in float64, without overflow or underflow.

    ``sqrt(aᵀa)`` when the sum of squares is in float64's safe range, else the
    scaled norm ``m ‖a / m‖`` with ``m = max |a_i|`` (as LAPACK's ``nrm2``): finite
    for every finite ``a`` whose norm is. A non-finite entry gives inf or NaN.
    """
    with np.errstate(over="ignore", under="ignore"):
        squares = dot64(a, a)
    if _SQUARES_MIN <= squares < math.inf:
        return math.sqrt(squares)
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    m = float(np.max(np.abs(a))) if a.size else 0.0
    if m == 0.0 or not math.isfinite(m):
        return m
    return m * math.sqrt(dot64(a / m, a / m))


def power_of_two_scale(a):
    """``2**-e`` that brings ``max |a_i|`` into [0.5, 1) (1.0 for a zero or non-finite
    ``a``): multiplying by it is exact, so a linear computation on the scaled vector
    gives the scaled results bit for bit, without overflow."""
    a = np.asarray(a).reshape(-1)
    m = float(np.max(np.abs(a))) if a.size else 0.0
    if m == 0.0 or not math.isfinite(m):
        return 1.0
    limit = np.finfo(a.dtype).maxexp - 3   # the scale itself stays a normal number
    return math.ldexp(1.0, min(limit, max(-limit, -math.frexp(m)[1])))


def all_finite(a):
    """True if every entry of ``a`` is finite."""
    return bool(np.all(np.isfinite(a)))


def read_only(x):
    """A read-only view of ``x``: hooks may keep it but cannot corrupt the iterate."""
    view = x.view()
    view.flags.writeable = False
    return view


# ---------------------------------------------------------------- clock
class Clock:
    """Wall clock with a pausable "optimizer time".

    ``wall()`` is the total elapsed time (used for ``max_time``);
    ``elapsed()`` excludes the time spent inside ``paused()`` blocks
    (validation, callbacks, monitoring), which is what the history's
    ``seconds`` reports, like simpleNN, which excludes evaluation time.

    ``offset`` is added to ``elapsed()`` only: a resumed run continues the
    cumulative ``seconds`` of the run it resumes, while ``wall()`` (the
    ``max_time`` budget) counts this call alone.
    """

    def __init__(self, offset=0.0):
        self._start = time.perf_counter()
        self._paused_total = 0.0
        self._offset = float(offset)

    def wall(self):
        return time.perf_counter() - self._start

    def elapsed(self):
        return self.wall() - self._paused_total + self._offset

    def paused(self):
        return _Pause(self)


class _Pause:
    def __init__(self, clock):
        self._clock = clock

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self._clock._paused_total += time.perf_counter() - self._t0
        return False


# ---------------------------------------------------------------- hooks
def _merge(row, extra, source):
    """Merge a hook's dict into ``row`` without overwriting the optimizer's keys."""
    if extra is None:
        return
    if not isinstance(extra, Mapping):
        raise TypeError(f"{source} must return a dict (or None), got {type(extra).__name__}")
    for key, value in extra.items():
        if key in row:
            warnings.warn(
                f"{source} returned key {key!r}, which is reserved; ignored", RuntimeWarning
            )
            continue
        row[key] = value


def run_hooks(x, row, validation, callbacks, clock):
    """Run validation then callbacks on ``x``; return True if one asks to stop.

    ``validation(x)`` returns a dict merged into the history ``row``.
    ``callback(x, row)`` may return a dict (merged), True (stop) or None;
    raising ``StopIteration`` also stops. Hook time is excluded from
    ``seconds``.
    """
    stop = False
    with clock.paused():
        xv = read_only(x)
        if validation is not None:
            _merge(row, validation(xv), "validation")
        for cb in callbacks:
            try:
                out = cb(xv, row)
            except StopIteration:
                stop = True
                continue
            if out is True:
                stop = True
            elif out is not None and out is not False:
                _merge(row, out, "callback")
    return stop


# ---------------------------------------------------------------- printing
def _fmt(value):
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{float(value):.4g}"
    return str(value)


def format_row(row, fields, extra_from):
    """One progress line: ``label: value`` for ``fields`` then non-core keys.

    ``fields`` is a list of (key, label, format); keys after ``extra_from``
    in the row (added by hooks) are appended with a generic format.
    """
    parts = []
    for key, label, fmt in fields:
        value = row.get(key)
        parts.append(f"{label} {format(value, fmt) if value is not None else '-'}")
    core = {key for key, _, _ in fields} | set(extra_from)
    parts += [f"{k} {_fmt(v)}" for k, v in row.items() if k not in core]
    return "  ".join(parts)


def emit(line, verbose):
    """Print a progress line when verbose (flushed, for long runs in pipes)."""
    if verbose:
        print(line, file=sys.stdout, flush=True)


# ---------------------------------------------------------------- sklearn-style params
class ParamsMixin:
    """``get_params``/``set_params``/``__repr__`` from the ``__init__`` signature."""

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep=True):
        """Constructor arguments as a dict (scikit-learn convention)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor arguments; unknown names raise ValueError. Returns self."""
        valid = set(self._param_names())
        for name in params:
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; "
                    f"valid parameters: {sorted(valid)}"
                )
        old = self.get_params()
        for name, value in params.items():
            setattr(self, name, value)
        try:
            self._validate()
        except (TypeError, ValueError):
            for name, value in old.items():  # keep the object usable
                setattr(self, name, value)
            raise
        return self

    def __repr__(self):
        sig = inspect.signature(type(self).__init__)
        args = [
            f"{name}={getattr(self, name)!r}"
            for name, p in sig.parameters.items()
            if name != "self" and getattr(self, name) is not p.default
            and not _equal_default(getattr(self, name), p.default)
        ]
        return f"{type(self).__name__}({', '.join(args)})"


def _equal_default(value, default):
    try:
        return bool(value == default)
    except Exception:  # arrays, odd objects: just show them
        return False
