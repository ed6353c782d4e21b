"""Tests for CNNObjective: f and ∇f against tests/oracles.py, finite differences and
the simpleNN worked check (docs/guide/objective.rst)."""
import contextlib

import numpy as np
import pytest

from newtoncnn import CNN, CNNObjective, Conv, Dense, MaxPool, _kernels

import oracles
from problems import worked_layers

LOSSES = ["squared", "softmax"]

# Small nets (≤ 300 parameters) so central differences over every coordinate stay fast.
ARCHS = {
    "conv-pool-dense": ((1, 6, 6), [Conv(2, 3, padding=1), MaxPool(2), Dense(3)]),
    "stride2-two-dense": ((2, 7, 5), [Conv(2, 3, stride=2, padding=2), Dense(4), Dense(3)]),
    "two-convs-pool-drop": ((1, 7, 8), [Conv(2, 3, padding=1), Conv(3, 2), MaxPool(2),
                                        Dense(4), Dense(3), Dense(2)]),
    "rgb-stride3": ((3, 8, 7), [Conv(2, 3, stride=3, padding=1), MaxPool(2), Dense(3)]),
}


@pytest.fixture
def serial():
    """One thread in the kernels and BLAS for the finite-difference tests: hundreds of
    tiny evaluations, where thread start-up dominates and a busy machine makes a
    2-thread team wait on a descheduled worker. Thread independence is tested in
    test_kernels.py; the values here do not depend on it."""
    before = _kernels.get_num_threads()
    _kernels.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
        blas = threadpool_limits(limits=1, user_api="blas")
    except ImportError:
        blas = contextlib.nullcontext()
    with blas:
        yield
    _kernels.set_num_threads(before)


def _problem(name, loss="squared", dtype="float64", n=6, seed=0):
    shape, layers = ARCHS[name]
    net = CNN(shape, layers, loss=loss, dtype=dtype)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n,) + shape)
    y = rng.integers(0, net.n_classes, size=n)
    theta = net.init_params(seed)
    weights = [(W, rng.standard_normal(b.shape) * 0.1) for W, b in net.get_weights(theta)]
    return net, X, y, net.set_weights(weights)


# ---------------------------------------------------------------- f against the oracle
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_fun_matches_naive_objective(name, loss):
    net, X, y, theta = _problem(name, loss)
    C = 0.37
    obj = CNNObjective(net, X, y, C=C)
    f = obj.fun(theta)
    expected = oracles.naive_objective(ARCHS[name][1], net.get_weights(theta), X, y, C, loss)
    assert isinstance(f, float)
    assert abs(f - expected) <= 1e-12 * abs(expected)
    assert obj.fun_grad(theta)[0] == pytest.approx(expected, rel=1e-12)


def test_regularizer_uses_C_and_l_as_in_simplenn():
    # f(0) = (1/l) Σ ξ(b-only outputs) and the regularizer is exactly θᵀθ / (2 C l)
    net, X, y, theta = _problem("conv-pool-dense", n=5)
    f1 = CNNObjective(net, X, y, C=1.0).fun(theta)
    f2 = CNNObjective(net, X, y, C=2.0).fun(theta)
    reg1 = float(theta @ theta) / (2 * 1.0 * 5)
    assert f1 - f2 == pytest.approx(reg1 / 2, rel=1e-12)
    assert CNNObjective(net, X, y).C == 0.01  # the default


def test_squared_loss_has_no_half_and_uses_one_hot():
    # a net whose output is its last bias only: zero every weight
    net = CNN((1, 4, 4), [Conv(1, 2), Dense(3)], dtype="float64")
    weights = [(np.zeros_like(W), np.zeros_like(b)) for W, b in net.get_weights(net.init_params(0))]
    weights[-1] = (weights[-1][0], np.array([0.5, -1.0, 2.0]))
    theta = net.set_weights(weights)
    X = np.ones((2, 1, 4, 4))
    y = np.array([0, 2])
    obj = CNNObjective(net, X, y, C=1e300)  # regularizer negligible
    xi0 = (0.5 - 1) ** 2 + 1.0 + 4.0
    xi1 = 0.25 + 1.0 + (2.0 - 1) ** 2
    assert obj.fun(theta) == pytest.approx((xi0 + xi1) / 2, rel=1e-14)
    soft = CNNObjective(CNN((1, 4, 4), [Conv(1, 2), Dense(3)], loss="softmax", dtype="float64"),
                        X, y, C=1e300)
    z = np.array([0.5, -1.0, 2.0])
    lse = np.log(np.exp(z).sum())
    assert soft.fun(theta) == pytest.approx(((lse - z[0]) + (lse - z[2])) / 2, rel=1e-14)


