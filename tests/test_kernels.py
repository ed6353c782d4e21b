"""Tests for newtoncnn._kernels (the typed wrappers of src_c/) against tests/oracles.py.

Feature maps are CNHW: (channels, instances, height, width). The oracles work
on one (C, H, W) image or one (H, W) plane with explicit loops.
"""
import zlib

import numpy as np
import pytest

from newtoncnn import _kernels

import oracles

DTYPES = [np.float32, np.float64]

# (C, n, H, W, kh, kw, stride, padding): odd sizes, strides 1–3, paddings 0–3, kernels 1–5.
CONV_CASES = [
    (1, 1, 5, 5, 3, 3, 1, 0),
    (2, 3, 7, 5, 3, 3, 2, 1),
    (3, 2, 9, 11, 5, 5, 3, 2),
    (1, 4, 6, 9, 1, 1, 1, 0),
    (2, 2, 5, 7, 5, 5, 1, 3),
    (3, 3, 8, 8, 4, 4, 3, 0),
    (2, 5, 4, 6, 2, 3, 2, 1),
    (1, 2, 3, 3, 5, 5, 2, 1),
    (4, 1, 10, 7, 3, 2, 1, 2),
]

# (C, n, H, W, k): includes odd sizes whose partial windows are dropped.
POOL_CASES = [
    (1, 1, 4, 4, 2),
    (2, 3, 5, 7, 2),
    (3, 2, 9, 8, 3),
    (2, 4, 6, 5, 1),
    (1, 2, 7, 7, 7),
    (2, 3, 11, 10, 4),
]


def _case_id(case):
    return "x".join(str(v) for v in case)


