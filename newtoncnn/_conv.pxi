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
# AVX-512F, BLAS otherwise (``set_gemm_engine`` chooses, for tests and benchmarks). The
# kernel's AVX2 version is opt-in: on a Zen 3 core (1 / 2 threads) it made the forward pass
# 3 / 9 % faster than OpenBLAS, but f + gradient 19 / 0 %, products 5-17 % and the
# Jacobian build 23-28 % slower.
#
# float32 stride-1 conv layers followed by a 2x2 pool, with output channels in multiples of
# 8, skip φ and S altogether where the CPU has AVX2: src_c/conv_avx2.c computes conv, ReLU
# and pool in one (forward pass), or conv and the gather at the forward pass's argmax
# (R-operator and stored-Jacobian products); 3x3 layers with input channels in multiples of
# 8 by Winograd F(2x2, 3x3), one tile per pool window; first layers with lanes of 8
# neighbouring windows. Their backward passes (input delta and weight gradient, input
# channels in multiples of 8) visit only the nonzero pooled deltas instead of scattering
# them into S and multiplying all of it; the Jacobian build propagates its K output seeds
# through such a layer in one pass (``jacobian_deltas``). ``set_fused_conv`` switches them
# all.
#
# The paper's symbols: φ = ``phi``, S^m = ``S``, Z^{m+1} = ``Z``, R{·} = ``R*``.
import threading

from cython.parallel cimport threadid
from libc.string cimport memset

# Which GEMM the float32 passes use. Tiles read it as they go (switching it while a pass
# runs in another thread changes rounding only); the weight-gradient layout is fixed per
# pass by _native_weight_grad.
cdef bint _native_sgemm = ncnn_sgemm_avx512() != 0
# Whether the fused conv + pool kernels run where they apply (see set_fused_conv). On by
# default on every CPU with AVX2 and FMA: on a Zen 4 core with AVX-512 (2 threads, n=600)
# they beat the native AVX-512 GEMM path too (forward 1.33x, f + gradient 1.45x, Jacobian
# build 2x, products 1.2-1.4x).
cdef bint _fused_conv = True


def set_gemm_engine(engine):
    """Choose the float32 GEMM of the conv passes: ``"native"`` (newtoncnn's own kernel,
    the default on CPUs with AVX-512F; on CPUs with AVX2 only, its AVX2 version, opt-in
    because OpenBLAS is faster there for the backward passes) or ``"blas"`` (scipy's
    BLAS). The native kernel gives an image the same feature maps wherever it sits in
    the batch. float64 always uses BLAS. Returns the previous engine."""
    global _native_sgemm
    if engine not in ("native", "blas"):
        raise ValueError(f"engine must be 'native' or 'blas', got {engine!r}")
    if engine == "native" and not ncnn_sgemm_available():
        raise ValueError("the native float32 GEMM needs AVX-512F or AVX2 with FMA, which this CPU or build lacks")
    previous = gemm_engine()
    _native_sgemm = engine == "native"
    return previous


def set_simd(bint on):
    """Switch the SIMD float32 2x2 max pool of the passes (AVX-512, or AVX2 on CPUs
    without it) on, where the CPU has one, or off; returns whether it was on. Results
    are the same bit for bit: for tests and A/B timing."""
    return bool(ncnn_set_simd(on))


def set_fused_conv(on):
    """Switch the fused float32 conv + pool kernels (``src_c/conv_avx2.c``) on or off;
    returns whether they were on. Where they apply (stride-1 conv layers followed by a
    2x2 pool, output channels a multiple of 8, a CPU with AVX2 and FMA) the forward
    pass computes conv, ReLU and pool in one, and the R-operator and stored-Jacobian
    products the conv at the pool's argmax, without the im2col matrix and the GEMM (3x3
    layers by Winograd F(2x2, 3x3) where the input channels are a multiple of 8); where
    the input channels are a multiple of 8 too, the backward passes (gradient, Jacobian
    build, products) visit only the nonzero entries of ∂/∂S behind the pool. They
    sum in another order than the GEMM path, so results differ from it by rounding; an
    image gets the same results wherever it sits in the batch. On by default; for tests
    and A/B timing."""
    global _fused_conv
    previous = bool(_fused_conv)
    _fused_conv = bool(on)
    return previous


def _set_window_lanes(on):
    """Switch the fused kernels' variant whose lanes are 8 neighbouring pool windows (first
    layers: few taps, wide planes) on or off; returns whether it was on. Same results bit
    for bit: for tests and A/B timing."""
    return bool(ncnn_conv_window_lanes(1 if on else 0))


# Whether 3x3 layers of the fused kernels use Winograd F(2x2, 3x3) (see ncnn_conv_pool2_wino).
cdef bint _winograd = True


def _set_winograd(on):
    """Switch Winograd F(2x2, 3x3) in the fused kernels' 3x3 layers on or off; returns
    whether it was on. It sums in another order (results differ by rounding): for tests and
    A/B timing."""
    global _winograd
    previous = bool(_winograd)
    _winograd = bool(on)
    return previous