def test_softmax_is_stable_for_large_outputs():
    net = CNN((1, 4, 4), [Conv(1, 2), Dense(3)], loss="softmax", dtype="float64")
    weights = [(np.zeros_like(W), np.zeros_like(b)) for W, b in net.get_weights(net.init_params(0))]
    weights[-1] = (weights[-1][0], np.array([1000.0, 0.0, -1000.0]))
    theta = net.set_weights(weights)
    obj = CNNObjective(net, np.ones((2, 1, 4, 4)), np.array([0, 1]), C=1e300)
    f, g = obj.fun_grad(theta)
    assert np.isfinite(f) and np.all(np.isfinite(g))
    assert f == pytest.approx((0.0 + 1000.0) / 2, rel=1e-12)


# ---------------------------------------------------------------- ∇f
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_grad_matches_central_differences(name, loss, serial):
    net, X, y, theta = _problem(name, loss, n=5, seed=1)
    assert net.n_params <= 300
    obj = CNNObjective(net, X, y, C=0.5)
    g = obj.grad(theta)
    assert g.dtype == np.float64 and g.shape == theta.shape
    g_fd = oracles.central_fd_grad(obj.fun, theta, h=1e-6)
    assert np.linalg.norm(g - g_fd) / np.linalg.norm(g_fd) < 1e-6
    # the data term must carry real weight in the check, not only the regularizer θ/(C l)
    assert np.linalg.norm(g - theta / (0.5 * 5)) > 0.1 * np.linalg.norm(g)


def test_grad_matches_central_differences_of_the_naive_objective(serial):
    # ties the gradient to the oracle, not only to the package's own f
    name = "conv-pool-dense"
    net, X, y, theta = _problem(name, "softmax", n=4, seed=2)
    layers = ARCHS[name][1]

    def f_naive(t):
        return oracles.naive_objective(layers, net.get_weights(t), X, y, 0.2, "softmax")

    g = CNNObjective(net, X, y, C=0.2).grad(theta)
    g_fd = oracles.central_fd_grad(f_naive, theta, h=1e-6)
    assert np.linalg.norm(g - g_fd) / np.linalg.norm(g_fd) < 1e-6


def test_fun_grad_agrees_with_fun_and_grad():
    net, X, y, theta = _problem("two-convs-pool-drop", "softmax")
    obj = CNNObjective(net, X, y, C=0.1)
    f, g = obj.fun_grad(theta)
    assert f == obj.fun(theta)
    np.testing.assert_array_equal(g, obj.grad(theta))


@pytest.mark.parametrize("loss", LOSSES)
def test_fun_and_grad_independent_of_batch_size(loss):
    net, X, y, theta = _problem("two-convs-pool-drop", loss, n=7, seed=3)
    ref = CNNObjective(net, X, y, C=0.3, batch_size=7)
    f_ref, g_ref = ref.fun_grad(theta)
    for bs in (1, 3, 7, 1000):
        obj = CNNObjective(net, X, y, C=0.3, batch_size=bs)
        assert obj.fun(theta) == pytest.approx(f_ref, rel=1e-13)
        f, g = obj.fun_grad(theta)
        assert f == pytest.approx(f_ref, rel=1e-13)
        np.testing.assert_allclose(g, g_ref, rtol=1e-12, atol=1e-13 * np.abs(g_ref).max())


@pytest.mark.parametrize("loss", LOSSES)
def test_fun_and_grad_independent_of_thread_count(loss):
    # enough instances for several conv tiles, so two threads really split the work
    net, X, y, theta = _problem("conv-pool-dense", loss, n=1500, seed=10)
    obj = CNNObjective(net, X, y, C=0.3)
    before = _kernels.get_num_threads()
    try:
        _kernels.set_num_threads(1)
        f1, g1 = obj.fun_grad(theta)
        out1 = net.forward(theta, X)
        _kernels.set_num_threads(2)
        f2, g2 = obj.fun_grad(theta)
        out2 = net.forward(theta, X)
    finally:
        _kernels.set_num_threads(before)
    assert f2 == pytest.approx(f1, rel=1e-13)
    np.testing.assert_allclose(g2, g1, rtol=1e-12, atol=1e-13 * np.abs(g1).max())
    np.testing.assert_allclose(out2, out1, rtol=1e-13, atol=1e-14)


