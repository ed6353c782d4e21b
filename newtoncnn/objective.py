"""The regularized training objective, in simpleNN's scaling (docs/guide/objective.rst).

    f(θ) = θᵀθ / (2 C l) + (1/l) Σ_i ξ(z^{L+1,i}(θ); y^i)

evaluated over the data in batches, so memory is bounded by ``batch_size``.
This is the seam the optimizers see: ``fun``, ``grad``, ``fun_grad``,
``gauss_newton`` and ``n_samples`` (see :mod:`newtoncnn.newton`).
"""
import hashlib

import numpy as np

from newtoncnn import passes
from newtoncnn.layers import layer_to_dict
from newtoncnn.losses import get_loss
from newtoncnn.validation import (check_images, check_int, check_labels, check_regularization,
                                  check_subset, check_theta)

__all__ = ["CNNObjective", "Regularized"]


class Regularized:
    """The regularizer θᵀθ / (2 C l) of an objective with ``net``, ``C`` and ``n_samples``."""

    @property
    def dtype(self):
        return self.net.dtype

    @property
    def reg(self):
        """1 / (C l), the regularizer's curvature."""
        return 1.0 / (self.C * self.n_samples)

    def regularizer(self, theta):
        """θᵀθ / (2 C l) (float, summed in float64).

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ.
        """
        t = theta.astype(np.float64)
        return float(np.einsum("i,i->", t, t)) * self.reg / 2.0


