"""Naive reference implementations for the tests, written from the formulas of
docs/guide/objective.rst and docs/guide/gauss_newton.rst.

Everything here is plain NumPy with explicit Python loops, deliberately
independent of the package: no im2col index maps, no GEMMs, no CNHW layout,
no code shared with ``newtoncnn``. Images are one instance at a time in
(channels, height, width); batches are NCHW. Layer specifications are read
by duck typing (``filters``/``kernel_size``/``stride``/``padding``,
``pool_size``, ``units``) so the package's ``Conv``/``MaxPool``/``Dense``
objects can be passed straight in. Weights are PyTorch-layout ``(W, b)``
pairs: conv ``W`` is ``(out, in, kh, kw)``, dense ``W`` is ``(out, in)``.
"""
import math

import numpy as np

__all__ = [
    "zero_pad", "crop", "im2col_one", "im2col_index_one", "col2im_one",
    "maxpool_plane", "conv_layer", "relu", "flatten", "dense",
    "naive_forward", "naive_activations", "squared_loss", "softmax_loss",
    "naive_objective", "central_fd_grad", "worked_example",
]


# ---------------------------------------------------------------- building blocks
def zero_pad(x, p):
    """Zero padding by p on every side of the last two axes: (..., H, W) -> (..., H+2p, W+2p)."""
    x = np.asarray(x)
    H, W = x.shape[-2:]
    out = np.zeros(x.shape[:-2] + (H + 2 * p, W + 2 * p), dtype=x.dtype)
    for lead in np.ndindex(*x.shape[:-2]):
        for r in range(H):
            for c in range(W):
                out[lead + (r + p, c + p)] = x[lead + (r, c)]
    return out


def crop(xp, p):
    """Keep the interior: (..., H+2p, W+2p) -> (..., H, W) (the adjoint of zero_pad)."""
    xp = np.asarray(xp)
    H, W = xp.shape[-2] - 2 * p, xp.shape[-1] - 2 * p
    out = np.zeros(xp.shape[:-2] + (H, W), dtype=xp.dtype)
    for lead in np.ndindex(*xp.shape[:-2]):
        for r in range(H):
            for c in range(W):
                out[lead + (r, c)] = xp[lead + (r + p, c + p)]
    return out


def conv_output_size(n, k, s):
    return (n - k) // s + 1


def im2col_one(xp, kh, kw, stride):
    """φ of one (already padded) image xp (C, Hp, Wp): shape (C*kh*kw, oh*ow).

    Column j is the patch under output pixel j (row-major over the output),
    rows ordered (channel, kernel row, kernel column).
    """
    xp = np.asarray(xp)
    C, Hp, Wp = xp.shape
    oh, ow = conv_output_size(Hp, kh, stride), conv_output_size(Wp, kw, stride)
    phi = np.zeros((C * kh * kw, oh * ow), dtype=xp.dtype)
    for c in range(C):
        for p in range(kh):
            for q in range(kw):
                row = (c * kh + p) * kw + q
                for y in range(oh):
                    for x in range(ow):
                        phi[row, y * ow + x] = xp[c, y * stride + p, x * stride + q]
    return phi


def im2col_index_one(kh, kw, stride, Hp, Wp):
    """The in-plane offset read by tap (p, q) for output pixel j: (kh*kw, oh*ow)."""
    plane = np.arange(Hp * Wp, dtype=np.int64).reshape(1, Hp, Wp)
    return im2col_one(plane, kh, kw, stride)


def col2im_one(cols, C, Hp, Wp, kh, kw, stride):
    """The explicit transpose of im2col_one: scatter-add cols back onto a zero (C, Hp, Wp)."""
    cols = np.asarray(cols)
    oh, ow = conv_output_size(Hp, kh, stride), conv_output_size(Wp, kw, stride)
    assert cols.shape == (C * kh * kw, oh * ow)
    xp = np.zeros((C, Hp, Wp), dtype=cols.dtype)
    for c in range(C):
        for p in range(kh):
            for q in range(kw):
                row = (c * kh + p) * kw + q
                for y in range(oh):
                    for x in range(ow):
                        xp[c, y * stride + p, x * stride + q] += cols[row, y * ow + x]
    return xp


def maxpool_plane(s, k):
    """Max pool of one (H, W) plane with window = stride = k.

    Partial windows at the bottom/right are dropped (floor); ties go to the
    first maximum in row-major window order. Returns (z, argmax) where
    argmax holds the in-plane flat offset (row * W + col) of each maximum.
    """
    s = np.asarray(s)
    H, W = s.shape
    Ho, Wo = H // k, W // k
    z = np.zeros((Ho, Wo), dtype=s.dtype)
    am = np.zeros((Ho, Wo), dtype=np.int64)
    for y in range(Ho):
        for x in range(Wo):
            best_val, best_off = None, None
            for p in range(k):
                for q in range(k):
                    r, c = y * k + p, x * k + q
                    if best_val is None or s[r, c] > best_val:
                        best_val, best_off = s[r, c], r * W + c
            z[y, x] = best_val
            am[y, x] = best_off
    return z, am


