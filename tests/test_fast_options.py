"""Tests for the options that cut the work of NewtonCG (all off in the simplenn preset).

Oracles: CG written from the formulas (tests/test_newton.py), np.linalg.solve,
per-instance gradients formed explicitly for logistic regression, and the
simplenn trajectory itself (an option switched off changes nothing, bit for bit).
"""
import math

import numpy as np
import pytest
from scipy.sparse.linalg import aslinearoperator
from scipy.special import expit

from newtoncnn.cg import conjugate_gradient
from newtoncnn.gradient_sample import GradientSample
from newtoncnn.newton import PRESETS, NewtonCG

from test_newton import Logistic, Quadratic, reference_cg, spd_matrix


class SampledLogistic(Logistic):
    """Logistic regression with the minibatch objective fun_grad(w, subset=idx)."""

    def loss_grads(self, w, idx):
        """Per-instance loss gradients (rows), formed explicitly: the oracle."""
        z = self.y[idx] * (self.X[idx] @ w)
        return (-self.y[idx] * expit(-z))[:, None] * self.X[idx]

    def fun_grad(self, w, subset=None):
        if subset is None:
            return self.fun(w), self.grad(w)
        idx = np.asarray(subset)
        z = self.y[idx] * (self.X[idx] @ w)
        reg = w @ w / (2 * self.C * self.n_samples)
        f = reg + np.logaddexp(0.0, -z).mean()
        g = w / (self.C * self.n_samples) + self.loss_grads(w, idx).mean(axis=0)
        return f, g


@pytest.fixture(scope="module")
def logistic():
    rng = np.random.default_rng(7)
    l, n = 400, 5
    X = rng.standard_normal((l, n))
    y = np.where(X @ rng.standard_normal(n) + 0.7 * rng.standard_normal(l) > 0, 1.0, -1.0)
    return SampledLogistic(X, y, C=0.1)


# ---------------------------------------------------------------- presets
def test_presets_resolve_and_explicit_arguments_win():
    assert NewtonCG()._cfg.__dict__ == PRESETS["simplenn"]
    fast = NewtonCG(preset="fast")
    assert fast._cfg.__dict__ == PRESETS["fast"]
    assert NewtonCG(preset="fast", subsample=0.2, gradient_sample=1.0)._cfg.subsample == 0.2
    assert NewtonCG(preset="fast", gradient_sample=1.0)._cfg.gradient_sample == 1.0
    opt = NewtonCG(preset="fast", cg_max_iter=7)
    assert opt.get_params()["cg_max_iter"] == 7 and opt.get_params()["subsample"] is None
    opt.set_params(preset="simplenn")
    assert opt._cfg.gradient_sample == 1.0 and opt._cfg.cg_max_iter == 7
    # simpleNN's numbers are the defaults the docs promise
    assert PRESETS["simplenn"]["subsample"] == 0.05
    assert PRESETS["simplenn"]["cg_tol"] == 0.1 and PRESETS["simplenn"]["cg_max_iter"] == 250