def _wino_weights(sz, Wt, Wt2=None):
    """The Winograd-transformed weights U of the tap rows Wt (and Wt2, the R-operator's W
    over R{X}) for a fused layer, or None where F(2x2, 3x3) does not apply (kernel not 3,
    input channels not a multiple of 8, switched off)."""
    if not (_winograd and sz["kernel"] == 3 and sz["C"] % 8 == 0):
        return None
    C, out_c = sz["C"], sz["out_c"]
    cdef const float[:, ::1] w = Wt
    cdef const float[:, ::1] w2 = Wt2 if Wt2 is not None else Wt
    U_a = np.empty(16 * (2 * C if Wt2 is not None else C) * out_c, dtype=np.float32)
    cdef float[::1] U = U_a
    ncnn_wino_weights_f32(&w[0, 0], &w2[0, 0] if Wt2 is not None else NULL, C, out_c, &U[0])
    return U_a


def _winograd_setup(sz, ws, nt, Wt, Wt2=None):
    """(U, per-thread scratch) of a fused pass in Winograd F(2x2, 3x3), or (None, None)
    where it does not apply (see _wino_weights)."""
    U = _wino_weights(sz, Wt, Wt2)
    if U is None:
        return None, None
    C2 = 2 * sz["C"] if Wt2 is not None else sz["C"]
    return U, _buffer(ws, "wino", nt, ncnn_wino_scratch(C2, sz["out_c"], sz["Hp"], sz["Wp"]),
                      np.float32)


def _window_lanes_apply(g, two_inputs=False):
    """Whether the fused kernels take the window-lanes variant for conv layer g now (with
    the input of the R-operator's second term too when ``two_inputs``)."""
    sz = _sizes(g, 1, 1)
    return bool(_fuses(sz, np.float32) and ncnn_conv_window_lanes_apply(
        sz["C"], sz["kernel"], sz["out_h"], sz["out_w"], 1 if two_inputs else 0))


def fused_conv_available():
    """Whether this CPU and build can run the fused float32 conv + pool kernels (AVX2 + FMA)."""
    return ncnn_conv_pool2_avx2_on() != 0


def gemm_engine():
    """The float32 GEMM the conv passes use now: ``"native"`` or ``"blas"``."""
    return "native" if _native_sgemm else "blas"


cdef struct Geom:
    int C, H, W, out_c, pool, pad, Hp, Wp, conv_h, conv_w, out_h, out_w, taps, fan_in, P, Po
    int kernel, stride, tile


def _sizes(g, tile, n):
    """The sizes of conv layer g (a ``ConvGeometry``) for a pass over n instances in tiles
    of ``tile``, as the fields of a ``Geom``. They are computed here from the layer's
    defining sizes (never taken from its derived ones, which could disagree), in Python's
    integers, and every one the kernels receive or form as a C int is checked to fit."""
    C, H, W = _cint("in_c", g.in_c, 1), _cint("in_h", g.in_h, 1), _cint("in_w", g.in_w, 1)
    out_c, kernel = _cint("out_c", g.out_c, 1), _cint("kernel", g.kernel, 1)
    stride, pad, pool = _cint("stride", g.stride, 1), _cint("padding", g.padding), _cint("pool", g.pool, 1)
    Hp, Wp = _cint("padded height", H + 2 * pad), _cint("padded width", W + 2 * pad)
    _require(kernel <= Hp and kernel <= Wp, f"kernel {kernel} larger than the padded input {Hp}x{Wp}")
    out_h, out_w = _pooled_sizes(Hp, Wp, kernel, kernel, stride, pool)
    conv_h, conv_w = out_h * pool, out_w * pool   # the pixels some pool window reads
    taps = _cprod("taps kernel**2", kernel, kernel)
    fan_in = _cprod("fan_in in_c * kernel**2", C, taps)
    _cprod("[W | b] out_c * (fan_in + 1)", out_c, _cint("fan_in + 1", fan_in + 1))
    _cprod("the padded plane", Hp, Wp)
    _cprod("an instance's input in_c * in_h * in_w", C, H, W)
    P = _cprod("the conv plane", conv_h, conv_w)
    Po = out_h * out_w
    _cprod("an instance's output out_c * out_h * out_w", out_c, Po)
    tile = max(1, min(_cint("tile", tile, 1), n))
    _cprod("a tile's columns tile * conv plane", tile, P)
    return dict(C=C, H=H, W=W, out_c=out_c, pool=pool, pad=pad, Hp=Hp, Wp=Wp,
                conv_h=conv_h, conv_w=conv_w, out_h=out_h, out_w=out_w, taps=taps,
                fan_in=fan_in, P=P, Po=Po, kernel=kernel, stride=stride, tile=tile)


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
    # output plane = input plane (nothing cropped for the pool): φ rows are shifted
    # copies of the unpadded input
    return (G.stride == 1 and G.kernel == 2 * G.pad + 1
            and G.conv_h == G.H and G.conv_w == G.W)


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


