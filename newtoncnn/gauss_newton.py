"""The subsampled Gauss-Newton matrix as a scipy LinearOperator.

The mathematics and both settings are described in the user guide, "The
Gauss-Newton matrix and its products" (docs/guide/gauss_newton.rst)::

    G_S v = v / (C l) + (1/|S|) Σ_{i∈S} J_iᵀ B_i J_i v

in either setting of the lecture:

- ``"jacobian"``: when the operator is built, one forward pass over S and K
  backward passes store ∂z/∂S^m per layer
  (:class:`~newtoncnn.jacobian.StoredJacobian`); each
  product is then GEMMs and contractions only.
- ``"rop"``: J v by forward-mode R{·} propagation, Jᵀu by the gradient's
  backward pass; the forward pass of each chunk is kept when it fits the
  memory budget, recomputed per product otherwise, so memory need not grow
  with ``|S|`` or K.

``"auto"`` starts in the R-op setting and stores the Jacobian only once the
products already done would have paid for building it (the ski-rental rule:
after ``n*`` products, where ``n*`` times the modelled saving per product
reaches the modelled cost of the build), and only when the stored setting is
the cheaper one per product and fits the memory budget. A CG that stops after
a few products, as early Newton iterations do, then never pays for a build
it cannot amortize, and a long one pays at most about twice the optimum.
Both settings compute the same G_S v, so the switch changes products only by
rounding.
"""
import math
import threading
import weakref
from collections import namedtuple

import numpy as np
from scipy.sparse.linalg import LinearOperator

from newtoncnn import passes
from newtoncnn.jacobian import StoredJacobian, jacobian_bytes_per_instance
from newtoncnn.layers import ConvGeometry
from newtoncnn.validation import GN_MODES as MODES, check_option, check_real

__all__ = ["GaussNewtonOperator", "ArrayPool", "MODES", "available_memory", "product_costs",
           "switch_after"]

_PROBE_SIZE = 64


def available_memory():
    """Bytes of memory available now (MemAvailable), or 4 GiB if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


# Flop-equivalents of one byte of stored-Jacobian traffic: about the GEMM rate over the
# memory bandwidth (~120 GFLOP/s against ~20 GB/s on the machines measured).
FLOPS_PER_BYTE = 6.0


def product_costs(net):
    """Modelled cost of one product per instance, (Jacobian setting, R-op), in flops.

    Jacobian: the GEMMs V φ and dS φᵀ of every layer, plus reading the stored
    blocks twice. R-op: V φ and dS φᵀ of every layer, plus W φ(R{Z}) and Wᵀ dS
    of every layer but the first. The model, not a timing, decides "auto", so
    that a run's trajectory does not depend on the machine's load.

    Parameters
    ----------
    net : CNN
        The network.

    Returns
    -------
    jacobian, rop : float
        Flops per instance of one product in either setting.
    """
    flops = [g.flops(1) for g in net.geometry]
    block_bytes = jacobian_bytes_per_instance(net) - forward_bytes_per_instance(net)
    jacobian = 2 * sum(flops) + 2 * FLOPS_PER_BYTE * block_bytes
    rop = 4 * sum(flops) - 2 * flops[0]
    return jacobian, rop


def switch_after(net):
    """Products after which "auto" stores the Jacobian (None: never, R-op is cheaper).

    ``ceil((build_jacobian - build_rop) / (rop - jacobian))`` in the model of
    :func:`product_costs`: the Jacobian build is one forward pass plus K
    backward passes through every layer but the first (their input-delta
    GEMMs) plus writing the blocks; the R-op build keeps the forward pass.

    Parameters
    ----------
    net : CNN
        The network, whose sizes give the costs (as in :func:`product_costs`).

    Returns
    -------
    int or None
        The number of products, at least 1.
    """
    jacobian, rop = product_costs(net)
    if jacobian >= rop:
        return None
    flops = [g.flops(1) for g in net.geometry]
    block_bytes = jacobian_bytes_per_instance(net) - forward_bytes_per_instance(net)
    extra_build = net.n_classes * (sum(flops) - flops[0]) + FLOPS_PER_BYTE * block_bytes
    return max(1, math.ceil(extra_build / (rop - jacobian)))


def forward_bytes_per_instance(net):
    """Bytes one instance's kept forward pass takes (layer inputs, Z, argmax, dense inputs)."""
    item = net.dtype.itemsize
    total = 0
    for g in net.geometry:
        if isinstance(g, ConvGeometry):
            po = g.out_c * g.out_h * g.out_w
            total += g.in_c * g.in_h * g.in_w * item + po * (item + 4)
        else:
            total += g.in_features * item
    return total


