"""Tests for newtoncnn's own float32 GEMM (src_c/sgemm.c) against float64 NumPy, and for
the conv passes run with it against float64 (and against the BLAS engine)."""
import numpy as np
import pytest

from newtoncnn import CNN, CNNObjective, Conv, Dense, MaxPool, _kernels

needs_native = pytest.mark.skipif(not _kernels.native_sgemm_available(),
                                  reason="the native float32 GEMM needs AVX-512F or AVX2 with FMA")

# Edges of every register block (AVX-512: 6, 8, 12 rows, 16-64 columns; AVX2: 4, 6, 8
# rows, 8-24 columns) and of the K chunks (128).
SHAPES = [(1, 1, 1), (5, 7, 3), (6, 64, 128), (8, 48, 129), (12, 32, 255), (13, 17, 300),
          (27, 33, 9), (32, 800, 26), (64, 196, 289), (289, 64, 200), (576, 49, 64),
          (4, 24, 7), (7, 25, 16), (9, 8, 5), (3, 23, 130)]
OPS = [(False, False), (True, False), (False, True)]


def _rel(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


def _operands(rng, M, N, K, trans_a, trans_b):
    A = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    B = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    return A, B


def _reference(A, B, C0, trans_a, trans_b, beta):
    a = A.T if trans_a else A
    b = B.T if trans_b else B
    return a.astype(np.float64) @ b.astype(np.float64) + beta * C0.astype(np.float64)


@needs_native
@pytest.mark.parametrize("trans_a,trans_b", OPS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("beta", [0.0, 1.0, -0.5])
def test_native_sgemm_matches_float64(shape, trans_a, trans_b, beta):
    M, N, K = shape
    rng = np.random.default_rng(sum(shape))
    A, B = _operands(rng, M, N, K, trans_a, trans_b)
    C = rng.standard_normal((M, N)).astype(np.float32)
    expected = _reference(A, B, C, trans_a, trans_b, beta)
    _kernels.native_sgemm(A, B, C, trans_a=trans_a, trans_b=trans_b, beta=beta)
    # float32: K + 1 rounded terms per entry, ~6e-8 each, relative to the largest entry
    assert _rel(C, expected) < 2e-7 * np.sqrt(K + 1) + 1e-7


@needs_native
@pytest.mark.parametrize("trans_a,trans_b", OPS)
def test_native_sgemm_ignores_c_when_beta_is_zero(trans_a, trans_b):
    rng = np.random.default_rng(1)
    A, B = _operands(rng, 10, 50, 140, trans_a, trans_b)
    C = np.full((10, 50), np.nan, dtype=np.float32)
    _kernels.native_sgemm(A, B, C, trans_a=trans_a, trans_b=trans_b, beta=0.0)
    assert np.isfinite(C).all()
    assert _rel(C, _reference(A, B, np.zeros_like(C), trans_a, trans_b, 0)) < 5e-6


@needs_native
@pytest.mark.parametrize("trans_a,trans_b", OPS)
def test_native_sgemm_reads_and_writes_only_its_rows_and_columns(trans_a, trans_b):
    # row-strided views into bigger arrays: the kernel must respect every stride and
    # leave the rest of C (the guard columns) untouched
    rng = np.random.default_rng(2)
    M, N, K = 9, 37, 131
    A_big, B_big = _operands(rng, M + 3, N + 5, K + 7, trans_a, trans_b)
    A = A_big[:K, :M] if trans_a else A_big[:M, :K]
    B = B_big[:N, :K] if trans_b else B_big[:K, :N]
    C_big = rng.standard_normal((M + 2, N + 11)).astype(np.float32)
    guard = C_big.copy()
    C = C_big[1:M + 1, 3:N + 3]
    expected = _reference(A, B, C, trans_a, trans_b, 1.0)
    _kernels.native_sgemm(A, B, C, trans_a=trans_a, trans_b=trans_b, beta=1.0)
    assert _rel(C, expected) < 5e-6
    mask = np.ones(C_big.shape, bool)
    mask[1:M + 1, 3:N + 3] = False
    np.testing.assert_array_equal(C_big[mask], guard[mask])


@needs_native
def test_native_sgemm_with_empty_sum_scales_c():
    C = np.full((3, 4), 2.0, dtype=np.float32)
    _kernels.native_sgemm(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32), C, beta=0.5)
    np.testing.assert_array_equal(C, 1.0)


@needs_native
def test_native_sgemm_rejects_bad_arguments():
    A = np.zeros((3, 4), np.float32)
    B = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match="shapes do not match"):
        _kernels.native_sgemm(A, B, np.zeros((3, 6), np.float32))
    with pytest.raises(ValueError, match="cannot both be transposed"):
        _kernels.native_sgemm(A, B, np.zeros((3, 5), np.float32), trans_a=True, trans_b=True)
    with pytest.raises(ValueError, match="columns of B must be contiguous"):
        _kernels.native_sgemm(A, np.zeros((4, 10), np.float32)[:, ::2], np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="dtype mismatch|Buffer dtype"):
        _kernels.native_sgemm(A.astype(np.float64), B, np.zeros((3, 5), np.float32))


