"""The stored-Jacobian ("backward") setting of the lecture, slides 4–26.

One backward pass per output k, seeded with e_k for the whole batch, gives
∂z_k^{L+1,i}/∂S^{m,i} for every layer. For a conv layer that derivative is
zero except at each pool window's argmax where the ReLU is active, so it is
stored at pooled size next to the argmax indices (k² times smaller than the
lecture's pre-pool blocks). Together with φ(pad(Z^{m,i})) (z^{m,i} for dense
layers) every later J v and Jᵀu is a GEMM plus a contraction per layer: no
im2col and no pooling inside CG.
"""
import numpy as np

from newtoncnn import _kernels, passes
from newtoncnn._blas import gemm
from newtoncnn.layers import ConvGeometry

__all__ = ["StoredJacobian", "jacobian_bytes_per_instance"]


def jacobian_bytes_per_instance(net):
    """Bytes one instance's stored blocks take (φ, compact ∂z/∂S, argmax, dense inputs)."""
    item = net.dtype.itemsize
    K = net.n_classes
    total = 0
    for g in net.geometry:
        if isinstance(g, ConvGeometry):
            po = g.out_c * g.out_h * g.out_w
            total += g.fan_in * g.conv_h * g.conv_w * item + K * po * item + po * 4
        else:
            total += g.in_features * item + K * g.out_features * item
    return total


class StoredJacobian:
    """∂z^{L+1}/∂S^m of one batch, for products with any direction.

    Parameters
    ----------
    net : CNN
    theta : ndarray
    cache : passes.Forward
        The batch's forward pass (kept); its φ, argmax and dense inputs are reused.
    """

    def __init__(self, net, theta, cache):
        self.net = net
        self.n = cache.n
        self.phi = cache.phi
        self.dense_in = cache.dense_in
        self.argmax = [am if am is not None else _identity_argmax(net.geometry[m], cache.n)
                       for m, am in enumerate(cache.argmax)]
        self.blocks = self._build(theta, cache)

    @property
    def nbytes(self):
        arrays = self.phi + self.dense_in + self.argmax + self.blocks
        return sum(a.nbytes for a in arrays)

    def _build(self, theta, cache):
        net, n, K = self.net, self.n, self.net.n_classes
        blocks = []
        for g in net.geometry:
            if isinstance(g, ConvGeometry):
                blocks.append(np.empty((n, K, g.out_c, g.out_h * g.out_w), dtype=net.dtype))
            else:
                blocks.append(np.empty((n, K, g.out_features), dtype=net.dtype))
        seed = np.zeros((n, K), dtype=net.dtype)
        for k in range(K):
            seed[:, k] = 1

            def store(m, delta, k=k):
                if delta.ndim == 4:   # conv: (C, n, h, w) -> blocks[m][:, k] as (n, C, h*w)
                    blocks[m][:, k] = delta.reshape(delta.shape[0], n, -1).transpose(1, 0, 2)
                else:
                    blocks[m][:, k] = delta

            passes.backward(net, theta, cache, seed, grad=None, on_delta=store)
            seed[:, k] = 0
        return blocks

    def jvp(self, v):
        """J v for the batch: ``(n, K)``, J_i v = Σ_m (∂z/∂S^m) vec(V^m φ^m + v_b^m 1ᵀ)."""
        net, n = self.net, self.n
        out = np.zeros((n, net.n_classes), dtype=net.dtype)
        for m, g in enumerate(net.geometry):
            V, vb = net.layout.layer(v, m)
            if isinstance(g, ConvGeometry):
                R = passes.affine(V, vb, self.phi[m], n * g.conv_h * g.conv_w)
                _kernels.jac_jvp_(self.blocks[m], R.reshape(g.out_c, n, g.conv_h, g.conv_w),
                                  self.argmax[m], out)
            else:
                r = passes.dense_affine(self.dense_in[m - net.n_conv], V, vb)
                out += np.matmul(self.blocks[m], r[:, :, None])[:, :, 0]
        return out

    def vjp(self, U, grad):
        """``grad += Σ_i J_iᵀ U_i``; layer m's block is U^{m,i} [φ^{m,i}ᵀ | 1] summed over i."""
        net, n = self.net, self.n
        U = np.ascontiguousarray(U, dtype=net.dtype)
        for m, g in enumerate(net.geometry):
            if isinstance(g, ConvGeometry):
                dS = _kernels.jac_vjp(self.blocks[m], U, self.argmax[m], g.conv_h, g.conv_w)
                passes.accumulate_conv_grad(net.layout, grad, m, dS.reshape(g.out_c, -1),
                                             self.phi[m])
            else:
                ds = np.matmul(U[:, None, :], self.blocks[m])[:, 0, :]
                passes.accumulate_dense_grad(net.layout, grad, m, ds,
                                              self.dense_in[m - net.n_conv])
        return grad


def _identity_argmax(g, n):
    """The argmax map of "no pool": every pixel is its own window."""
    P = g.conv_h * g.conv_w
    return np.ascontiguousarray(
        np.broadcast_to(np.arange(P, dtype=np.int32).reshape(1, 1, g.conv_h, g.conv_w),
                        (g.out_c, n, g.conv_h, g.conv_w)))