class ArrayPool:
    """The big arrays of the operator that went last, kept for the next operator.

    A Newton method builds an operator of the same shapes every iteration;
    handing the stored blocks of the last one to the next one saves faulting
    in gigabytes of fresh pages each time. An operator gives its arrays back
    when it is garbage-collected, and they replace whatever the pool held, so
    the pool never holds more than one operator's arrays (operators of
    changing shapes, such as subsets of varying size, do not pile up).
    Safe to share between threads.
    """

    def __init__(self):
        self._free = {}
        self._lock = threading.Lock()

    def take(self, shape, dtype):
        """An array of ``shape`` and ``dtype`` (contents undefined).

        Parameters
        ----------
        shape : tuple of int
            Shape of the array.
        dtype : dtype
            Its dtype.
        """
        key = (tuple(shape), np.dtype(dtype).str)
        with self._lock:
            free = self._free.get(key)
            if free:
                return free.pop()
        return np.empty(shape, dtype=dtype)

    def give_back(self, arrays):
        """Keep ``arrays`` (one operator's) in place of everything kept before.

        Parameters
        ----------
        arrays : iterable of ndarray
            Arrays of one operator, no longer used by it.
        """
        arrays = list(arrays)
        if not arrays:
            return
        free = {}
        for a in arrays:
            free.setdefault((a.shape, a.dtype.str), []).append(a)
        with self._lock:
            self._free = free

    def clear(self):
        """Drop every kept array (their memory goes back to the system)."""
        with self._lock:
            self._free = {}

    @property
    def nbytes(self):
        with self._lock:
            return sum(a.nbytes for arrays in self._free.values() for a in arrays)


# One batch of S: its kept forward pass (None: recomputed per product), the loss curvature
# state behind B_i, its stored Jacobian (None in the R-op setting) and its images.
_Chunk = namedtuple("_Chunk", ["cache", "state", "jac", "X"])