def test_gemm_engine_switch_is_validated():
    with pytest.raises(ValueError, match="engine must be 'native' or 'blas'"):
        _kernels.set_gemm_engine("mkl")
    before = _kernels.gemm_engine()
    assert _kernels.set_gemm_engine("blas") == before
    assert _kernels.gemm_engine() == "blas"
    _kernels.set_gemm_engine(before)


# Odd channel counts and fan-ins, so the passes hit partial register blocks and K chunks.
ODD_NET = ((3, 11, 10), [Conv(13, 3, padding=1), MaxPool(2), Conv(20, 5, padding=2),
                         Conv(7, 3, stride=2), Dense(5)])


# Every conv layer fuses with its pool (src_c/conv_avx2.c, where the CPU has AVX2): channel
# counts that hit each channel blocking (8: 1 vector; 24: 3; 40: 3 + 2), a three-channel
# input, and planes whose last row or column the pool drops.
FUSED_NET = ((3, 12, 14), [Conv(8, 3, padding=1), MaxPool(2), Conv(24, 5, padding=2), MaxPool(2),
                           Conv(40, 3, padding=1), MaxPool(2), Dense(5)])


@pytest.mark.parametrize("loss", ["squared", "softmax"])
@pytest.mark.parametrize("arch", [ODD_NET, FUSED_NET], ids=["odd", "fused"])
def test_float32_passes_agree_with_float64(loss, arch, gemm_engine):
    net64 = CNN(*arch, loss=loss, dtype="float64")
    net32 = CNN(*arch, loss=loss, dtype="float32")
    rng = np.random.default_rng(3)
    n = 40
    X = rng.standard_normal((n,) + arch[0]).astype(np.float32)
    y = rng.integers(0, 5, n)
    theta = net32.init_params(random_state=4)
    obj32, obj64 = CNNObjective(net32, X, y, C=0.5), CNNObjective(net64, X, y, C=0.5)
    theta64 = theta.astype(np.float64)
    f32, g32 = obj32.fun_grad(theta)
    f64, g64 = obj64.fun_grad(theta64)
    assert g32.dtype == np.float32
    assert abs(f32 - f64) < 1e-5 * abs(f64)
    assert _rel(g32, g64) < 1e-5
    assert _rel(net32.forward(theta, X), net64.forward(theta64, X.astype(np.float64))) < 1e-5
    v = rng.standard_normal(net32.n_params).astype(np.float32)
    for mode in ["jacobian", "rop"]:
        Gv32 = obj32.gauss_newton(theta, mode=mode) @ v
        Gv64 = obj64.gauss_newton(theta64, mode=mode) @ v.astype(np.float64)
        assert _rel(Gv32, Gv64) < 1e-5


def test_vector_pool_gives_the_scalar_results_in_every_pass():
    # the AVX-512 2x2 pool is an exact rewrite: forward, gradient and products are
    # bit-identical with it switched off (where it cannot run, both runs are scalar)
    net = CNN((2, 20, 36), [Conv(5, 3, padding=1), MaxPool(2), Conv(4, 3, padding=1),
                            MaxPool(2), Dense(3)], loss="softmax", dtype="float32")
    rng = np.random.default_rng(5)
    X = rng.standard_normal((30, 2, 20, 36)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    theta = net.init_params(random_state=1)
    obj = CNNObjective(net, X, y, C=0.5)
    v = rng.standard_normal(net.n_params).astype(np.float32)

    def everything():
        f, g = obj.fun_grad(theta)
        return [net.forward(theta, X), np.array([f]), g] + [
            obj.gauss_newton(theta, mode=mode) @ v for mode in ("jacobian", "rop")]

    before = _kernels.set_simd(True)
    try:
        fast = everything()
        _kernels.set_simd(False)
        slow = everything()
    finally:
        _kernels.set_simd(before)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)


@needs_native
def test_native_conv_outputs_do_not_depend_on_an_images_place_in_the_batch():
    # every column of the native GEMM is the same sequence of multiply-adds wherever it
    # sits (OpenBLAS's edge kernels sum in another order), so a shuffled batch gives
    # the shuffled feature maps bit for bit, tiles and row ends included
    from newtoncnn import passes
    net = CNN((1, 28, 28), [Conv(8, 5, padding=2), MaxPool(2), Conv(6, 3, padding=1),
                            MaxPool(2), Dense(3)], dtype="float32")
    rng = np.random.default_rng(6)
    X = rng.standard_normal((37, 1, 28, 28)).astype(np.float32)
    theta = net.init_params(random_state=2)
    perm = rng.permutation(len(X))
    before = _kernels.set_gemm_engine("native")
    try:
        a = passes.forward(net, theta, X)
        b = passes.forward(net, theta, X[perm])
    finally:
        _kernels.set_gemm_engine(before)
    for za, zb in zip(a.Z, b.Z):
        np.testing.assert_array_equal(za[perm], zb)
