"""Conjugate gradient for the damped Newton system ``(G + λI) s = -g``.

simpleNN's CG (from ``s = 0``, stop on the relative residual) is the
default; three options, all off by default, cut the work per Newton
iteration:

- a warm start from a given ``s0`` (Martens, "Deep learning via Hessian-free
  optimization", ICML 2010, §4.5: the previous Newton direction, decayed);
- a diagonal preconditioner (preconditioned CG; see ``preconditioner``);
- a stopping rule on the decrease of the quadratic model
  ``q(s) = gᵀs + ½ sᵀ(G + λI)s`` (Martens 2010, §4.4; studied for Newton-CG
  by Galli and Lin, "A study on truncated Newton methods for linear
  classification", IEEE TNNLS 2022): stop at iteration ``i`` when
  ``q_i < 0`` and ``(q_i - q_{i-k}) / q_i < k ε`` with ``k = max(10, ⌈i/10⌉)``,
  i.e. when the last ``k`` iterations bought less than a fraction ``k ε`` of
  the decrease so far. ``q`` comes free from the CG vectors:
  ``q(s) = ½ (gᵀs − rᵀs)`` with ``r = −g − (G + λI)s``.
"""
import math
import time
from typing import NamedTuple

import numpy as np

from newtoncnn._optim_common import dot64, emit, norm64, power_of_two_scale

__all__ = ["CGResult", "conjugate_gradient", "progress_printer"]


class CGResult(NamedTuple):
    """Outcome of :func:`conjugate_gradient`.

    Parameters
    ----------
    s : ndarray
        The approximate solution of ``(G + λI) s = -g``.
    n_iter : int
        CG iterations done (= products with G, the warm start's included).
    sGs : float
        ``sᵀ G s``, damping excluded, computed as ``sᵀ(-g - r - λ s)``.
    residual_norm : float
        ``‖r‖`` of the recursively updated residual.
    """

    s: np.ndarray  #: the approximate solution of (G + λI) s = -g
    n_iter: int  #: CG iterations done (= products with G, the warm start's included)
    sGs: float  #: sᵀ G s, damping excluded, computed as sᵀ(-g - r - λ s)
    residual_norm: float  #: ‖r‖ of the recursively updated residual


def _matvec(G, d):
    """``G @ d`` as a 1-d array of ``d``'s dtype (the operator may return a view)."""
    Gd = np.asarray(G @ d).reshape(-1)
    if Gd.shape != d.shape:
        raise ValueError(
            f"gauss_newton operator returned shape {Gd.shape} for a vector of shape {d.shape}"
        )
    return Gd.astype(d.dtype, copy=False)


