"""The three passes over one batch: forward, backward (Jᵀu) and R-operator (J v).

Feature maps are NCHW ``(instances, channels, h, w)``, like the input, so the
last conv layer's output flattened per instance is already PyTorch's
``Flatten`` order. Conv layers run in ``newtoncnn._kernels`` over instance
tiles (φ is rebuilt per tile from the layer input, never stored); dense
layers are one GEMM each.

A :class:`Forward` keeps what the other passes need: every conv layer's
input and pooled output (its signs are the ReLU masks), the pool argmax
indices and the dense inputs.
"""
import numpy as np

from newtoncnn import _kernels
from newtoncnn._kernels import gemm
from newtoncnn.layers import ConvGeometry
from newtoncnn.threads import blas_single_threaded

__all__ = ["Forward", "forward", "backward", "rop", "tile_size", "holding"]

# Bytes of tile buffers (φ and S) per thread: small enough to stay in L2.
TILE_BYTES = 1 << 20


def tile_size(g, dtype):
    """Instances per tile for conv layer g.

    Parameters
    ----------
    g : ConvGeometry
        The conv layer.
    dtype : dtype
        The net's dtype.
    """
    per_instance = (g.fan_in + 1 + g.out_c) * g.used_h * g.used_w * np.dtype(dtype).itemsize
    return max(1, TILE_BYTES // per_instance)


class Forward:
    """What one forward pass over a batch of n instances keeps.

    Parameters
    ----------
    X : ndarray, shape (n, C, H, W)
        The batch.

    Attributes
    ----------
    X : ndarray
        The batch, ``(n, C, H, W)``.
    Z : list of ndarray
        Z^{m+1} per conv layer (after ReLU and pool), ``(n, out_c, out_h, out_w)``.
    argmax : list of ndarray
        Pool indices per conv layer (in-plane offsets into S^m), shaped like Z.
    dense_in : list of ndarray
        z^m per dense layer, ``(n, in_features)``.
    out : ndarray
        z^{L+1}, ``(n, K)``.
    """

    def __init__(self, X):
        self.X = X
        self.n = X.shape[0]
        self.Z, self.argmax, self.dense_in = [], [], []
        self.out = None

    def conv_input(self, m):
        """The input of conv layer m: X or Z^m.

        Parameters
        ----------
        m : int
            Conv layer index, 0-based.
        """
        return self.X if m == 0 else self.Z[m - 1]

    @property
    def nbytes(self):
        arrays = self.Z + self.argmax + self.dense_in
        return sum(a.nbytes for a in arrays) + (self.out.nbytes if self.out is not None else 0)


def dense_affine(z, W, b):
    """z Wᵀ + 1 bᵀ for a batch of rows z."""
    s = np.empty((z.shape[0], W.shape[0]), dtype=W.dtype)
    s[...] = b
    gemm(z, W, s, trans_b=True, beta=1.0)
    return s


def conv_args(net, m):
    """(geometry, im2col index map, tile size, workspace) of conv layer m."""
    g = net.geometry[m]
    return g, net.im2col_index(m), tile_size(g, net.dtype), net.workspace


def _output_buffers(net, m, shape, reuse, alloc):
    """Where conv layer m's (Z, argmax) go: reusable buffers, ``alloc``, or fresh arrays."""
    if reuse:
        ws = net.workspace
        return ws.array(("Z", m), shape, net.dtype), ws.array(("am", m), shape, np.int32)
    if alloc is not None:
        return alloc(shape, net.dtype), alloc(shape, np.int32)
    return None, None


def forward(net, theta, X, keep=True, reuse=None, alloc=None):
    """Forward pass of a batch X (n, C, H, W); returns a :class:`Forward`.

    With ``keep=False`` only ``out`` is kept (prediction). ``reuse`` (default:
    ``not keep``) writes the feature maps into the net's reusable buffers: the
    result is then valid only until the next such pass, from any thread, so
    ``keep=True, reuse=True`` requires the caller to hold ``net.workspace.lock``
    until it has read the result (see :func:`holding`). Otherwise they come
    from ``alloc(shape, dtype)`` when given (default: fresh arrays).

    Parameters
    ----------
    net : CNN
        The network.
    theta : ndarray, shape (n_params,)
        Flat parameter vector θ in the model's dtype.
    X : ndarray, shape (n, C, H, W)
        The batch, in the net's dtype.
    keep : bool, default True
        Keep the feature maps (False: only ``out``).
    reuse : bool, optional
        Write the feature maps into the net's reusable buffers (default: ``not keep``).
    alloc : callable, optional
        ``alloc(shape, dtype)`` gives the arrays of a kept pass (default: fresh arrays).
    """
    reuse = not keep if reuse is None else reuse
    if keep and reuse and not net.workspace.held():
        raise RuntimeError("a forward pass kept in the network's reusable buffers needs "
                           "net.workspace.lock held until its last reader is done")
    cache = Forward(X)
    layout = net.layout
    Z = X
    z = None
    with net.workspace.lock, blas_single_threaded():
        for m, g in enumerate(net.geometry):
            W, b = layout.layer(theta, m)
            if isinstance(g, ConvGeometry):
                g, idx, tile, ws = conv_args(net, m)
                outs = _output_buffers(net, m, (X.shape[0], g.out_c, g.out_h, g.out_w), reuse, alloc)
                Z, am = _kernels.forward(g, Z, layout.augmented(theta, m), idx, tile, ws, *outs)
                if keep:
                    cache.Z.append(Z)
                    cache.argmax.append(am)
                continue
            if z is None:
                z = Z.reshape(Z.shape[0], -1)
            if keep:
                cache.dense_in.append(z)
            z = dense_affine(z, W, b)
            if g.relu:
                _kernels.relu_(z.reshape(-1))
    cache.out = z
    return cache


def holding(net):
    """The network's workspace lock: held around a forward pass kept in its reusable
    buffers and every pass that reads it, so that no other thread's pass overwrites
    them in between (the lock is reentrant).

    Parameters
    ----------
    net : CNN
        The network.
    """
    return net.workspace.lock


def backward(net, theta, cache, dout, grad=None, on_delta=None):
    """Jᵀ dout for the batch of ``cache``: ``grad += Σ_i J_iᵀ dout_i``.

    Parameters
    ----------
    net : CNN
        The network.
    theta : ndarray, shape (n_params,)
        Flat parameter vector θ in the model's dtype.
    cache : Forward
        The batch's forward pass.
    dout : ndarray (n, K)
    grad : ndarray or None
        Flat θ-shaped array accumulated into; None skips the weight
        gradients (only the layer deltas are propagated).
    on_delta : callable(m, delta) or None
        Called with each layer's ∂/∂S^m of ⟨dout, z^{L+1}⟩: for a dense layer
        ``(n, out)``; for a conv layer at pooled size ``(n, out_c, out_h, out_w)``
        (the entries at the pool argmax, ReLU mask applied). The Jacobian
        setting stores these.
    """
    with net.workspace.lock, blas_single_threaded():
        ds = dense_backward(net, theta, cache, dout, grad, on_delta)
        if net.n_conv and ds is not None:
            _conv_backward(net, theta, cache, ds.reshape(cache.Z[-1].shape), grad, on_delta)
    return grad


def dense_backward(net, theta, cache, dout, grad, on_delta):
    """Backward through the dense layers (arguments as :func:`backward`); returns ∂/∂(the
    flattened last feature map), unmasked, or None when there is no conv layer. The
    caller holds the workspace lock and single-threaded BLAS."""
    layout, n_conv = net.layout, net.n_conv
    ds = np.ascontiguousarray(dout, dtype=net.dtype)
    for m in range(len(net.geometry) - 1, n_conv - 1, -1):
        d = m - n_conv
        z_in = cache.dense_in[d]
        if on_delta is not None:
            on_delta(m, ds)
        if grad is not None:
            accumulate_dense_grad(layout, grad, m, ds, z_in)
        if m == 0:
            return None
        dz = np.empty_like(z_in)
        gemm(ds, layout.weight_matrix(theta, m), dz)
        if d > 0:
            _kernels.mask_positive_(dz.reshape(-1), z_in.reshape(-1))
        ds = dz
    return ds


def _conv_backward(net, theta, cache, dZ, grad, on_delta):
    layout = net.layout
    for m in range(net.n_conv - 1, -1, -1):
        g, idx, tile, ws = conv_args(net, m)
        Z = cache.Z[m]
        if on_delta is not None:
            _kernels.mask_positive_(dZ.reshape(-1), Z.reshape(-1))
            on_delta(m, dZ)
            Z = None   # already masked
        if m == 0 and grad is None:
            return     # nothing is wanted below the first layer's delta
        gWa = layout.augmented(grad, m) if grad is not None else None
        dX = ws.array(("dX", m), cache.conv_input(m).shape, net.dtype) if m > 0 else None
        dZ = _kernels.backward(g, cache.conv_input(m), dZ, Z, cache.argmax[m],
                            layout.augmented(theta, m), idx, tile, ws, gWa, input_delta=m > 0,
                            dX_out=dX)


def accumulate_dense_grad(layout, grad, m, ds, z_in):
    """Layer m's block of Jᵀ: W += dsᵀ z_in, b += dsᵀ 1."""
    gemm(ds, z_in, layout.weight_matrix(grad, m), trans_a=True, beta=1.0)
    layout.bias(grad, m)[...] += ds.sum(axis=0)


def rop(net, theta, cache, v):
    """J v for the batch of ``cache`` by forward-mode R{·} propagation; returns (n, K).

    Parameters
    ----------
    net : CNN
        The network.
    theta : ndarray, shape (n_params,)
        Flat parameter vector θ in the model's dtype.
    cache : Forward
        The batch's forward pass.
    v : ndarray, shape (n_params,)
        The direction.
    """
    with net.workspace.lock, blas_single_threaded():
        return _rop(net, theta, cache, v)


def _rop(net, theta, cache, v):
    layout = net.layout
    RZ = None
    rz = None
    for m, g in enumerate(net.geometry):
        W, _ = layout.layer(theta, m)
        V, vb = layout.layer(v, m)
        if isinstance(g, ConvGeometry):
            g, idx, tile, ws = conv_args(net, m)
            RZ = _kernels.rop(g, cache.conv_input(m), RZ, cache.Z[m], cache.argmax[m],
                           layout.augmented(theta, m), layout.augmented(v, m), idx, tile, ws,
                           ws.array(("RZ", m), cache.Z[m].shape, net.dtype))
            continue
        d = m - net.n_conv
        if rz is None and RZ is not None:
            rz = RZ.reshape(RZ.shape[0], -1)
        rs = dense_affine(cache.dense_in[d], V, vb)
        if rz is not None:
            gemm(rz, W, rs, trans_b=True, beta=1.0)
        if g.relu:
            _kernels.mask_positive_(rs.reshape(-1), cache.dense_in[d + 1].reshape(-1))
        rz = rs
    return rz
