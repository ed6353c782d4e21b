"""Tests for the fused float32 conv + pool kernels (src_c/conv_avx2.c): the forward pass
against a float64 oracle, the R-operator and stored-Jacobian products against the GEMM
path and float64, NaN handling, independence of an image's place in the batch, and the
fallback when an argmax is not one of its window's four offsets."""
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from newtoncnn import CNN, CNNObjective, Conv, Dense, MaxPool, _kernels, passes
from newtoncnn.layers import ConvGeometry
from test_sgemm import FUSED_NET

needs_fused = pytest.mark.skipif(not _kernels.fused_conv_available(),
                                 reason="the fused conv + pool kernels need AVX2 with FMA")

# (input shape, out_c, kernel, padding): out_c covers every channel blocking (8: 1 vector;
# 16: 2; 24: 3; 32: 2 + 2; 40: 3 + 2; 64: 3 + 3 + 2); odd planes leave a row or column
# the pool drops; (1, 28, 28) and (2, 20, 37) take the window-lanes variant (see below).
LAYERS = [((1, 28, 28), 32, 5, 2), ((3, 11, 13), 8, 3, 1), ((2, 9, 8), 16, 1, 0),
          ((2, 20, 37), 16, 3, 1), ((4, 7, 7), 24, 3, 1), ((5, 10, 6), 40, 3, 0),
          ((32, 14, 14), 64, 3, 1), ((64, 7, 7), 64, 3, 1)]


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
    # every image runs the same sequence of multiply-adds in the fused kernels: a shuffled
    # batch gives the shuffled feature maps and R-operator maps of the conv layers bit for
    # bit (the dense layers are BLAS's: OpenBLAS's AVX-512 sgemm sums an edge row of the
    # batch in another order, so J v itself only agrees to rounding there)
    net = CNN(*FUSED_NET, dtype="float32")
    rng = np.random.default_rng(6)
    X = rng.standard_normal((37,) + FUSED_NET[0]).astype(np.float32)
    theta = net.init_params(random_state=2)
    v = rng.standard_normal(net.n_params).astype(np.float32)
    perm = rng.permutation(len(X))
    a, b = passes.forward(net, theta, X), passes.forward(net, theta, X[perm])
    for za, zb in zip(a.Z, b.Z):
        np.testing.assert_array_equal(za[perm], zb)
    for ra, rb in zip(_conv_rop_maps(net, theta, a, v), _conv_rop_maps(net, theta, b, v)):
        np.testing.assert_array_equal(ra[perm], rb)
    ra, rb = passes.rop(net, theta, a, v), passes.rop(net, theta, b, v)
    np.testing.assert_allclose(ra[perm], rb, rtol=0, atol=1e-6 * np.abs(rb).max())


def _conv_rop_maps(net, theta, cache, v):
    """R{Z} of every conv layer, layer by layer through _kernels.rop (as passes.rop)."""
    maps, RZ = [], None
    for m, g in enumerate(net.geometry):
        if not isinstance(g, ConvGeometry):
            break
        g, idx, tile, ws = passes.conv_args(net, m)
        RZ = _kernels.rop(g, cache.conv_input(m), RZ, cache.Z[m], cache.argmax[m],
                          net.layout.augmented(theta, m), net.layout.augmented(v, m),
                          idx, tile, ws)
        maps.append(RZ.copy())
    assert len(maps) == 3
    return maps


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


# conv layers whose input channels fill vectors: the backward pass visits only the nonzero
# pooled deltas (ncnn_conv_delta / ncnn_conv_wgrad)
SPARSE_LAYERS = [((32, 14, 14), 64, 3, 1), ((64, 7, 7), 64, 3, 1), ((8, 9, 11), 16, 3, 1),
                 ((16, 6, 6), 8, 5, 2), ((24, 8, 5), 40, 1, 0)]


def _backward(net, theta, X, dZ, Z, am, want_grad=True):
    """(∂/∂X, [gW | gb]) of conv layer 0 from the pooled deltas dZ (masked by Z > 0)."""
    g, idx, tile, ws = passes.conv_args(net, 0)
    Wa = np.ascontiguousarray(net.layout.augmented(theta, 0))
    gWa = np.zeros_like(Wa) if want_grad else None
    dX = _kernels.backward(g, X, dZ, Z, am, Wa, idx, tile, ws, gWa, input_delta=True)
    return dX, gWa


