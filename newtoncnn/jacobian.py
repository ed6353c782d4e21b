"""The stored-Jacobian ("backward") setting of the lecture, slides 4–26.

One backward pass per output k, seeded with e_k for the whole batch, gives
∂z_k^{L+1,i}/∂S^{m,i} for every layer (where the sparse float32 kernels apply, the
conv layers take all K seeds in one pass: ``_kernels.jacobian_deltas``). For a conv
layer that derivative is zero except at each pool window's argmax where the ReLU is
active, so it is
stored at pooled size next to the argmax indices (k² times smaller than the
lecture's pre-pool blocks). With the layer inputs kept by the forward pass
every later J v and Jᵀu is, per layer, one GEMM on φ (rebuilt per tile, in
cache) and a contraction with the stored block: no pooling and no backward
propagation inside CG.
"""
import numpy as np

from newtoncnn import _kernels, passes
from newtoncnn.layers import ConvGeometry
from newtoncnn.threads import blas_single_threaded

__all__ = ["StoredJacobian", "jacobian_bytes_per_instance"]


def jacobian_bytes_per_instance(net):
    """Bytes one instance's stored blocks and kept activations take.

    Parameters
    ----------
    net : CNN
        The network.
    """
    item = net.dtype.itemsize
    K = net.n_classes
    total = 0
    for g in net.geometry:
        if isinstance(g, ConvGeometry):
            po = g.out_c * g.out_h * g.out_w
            total += g.in_c * g.in_h * g.in_w * item + K * po * item + po * (4 + item)
        else:
            total += g.in_features * item + K * g.out_features * item
    return total


def _storing(blocks, k):
    """``on_delta`` of :func:`passes.backward` that stores seed k's deltas in ``blocks``."""
    def store(m, delta):
        n = delta.shape[0]
        blocks[m][:, k] = delta.reshape(n, -1) if delta.ndim == 2 else \
            delta.reshape(n, delta.shape[1], -1)
    return store


class StoredJacobian:
    """∂z^{L+1}/∂S^m of one batch, for products with any direction.

    Parameters
    ----------
    net : CNN
    theta : ndarray
    cache : passes.Forward
        The batch's forward pass (kept); its layer inputs and argmax are reused.
    alloc : callable (shape, dtype) -> ndarray, optional
        Where the blocks' memory comes from (default: np.empty).
    """

    def __init__(self, net, theta, cache, alloc=None):
        self.net = net
        self.cache = cache
        self.blocks = self._build(theta, cache, alloc or np.empty)

    @property
    def nbytes(self):
        return self.cache.nbytes + sum(a.nbytes for a in self.blocks)

    def _build(self, theta, cache, alloc):
        net, n, K = self.net, cache.n, self.net.n_classes
        blocks = []
        for g in net.geometry:
            if isinstance(g, ConvGeometry):
                blocks.append(alloc((n, K, g.out_c, g.out_h * g.out_w), net.dtype))
            else:
                blocks.append(alloc((n, K, g.out_features), net.dtype))
        if not self._conv_seeds_at_once(theta, cache, blocks):
            self._one_seed_at_a_time(theta, cache, blocks)
        return blocks

    def _one_seed_at_a_time(self, theta, cache, blocks):
        """One backward pass per output k, seeded with e_k."""
        net, n, K = self.net, cache.n, self.net.n_classes
        seed = np.zeros((n, K), dtype=net.dtype)
        for k in range(K):
            seed[:, k] = 1
            passes.backward(net, theta, cache, seed, grad=None, on_delta=_storing(blocks, k))
            seed[:, k] = 0

    def _conv_seeds_at_once(self, theta, cache, blocks):
        """The dense layers one seed at a time, then every conv layer's block from the one
        above it for all K seeds in one sparse pass (``_kernels.jacobian_deltas``: the
        entries sorted once, each weight load serving several seeds). False where that
        kernel does not apply (float64, input channels not a multiple of 8, ...)."""
        net, n, K = self.net, cache.n, self.net.n_classes
        last = net.n_conv - 1
        if last < 1 or net.dtype != np.float32:
            return False
        top = blocks[last].reshape(n, K, -1)
        with net.workspace.lock, blas_single_threaded():
            seed = np.zeros((n, K), dtype=net.dtype)
            for k in range(K):
                seed[:, k] = 1
                ds = passes.dense_backward(net, theta, cache, seed, None, _storing(blocks, k))
                _kernels.mask_positive_(ds.reshape(-1), cache.Z[last].reshape(-1))
                top[:, k] = ds.reshape(n, -1)
                seed[:, k] = 0
            for m in range(last, 0, -1):
                g, _, tile, ws = passes.conv_args(net, m)
                if not _kernels.jacobian_deltas(g, blocks[m], cache.argmax[m],
                                                net.layout.augmented(theta, m),
                                                cache.conv_input(m), tile, ws, blocks[m - 1]):
                    return False
        return True

    def jvp(self, v):
        """J v for the batch: ``(n, K)``, J_i v = Σ_m (∂z/∂S^m) vec(V^m φ^m + v_b^m 1ᵀ).

        Parameters
        ----------
        v : ndarray, shape (n_params,)
            The direction.
        """
        net, cache = self.net, self.cache
        out = np.zeros((cache.n, net.n_classes), dtype=net.dtype)
        with net.workspace.lock, blas_single_threaded():
            for m, g in enumerate(net.geometry):
                if isinstance(g, ConvGeometry):
                    g, idx, tile, ws = passes.conv_args(net, m)
                    _kernels.jacobian_jvp(g, cache.conv_input(m), self.blocks[m], cache.argmax[m],
                                       net.layout.augmented(v, m), idx, tile, ws, out)
                else:
                    V, vb = net.layout.layer(v, m)
                    r = passes.dense_affine(cache.dense_in[m - net.n_conv], V, vb)
                    out += np.matmul(self.blocks[m], r[:, :, None])[:, :, 0]
        return out

    def vjp(self, U, grad):
        """``grad += Σ_i J_iᵀ U_i``; layer m's block is Σ_i U^{m,i} [φ^{m,i}ᵀ | 1].

        Parameters
        ----------
        U : ndarray, shape (n, K)
            One row per instance of the batch.
        grad : ndarray, shape (n_params,)
            Accumulated into.
        """
        net, cache = self.net, self.cache
        U = np.ascontiguousarray(U, dtype=net.dtype)
        with net.workspace.lock, blas_single_threaded():
            for m, g in enumerate(net.geometry):
                if isinstance(g, ConvGeometry):
                    g, idx, tile, ws = passes.conv_args(net, m)
                    _kernels.jacobian_vjp(g, cache.conv_input(m), self.blocks[m], cache.argmax[m],
                                       U, idx, tile, ws, net.layout.augmented(grad, m))
                else:
                    ds = np.matmul(U[:, None, :], self.blocks[m])[:, 0, :]
                    passes.accumulate_dense_grad(net.layout, grad, m, ds,
                                                 cache.dense_in[m - net.n_conv])
        return grad
