"""Norms that do not overflow, a non-finite norm that is never convergence (item 4 of
issue 10), and non-finite activations that are never masked (item 5).

Oracles: norms by exact rational arithmetic (``fractions``), CG against
``np.linalg.solve`` on a system scaled back to float64's range, NaN propagation
against the IEEE rules (a max over a window with a NaN is NaN).
"""
import math
from fractions import Fraction

import numpy as np
import pytest

from newtoncnn import CNN, CNNObjective, Conv, Dense, MaxPool
from newtoncnn._optim_common import norm64
from newtoncnn.cg import conjugate_gradient
from newtoncnn.gradient_sample import GradientSample
from newtoncnn.newton import NewtonCG, Status

from cases import Quadratic, spd_matrix


def _exact_norm(a):
    # the sum of squares in exact rationals, brought into float range by a power of two
    e = math.frexp(float(np.max(np.abs(a))))[1]
    return math.sqrt(float(sum((Fraction(float(v)) / Fraction(2) ** e) ** 2 for v in a))) * 2.0**e


@pytest.mark.parametrize("scale", [1.0, 1e-200, 1e-160, 1e160, 1e300, 1e307])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_norm64_matches_exact_norm_without_overflow_or_underflow(scale, dtype):
    a = np.random.default_rng(0).standard_normal(50)
    if dtype == "float32":
        scale = min(max(scale, 1e-30), 1e30)
    a = (a * scale).astype(dtype)
    assert math.isclose(norm64(a), _exact_norm(a), rel_tol=1e-13)


def test_norm64_of_non_finite_vectors():
    assert norm64(np.array([1.0, np.inf])) == math.inf
    assert math.isnan(norm64(np.array([1.0, np.nan, 2.0])))
    assert norm64(np.zeros(3)) == 0.0
    assert norm64(np.array([1.5e308, 1.5e308, 1.5e308])) == math.inf   # the norm overflows


def test_cg_with_a_huge_gradient_solves_the_system():
    # g and G ~ 1e300 (as with C = 1e-300): gᵀg overflows; main's CG broke down
    A = spd_matrix(6)
    g = np.random.default_rng(1).standard_normal(6)
    res = conjugate_gradient(A * 1e300, g * 1e300, 0.0, 1e-12, 50)
    np.testing.assert_allclose(res.s, -np.linalg.solve(A, g), rtol=1e-8)
    assert math.isfinite(res.sGs) and math.isfinite(res.residual_norm)


def test_cg_is_exactly_scale_equivariant():
    # the scaled run gives the unscaled iterates bit for bit (powers of two only)
    A = spd_matrix(8)
    g = np.random.default_rng(2).standard_normal(8).astype(np.float32)
    a = conjugate_gradient(A.astype(np.float32), g, 0.5, 1e-3, 5)
    b = conjugate_gradient(A.astype(np.float32), g * np.float32(2.0**40), 0.5, 1e-3, 5)
    np.testing.assert_array_equal(b.s, a.s * np.float32(2.0**40))
    assert b.n_iter == a.n_iter


def test_variance_ratio_does_not_overflow():
    class Obj:
        n_samples = 8
    sample = GradientSample(Obj(), 1.0, 0.5, np.random.default_rng(0), n_parts=4)
    rng = np.random.default_rng(3)
    parts = [(2, 0.0, rng.standard_normal(5)) for _ in range(4)]
    _, g = GradientSample.combine(parts, np.dtype(np.float64))
    ratio = sample.variance_ratio(parts, g)
    huge = [(n, f, gj * 1e300) for n, f, gj in parts]
    _, g_huge = GradientSample.combine(huge, np.dtype(np.float64))
    assert math.isfinite(ratio) and ratio > 0
    assert math.isclose(sample.variance_ratio(huge, g_huge), ratio, rel_tol=1e-12)


@pytest.fixture(scope="module")
def small_cnn():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 1, 8, 8))
    y = rng.integers(0, 3, 40)
    net = CNN((1, 8, 8), [Conv(4, 3, padding=1), MaxPool(2), Dense(3)], dtype="float64")
    return net, X, y


@pytest.mark.parametrize("C, scale", [(1e-300, 1.0), (0.01, 1e80)], ids=["C=1e-300", "X*1e80"])
def test_overflowing_gradient_norm_is_not_convergence(small_cnn, C, scale):
    # main: sqrt(gᵀg) = inf and inf <= gtol * inf reported CONVERGED at iteration 0
    net, X, y = small_cnn
    obj = CNNObjective(net, X * scale, y, C=C)
    theta0 = net.init_params(0)
    f0 = obj.fun(theta0)
    res = NewtonCG(max_iter=3, random_state=0, subsample=1.0).minimize(obj, theta0)
    assert res.nit >= 1
    assert all(math.isfinite(row["grad_norm"]) for row in res.history)
    assert res.fun < f0   # the steps were real ones


