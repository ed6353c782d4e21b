"""The three passes over one batch: forward, backward (Jᵀu) and R-operator (J v).

Conv feature maps are kept "CNHW" ``(channels, instances, h, w)`` so that each
conv layer is one GEMM ``S^m = W^m φ(pad(Z^m)) + b^m 1ᵀ`` for the whole batch
(DESIGN.md 1.1). Dense activations are ``(instances, features)``.

A :class:`Forward` keeps what the other passes need: φ of every conv layer,
the pooled activations (their signs are the ReLU masks), the pool argmax
indices and the dense inputs.
"""
import numpy as np

from newtoncnn import _kernels
from newtoncnn._blas import gemm
from newtoncnn.layers import ConvGeometry

__all__ = ["Forward", "forward", "backward", "rop"]


class Forward:
    """What one forward pass over a batch of n instances keeps.

    Attributes
    ----------
    phi : list of ndarray
        φ(pad(Z^m)) per conv layer, ``(in_c * taps, n * P)``.
    Z : list of ndarray
        Z^{m+1} per conv layer (after ReLU and pool), ``(out_c, n, out_h, out_w)``.
    argmax : list of ndarray or None
        Pool indices per conv layer (None where there is no pool).
    dense_in : list of ndarray
        z^m per dense layer, ``(n, in_features)``.
    out : ndarray
        z^{L+1}, ``(n, K)``.
    """

    def __init__(self, n):
        self.n = n
        self.phi, self.Z, self.argmax, self.dense_in = [], [], [], []
        self.out = None

    @property
    def nbytes(self):
        arrays = self.phi + self.Z + [a for a in self.argmax if a is not None] + self.dense_in
        return sum(a.nbytes for a in arrays) + (self.out.nbytes if self.out is not None else 0)


def _to_cnhw(X):
    return np.ascontiguousarray(X.transpose(1, 0, 2, 3))


def _flatten(Z):
    """(C, n, h, w) -> (n, C*h*w) in PyTorch's Flatten order (channel, row, column)."""
    C, n, h, w = Z.shape
    return np.ascontiguousarray(Z.reshape(C, n, h * w).transpose(1, 0, 2)).reshape(n, C * h * w)


def _unflatten(dz, g):
    """Inverse of :func:`_flatten` for the conv layer g feeding the first dense layer."""
    n = dz.shape[0]
    return np.ascontiguousarray(
        dz.reshape(n, g.out_c, g.out_h * g.out_w).transpose(1, 0, 2)).reshape(
            g.out_c, n, g.out_h, g.out_w)


def _im2col(net, m, Z):
    g = net.geometry[m]
    Zp = _kernels.pad(Z, g.padding) if g.padding else Z
    return _kernels.im2col(Zp, net.im2col_index(m))


def affine(W, b, A, n_cols):
    """W A + b 1ᵀ as one GEMM into a bias-filled buffer."""
    S = np.empty((W.shape[0], n_cols), dtype=W.dtype)
    _kernels.fill_rows_(S, b)
    gemm(W, A, S, beta=1.0)
    return S


def dense_affine(z, W, b):
    """z Wᵀ + 1 bᵀ for a batch of rows z."""
    s = np.empty((z.shape[0], W.shape[0]), dtype=W.dtype)
    s[...] = b
    gemm(z, W, s, trans_b=True, beta=1.0)
    return s


def forward(net, theta, X, keep=True):
    """Forward pass of a batch X (n, C, H, W); returns a :class:`Forward`.

    With ``keep=False`` only ``out`` is kept (prediction).
    """
    n = X.shape[0]
    cache = Forward(n)
    layout = net.layout
    Z = _to_cnhw(X)
    z = None
    for m, g in enumerate(net.geometry):
        W, b = layout.layer(theta, m)
        if isinstance(g, ConvGeometry):
            phi = _im2col(net, m, Z)
            S = affine(W, b, phi, n * g.conv_h * g.conv_w)
            S4 = S.reshape(g.out_c, n, g.conv_h, g.conv_w)
            if g.pool > 1:
                Z, am = _kernels.maxpool(S4, g.pool, relu=True)
            else:
                _kernels.relu_(S.reshape(-1))
                Z, am = S4, None
            if keep:
                cache.phi.append(phi)
                cache.Z.append(Z)
                cache.argmax.append(am)
        else:
            if z is None:
                z = _flatten(Z)
            if keep:
                cache.dense_in.append(z)
            z = dense_affine(z, W, b)
            if g.relu:
                _kernels.relu_(z.reshape(-1))
    cache.out = z
    return cache


