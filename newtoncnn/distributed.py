"""Data-parallel training over MPI: every process holds a contiguous shard of the instances.

f, ∇f and every Gauss-Newton product are sums over instances (docs/guide/distributed.rst)::

    f(θ)   = θᵀθ / (2 C l) + (1/l) Σ_r Σ_{i ∈ shard r} ξ_i(θ)
    G_S v  = v / (C l) + (1/|S|) Σ_r Σ_{i ∈ S ∩ shard r} J_iᵀ B_i J_i v

so each process computes its local sums and one buffer-based ``Allreduce`` (no
pickling) adds them up: one per f, one per (f, ∇f) pair (they share a buffer),
one per Gauss-Newton product. :class:`DistributedObjective` has the objective
protocol of the optimizers (``newtoncnn._optim_common``), with ``n_samples`` the global
``l``, so :class:`~newtoncnn.newton.NewtonCG` and :class:`~newtoncnn.sgd.SGD`
run on it unchanged and draw the same subsets, minibatches and gradient
samples as in one process (global indices, from the same seed on every
process); each process uses the members it holds. Every process holds the
same θ, the whole model, and does the optimizer's (cheap) vector work itself.

mpi4py is imported here only, on first use: a single process never imports it.
Launch with ``mpiexec -n K python -m mpi4py script.py`` so that an uncaught
exception on one process aborts every process instead of leaving them waiting
in a collective (``newtoncnn train --mpi`` does this itself).
"""
import time

import numpy as np
from scipy.sparse.linalg import LinearOperator

from newtoncnn.gauss_newton import GaussNewtonOperator
from newtoncnn import scaling
from newtoncnn.normalizer import Normalizer
from newtoncnn.objective import CNNObjective, Regularized
from newtoncnn.validation import GN_MODES, check_option, check_subset, check_theta

__all__ = ["DistributedObjective", "DistributedGaussNewton", "DisagreementError",
           "CollectiveError", "mpi",
           "world", "agree", "on_every_rank", "abort_on_error", "check_estimator",
           "global_classes", "fit_normalizer", "fit_scaling"]


def mpi():
    """The ``mpi4py.MPI`` module (ImportError with the install command if missing)."""
    try:
        from mpi4py import MPI
    except ImportError as exc:  # pragma: no cover - the tests need mpi4py to run at all
        raise ImportError("data-parallel training needs mpi4py and an MPI library: "
                          "pip install 'newtoncnn[mpi]' (or a system MPI with its "
                          f"mpi4py) ({exc})") from exc
    return MPI


def world(comm=None):
    """``comm``, or ``MPI.COMM_WORLD`` when it is None.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        A communicator.
    """
    return mpi().COMM_WORLD if comm is None else comm


class CollectiveError(ValueError):
    """An error raised on every process of a data-parallel run at the same point (so the
    run can end normally, without an MPI abort)."""


class DisagreementError(CollectiveError):
    """The processes of a data-parallel run were given different settings or data."""


def agree(comm, what, value):
    """Check that every process passes the same ``value``; raise on every process if not.

    One ``allgather`` of a small (pickled) object: for setup, not for the hot path.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The processes.
    what : str
        What ``value`` is, for the message.
    value : object
        Compared with ``==``.

    Raises
    ------
    DisagreementError
        On every process, naming the first process that differs from process 0.
    """
    values = comm.allgather(value)
    for rank, other in enumerate(values):
        if other != values[0]:
            raise DisagreementError(
                f"the {comm.Get_size()} processes disagree on {what}: process 0 has "
                f"{values[0]!r}, process {rank} has {other!r}")
    return value


def on_every_rank(comm, make):
    """``make()`` on every process; if it raises on any, raise on every process.

    Setup steps that can fail on some processes only (a bad shard, a file one
    node cannot read) then end with the same error everywhere instead of
    leaving the others waiting in the next collective.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        The processes.
    make : callable
        Called without arguments; its result is returned.

    Raises
    ------
    CollectiveError
        On every process when ``make`` raised on some: the failing process and
        its message (its own exception, chained, on that process).
    """
    try:
        result, error = make(), None
    except Exception as exc:  # re-raised below, on every process
        result, error = None, exc
    errors = comm.allgather(None if error is None else f"{type(error).__name__}: {error}")
    failed = [(rank, msg) for rank, msg in enumerate(errors) if msg is not None]
    if failed:
        rank, msg = failed[0]
        raise CollectiveError(f"process {rank} of {len(errors)} failed: {msg}") from error
    return result