class CNNObjective(Regularized):
    """f, ∇f and Gauss-Newton products of a CNN on a data set.

    Parameters
    ----------
    net : CNN
    X : array (l, C, H, W), or (l, H, W) for one channel
        Training images, already normalized; converted to ``net.dtype``.
    y : array of int (l,)
        Class indices 0..K−1.
    C : float, default 0.01
        Regularization constant: the regularizer is θᵀθ / (2 C l).
    batch_size : int, default 1000
        Instances per forward/backward pass.

    Attributes
    ----------
    n_samples : int
        l.
    """

    def __init__(self, net, X, y, C=0.01, batch_size=1000):
        self.net = net
        self.X = check_images(X, net.input_shape, net.dtype)
        self.n_samples = self.X.shape[0]
        if self.n_samples == 0:
            raise ValueError("X must hold at least one instance")
        self.y = check_labels(y, self.n_samples, net.n_classes)
        self.C = check_regularization(C)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.loss = get_loss(net.loss)
        self._array_pool = None

    def fingerprint(self):
        """What defines this problem, for checkpoints: ``C``, the loss, the network
        (input shape, layers, dtype) and ``data``, a SHA-256 digest of X and y (their
        shapes, dtypes and bytes, as held: after any normalization). The digest reads
        the data once (0.6-0.9 s for 60,000 28x28 float32 images, where one f takes 35 s).
        """
        digest = hashlib.sha256()
        for arr in (self.X, self.y):
            arr = np.ascontiguousarray(arr)
            digest.update(f"{arr.dtype.str}{arr.shape};".encode())
            digest.update(memoryview(arr.reshape(-1)).cast("B"))
        net = self.net
        return {"C": self.C, "loss": net.loss,
                "network": {"input_shape": list(net.input_shape),
                            "layers": [layer_to_dict(layer) for layer in net.layers],
                            "dtype": net.dtype.name},
                "data": "sha256:" + digest.hexdigest()}

    def _subset(self, subset):
        return check_subset(subset, self.n_samples)

    def batches(self, subset=None):
        """The instances ``subset`` (None: all) as ``(X, y)`` batches of at most
        ``batch_size``, in order (the passes' unit of memory).

        Parameters
        ----------
        subset : ndarray of int, optional
            Instances to use (None: all).
        """
        idx = self._subset(subset)
        n = self.n_samples if idx is None else idx.size
        for sl in self.net.batches(n, self.batch_size):
            if idx is None:
                yield self.X[sl], self.y[sl]
            else:
                yield self.X[idx[sl]], self.y[idx[sl]]

    def loss_sum(self, theta, subset=None):
        """Σ_{i∈B} ξ_i(θ), without the regularizer and unscaled (float).

        The local part of f that a data-parallel objective adds up over its
        processes (:class:`~newtoncnn.distributed.DistributedObjective`).

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ in the model's dtype.
        subset : ndarray of int, optional
            The instances B (None: all).
        """
        theta = check_theta(theta, self.net.n_params, self.dtype)
        total = 0.0
        for Xb, yb in self.batches(self._subset(subset)):
            total += self.loss.value(passes.forward(self.net, theta, Xb, keep=False).out, yb)
        return total

    def loss_sum_grad(self, theta, subset=None, scale=None):
        """(Σ_{i∈B} ξ_i(θ), scale · Σ_{i∈B} ∇ξ_i(θ)): the loss sum and its scaled
        gradient over the instances B, without the regularizer.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ in the model's dtype.
        subset : ndarray of int, optional
            The instances B (None: all).
        scale : float, optional
            Factor of the gradient sum (None: ``1/|B|``).
        """
        theta = check_theta(theta, self.net.n_params, self.dtype)
        idx = self._subset(subset)
        if scale is None:
            scale = 1.0 / (self.n_samples if idx is None else idx.size)
        total = 0.0
        g = np.zeros_like(theta)
        for Xb, yb in self.batches(idx):
            with passes.holding(self.net):   # the forward pass lives in shared buffers
                cache = passes.forward(self.net, theta, Xb, reuse=True)
                value, dz = self.loss.value_grad(cache.out, yb)
                total += value
                dz *= dz.dtype.type(scale)
                passes.backward(self.net, theta, cache, dz, grad=g)
        return total, g

    def fun(self, theta, subset=None):
        """f(θ) (float); with ``subset`` the loss average runs over those instances only,
        as in :meth:`fun_grad`, whose f it equals to the bit (a forward pass only).

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ in the model's dtype.
        subset : ndarray of int, optional
            Instances B the loss average runs over (None: all).
        """
        theta = check_theta(theta, self.net.n_params, self.dtype)
        idx = self._subset(subset)
        count = self.n_samples if idx is None else idx.size
        return self.regularizer(theta) + self.loss_sum(theta, idx) / count

    def grad(self, theta):
        """∇f(θ) over all instances.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ in the model's dtype.
        """
        return self.fun_grad(theta)[1]

    def fun_grad(self, theta, subset=None):
        """(f(θ), ∇f(θ)); with ``subset`` the loss average runs over those instances only:
        ``θᵀθ / (2 C l) + (1/|B|) Σ_{i∈B} ξ_i`` (the minibatch objective of SGD).

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ in the model's dtype.
        subset : ndarray of int, optional
            Instances B the loss average runs over (None: all).
        """
        theta = check_theta(theta, self.net.n_params, self.dtype)
        idx = self._subset(subset)
        count = self.n_samples if idx is None else idx.size
        total, g = self.loss_sum_grad(theta, idx, 1.0 / count)
        g += theta * self.dtype.type(self.reg)
        return self.regularizer(theta) + total / count, g

    def gauss_newton(self, theta, subset=None, mode="auto", memory_budget=None):
        """The subsampled Gauss-Newton matrix G_S at θ as a LinearOperator.

        ``G_S v = v / (C l) + (1/|S|) Σ_{i∈S} J_iᵀ B_i J_i v`` (λ not included).

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ in the model's dtype.
        subset : array of int or None
            The instances S (None: all).
        mode : {"auto", "jacobian", "rop"}
            "jacobian" stores every ∂z/∂S^m once and makes each product a few
            GEMMs; "rop" recomputes J v forward and Jᵀu backward per product;
            "auto" picks the one a cost model finds cheaper, within ``memory_budget``.
        memory_budget : int or None
            Bytes the operator may hold (None: half of the available memory).

        Returns
        -------
        GaussNewtonOperator
        """
        from newtoncnn.gauss_newton import GaussNewtonOperator
        theta = check_theta(theta, self.net.n_params, self.dtype)
        return GaussNewtonOperator(self, theta, self._subset(subset), mode=mode,
                                   memory_budget=memory_budget)

    @property
    def array_pool(self):
        """Memory that Gauss-Newton operators hand on to the next one (``.clear()`` frees it)."""
        if self._array_pool is None:
            from newtoncnn.gauss_newton import ArrayPool
            self._array_pool = ArrayPool()
        return self._array_pool