def _sparse_problem(layer, seed=0):
    net, X, theta = _layer(*layer, seed=seed)
    net64 = CNN(net.input_shape, [Conv(layer[1], layer[2], padding=layer[3]), MaxPool(2), Dense(3)],
                dtype="float64")
    theta64 = theta.astype(np.float64)
    Z, am = _conv_forward(net64, theta64, X.astype(np.float64))
    dZ = np.random.default_rng(seed + 1).standard_normal(Z.shape)
    return net, net64, X, theta, theta64, Z, am, dZ


@needs_fused
@pytest.mark.parametrize("layer", SPARSE_LAYERS, ids=str)
@pytest.mark.parametrize("masked", [True, False])
def test_sparse_backward_matches_float64(layer, masked, fused):
    net, net64, X, theta, theta64, Z, am, dZ = _sparse_problem(layer)
    mask64 = Z if masked else None
    dX64, g64 = _backward(net64, theta64, X.astype(np.float64), dZ, mask64, am)
    mask32 = Z.astype(np.float32) if masked else None
    dX32, g32 = _backward(net, theta, X, dZ.astype(np.float32), mask32, am)
    np.testing.assert_allclose(dX32, dX64, rtol=0, atol=2e-6 * np.abs(dX64).max())
    np.testing.assert_allclose(g32, g64, rtol=0, atol=2e-6 * np.abs(g64).max())
    _kernels.set_fused_conv(False)                       # the GEMM path sums in another order:
    dX0, g0 = _backward(net, theta, X, dZ.astype(np.float32), mask32, am)
    assert not np.array_equal(dX0, dX32) and not np.array_equal(g0, g32)   # so it ran


@needs_fused
def test_sparse_backward_is_the_adjoint_of_the_fused_rop(fused):
    # <R{Z}, dZ> = <RX, ∂/∂X> + <V, [gW | gb]> for the layer's J: both sides in float32,
    # from the fused R-operator and the sparse backward
    layer = ((32, 14, 14), 64, 3, 1)
    net, X, theta = _layer(*layer)
    Z, am = _conv_forward(net, theta, X)
    rng = np.random.default_rng(5)
    RX = rng.standard_normal(X.shape).astype(np.float32)
    V = rng.standard_normal(net.layout.augmented(theta, 0).shape).astype(np.float32)
    dZ = rng.standard_normal(Z.shape).astype(np.float32)
    g, idx, tile, ws = passes.conv_args(net, 0)
    Wa = np.ascontiguousarray(net.layout.augmented(theta, 0))
    RZ = _kernels.rop(g, X, RX, Z, am, Wa, V, idx, tile, ws)
    dX, gWa = _backward(net, theta, X, dZ, Z, am)
    lhs = np.dot(RZ.ravel().astype(np.float64), dZ.ravel())
    rhs = np.dot(RX.ravel().astype(np.float64), dX.ravel()) + np.dot(V.ravel().astype(np.float64), gWa.ravel())
    assert lhs == pytest.approx(rhs, rel=1e-5)


@needs_fused
def test_sparse_backward_propagates_nan_like_the_gemm_path(fused):
    net, _, X, theta, _, Z, am, dZ = _sparse_problem(((8, 9, 11), 16, 3, 1))
    dZ = dZ.astype(np.float32)
    Zp = np.abs(Z).astype(np.float32) + 1                # every entry passes the mask
    dZ[1, 3, 2, 1] = np.nan
    dX1, g1 = _backward(net, theta, X, dZ, Zp, am)
    _kernels.set_fused_conv(False)
    dX0, g0 = _backward(net, theta, X, dZ, Zp, am)
    np.testing.assert_array_equal(np.isnan(dX1), np.isnan(dX0))
    np.testing.assert_array_equal(np.isnan(g1), np.isnan(g0))
    assert np.isnan(dX1[1]).any() and not np.isnan(np.delete(dX1, 1, axis=0)).any()


@needs_fused
def test_sparse_backward_falls_back_when_an_argmax_is_outside_its_window(fused):
    # two windows pointing at one pixel: the pool's adjoint writes (not adds) the later
    # delta there, as the GEMM path does
    net, _, X, theta, _, Z, am, dZ = _sparse_problem(((8, 9, 11), 16, 3, 1))
    odd = am.copy()
    odd[2, 5, 1, 1] = odd[2, 5, 0, 0]
    dZ, Zp = dZ.astype(np.float32), np.abs(Z).astype(np.float32) + 1
    dX1, g1 = _backward(net, theta, X, dZ, Zp, odd)
    _kernels.set_fused_conv(False)
    dX0, g0 = _backward(net, theta, X, dZ, Zp, odd)
    np.testing.assert_array_equal(dX1[2], dX0[2])       # its tile took the GEMM path
    np.testing.assert_allclose(g1, g0, rtol=0, atol=2e-6 * np.abs(g0).max())
    _, good = _backward(net, theta, X, dZ, Zp, am)
    assert np.abs(good - g0).max() > 1e-3 * np.abs(g0).max()   # and the collision mattered