def _rng(*key):
    """A generator seeded from the test's parameters (stable across runs, unlike hash())."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


@pytest.fixture
def restore_threads():
    before = _kernels.get_num_threads()
    yield
    _kernels.set_num_threads(before)


def _random(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _oracle_phi(xp, kh, kw, stride):
    """im2col of a CNHW batch by the per-image oracle, columns instance-major."""
    return np.concatenate([oracles.im2col_one(xp[:, i], kh, kw, stride)
                           for i in range(xp.shape[1])], axis=1)


# ---------------------------------------------------------------- pad / crop
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C,n,H,W,p", [(1, 1, 3, 3, 0), (2, 3, 5, 7, 1), (3, 2, 4, 9, 3),
                                       (1, 5, 1, 1, 2)])
def test_pad_matches_oracle_exactly(dtype, C, n, H, W, p):
    rng = np.random.default_rng(10 + 7 * C + n + p)
    x = _random(rng, (C, n, H, W), dtype)
    xp = _kernels.pad(x, p)
    assert xp.dtype == dtype and xp.shape == (C, n, H + 2 * p, W + 2 * p)
    np.testing.assert_array_equal(xp, oracles.zero_pad(x, p))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C,n,H,W,p", [(1, 1, 3, 3, 0), (2, 3, 5, 7, 1), (3, 2, 4, 9, 3)])
def test_crop_matches_oracle_exactly_and_inverts_pad(dtype, C, n, H, W, p):
    rng = np.random.default_rng(20 + 7 * C + n + p)
    big = _random(rng, (C, n, H + 2 * p, W + 2 * p), dtype)
    np.testing.assert_array_equal(_kernels.crop(big, p), oracles.crop(big, p))
    x = _random(rng, (C, n, H, W), dtype)
    np.testing.assert_array_equal(_kernels.crop(_kernels.pad(x, p), p), x)


@pytest.mark.parametrize("p", [1, 2, 3])
def test_crop_is_the_adjoint_of_pad(p):
    rng = np.random.default_rng(p)
    x = rng.standard_normal((2, 3, 5, 4))
    u = rng.standard_normal((2, 3, 5 + 2 * p, 4 + 2 * p))
    lhs = np.vdot(_kernels.pad(x, p), u)
    rhs = np.vdot(x, _kernels.crop(u, p))
    assert abs(lhs - rhs) <= 1e-12 * max(abs(lhs), 1.0)


def test_pad_writes_into_given_out_and_overwrites_garbage():
    x = np.ones((1, 2, 2, 3))
    out = np.full((1, 2, 4, 5), 7.0)
    res = _kernels.pad(x, 1, out=out)
    assert res is out
    np.testing.assert_array_equal(out, oracles.zero_pad(x, 1))


# ---------------------------------------------------------------- im2col index map
@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_im2col_index_matches_oracle(case):
    C, n, H, W, kh, kw, s, p = case
    Hp, Wp = H + 2 * p, W + 2 * p
    idx = _kernels.im2col_index(kh, kw, s, Hp, Wp)
    assert idx.dtype == _kernels.INDEX_DTYPE
    np.testing.assert_array_equal(idx, oracles.im2col_index_one(kh, kw, s, Hp, Wp))


def test_im2col_index_sizes_use_floor():
    # 8-wide padded plane, kernel 3, stride 2: floor((8 - 3) / 2) + 1 = 3 outputs
    # (the last column is never read)
    idx = _kernels.im2col_index(3, 3, 2, 8, 8)
    assert idx.shape == (9, 9)
    assert idx.max() == (2 * 2 + 2) * 8 + (2 * 2 + 2)  # bottom-right tap of the last patch


@pytest.mark.parametrize("kh,s,Hp,Wp,pool", [(3, 1, 9, 9, 2), (3, 1, 9, 8, 2), (3, 2, 11, 12, 2),
                                             (2, 1, 8, 9, 3), (3, 1, 8, 8, 2), (1, 1, 5, 7, 1)])
def test_im2col_index_with_a_pool_maps_only_the_pixels_the_pool_reads(kh, s, Hp, Wp, pool):
    # the conv passes compute the first (out // pool) * pool rows and columns only
    full = oracles.im2col_index_one(kh, kh, s, Hp, Wp)
    oh, ow = (Hp - kh) // s + 1, (Wp - kh) // s + 1
    uh, uw = oh // pool * pool, ow // pool * pool
    expected = full.reshape(kh * kh, oh, ow)[:, :uh, :uw].reshape(kh * kh, uh * uw)
    np.testing.assert_array_equal(_kernels.im2col_index(kh, kh, s, Hp, Wp, pool=pool), expected)


def test_im2col_index_rejects_a_pool_larger_than_the_conv_output():
    with pytest.raises(ValueError, match="pool 4 larger than the conv output 3x3"):
        _kernels.im2col_index(3, 3, 1, 5, 5, pool=4)
    with pytest.raises(ValueError, match="pool"):
        _kernels.im2col_index(3, 3, 1, 5, 5, pool=0)


# ---------------------------------------------------------------- im2col / col2im
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_im2col_matches_oracle_exactly(dtype, case):
    C, n, H, W, kh, kw, s, p = case
    rng = _rng("im2col", case, np.dtype(dtype).name)
    xp = _random(rng, (C, n, H + 2 * p, W + 2 * p), dtype)
    idx = _kernels.im2col_index(kh, kw, s, xp.shape[2], xp.shape[3])
    phi = _kernels.im2col(xp, idx)
    assert phi.dtype == dtype
    np.testing.assert_array_equal(phi, _oracle_phi(xp, kh, kw, s))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_col2im_matches_oracle_scatter_add(dtype, case):
    C, n, H, W, kh, kw, s, p = case
    Hp, Wp = H + 2 * p, W + 2 * p
    rng = _rng("col2im", case, np.dtype(dtype).name)
    idx = _kernels.im2col_index(kh, kw, s, Hp, Wp)
    P = idx.shape[1]
    phi = _random(rng, (C * kh * kw, n * P), dtype)
    xp = _kernels.col2im(phi, idx, C, Hp, Wp)
    assert xp.dtype == dtype and xp.shape == (C, n, Hp, Wp)
    expected = np.stack([oracles.col2im_one(phi[:, i * P:(i + 1) * P].astype(np.float64),
                                            C, Hp, Wp, kh, kw, s) for i in range(n)], axis=1)
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(xp, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_col2im_is_the_exact_adjoint_of_im2col(case):
    C, n, H, W, kh, kw, s, p = case
    Hp, Wp = H + 2 * p, W + 2 * p
    rng = _rng("adjoint", case)
    idx = _kernels.im2col_index(kh, kw, s, Hp, Wp)
    x = rng.standard_normal((C, n, Hp, Wp))
    u = rng.standard_normal((C * kh * kw, n * idx.shape[1]))
    lhs = np.vdot(_kernels.im2col(x, idx), u)
    rhs = np.vdot(x, _kernels.col2im(u, idx, C, Hp, Wp))
    scale = np.vdot(np.abs(_kernels.im2col(x, idx)), np.abs(u))
    assert abs(lhs - rhs) <= 1e-12 * scale


def test_col2im_overwrites_a_dirty_out_buffer():
    idx = _kernels.im2col_index(3, 3, 1, 5, 5)
    phi = np.ones((9, idx.shape[1]))
    out = np.full((1, 1, 5, 5), np.nan)
    _kernels.col2im(phi, idx, 1, 5, 5, out=out)
    np.testing.assert_array_equal(out[0], oracles.col2im_one(phi, 1, 5, 5, 3, 3, 1))


# ---------------------------------------------------------------- max pool
def _oracle_pool(s, k):
    C, n = s.shape[:2]
    z = np.empty((C, n, s.shape[2] // k, s.shape[3] // k), dtype=s.dtype)
    am = np.empty(z.shape, dtype=np.int64)
    for c in range(C):
        for i in range(n):
            z[c, i], am[c, i] = oracles.maxpool_plane(s[c, i], k)
    return z, am


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=_case_id)
def test_maxpool_matches_oracle_exactly(dtype, case):
    C, n, H, W, k = case
    rng = _rng("pool", case, np.dtype(dtype).name)
    s = _random(rng, (C, n, H, W), dtype)
    z, am = _kernels.maxpool(s, k)
    ez, eam = _oracle_pool(s, k)
    assert z.shape == (C, n, H // k, W // k) and z.dtype == dtype
    assert am.dtype == _kernels.INDEX_DTYPE
    np.testing.assert_array_equal(z, ez)
    np.testing.assert_array_equal(am, eam)


# 2x2 pools have a vector path for float32 (16 windows a step with AVX-512, 8 with
# AVX2, whichever the CPU has): planes wider than one step, rows ending mid-step, odd
# sides, ties and NaN must give the scalar loop's results bit for bit.
POOL2_PLANES = [(2, 2), (28, 28), (14, 14), (7, 7), (3, 65), (5, 34), (6, 33), (9, 96),
                (4, 16), (4, 18), (2, 30)]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("plane", POOL2_PLANES, ids=str)
@pytest.mark.parametrize("values", ["normal", "ties", "nan"])
def test_maxpool2_float32_matches_oracle_and_float64_path(plane, values, relu):
    H, W = plane
    rng = _rng("pool2", plane, values)
    s = rng.standard_normal((3, 2, H, W))
    if values == "ties":
        s = rng.integers(-2, 3, s.shape).astype(float)   # many equal maxima, and zeros
    elif values == "nan":
        s[rng.random(s.shape) < 0.2] = np.nan
    s32 = s.astype(np.float32)
    z, am = _kernels.maxpool(s32, 2, relu=relu)
    z64, am64 = _kernels.maxpool(s32.astype(np.float64), 2, relu=relu)   # the scalar loop
    np.testing.assert_array_equal(am, am64)
    np.testing.assert_array_equal(z, z64.astype(np.float32))
    if values != "nan":
        ez, eam = _oracle_pool(s32, 2)
        np.testing.assert_array_equal(am, eam)
        np.testing.assert_array_equal(z, np.maximum(ez, 0) if relu else ez)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=_case_id)
def test_maxpool_relu_is_pool_of_relu(dtype, case):
    C, n, H, W, k = case
    rng = _rng("poolrelu", case, np.dtype(dtype).name)
    s = _random(rng, (C, n, H, W), dtype)
    s[:, :, :k, :k] = -np.abs(s[:, :, :k, :k]) - 0.1  # the first window of every plane is negative
    z, am = _kernels.maxpool(s, k, relu=True)
    ez, eam = _oracle_pool(s, k)
    np.testing.assert_array_equal(z, np.maximum(ez, 0))
    np.testing.assert_array_equal(am, eam)
    if k > 1:
        assert (z == 0).any(), "test data should exercise the ReLU clamp"


def test_maxpool_ignores_pixels_outside_whole_windows():
    s = np.zeros((1, 1, 5, 5))
    s[0, 0, 4, :] = 100.0  # last row: partial windows only
    s[0, 0, :, 4] = 100.0  # last column
    z, am = _kernels.maxpool(s, 2)
    np.testing.assert_array_equal(z, np.zeros((1, 1, 2, 2)))
    np.testing.assert_array_equal(am[0, 0], [[0, 2], [10, 12]])


def test_maxpool_ties_go_to_first_maximum():
    # all-equal windows: the top-left offset of each window
    s = np.full((1, 1, 4, 6), 3.0)
    z, am = _kernels.maxpool(s, 2)
    np.testing.assert_array_equal(am[0, 0], [[0, 2, 4], [12, 14, 16]])
    np.testing.assert_array_equal(z, np.full((1, 1, 2, 3), 3.0))
    # a tie between the 2nd and 4th positions of a 3x3 window (row-major): the 2nd wins
    s = np.zeros((1, 1, 3, 3))
    s[0, 0, 0, 1] = 5.0
    s[0, 0, 1, 0] = 5.0
    _, am = _kernels.maxpool(s, 3)
    assert am[0, 0, 0, 0] == 1
    # a tie at the same row, later column loses too
    s = np.zeros((1, 1, 3, 3))
    s[0, 0, 2, 0] = 1.0
    s[0, 0, 2, 2] = 1.0
    _, am = _kernels.maxpool(s, 3)
    assert am[0, 0, 0, 0] == 6


def test_maxpool_relu_all_negative_window_keeps_index_of_first_max():
    s = -np.arange(1.0, 5.0).reshape(1, 1, 2, 2)  # -1 is the max, at offset 0
    z, am = _kernels.maxpool(s, 2, relu=True)
    assert z[0, 0, 0, 0] == 0.0 and am[0, 0, 0, 0] == 0


# ---------------------------------------------------------------- pool gather / scatter
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=_case_id)
def test_pool_gather_matches_oracle_exactly(dtype, case):
    C, n, H, W, k = case
    rng = _rng("gather", case, np.dtype(dtype).name)
    _, am = _kernels.maxpool(_random(rng, (C, n, H, W), dtype), k)
    r = _random(rng, (C, n, H, W), dtype)  # gather another map at the same indices
    z = _kernels.pool_gather(r, am)
    expected = np.empty(am.shape, dtype=dtype)
    for c, i, y, x in np.ndindex(*am.shape):
        expected[c, i, y, x] = r[c, i].ravel()[am[c, i, y, x]]
    np.testing.assert_array_equal(z, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=_case_id)
def test_pool_gather_with_mask_zeroes_where_mask_is_not_positive(dtype, case):
    C, n, H, W, k = case
    rng = _rng("gathermask", case, np.dtype(dtype).name)
    s = _random(rng, (C, n, H, W), dtype)
    s[0, 0, :k, :k] = -np.abs(s[0, 0, :k, :k]) - 0.1  # one all-negative window
    last = np.s_[-1, -1, (H // k - 1) * k:(H // k) * k, (W // k - 1) * k:(W // k) * k]
    s[last] = np.abs(s[last]) + 0.1  # and one positive window (the last whole one)
    zs, am = _kernels.maxpool(s, k, relu=True)
    r = _random(rng, (C, n, H, W), dtype)
    z = _kernels.pool_gather(r, am, mask=zs)
    expected = np.empty(am.shape, dtype=dtype)
    for c, i, y, x in np.ndindex(*am.shape):
        expected[c, i, y, x] = r[c, i].ravel()[am[c, i, y, x]] if zs[c, i, y, x] > 0 else 0
    np.testing.assert_array_equal(z, expected)
    assert (zs == 0).any() and (zs > 0).any(), "test data should exercise both branches"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("case", POOL_CASES, ids=_case_id)
def test_pool_scatter_matches_oracle_exactly(dtype, masked, case):
    C, n, H, W, k = case
    rng = _rng("scatter", case, np.dtype(dtype).name, masked)
    zs, am = _kernels.maxpool(_random(rng, (C, n, H, W), dtype), k, relu=True)
    dz = _random(rng, am.shape, dtype)
    ds = _kernels.pool_scatter(dz, am, H, W, z=zs if masked else None)
    expected = np.zeros((C, n, H, W), dtype=dtype)
    for c, i, y, x in np.ndindex(*am.shape):
        keep = zs[c, i, y, x] > 0 if masked else True
        expected[c, i].reshape(-1)[am[c, i, y, x]] = dz[c, i, y, x] if keep else 0
    np.testing.assert_array_equal(ds, expected)


@pytest.mark.parametrize("case", POOL_CASES, ids=_case_id)
def test_pool_scatter_is_the_adjoint_of_pool_gather(case):
    C, n, H, W, k = case
    rng = _rng("pooladj", case)
    _, am = _kernels.maxpool(rng.standard_normal((C, n, H, W)), k)
    s = rng.standard_normal((C, n, H, W))
    dz = rng.standard_normal(am.shape)
    lhs = np.vdot(_kernels.pool_gather(s, am), dz)
    rhs = np.vdot(s, _kernels.pool_scatter(dz, am, H, W))
    assert abs(lhs - rhs) <= 1e-12 * max(np.vdot(np.abs(s), np.abs(s)), 1.0)


def test_pool_scatter_overwrites_a_dirty_out_buffer():
    _, am = _kernels.maxpool(np.arange(16.0).reshape(1, 1, 4, 4), 2)
    out = np.full((1, 1, 4, 4), np.nan)
    _kernels.pool_scatter(np.ones((1, 1, 2, 2)), am, 4, 4, out=out)
    expected = np.zeros((4, 4))
    expected[[1, 1, 3, 3], [1, 3, 1, 3]] = 1.0
    np.testing.assert_array_equal(out[0, 0], expected)


# ---------------------------------------------------------------- elementwise
@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_in_place(dtype):
    rng = np.random.default_rng(3)
    x = _random(rng, 101, dtype)
    x[5] = 0.0
    expected = oracles.relu(x)
    _kernels.relu_(x)
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mask_positive_in_place(dtype):
    rng = np.random.default_rng(4)
    d = _random(rng, 77, dtype)
    z = np.maximum(_random(rng, 77, dtype), 0)  # a ReLU output: many exact zeros
    expected = np.array([d[j] if z[j] > 0 else 0 for j in range(77)], dtype=dtype)
    _kernels.mask_positive_(d, z)
    np.testing.assert_array_equal(d, expected)
    assert (d == 0).sum() >= (z == 0).sum()


@pytest.mark.parametrize("dtype", DTYPES)
def test_fill_rows_in_place(dtype):
    rng = np.random.default_rng(5)
    S = _random(rng, (4, 13), dtype)
    b = _random(rng, 4, dtype)
    _kernels.fill_rows_(S, b)
    for r in range(4):
        np.testing.assert_array_equal(S[r], np.full(13, b[r], dtype=dtype))


def test_fill_rows_rejects_a_column_slice_instead_of_writing_past_it():
    big = np.full((3, 10), -1.0)
    with pytest.raises(ValueError):
        _kernels.fill_rows_(big[:, :4], np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(big, -1.0)


def test_read_only_inputs_are_accepted():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 6, 5))
    idx = _kernels.im2col_index(3, 3, 1, 8, 7)
    expected = [_kernels.pad(x, 1), _kernels.im2col(_kernels.pad(x, 1), idx),
                *_kernels.maxpool(x, 2, relu=True)]
    xp = expected[0].copy()
    phi = expected[1].copy()
    z, am = (a.copy() for a in expected[2:])
    dz = rng.standard_normal(z.shape)
    for a in (x, idx, xp, phi, z, am, dz):
        a.setflags(write=False)
    np.testing.assert_array_equal(_kernels.pad(x, 1), expected[0])
    np.testing.assert_array_equal(_kernels.crop(xp, 1), x)
    np.testing.assert_array_equal(_kernels.im2col(xp, idx), expected[1])
    assert _kernels.col2im(phi, idx, 2, 8, 7).shape == (2, 3, 8, 7)
    zz, aa = _kernels.maxpool(x, 2, relu=True)
    np.testing.assert_array_equal(zz, z)
    np.testing.assert_array_equal(aa, am)
    assert _kernels.pool_gather(x, am).shape == z.shape
    assert _kernels.pool_scatter(dz, am, 6, 5, z=z).shape == x.shape
    d = np.ones(z.size)
    _kernels.mask_positive_(d, z.reshape(-1))
    np.testing.assert_array_equal(d, (z.reshape(-1) > 0).astype(float))


# ---------------------------------------------------------------- threads
@pytest.mark.parametrize("dtype", DTYPES)
def test_results_do_not_depend_on_thread_count(dtype, restore_threads):
    rng = np.random.default_rng(7)
    C, n, H, W, k, s, p = 3, 7, 9, 8, 3, 2, 1
    x = _random(rng, (C, n, H, W), dtype)

    def run():
        xp = _kernels.pad(x, p)
        idx = _kernels.im2col_index(k, k, s, xp.shape[2], xp.shape[3])
        phi = _kernels.im2col(xp, idx)
        back = _kernels.crop(_kernels.col2im(phi, idx, C, xp.shape[2], xp.shape[3]), p)
        z, am = _kernels.maxpool(x, 2, relu=True)
        g = _kernels.pool_gather(x, am)
        sc = _kernels.pool_scatter(g, am, H, W, z=z)
        return [xp, phi, back, z, am, g, sc]

    _kernels.set_num_threads(1)
    assert _kernels.get_num_threads() == 1
    serial = run()
    _kernels.set_num_threads(2)
    assert _kernels.get_num_threads() == 2
    parallel = run()
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)


def test_set_num_threads_rejects_zero(restore_threads):
    with pytest.raises(ValueError, match="n_threads"):
        _kernels.set_num_threads(0)


# ---------------------------------------------------------------- bad input: ValueError, no crash
def test_out_of_wrong_shape_or_dtype_is_rejected():
    x = np.zeros((1, 2, 3, 3))
    with pytest.raises(ValueError, match="out must be"):
        _kernels.pad(x, 1, out=np.zeros((1, 2, 4, 4)))
    with pytest.raises(ValueError, match="out must be"):
        _kernels.pad(x, 1, out=np.zeros((1, 2, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="out must be"):
        _kernels.pad(x, 1, out=np.zeros((1, 2, 5, 10))[:, :, :, ::2])
    with pytest.raises(ValueError, match="out must be"):
        _kernels.crop(np.zeros((1, 2, 5, 5)), 1, out=np.zeros((1, 2, 4, 3)))
    idx = _kernels.im2col_index(2, 2, 1, 3, 3)
    with pytest.raises(ValueError, match="out must be"):
        _kernels.im2col(x, idx, out=np.zeros((4, 7)))
    with pytest.raises(ValueError, match="out must be"):
        _kernels.col2im(np.zeros((4, 8)), idx, 1, 3, 3, out=np.zeros((1, 2, 3, 4)))
    with pytest.raises(ValueError, match="out must be"):
        _kernels.maxpool(np.zeros((1, 1, 4, 4)), 2, out=np.zeros((1, 1, 2, 3)))
    with pytest.raises(ValueError, match="out must be"):
        _kernels.maxpool(np.zeros((1, 1, 4, 4)), 2, argmax=np.zeros((1, 1, 2, 2), dtype=np.int64))


def test_im2col_index_map_that_does_not_fit_the_plane_is_rejected():
    idx = _kernels.im2col_index(3, 3, 1, 6, 6)  # reads offsets up to 35
    with pytest.raises(ValueError, match="index map"):
        _kernels.im2col(np.zeros((1, 1, 5, 5)), idx)
    with pytest.raises(ValueError, match="index map"):
        _kernels.col2im(np.zeros((9, idx.shape[1])), idx, 1, 5, 5)
    bad = idx.copy()
    bad[0, 0] = -1
    with pytest.raises(ValueError, match="index map"):
        _kernels.im2col(np.zeros((1, 1, 6, 6)), bad)


def test_im2col_index_rejects_bad_geometry():
    with pytest.raises(ValueError, match="kernel larger"):
        _kernels.im2col_index(6, 6, 1, 5, 5)
    with pytest.raises(ValueError, match=">= 1"):
        _kernels.im2col_index(3, 3, 0, 5, 5)
    with pytest.raises(ValueError, match=">= 1"):
        _kernels.im2col_index(0, 3, 1, 5, 5)


def test_col2im_rejects_phi_not_matching_channels_and_taps():
    idx = _kernels.im2col_index(2, 2, 1, 3, 3)  # 4 taps, 4 pixels
    with pytest.raises(ValueError, match="phi"):
        _kernels.col2im(np.zeros((5, 8)), idx, 1, 3, 3)
    with pytest.raises(ValueError, match="phi"):
        _kernels.col2im(np.zeros((4, 7)), idx, 1, 3, 3)
    with pytest.raises(ValueError, match="phi"):
        _kernels.col2im(np.zeros((4, 8)), idx, 0, 3, 3)


def test_pool_bigger_than_map_is_rejected():
    with pytest.raises(ValueError, match="pool size"):
        _kernels.maxpool(np.zeros((1, 1, 3, 5)), 4)
    with pytest.raises(ValueError, match="pool size"):
        _kernels.maxpool(np.zeros((1, 1, 3, 3)), 0)


def test_argmax_mismatch_is_rejected():
    _, am = _kernels.maxpool(np.zeros((2, 3, 4, 4)), 2)
    with pytest.raises(ValueError, match="argmax"):
        _kernels.pool_gather(np.zeros((2, 2, 4, 4)), am)  # wrong instance count
    with pytest.raises(ValueError, match="argmax"):
        _kernels.pool_gather(np.zeros((1, 3, 4, 4)), am)  # wrong channel count
    with pytest.raises(ValueError, match="argmax"):
        _kernels.pool_gather(np.zeros((2, 3, 3, 3)), am)  # offsets past a smaller plane
    with pytest.raises(ValueError, match="argmax"):
        _kernels.pool_scatter(np.zeros((2, 3, 2, 1)), am, 4, 4)  # dz shape != argmax shape
    with pytest.raises(ValueError, match="argmax"):
        _kernels.pool_scatter(np.zeros((2, 3, 2, 2)), am, 3, 3)  # offsets past the plane
    with pytest.raises(ValueError, match="mask does not match"):
        _kernels.pool_gather(np.zeros((2, 3, 4, 4)), am, mask=np.zeros((2, 3, 2, 1)))
    with pytest.raises(ValueError, match="z does not match"):
        _kernels.pool_scatter(np.zeros((2, 3, 2, 2)), am, 4, 4, z=np.zeros((2, 3, 1, 2)))
    bad = am.copy()
    bad[0, 0, 0, 0] = -3
    with pytest.raises(ValueError, match="argmax"):
        _kernels.pool_gather(np.zeros((2, 3, 4, 4)), bad)


def test_elementwise_length_mismatch_is_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        _kernels.mask_positive_(np.zeros(5), np.zeros(4))
    with pytest.raises(ValueError, match="one value per row"):
        _kernels.fill_rows_(np.zeros((3, 4)), np.zeros(4))


def test_crop_larger_than_input_is_rejected():
    with pytest.raises(ValueError, match="padding"):
        _kernels.crop(np.zeros((1, 1, 3, 3)), 2)
    with pytest.raises(ValueError, match="padding"):
        _kernels.pad(np.zeros((1, 1, 3, 3)), -1)


def test_wrong_layout_dtype_or_rank_is_rejected_not_crashed():
    # non-contiguous, wrong rank, mixed float types, wrong index dtype
    with pytest.raises(ValueError):
        _kernels.pad(np.zeros((1, 1, 4, 6))[..., ::2], 1)
    with pytest.raises((ValueError, TypeError)):
        _kernels.pad(np.zeros((1, 4, 4)), 1)
    idx = _kernels.im2col_index(2, 2, 1, 3, 3)
    with pytest.raises(ValueError):
        _kernels.im2col(np.zeros((1, 1, 3, 3)), idx.astype(np.int64))
    with pytest.raises((ValueError, TypeError)):
        _kernels.mask_positive_(np.zeros(3), np.zeros(3, dtype=np.float32))
    with pytest.raises((ValueError, TypeError)):
        _kernels.pad(np.zeros((1, 1, 3, 3), dtype=np.int64), 1)


def test_empty_batches_are_handled():
    x = np.zeros((2, 0, 3, 3))
    assert _kernels.pad(x, 1).shape == (2, 0, 5, 5)
    idx = _kernels.im2col_index(2, 2, 1, 3, 3)
    assert _kernels.im2col(x, idx).shape == (8, 0)
    z, am = _kernels.maxpool(x, 3)
    assert z.shape == am.shape == (2, 0, 1, 1)


# ------------------------------------------------- "same" convolutions straight from x
# (C, n, H, W, pad): the paper's planes, pads as wide as or wider than the plane, 1x1
SAME_CASES = [(1, 2, 28, 28, 2), (3, 2, 14, 14, 1), (2, 3, 7, 7, 1), (2, 2, 5, 9, 3),
              (1, 2, 3, 3, 4), (2, 1, 4, 6, 0), (1, 1, 1, 8, 2), (2, 2, 9, 1, 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SAME_CASES, ids=_case_id)
def test_im2col_same_equals_pad_then_im2col(dtype, case):
    C, n, H, W, p = case
    x = _random(_rng("same", case), (C, n, H, W), dtype)
    k = 2 * p + 1
    idx = _kernels.im2col_index(k, k, 1, H + 2 * p, W + 2 * p)
    expected = _kernels.im2col(_kernels.pad(x, p), idx)
    np.testing.assert_array_equal(_kernels.im2col_same(x, p), expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SAME_CASES, ids=_case_id)
def test_col2im_same_equals_col2im_then_crop(dtype, case):
    C, n, H, W, p = case
    k = 2 * p + 1
    phi = _random(_rng("same-adj", case), (C * k * k, n * H * W), dtype)
    before = phi.copy()
    idx = _kernels.im2col_index(k, k, 1, H + 2 * p, W + 2 * p)
    expected = _kernels.crop(_kernels.col2im(phi, idx, C, H + 2 * p, W + 2 * p), p)
    got = _kernels.col2im_same(phi, C, H, W, p)
    np.testing.assert_array_equal(got, expected)   # same additions in the same order
    np.testing.assert_array_equal(phi, before)
    x = _random(_rng("same-x", case), (C, n, H, W), dtype)
    lhs = np.vdot(_kernels.im2col_same(x, p).astype(float), phi.astype(float))
    assert abs(lhs - np.vdot(x.astype(float), got.astype(float))) < 1e-4 * max(1.0, abs(lhs))


def test_one_extension_holds_every_c_file():
    """The C files are compiled once, into newtoncnn._kernels: a second copy would keep its
    own AVX-512 switch and GEMM engine, which set_simd / set_gemm_engine would not reach."""
    import importlib.machinery
    import pathlib

    package = pathlib.Path(_kernels.__file__).parent
    extensions = sorted(p.name.split(".")[0] for p in package.iterdir()
                        if p.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)))
    assert extensions == ["_kernels"]
    # the array-level pool and the passes read the same switch
    x = np.random.default_rng(0).standard_normal((1, 1, 32, 32)).astype(np.float32)
    before = _kernels.set_simd(False)
    try:
        assert _kernels.set_simd(False) is False
        z_scalar, am_scalar = _kernels.maxpool(x, 2, relu=True)
        _kernels.set_simd(True)
        z_vec, am_vec = _kernels.maxpool(x, 2, relu=True)
    finally:
        _kernels.set_simd(before)
    np.testing.assert_array_equal(z_scalar, z_vec)
    np.testing.assert_array_equal(am_scalar, am_vec)