def conv_layer(Z, W, b, stride=1, padding=0):
    """One image Z (C_in, H, W) -> S (C_out, oh, ow) by explicit cross-correlation loops."""
    Z = np.asarray(Z)
    C_out, C_in, kh, kw = W.shape
    assert Z.shape[0] == C_in
    Zp = zero_pad(Z, padding)
    Hp, Wp = Zp.shape[1:]
    oh, ow = conv_output_size(Hp, kh, stride), conv_output_size(Wp, kw, stride)
    S = np.zeros((C_out, oh, ow), dtype=np.result_type(Z, W))
    for o in range(C_out):
        for y in range(oh):
            for x in range(ow):
                acc = b[o]
                for c in range(C_in):
                    for p in range(kh):
                        for q in range(kw):
                            acc += W[o, c, p, q] * Zp[c, y * stride + p, x * stride + q]
                S[o, y, x] = acc
    return S


def relu(x):
    x = np.asarray(x)
    out = x.copy()
    for idx in np.ndindex(*x.shape):
        out[idx] = x[idx] if x[idx] > 0 else 0
    return out


def flatten(Z):
    """(C, H, W) -> vector in (channel, row, column) order."""
    C, H, W = Z.shape
    v = np.zeros(C * H * W, dtype=Z.dtype)
    j = 0
    for c in range(C):
        for r in range(H):
            for col in range(W):
                v[j] = Z[c, r, col]
                j += 1
    return v


def dense(z, W, b):
    out_f, in_f = W.shape
    assert z.shape == (in_f,)
    s = np.zeros(out_f, dtype=np.result_type(z, W))
    for o in range(out_f):
        acc = b[o]
        for j in range(in_f):
            acc += W[o, j] * z[j]
        s[o] = acc
    return s


# ---------------------------------------------------------------- network
def _kind(layer):
    if hasattr(layer, "filters"):
        return "conv"
    if hasattr(layer, "pool_size"):
        return "pool"
    if hasattr(layer, "units"):
        return "dense"
    raise TypeError(f"unknown layer {layer!r}")


def _forward_one(layers, weights, Z, trace=None):
    """z^{L+1} of one image Z (C, H, W); ``trace`` collects (kind, activation) per layer."""
    kinds = [_kind(layer) for layer in layers]
    n_dense = kinds.count("dense")
    w_iter = iter(weights)
    z = None
    dense_seen = 0
    for pos, (layer, kind) in enumerate(zip(layers, kinds)):
        if kind == "conv":
            W, b = next(w_iter)
            Z = relu(conv_layer(Z, W, b, layer.stride, layer.padding))
            if trace is not None:
                trace.append(("conv", Z))
        elif kind == "pool":
            # ReLU was applied already: pool(relu(S)) = relu(pool(S)), ties aside.
            Z = np.stack([maxpool_plane(Z[c], layer.pool_size)[0] for c in range(Z.shape[0])])
            if trace is not None:
                trace.append(("pool", Z))
        else:
            W, b = next(w_iter)
            if z is None:
                z = flatten(Z)
            z = dense(z, W, b)
            dense_seen += 1
            if dense_seen < n_dense:
                z = relu(z)
            if trace is not None:
                trace.append(("dense", z))
    return z


def naive_forward(layers, weights, X):
    """Outputs z^{L+1} (n, K) of a batch X (n, C, H, W), or (n, H, W) for one channel.

    ``layers`` is the user's layer list (Conv / MaxPool / Dense), ``weights``
    the list of PyTorch-layout ``(W, b)`` pairs (``net.get_weights(theta)``).
    """
    X = np.asarray(X)
    if X.ndim == 3:
        X = X[:, None]
    weights = [(np.asarray(W), np.asarray(b)) for W, b in weights]
    return np.stack([_forward_one(layers, weights, X[i]) for i in range(X.shape[0])])


def naive_activations(layers, weights, image):
    """List of (kind, activation) after every layer (ReLU applied on all but the
    output layer) for one image (C, H, W); kind is "conv", "pool" or "dense"."""
    trace = []
    _forward_one(layers, [(np.asarray(W), np.asarray(b)) for W, b in weights],
                 np.asarray(image), trace)
    return trace


# ---------------------------------------------------------------- objective
def squared_loss(z, y):
    """ξ = ‖z − onehot(y)‖² (no ½)."""
    total = 0.0
    for k in range(len(z)):
        target = 1.0 if k == y else 0.0
        total += (float(z[k]) - target) ** 2
    return total