def _seed_deltas_problem(layer, K, seed=0):
    """A layer, its float64 twin, X, θ, the float64 forward's argmax, and K seeds' pooled
    deltas J (n, K, out_c, Po) in float64, zero where ReLU cut (as stored blocks are)."""
    net, net64, X, theta, theta64, Z, am, _ = _sparse_problem(layer, seed)
    n, out_c, out_h, out_w = Z.shape
    J = np.random.default_rng(seed + 2).standard_normal((n, K, out_c, out_h * out_w))
    J *= (Z.reshape(n, 1, out_c, -1) > 0)
    return net, net64, X, theta, theta64, am, J


def _seed_deltas(net, theta, X, J, am):
    """(done, J_in) of _kernels.jacobian_deltas for conv layer 0 (J_in prefilled with 7)."""
    g, _, tile, ws = passes.conv_args(net, 0)
    n, K = J.shape[:2]
    J_in = np.full((n, K, X.shape[1], X.shape[2] * X.shape[3]), 7, dtype=np.float32)
    done = _kernels.jacobian_deltas(g, J.astype(np.float32), am,
                                    np.ascontiguousarray(net.layout.augmented(theta, 0)),
                                    X, tile, ws, J_in)
    return done, J_in


def _one_seed_oracle(net64, theta64, X, J, am):
    """Each seed's ∂/∂X by the float64 GEMM path's backward, zero where X <= 0."""
    n, K, out_c, _ = J.shape
    X64 = X.astype(np.float64)
    out = np.empty((n, K, X.shape[1], X.shape[2] * X.shape[3]))
    for k in range(K):
        dX, _ = _backward(net64, theta64, X64, np.ascontiguousarray(J[:, k].reshape(am.shape)),
                          None, am, want_grad=False)
        out[:, k] = np.where(X64 > 0, dX, 0).reshape(n, X.shape[1], -1)
    return out


@needs_fused
@pytest.mark.parametrize("layer", SPARSE_LAYERS, ids=str)
@pytest.mark.parametrize("K", [1, 5, 7, 10, 13])
def test_jacobian_deltas_of_all_seeds_match_float64(layer, K, fused):
    # K = 7, 10 and 13 split into groups of seeds (4 + 3, 5 + 5, 5 + 4 + 4); input channels
    # 8 and 24 leave a chunk of one vector
    net, net64, X, theta, theta64, am, J = _seed_deltas_problem(layer, K)
    done, J_in = _seed_deltas(net, theta, X, J, am)
    assert done
    oracle = _one_seed_oracle(net64, theta64, X, J, am)
    np.testing.assert_allclose(J_in, oracle, rtol=0, atol=2e-6 * np.abs(oracle).max())
    assert (J_in[np.broadcast_to((X <= 0).reshape(X.shape[0], 1, X.shape[1], -1), J_in.shape)] == 0).all()


@needs_fused
def test_jacobian_deltas_keep_a_nan_to_its_seed_and_instance(fused):
    net, net64, X, theta, theta64, am, J = _seed_deltas_problem(((16, 6, 6), 8, 5, 2), 6)
    i, k, c, o = np.argwhere(J != 0)[17]
    J[i, k, c, o] = np.nan
    _, J_in = _seed_deltas(net, theta, X, J, am)
    oracle = _one_seed_oracle(net64, theta64, X, J, am)
    np.testing.assert_array_equal(np.isnan(J_in), np.isnan(oracle))
    assert np.isnan(J_in[i, k]).any()
    assert not np.isnan(np.delete(J_in[i], k, axis=0)).any() and not np.isnan(np.delete(J_in, i, axis=0)).any()


@needs_fused
@pytest.mark.parametrize("case", ["input channels", "argmax", "off"])
def test_jacobian_deltas_decline_without_writing_where_they_do_not_apply(case, fused):
    layer = ((3, 11, 13), 8, 3, 1) if case == "input channels" else ((8, 9, 11), 16, 3, 1)
    net, _, X, theta, _, am, J = _seed_deltas_problem(layer, 4)
    if case == "argmax":
        am = am.copy()
        am[2, 5, 1, 1] = am[2, 5, 0, 0]
    if case == "off":
        _kernels.set_fused_conv(False)
    done, J_in = _seed_deltas(net, theta, X, J, am)
    assert not done and (J_in == 7).all()