def test_read_only_data_is_accepted():
    net, X, y, theta = _problem("conv-pool-dense", "softmax", n=5, seed=11)
    f, g = CNNObjective(net, X, y, C=0.5).fun_grad(theta)
    X.setflags(write=False)
    y.setflags(write=False)
    obj = CNNObjective(net, X, y, C=0.5)
    f2, g2 = obj.fun_grad(theta)
    assert f2 == f
    np.testing.assert_array_equal(g2, g)


def test_read_only_theta_is_accepted():
    net, X, y, theta = _problem("conv-pool-dense", "squared", n=5, seed=11)
    obj = CNNObjective(net, X, y, C=0.5)
    f, g = obj.fun_grad(theta)
    theta.setflags(write=False)
    assert obj.fun(theta) == pytest.approx(f, rel=1e-14)
    np.testing.assert_array_equal(obj.grad(theta), g)


# ---------------------------------------------------------------- subsets (the SGD minibatch)
@pytest.mark.parametrize("loss", LOSSES)
def test_fun_grad_on_subset_scales_loss_by_subset_and_regularizer_by_l(loss):
    name = "stride2-two-dense"
    net, X, y, theta = _problem(name, loss, n=9, seed=4)
    C = 0.25
    obj = CNNObjective(net, X, y, C=C, batch_size=2)
    idx = np.array([7, 2, 3, 8])
    f, g = obj.fun_grad(theta, subset=idx)
    expected = oracles.naive_objective(ARCHS[name][1], net.get_weights(theta), X[idx], y[idx], C,
                                       loss, n_total=9)
    assert f == pytest.approx(expected, rel=1e-12)
    # gradient: that of the objective on X[idx] alone, with the regularizer's l = 9, not |idx|
    alone = CNNObjective(net, X[idx], y[idx], C=C)
    g_alone = alone.grad(theta)
    expected_g = g_alone - theta / (C * 4) + theta / (C * 9)
    np.testing.assert_allclose(g, expected_g, rtol=1e-12, atol=1e-13 * np.abs(g).max())
    # and the full objective is not what we got
    assert abs(obj.fun(theta) - f) > 1e-6


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss", LOSSES)
def test_fun_on_a_subset_is_fun_grads_f_to_the_bit(loss, dtype):
    # the line search evaluates f alone where it will not use g: the same f, or the
    # Armijo tests (and so the iterates) could differ
    name = "stride2-two-dense"
    net, X, y, theta = _problem(name, loss, dtype=dtype, n=9, seed=4)
    obj = CNNObjective(net, X.astype(dtype), y, C=0.25, batch_size=2)
    idx = np.array([2, 3, 7, 8])
    f = obj.fun(theta, subset=idx)
    assert f == obj.fun_grad(theta, subset=idx)[0]
    assert obj.fun(theta) == obj.fun_grad(theta)[0] == obj.fun(theta, subset=None)
    expected = oracles.naive_objective(ARCHS[name][1], net.get_weights(theta), X[idx], y[idx],
                                       0.25, loss, n_total=9)
    assert f == pytest.approx(expected, rel=1e-12 if dtype == "float64" else 1e-5)


def test_subset_gradient_matches_finite_differences_of_the_subset_objective(serial):
    name = "conv-pool-dense"
    net, X, y, theta = _problem(name, "squared", n=8, seed=5)
    obj = CNNObjective(net, X, y, C=0.4)
    idx = np.array([1, 4, 6])
    g = obj.fun_grad(theta, subset=idx)[1]
    g_fd = oracles.central_fd_grad(lambda t: obj.fun_grad(t, subset=idx)[0], theta)
    assert np.linalg.norm(g - g_fd) / np.linalg.norm(g_fd) < 1e-6