def abort_on_error(comm=None, code=1):
    """Install a ``sys.excepthook`` that aborts every process on an uncaught exception.

    What ``python -m mpi4py`` does; for scripts started another way.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm, optional
        Aborted (default ``MPI.COMM_WORLD``).
    code : int, default 1
        The exit status.
    """
    import sys
    comm = world(comm)
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        sys.stderr.flush()
        comm.Abort(code)

    sys.excepthook = hook


def check_estimator(estimator, comm):
    """Refuse what a data-parallel ``CNNClassifier.fit`` cannot do; check that every process
    has the same parameters (``checkpoint`` and ``verbose`` may differ).

    Parameters
    ----------
    estimator : CNNClassifier
        The estimator being fitted.
    comm : mpi4py.MPI.Comm
        The processes.
    """
    params = estimator.get_params()
    errors = []
    if params["max_time"] is not None:
        errors.append("max_time is not supported with comm: the processes' clocks would "
                      "not agree on when to stop")
    if not isinstance(params["random_state"], (int, np.integer)):
        errors.append(f"random_state must be an int with comm (every process must draw "
                      f"the same initial weights and subsets), got "
                      f"{params['random_state']!r}")
    if params["early_stopping"]:
        errors.append("early_stopping=True is not supported with comm: each process would "
                      "hold out a different part of its own shard; give validation_data "
                      "(the same on every process) to watch held-out accuracy")

    def refuse():
        if errors:
            raise ValueError(errors[0])

    on_every_rank(comm, refuse)
    shared = {k: v for k, v in params.items() if k not in ("checkpoint", "verbose")}
    agree(comm, "the estimator's parameters", repr(sorted(shared.items())))


def global_classes(y, comm):
    """(the sorted classes of all shards' labels, this shard's labels as class indices).

    Parameters
    ----------
    y : ndarray, shape (l_r,)
        This process's labels.
    comm : mpi4py.MPI.Comm
        The processes.
    """
    classes = np.unique(np.concatenate(comm.allgather(np.unique(y))))
    return classes, np.searchsorted(classes, y)


def fit_normalizer(normalizer, X, comm):
    """Fit ``normalizer`` to the mean image of all shards (one Allreduce).

    Parameters
    ----------
    normalizer : Normalizer
        Fitted to this shard; refitted in place to all of them.
    X : ndarray, shape (l_r, C, H, W)
        This process's images.
    comm : mpi4py.MPI.Comm
        The processes.
    """
    mean = normalizer.mean_
    buf = np.append(mean.ravel() * len(X), float(len(X)))
    comm.Allreduce(mpi().IN_PLACE, buf, op=mpi().SUM)
    normalizer.mean_ = (buf[:-1] / buf[-1]).reshape(mean.shape)
    return normalizer


def fit_scaling(X, normalize, dtype, comm):
    """:func:`newtoncnn.scaling.fit_scaling` over all shards: the same rule, scale and
    mean image on every process, those one process would fit on all the data.

    Parameters
    ----------
    X : ndarray, shape (l_r, C, H, W)
        This process's images.
    normalize : bool or {"auto", "pixels", "standardize", "range"}
        The estimator's ``normalize``.
    dtype : str
        The floating dtype the Normalizer produces.
    comm : mpi4py.MPI.Comm
        The processes.

    Returns
    -------
    normalizer : Normalizer or None
        Fitted to all shards (None when there is no scaling).
    rule : str or None
        The rule used.
    """
    rule = scaling.scaling_rule(normalize, X)
    agree(comm, "the input scaling rule (X of one dtype on every process)", rule)
    if rule is None:
        return None, None
    flat = X.reshape(len(X), -1)
    sums = np.append(np.sum(flat, axis=0, dtype=np.float64), float(len(X)))
    comm.Allreduce(mpi().IN_PLACE, sums, op=mpi().SUM)
    mean = sums[:-1] / sums[-1]  # the mean image of all shards, in the data's unit
    if rule == "pixels":
        scale = scaling.data_scale(flat, rule)  # a constant: nothing to reduce
    elif rule == "range":
        ends = np.array([-float(np.max(flat)), float(np.min(flat))])
        comm.Allreduce(mpi().IN_PLACE, ends, op=mpi().MIN)
        scale = scaling.usable_scale(-ends[0] - ends[1])
    else:
        total = np.array([scaling.sum_sq_about(flat, mean)])
        comm.Allreduce(mpi().IN_PLACE, total, op=mpi().SUM)
        rms = (total[0] / (sums[-1] * mean.size)) ** 0.5
        scale = scaling.usable_scale(rms / scaling.TARGET_RMS)
    normalizer = Normalizer(scale=scale, dtype=dtype)
    normalizer.mean_ = (mean / scale).reshape(X.shape[1:])
    return normalizer, rule


