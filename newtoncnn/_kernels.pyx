# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The C kernels in ``src_c/`` and their typed wrappers: shape checks, GIL release, threads.

One extension module holds every C file, so process-wide kernel state (the AVX-512
switch, the GEMM engine, the thread count) exists once. Its parts: this file (array-level
wrappers), ``_blas.pxi`` (row-major GEMM through scipy's BLAS and the native float32
kernel) and ``_conv.pxi`` (the conv layers' tiled passes).

Every feature map here is "CNHW": ``(channels, instances, height, width)``,
C-contiguous, so that one GEMM covers a whole batch. Each wrapper checks
every size it hands to C (no input can make a kernel leave its buffers),
allocates the output unless ``out`` is given, and runs the one-instance
kernels over the instances on the OpenMP threads. The training passes use
the same kernels on instance tiles (``_conv.pxi``); these wrappers are their
array-level form, for tests and for code outside the hot paths.
"""
import numpy as np
cimport numpy as cnp
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport int64_t

from newtoncnn._ckernels cimport *

cnp.import_array()

INDEX_DTYPE = np.int32
cdef int _n_threads = 1


def set_num_threads(int n):
    """Set the number of OpenMP threads the kernels use (at least 1)."""
    global _n_threads
    if n < 1:
        raise ValueError(f"n_threads must be >= 1, got {n}")
    _n_threads = n


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


def im2col_index(int kh, int kw, int stride, int padded_h, int padded_w):
    """The index map of P_phi: ``idx[r, j]`` is the padded-plane offset read by tap r
    (kernel row ``r // kw``, column ``r % kw``) for output pixel j."""
    _require(kh >= 1 and kw >= 1 and stride >= 1, "kernel sizes and stride must be >= 1")
    _require(kh <= padded_h and kw <= padded_w, "kernel larger than the padded input")
    cdef int out_h = (padded_h - kh) // stride + 1
    cdef int out_w = (padded_w - kw) // stride + 1
    _require(<int64_t>padded_h * padded_w < 2**31, "padded plane too large")
    idx = np.empty((kh * kw, out_h * out_w), dtype=INDEX_DTYPE)
    cdef ncnn_index[:, ::1] v = idx
    ncnn_im2col_index(&v[0, 0], kh, kw, stride, padded_w, out_h, out_w)
    return idx


def pad(const floating[:, :, :, ::1] x, int p, out=None):
    """Zero padding by p on every side: (C, n, H, W) -> (C, n, H + 2p, W + 2p)."""
    _require(p >= 0, "padding must be >= 0")
    cdef int C = x.shape[0], n = x.shape[1], H = x.shape[2], W = x.shape[3]
    xp_arr = _out(out, (C, n, H + 2 * p, W + 2 * p), np.asarray(x).dtype)
    cdef floating[:, :, :, ::1] xp = xp_arr
    cdef int i
    cdef int64_t pl = <int64_t>H * W, ppl = <int64_t>(H + 2 * p) * (W + 2 * p)
    if x.size == 0:
        xp_arr[...] = 0
        return xp_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_pad_f32(&x[0, 0, 0, 0] + i * pl, n * pl, &xp[0, 0, 0, 0] + i * ppl, n * ppl, C, H, W, p)
            else:
                ncnn_pad_f64(&x[0, 0, 0, 0] + i * pl, n * pl, &xp[0, 0, 0, 0] + i * ppl, n * ppl, C, H, W, p)
    return xp_arr


def crop(const floating[:, :, :, ::1] xp, int p, out=None):
    """The adjoint of :func:`pad`: (C, n, H + 2p, W + 2p) -> (C, n, H, W)."""
    cdef int C = xp.shape[0], n = xp.shape[1]
    cdef int H = xp.shape[2] - 2 * p, W = xp.shape[3] - 2 * p
    _require(p >= 0 and H >= 0 and W >= 0, "padding must be >= 0 and fit the input")
    x_arr = _out(out, (C, n, H, W), np.asarray(xp).dtype)
    cdef floating[:, :, :, ::1] x = x_arr
    cdef int i
    cdef int64_t pl = <int64_t>H * W, ppl = <int64_t>(H + 2 * p) * (W + 2 * p)
    if x.size == 0:
        return x_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_crop_f32(&xp[0, 0, 0, 0] + i * ppl, n * ppl, &x[0, 0, 0, 0] + i * pl, n * pl, C, H, W, p)
            else:
                ncnn_crop_f64(&xp[0, 0, 0, 0] + i * ppl, n * ppl, &x[0, 0, 0, 0] + i * pl, n * pl, C, H, W, p)
    return x_arr


cdef _check_index(const ncnn_index[:, ::1] idx, int plane_len):
    # The map is ours, but a wrong one would read out of bounds: check its range.
    a = np.asarray(idx)
    _require(a.size == 0 or (a.min() >= 0 and a.max() < plane_len),
             "index map does not fit the padded plane")


def im2col(const floating[:, :, :, ::1] xp, const ncnn_index[:, ::1] idx, out=None):
    """The gather phi = P_phi xp: (C, n, Hp, Wp) -> (C * taps, n * P) with
    ``phi[c * taps + r, i * P + j] = xp[c, i].flat[idx[r, j]]``."""
    cdef int C = xp.shape[0], n = xp.shape[1], plane = xp.shape[2] * xp.shape[3]
    cdef int taps = idx.shape[0], P = idx.shape[1]
    _check_index(idx, plane)
    phi_arr = _out(out, (C * taps, n * P), np.asarray(xp).dtype)
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


def im2col_same(const floating[:, :, :, ::1] x, int p):
    """Stride-1 im2col of the unpadded CNHW batch x for a (2p+1)² kernel with padding p,
    straight from x: equals ``im2col(pad(x, p), im2col_index(2p+1, 2p+1, 1, H+2p, W+2p))``."""
    _require(p >= 0, "padding must be >= 0")
    cdef int C = x.shape[0], n = x.shape[1], H = x.shape[2], W = x.shape[3], k = 2 * p + 1
    cdef int64_t P = <int64_t>H * W
    phi_arr = _out(None, (C * k * k, n * P), np.asarray(x).dtype)
    cdef floating[:, ::1] phi = phi_arr
    cdef int i
    if phi.size == 0:
        return phi_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_im2col_same_f32(&x[0, 0, 0, 0] + i * P, n * P, &phi[0, 0] + i * P, n * P, C, H, W, p)
            else:
                ncnn_im2col_same_f64(&x[0, 0, 0, 0] + i * P, n * P, &phi[0, 0] + i * P, n * P, C, H, W, p)
    return phi_arr


def col2im_same(const floating[:, ::1] phi, int C, int H, int W, int p):
    """The adjoint of :func:`im2col_same`: (C (2p+1)², n H W) -> (C, n, H, W); equals
    ``crop(col2im(phi, idx, C, H + 2p, W + 2p), p)`` (phi is not modified)."""
    _require(p >= 0 and H > 0 and W > 0, "padding must be >= 0 and the plane non-empty")
    cdef int k = 2 * p + 1
    cdef int64_t P = <int64_t>H * W
    _require(phi.shape[0] == C * k * k and phi.shape[1] % P == 0,
             "phi does not match the channels, kernel and plane")
    cdef int n = phi.shape[1] // P
    work = np.array(phi, copy=True)   # the kernel zeroes entries of its phi
    cdef floating[:, ::1] w = work
    x_arr = _out(None, (C, n, H, W), np.asarray(phi).dtype)
    cdef floating[:, :, :, ::1] x = x_arr
    cdef int i
    if x.size == 0:
        return x_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_col2im_same_f32(&w[0, 0] + i * P, n * P, &x[0, 0, 0, 0] + i * P, n * P, C, H, W, p)
            else:
                ncnn_col2im_same_f64(&w[0, 0] + i * P, n * P, &x[0, 0, 0, 0] + i * P, n * P, C, H, W, p)
    return x_arr


def col2im(const floating[:, ::1] phi, const ncnn_index[:, ::1] idx, int C, int padded_h, int padded_w, out=None):
    """The scatter-add P_phi^T phi: (C * taps, n * P) -> (C, n, Hp, Wp), the adjoint of im2col."""
    cdef int taps = idx.shape[0], P = idx.shape[1], plane = padded_h * padded_w
    _require(C >= 1 and P >= 1 and phi.shape[0] == C * taps and phi.shape[1] % P == 0,
             f"phi of shape {tuple(np.asarray(phi).shape)} does not fit {C} channels, {taps} taps, {P} pixels")
    cdef int n = phi.shape[1] // P
    _check_index(idx, plane)
    xp_arr = _out(out, (C, n, padded_h, padded_w), np.asarray(phi).dtype)
    cdef floating[:, :, :, ::1] xp = xp_arr
    cdef int i
    if xp.size == 0:
        return xp_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_col2im_f32(&phi[0, 0] + <int64_t>i * P, <int64_t>n * P, &xp[0, 0, 0, 0] + <int64_t>i * plane, <int64_t>n * plane, C, plane, taps, P, &idx[0, 0])
            else:
                ncnn_col2im_f64(&phi[0, 0] + <int64_t>i * P, <int64_t>n * P, &xp[0, 0, 0, 0] + <int64_t>i * plane, <int64_t>n * plane, C, plane, taps, P, &idx[0, 0])
    return xp_arr


def maxpool(const floating[:, :, :, ::1] s, int k, bint relu=False, out=None, argmax=None):
    """Max pooling, window = stride = k, whole windows only; first maximum wins.

    Returns ``(z, argmax)``: z of shape (C, n, H // k, W // k) and the in-plane
    offset of each window's maximum. With ``relu`` z is the pool of max(s, 0)."""
    cdef int C = s.shape[0], n = s.shape[1], H = s.shape[2], W = s.shape[3]
    _require(k >= 1 and k <= H and k <= W, f"pool size {k} does not fit a {H}x{W} map")
    shape = (C, n, H // k, W // k)
    z_arr = _out(out, shape, np.asarray(s).dtype)
    am_arr = _out(argmax, shape, INDEX_DTYPE)
    cdef floating[:, :, :, ::1] z = z_arr
    cdef ncnn_index[:, :, :, ::1] am = am_arr
    cdef int i
    cdef int64_t pl = <int64_t>H * W, opl = <int64_t>(H // k) * (W // k)
    if z.size == 0:
        return z_arr, am_arr
    with nogil:
        for i in prange(n, num_threads=_threads(n), schedule="static"):
            if floating is float:
                ncnn_maxpool_f32(&s[0, 0, 0, 0] + i * pl, n * pl, &z[0, 0, 0, 0] + i * opl, &am[0, 0, 0, 0] + i * opl, n * opl, C, H, W, k, relu)
            else:
                ncnn_maxpool_f64(&s[0, 0, 0, 0] + i * pl, n * pl, &z[0, 0, 0, 0] + i * opl, &am[0, 0, 0, 0] + i * opl, n * opl, C, H, W, k, relu)
    return z_arr, am_arr


cdef _check_argmax(const ncnn_index[:, :, :, ::1] am, int C, int n, int in_len):
    _require(am.shape[0] == C and am.shape[1] == n, "argmax does not match the feature map")
    a = np.asarray(am)
    _require(a.size == 0 or (a.min() >= 0 and a.max() < in_len), "argmax offsets out of range")


def pool_gather(const floating[:, :, :, ::1] s, const ncnn_index[:, :, :, ::1] argmax, out=None,
                const floating[:, :, :, ::1] mask=None):
    """z = P_pool s with fixed window indices: ``z[c, i].flat[o] = s[c, i].flat[argmax[c, i].flat[o]]``,
    times ``[mask > 0]`` when a mask (laid out like z) is given."""
    cdef int C = s.shape[0], n = s.shape[1], in_len = s.shape[2] * s.shape[3]
    cdef int out_len = argmax.shape[2] * argmax.shape[3]
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


def pool_scatter(const floating[:, :, :, ::1] dz, const ncnn_index[:, :, :, ::1] argmax, int H, int W,
                 const floating[:, :, :, ::1] z=None, out=None):
    """P_pool^T dz, masked by ``z > 0`` when z is given: (C, n, Ho, Wo) -> (C, n, H, W)."""
    cdef int C = dz.shape[0], n = dz.shape[1], in_len = H * W
    cdef int out_len = dz.shape[2] * dz.shape[3]
    _require(tuple(np.asarray(argmax).shape) == tuple(np.asarray(dz).shape), "argmax does not match dz")
    _check_argmax(argmax, C, n, in_len)
    cdef const floating *zp = NULL
    if z is not None:
        _require(tuple(np.asarray(z).shape) == tuple(np.asarray(dz).shape), "z does not match dz")
        if z.size:
            zp = &z[0, 0, 0, 0]
    ds_arr = _out(out, (C, n, H, W), np.asarray(dz).dtype)
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
    if S.shape[0] == 0 or S.shape[1] == 0:
        return
    with nogil:
        if floating is float:
            ncnn_fill_rows_f32(&S[0, 0], S.strides[0] // sizeof(float), &b[0], S.shape[0], S.shape[1])
        else:
            ncnn_fill_rows_f64(&S[0, 0], S.strides[0] // sizeof(double), &b[0], S.shape[0], S.shape[1])


include "_blas.pxi"
include "_conv.pxi"