def _model_window(i):
    """Martens' look-back ``k = max(10, ⌈i/10⌉)``."""
    return max(10, -(-i // 10))


def conjugate_gradient(G, g, damping, tol, max_iter, s0=None, model_tol=None, progress=None,
                       preconditioner=None):
    """Solve ``(G + λ I) s = -g`` by CG (simpleNN's ``CG`` with the defaults).

    Parameters
    ----------
    G : LinearOperator or array_like
        Symmetric positive (semi-)definite; only ``G @ d`` is used.
    g : ndarray, shape (n,)
        Gradient; the vectors ``s, r, d`` are kept in its dtype.
    damping : float
        ``λ >= 0`` added to the diagonal.
    tol : float
        Stop when ``‖r‖ <= tol ‖g‖`` (checked after each update).
    max_iter : int
        At most this many products with ``G`` (a warm start's first product
        included).
    s0 : ndarray, optional
        Warm start. Costs one product for ``r = -g - (G + λI) s0``; if the
        model is not lower at ``s0`` than at 0 (``q(s0) >= 0``), CG starts from
        0 instead. None (the default): start from 0, as simpleNN does.
    model_tol : float, optional
        ``ε`` of the quadratic-model stopping rule (module docstring); None
        (the default) disables it.
    progress : callable, optional
        ``progress(i, residual_norm, q)`` after every iteration (for progress lines).
    preconditioner : ndarray, shape (n,), optional
        The diagonal of a positive definite M: preconditioned CG, which solves the
        same system with the search directions of M⁻¹(G + λI). None (the default):
        plain CG, as simpleNN. The stopping tests use the true residual either way.

    Returns
    -------
    CGResult
        ``(s, n_iter, sGs, residual_norm)``. Scalars are accumulated in
        float64. If the curvature ``dᵀ(G + λI)d`` is not positive and finite
        (breakdown), CG stops and returns the current ``s`` (zero if it
        happens at the first iteration).

    Notes
    -----
    CG runs on the system with ``g`` scaled by the power of two that brings
    ``max |g_i|`` near 1 (and ``s`` rescaled at the end): scaling by a power of
    two is exact and every step is linear in ``g``, so the iterates are those of
    the unscaled system bit for bit, but their sums of squares cannot overflow
    however large ``g`` is (``C = 1e-300``, inputs of size 1e80).
    """
    lam = float(damping)
    g = np.asarray(g)
    if norm64(g) == 0.0:  # nothing to solve; avoid 0/0
        return CGResult(np.zeros_like(g), 0, 0.0, 0.0)
    M = _check_preconditioner(preconditioner, g)
    scale = power_of_two_scale(g)
    g_scaled = g * scale
    s, r, n_iter = _start(G, g_scaled, lam, s0, max_iter, scale)
    result = _iterate(G, g_scaled, lam, tol, max_iter, s, r, n_iter, model_tol, progress, scale,
                      M)
    s, r = result.s / scale, result.r / scale   # exact
    sGs = dot64(s, -g - r - lam * s)
    return CGResult(s, result.n_iter, sGs, result.residual_norm / scale)


class _Scaled(NamedTuple):
    s: np.ndarray
    r: np.ndarray
    n_iter: int
    residual_norm: float


def _check_preconditioner(M, g):
    """M as g's dtype, checked positive and finite (None stays None)."""
    if M is None:
        return None
    M = np.asarray(M, dtype=np.float64)
    if M.shape != g.shape or not np.all(np.isfinite(M)) or not np.all(M > 0):
        raise ValueError(f"preconditioner must be a positive finite array of shape {g.shape}")
    M = M.astype(g.dtype)
    if not np.all(M > 0):  # underflowed in float32
        raise ValueError("preconditioner has entries that underflow in the dtype of g")
    return M


def _iterate(G, g, lam, tol, max_iter, s, r, n_iter, model_tol, progress, scale, M=None):
    """CG's loop on the scaled system (progress reported in the caller's units); with a
    diagonal M, preconditioned CG (z = M⁻¹ r; with M = None, z is r and this is plain CG
    bit for bit)."""
    gnorm = norm64(g)
    z = r if M is None else r / M
    rz = dot64(r, z)
    rTr = rz if M is None else dot64(r, r)
    cgtol = tol * gnorm
    d = z.copy()
    q_hist = [0.5 * (dot64(g, s) - dot64(r, s))]
    while n_iter < max_iter:
        n_iter += 1
        Gd = _matvec(G, d) + lam * d
        dGd = dot64(d, Gd)
        if not (math.isfinite(dGd) and dGd > 0.0):  # breakdown: keep s as is
            break
        alpha = rz / dGd
        s += alpha * d
        r -= alpha * Gd
        z = r if M is None else r / M
        rz_new = dot64(r, z)
        beta = rz_new / rz
        rz = rz_new
        rTr = rz if M is None else dot64(r, r)
        if model_tol is not None or progress is not None:
            q_hist.append(0.5 * (dot64(g, s) - dot64(r, s)))
            if progress is not None:
                progress(n_iter, math.sqrt(rTr) / scale, q_hist[-1] / scale / scale)
            if model_tol is not None and _model_stalled(q_hist, model_tol):
                break
        if math.sqrt(rTr) <= cgtol:
            break
        d = z + beta * d
    return _Scaled(s, r, n_iter, math.sqrt(rTr))


def _start(G, g, lam, s0, max_iter, scale):
    """(s, r, products used) at CG's starting point (g and the result scaled by
    ``scale``, s0 not)."""
    if s0 is not None and max_iter > 1:
        s = np.array(s0, dtype=g.dtype).reshape(-1) * scale
        if s.shape == g.shape and np.all(np.isfinite(s)) and s.any():
            r = -g - (_matvec(G, s) + lam * s)
            if 0.5 * (dot64(g, s) - dot64(r, s)) < 0.0:  # q(s0) < q(0): worth keeping
                return s, r, 1
            return np.zeros_like(g), -g, 1
    return np.zeros_like(g), -g, 0


def _model_stalled(q_hist, eps):
    """Martens' rule on the model values ``q_0 .. q_i`` (q_hist[i] after i iterations)."""
    i = len(q_hist) - 1
    k = _model_window(i)
    if i <= k:
        return False
    q, q_old = q_hist[i], q_hist[i - k]
    return q < 0.0 and (q - q_old) / q < k * eps


def progress_printer(gnorm, every=25, seconds=10.0):
    """A ``progress`` callback printing a line every ``every`` products or ``seconds``
    seconds (``verbose >= 2`` of the optimizers): iteration, ``‖r‖/‖g‖``, ``q``, time.

    Parameters
    ----------
    gnorm : float
        ``‖g‖``, the scale of the printed ``‖r‖/‖g‖``.
    every : int, default 25
        Print after every ``every``-th product...
    seconds : float, default 10.0
        ... or when this many seconds passed since the last line.
    """
    start = last = time.perf_counter()

    def progress(i, rnorm, q):
        nonlocal last
        now = time.perf_counter()
        if i % every == 0 or now - last >= seconds:
            last = now
            emit(f"      CG {i:4d}  |r|/|g| {rnorm / gnorm:.3e}  q {q:.6e}  "
                 f"{now - start:.1f} s", True)
    return progress