@pytest.mark.parametrize("kwargs, exc, name", [
    ({"preset": "quick"}, ValueError, "preset"),
    ({"preset": 1}, TypeError, "preset"),
    ({"cg_model_tol": -1.0}, ValueError, "cg_model_tol"),
    ({"cg_warm_start": 1.5}, ValueError, "cg_warm_start"),
    ({"gradient_sample": 0.0}, ValueError, "gradient_sample"),
    ({"gradient_sample": "all"}, TypeError, "gradient_sample"),
    ({"sample_theta": 0.0}, ValueError, "sample_theta"),
    ({"cg_diag_samples": -1}, ValueError, "cg_diag_samples"),
    ({"cg_diag_samples": 1.5}, TypeError, "cg_diag_samples"),
    ({"damping_full_step": 1}, TypeError, "damping_full_step"),
    ({"damping_full_step": "yes"}, TypeError, "damping_full_step"),
    ({"preset": "fast", "subsample": 2.0}, ValueError, "subsample"),
])
def test_bad_option_values_name_the_argument(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        NewtonCG(**kwargs)


def _run(obj, **kw):
    return NewtonCG(max_iter=8, random_state=3, gtol=0.0, **kw).minimize(
        obj, np.zeros(obj.X.shape[1]))


def test_options_switched_off_change_nothing_bit_for_bit(logistic):
    ref = _run(logistic)
    off = _run(logistic, preset="fast", cg_model_tol=0.0, cg_warm_start=0.0,
               gradient_sample=1.0, subsample=0.05, cg_max_iter=250, damping_full_step=False)
    explicit = _run(logistic, subsample=0.05, cg_tol=0.1, cg_max_iter=250)
    for res in (off, explicit):
        np.testing.assert_array_equal(res.x, ref.x)
        assert [r["f"] for r in res.history] == [r["f"] for r in ref.history]
        assert [r["cg_iters"] for r in res.history] == [r["cg_iters"] for r in ref.history]


class Underestimated(Quadratic):
    """f(x) = ½ xᵀ(cA)x − bᵀx with the Gauss-Newton operator A: the model underrates the
    curvature c-fold, so Newton steps overshoot and the line search halves them."""

    def __init__(self, A, b, factor):
        super().__init__(factor * A, b)
        self.G = A

    def gauss_newton(self, x, subset=None, mode="auto"):
        return aslinearoperator(self.G)


def _first_step(obj, lam, **kw):
    return NewtonCG(subsample=1.0, max_iter=1, cg_tol=1e-13, damping=lam, **kw).minimize(
        obj, np.zeros(obj.b.size)).history[0]


def test_damping_full_step_takes_rho_of_the_full_step_when_the_line_search_halves():
    # oracle: the exact damped Newton step, its ratio at α = 1 and at the accepted α = ½
    A, b, lam = spd_matrix(4, seed=1, cond=5.0), np.ones(4), 0.1
    obj = Underestimated(A, b, 3.0)
    g = -b
    s = np.linalg.solve(A + lam * np.eye(4), -g)
    q = lambda a: a * (g @ s) + 0.5 * a * a * (s @ A @ s)  # noqa: E731
    rho_full, rho_half = obj.fun(s) / q(1.0), obj.fun(0.5 * s) / q(0.5)
    assert obj.fun(s) > 1e-4 * (g @ s) and 0.25 <= rho_half < 0.75 and rho_full < 0.25
    plain = _first_step(obj, lam)
    full = _first_step(obj, lam, damping_full_step=True)
    for row in (plain, full):
        assert row["alpha"] == 0.5 and row["ls_trials"] == 2
        assert row["ratio"] == pytest.approx(rho_half, rel=1e-9)  # the row reports the step's
    assert plain["damping"] == lam
    assert full["damping"] == pytest.approx(1.5 * lam, rel=1e-15)


def test_damping_full_step_drops_lambda_when_the_full_step_fits_well():
    A, b = spd_matrix(4, seed=1, cond=5.0), np.ones(4)
    row = _first_step(Quadratic(A, b), 0.1, damping_full_step=True)
    assert row["alpha"] == 1.0 and row["ratio"] >= 0.75 and row["damping"] == 0.1 * 2 / 3


class FiniteOnlyNear(Quadratic):
    """f is NaN farther than ``radius`` from 0: the full step fails for want of a value."""

    def __init__(self, A, b, radius):
        super().__init__(A, b)
        self.radius = radius

    def fun(self, x):
        return super().fun(x) if np.linalg.norm(x) <= self.radius else math.nan


def test_damping_full_step_boosts_lambda_after_a_non_finite_full_step():
    A, b, lam = spd_matrix(4, seed=1, cond=5.0), np.ones(4), 0.1
    s = np.linalg.solve(A + lam * np.eye(4), b)
    obj = FiniteOnlyNear(A, b, 0.75 * np.linalg.norm(s))
    plain = _first_step(obj, lam)
    full = _first_step(obj, lam, damping_full_step=True)
    assert plain["alpha"] == full["alpha"] == 0.5 and plain["ratio"] >= 0.75
    assert plain["damping"] == lam * 2 / 3 and full["damping"] == lam * 1.5


def test_damping_full_step_changes_nothing_while_full_steps_are_accepted(logistic):
    off, on = _run(logistic), _run(logistic, damping_full_step=True)
    assert all(row["alpha"] == 1.0 for row in off.history)
    np.testing.assert_array_equal(on.x, off.x)
    assert [r["damping"] for r in on.history] == [r["damping"] for r in off.history]


# ---------------------------------------------------------------- CG options
def _q(A, lam, g, s):
    return g @ s + 0.5 * s @ (A @ s + lam * s)


def test_cg_model_rule_stops_on_a_prefix_of_plain_cg():
    A = spd_matrix(100, seed=1, cond=1e3)
    g = np.random.default_rng(2).standard_normal(100)
    lam, eps = 1e-3, 5e-3
    res = conjugate_gradient(aslinearoperator(A), g, lam, 1e-14, 100, model_tol=eps)
    assert 10 < res.n_iter < 60  # the rule fired long before the residual test
    s_ref, it_ref, _, _ = reference_cg(A, g, lam, 1e-14, res.n_iter)
    assert it_ref == res.n_iter
    np.testing.assert_allclose(res.s, s_ref, rtol=1e-9, atol=1e-12)
    # the rule's condition, recomputed from plain CG's iterates
    i, k = res.n_iter, max(10, math.ceil(res.n_iter / 10))
    q_i = _q(A, lam, g, s_ref)
    q_old = _q(A, lam, g, reference_cg(A, g, lam, 1e-14, i - k)[0])
    assert q_i < 0 and (q_i - q_old) / q_i < k * eps
    q_prev = _q(A, lam, g, reference_cg(A, g, lam, 1e-14, i - 1)[0])
    q_prev_old = _q(A, lam, g, reference_cg(A, g, lam, 1e-14, i - 1 - k)[0]) \
        if i - 1 > k else 0.0
    assert not (i - 1 > k and (q_prev - q_prev_old) / q_prev < k * eps)


def test_cg_warm_start_solves_the_same_system():
    A = spd_matrix(20, seed=3, cond=100.0)
    g = np.random.default_rng(4).standard_normal(20)
    lam = 0.1
    exact = np.linalg.solve(A + lam * np.eye(20), -g)
    for s0 in (0.9 * exact, exact + 0.01, np.ones(20)):
        res = conjugate_gradient(aslinearoperator(A), g, lam, 1e-12, 100, s0=s0)
        np.testing.assert_allclose(res.s, exact, rtol=1e-8, atol=1e-10)
        assert res.sGs == pytest.approx(res.s @ A @ res.s, rel=1e-8)
    # a start at the solution: one product to form r, then one CG step at most
    assert conjugate_gradient(aslinearoperator(A), g, lam, 1e-6, 100, s0=exact).n_iter <= 2


def _scaled_spd(n, seed):
    """An SPD matrix with a badly scaled diagonal (what a diagonal preconditioner fixes)."""
    D = np.diag(np.logspace(-2, 2, n))
    return D @ spd_matrix(n, seed=seed, cond=10.0) @ D


def test_preconditioned_cg_is_plain_cg_on_the_transformed_system():
    # PCG with M = diag(m) takes s_k = M^-1/2 ŝ_k, ŝ_k plain CG's iterates on
    # M^-1/2 (A + λI) M^-1/2 ŝ = -M^-1/2 g (λ folded in): the textbook identity
    A, lam = _scaled_spd(30, seed=11), 0.3
    g = np.random.default_rng(12).standard_normal(30)
    m = np.diag(A) + lam
    h = 1 / np.sqrt(m)
    A_hat = h[:, None] * (A + lam * np.eye(30)) * h[None, :]
    for k in (1, 3, 8):
        res = conjugate_gradient(aslinearoperator(A), g, lam, 0.0, k, preconditioner=m)
        s_hat = reference_cg(A_hat, h * g, 0.0, 0.0, k)[0]
        assert res.n_iter == k
        np.testing.assert_allclose(res.s, h * s_hat, rtol=1e-8, atol=1e-12)
        assert res.sGs == pytest.approx(res.s @ A @ res.s, rel=1e-8)
        assert res.residual_norm == pytest.approx(
            np.linalg.norm(-g - (A + lam * np.eye(30)) @ res.s), rel=1e-6)


def test_preconditioned_cg_solves_the_same_system_in_fewer_products():
    A, lam = _scaled_spd(80, seed=13), 1e-3
    g = np.random.default_rng(14).standard_normal(80)
    exact = np.linalg.solve(A + lam * np.eye(80), -g)
    plain = conjugate_gradient(aslinearoperator(A), g, lam, 1e-10, 2000)
    pcg = conjugate_gradient(aslinearoperator(A), g, lam, 1e-10, 2000,
                             preconditioner=(np.diag(A) + lam) ** 0.75)
    np.testing.assert_allclose(pcg.s, exact, rtol=1e-6, atol=1e-9)
    assert pcg.n_iter < plain.n_iter / 2, (pcg.n_iter, plain.n_iter)


def test_a_preconditioner_of_ones_is_plain_cg_bit_for_bit():
    A = spd_matrix(40, seed=15, cond=1e3)
    g = np.random.default_rng(16).standard_normal(40).astype(np.float32)
    for dtype in (np.float64, np.float32):
        G = aslinearoperator(A.astype(dtype))
        plain = conjugate_gradient(G, g.astype(dtype), 0.01, 1e-4, 30, model_tol=1e-3)
        ones = conjugate_gradient(G, g.astype(dtype), 0.01, 1e-4, 30, model_tol=1e-3,
                                  preconditioner=np.ones(40))
        np.testing.assert_array_equal(ones.s, plain.s)
        assert (ones.n_iter, ones.sGs, ones.residual_norm) == \
            (plain.n_iter, plain.sGs, plain.residual_norm)


@pytest.mark.parametrize("M", [np.ones(3), np.zeros(4), -np.ones(4), np.full(4, np.nan),
                               np.full(4, 1e-60)])
def test_bad_preconditioner_is_a_value_error(M):
    G = aslinearoperator(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="preconditioner"):
        conjugate_gradient(G, np.ones(4, dtype=np.float32), 0.1, 1e-3, 10, preconditioner=M)


def test_cg_diag_samples_needs_an_operator_with_a_diagonal_estimate(logistic):
    with pytest.raises(TypeError, match="cg_diag_samples needs .*diagonal_estimate"):
        _run(logistic, cg_diag_samples=1)


def test_cg_warm_start_worse_than_zero_falls_back():
    A = spd_matrix(10, seed=5)
    g = np.random.default_rng(6).standard_normal(10)
    bad = np.linalg.solve(A + np.eye(10), g)  # points uphill: q(bad) > 0
    assert _q(A, 1.0, g, bad) > 0
    cold = conjugate_gradient(aslinearoperator(A), g, 1.0, 1e-3, 50)
    warm = conjugate_gradient(aslinearoperator(A), g, 1.0, 1e-3, 50, s0=bad)
    assert warm.n_iter == cold.n_iter + 1  # the product spent on the rejected start
    np.testing.assert_allclose(warm.s, cold.s, rtol=1e-12)


def test_cg_progress_reports_every_iteration_with_the_model_value():
    A = spd_matrix(8, seed=7)
    g = np.ones(8)
    seen = []
    res = conjugate_gradient(aslinearoperator(A), g, 0.1, 1e-10, 50,
                             progress=lambda i, r, q: seen.append((i, r, q)))
    assert [i for i, _, _ in seen] == list(range(1, res.n_iter + 1))
    assert seen[-1][1] == pytest.approx(res.residual_norm)
    assert seen[-1][2] == pytest.approx(_q(A, 0.1, g, res.s), rel=1e-10)


def test_newton_warm_start_converges(logistic):
    ref = _run(logistic, subsample=1.0, cg_tol=1e-8)
    warm = _run(logistic, subsample=1.0, cg_tol=1e-8, cg_warm_start=0.9)
    np.testing.assert_allclose(warm.x, ref.x, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- gradient samples
def test_sample_combine_equals_the_union(logistic):
    w = np.random.default_rng(8).standard_normal(5)
    sample = GradientSample(logistic, 0.3, 0.5, np.random.default_rng(0), n_parts=7)
    parts = sample.evaluate(w)
    assert sum(n for n, _, _ in parts) == sample.size == 120
    f, g = GradientSample.combine(parts, np.float64)
    union = sample.order[:sample.size]
    f_ref, g_ref = logistic.fun_grad(w, subset=union)
    assert f == pytest.approx(f_ref, rel=1e-13)
    np.testing.assert_allclose(g, g_ref, rtol=1e-12)
    whole = GradientSample(logistic, 1.0, 0.5, np.random.default_rng(0))
    f_all, g_all = GradientSample.combine(whole.evaluate(w), np.float64)
    assert f_all == pytest.approx(logistic.fun(w), rel=1e-13)
    np.testing.assert_allclose(g_all, logistic.grad(w), rtol=1e-12)


def test_variance_ratio_with_one_instance_per_part_is_the_sample_variance(logistic):
    w = np.random.default_rng(9).standard_normal(5)
    sample = GradientSample(logistic, 0.1, 0.5, np.random.default_rng(1), n_parts=40)
    assert sample.part_size == 1
    parts = sample.evaluate(w)
    _, g = GradientSample.combine(parts, np.float64)
    G = logistic.loss_grads(w, sample.order[:sample.size])  # the oracle
    var = ((G - G.mean(axis=0)) ** 2).sum(axis=0).sum() / (len(G) - 1)  # ‖Var‖₁
    expected = var / sample.size / (g @ g)
    assert sample.variance_ratio(parts, g) == pytest.approx(expected, rel=1e-10)


def test_norm_test_grows_the_sample_to_byrds_size(logistic):
    w = np.zeros(5)  # far from the minimizer: the test passes
    sample = GradientSample(logistic, 0.1, 0.5, np.random.default_rng(2))
    parts = sample.evaluate(w)
    _, g = GradientSample.combine(parts, np.float64)
    assert sample.variance_ratio(parts, g) <= 0.25
    assert sample.maybe_grow(w, parts, g) is parts and sample.size == 40
    # near the minimizer the gradient is small and the test fails
    w_star = NewtonCG(subsample=1.0, cg_tol=1e-10, max_iter=30).minimize(
        logistic, np.zeros(5)).x
    sample = GradientSample(logistic, 0.1, 0.5, np.random.default_rng(2))
    parts = sample.evaluate(w_star)
    _, g = GradientSample.combine(parts, np.float64)
    ratio = sample.variance_ratio(parts, g)
    assert ratio > 0.25
    grown = sample.maybe_grow(w_star, parts, g)
    assert sample.size == min(400, math.ceil(40 * ratio / 0.25))
    assert grown[:len(parts)] == parts  # old parts reused, only new instances evaluated
    f, g2 = GradientSample.combine(grown, np.float64)
    f_ref, g_ref = logistic.fun_grad(w_star, subset=sample.order[:sample.size])
    assert f == pytest.approx(f_ref, rel=1e-12)
    np.testing.assert_allclose(g2, g_ref, rtol=1e-9, atol=1e-15)


def test_newton_on_a_growing_sample_reaches_the_full_minimizer(logistic):
    ref = NewtonCG(subsample=1.0, cg_tol=1e-10, max_iter=30).minimize(logistic, np.zeros(5))
    res = NewtonCG(preset="fast", subsample=0.5, max_iter=60, random_state=0,
                   gtol=0.0).minimize(logistic, np.zeros(5))
    sizes = [r["sample_size"] for r in res.history]
    assert sizes[0] < 400 and sizes[-1] == 400 and sizes == sorted(sizes)
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-5, atol=1e-7)
    assert res.history[-1]["f"] == pytest.approx(ref.fun, rel=1e-10)


def test_verbose_two_prints_cg_progress(capsys):
    obj = Quadratic(spd_matrix(80, seed=3, cond=1e6), np.ones(80))
    kw = dict(subsample=1.0, cg_tol=1e-14, cg_max_iter=60, max_iter=1, damping=1e-8)
    NewtonCG(verbose=2, **kw).minimize(obj, np.zeros(80))
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "|r|/|g|" in ln]
    assert [ln.split()[1] for ln in lines] == ["25", "50"]  # every 25 products
    NewtonCG(verbose=1, **kw).minimize(obj, np.zeros(80))
    assert "|r|/|g|" not in capsys.readouterr().out