def test_gradient_norm_beyond_float64_stops_as_non_finite():
    # ‖g‖ itself overflows (every entry 1.5e308): no norm can be finite; not convergence
    class Huge(Quadratic):
        def fun(self, x):
            return 1.0

        def grad(self, x):
            return np.full(3, 1.5e308)
    res = NewtonCG(subsample=1.0).minimize(Huge(spd_matrix(3), np.ones(3)), np.zeros(3))
    assert res.status == Status.NON_FINITE and not res.success and res.nit == 0
    assert "float64" in res.message


# ---------------------------------------------------------------- item 5: never masked
@pytest.fixture(params=[True, False], ids=["simd", "scalar"])
def simd(request):
    from newtoncnn import _kernels
    before = _kernels.set_simd(request.param)
    yield request.param
    _kernels.set_simd(before)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_maxpool_keeps_a_nan_of_any_window_position(simd, dtype, relu, k):
    # IEEE oracle: a max over a window holding a NaN is NaN (also as the first element,
    # the last one, and next to +inf), and so is its ReLU
    from newtoncnn import _kernels
    rng = np.random.default_rng(k)
    H = W = 6 * k
    s = rng.standard_normal((2, 3, H, W)).astype(dtype)
    where = [(0, 0, 0, 0), (1, 2, k - 1, k - 1), (0, 1, H - 1, 0), (1, 0, k, 2 * k + k - 1)]
    for c, i, y, x in where:
        s[c, i, y, x] = np.nan
    s[1, 0, k, 2 * k] = np.inf
    z, _ = _kernels.maxpool(s, k, relu=relu)
    windows = s.reshape(2, 3, H // k, k, W // k, k)
    expected_nan = np.isnan(windows).any(axis=(3, 5))
    np.testing.assert_array_equal(np.isnan(z), expected_nan)
    finite = ~expected_nan
    oracle = windows.max(axis=(3, 5))
    if relu:
        oracle = np.maximum(oracle, 0)
    np.testing.assert_array_equal(z[finite], oracle[finite])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_relu_keeps_nan(dtype):
    from newtoncnn import _kernels
    x = np.array([-1.0, np.nan, 2.0, -np.inf, np.inf, -0.0, 0.0] * 5, dtype=dtype)
    y = x.copy()
    _kernels.relu_(y)
    np.testing.assert_array_equal(y, np.where(np.isnan(x) | (x > 0), x, 0))


def _overflowing_net(dtype="float32"):
    # layer 1 doubles 3e38 to +inf in both channels; layer 2 computes inf - inf = NaN,
    # which main's ReLU turned into 0, so outputs and loss were finite and wrong
    net = CNN((1, 4, 4), [Conv(2, 1), Conv(1, 1), Dense(2)], dtype=dtype)
    weights = [(np.full((2, 1, 1, 1), 2.0), np.zeros(2)),
               (np.array([[[[1.0]], [[-1.0]]]]), np.zeros(1)),
               (np.ones((2, 16)), np.zeros(2))]
    X = np.full((3, 1, 4, 4), 3e38 if np.dtype(dtype) == np.float32 else 1.5e308)
    return net, net.set_weights(weights), X, np.array([0, 1, 0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_forward_reports_non_finite_activations_with_a_hint(dtype):
    net, theta, X, _ = _overflowing_net(dtype)
    hint = "float64" if dtype == "float32" else "smaller scale"
    with pytest.raises(ValueError, match=f"not finite.*overflowed.*{hint}"):
        net.forward(theta, X)
    with pytest.raises(ValueError, match="not finite"):
        net.predict(theta, X)


def test_objective_is_not_finite_when_an_activation_overflows():
    net, theta, X, y = _overflowing_net()
    obj = CNNObjective(net, X, y)
    assert math.isnan(obj.fun(theta))
    f, g = obj.fun_grad(theta)
    assert math.isnan(f)


def test_newton_stops_as_non_finite_with_the_hint():
    net, theta, X, y = _overflowing_net()
    res = NewtonCG(max_iter=2, random_state=0).minimize(CNNObjective(net, X, y), theta)
    assert res.status == Status.NON_FINITE and res.nit == 0
    assert "float64" in res.message