def softmax_loss(z, y):
    """ξ = −log softmax(z)_y = log Σ_k exp(z_k) − z_y, evaluated stably."""
    zmax = max(float(v) for v in z)
    s = 0.0
    for v in z:
        s += math.exp(float(v) - zmax)
    return zmax + math.log(s) - float(z[y])


def naive_objective(layers, weights, X, y, C, loss="squared", n_total=None):
    """f = θᵀθ / (2 C l) + (1/|B|) Σ_{i∈B} ξ_i over the instances given in X.

    ``n_total`` is the l of the regularizer (default: the number of
    instances in X); the loss average always runs over the given X.
    """
    X = np.asarray(X)
    n = X.shape[0]
    l = n if n_total is None else n_total
    xi = squared_loss if loss == "squared" else softmax_loss
    Z = naive_forward(layers, weights, X)
    data = 0.0
    for i in range(n):
        data += xi(Z[i], int(y[i]))
    sq = 0.0
    for W, b in weights:
        for v in np.asarray(W, dtype=np.float64).ravel():
            sq += v * v
        for v in np.asarray(b, dtype=np.float64).ravel():
            sq += v * v
    return sq / (2.0 * C * l) + data / n


def central_fd_grad(f, theta, h=1e-6):
    """Central differences (f(θ + h e_j) − f(θ − h e_j)) / 2h for every coordinate."""
    theta = np.array(theta, dtype=np.float64)
    g = np.zeros_like(theta)
    for j in range(theta.size):
        tp = theta.copy()
        tm = theta.copy()
        tp[j] += h
        tm[j] -= h
        g[j] = (f(tp) - f(tm)) / (2.0 * h)
    return g


# ---------------------------------------------------------------- simpleNN worked check
WORKED_F = 10.2895899915402
WORKED_GRAD_NORM = 45.4125065954811


def worked_example():
    """The hand-specified network and data of the simpleNN worked check.

    Input (1, 5, 7); Conv(3, 3, stride=2, padding=2), Conv(2, 3, padding=1),
    MaxPool(2), Dense(3); 12 instances X[n, 0, r, c] = sin(0.5n − 0.4c + 0.7r),
    class n mod 3; conv layer m (1-based) W[o, ch, p, q] =
    0.6 cos(1 + 0.9o − 0.6ch + 0.5p + 0.35q + m) + 0.15, b[o] = 0.01(o+1)(−1)^o;
    dense W[o, (ch, r, c)] = 0.5 sin(0.3o + 0.17(ch + 2r + 3c) + 1.5) + 0.1 with
    column ch*4 + r*2 + c, b[o] = 0.02o; C = 100, squared loss.

    Returns a dict with ``input_shape``, ``layer_args`` (constructor arguments:
    ``[("conv", 3, 3, 2, 2), ("conv", 2, 3, 1, 1), ("pool", 2), ("dense", 3)]``
    as (kind, *args) for Conv(filters, kernel, stride, padding), MaxPool,
    Dense), ``X``, ``y``, ``weights``, ``C``, ``f`` and ``grad_norm``.
    """
    n_inst = 12
    X = np.zeros((n_inst, 1, 5, 7))
    for n in range(n_inst):
        for r in range(5):
            for c in range(7):
                X[n, 0, r, c] = math.sin(0.5 * n - 0.4 * c + 0.7 * r)
    y = np.array([n % 3 for n in range(n_inst)])

    def conv_weights(m, out_c, in_c, k):
        W = np.zeros((out_c, in_c, k, k))
        for o in range(out_c):
            for ch in range(in_c):
                for p in range(k):
                    for q in range(k):
                        W[o, ch, p, q] = 0.6 * math.cos(
                            1 + 0.9 * o - 0.6 * ch + 0.5 * p + 0.35 * q + m) + 0.15
        b = np.array([0.01 * (o + 1) * (-1) ** o for o in range(out_c)])
        return W, b

    W1, b1 = conv_weights(1, 3, 1, 3)
    W2, b2 = conv_weights(2, 2, 3, 3)
    W3 = np.zeros((3, 8))
    for o in range(3):
        for ch in range(2):
            for r in range(2):
                for c in range(2):
                    W3[o, ch * 4 + r * 2 + c] = 0.5 * math.sin(
                        0.3 * o + 0.17 * (ch + 2 * r + 3 * c) + 1.5) + 0.1
    b3 = np.array([0.02 * o for o in range(3)])
    return {
        "input_shape": (1, 5, 7),
        "layer_args": [("conv", 3, 3, 2, 2), ("conv", 2, 3, 1, 1), ("pool", 2), ("dense", 3)],
        "X": X,
        "y": y,
        "weights": [(W1, b1), (W2, b2), (W3, b3)],
        "C": 100.0,
        "loss": "squared",
        "f": WORKED_F,
        "grad_norm": WORKED_GRAD_NORM,
    }