class GaussNewtonOperator(LinearOperator):
    """G_S at θ for the instances S of an objective (symmetric positive definite).

    Build it with :meth:`CNNObjective.gauss_newton
    <newtoncnn.objective.CNNObjective.gauss_newton>`. ``G @ v`` is G_S v.

    Parameters
    ----------
    objective : CNNObjective
        The objective whose instances and network define G_S.
    theta : ndarray
        θ at which G_S is built (copied).
    subset : ndarray of int, optional
        The instances S (None: all).
    mode : {"auto", "jacobian", "rop"}, default "auto"
        The setting of the product (see the user guide, "The Gauss-Newton matrix and its products").
    memory_budget : int, optional
        Bytes the operator may hold (None: half of the available memory).
    scale : float, optional
        Factor of the sum ``Σ_{i∈S} J_iᵀ B_i J_i v`` (None: ``1/|S|``). A process
        holding part of a larger S gives ``1/|S|`` of the whole S.
    reg : float, optional
        Coefficient of the regularization term ``reg · v`` (None: the objective's
        ``reg``, 1/(C l); 0: left out, as a process of a data-parallel sum does).

    Attributes
    ----------
    mode : {"jacobian", "rop"}
        The setting in use ("auto" resolved; it may change from "rop" to
        "jacobian" after ``switch_at`` products).
    switch_at : int or None
        With ``mode="auto"``: the product count at which the Jacobian is
        stored (None: it never is).
    nbytes : int
        Bytes of the stored Jacobian blocks / kept forward passes.
    n_products : int
        Products computed so far.
    """

    def __init__(self, objective, theta, subset=None, mode="auto", memory_budget=None,
                 scale=None, reg=None):
        check_option("mode", mode, MODES)
        if memory_budget is None:
            memory_budget = available_memory() // 2
        else:
            try:
                memory_budget = check_real("memory_budget", memory_budget, low=0.0)
            except (TypeError, ValueError):
                raise ValueError(f"memory_budget must be a non-negative finite number of bytes, "
                                 f"got {memory_budget!r}") from None
        net = objective.net
        super().__init__(dtype=net.dtype, shape=(net.n_params, net.n_params))
        # G is G at the θ it was built at: the caller may change its array afterwards
        self.objective, self.net, self.theta = objective, net, np.array(theta, copy=True)
        self.theta.flags.writeable = False
        self.subset = subset
        self.count = objective.n_samples if subset is None else subset.size
        self.scale = 1.0 / self.count if scale is None else float(scale)
        self.reg = objective.reg if reg is None else float(reg)
        self.memory_budget = int(memory_budget)
        self.switch_at = None
        self.mode = self._choose_mode(mode)
        self.n_products = 0
        self._owned = []
        self._chunks = self._build()
        weakref.finalize(self, objective.array_pool.give_back, self._owned)

    def _alloc(self, shape, dtype):
        a = self.objective.array_pool.take(shape, dtype)
        self._owned.append(a)
        return a

    # -- construction -------------------------------------------------------------
    def _choose_mode(self, mode):
        jac_bytes = jacobian_bytes_per_instance(self.net) * self.count
        if mode == "jacobian":
            if jac_bytes > self.memory_budget:
                raise MemoryError(
                    f"the Jacobian setting needs {jac_bytes / 2**20:.0f} MiB for {self.count} "
                    f"instances, over memory_budget={self.memory_budget / 2**20:.0f} MiB; "
                    f"use mode='rop' or a smaller subset")
            return mode
        if mode == "rop" or jac_bytes > self.memory_budget:
            return "rop"
        self.switch_at = switch_after(self.net)
        return "rop"

    def _store_jacobian(self):
        """Switch to the stored-Jacobian setting (reusing the kept forward passes)."""
        # the forward passes are kept: the Jacobian's memory, which includes them, fits
        self._chunks = [_Chunk(None, c.state, StoredJacobian(self.net, self.theta, c.cache,
                                                             alloc=self._alloc), c.X)
                        for c in self._chunks]
        self.mode = "jacobian"
        self.switch_at = None

    def _build(self):
        """One :data:`_Chunk` per batch of S."""
        keep_forward = (self.mode == "jacobian" or
                        forward_bytes_per_instance(self.net) * self.count <= self.memory_budget)
        chunks = []
        for Xb, _ in self.objective.batches(self.subset):
            # a forward pass that is not kept goes to the net's reusable buffers, not to
            # memory this operator would hold for its lifetime
            with passes.holding(self.net):
                cache = (passes.forward(self.net, self.theta, Xb, alloc=self._alloc)
                         if keep_forward else passes.forward(self.net, self.theta, Xb, reuse=True))
                state = self.objective.loss.curvature_state(cache.out)
            if self.mode == "jacobian":
                jac = StoredJacobian(self.net, self.theta, cache, alloc=self._alloc)
                chunks.append(_Chunk(None, state, jac, Xb))
            else:
                chunks.append(_Chunk(cache if keep_forward else None, state, None, Xb))
        return chunks

    @property
    def nbytes(self):
        total = 0
        for chunk in self._chunks:
            for part in (chunk.jac, chunk.cache, chunk.state):
                total += part.nbytes if part is not None else 0
        return total

    # -- products -----------------------------------------------------------------
    def _forward(self, chunk):
        """The chunk's forward pass: kept, or recomputed into the net's reusable buffers
        (then used up by this product, which holds ``passes.holding(net)`` meanwhile)."""
        if chunk.cache is not None:
            return chunk.cache
        return passes.forward(self.net, self.theta, chunk.X, reuse=True)

    def _check_v(self, v):
        v = np.asarray(v)
        if v.shape not in ((self.shape[1],), (self.shape[1], 1)):
            raise ValueError(f"v must have shape ({self.shape[1]},), got {v.shape}")
        return np.ascontiguousarray(v.reshape(-1), dtype=self.dtype)

    def jvp(self, v):
        """(J_i v)_{i∈S} as an ``(|S|, K)`` array.

        Parameters
        ----------
        v : ndarray, shape (n_params,)
            The direction.
        """
        v = self._check_v(v)
        with passes.holding(self.net):
            return np.concatenate([self._chunk_jvp(chunk, v) for chunk in self._chunks])

    def vjp(self, U):
        """Σ_{i∈S} J_iᵀ U_i for an ``(|S|, K)`` array U.

        Parameters
        ----------
        U : ndarray, shape (len(S), K)
            One row per instance of S.
        """
        U = np.asarray(U)
        if U.shape != (self.count, self.net.n_classes):
            raise ValueError(f"U must have shape ({self.count}, {self.net.n_classes}), "
                             f"got {U.shape}")
        U = np.ascontiguousarray(U, dtype=self.dtype)
        grad = np.zeros(self.shape[0], dtype=self.dtype)
        with passes.holding(self.net):
            for chunk, rows in self._chunk_rows(U):
                self._chunk_vjp(chunk, rows, grad)
        return grad

    def _chunk_rows(self, A):
        """(chunk, its rows of A) for an array A with one row per instance of S."""
        start = 0
        for chunk in self._chunks:
            n = chunk.X.shape[0]
            yield chunk, A[start:start + n]
            start += n

    def curvature_sample(self, sigma):
        """``r = Σ_{i∈S} J_iᵀ L_i σ_i`` for one ``(|S|, K)`` array σ, where
        ``L_i L_iᵀ = B_i`` (the loss's ``curvature_factor_product``): one backward pass
        over S. With independent Rademacher entries in σ, ``E[r ⊙ r]`` is the diagonal of
        ``Σ_{i∈S} J_iᵀ B_i J_i`` (see :meth:`diagonal_estimate`).

        Parameters
        ----------
        sigma : ndarray, shape (len(S), K)
            One row per instance of S, in the order of S.
        """
        sigma = np.asarray(sigma)
        if sigma.shape != (self.count, self.net.n_classes):
            raise ValueError(f"sigma must have shape ({self.count}, {self.net.n_classes}), "
                             f"got {sigma.shape}")
        loss = self.objective.loss
        return self.vjp(np.concatenate([
            loss.curvature_factor_product(chunk.state, rows)
            for chunk, rows in self._chunk_rows(sigma.astype(self.dtype, copy=False))]))

    def diagonal_estimate(self, n_samples, rng):
        """An unbiased estimate of diag(G_S), in float64 (Chapelle and Erhan, "Improved
        preconditioner for Hessian free optimization", NIPS Workshop on Deep Learning
        2011): ``reg + scale · mean_t r_t ⊙ r_t`` over ``n_samples`` draws of
        :meth:`curvature_sample` with Rademacher σ. Each draw costs one backward pass over S
        (about half a product).

        Parameters
        ----------
        n_samples : int >= 1
            Draws averaged.
        rng : numpy.random.Generator
            Source of the signs.
        """
        shape = (self.count, self.net.n_classes)
        total = np.zeros(self.shape[0])
        for _ in range(n_samples):
            sigma = rng.integers(0, 2, size=shape).astype(self.dtype) * 2 - 1
            r = self.curvature_sample(sigma).astype(np.float64)
            total += r * r
        return self.reg + self.scale * total / n_samples

    def _chunk_jvp(self, chunk, v, forward=None):
        if chunk.jac is not None:
            return chunk.jac.jvp(v)
        return passes.rop(self.net, self.theta, forward or self._forward(chunk), v)

    def _chunk_vjp(self, chunk, U, grad, forward=None):
        if chunk.jac is not None:
            return chunk.jac.vjp(U, grad)
        return passes.backward(self.net, self.theta, forward or self._forward(chunk), U,
                               grad=grad)

    def _matvec(self, v):
        v = self._check_v(v)
        loss = self.objective.loss
        out = np.zeros(self.shape[0], dtype=self.dtype)
        scale = self.dtype.type(self.scale)
        with passes.holding(self.net):
            for chunk in self._chunks:
                # the R-op setting runs one forward pass per chunk for both halves
                forward = None if chunk.jac is not None else self._forward(chunk)
                u = loss.hessian_product(chunk.state, self._chunk_jvp(chunk, v, forward))
                u *= scale
                self._chunk_vjp(chunk, u, out, forward)
            self.n_products += 1
        if self.reg != 0.0:
            out += v * self.dtype.type(self.reg)
        if self.switch_at is not None and self.n_products >= self.switch_at:
            self._store_jacobian()
        return out

    def _rmatvec(self, v):
        return self._matvec(v)

    def _adjoint(self):
        return self