@needs_fused
@pytest.mark.parametrize("use_kernel", [True, False])
def test_stored_jacobian_builds_the_same_blocks_all_seeds_at_once(use_kernel, fused, monkeypatch):
    # the build through the all-seeds kernel against the float64 build (one seed at a time);
    # with the kernel declining, the float32 build takes the one-seed path
    from newtoncnn.jacobian import StoredJacobian
    calls = []
    real = _kernels.jacobian_deltas
    monkeypatch.setattr(_kernels, "jacobian_deltas",
                        lambda *a: calls.append(1) or (real(*a) if use_kernel else False))
    nets = [CNN(*FUSED_NET, dtype=dt) for dt in ("float32", "float64")]
    rng = np.random.default_rng(8)
    X = rng.standard_normal((9,) + FUSED_NET[0])
    theta = nets[0].init_params(random_state=2)
    jac = [StoredJacobian(net, th, passes.forward(net, th, X.astype(net.dtype)))
           for net, th in zip(nets, (theta, theta.astype(np.float64)))]
    assert len(calls) == (2 if use_kernel else 1)          # conv layers 3 -> 2 -> 1, or declined
    for b32, b64 in zip(*(j.blocks for j in jac)):
        np.testing.assert_allclose(b32, b64, rtol=0, atol=1e-5 * np.abs(b64).max())


# first layers: few taps (C k² < 64) and rows of 8 or more pool windows take the variant
# whose lanes are 8 neighbouring windows (rows of 9 and 18 windows end with overlapping vectors)
WINDOW_LAYERS = [((1, 28, 28), 32, 5, 2), ((2, 20, 37), 16, 3, 1), ((1, 17, 19), 8, 5, 2),
                 ((3, 16, 35), 24, 3, 0)]


@pytest.fixture
def window_lanes():
    """Restores the window-lanes switch after the test."""
    before = _kernels._set_window_lanes(True)
    yield
    _kernels._set_window_lanes(before)


def _all_fused_passes(net, theta, X, RX, V, J):
    """Forward (Z, argmax), R-operator with and without RX, and stored-Jacobian jvp of conv
    layer 0."""
    g, idx, tile, ws = passes.conv_args(net, 0)
    Wa = np.ascontiguousarray(net.layout.augmented(theta, 0))
    Z, am = _kernels.forward(g, X, Wa, idx, tile, ws)
    R1 = _kernels.rop(g, X, RX, Z, am, Wa, V, idx, tile, ws)
    R0 = _kernels.rop(g, X, None, Z, am, Wa, V, idx, tile, ws)
    out = np.zeros((X.shape[0], J.shape[1]), dtype=X.dtype)
    _kernels.jacobian_jvp(g, X, J, am, V, idx, tile, ws, out)
    return Z, am, R1, R0, out


@needs_fused
@pytest.mark.parametrize("layer", WINDOW_LAYERS, ids=str)
def test_window_lanes_give_the_channel_lanes_results_bit_for_bit(layer, fused, window_lanes):
    net, X, theta = _layer(*layer)
    g = net.geometry[0]
    assert _kernels._window_lanes_apply(g) and _kernels._window_lanes_apply(g, two_inputs=True)
    rng = np.random.default_rng(4)
    RX = rng.standard_normal(X.shape).astype(np.float32)
    V = rng.standard_normal(net.layout.augmented(theta, 0).shape).astype(np.float32)
    J = rng.standard_normal((X.shape[0], 3, g.out_c, g.out_h * g.out_w)).astype(np.float32)
    window = _all_fused_passes(net, theta, X, RX, V, J)
    _kernels._set_window_lanes(False)
    assert not _kernels._window_lanes_apply(g)
    channel = _all_fused_passes(net, theta, X, RX, V, J)
    for a, b in zip(window, channel):
        np.testing.assert_array_equal(a, b)
    assert (window[1] >= 0).all() and np.abs(window[2]).max() > 0


@needs_fused
@pytest.mark.parametrize("layer", [((32, 14, 14), 64, 3, 1), ((3, 11, 13), 8, 3, 1),
                                   ((8, 20, 20), 16, 3, 1)], ids=str)
def test_window_lanes_leave_layers_with_many_taps_or_narrow_rows(layer):
    net, _, _ = _layer(*layer)
    assert not _kernels._window_lanes_apply(net.geometry[0])


