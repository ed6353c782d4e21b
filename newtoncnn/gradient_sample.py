"""f and ∇f on a growing sample of the instances (Byrd, Chin, Nocedal and Wu 2012).

R. H. Byrd, G. M. Chin, J. Nocedal and Y. Wu, "Sample size selection in
optimization methods for machine learning", Math. Programming 134 (2012):
evaluate the objective and its gradient on a sample ``S`` of the instances::

    f_S(x) = xᵀx / (2 C l) + (1/|S|) Σ_{i∈S} ξ_i(x),

and enlarge ``S`` when the sampled gradient is too noisy to be a descent
direction of the full ``f`` with high probability — the *norm test*::

    ‖Var_{i∈S} ∇ξ_i‖₁ / |S| <= θ² ‖∇f_S‖²,

after which ``|S|`` becomes ``‖Var‖₁ / (θ² ‖∇f_S‖²)``. Early iterations, far
from a minimizer, then run on a few thousand instances; the sample reaches
the whole data set as the gradient gets small. The user guide
("The Newton iteration", docs/guide/newton.rst) puts it in context. Nothing here knows about
networks: it calls the objective's ``fun_grad(x, subset=idx)``.

The variance is estimated from the sample's parts (equal blocks of about
``part_size`` instances, evaluated one ``fun_grad`` call each): with part
gradients ``g_j`` of ``n_j`` instances and their weighted mean ``ḡ``,
``‖Var‖₁ ≈ Σ_j n_j ‖g_j − ḡ‖² / (m − 1)``. No per-instance gradient is formed.
The sample is nested: it is a prefix of one random permutation, so growing
it evaluates only the new instances.
"""
import math

import numpy as np

from newtoncnn._optim_common import norm64, takes_subset

__all__ = ["GradientSample"]


class GradientSample:
    """The instances on which NewtonCG evaluates f and ∇f when ``gradient_sample`` is set.

    Parameters
    ----------
    objective : object
        Has ``n_samples`` and ``fun_grad(x, subset=idx)`` returning
        ``(f_S, ∇f_S)`` with the loss averaged over ``idx`` only; if its ``fun``
        takes ``subset=idx`` too (and returns the same ``f_S`` to the bit), line-search
        trials can skip the gradient (``evaluate(x, grad=False)``).
    initial : float in (0, 1]
        Initial fraction of the instances.
    theta : float > 0
        ``θ`` of the norm test.
    rng : numpy.random.Generator
        Draws the permutation whose prefix is the sample.
    n_parts : int, default 8
        Parts of the initial sample; the part size stays fixed as it grows.
    """

    def __init__(self, objective, initial, theta, rng, n_parts=8):
        self.objective = objective
        self.n_samples = int(objective.n_samples)
        self.theta = float(theta)
        self.order = rng.permutation(self.n_samples)
        self.size = min(self.n_samples, max(math.ceil(initial * self.n_samples), 2))
        self.part_size = max(1, -(-self.size // n_parts))

    @classmethod
    def restore(cls, objective, theta, order, size, part_size):
        """The sample a checkpoint saved (its permutation, size and part size).

        Parameters
        ----------
        objective : object
            As in the constructor.
        theta : float
            ``θ`` of the norm test.
        order : ndarray of int
            The saved permutation.
        size : int
            The saved sample size.
        part_size : int
            The saved part size.
        """
        sample = cls.__new__(cls)
        sample.objective, sample.n_samples = objective, int(objective.n_samples)
        sample.theta, sample.order = float(theta), order
        sample.size, sample.part_size = int(size), int(part_size)
        return sample

    @property
    def full(self):
        return self.size >= self.n_samples

    def _parts(self, start, stop):
        """Sorted index blocks of ``order[start:stop]`` (sorted: memory order)."""
        return [np.sort(self.order[a:min(a + self.part_size, stop)])
                for a in range(start, stop, self.part_size)]

    def evaluate(self, x, start=0, grad=True):
        """Per-part ``(n_j, f_j, g_j)`` at ``x`` for the instances ``order[start:size]``.

        Parameters
        ----------
        x : ndarray
            The point.
        start : int, default 0
            First position in the permutation to evaluate.
        grad : bool, default True
            False: ``g_j`` is None where the objective's ``fun`` takes a subset
            (a forward pass only; the same ``f_j``).
        """
        out = []
        f_only = not grad and takes_subset(self.objective.fun)
        for idx in self._parts(start, self.size):
            if f_only:
                out.append((idx.size, float(self.objective.fun(x, subset=idx)), None))
            else:
                f, g = self.objective.fun_grad(x, subset=idx)
                out.append((idx.size, float(f), np.asarray(g).reshape(-1)))
        return out

    @staticmethod
    def combine(parts, dtype):
        """``(f_S, ∇f_S)``: the instance-weighted mean of the parts (float64 sums);
        ``∇f_S`` is None if the parts were evaluated without gradients.

        Parameters
        ----------
        parts : list of (int, float, ndarray or None)
            Per-part ``(n_j, f_j, g_j)`` from :meth:`evaluate`.
        dtype : dtype
            dtype of the returned gradient.
        """
        total = sum(n for n, _, _ in parts)
        f = sum(n * fj for n, fj, _ in parts) / total
        if any(gj is None for _, _, gj in parts):
            return f, None
        g = np.zeros(parts[0][2].shape, dtype=np.float64)
        for n, _, gj in parts:
            g += (n / total) * gj.astype(np.float64)
        return f, g.astype(dtype)

    def variance_ratio(self, parts, g):
        """``(‖Var‖₁ / |S|) / ‖∇f_S‖²``; the norm test holds when it is ``<= θ²``.

        Parameters
        ----------
        parts : list of (int, float, ndarray)
            The sample's parts.
        g : ndarray
            ∇f_S, their weighted mean.
        """
        if len(parts) < 2:
            return 0.0
        gnorm = norm64(g)
        if gnorm == 0.0:
            return math.inf
        # in units of ‖∇f_S‖ (a scaled norm), so that no square overflows
        g64 = g.astype(np.float64) / gnorm
        spread = sum(n * float(np.sum((gj.astype(np.float64) / gnorm - g64) ** 2))
                     for n, _, gj in parts)
        return spread / (len(parts) - 1) / self.size

    def maybe_grow(self, x, parts, g):
        """Apply the norm test at ``x``; grow the sample if it fails.

        Returns the parts of the (possibly larger) sample at ``x``: the new
        instances are evaluated, the old parts are reused.

        Parameters
        ----------
        x : ndarray
            The point.
        parts : list of (int, float, ndarray)
            The sample's parts at ``x``.
        g : ndarray
            ∇f_S at ``x`` (their weighted mean).
        """
        if self.full:
            return parts
        ratio = self.variance_ratio(parts, g)
        if ratio <= self.theta ** 2:
            return parts
        wanted = self.size * ratio / self.theta ** 2
        new_size = min(self.n_samples, max(self.size + 1, math.ceil(wanted)))
        old = self.size
        self.size = new_size
        return parts + self.evaluate(x, start=old)

    def tested(self, x, parts):
        """``(parts, f_S, ∇f_S)`` at x after the norm test (which may grow the sample).

        Parameters
        ----------
        x : ndarray
            The point.
        parts : list of (int, float, ndarray)
            The sample's parts at ``x``.
        """
        f, g = self.combine(parts, x.dtype)
        grown = self.maybe_grow(x, parts, g)
        if len(grown) != len(parts):
            f, g = self.combine(grown, x.dtype)
        return grown, f, g
