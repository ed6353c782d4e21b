"""Tests for the fused float32 conv + pool kernels (src_c/conv_avx2.c): the forward pass
against a float64 oracle, the R-operator and stored-Jacobian products against the GEMM
path and float64, NaN handling, independence of an image's place in the batch, and the
fallback when an argmax is not one of its window's four offsets."""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from newtoncnn import CNN, CNNObjective, Conv, Dense, MaxPool, _kernels, passes
from test_sgemm import FUSED_NET

needs_fused = pytest.mark.skipif(not _kernels.fused_conv_available(),
                                 reason="the fused conv + pool kernels need AVX2 with FMA")

# (input shape, out_c, kernel, padding): out_c covers every channel blocking (8: 1 vector;
# 16: 2; 24: 3; 32: 2 + 2; 40: 3 + 2; 64: 3 + 3 + 2); odd planes leave a row or column
# the pool drops.
LAYERS = [((1, 28, 28), 32, 5, 2), ((3, 11, 13), 8, 3, 1), ((2, 9, 8), 16, 1, 0),
          ((4, 7, 7), 24, 3, 1), ((5, 10, 6), 40, 3, 0), ((32, 14, 14), 64, 3, 1),
          ((64, 7, 7), 64, 3, 1)]


@pytest.fixture
def fused():
    """Runs the test with the fused kernels switched on (restored after)."""
    before = _kernels.set_fused_conv(True)
    yield
    _kernels.set_fused_conv(before)


def _oracle_conv(X, W, b, pad):
    """S (n, out_c, oh, ow) in float64 by sliding windows: Σ W[o, c, p, q] Xp[c, y+p, x+q] + b[o]."""
    Xp = np.pad(X.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = W.shape[-1]
    win = sliding_window_view(Xp, (k, k), axis=(2, 3))     # (n, C, oh, ow, k, k)
    return np.einsum("ncyxpq,ocpq->noyx", win, W.astype(np.float64)) + b[:, None, None]


def _layer(shape, out_c, k, pad, seed=0):
    net = CNN(shape, [Conv(out_c, k, padding=pad), MaxPool(2), Dense(3)], dtype="float32")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((7,) + shape).astype(np.float32)
    theta = net.init_params(random_state=seed)
    theta[:] = rng.standard_normal(theta.size).astype(np.float32) * 0.3
    return net, X, theta


def _conv_forward(net, theta, X):
    g, idx, tile, ws = passes.conv_args(net, 0)
    return _kernels.forward(g, X, np.ascontiguousarray(net.layout.augmented(theta, 0)), idx, tile, ws)


@needs_fused
@pytest.mark.parametrize("layer", LAYERS, ids=str)
def test_fused_forward_matches_float64_oracle(layer, fused):
    net, X, theta = _layer(*layer)
    Z, am = _conv_forward(net, theta, X)
    W, b = net.layout.layer(theta, 0)
    S = _oracle_conv(X, W.reshape(layer[1], layer[0][0], layer[2], layer[2]), b, layer[3])
    n, out_c, out_h, out_w = Z.shape
    S = S[:, :, :2 * out_h, :2 * out_w]                    # the plane the pool reads
    windows = S.reshape(n, out_c, out_h, 2, out_w, 2).transpose(0, 1, 2, 4, 3, 5)
    z_oracle = np.maximum(windows.max(axis=(4, 5)), 0)
    scale = np.abs(S).max()
    np.testing.assert_allclose(Z, z_oracle, rtol=0, atol=2e-6 * scale)
    # the argmax is a window's maximum of the exact S (ties within rounding are allowed)
    # and lies in its window
    flat = S.reshape(n, out_c, -1)
    picked = np.take_along_axis(flat, am.reshape(n, out_c, -1), axis=2).reshape(Z.shape)
    np.testing.assert_allclose(picked, windows.max(axis=(4, 5)), rtol=0, atol=2e-6 * scale)
    y, x = np.divmod(am, 2 * out_w)
    assert (y // 2 == np.arange(out_h)[:, None]).all() and (x // 2 == np.arange(out_w)).all()


@needs_fused
def test_fused_forward_differs_from_the_gemm_path_only_by_rounding():
    # the switch really changes the kernels (sums in another order), and only by rounding
    net, X, theta = _layer((32, 14, 14), 64, 3, 1)
    before = _kernels.set_fused_conv(True)
    try:
        Z1, am1 = _conv_forward(net, theta, X)
        _kernels.set_fused_conv(False)
        Z0, am0 = _conv_forward(net, theta, X)
    finally:
        _kernels.set_fused_conv(before)
    assert not np.array_equal(Z1, Z0)
    np.testing.assert_allclose(Z1, Z0, rtol=0, atol=1e-5 * np.abs(Z0).max())
    assert (am1 == am0).mean() > 0.99


@needs_fused
def test_fused_forward_propagates_nan_like_the_pool(fused):
    net, X, theta = _layer((3, 11, 13), 8, 3, 1)
    X[2, 1, 4, 5] = np.nan
    Z1, _ = _conv_forward(net, theta, X)
    _kernels.set_fused_conv(False)
    Z0, _ = _conv_forward(net, theta, X)
    np.testing.assert_array_equal(np.isnan(Z1), np.isnan(Z0))
    assert np.isnan(Z1[2]).any() and not np.isnan(np.delete(Z1, 2, axis=0)).any()




@needs_fused
def test_fused_kernels_run_in_both_gauss_newton_products(fused):
    # test_sgemm checks every pass of FUSED_NET against float64; here, that the fused
    # gather really runs in the products: the GEMM path sums in another order
    net = CNN(*FUSED_NET, dtype="float32")
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40,) + FUSED_NET[0]).astype(np.float32)
    obj = CNNObjective(net, X, rng.integers(0, 5, 40), C=0.5)
    theta = net.init_params(random_state=4)
    v = rng.standard_normal(net.n_params).astype(np.float32)
    for mode in ["jacobian", "rop"]:
        fast = obj.gauss_newton(theta, mode=mode) @ v
        _kernels.set_fused_conv(False)
        slow = obj.gauss_newton(theta, mode=mode) @ v
        _kernels.set_fused_conv(True)
        assert not np.array_equal(fast, slow), mode
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-5 * np.abs(slow).max())


