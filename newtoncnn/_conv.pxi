# Conv layers over instance tiles: the hot loops of every pass (part of _kernels.pyx).
#
# Feature maps are NCHW arrays ``(n, channels, h, w)``. A layer is processed in
# tiles of ``tile`` instances, tiles spread over the OpenMP threads, each thread
# with its own buffers, so that a tile's φ(pad(Z)) (built by the C gather, never
# stored), its GEMM with W and the pooling stay in cache. BLAS runs inside the
# parallel loop and must then be single-threaded (``newtoncnn.threads`` sees to
# that). Each thread accumulates its own weight gradient; they are summed in a
# fixed order, so results do not depend on scheduling.
#
# float32 GEMMs use newtoncnn's own kernel (``src_c/sgemm.c``) when the CPU has
# AVX-512F, BLAS otherwise (``set_gemm_engine`` chooses, for tests and benchmarks).
#
# The paper's symbols: φ = ``phi``, S^m = ``S``, Z^{m+1} = ``Z``, R{·} = ``R*``.
import threading

from cython.parallel cimport threadid
from libc.string cimport memset

# Which GEMM the float32 passes use. Tiles read it as they go (switching it while a pass
# runs in another thread changes rounding only); the weight-gradient layout is fixed per
# pass by _native_weight_grad.
cdef bint _native_sgemm = ncnn_sgemm_available() != 0


def set_gemm_engine(engine):
    """Choose the float32 GEMM of the conv passes: ``"native"`` (newtoncnn's AVX-512
    kernel, the default where the CPU has it) or ``"blas"`` (scipy's BLAS). float64
    always uses BLAS. Returns the previous engine."""
    global _native_sgemm
    if engine not in ("native", "blas"):
        raise ValueError(f"engine must be 'native' or 'blas', got {engine!r}")
    if engine == "native" and not ncnn_sgemm_available():
        raise ValueError("the native float32 GEMM needs AVX-512F, which this CPU or build lacks")
    previous = gemm_engine()
    _native_sgemm = engine == "native"
    return previous


def set_simd(bint on):
    """Switch the AVX-512 float32 2x2 max pool of the passes on (where the CPU has it) or
    off; returns whether it was on. Results are the same bit for bit: for tests and A/B
    timing."""
    return bool(ncnn_set_avx512(on))


def gemm_engine():
    """The float32 GEMM the conv passes use now: ``"native"`` or ``"blas"``."""
    return "native" if _native_sgemm else "blas"


cdef struct Geom:
    int C, H, W, out_c, pool, pad, Hp, Wp, conv_h, conv_w, out_h, out_w, taps, fan_in, P, Po
    int kernel, stride, tile


cdef Geom _geom(g, int tile, int n):
    cdef Geom G
    G.C, G.H, G.W, G.out_c = g.in_c, g.in_h, g.in_w, g.out_c
    G.pool, G.pad, G.Hp, G.Wp = g.pool, g.padding, g.padded_h, g.padded_w
    G.conv_h, G.conv_w, G.out_h, G.out_w = g.conv_h, g.conv_w, g.out_h, g.out_w
    G.taps, G.fan_in, G.kernel, G.stride = g.taps, g.fan_in, g.kernel, g.stride
    G.P, G.Po = g.conv_h * g.conv_w, g.out_h * g.out_w
    G.tile = max(1, min(tile, n))
    return G


class Workspace:
    """Per-thread tile buffers, kept between calls (fresh pages are slow to fault in).

    ``lock`` (reentrant) serializes the passes that use one workspace. A caller that
    keeps results in the reusable arrays of :meth:`array` past one pass (a forward
    pass read by the backward pass) holds it for the whole sequence.
    """

    def __init__(self):
        self.lock = threading.RLock()
        self._buffers = {}

    def held(self):
        """Whether the calling thread holds ``lock``."""
        return self.lock._is_owned()

    def get(self, name, n_threads, size, dtype):
        """A (n_threads, size) buffer of dtype, grown when needed (contents undefined)."""
        key = (name, np.dtype(dtype).char)
        buf = self._buffers.get(key)
        if buf is None or buf.shape[0] < n_threads or buf.shape[1] < size:
            buf = np.empty((n_threads, max(size, 1)), dtype=dtype)
            self._buffers[key] = buf
        return buf

    def array(self, name, shape, dtype):
        """A reusable array of ``shape`` (a view of a buffer that only grows): for
        results that live until the next call asks for the same name."""
        size = int(np.prod(shape))
        key = ("array", name, np.dtype(dtype).char)
        buf = self._buffers.get(key)
        if buf is None or buf.size < size:
            buf = np.empty(max(size, 1), dtype=dtype)
            self._buffers[key] = buf
        return buf[:size].reshape(shape)

    @property
    def nbytes(self):
        return sum(b.nbytes for b in self._buffers.values())