def _fuses(sz, dtype, channels="out_c"):
    """Whether the fused conv + pool kernels run for a layer of these sizes and dtype: the
    forward-type ones need the output channels (``"out_c"``), the backward ones the input
    channels (``"C"``) in multiples of 8."""
    return bool(_fused_conv and np.dtype(dtype) == np.float32 and sz["stride"] == 1
                and sz["pool"] == 2 and sz[channels] % 8 == 0 and ncnn_conv_pool2_avx2_on())


def _transposed(Wa):
    """[W | b]ᵀ, C-contiguous: the fused kernels' weight layout (one row per tap)."""
    return np.ascontiguousarray(np.asarray(Wa).T)


def _sparse_buffers(sz, ws, nt, dtype, weights):
    """The backward kernels' per-thread scratch and, when ``weights``, zeroed per-thread
    gradients laid out by tap and biases (None otherwise)."""
    scratch = _buffer(ws, "dbuf", nt, ncnn_conv_sparse_scratch(sz["P"], sz["out_c"], sz["Po"],
                                                                sz["Hp"], sz["Wp"], sz["C"]), dtype)
    if not weights:
        return scratch, None, None
    gk = _buffer(ws, "gk", nt, sz["out_c"] * sz["fan_in"], dtype)
    gkb = _buffer(ws, "gkb", nt, sz["out_c"], dtype)
    gk[:nt] = 0
    gkb[:nt] = 0
    return scratch, gk, gkb


def _by_tap(Wa, sz):
    """W laid out (out_c, kernel, kernel, C), C-contiguous: one row of input channels per tap."""
    k = sz["kernel"]
    W = np.asarray(Wa)[:, :sz["fan_in"]].reshape(sz["out_c"], sz["C"], k, k)
    return np.ascontiguousarray(W.transpose(0, 2, 3, 1)).reshape(sz["out_c"], -1)


def _add_by_tap(gk, gkb, nt, gWa, sz):
    """[gW | gb] += the per-thread sums (in thread order) of the gradients laid out by tap
    (``_by_tap``) and of the biases."""
    k, out_c = sz["kernel"], sz["out_c"]
    total, bias = _thread_sum(gk, nt, out_c * sz["fan_in"]), _thread_sum(gkb, nt, out_c)
    gWa = np.asarray(gWa)
    gWa[:, :sz["fan_in"]] += total.reshape(out_c, k, k, sz["C"]).transpose(0, 3, 1, 2).reshape(out_c, -1)
    gWa[:, sz["fan_in"]] += bias


cdef inline float *_padded_f32(const float *X, Geom G, int i, float *xp) noexcept nogil:
    """Instance i of the NCHW map X, zero-padded into xp (returned)."""
    ncnn_pad_f32(X + (<int64_t>i * G.C) * G.H * G.W, <int64_t>G.H * G.W, xp, <int64_t>G.Hp * G.Wp,
                 G.C, G.H, G.W, G.pad)
    return xp


cdef inline bint _tile_argmax_in_windows(const ncnn_index *am, Geom G, int i0, int tn) noexcept nogil:
    """Whether every pool offset of instances i0..i0+tn is one of its 2x2 window's four (as
    the forward pass makes them): the fused and sparse kernels' precondition."""
    return ncnn_pool2_argmax_in_windows(am + <int64_t>i0 * G.out_c * G.Po, <int64_t>tn * G.out_c,
                                        G.out_h, G.out_w) != 0


def _check(a, shape, dtype, name):
    if a.shape != tuple(shape) or a.dtype != dtype or not a.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous {np.dtype(dtype)} array of shape "
                         f"{tuple(shape)}, got {a.dtype} {a.shape}")


def _buffer(ws, name, nt, size, dtype):
    """The workspace's (nt, size) buffer ``name``, checked to be that large."""
    buf = ws.get(name, nt, size, dtype)
    if (not isinstance(buf, np.ndarray) or buf.ndim != 2 or buf.dtype != dtype
            or not buf.flags.c_contiguous or buf.shape[0] < nt or buf.shape[1] < size):
        raise ValueError(f"workspace buffer {name!r} must be a C-contiguous {np.dtype(dtype)} "
                         f"array of at least {nt} x {size}")
    return buf