@pytest.mark.parametrize("split", [1, 3, 5])
def test_fast_preset_resumes_on_the_same_trajectory(logistic, tmp_path, split):
    """The sample, its growth and the warm start survive a checkpoint: bit for bit."""
    kw = dict(preset="fast", subsample=0.25, random_state=4, gtol=0.0)
    full = NewtonCG(max_iter=8, **kw).minimize(logistic, np.zeros(5))
    assert full.history[0]["sample_size"] < full.history[-1]["sample_size"]  # it grew
    path = tmp_path / "ck.npz"
    NewtonCG(max_iter=split, checkpoint=path, **kw).minimize(logistic, np.zeros(5))
    res = NewtonCG(max_iter=8, checkpoint=path, **kw).minimize(logistic, None, resume=path)
    np.testing.assert_array_equal(res.x, full.x)
    for a, b in zip(res.history, full.history):
        assert {k: a[k] for k in ("f", "grad_norm", "cg_iters", "sample_size", "damping")} == \
            {k: b[k] for k in ("f", "grad_norm", "cg_iters", "sample_size", "damping")}


def test_resume_with_other_options_is_refused(logistic, tmp_path):
    path = tmp_path / "ck.npz"
    NewtonCG(max_iter=2, checkpoint=path, random_state=0).minimize(logistic, np.zeros(5))
    with pytest.raises(ValueError, match="gradient_sample"):
        NewtonCG(max_iter=4, preset="fast", random_state=0).minimize(
            logistic, None, resume=path)