cdef int _n_tiles(int n, int tile) noexcept nogil:
    return (n + tile - 1) // tile


cdef inline bint _same(Geom G) noexcept nogil:
    # output plane = input plane: φ rows are shifted copies of the unpadded input
    return G.stride == 1 and G.kernel == 2 * G.pad + 1


cdef inline void _im2col(const floating *xp, int64_t xps, floating *phi, int64_t row,
                         Geom G, const ncnn_index *idx) noexcept nogil:
    if G.stride == 1:
        if floating is float:
            ncnn_im2col_s1_f32(xp, xps, phi, row, G.C, G.kernel, G.kernel, G.Wp, G.conv_h, G.conv_w)
        else:
            ncnn_im2col_s1_f64(xp, xps, phi, row, G.C, G.kernel, G.kernel, G.Wp, G.conv_h, G.conv_w)
    else:
        if floating is float:
            ncnn_im2col_f32(xp, xps, phi, row, G.C, G.taps, G.P, idx)
        else:
            ncnn_im2col_f64(xp, xps, phi, row, G.C, G.taps, G.P, idx)


cdef inline void _col2im(const floating *phi, int64_t row, floating *xp, int64_t xps,
                         Geom G, const ncnn_index *idx) noexcept nogil:
    if G.stride == 1:
        if floating is float:
            ncnn_col2im_s1_f32(phi, row, xp, xps, G.C, G.kernel, G.kernel, G.Hp, G.Wp, G.conv_h, G.conv_w)
        else:
            ncnn_col2im_s1_f64(phi, row, xp, xps, G.C, G.kernel, G.kernel, G.Hp, G.Wp, G.conv_h, G.conv_w)
    else:
        if floating is float:
            ncnn_col2im_f32(phi, row, xp, xps, G.C, G.Hp * G.Wp, G.taps, G.P, idx)
        else:
            ncnn_col2im_f64(phi, row, xp, xps, G.C, G.Hp * G.Wp, G.taps, G.P, idx)


cdef inline void _build_phi(const floating *X, Geom G, int i0, int tn, floating *xp,
                            floating *phi, const ncnn_index *idx) noexcept nogil:
    """[φ(pad(Z)); 1ᵀ] of instances i0..i0+tn of the NCHW map X into phi (fan_in + 1, tile * P)."""
    cdef int64_t plane = <int64_t>G.H * G.W, pplane = <int64_t>G.Hp * G.Wp
    cdef int64_t row = <int64_t>G.tile * G.P
    cdef int i
    cdef floating one = 1
    cdef const floating *src
    for i in range(tn):
        src = X + (<int64_t>(i0 + i) * G.C) * plane
        if _same(G):
            if floating is float:
                ncnn_im2col_same_f32(src, plane, phi + <int64_t>i * G.P, row, G.C, G.H, G.W, G.pad)
            else:
                ncnn_im2col_same_f64(src, plane, phi + <int64_t>i * G.P, row, G.C, G.H, G.W, G.pad)
        elif G.pad:
            if floating is float:
                ncnn_pad_f32(src, plane, xp, pplane, G.C, G.H, G.W, G.pad)
            else:
                ncnn_pad_f64(src, plane, xp, pplane, G.C, G.H, G.W, G.pad)
            _im2col(xp, pplane, phi + <int64_t>i * G.P, row, G, idx)
        else:
            _im2col(src, plane, phi + <int64_t>i * G.P, row, G, idx)
    if floating is float:
        ncnn_fill_rows_f32(phi + G.fan_in * row, row, &one, 1, <int64_t>tn * G.P)
    else:
        ncnn_fill_rows_f64(phi + G.fan_in * row, row, &one, 1, <int64_t>tn * G.P)