def test_subset_with_repeats_counts_each_occurrence():
    name = "conv-pool-dense"
    net, X, y, theta = _problem(name, "softmax", n=5, seed=6)
    obj = CNNObjective(net, X, y, C=0.3)
    idx = np.array([0, 0, 3])
    expected = oracles.naive_objective(ARCHS[name][1], net.get_weights(theta), X[idx], y[idx], 0.3,
                                       "softmax", n_total=5)
    assert obj.fun_grad(theta, subset=idx)[0] == pytest.approx(expected, rel=1e-12)


def test_subset_of_everything_is_the_full_objective():
    net, X, y, theta = _problem("rgb-stride3", "squared", n=5, seed=7)
    obj = CNNObjective(net, X, y, C=0.3)
    f, g = obj.fun_grad(theta)
    fs, gs = obj.fun_grad(theta, subset=np.arange(5)[::-1].copy())
    assert fs == pytest.approx(f, rel=1e-13)
    np.testing.assert_allclose(gs, g, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- single precision
@pytest.mark.parametrize("loss", LOSSES)
def test_float32_agrees_with_float64(loss):
    net64, X, y, theta = _problem("two-convs-pool-drop", loss, n=6, seed=8)
    net32 = CNN(*ARCHS["two-convs-pool-drop"], loss=loss, dtype="float32")
    obj64 = CNNObjective(net64, X, y, C=0.2)
    obj32 = CNNObjective(net32, X, y, C=0.2)
    assert obj32.X.dtype == np.float32
    f64, g64 = obj64.fun_grad(theta)
    f32, g32 = obj32.fun_grad(theta.astype(np.float32))
    assert g32.dtype == np.float32
    assert isinstance(f32, float)
    assert f32 == pytest.approx(f64, rel=1e-5)
    assert np.linalg.norm(g32 - g64) / np.linalg.norm(g64) < 1e-5


# ---------------------------------------------------------------- the simpleNN worked check
def test_simplenn_worked_check():
    ex = oracles.worked_example()
    layers = worked_layers(ex)
    assert layers == [Conv(3, 3, stride=2, padding=2), Conv(2, 3, padding=1), MaxPool(2), Dense(3)]
    net = CNN(ex["input_shape"], layers, loss="squared", dtype="float64")
    assert [(g.out_c, g.out_h, g.out_w) for g in net.geometry[:2]] == [(3, 4, 5), (2, 2, 2)]
    assert net.geometry[2].in_features == 8
    assert ex["X"].shape == (12, 1, 5, 7)
    np.testing.assert_array_equal(ex["y"], np.arange(12) % 3)
    theta = net.set_weights(ex["weights"])
    obj = CNNObjective(net, ex["X"], ex["y"], C=ex["C"])
    f, g = obj.fun_grad(theta)
    assert abs(f - 10.2895899915402) <= 1e-10 * 10.2895899915402
    assert abs(np.linalg.norm(g) - 45.4125065954811) <= 1e-10 * 45.4125065954811
    assert obj.fun(theta) == pytest.approx(f, rel=1e-14)
    # the oracle reproduces the reference value too, confirming the oracle itself
    f_naive = oracles.naive_objective(layers, ex["weights"], ex["X"], ex["y"], ex["C"], "squared")
    assert abs(f_naive - ex["f"]) <= 1e-10 * ex["f"]


def test_simplenn_worked_check_in_single_precision():
    ex = oracles.worked_example()
    net = CNN(ex["input_shape"], worked_layers(ex), dtype="float32")
    theta = net.set_weights(ex["weights"])
    f, g = CNNObjective(net, ex["X"], ex["y"], C=ex["C"]).fun_grad(theta)
    assert f == pytest.approx(ex["f"], rel=1e-5)
    assert np.linalg.norm(g.astype(np.float64)) == pytest.approx(ex["grad_norm"], rel=1e-5)


# ---------------------------------------------------------------- bad input
@pytest.fixture
def small():
    return _problem("conv-pool-dense", n=4, seed=9)


@pytest.mark.parametrize("C", [0, -1.0, np.nan, np.inf, "1", True, None, [1.0]])
def test_bad_C_is_rejected(small, C):
    net, X, y, _ = small
    with pytest.raises(ValueError, match=r"C must be a positive finite number"):
        CNNObjective(net, X, y, C=C)


def test_numpy_scalar_C_is_accepted(small):
    net, X, y, theta = small
    a = CNNObjective(net, X, y, C=np.float32(0.5)).fun(theta)
    b = CNNObjective(net, X, y, C=0.5).fun(theta)
    assert a == b


@pytest.mark.parametrize("bad", [-1, 3, 100])
def test_labels_outside_class_range_are_rejected(small, bad):
    net, X, y, _ = small
    y = y.copy()
    y[2] = bad
    with pytest.raises(ValueError, match=r"y must hold class indices in 0\.\.2"):
        CNNObjective(net, X, y)


def test_float_labels_must_be_integral(small):
    net, X, y, theta = small
    with pytest.raises(TypeError, match=r"y must hold integer class indices"):
        CNNObjective(net, X, np.array([0.0, 1.5, 2.0, 1.0]))
    with pytest.raises(TypeError, match=r"y must hold integer class indices"):
        CNNObjective(net, X, np.array([0.0, np.nan, 2.0, 1.0]))
    with pytest.raises(TypeError, match=r"y must hold integer class indices"):
        CNNObjective(net, X, np.array(["a", "b", "a", "b"]))
    # integral floats are fine and mean the same as ints
    as_float = CNNObjective(net, X, y.astype(np.float64)).fun(theta)
    assert as_float == CNNObjective(net, X, y).fun(theta)


def test_labels_of_wrong_length_or_rank_are_rejected(small):
    net, X, y, _ = small
    with pytest.raises(ValueError, match=r"y must be a 1-d array of 4 class indices"):
        CNNObjective(net, X, y[:3])
    with pytest.raises(ValueError, match=r"y must be a 1-d array of 4"):
        CNNObjective(net, X, np.append(y, 0))
    with pytest.raises(ValueError, match=r"y must be a 1-d array"):
        CNNObjective(net, X, y[:, None])
    with pytest.raises(ValueError, match=r"y must be a 1-d array"):
        CNNObjective(net, X, np.eye(3)[y])  # one-hot instead of indices


def test_empty_X_is_rejected(small):
    net, X, y, _ = small
    with pytest.raises(ValueError, match=r"X must hold at least one instance"):
        CNNObjective(net, X[:0], y[:0])


def test_bad_X_is_rejected(small):
    net, X, y, _ = small
    bad = X.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN"):
        CNNObjective(net, bad, y)
    with pytest.raises(ValueError, match=r"X must have shape"):
        CNNObjective(net, X[:, :, :5], y)
    with pytest.raises(TypeError, match=r"X must be a numeric"):
        CNNObjective(net, X.astype(object), y)


@pytest.mark.parametrize("subset,match", [
    (np.array([0, 4]), r"subset indices must lie in 0\.\.3"),
    (np.array([-1, 2]), r"subset indices must lie in 0\.\.3"),
    (np.array([], dtype=int), r"subset must be a non-empty 1-d array"),
    (np.array([[0, 1]]), r"subset must be a non-empty 1-d array"),
    (np.array([0.0, 1.0]), r"subset must be a non-empty 1-d array of instance indices"),
    (np.array([True, False, True, False]), r"subset must be"),
    (3, r"subset must be a non-empty 1-d array"),
])
def test_bad_subset_is_rejected(small, subset, match):
    net, X, y, theta = small
    obj = CNNObjective(net, X, y)
    with pytest.raises(ValueError, match=match):
        obj.fun_grad(theta, subset=subset)
    with pytest.raises(ValueError, match=match):
        obj.fun(theta, subset=subset)


def test_subset_given_as_list_is_accepted(small):
    net, X, y, theta = small
    obj = CNNObjective(net, X, y)
    assert obj.fun_grad(theta, subset=[1, 3])[0] == obj.fun_grad(theta, subset=np.array([1, 3]))[0]


def test_bad_theta_and_batch_size_are_rejected(small):
    net, X, y, theta = small
    obj = CNNObjective(net, X, y)
    with pytest.raises(ValueError, match=r"theta must have shape"):
        obj.fun(theta[1:])
    with pytest.raises(ValueError, match=r"theta must have shape"):
        obj.grad(np.append(theta, 1.0))
    bad = theta.copy()
    bad[0] = np.inf
    with pytest.raises(ValueError, match=r"theta contains NaN or inf"):
        obj.fun_grad(bad)
    with pytest.raises(ValueError, match=r"batch_size must be >= 1"):
        CNNObjective(net, X, y, batch_size=0)
    with pytest.raises(TypeError, match=r"batch_size must be an integer"):
        CNNObjective(net, X, y, batch_size=2.0)