@needs_fused
def test_fused_outputs_do_not_depend_on_an_images_place_in_the_batch(fused):
    # every image runs the same sequence of multiply-adds: a shuffled batch gives the
    # shuffled feature maps and R-operator maps bit for bit
    net = CNN(*FUSED_NET, dtype="float32")
    rng = np.random.default_rng(6)
    X = rng.standard_normal((37,) + FUSED_NET[0]).astype(np.float32)
    theta = net.init_params(random_state=2)
    v = rng.standard_normal(net.n_params).astype(np.float32)
    perm = rng.permutation(len(X))
    a, b = passes.forward(net, theta, X), passes.forward(net, theta, X[perm])
    for za, zb in zip(a.Z, b.Z):
        np.testing.assert_array_equal(za[perm], zb)
    ra, rb = passes.rop(net, theta, a, v), passes.rop(net, theta, b, v)
    np.testing.assert_array_equal(ra[perm], rb)


def _rop_layer(net, theta, X, V, am, Z):
    g, idx, tile, ws = passes.conv_args(net, 0)
    Wa = np.ascontiguousarray(net.layout.augmented(theta, 0))
    return _kernels.rop(g, X, None, Z, am, Wa, V, idx, tile, ws)


@needs_fused
def test_fused_rop_falls_back_when_an_argmax_is_outside_its_window(fused):
    # the fused gather needs each offset to be one of its window's four; another offset
    # inside the plane takes the general path and gathers S there
    net, X, theta = _layer((3, 11, 13), 8, 3, 1)
    Z, am = _conv_forward(net, theta, X)
    V = np.random.default_rng(1).standard_normal(
        net.layout.augmented(theta, 0).shape).astype(np.float32)
    odd = am.copy()
    odd[3, 2, 1, 1] = 0                                   # pixel (0, 0): another window's
    Z = np.abs(Z) + 1                                     # mask keeps every entry
    got = _rop_layer(net, theta, X, V, odd, Z)
    S = _oracle_conv(X, V[:, :-1].reshape(8, 3, 3, 3), V[:, -1], 1)
    n, out_c, out_h, out_w = Z.shape
    S = S[:, :, :2 * out_h, :2 * out_w].reshape(n, out_c, -1)
    want = np.take_along_axis(S, odd.reshape(n, out_c, -1), axis=2).reshape(Z.shape)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(S).max())
    assert got[3, 2, 1, 1] == pytest.approx(S[3, 2, 0], abs=2e-6 * np.abs(S).max())