def _prepare(g, X, tile, ws, dtype):
    """The checked sizes of a pass (a dict of ``Geom``'s fields), n, the thread count and
    the per-thread tile buffers."""
    n = _cint("the number of instances", X.shape[0])
    sz = _sizes(g, tile, n)
    _check(X, (n, sz["C"], sz["H"], sz["W"]), dtype, "layer input")
    t = sz["tile"]
    nt = max(1, min(get_num_threads(), (n + t - 1) // t))
    xp = _buffer(ws, "xp", nt, sz["C"] * sz["Hp"] * sz["Wp"], dtype)
    phi = _buffer(ws, "phi", nt, (sz["fan_in"] + 1) * t * sz["P"], dtype)
    S = _buffer(ws, "S", nt, sz["out_c"] * t * sz["P"], dtype)
    return sz, n, nt, xp, phi, S


def _check_idx(const ncnn_index[:, ::1] idx, sz):
    """The layer's im2col index map: (taps, P), every offset inside the padded plane."""
    _require(idx.shape[0] == sz["taps"] and idx.shape[1] == sz["P"],
             f"the index map must be ({sz['taps']}, {sz['P']}) (im2col_index(..., pool={sz['pool']}): "
             f"the pixels the pool reads), got {tuple(np.asarray(idx).shape)}")
    _check_index(idx, sz["Hp"] * sz["Wp"])


cdef bint _tile_argmax_ok(const ncnn_index *am, int64_t zpl, int i0, int tn, int P) noexcept nogil:
    """Whether the pool offsets of instances i0..i0+tn (zpl apiece) are all inside the
    conv plane: checked per tile just before the kernels read them (then in cache)."""
    return _index_ok(am + i0 * zpl, tn * zpl, P)


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
    sz, n_, nt_, xp_a, phi_a, S_a = _prepare(g, np.asarray(X), tile, ws, dtype)
    _check(np.asarray(Wa), (sz["out_c"], sz["fan_in"] + 1), dtype, "[W | b]")
    _check_idx(idx, sz)
    cdef int n = n_, nt = nt_
    Z_a = _output(Z_out, (n, sz["out_c"], sz["out_h"], sz["out_w"]), dtype, "Z_out")
    am_a = _output(am_out, Z_a.shape, np.int32, "am_out")
    cdef floating[:, :, :, ::1] Z = Z_a
    cdef ncnn_index[:, :, :, ::1] am = am_a
    cdef floating[:, ::1] xp = xp_a, phi = phi_a, S = S_a
    cdef Geom G = sz
    cdef int t, tid, i, i0, tn, nT = _n_tiles(n, G.tile)
    cdef int64_t row = <int64_t>G.tile * G.P, zpl = <int64_t>G.out_c * G.Po
    cdef bint fused = _fuses(sz, dtype), wino = False
    cdef const float[:, ::1] Wt
    cdef const float[::1] U
    cdef float[:, ::1] wscr
    if fused:
        Wt = _transposed(Wa)
        U_a, wscr_a = _winograd_setup(sz, ws, nt, Wt)
        wino = U_a is not None
        if wino:
            U, wscr = U_a, wscr_a
    if n == 0:
        return Z_a, am_a
    with nogil:
        for t in prange(nT, num_threads=nt, schedule="static", chunksize=1):
            tid = threadid()
            i0 = t * G.tile
            tn = min(G.tile, n - i0)
            if floating is float:
                if fused:
                    for i in range(tn):
                        if wino:
                            ncnn_conv_pool2_wino_f32(&X[i0 + i, 0, 0, 0], NULL, <int64_t>G.H * G.W, G.C, G.H, G.W,
                                                     G.pad, G.Wp, &U[0], &Wt[G.fan_in, 0],
                                                     G.out_c, &Z[i0 + i, 0, 0, 0], &am[i0 + i, 0, 0, 0], NULL,
                                                     G.Po, G.out_h, G.out_w, 1, 0, &wscr[tid, 0])
                            continue
                        ncnn_conv_pool2_avx2_f32(_padded_f32(&X[0, 0, 0, 0], G, i0 + i, &xp[tid, 0]),
                                                 <int64_t>G.Hp * G.Wp, G.C, G.Wp, G.kernel, &Wt[0, 0], G.out_c,
                                                 &Z[i0 + i, 0, 0, 0], &am[i0 + i, 0, 0, 0], G.Po,
                                                 G.out_h, G.out_w, 1)
                    continue
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


def _thread_grads(sz, ws, nt, dtype, gWa):
    """Zeroed per-thread [gW | gb] accumulators (None when no gradient is wanted) and the
    native GEMM's per-thread scratch (sz: the checked sizes of :func:`_sizes`)."""
    scratch = _buffer(ws, "gemm", nt, ncnn_sgemm_scratch_size(sz["out_c"]), dtype)
    if gWa is None:
        return None, scratch
    _check(np.asarray(gWa), (sz["out_c"], sz["fan_in"] + 1), dtype, "[gW | gb]")
    buf = _buffer(ws, "gW", nt, sz["out_c"] * (sz["fan_in"] + 1), dtype)
    buf[:nt] = 0
    return buf, scratch


def _thread_sum(buf, nt, size):
    """The first ``size`` entries of the nt per-thread rows of buf, summed in thread order
    (deterministic)."""
    total = buf[0, :size].copy()
    for t in range(1, nt):
        total += buf[t, :size]
    return total


def _reduce_threads(buf, nt, gWa, bint transposed):
    """Add the per-thread gradients, in thread order (deterministic), into gWa
    (each held as [gW | gb]ᵀ when ``transposed``)."""
    gWa = np.asarray(gWa)
    total = _thread_sum(buf, nt, gWa.size)
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
    sz, n_, nt_, xp_a, phi_a, S_a = _prepare(g, np.asarray(X), tile, ws, dtype)
    _check(np.asarray(Wa), (sz["out_c"], sz["fan_in"] + 1), dtype, "[W | b]")
    _check_idx(idx, sz)
    cdef int n = n_, nt = nt_
    shape = (n, sz["out_c"], sz["out_h"], sz["out_w"])
    _check(np.asarray(dZ), shape, dtype, "dZ")
    _check(np.asarray(am), shape, np.int32, "argmax")
    cdef const floating *mask = NULL
    if Z is not None:
        _check(np.asarray(Z), shape, dtype, "Z")
        mask = &Z[0, 0, 0, 0] if n else NULL
    gW_t, gscr_a = _thread_grads(sz, ws, nt, dtype, gWa)
    cdef bint weights = gW_t is not None, native = _native_weight_grad(dtype)
    cdef floating[:, ::1] gWt, gscr = gscr_a
    if weights:
        gWt = gW_t
    dX_a = _output(dX_out, (n, sz["C"], sz["H"], sz["W"]), dtype, "dX_out") if input_delta else None
    cdef floating[:, :, :, ::1] dX
    if input_delta:
        dX = dX_a
    cdef floating[:, ::1] xp = xp_a, phi = phi_a, S = S_a
    cdef Geom G = sz
    cdef int t, tid, i, i0, tn, nT = _n_tiles(n, G.tile), bad = 0
    cdef int64_t row = <int64_t>G.tile * G.P, zpl = <int64_t>G.out_c * G.Po
    cdef bint sparse = (input_delta or weights) and _fuses(sz, dtype, "C"), in_windows
    cdef const float[:, ::1] Wk
    cdef float[:, ::1] dbuf, gk, gkb
    if sparse:
        Wk = _by_tap(Wa, sz)
        dbuf, gk_a, gkb_a = _sparse_buffers(sz, ws, nt, dtype, weights)
        if weights:
            gk, gkb = gk_a, gkb_a
    if n == 0:
        return dX_a
    with nogil:
        for t in prange(nT, num_threads=nt, schedule="static", chunksize=1):
            tid = threadid()
            i0 = t * G.tile
            tn = min(G.tile, n - i0)
            if not _tile_argmax_ok(&am[0, 0, 0, 0], zpl, i0, tn, G.P):
                bad += 1
                continue
            in_windows = sparse and _tile_argmax_in_windows(&am[0, 0, 0, 0], G, i0, tn)
            if floating is float:
                if in_windows:
                    for i in range(tn):
                        if weights:
                            ncnn_conv_wgrad_avx2_f32(&dZ[i0 + i, 0, 0, 0], (mask + (i0 + i) * zpl) if mask != NULL else NULL,
                                                     &am[i0 + i, 0, 0, 0], G.Po, G.out_c, G.Po, G.conv_w, &X[i0 + i, 0, 0, 0],
                                                     <int64_t>G.H * G.W, G.C, G.H, G.W, G.pad, G.kernel, G.Hp, G.Wp,
                                                     &dbuf[tid, 0], &gk[tid, 0], &gkb[tid, 0])
                        if input_delta:
                            ncnn_conv_delta_avx2_f32(&dZ[i0 + i, 0, 0, 0], (mask + (i0 + i) * zpl) if mask != NULL else NULL,
                                                     &am[i0 + i, 0, 0, 0], G.Po, G.out_c, G.Po, G.conv_h, G.conv_w, &Wk[0, 0],
                                                     G.C, G.kernel, &dbuf[tid, 0], &dX[i0 + i, 0, 0, 0],
                                                     <int64_t>G.H * G.W, G.H, G.W, G.pad)
                    continue
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
    _require(bad == 0, "argmax offsets out of range")
    if weights:
        _reduce_threads(gW_t, nt, gWa, native)
        if sparse:
            _add_by_tap(gk_a, gkb_a, nt, gWa, sz)
    return dX_a


def rop(g, const floating[:, :, :, ::1] X, const floating[:, :, :, ::1] RX,
        const floating[:, :, :, ::1] Z, const ncnn_index[:, :, :, ::1] am,
        const floating[:, ::1] Wa, const floating[:, ::1] Va, const ncnn_index[:, ::1] idx,
        int tile, ws, RZ_out=None):
    """R{Z^{m+1}} = [Z > 0] ⊙ pool(W φ(pad(R{X})) + [V | v_b][φ(pad(X)); 1ᵀ]) with the forward
    pass's argmax (into RZ_out if given); RX None means R{X} = 0 (the first layer)."""
    dtype = np.asarray(Wa).dtype
    sz, n_, nt_, xp_a, phi_a, S_a = _prepare(g, np.asarray(X), tile, ws, dtype)
    _check(np.asarray(Wa), (sz["out_c"], sz["fan_in"] + 1), dtype, "[W | b]")
    _check(np.asarray(Va), (sz["out_c"], sz["fan_in"] + 1), dtype, "[V | v_b]")
    _check_idx(idx, sz)
    cdef int n = n_, nt = nt_
    shape = (n, sz["out_c"], sz["out_h"], sz["out_w"])
    _check(np.asarray(Z), shape, dtype, "Z")
    _check(np.asarray(am), shape, np.int32, "argmax")
    cdef bint has_rx = RX is not None
    if has_rx:
        _check(np.asarray(RX), np.asarray(X).shape, dtype, "RX")
    RZ_a = _output(RZ_out, shape, dtype, "RZ_out")
    cdef floating[:, :, :, ::1] RZ = RZ_a
    cdef floating[:, ::1] xp = xp_a, phi = phi_a, S = S_a
    cdef Geom G = sz
    cdef int t, tid, i, i0, tn, nT = _n_tiles(n, G.tile), bad = 0
    cdef int64_t row = <int64_t>G.tile * G.P, zpl = <int64_t>G.out_c * G.Po
    cdef bint fused = _fuses(sz, dtype), wino = False
    cdef const float[:, ::1] Vt, Wt
    cdef floating[:, ::1] rxp
    cdef const float[::1] U
    cdef float[:, ::1] wscr
    if fused:
        Vt, Wt = _transposed(Va), _transposed(Wa)
        rxp = _buffer(ws, "rxp", nt, sz["C"] * sz["Hp"] * sz["Wp"], dtype)
        U_a, wscr_a = _winograd_setup(sz, ws, nt, Vt, Wt if has_rx else None)
        wino = U_a is not None
        if wino:
            U, wscr = U_a, wscr_a
    if n == 0:
        return RZ_a
    with nogil:
        for t in prange(nT, num_threads=nt, schedule="static", chunksize=1):
            tid = threadid()
            i0 = t * G.tile
            tn = min(G.tile, n - i0)
            if not _tile_argmax_ok(&am[0, 0, 0, 0], zpl, i0, tn, G.P):
                bad += 1
                continue
            if floating is float:
                if fused and _tile_argmax_in_windows(&am[0, 0, 0, 0], G, i0, tn):
                    for i in range(tn):
                        if wino:
                            ncnn_conv_pool2_wino_f32(
                                &X[i0 + i, 0, 0, 0], &RX[i0 + i, 0, 0, 0] if has_rx else NULL,
                                <int64_t>G.H * G.W, G.C, G.H, G.W, G.pad, G.Wp, &U[0], &Vt[G.fan_in, 0], G.out_c,
                                &RZ[i0 + i, 0, 0, 0], <ncnn_index *>&am[i0 + i, 0, 0, 0], &Z[i0 + i, 0, 0, 0],
                                G.Po, G.out_h, G.out_w, 0, 1, &wscr[tid, 0])
                            continue
                        ncnn_conv_gather2_avx2_f32(
                            _padded_f32(&X[0, 0, 0, 0], G, i0 + i, &xp[tid, 0]),
                            _padded_f32(&RX[0, 0, 0, 0], G, i0 + i, &rxp[tid, 0]) if has_rx else NULL,
                            <int64_t>G.Hp * G.Wp, G.C, G.Wp, G.kernel, &Vt[0, 0], &Wt[0, 0], G.out_c,
                            &am[i0 + i, 0, 0, 0], &Z[i0 + i, 0, 0, 0], &RZ[i0 + i, 0, 0, 0], G.Po,
                            G.out_h, G.out_w)
                    continue
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
    _require(bad == 0, "argmax offsets out of range")
    return RZ_a


def jacobian_jvp(g, const floating[:, :, :, ::1] X, const floating[:, :, :, ::1] J,
                 const ncnn_index[:, :, :, ::1] am, const floating[:, ::1] Va,
                 const ncnn_index[:, ::1] idx, int tile, ws, floating[:, ::1] out):
    """out[i, k] += Σ_{c,o} J[i, k, c, o] ([V | v_b][φ(pad(X_i)); 1ᵀ])[c, am[i, c, o]] (stored Jacobian)."""
    dtype = np.asarray(Va).dtype
    sz, n_, nt_, xp_a, phi_a, S_a = _prepare(g, np.asarray(X), tile, ws, dtype)
    _check(np.asarray(Va), (sz["out_c"], sz["fan_in"] + 1), dtype, "[V | v_b]")
    _check_idx(idx, sz)
    cdef int n = n_, nt = nt_
    cdef int K = _cint("out.shape[1]", out.shape[1])
    _check(np.asarray(J), (n, K, sz["out_c"], sz["Po"]), dtype, "J")
    _check(np.asarray(am), (n, sz["out_c"], sz["out_h"], sz["out_w"]), np.int32, "argmax")
    _check(np.asarray(out), (n, K), dtype, "out")
    cdef floating[:, ::1] xp = xp_a, phi = phi_a, S = S_a
    cdef floating[:, ::1] scratch = _buffer(ws, "jac", nt, sz["out_c"] * sz["Po"], dtype)
    cdef Geom G = sz
    cdef int t, tid, i, i0, tn, nT = _n_tiles(n, G.tile), bad = 0
    cdef int64_t row = <int64_t>G.tile * G.P, zpl = <int64_t>G.out_c * G.Po
    cdef bint fused = _fuses(sz, dtype), wino = False
    cdef const float[:, ::1] Vt
    cdef const float[::1] U
    cdef float[:, ::1] wscr
    if fused:
        Vt = _transposed(Va)
        U_a, wscr_a = _winograd_setup(sz, ws, nt, Vt)
        wino = U_a is not None
        if wino:
            U, wscr = U_a, wscr_a
    if n == 0 or K == 0:
        return
    with nogil:
        for t in prange(nT, num_threads=nt, schedule="static", chunksize=1):
            tid = threadid()
            i0 = t * G.tile
            tn = min(G.tile, n - i0)
            if not _tile_argmax_ok(&am[0, 0, 0, 0], zpl, i0, tn, G.P):
                bad += 1
                continue
            if floating is float:
                if fused and _tile_argmax_in_windows(&am[0, 0, 0, 0], G, i0, tn):
                    for i in range(tn):
                        if wino:
                            ncnn_conv_pool2_wino_f32(
                                &X[i0 + i, 0, 0, 0], NULL, <int64_t>G.H * G.W, G.C, G.H, G.W, G.pad, G.Wp,
                                &U[0], &Vt[G.fan_in, 0], G.out_c,
                                &scratch[tid, 0], <ncnn_index *>&am[i0 + i, 0, 0, 0], NULL, G.Po,
                                G.out_h, G.out_w, 0, 1, &wscr[tid, 0])
                        else:
                            ncnn_conv_gather2_avx2_f32(
                                _padded_f32(&X[0, 0, 0, 0], G, i0 + i, &xp[tid, 0]), NULL,
                                <int64_t>G.Hp * G.Wp, G.C, G.Wp, G.kernel, &Vt[0, 0], NULL, G.out_c,
                                &am[i0 + i, 0, 0, 0], NULL, &scratch[tid, 0], G.Po, G.out_h, G.out_w)
                        ncnn_jac_contract_f32(&J[i0 + i, 0, 0, 0], &scratch[tid, 0], &out[i0 + i, 0], K, zpl)
                    continue
            _build_phi(&X[0, 0, 0, 0], G, i0, tn, &xp[tid, 0], &phi[tid, 0], &idx[0, 0])
            _affine(&Va[0, 0], G.fan_in + 1, &phi[tid, 0], G, tn, &S[tid, 0], 0)
            for i in range(tn):
                if floating is float:
                    ncnn_jac_jvp_f32(&J[i0 + i, 0, 0, 0], &S[tid, 0] + <int64_t>i * G.P, row,
                                     &am[0, 0, 0, 0] + (i0 + i) * zpl, G.Po, &out[i0 + i, 0], &scratch[tid, 0], K, G.out_c, G.Po)
                else:
                    ncnn_jac_jvp_f64(&J[i0 + i, 0, 0, 0], &S[tid, 0] + <int64_t>i * G.P, row,
                                     &am[0, 0, 0, 0] + (i0 + i) * zpl, G.Po, &out[i0 + i, 0], &scratch[tid, 0], K, G.out_c, G.Po)
    _require(bad == 0, "argmax offsets out of range")


def jacobian_vjp(g, const floating[:, :, :, ::1] X, const floating[:, :, :, ::1] J,
                 const ncnn_index[:, :, :, ::1] am, const floating[:, ::1] U,
                 const ncnn_index[:, ::1] idx, int tile, ws, floating[:, ::1] gWa):
    """[gW | gb] += Σ_i U^{m,i} [φ(pad(X_i)); 1ᵀ]ᵀ with U^{m,i} = Σ_k U[i, k] ∂z_k/∂S^m."""
    dtype = np.asarray(gWa).dtype
    sz, n_, nt_, xp_a, phi_a, S_a = _prepare(g, np.asarray(X), tile, ws, dtype)
    _check_idx(idx, sz)
    cdef int n = n_, nt = nt_
    cdef int K = _cint("U.shape[1]", U.shape[1])
    _check(np.asarray(J), (n, K, sz["out_c"], sz["Po"]), dtype, "J")
    _check(np.asarray(am), (n, sz["out_c"], sz["out_h"], sz["out_w"]), np.int32, "argmax")
    _check(np.asarray(U), (n, K), dtype, "U")
    gW_t, gscr_a = _thread_grads(sz, ws, nt, dtype, gWa)
    cdef floating[:, ::1] gWt = gW_t, gscr = gscr_a
    cdef bint native = _native_weight_grad(dtype)
    cdef floating[:, ::1] xp = xp_a, phi = phi_a, S = S_a
    cdef floating[:, ::1] scratch = _buffer(ws, "jac", nt, sz["out_c"] * sz["Po"], dtype)
    cdef Geom G = sz
    cdef int t, tid, i, i0, tn, nT = _n_tiles(n, G.tile), bad = 0
    cdef int64_t row = <int64_t>G.tile * G.P, zpl = <int64_t>G.out_c * G.Po
    cdef bint sparse = _fuses(sz, dtype, "C")
    cdef float[:, ::1] dbuf, gk, gkb
    if sparse:
        dbuf, gk_a, gkb_a = _sparse_buffers(sz, ws, nt, dtype, True)
        gk, gkb = gk_a, gkb_a
    if n == 0 or K == 0:
        return
    with nogil:
        for t in prange(nT, num_threads=nt, schedule="static", chunksize=1):
            tid = threadid()
            i0 = t * G.tile
            tn = min(G.tile, n - i0)
            if not _tile_argmax_ok(&am[0, 0, 0, 0], zpl, i0, tn, G.P):
                bad += 1
                continue
            if floating is float:
                if sparse and _tile_argmax_in_windows(&am[0, 0, 0, 0], G, i0, tn):
                    # U^{m,i} at the pooled positions, then only its nonzero entries
                    for i in range(tn):
                        ncnn_jac_combine_f32(&J[i0 + i, 0, 0, 0], &U[i0 + i, 0], &scratch[tid, 0], K, zpl)
                        ncnn_conv_wgrad_avx2_f32(&scratch[tid, 0], NULL, &am[i0 + i, 0, 0, 0], G.Po, G.out_c,
                                                 G.Po, G.conv_w, &X[i0 + i, 0, 0, 0], <int64_t>G.H * G.W, G.C,
                                                 G.H, G.W, G.pad, G.kernel, G.Hp, G.Wp, &dbuf[tid, 0],
                                                 &gk[tid, 0], &gkb[tid, 0])
                    continue
            for i in range(tn):
                if floating is float:
                    ncnn_jac_vjp_f32(&J[i0 + i, 0, 0, 0], &U[i0 + i, 0], &am[0, 0, 0, 0] + (i0 + i) * zpl, G.Po,
                                     &S[tid, 0] + <int64_t>i * G.P, row, &scratch[tid, 0], K, G.out_c, G.P, G.Po)
                else:
                    ncnn_jac_vjp_f64(&J[i0 + i, 0, 0, 0], &U[i0 + i, 0], &am[0, 0, 0, 0] + (i0 + i) * zpl, G.Po,
                                     &S[tid, 0] + <int64_t>i * G.P, row, &scratch[tid, 0], K, G.out_c, G.P, G.Po)
            _build_phi(&X[0, 0, 0, 0], G, i0, tn, &xp[tid, 0], &phi[tid, 0], &idx[0, 0])
            _weight_grad(&S[tid, 0], &phi[tid, 0], G, tn, &gWt[tid, 0], &gscr[tid, 0], native)
    _require(bad == 0, "argmax offsets out of range")
    _reduce_threads(gW_t, nt, gWa, native)
    if sparse:
        _add_by_tap(gk_a, gkb_a, nt, gWa, sz)


def jacobian_deltas(g, const float[:, :, :, ::1] J, const ncnn_index[:, :, :, ::1] am,
                    const float[:, ::1] Wa, const float[:, :, :, ::1] X, int tile, ws,
                    float[:, :, :, ::1] J_in):
    """The stored-Jacobian block of the layer below conv layer g, for all K output seeds at
    once: J_in[i, k] = ∂z_k/∂X_i (X the layer's input, a pooled map of the layer below),
    zero where X_i <= 0, from J[i, k] = ∂z_k/∂S^m at the pooled positions (argmax ``am``).

    The sparse float32 kernel (``ncnn_conv_delta_seeds``) sorts each instance's entries
    once for all seeds. Returns False, having written nothing, where it does not apply
    (the caller then propagates one seed at a time), True when J_in is done."""
    n_ = _cint("the number of instances", X.shape[0])
    sz = _sizes(g, tile, n_)
    cdef int n = n_
    cdef int K = _cint("J.shape[1]", J.shape[1])
    _check(np.asarray(X), (n, sz["C"], sz["H"], sz["W"]), np.float32, "layer input")
    _check(np.asarray(J), (n, K, sz["out_c"], sz["Po"]), np.float32, "J")
    _check(np.asarray(am), (n, sz["out_c"], sz["out_h"], sz["out_w"]), np.int32, "argmax")
    _check(np.asarray(Wa), (sz["out_c"], sz["fan_in"] + 1), np.float32, "[W | b]")
    _check(np.asarray(J_in), (n, K, sz["C"], sz["H"] * sz["W"]), np.float32, "J_in")
    cdef Geom G = sz
    if not _fuses(sz, np.float32, "C") or K == 0:
        return False
    # every offset one of its window's four: then every one is inside the conv plane
    if n and not ncnn_pool2_argmax_in_windows(&am[0, 0, 0, 0], <int64_t>n * G.out_c, G.out_h, G.out_w):
        return False
    cdef int nt = max(1, min(get_num_threads(), n))
    cdef float[:, ::1] scratch = _buffer(ws, "seeds", nt, ncnn_conv_seeds_scratch(G.P, G.out_c, G.Po, K),
                                         np.float32)
    cdef const float[:, ::1] Wk = _by_tap(Wa, sz)
    cdef int64_t zpl = <int64_t>G.out_c * G.Po, xpl = <int64_t>G.C * G.H * G.W
    cdef int i
    with nogil:
        for i in prange(n, num_threads=nt, schedule="static"):
            ncnn_conv_delta_seeds_avx2_f32(&J[i, 0, 0, 0], zpl, K, &am[i, 0, 0, 0], G.Po, G.out_c, G.Po,
                                           G.conv_h, G.conv_w, &Wk[0, 0], G.C, G.kernel,
                                           &scratch[threadid(), 0], &J_in[i, 0, 0, 0], xpl,
                                           <int64_t>G.H * G.W, G.H, G.W, G.pad, &X[i, 0, 0, 0])
    return True