def test_resume_with_another_damping_rule_is_refused(logistic, tmp_path):
    path = tmp_path / "ck.npz"
    NewtonCG(max_iter=2, checkpoint=path, random_state=0).minimize(logistic, np.zeros(5))
    with pytest.raises(ValueError, match="damping_full_step"):
        NewtonCG(max_iter=4, damping_full_step=True, random_state=0).minimize(
            logistic, None, resume=path)
    res = NewtonCG(max_iter=4, damping_full_step=False, random_state=0).minimize(
        logistic, None, resume=path)
    assert res.nit == 4


# ------------------------------------------------- line search: g only where it is used
class CountingUnderestimated(Underestimated):
    """Underestimated, counting the passes: ``fun`` (f only) and gradients."""

    def __init__(self, A, b, factor):
        super().__init__(A, b, factor)
        self.n_fun = 0

    def fun(self, x):
        self.n_fun += 1
        return super().fun(x)

    def fun_grad(self, x):
        return super().fun(x), self.grad(x)


class WithoutFunGrad(Underestimated):
    """The same objective through ``fun`` and ``grad`` only (every trial f only)."""

    fun_grad = None


def test_line_search_computes_g_at_the_trial_accepted_last_time():
    A, b = spd_matrix(4, seed=1, cond=5.0), np.ones(4)
    kw = dict(subsample=1.0, max_iter=6, cg_tol=1e-13, damping=0.01, gtol=0.0)
    obj = CountingUnderestimated(A, b, 3.0)
    res = NewtonCG(**kw).minimize(obj, np.zeros(4))
    ref = NewtonCG(**kw).minimize(WithoutFunGrad(A, b, 3.0), np.zeros(4))
    trials = [row["ls_trials"] for row in res.history]
    assert trials == [2] * 6                                 # every step halved once
    np.testing.assert_array_equal(res.x, ref.x)
    assert [r["f"] for r in res.history] == [r["f"] for r in ref.history]
    # x0; iteration 1: g at α = 1 (wasted) and at the accepted ½; then g only at ½
    assert obj.n_grad == 1 + 2 + 5 and res.njev == obj.n_grad
    assert obj.n_fun == 1 + 5       # f alone: iteration 1's α = ½, then the α = 1 trials