def backward(net, theta, cache, dout, grad=None, on_delta=None):
    """Jᵀ dout for the batch of ``cache``: ``grad += Σ_i J_iᵀ dout_i``.

    Parameters
    ----------
    dout : ndarray (n, K)
    grad : ndarray or None
        Flat θ-shaped array accumulated into; None skips the weight
        gradients (only the layer deltas are propagated).
    on_delta : callable(m, delta) or None
        Called with each layer's ∂/∂S^m of ⟨dout, z^{L+1}⟩: for a dense layer
        ``(n, out)``; for a conv layer at pooled size ``(out_c, n, out_h, out_w)``
        (the entries at the pool argmax, ReLU mask applied). The Jacobian
        setting stores these.
    """
    layout = net.layout
    geometry = net.geometry
    n_conv = net.n_conv
    ds = np.ascontiguousarray(dout, dtype=net.dtype)
    for m in range(len(geometry) - 1, n_conv - 1, -1):
        d = m - n_conv
        z_in = cache.dense_in[d]
        if on_delta is not None:
            on_delta(m, ds)
        if grad is not None:
            accumulate_dense_grad(layout, grad, m, ds, z_in)
        if m == 0:
            return grad
        dz = np.empty_like(z_in)
        gemm(ds, layout.weight_matrix(theta, m), dz)
        if d > 0:
            _kernels.mask_positive_(dz.reshape(-1), z_in.reshape(-1))
        ds = dz
    dZ = _unflatten(ds, geometry[n_conv - 1])
    for m in range(n_conv - 1, -1, -1):
        g = geometry[m]
        Z = cache.Z[m]
        if g.pool == 1:
            _kernels.mask_positive_(dZ.reshape(-1), Z.reshape(-1))
            dS = dZ
            if on_delta is not None:
                on_delta(m, dS)
        elif on_delta is not None:
            _kernels.mask_positive_(dZ.reshape(-1), Z.reshape(-1))
            on_delta(m, dZ)
            dS = _kernels.pool_scatter(dZ, cache.argmax[m], g.conv_h, g.conv_w)
        else:
            dS = _kernels.pool_scatter(dZ, cache.argmax[m], g.conv_h, g.conv_w, z=Z)
        dS = dS.reshape(g.out_c, -1)
        if grad is not None:
            accumulate_conv_grad(layout, grad, m, dS, cache.phi[m])
        if m > 0:
            dZ = _conv_input_delta(net, theta, m, dS)
    return grad


def accumulate_dense_grad(layout, grad, m, ds, z_in):
    gemm(ds, z_in, layout.weight_matrix(grad, m), trans_a=True, beta=1.0)
    layout.bias(grad, m)[...] += ds.sum(axis=0)


def accumulate_conv_grad(layout, grad, m, dS, phi):
    gemm(dS, phi, layout.weight_matrix(grad, m), trans_b=True, beta=1.0)
    layout.bias(grad, m)[...] += dS.sum(axis=1)


def _conv_input_delta(net, theta, m, dS):
    """∂/∂Z^m from ∂/∂S^m: crop(P_φᵀ vec(W^mᵀ dS))."""
    g = net.geometry[m]
    W = net.layout.weight_matrix(theta, m)
    dphi = np.empty((W.shape[1], dS.shape[1]), dtype=dS.dtype)
    gemm(W, dS, dphi, trans_a=True)
    dZp = _kernels.col2im(dphi, net.im2col_index(m), g.in_c, g.padded_h, g.padded_w)
    return _kernels.crop(dZp, g.padding) if g.padding else dZp


def rop(net, theta, cache, v):
    """J v for the batch of ``cache`` by forward-mode R{·} propagation; returns (n, K)."""
    layout = net.layout
    n = cache.n
    RZ = None
    rz = None
    for m, g in enumerate(net.geometry):
        W, _ = layout.layer(theta, m)
        V, vb = layout.layer(v, m)
        if isinstance(g, ConvGeometry):
            # R{S^m} = W^m φ(pad(R{Z^m})) + V^m φ(pad(Z^m)) + v_b^m 1ᵀ
            RS = affine(V, vb, cache.phi[m], n * g.conv_h * g.conv_w)
            if RZ is not None:
                gemm(W, _im2col(net, m, RZ), RS, beta=1.0)
            RS4 = RS.reshape(g.out_c, n, g.conv_h, g.conv_w)
            RZ = RS4 if g.pool == 1 else _kernels.pool_gather(RS4, cache.argmax[m])
            _kernels.mask_positive_(RZ.reshape(-1), cache.Z[m].reshape(-1))
        else:
            d = m - net.n_conv
            z_in = cache.dense_in[d]
            if rz is None and RZ is not None:
                rz = _flatten(RZ)
            rs = dense_affine(z_in, V, vb)
            if rz is not None:
                gemm(rz, W, rs, trans_b=True, beta=1.0)
            if g.relu:
                _kernels.mask_positive_(rs.reshape(-1), cache.dense_in[d + 1].reshape(-1))
            rz = rs
    return rz
