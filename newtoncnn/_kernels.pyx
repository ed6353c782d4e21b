# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The C kernels in ``src_c/`` and their typed wrappers: shape checks, GIL release, threads.

One extension module holds every C file, so process-wide kernel state (the SIMD
switch, the GEMM engine, the thread count) exists once. Its parts: this file (array-level
wrappers), ``_blas.pxi`` (row-major GEMM through scipy's BLAS and the native float32
kernel) and ``_conv.pxi`` (the conv layers' tiled passes).

Every feature map here is "CNHW": ``(channels, instances, height, width)``,
C-contiguous, so that one GEMM covers a whole batch. Each wrapper checks
every size it hands to C (no input can make a kernel leave its buffers): sizes
are computed in Python's integers (they cannot overflow), any that does not fit
the C ``int`` the kernels take is a ValueError naming it, and so is a buffer
too small for what the kernel will touch; then it
allocates the output unless ``out`` is given, and runs the one-instance
kernels over the instances on the OpenMP threads. The training passes use
the same kernels on instance tiles (``_conv.pxi``); these wrappers are their
array-level form, for tests and for code outside the hot paths.
"""
import operator

import numpy as np
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.limits cimport INT_MAX
from libc.stdint cimport int64_t, uint32_t

from newtoncnn._ckernels cimport *

cnp.import_array()

INDEX_DTYPE = np.int32
cdef int _n_threads = 1


def _cint(str name, value, low=0):
    """``value`` (any integer) as a C int in [low, INT_MAX], else a ValueError naming it."""
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if value > INT_MAX:
        raise ValueError(f"{name} must be <= {INT_MAX} (the kernels take it as a C int), got {value}")
    return value


def _cprod(str name, *factors):
    """The product of ``factors`` (exact: Python's integers) if it fits a C int, else a
    ValueError naming it."""
    value = 1
    for f in factors:
        value *= f
    return _cint(name, value)


cdef bint _index_ok(const ncnn_index *a, int64_t length, int limit) noexcept nogil:
    """Whether every a[j] is in [0, limit): one pass, no branch in the loop."""
    cdef uint32_t bad = 0
    cdef int64_t j
    for j in range(length):
        bad |= <uint32_t>(<uint32_t>a[j] >= <uint32_t>limit)
    return bad == 0


def set_num_threads(n):
    """Set the number of OpenMP threads the kernels use (at least 1)."""
    global _n_threads
    _n_threads = _cint("n_threads", n, low=1)


def get_num_threads():
    """The number of OpenMP threads the kernels use."""
    return _n_threads


cdef inline int _threads(int n) noexcept nogil:
    return max(1, n if n < _n_threads else _n_threads)


cdef _require(bint ok, str what):
    if not ok:
        raise ValueError(what)


def _out(out, shape, dtype):
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous {np.dtype(dtype)} array of shape "
                         f"{tuple(shape)}, got {out.dtype} {out.shape}")
    return out


def _pooled_sizes(padded_h, padded_w, kh, kw, stride, pool):
    """(out_h, out_w) after a pool of ``pool`` of the conv output, checked to hold one
    window. The conv passes compute only the first ``out_h * pool`` rows and ``out_w * pool``
    columns of that output: the rest reach no pool window."""
    conv_h, conv_w = (padded_h - kh) // stride + 1, (padded_w - kw) // stride + 1
    _require(pool <= conv_h and pool <= conv_w, f"pool {pool} larger than the conv output {conv_h}x{conv_w}")
    return conv_h // pool, conv_w // pool


def im2col_index(kh, kw, stride, padded_h, padded_w, pool=1):
    """The index map of P_phi: ``idx[r, j]`` is the padded-plane offset read by tap r
    (kernel row ``r // kw``, column ``r % kw``) for output pixel j. With ``pool > 1``
    only the output pixels some pool window reads are mapped: the first
    ``(out_h // pool) * pool`` rows and as many columns (what the conv passes compute)."""
    kh, kw = _cint("kh", kh, 1), _cint("kw", kw, 1)
    stride = _cint("stride", stride, 1)
    padded_h, padded_w = _cint("padded_h", padded_h, 1), _cint("padded_w", padded_w, 1)
    pool = _cint("pool", pool, 1)
    _require(kh <= padded_h and kw <= padded_w, "kernel larger than the padded input")
    _cprod("the padded plane padded_h * padded_w", padded_h, padded_w)
    out_h, out_w = _pooled_sizes(padded_h, padded_w, kh, kw, stride, pool)
    out_h, out_w = out_h * pool, out_w * pool
    idx = np.empty((_cprod("taps kh * kw", kh, kw), out_h * out_w), dtype=INDEX_DTYPE)
    cdef ncnn_index[:, ::1] v = idx
    ncnn_im2col_index(&v[0, 0], kh, kw, stride, padded_w, out_h, out_w)
    return idx


def _map4(x, str name):
    """The four sizes of a 4-d map, each checked to fit a C int, and its plane size
    (which the kernels index with ints too)."""
    C, n, H, W = (_cint(f"{name}.shape[{i}]", x.shape[i]) for i in range(4))
    return C, n, H, W, _cprod(f"the plane of {name}", H, W)


def pad(const floating[:, :, :, ::1] x, p, out=None):
    """Zero padding by p on every side: (C, n, H, W) -> (C, n, H + 2p, W + 2p)."""
    C_, n_, H_, W_, _ = _map4(x, "x")
    p_ = _cint("padding p", p)
    _cprod("the padded plane", _cint("padded height", H_ + 2 * p_), _cint("padded width", W_ + 2 * p_))
    cdef int C = C_, n = n_, H = H_, W = W_, pp = p_
    xp_arr = _out(out, (C, n, H + 2 * pp, W + 2 * pp), np.asarray(x).dtype)
    cdef floating[:, :, :, ::1] xp = xp_arr
    cdef int i
    cdef int64_t pl = <int64_t>H * W, ppl = <int64_t>(H + 2 * pp) * (W + 2 * pp)
    if x.size == 0:
        xp_arr[...] = 0
        return xp_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_pad_f32(&x[0, 0, 0, 0] + i * pl, n * pl, &xp[0, 0, 0, 0] + i * ppl, n * ppl, C, H, W, pp)
            else:
                ncnn_pad_f64(&x[0, 0, 0, 0] + i * pl, n * pl, &xp[0, 0, 0, 0] + i * ppl, n * ppl, C, H, W, pp)
    return xp_arr


def crop(const floating[:, :, :, ::1] xp, p, out=None):
    """The adjoint of :func:`pad`: (C, n, H + 2p, W + 2p) -> (C, n, H, W)."""
    C_, n_, Hp_, Wp_, _ = _map4(xp, "xp")
    p_ = _cint("padding p", p)
    _require(Hp_ >= 2 * p_ and Wp_ >= 2 * p_, "padding must be >= 0 and fit the input")
    cdef int C = C_, n = n_, H = Hp_ - 2 * p_, W = Wp_ - 2 * p_, pp = p_
    x_arr = _out(out, (C, n, H, W), np.asarray(xp).dtype)
    cdef floating[:, :, :, ::1] x = x_arr
    cdef int i
    cdef int64_t pl = <int64_t>H * W, ppl = <int64_t>(H + 2 * pp) * (W + 2 * pp)
    if x.size == 0:
        return x_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_crop_f32(&xp[0, 0, 0, 0] + i * ppl, n * ppl, &x[0, 0, 0, 0] + i * pl, n * pl, C, H, W, pp)
            else:
                ncnn_crop_f64(&xp[0, 0, 0, 0] + i * ppl, n * ppl, &x[0, 0, 0, 0] + i * pl, n * pl, C, H, W, pp)
    return x_arr


cdef _check_index(const ncnn_index[:, ::1] idx, int plane_len):
    # The map is ours, but a wrong one would read out of bounds: check its range.
    _require(idx.shape[0] == 0 or idx.shape[1] == 0
             or _index_ok(&idx[0, 0], <int64_t>idx.shape[0] * idx.shape[1], plane_len),
             "index map does not fit the padded plane")


def im2col(const floating[:, :, :, ::1] xp, const ncnn_index[:, ::1] idx, out=None):
    """The gather phi = P_phi xp: (C, n, Hp, Wp) -> (C * taps, n * P) with
    ``phi[c * taps + r, i * P + j] = xp[c, i].flat[idx[r, j]]``."""
    C_, n_, _, _, plane_ = _map4(xp, "xp")
    taps_, P_ = _cint("idx.shape[0]", idx.shape[0]), _cint("idx.shape[1]", idx.shape[1])
    cdef int C = C_, n = n_, plane = plane_, taps = taps_, P = P_
    _check_index(idx, plane)
    phi_arr = _out(out, (_cprod("phi rows C * taps", C, taps), _cprod("phi columns n * P", n, P)),
                   np.asarray(xp).dtype)
    cdef floating[:, ::1] phi = phi_arr
    cdef int i
    if phi.size == 0:
        return phi_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_im2col_f32(&xp[0, 0, 0, 0] + <int64_t>i * plane, <int64_t>n * plane, &phi[0, 0] + <int64_t>i * P, <int64_t>n * P, C, taps, P, &idx[0, 0])
            else:
                ncnn_im2col_f64(&xp[0, 0, 0, 0] + <int64_t>i * plane, <int64_t>n * plane, &phi[0, 0] + <int64_t>i * P, <int64_t>n * P, C, taps, P, &idx[0, 0])
    return phi_arr


def im2col_same(const floating[:, :, :, ::1] x, p):
    """Stride-1 im2col of the unpadded CNHW batch x for a (2p+1)² kernel with padding p,
    straight from x: equals ``im2col(pad(x, p), im2col_index(2p+1, 2p+1, 1, H+2p, W+2p))``."""
    C_, n_, H_, W_, P_ = _map4(x, "x")
    p_ = _cint("padding p", p)
    k_ = _cint("kernel side 2p + 1", 2 * p_ + 1)
    rows = _cprod("phi rows C * (2p + 1)**2", C_, k_, k_)
    cols = _cprod("phi columns n * H * W", n_, P_)
    cdef int C = C_, n = n_, H = H_, W = W_, pp = p_
    cdef int64_t P = P_
    phi_arr = _out(None, (rows, cols), np.asarray(x).dtype)
    cdef floating[:, ::1] phi = phi_arr
    cdef int i
    if phi.size == 0:
        return phi_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_im2col_same_f32(&x[0, 0, 0, 0] + i * P, n * P, &phi[0, 0] + i * P, n * P, C, H, W, pp)
            else:
                ncnn_im2col_same_f64(&x[0, 0, 0, 0] + i * P, n * P, &phi[0, 0] + i * P, n * P, C, H, W, pp)
    return phi_arr


def col2im_same(const floating[:, ::1] phi, C, H, W, p):
    """The adjoint of :func:`im2col_same`: (C (2p+1)², n H W) -> (C, n, H, W); equals
    ``crop(col2im(phi, idx, C, H + 2p, W + 2p), p)`` (phi is not modified)."""
    C_, H_, W_, p_ = _cint("C", C), _cint("H", H, 1), _cint("W", W, 1), _cint("padding p", p)
    k_ = _cint("kernel side 2p + 1", 2 * p_ + 1)
    P_ = _cprod("the plane H * W", H_, W_)
    _require(phi.shape[0] == C_ * k_ * k_ and phi.shape[1] % P_ == 0,
             "phi does not match the channels, kernel and plane")
    _cprod("phi rows C * (2p + 1)**2", C_, k_, k_)
    cdef int n = _cint("phi.shape[1]", phi.shape[1]) // P_
    cdef int k = k_, pp = p_
    cdef int64_t P = P_
    work = np.array(phi, copy=True)   # the kernel zeroes entries of its phi
    cdef floating[:, ::1] w = work
    x_arr = _out(None, (C_, n, H_, W_), np.asarray(phi).dtype)
    cdef floating[:, :, :, ::1] x = x_arr
    cdef int i, Cc = C_, Hh = H_, Ww = W_
    if x.size == 0:
        return x_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_col2im_same_f32(&w[0, 0] + i * P, n * P, &x[0, 0, 0, 0] + i * P, n * P, Cc, Hh, Ww, pp)
            else:
                ncnn_col2im_same_f64(&w[0, 0] + i * P, n * P, &x[0, 0, 0, 0] + i * P, n * P, Cc, Hh, Ww, pp)
    return x_arr


def col2im(const floating[:, ::1] phi, const ncnn_index[:, ::1] idx, C, padded_h, padded_w, out=None):
    """The scatter-add P_phi^T phi: (C * taps, n * P) -> (C, n, Hp, Wp), the adjoint of im2col."""
    taps_, P_ = _cint("idx.shape[0]", idx.shape[0]), _cint("idx.shape[1]", idx.shape[1])
    C_ = _cint("C", C)
    Hp_, Wp_ = _cint("padded_h", padded_h), _cint("padded_w", padded_w)
    _require(C_ >= 1 and P_ >= 1 and phi.shape[0] == C_ * taps_ and phi.shape[1] % P_ == 0,
             f"phi of shape {tuple(np.asarray(phi).shape)} does not fit {C_} channels, {taps_} taps, {P_} pixels")
    cdef int taps = taps_, P = P_, plane = _cprod("the padded plane padded_h * padded_w", Hp_, Wp_)
    cdef int n = _cint("phi.shape[1]", phi.shape[1]) // P
    cdef int C_c = C_
    _check_index(idx, plane)
    xp_arr = _out(out, (C_, n, Hp_, Wp_), np.asarray(phi).dtype)
    cdef floating[:, :, :, ::1] xp = xp_arr
    cdef int i
    if xp.size == 0:
        return xp_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_col2im_f32(&phi[0, 0] + <int64_t>i * P, <int64_t>n * P, &xp[0, 0, 0, 0] + <int64_t>i * plane, <int64_t>n * plane, C_c, plane, taps, P, &idx[0, 0])
            else:
                ncnn_col2im_f64(&phi[0, 0] + <int64_t>i * P, <int64_t>n * P, &xp[0, 0, 0, 0] + <int64_t>i * plane, <int64_t>n * plane, C_c, plane, taps, P, &idx[0, 0])
    return xp_arr


def maxpool(const floating[:, :, :, ::1] s, k, bint relu=False, out=None, argmax=None):
    """Max pooling, window = stride = k, whole windows only; first maximum wins.

    Returns ``(z, argmax)``: z of shape (C, n, H // k, W // k) and the in-plane
    offset of each window's maximum. With ``relu`` z is the pool of max(s, 0)."""
    C_, n_, H_, W_, _ = _map4(s, "s")
    cdef int C = C_, n = n_, H = H_, W = W_, kk = _cint("pool size k", k, 1)
    _require(kk <= H and kk <= W, f"pool size {kk} does not fit a {H}x{W} map")
    shape = (C, n, H // kk, W // kk)
    z_arr = _out(out, shape, np.asarray(s).dtype)
    am_arr = _out(argmax, shape, INDEX_DTYPE)
    cdef floating[:, :, :, ::1] z = z_arr
    cdef ncnn_index[:, :, :, ::1] am = am_arr
    cdef int i
    cdef int64_t pl = <int64_t>H * W, opl = <int64_t>(H // kk) * (W // kk)
    if z.size == 0:
        return z_arr, am_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_maxpool_f32(&s[0, 0, 0, 0] + i * pl, n * pl, &z[0, 0, 0, 0] + i * opl, &am[0, 0, 0, 0] + i * opl, n * opl, C, H, W, kk, relu)
            else:
                ncnn_maxpool_f64(&s[0, 0, 0, 0] + i * pl, n * pl, &z[0, 0, 0, 0] + i * opl, &am[0, 0, 0, 0] + i * opl, n * opl, C, H, W, kk, relu)
    return z_arr, am_arr


cdef _check_argmax(const ncnn_index[:, :, :, ::1] am, int C, int n, int in_len):
    _require(am.shape[0] == C and am.shape[1] == n, "argmax does not match the feature map")
    cdef int64_t size = <int64_t>am.shape[0] * am.shape[1] * am.shape[2] * am.shape[3]
    _require(size == 0 or _index_ok(&am[0, 0, 0, 0], size, in_len), "argmax offsets out of range")


def pool_gather(const floating[:, :, :, ::1] s, const ncnn_index[:, :, :, ::1] argmax, out=None,
                const floating[:, :, :, ::1] mask=None):
    """z = P_pool s with fixed window indices: ``z[c, i].flat[o] = s[c, i].flat[argmax[c, i].flat[o]]``,
    times ``[mask > 0]`` when a mask (laid out like z) is given."""
    C_, n_, _, _, in_len_ = _map4(s, "s")
    cdef int C = C_, n = n_, in_len = in_len_, out_len = _map4(argmax, "argmax")[4]
    _check_argmax(argmax, C, n, in_len)
    z_arr = _out(out, (C, n, argmax.shape[2], argmax.shape[3]), np.asarray(s).dtype)
    cdef floating[:, :, :, ::1] z = z_arr
    cdef const floating *mp = NULL
    if mask is not None:
        _require(tuple(np.asarray(mask).shape) == z_arr.shape, "mask does not match the output")
        if mask.size:
            mp = &mask[0, 0, 0, 0]
    cdef int i
    if z.size == 0:
        return z_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_pool_gather_f32(&s[0, 0, 0, 0] + <int64_t>i * in_len, <int64_t>n * in_len, &argmax[0, 0, 0, 0] + <int64_t>i * out_len, (mp + <int64_t>i * out_len) if mp != NULL else NULL, &z[0, 0, 0, 0] + <int64_t>i * out_len, <int64_t>n * out_len, C, out_len)
            else:
                ncnn_pool_gather_f64(&s[0, 0, 0, 0] + <int64_t>i * in_len, <int64_t>n * in_len, &argmax[0, 0, 0, 0] + <int64_t>i * out_len, (mp + <int64_t>i * out_len) if mp != NULL else NULL, &z[0, 0, 0, 0] + <int64_t>i * out_len, <int64_t>n * out_len, C, out_len)
    return z_arr


def pool_scatter(const floating[:, :, :, ::1] dz, const ncnn_index[:, :, :, ::1] argmax, H, W,
                 const floating[:, :, :, ::1] z=None, out=None):
    """P_pool^T dz, masked by ``z > 0`` when z is given: (C, n, Ho, Wo) -> (C, n, H, W)."""
    C_, n_, _, _, out_len_ = _map4(dz, "dz")
    cdef int Hh = _cint("H", H), Ww = _cint("W", W)
    cdef int C = C_, n = n_, in_len = _cprod("the plane H * W", Hh, Ww), out_len = out_len_
    _require(tuple(np.asarray(argmax).shape) == tuple(np.asarray(dz).shape), "argmax does not match dz")
    _check_argmax(argmax, C, n, in_len)
    cdef const floating *zp = NULL
    if z is not None:
        _require(tuple(np.asarray(z).shape) == tuple(np.asarray(dz).shape), "z does not match dz")
        if z.size:
            zp = &z[0, 0, 0, 0]
    ds_arr = _out(out, (C, n, Hh, Ww), np.asarray(dz).dtype)
    cdef floating[:, :, :, ::1] ds = ds_arr
    cdef int i
    if ds.size == 0:
        return ds_arr
    if dz.size == 0:
        ds_arr[...] = 0
        return ds_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_pool_scatter_f32(&dz[0, 0, 0, 0] + <int64_t>i * out_len, (zp + <int64_t>i * out_len) if zp != NULL else NULL, &argmax[0, 0, 0, 0] + <int64_t>i * out_len, <int64_t>n * out_len, &ds[0, 0, 0, 0] + <int64_t>i * in_len, <int64_t>n * in_len, C, in_len, out_len)
            else:
                ncnn_pool_scatter_f64(&dz[0, 0, 0, 0] + <int64_t>i * out_len, (zp + <int64_t>i * out_len) if zp != NULL else NULL, &argmax[0, 0, 0, 0] + <int64_t>i * out_len, <int64_t>n * out_len, &ds[0, 0, 0, 0] + <int64_t>i * in_len, <int64_t>n * in_len, C, in_len, out_len)
    return ds_arr


def relu_(floating[::1] x):
    """x = max(x, 0) in place (x flat)."""
    if x.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            ncnn_relu_f32(&x[0], x.shape[0])
        else:
            ncnn_relu_f64(&x[0], x.shape[0])


def mask_positive_(floating[::1] d, const floating[::1] z):
    """d = d * [z > 0] in place (both flat, same length)."""
    _require(d.shape[0] == z.shape[0], "d and z differ in length")
    if d.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            ncnn_mask_positive_f32(&d[0], &z[0], d.shape[0])
        else:
            ncnn_mask_positive_f64(&d[0], &z[0], d.shape[0])


def fill_rows_(floating[:, ::1] S, const floating[::1] b):
    """S[r, :] = b[r] in place."""
    _require(S.shape[0] == b.shape[0], "b does not have one value per row of S")
    _cint("S.shape[0]", S.shape[0])
    if S.shape[0] == 0 or S.shape[1] == 0:
        return
    with nogil:
        if floating is float:
            ncnn_fill_rows_f32(&S[0, 0], S.strides[0] // sizeof(float), &b[0], S.shape[0], S.shape[1])
        else:
            ncnn_fill_rows_f64(&S[0, 0], S.strides[0] // sizeof(double), &b[0], S.shape[0], S.shape[1])


include "_blas.pxi"
include "_conv.pxi"