class _Traffic:
    """What the Allreduces of one objective cost: calls, payload bytes and seconds."""

    def __init__(self):
        self.calls = 0
        self.nbytes = 0
        self.seconds = 0.0

    def as_dict(self):
        return {"calls": self.calls, "bytes": self.nbytes, "seconds": self.seconds}


class DistributedObjective(Regularized):
    """f, ∇f and Gauss-Newton products of a CNN whose instances are split over MPI processes.

    Every process constructs it with the same network and settings and its own
    shard of the instances (process r holds global instances
    ``offset .. offset + len(X) - 1``, the shards in rank order); the network,
    dtype, C and the newtoncnn version must agree (checked once, a
    :class:`DisagreementError` on every process otherwise).

    Parameters
    ----------
    net : CNN
        The network (the same on every process).
    X : array (l_r, C, H, W), or (l_r, H, W) for one channel
        This process's images, already normalized; at least one.
    y : array of int (l_r,)
        Their class indices.
    comm : mpi4py.MPI.Comm, optional
        The processes (default ``MPI.COMM_WORLD``).
    C : float, default 0.01
        Regularization constant: the regularizer is θᵀθ / (2 C l), l the global count.
    batch_size : int, default 1000
        Instances per forward/backward pass on each process.

    Attributes
    ----------
    n_samples : int
        The global l (the sum of the shards).
    offset : int
        Global index of this process's first instance.
    local : CNNObjective
        The objective of this process's shard (its sums are the local parts).
    traffic : dict
        ``calls``, ``bytes`` (payload) and ``seconds`` of the Allreduces so far
        (waiting for slower processes included).
    """

    def __init__(self, net, X, y, comm=None, C=0.01, batch_size=1000):
        from newtoncnn import __version__
        self.comm = world(comm)
        self._mpi = mpi()
        self.local = on_every_rank(
            self.comm, lambda: CNNObjective(net, X, y, C=C, batch_size=batch_size))
        self.net = net
        agree(self.comm, "the problem (newtoncnn version, network, dtype, loss, C)",
              (__version__, repr(net), net.n_params, net.dtype.str, net.loss, self.local.C))
        counts = self.comm.allgather(self.local.n_samples)
        rank = self.comm.Get_rank()
        self.counts = tuple(counts)
        self.offset = sum(counts[:rank])
        self.n_samples = sum(counts)
        self.C = self.local.C
        self.batch_size = self.local.batch_size
        self._traffic = _Traffic()

    @property
    def traffic(self):
        return self._traffic.as_dict()

    def allreduce(self, buf):
        """Sum ``buf`` (a contiguous numeric array) over the processes, in place.

        Parameters
        ----------
        buf : ndarray
            This process's part; holds the sum on return.
        """
        t0 = time.perf_counter()
        self.comm.Allreduce(self._mpi.IN_PLACE, buf, op=self._mpi.SUM)
        self._traffic.seconds += time.perf_counter() - t0
        self._traffic.calls += 1
        self._traffic.nbytes += buf.nbytes
        return buf

    def local_subset(self, subset):
        """(the members of global ``subset`` that this process holds, as local indices, or
        None for all; ``|subset|``, or l for None).

        Parameters
        ----------
        subset : ndarray of int, optional
            Global instance indices (None: all).
        """
        idx = check_subset(subset, self.n_samples)
        if idx is None:
            return None, self.n_samples
        mine = idx[(idx >= self.offset) & (idx < self.offset + self.local.n_samples)]
        return mine - self.offset, int(idx.size)

    def fun(self, theta, subset=None):
        """f(θ) over all instances of all processes, or with the loss averaged over the
        global ``subset`` (float; one Allreduce of 8 bytes).

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ, the same on every process.
        subset : ndarray of int, optional
            Global instances B the loss average runs over (None: all).
        """
        theta = check_theta(theta, self.net.n_params, self.dtype)
        idx, count = self.local_subset(subset)
        local = self.local.loss_sum(theta, idx) if idx is None or idx.size else 0.0
        buf = self.allreduce(np.array([local]))
        return self.regularizer(theta) + buf[0] / count

    def grad(self, theta):
        """∇f(θ) over all instances of all processes.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ, the same on every process.
        """
        return self.fun_grad(theta)[1]

    def fun_grad(self, theta, subset=None):
        """(f(θ), ∇f(θ)), with the loss averaged over the global ``subset`` if given;
        one Allreduce of n_params float64 and one of 8 bytes (the loss sum reduced as
        :meth:`fun` reduces it, so that both give the same f to the bit whatever
        algorithm MPI picks for a message size).

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ, the same on every process.
        subset : ndarray of int, optional
            Global instances B the loss average runs over (None: all).
        """
        theta = check_theta(theta, self.net.n_params, self.dtype)
        idx, count = self.local_subset(subset)
        buf, total = np.zeros(theta.size), np.zeros(1)
        if idx is None or idx.size:
            total[0], g = self.local.loss_sum_grad(theta, idx, 1.0 / count)
            buf[:] = g
        self.allreduce(buf)
        self.allreduce(total)
        g = buf.astype(self.dtype)
        g += theta * self.dtype.type(self.reg)
        return self.regularizer(theta) + total[0] / count, g

    def gauss_newton(self, theta, subset=None, mode="auto", memory_budget=None):
        """G_S at θ for the global subset S (a LinearOperator; one Allreduce per product).

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ, the same on every process.
        subset : array of int or None
            The global instances S (None: all).
        mode : {"auto", "jacobian", "rop"}
            The product setting of each process's part (see
            :meth:`CNNObjective.gauss_newton <newtoncnn.objective.CNNObjective.gauss_newton>`).
        memory_budget : int or None
            Bytes each process's part may hold (None: half of its available memory).

        Returns
        -------
        DistributedGaussNewton
        """
        check_option("mode", mode, GN_MODES)
        theta = check_theta(theta, self.net.n_params, self.dtype)
        idx, count = self.local_subset(subset)
        part = None
        if idx is None or idx.size:
            part = GaussNewtonOperator(self.local, theta, idx, mode=mode,
                                       memory_budget=memory_budget, scale=1.0 / count, reg=0.0)
        return DistributedGaussNewton(self, part)