cdef inline void _affine(const floating *Wa, int K, const floating *phi, Geom G, int tn,
                         floating *S, floating beta) noexcept nogil:
    """S (out_c, tile * P) = [W | b][φ; 1ᵀ] + beta S, using the first K columns of [W | b]
    (K = fan_in + 1: with the bias; K = fan_in: W alone)."""
    cdef int64_t row = <int64_t>G.tile * G.P
    if floating is float:
        if _native_sgemm:
            ncnn_sgemm_nn(G.out_c, tn * G.P, K, Wa, G.fan_in + 1, 0, phi, row, beta, S, row)
            return
    gemm_rm(False, False, G.out_c, tn * G.P, K, <floating>1, Wa, G.fan_in + 1,
            phi, <int>row, beta, S, <int>row)


def _check(a, shape, dtype, name):
    if a.shape != tuple(shape) or a.dtype != dtype or not a.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous {np.dtype(dtype)} array of shape "
                         f"{tuple(shape)}, got {a.dtype} {a.shape}")


def _prepare(g, X, tile, ws, dtype):
    n = X.shape[0]
    _check(X, (n, g.in_c, g.in_h, g.in_w), dtype, "layer input")
    nt = max(1, min(get_num_threads(), (n + max(1, min(tile, n)) - 1) // max(1, min(tile, n))))
    t = max(1, min(tile, max(n, 1)))
    P = g.conv_h * g.conv_w
    xp = ws.get("xp", nt, g.in_c * g.padded_h * g.padded_w, dtype)
    phi = ws.get("phi", nt, (g.fan_in + 1) * t * P, dtype)
    S = ws.get("S", nt, g.out_c * t * P, dtype)
    return n, nt, xp, phi, S


def _output(out, shape, dtype, name):
    if out is None:
        return np.empty(shape, dtype=dtype)
    _check(out, shape, dtype, name)
    return out


def forward(g, const floating[:, :, :, ::1] X, const floating[:, ::1] Wa,
            const ncnn_index[:, ::1] idx, int tile, ws, Z_out=None, am_out=None):
    """Z^{m+1} = pool(ReLU([W | b][φ(pad(X)); 1ᵀ])) and the pool argmax, both (n, out_c, out_h, out_w)
    (written into Z_out, am_out when given)."""
    dtype = np.asarray(Wa).dtype
    _check(np.asarray(Wa), (g.out_c, g.fan_in + 1), dtype, "[W | b]")
    n_, nt_, xp_a, phi_a, S_a = _prepare(g, np.asarray(X), tile, ws, dtype)
    cdef int n = n_, nt = nt_
    Z_a = _output(Z_out, (n, g.out_c, g.out_h, g.out_w), dtype, "Z_out")
    am_a = _output(am_out, Z_a.shape, np.int32, "am_out")
    cdef floating[:, :, :, ::1] Z = Z_a
    cdef ncnn_index[:, :, :, ::1] am = am_a
    cdef floating[:, ::1] xp = xp_a, phi = phi_a, S = S_a
    cdef Geom G = _geom(g, tile, n)
    cdef int t, tid, i, i0, tn, nT = _n_tiles(n, G.tile)
    cdef int64_t row = <int64_t>G.tile * G.P, zpl = <int64_t>G.out_c * G.Po
    if n == 0:
        return Z_a, am_a
    with nogil:
        for t in prange(nT, num_threads=nt, schedule="static", chunksize=1):
            tid = threadid()
            i0 = t * G.tile
            tn = min(G.tile, n - i0)
            _build_phi(&X[0, 0, 0, 0], G, i0, tn, &xp[tid, 0], &phi[tid, 0], &idx[0, 0])
            _affine(&Wa[0, 0], G.fan_in + 1, &phi[tid, 0], G, tn, &S[tid, 0], 0)
            for i in range(tn):
                if floating is float:
                    ncnn_maxpool_f32(&S[tid, 0] + <int64_t>i * G.P, row, &Z[0, 0, 0, 0] + (i0 + i) * zpl,
                                     &am[0, 0, 0, 0] + (i0 + i) * zpl, G.Po, G.out_c, G.conv_h, G.conv_w, G.pool, 1)
                else:
                    ncnn_maxpool_f64(&S[tid, 0] + <int64_t>i * G.P, row, &Z[0, 0, 0, 0] + (i0 + i) * zpl,
                                     &am[0, 0, 0, 0] + (i0 + i) * zpl, G.Po, G.out_c, G.conv_h, G.conv_w, G.pool, 1)
    return Z_a, am_a


cdef inline void _weight_grad(const floating *dS, const floating *phi, Geom G, int tn,
                              floating *gWa, floating *scratch, bint native) noexcept nogil:
    """[gW | gb] += dS [φ; 1ᵀ]ᵀ for one tile; with the native kernel the accumulator
    holds the transpose, [gW | gb]ᵀ += [φ; 1ᵀ] dSᵀ (see ``_reduce_threads``)."""
    cdef int64_t row = <int64_t>G.tile * G.P
    if floating is float:
        if native:
            ncnn_sgemm_nt(G.fan_in + 1, G.out_c, tn * G.P, phi, row, dS, row, 1, gWa, G.out_c, scratch)
            return
    gemm_rm(False, True, G.out_c, G.fan_in + 1, tn * G.P, <floating>1, dS, <int>row, phi, <int>row,
            <floating>1, gWa, G.fan_in + 1)


cdef inline void _input_delta(const floating *Wa, const floating *dS, Geom G, int i0, int tn,
                              floating *dphi, floating *xp, floating *dX,
                              const ncnn_index *idx) noexcept nogil:
    """∂/∂X = crop(P_φᵀ (Wᵀ dS)) for one tile, into the NCHW map dX (dphi is used up)."""
    cdef int64_t row = <int64_t>G.tile * G.P
    cdef int64_t plane = <int64_t>G.H * G.W, pplane = <int64_t>G.Hp * G.Wp
    cdef int i
    cdef floating *dst
    if floating is float and _native_sgemm:
        ncnn_sgemm_nn(G.fan_in, tn * G.P, G.out_c, Wa, G.fan_in + 1, 1, dS, row, 0, dphi, row)
    else:
        gemm_rm(True, False, G.fan_in, tn * G.P, G.out_c, <floating>1, Wa, G.fan_in + 1, dS, <int>row,
                <floating>0, dphi, <int>row)
    for i in range(tn):
        dst = dX + (<int64_t>(i0 + i) * G.C) * plane
        if _same(G):
            if floating is float:
                ncnn_col2im_same_f32(dphi + <int64_t>i * G.P, row, dst, plane, G.C, G.H, G.W, G.pad)
            else:
                ncnn_col2im_same_f64(dphi + <int64_t>i * G.P, row, dst, plane, G.C, G.H, G.W, G.pad)
        elif G.pad:
            _col2im(dphi + <int64_t>i * G.P, row, xp, pplane, G, idx)
            if floating is float:
                ncnn_crop_f32(xp, pplane, dst, plane, G.C, G.H, G.W, G.pad)
            else:
                ncnn_crop_f64(xp, pplane, dst, plane, G.C, G.H, G.W, G.pad)
        else:
            _col2im(dphi + <int64_t>i * G.P, row, dst, plane, G, idx)


def _native_weight_grad(dtype):
    """Whether this pass accumulates weight gradients with the native kernel (transposed)."""
    return _native_sgemm and np.dtype(dtype) == np.float32


def _thread_grads(g, ws, nt, dtype, gWa):
    """Zeroed per-thread [gW | gb] accumulators (None when no gradient is wanted) and the
    native GEMM's per-thread scratch."""
    scratch = ws.get("gemm", nt, ncnn_sgemm_scratch_size(g.out_c), dtype)
    if gWa is None:
        return None, scratch
    _check(np.asarray(gWa), (g.out_c, g.fan_in + 1), dtype, "[gW | gb]")
    buf = ws.get("gW", nt, g.out_c * (g.fan_in + 1), dtype)
    buf[:nt] = 0
    return buf, scratch


def _reduce_threads(buf, nt, gWa, bint transposed):
    """Add the per-thread gradients, in thread order (deterministic), into gWa
    (each held as [gW | gb]ᵀ when ``transposed``)."""
    gWa = np.asarray(gWa)
    total = buf[0, :gWa.size].copy()
    for t in range(1, nt):
        total += buf[t, :gWa.size]
    if transposed:
        gWa += total.reshape(gWa.shape[1], gWa.shape[0]).T
    else:
        gWa.reshape(-1)[...] += total


def backward(g, const floating[:, :, :, ::1] X, const floating[:, :, :, ::1] dZ,
             const floating[:, :, :, ::1] Z, const ncnn_index[:, :, :, ::1] am,
             const floating[:, ::1] Wa, const ncnn_index[:, ::1] idx, int tile, ws,
             floating[:, ::1] gWa=None, bint input_delta=True, dX_out=None):
    """Backward through one conv layer from ∂/∂Z^{m+1} (dZ, masked by Z > 0 unless Z is None):
    accumulates [gW | gb] += ∂/∂[W | b] when given; returns ∂/∂X (into dX_out if given) or None."""
    dtype = np.asarray(Wa).dtype
    _check(np.asarray(Wa), (g.out_c, g.fan_in + 1), dtype, "[W | b]")
    n_, nt_, xp_a, phi_a, S_a = _prepare(g, np.asarray(X), tile, ws, dtype)
    cdef int n = n_, nt = nt_
    shape = (n, g.out_c, g.out_h, g.out_w)
    _check(np.asarray(dZ), shape, dtype, "dZ")
    _check(np.asarray(am), shape, np.int32, "argmax")
    cdef const floating *mask = NULL
    if Z is not None:
        _check(np.asarray(Z), shape, dtype, "Z")
        mask = &Z[0, 0, 0, 0] if n else NULL
    gW_t, gscr_a = _thread_grads(g, ws, nt, dtype, gWa)
    cdef bint weights = gW_t is not None, native = _native_weight_grad(dtype)
    cdef floating[:, ::1] gWt, gscr = gscr_a
    if weights:
        gWt = gW_t
    dX_a = _output(dX_out, (n, g.in_c, g.in_h, g.in_w), dtype, "dX_out") if input_delta else None
    cdef floating[:, :, :, ::1] dX
    if input_delta:
        dX = dX_a
    cdef floating[:, ::1] xp = xp_a, phi = phi_a, S = S_a
    cdef Geom G = _geom(g, tile, n)
    cdef int t, tid, i, i0, tn, nT = _n_tiles(n, G.tile)
    cdef int64_t row = <int64_t>G.tile * G.P, zpl = <int64_t>G.out_c * G.Po
    if n == 0:
        return dX_a
    with nogil:
        for t in prange(nT, num_threads=nt, schedule="static", chunksize=1):
            tid = threadid()
            i0 = t * G.tile
            tn = min(G.tile, n - i0)
            for i in range(tn):
                if floating is float:
                    ncnn_pool_scatter_f32(&dZ[0, 0, 0, 0] + (i0 + i) * zpl, (mask + (i0 + i) * zpl) if mask != NULL else NULL,
                                          &am[0, 0, 0, 0] + (i0 + i) * zpl, G.Po, &S[tid, 0] + <int64_t>i * G.P, row,
                                          G.out_c, G.P, G.Po)
                else:
                    ncnn_pool_scatter_f64(&dZ[0, 0, 0, 0] + (i0 + i) * zpl, (mask + (i0 + i) * zpl) if mask != NULL else NULL,
                                          &am[0, 0, 0, 0] + (i0 + i) * zpl, G.Po, &S[tid, 0] + <int64_t>i * G.P, row,
                                          G.out_c, G.P, G.Po)
            if weights:
                _build_phi(&X[0, 0, 0, 0], G, i0, tn, &xp[tid, 0], &phi[tid, 0], &idx[0, 0])
                _weight_grad(&S[tid, 0], &phi[tid, 0], G, tn, &gWt[tid, 0], &gscr[tid, 0], native)
            if input_delta:
                _input_delta(&Wa[0, 0], &S[tid, 0], G, i0, tn, &phi[tid, 0], &xp[tid, 0], &dX[0, 0, 0, 0], &idx[0, 0])
    if weights:
        _reduce_threads(gW_t, nt, gWa, native)
    return dX_a


def rop(g, const floating[:, :, :, ::1] X, const floating[:, :, :, ::1] RX,
        const floating[:, :, :, ::1] Z, const ncnn_index[:, :, :, ::1] am,
        const floating[:, ::1] Wa, const floating[:, ::1] Va, const ncnn_index[:, ::1] idx,
        int tile, ws, RZ_out=None):
    """R{Z^{m+1}} = [Z > 0] ⊙ pool(W φ(pad(R{X})) + [V | v_b][φ(pad(X)); 1ᵀ]) with the forward
    pass's argmax (into RZ_out if given); RX None means R{X} = 0 (the first layer)."""
    dtype = np.asarray(Wa).dtype
    _check(np.asarray(Wa), (g.out_c, g.fan_in + 1), dtype, "[W | b]")
    _check(np.asarray(Va), (g.out_c, g.fan_in + 1), dtype, "[V | v_b]")
    n_, nt_, xp_a, phi_a, S_a = _prepare(g, np.asarray(X), tile, ws, dtype)
    cdef int n = n_, nt = nt_
    shape = (n, g.out_c, g.out_h, g.out_w)
    _check(np.asarray(Z), shape, dtype, "Z")
    _check(np.asarray(am), shape, np.int32, "argmax")
    cdef bint has_rx = RX is not None
    if has_rx:
        _check(np.asarray(RX), np.asarray(X).shape, dtype, "RX")
    RZ_a = _output(RZ_out, shape, dtype, "RZ_out")
    cdef floating[:, :, :, ::1] RZ = RZ_a
    cdef floating[:, ::1] xp = xp_a, phi = phi_a, S = S_a
    cdef Geom G = _geom(g, tile, n)
    cdef int t, tid, i, i0, tn, nT = _n_tiles(n, G.tile)
    cdef int64_t row = <int64_t>G.tile * G.P, zpl = <int64_t>G.out_c * G.Po
    if n == 0:
        return RZ_a
    with nogil:
        for t in prange(nT, num_threads=nt, schedule="static", chunksize=1):
            tid = threadid()
            i0 = t * G.tile
            tn = min(G.tile, n - i0)
            _build_phi(&X[0, 0, 0, 0], G, i0, tn, &xp[tid, 0], &phi[tid, 0], &idx[0, 0])
            _affine(&Va[0, 0], G.fan_in + 1, &phi[tid, 0], G, tn, &S[tid, 0], 0)
            if has_rx:
                _build_phi(&RX[0, 0, 0, 0], G, i0, tn, &xp[tid, 0], &phi[tid, 0], &idx[0, 0])
                _affine(&Wa[0, 0], G.fan_in, &phi[tid, 0], G, tn, &S[tid, 0], 1)
            for i in range(tn):
                if floating is float:
                    ncnn_pool_gather_f32(&S[tid, 0] + <int64_t>i * G.P, row, &am[0, 0, 0, 0] + (i0 + i) * zpl,
                                         &Z[0, 0, 0, 0] + (i0 + i) * zpl, &RZ[0, 0, 0, 0] + (i0 + i) * zpl,
                                         G.Po, G.out_c, G.Po)
                else:
                    ncnn_pool_gather_f64(&S[tid, 0] + <int64_t>i * G.P, row, &am[0, 0, 0, 0] + (i0 + i) * zpl,
                                         &Z[0, 0, 0, 0] + (i0 + i) * zpl, &RZ[0, 0, 0, 0] + (i0 + i) * zpl,
                                         G.Po, G.out_c, G.Po)
    return RZ_a


def jacobian_jvp(g, const floating[:, :, :, ::1] X, const floating[:, :, :, ::1] J,
                 const ncnn_index[:, :, :, ::1] am, const floating[:, ::1] Va,
                 const ncnn_index[:, ::1] idx, int tile, ws, floating[:, ::1] out):
    """out[i, k] += Σ_{c,o} J[i, k, c, o] ([V | v_b][φ(pad(X_i)); 1ᵀ])[c, am[i, c, o]] (stored Jacobian)."""
    dtype = np.asarray(Va).dtype
    _check(np.asarray(Va), (g.out_c, g.fan_in + 1), dtype, "[V | v_b]")
    n_, nt_, xp_a, phi_a, S_a = _prepare(g, np.asarray(X), tile, ws, dtype)
    cdef int n = n_, nt = nt_
    cdef int K = out.shape[1]
    _check(np.asarray(J), (n, K, g.out_c, g.out_h * g.out_w), dtype, "J")
    _check(np.asarray(am), (n, g.out_c, g.out_h, g.out_w), np.int32, "argmax")
    _check(np.asarray(out), (n, K), dtype, "out")
    cdef floating[:, ::1] xp = xp_a, phi = phi_a, S = S_a
    cdef floating[:, ::1] scratch = ws.get("jac", nt, g.out_c * g.out_h * g.out_w, dtype)
    cdef Geom G = _geom(g, tile, n)
    cdef int t, tid, i, i0, tn, nT = _n_tiles(n, G.tile)
    cdef int64_t row = <int64_t>G.tile * G.P, zpl = <int64_t>G.out_c * G.Po
    if n == 0 or K == 0:
        return
    with nogil:
        for t in prange(nT, num_threads=nt, schedule="static", chunksize=1):
            tid = threadid()
            i0 = t * G.tile
            tn = min(G.tile, n - i0)
            _build_phi(&X[0, 0, 0, 0], G, i0, tn, &xp[tid, 0], &phi[tid, 0], &idx[0, 0])
            _affine(&Va[0, 0], G.fan_in + 1, &phi[tid, 0], G, tn, &S[tid, 0], 0)
            for i in range(tn):
                if floating is float:
                    ncnn_jac_jvp_f32(&J[i0 + i, 0, 0, 0], &S[tid, 0] + <int64_t>i * G.P, row,
                                     &am[0, 0, 0, 0] + (i0 + i) * zpl, G.Po, &out[i0 + i, 0], &scratch[tid, 0], K, G.out_c, G.Po)
                else:
                    ncnn_jac_jvp_f64(&J[i0 + i, 0, 0, 0], &S[tid, 0] + <int64_t>i * G.P, row,
                                     &am[0, 0, 0, 0] + (i0 + i) * zpl, G.Po, &out[i0 + i, 0], &scratch[tid, 0], K, G.out_c, G.Po)


def jacobian_vjp(g, const floating[:, :, :, ::1] X, const floating[:, :, :, ::1] J,
                 const ncnn_index[:, :, :, ::1] am, const floating[:, ::1] U,
                 const ncnn_index[:, ::1] idx, int tile, ws, floating[:, ::1] gWa):
    """[gW | gb] += Σ_i U^{m,i} [φ(pad(X_i)); 1ᵀ]ᵀ with U^{m,i} = Σ_k U[i, k] ∂z_k/∂S^m."""
    dtype = np.asarray(gWa).dtype
    n_, nt_, xp_a, phi_a, S_a = _prepare(g, np.asarray(X), tile, ws, dtype)
    cdef int n = n_, nt = nt_
    cdef int K = U.shape[1]
    _check(np.asarray(J), (n, K, g.out_c, g.out_h * g.out_w), dtype, "J")
    _check(np.asarray(am), (n, g.out_c, g.out_h, g.out_w), np.int32, "argmax")
    _check(np.asarray(U), (n, K), dtype, "U")
    gW_t, gscr_a = _thread_grads(g, ws, nt, dtype, gWa)
    cdef floating[:, ::1] gWt = gW_t, gscr = gscr_a
    cdef bint native = _native_weight_grad(dtype)
    cdef floating[:, ::1] xp = xp_a, phi = phi_a, S = S_a
    cdef floating[:, ::1] scratch = ws.get("jac", nt, g.out_c * g.out_h * g.out_w, dtype)
    cdef Geom G = _geom(g, tile, n)
    cdef int t, tid, i, i0, tn, nT = _n_tiles(n, G.tile)
    cdef int64_t row = <int64_t>G.tile * G.P, zpl = <int64_t>G.out_c * G.Po
    if n == 0 or K == 0:
        return
    with nogil:
        for t in prange(nT, num_threads=nt, schedule="static", chunksize=1):
            tid = threadid()
            i0 = t * G.tile
            tn = min(G.tile, n - i0)
            for i in range(tn):
                if floating is float:
                    ncnn_jac_vjp_f32(&J[i0 + i, 0, 0, 0], &U[i0 + i, 0], &am[0, 0, 0, 0] + (i0 + i) * zpl, G.Po,
                                     &S[tid, 0] + <int64_t>i * G.P, row, &scratch[tid, 0], K, G.out_c, G.P, G.Po)
                else:
                    ncnn_jac_vjp_f64(&J[i0 + i, 0, 0, 0], &U[i0 + i, 0], &am[0, 0, 0, 0] + (i0 + i) * zpl, G.Po,
                                     &S[tid, 0] + <int64_t>i * G.P, row, &scratch[tid, 0], K, G.out_c, G.P, G.Po)
            _build_phi(&X[0, 0, 0, 0], G, i0, tn, &xp[tid, 0], &phi[tid, 0], &idx[0, 0])
            _weight_grad(&S[tid, 0], &phi[tid, 0], G, tn, &gWt[tid, 0], &gscr[tid, 0], native)
    _reduce_threads(gW_t, nt, gWa, native)