# 3x3 layers with input channels in multiples of 8 use Winograd F(2x2, 3x3), one tile per pool
# window (cropped planes, no padding, 1 to 3 vectors of output channels, 2 chunks of windows)
WINOGRAD_LAYERS = [((32, 14, 14), 64, 3, 1), ((64, 7, 7), 64, 3, 1), ((8, 9, 11), 16, 3, 1),
                   ((16, 12, 10), 40, 3, 0), ((8, 13, 12), 24, 3, 1), ((24, 5, 6), 8, 3, 1)]


@pytest.fixture
def winograd():
    """Restores the Winograd switch after the test."""
    before = _kernels._set_winograd(True)
    yield
    _kernels._set_winograd(before)


@needs_fused
@pytest.mark.parametrize("layer", WINOGRAD_LAYERS, ids=str)
def test_winograd_passes_match_float64(layer, fused, winograd):
    # forward, R-operator with and without R{X}, stored-Jacobian jvp: against the float64
    # GEMM path on the same argmax; and Winograd really ran (it rounds unlike the direct kernel)
    net, X, theta = _layer(*layer)
    g = net.geometry[0]
    Wt = np.ascontiguousarray(net.layout.augmented(theta, 0).T)
    assert _kernels._wino_weights(_kernels._sizes(g, 1, 1), Wt) is not None
    net64 = CNN(net.input_shape, [Conv(layer[1], 3, padding=layer[3]), MaxPool(2), Dense(3)],
                dtype="float64")
    rng = np.random.default_rng(6)
    RX = rng.standard_normal(X.shape).astype(np.float32)
    V = rng.standard_normal(Wt.T.shape).astype(np.float32)
    J = rng.standard_normal((X.shape[0], 3, g.out_c, g.out_h * g.out_w)).astype(np.float32)
    Z, am, R1, R0, jv = _all_fused_passes(net, theta, X, RX, V, J)
    g64, idx64, tile64, ws64 = passes.conv_args(net64, 0)
    Wa64 = net.layout.augmented(theta, 0).astype(np.float64)
    Z64, _ = _kernels.forward(g64, X.astype(np.float64), Wa64, idx64, tile64, ws64)
    args = (X.astype(np.float64), RX.astype(np.float64), Z64, am, Wa64, V.astype(np.float64))
    R1_64 = _kernels.rop(g64, args[0], args[1], *args[2:], idx64, tile64, ws64)
    R0_64 = _kernels.rop(g64, args[0], None, *args[2:], idx64, tile64, ws64)
    jv64 = np.zeros((X.shape[0], 3))
    _kernels.jacobian_jvp(g64, args[0], J.astype(np.float64), am, args[5], idx64, tile64, ws64, jv64)
    for got, want in [(Z, Z64), (R1, R1_64), (R0, R0_64), (jv, jv64)]:
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())
    _kernels._set_winograd(False)
    direct = _all_fused_passes(net, theta, X, RX, V, J)
    assert not any(np.array_equal(a, b) for a, b in zip((Z, R1, R0, jv), (direct[0],) + direct[2:]))


@needs_fused
@pytest.mark.parametrize("layer", [((32, 14, 14), 64, 5, 2), ((4, 7, 7), 24, 3, 1),
                                   ((12, 8, 8), 16, 3, 1)], ids=str)
def test_winograd_leaves_other_kernels_and_channel_counts(layer):
    net, _, theta = _layer(*layer)
    Wt = np.ascontiguousarray(net.layout.augmented(theta, 0).T)
    assert _kernels._wino_weights(_kernels._sizes(net.geometry[0], 1, 1), Wt) is None


@needs_fused
@pytest.mark.parametrize("switch, layer", [(_kernels._set_window_lanes, ((1, 17, 19), 8, 5, 2)),
                                           (_kernels._set_winograd, ((8, 9, 11), 16, 3, 1))],
                         ids=["window lanes", "winograd"])
def test_kernel_variants_propagate_nan_like_the_direct_kernel(switch, layer, fused, window_lanes,
                                                              winograd):
    # a NaN input pixel makes NaN every pooled output whose window's conv pixels read it: the
    # window lanes bit for bit; Winograd's transforms spread it over a window's 4 pixels,
    # which the pool does too
    net, X, theta = _layer(*layer)
    X[2, 0, 5, 6] = np.nan
    Z1, a1 = _conv_forward(net, theta, X)
    switch(False)
    Z0, a0 = _conv_forward(net, theta, X)
    np.testing.assert_array_equal(np.isnan(Z1), np.isnan(Z0))
    if switch is _kernels._set_window_lanes:
        np.testing.assert_array_equal(Z1, Z0)
        np.testing.assert_array_equal(a1, a0)
    assert np.isnan(Z1[2]).any() and not np.isnan(np.delete(Z1, 2, axis=0)).any()