class SampledQuadratic:
    """f_B(x) = ½ xᵀ(cA)x − mean_{i∈B} b_iᵀx with G = A: Newton steps overshoot c-fold."""

    def __init__(self, A, B, factor):
        self.A, self.B, self.factor = A, B, factor
        self.n_samples = len(B)
        self.n_fun = self.n_fun_grad = 0

    def _b(self, subset):
        return self.B.mean(axis=0) if subset is None else self.B[np.asarray(subset)].mean(axis=0)

    def fun(self, x, subset=None):
        self.n_fun += 1
        return 0.5 * x @ (self.factor * self.A @ x) - self._b(subset) @ x

    def fun_grad(self, x, subset=None):
        self.n_fun_grad += 1
        b = self._b(subset)
        return 0.5 * x @ (self.factor * self.A @ x) - b @ x, self.factor * self.A @ x - b

    def grad(self, x):
        return self.fun_grad(x)[1]

    def gauss_newton(self, x, subset=None, mode="auto"):
        return aslinearoperator(self.A)


class SampledQuadraticWithoutSubsetFun(SampledQuadratic):
    def fun(self, x):
        return super().fun(x)


def test_sampled_line_search_skips_g_where_fun_takes_a_subset():
    rng = np.random.default_rng(5)
    A, B = spd_matrix(4, seed=2, cond=5.0), 1.0 + rng.standard_normal((64, 4))
    kw = dict(preset="fast", subsample=1.0, cg_model_tol=0.0, cg_warm_start=0.0,
              gradient_sample=0.25, cg_tol=1e-13, max_iter=6, damping=0.01, gtol=0.0,
              random_state=1)
    fast, slow = SampledQuadratic(A, B, 3.0), SampledQuadraticWithoutSubsetFun(A, B, 3.0)
    a, b = NewtonCG(**kw).minimize(fast, np.zeros(4)), NewtonCG(**kw).minimize(slow, np.zeros(4))
    assert all(row["ls_trials"] >= 2 for row in a.history)
    np.testing.assert_array_equal(a.x, b.x)
    for key in ("f", "grad_norm", "sample_size", "damping", "ls_trials"):
        assert [r[key] for r in a.history] == [r[key] for r in b.history], key
    assert fast.n_fun > 0 and fast.n_fun_grad < slow.n_fun_grad
    assert a.njev < b.njev