class DistributedGaussNewton(LinearOperator):
    """``G_S v = v / (C l)`` plus the sum over the processes of their parts of
    ``(1/|S|) Σ J_iᵀ B_i J_i v``.

    Made by :meth:`DistributedObjective.gauss_newton`.

    Parameters
    ----------
    objective : DistributedObjective
        Supplies the communicator and 1/(C l).
    part : GaussNewtonOperator or None
        This process's members of S (None: it holds none; its part is zero).

    Attributes
    ----------
    n_products : int
        Products computed so far.
    """

    def __init__(self, objective, part):
        n = objective.net.n_params
        super().__init__(dtype=objective.dtype, shape=(n, n))
        self.objective, self.part = objective, part
        self.n_products = 0

    @property
    def mode(self):
        """This process's product setting ("rop" when it holds no member of S)."""
        return "rop" if self.part is None else self.part.mode

    @property
    def nbytes(self):
        return 0 if self.part is None else self.part.nbytes

    def _matvec(self, v):
        v = np.ascontiguousarray(np.asarray(v).reshape(-1), dtype=self.dtype)
        if v.shape != (self.shape[1],):
            raise ValueError(f"v must have shape ({self.shape[1]},), got {v.shape}")
        out = np.zeros_like(v) if self.part is None else self.part.matvec(v)
        self.objective.allreduce(out)
        out += v * self.dtype.type(self.objective.reg)
        self.n_products += 1
        return out

    def _rmatvec(self, v):
        return self._matvec(v)

    def _adjoint(self):
        return self
