"""Tests for newtoncnn.newton: NewtonCG on objectives that know nothing of CNNs.

Oracles: np.linalg.solve for a quadratic, scipy's L-BFGS for regularized
logistic regression, a CG and a subsampling schedule re-written here from
the formulas.
"""

import json
import math
import os

import numpy as np
import pytest
from scipy.optimize import minimize as scipy_minimize
from scipy.sparse.linalg import aslinearoperator

from newtoncnn.newton import (
    GN_MODES,
    NewtonCG,
    Status,
    conjugate_gradient,
    load_checkpoint,
    subsample_blocks,
    subsample_size,
)

from cases import Logistic, Quadratic, logistic_data, spd_matrix

HISTORY_KEYS = {"iter", "f", "grad_norm", "alpha", "ratio", "damping", "cg_iters", "seconds"}


@pytest.fixture(scope="module")
def logistic_problem():
    obj = Logistic(*logistic_data(300, 6), C=0.1)
    ref = scipy_minimize(obj.fun, np.zeros(obj.X.shape[1]), jac=obj.grad, method="L-BFGS-B",
                         options={"gtol": 1e-13, "ftol": 1e-16, "maxiter": 10000})
    return obj, ref.x, ref.fun


# ---------------------------------------------------------------- convergence
def test_quadratic_converges_to_solution():
    A, b = spd_matrix(8), np.arange(1.0, 9.0)
    obj = Quadratic(A, b)
    res = NewtonCG(subsample=1.0, damping=1e-10, cg_tol=1e-12, max_iter=20).minimize(
        obj, np.zeros(8))
    assert res.status == Status.CONVERGED and res.success
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-9, atol=1e-9)
    # An exact Newton step on a quadratic: α = 1 and predicted = actual reduction.
    assert res.history[0]["alpha"] == 1.0
    assert res.history[0]["ratio"] == pytest.approx(1.0, abs=1e-6)


def test_float32_iterate_stays_float32():
    A, b = spd_matrix(8), np.arange(1.0, 9.0)
    obj = Quadratic(A.astype(np.float32), b.astype(np.float32))
    res = NewtonCG(subsample=1.0, damping=1e-6, cg_tol=1e-6, max_iter=10, gtol=1e-5).minimize(
        obj, np.zeros(8, dtype=np.float32))
    assert res.x.dtype == np.float32
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-3, atol=1e-3)


def test_objective_dtype_attribute_wins():
    A, b = spd_matrix(4), np.ones(4)
    obj = Quadratic(A, b)
    obj.dtype = np.float32
    res = NewtonCG(subsample=1.0, max_iter=2).minimize(obj, np.zeros(4))
    assert res.x.dtype == np.float32


def test_logistic_matches_lbfgs_subsampled(logistic_problem):
    obj, x_ref, f_ref = logistic_problem
    x0 = np.zeros(x_ref.size)
    res = NewtonCG(subsample=0.3, max_iter=300, random_state=0).minimize(obj, x0)
    assert res.status == Status.CONVERGED, res.message
    np.testing.assert_allclose(res.x, x_ref, rtol=1e-6, atol=1e-7)
    assert res.fun == pytest.approx(f_ref, rel=1e-10)

    hist = res.history
    assert all(HISTORY_KEYS <= row.keys() for row in hist)
    fs = [obj.fun(x0)] + [row["f"] for row in hist]
    assert all(b <= a for a, b in zip(fs, fs[1:])), "f must not increase"
    secs = [row["seconds"] for row in hist]
    assert all(b >= a for a, b in zip(secs, secs[1:]))
    assert [row["iter"] for row in hist] == list(range(1, len(hist) + 1))
    # Counters agree with the history.
    assert res.nit == len(hist)
    assert res.nhev == sum(row["cg_iters"] for row in hist)
    assert res.njev == 1 + sum(row["alpha"] > 0 for row in hist)
    assert res.nfev == 1 + sum(row["ls_trials"] for row in hist)
    assert res.fun == hist[-1]["f"] and res.damping == hist[-1]["damping"]
    np.testing.assert_allclose(res.jac, obj.grad(res.x))


def test_logistic_full_gauss_newton_is_fast(logistic_problem):
    obj, x_ref, _ = logistic_problem
    res = NewtonCG(subsample=1.0, cg_tol=1e-3, damping=1e-3, max_iter=50,
                   gtol=1e-10).minimize(obj, np.zeros(x_ref.size))
    assert res.status == Status.CONVERGED
    assert res.nit < 25
    np.testing.assert_allclose(res.x, x_ref, rtol=1e-6, atol=1e-7)


def test_damping_follows_levenberg_marquardt_rule(logistic_problem):
    obj = logistic_problem[0]
    opt = NewtonCG(subsample=0.2, max_iter=15, random_state=3, gtol=0.0)
    res = opt.minimize(obj, np.zeros(6))
    lam = opt.damping
    for row in res.history:
        rho = row["ratio"]
        if rho < 0.25:
            lam *= opt.damping_boost
        elif rho >= 0.75:
            lam *= opt.damping_drop
        assert row["damping"] == pytest.approx(lam, rel=1e-12)
        # ρ is the documented ratio actred / prered.
        assert rho == pytest.approx(row["actred"] / row["prered"])


def test_deterministic_for_random_state(logistic_problem):
    obj = logistic_problem[0]
    run = lambda seed: NewtonCG(subsample=0.2, max_iter=8, random_state=seed).minimize(
        obj, np.zeros(6))
    a, b, c = run(7), run(7), run(8)
    np.testing.assert_array_equal(a.x, b.x)
    assert [r["f"] for r in a.history] == [r["f"] for r in b.history]
    assert not np.array_equal(a.x, c.x)


def test_x0_not_modified_and_gn_mode_passed():
    A, b = spd_matrix(5), np.ones(5)
    obj = Quadratic(A, b)
    x0 = np.zeros(5)
    NewtonCG(subsample=1.0, max_iter=3, gn_mode="rop", gtol=0.0).minimize(obj, x0)
    assert np.all(x0 == 0)
    assert obj.modes == ["rop"] * len(obj.modes) and obj.modes


# ---------------------------------------------------------------- CG
def reference_cg(A, g, lam, tol, max_iter):
    """CG for (A + λI)s = −g straight from the formulas (simpleNN's CG.m)."""
    s = np.zeros_like(g)
    r = -g
    d = r.copy()
    rTr = r @ r
    cgtol = tol * np.linalg.norm(g)
    for it in range(1, max_iter + 1):
        Gd = A @ d + lam * d
        alpha = rTr / (d @ Gd)
        s = s + alpha * d
        r = r - alpha * Gd
        rnew = r @ r
        if np.sqrt(rnew) <= cgtol or it == max_iter:
            break
        d = r + (rnew / rTr) * d
        rTr = rnew
    return s, it, s @ (A @ s), np.linalg.norm(r)


@pytest.mark.parametrize("tol, max_iter", [(0.1, 250), (1e-3, 250), (1e-12, 4)])
def test_cg_matches_reference(tol, max_iter):
    A = spd_matrix(30, seed=2, cond=30.0)  # well conditioned: CG rounding stays tiny
    g = np.random.default_rng(3).standard_normal(30)
    lam = 0.37
    s_ref, it_ref, sGs_ref, rn_ref = reference_cg(A, g, lam, tol, max_iter)
    s, it, sGs, rn = conjugate_gradient(aslinearoperator(A), g, lam, tol, max_iter)
    assert it == it_ref
    assert it <= max_iter
    np.testing.assert_allclose(s, s_ref, rtol=1e-10, atol=1e-12)
    assert sGs == pytest.approx(sGs_ref, rel=1e-8)  # sᵀ(−g − r − λs) = sᵀAs
    assert rn == pytest.approx(rn_ref, rel=1e-8)
    if it < max_iter:
        assert rn <= tol * np.linalg.norm(g)


def test_cg_solves_system_and_handles_zero_gradient():
    A = spd_matrix(10, seed=4)
    g = np.ones(10)
    s, it, _, _ = conjugate_gradient(A, g, 0.5, 1e-12, 100)
    np.testing.assert_allclose((A + 0.5 * np.eye(10)) @ s, -g, atol=1e-10)
    s0, it0, sGs0, rn0 = conjugate_gradient(A, np.zeros(10), 0.5, 0.1, 100)
    assert it0 == 0 and sGs0 == 0.0 and rn0 == 0.0 and not s0.any()


def test_cg_float32_keeps_dtype():
    A = spd_matrix(10, seed=5).astype(np.float32)
    g = np.ones(10, dtype=np.float32)
    s, _, sGs, _ = conjugate_gradient(aslinearoperator(A), g, 0.1, 1e-4, 100)
    assert s.dtype == np.float32 and isinstance(sGs, float)


# ---------------------------------------------------------------- subsampling
def take(gen, n):
    return [next(gen) for _ in range(n)]


def test_subsample_size():
    assert subsample_size(60000, 0.05) == 3000
    assert subsample_size(10, 0.3) == 3
    assert subsample_size(10, 0.25) == 3
    assert subsample_size(7, 1.0) == 7
    assert subsample_size(3, 0.01) == 1


def test_blocks_partition_a_permutation_when_size_divides():
    l, seed = 20, 11
    blocks = take(subsample_blocks(l, 0.25, seed), 8)  # |S| = 5, R = 4: two cycles
    rng = np.random.default_rng(seed)
    for cycle in range(2):
        perm = rng.permutation(l)
        cyc = blocks[4 * cycle: 4 * cycle + 4]
        assert sorted(np.concatenate(cyc).tolist()) == list(range(l))
        for j, blk in enumerate(cyc):
            assert blk.tolist() == sorted(perm[5 * j: 5 * j + 5].tolist())


def test_blocks_wrap_around_when_size_does_not_divide():
    l, seed = 10, 5
    blocks = take(subsample_blocks(l, 0.3, seed), 8)  # |S| = 3, R = 4
    rng = np.random.default_rng(seed)
    for cycle in range(2):
        perm = rng.permutation(l)
        for j in range(4):
            expected = [perm[(3 * j + i) % l] for i in range(3)]
            assert blocks[4 * cycle + j].tolist() == sorted(expected)
    assert all(len(b) == 3 and len(set(b.tolist())) == 3 for b in blocks)
    # The last block of a cycle reuses the first instances of the permutation.
    first_cycle = np.concatenate(blocks[:4])
    assert set(first_cycle.tolist()) == set(range(l)) and first_cycle.size == 12


def test_blocks_deterministic_and_full_when_subsample_is_one():
    a = take(subsample_blocks(50, 0.1, 3), 12)
    b = take(subsample_blocks(50, 0.1, 3), 12)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    for blk in take(subsample_blocks(9, 1.0, 0), 3):
        assert blk.tolist() == list(range(9))


def test_optimizer_uses_the_schedule():
    A, b = spd_matrix(4), np.ones(4)
    obj = Quadratic(A, b, n_samples=10)
    NewtonCG(subsample=0.3, max_iter=6, random_state=42, gtol=0.0, damping=10.0).minimize(
        obj, np.zeros(4))
    expected = take(subsample_blocks(10, 0.3, 42), len(obj.subsets))
    assert len(obj.subsets) >= 2
    for got, exp in zip(obj.subsets, expected):
        assert got.tolist() == exp.tolist()


# ---------------------------------------------------------------- failures
class NaNAwayFromStart(Quadratic):
    """f is NaN at any point other than x0: every line search must fail."""

    def __init__(self, A, b, x0):
        super().__init__(A, b)
        self.x0 = x0.copy()

    def fun(self, x):
        return super().fun(x) if np.array_equal(x, self.x0) else math.nan


def test_line_search_failure_keeps_x_and_boosts_damping():
    A, b = spd_matrix(5), np.ones(5)
    x0 = np.full(5, 0.5)
    obj = NaNAwayFromStart(A, b, x0)
    res = NewtonCG(subsample=1.0, max_halvings=3, max_failures=4, max_iter=50).minimize(obj, x0)
    assert res.status == Status.LINE_SEARCH_FAILED and not res.success
    assert "line search" in res.message.lower()
    np.testing.assert_array_equal(res.x, x0)
    assert np.all(np.isfinite(res.x)) and res.fun == obj.fun(x0)
    assert res.nit == 4
    assert all(row["alpha"] == 0 and row["ls_trials"] == 4 for row in res.history)
    assert res.damping == pytest.approx(1.5 ** 4)
    assert res.nfev == 1 + 4 * 4


def test_damping_cap_stops():
    A, b = spd_matrix(5), np.ones(5)
    x0 = np.zeros(5)
    res = NewtonCG(subsample=1.0, max_halvings=1, max_damping=2.0, max_failures=100).minimize(
        NaNAwayFromStart(A, b, x0), x0)
    assert res.status == Status.DAMPING_TOO_LARGE and res.nit == 2
    np.testing.assert_array_equal(res.x, x0)


def test_non_finite_at_start():
    A, b = spd_matrix(3), np.ones(3)
    obj = NaNAwayFromStart(A, b, np.ones(3))
    res = NewtonCG().minimize(obj, np.zeros(3))
    assert res.status == Status.NON_FINITE and res.nit == 0
    np.testing.assert_array_equal(res.x, np.zeros(3))


def test_non_finite_gradient_after_step_discards_the_step():
    A, b = spd_matrix(4), np.ones(4)

    class BadGrad(Quadratic):
        def grad(self, x):
            g = super().grad(x)
            return g if self.n_grad < 2 else g * np.nan

    res = NewtonCG(subsample=1.0).minimize(BadGrad(A, b), np.zeros(4))
    assert res.status == Status.NON_FINITE
    np.testing.assert_array_equal(res.x, np.zeros(4))
    assert np.all(np.isfinite(res.jac))


class InterruptOnGrad(Quadratic):
    def __init__(self, A, b, at):
        super().__init__(A, b)
        self.at = at

    def grad(self, x):
        if self.n_grad + 1 == self.at:
            raise KeyboardInterrupt
        return super().grad(x)


class InterruptOnGradNoFunGrad(InterruptOnGrad):
    fun_grad = None  # f first, g only at the accepted point


def test_keyboard_interrupt_returns_best_point():
    A, b = spd_matrix(6, cond=1e4), np.ones(6)
    obj = InterruptOnGradNoFunGrad(A, b, at=3)
    res = NewtonCG(subsample=1.0, damping=5.0).minimize(obj, np.zeros(6))
    assert res.status == Status.INTERRUPTED and not res.success
    assert "interrupt" in res.message.lower()
    assert np.all(np.isfinite(res.x))
    assert res.nit == 1
    # The step accepted by the interrupted iteration's line search is kept.
    assert res.fun == obj.fun(res.x) and res.fun < res.history[0]["f"]


def test_keyboard_interrupt_in_first_trial_keeps_last_iterate():
    # With fun_grad, the first trial computes f and g together: interrupted there,
    # the trial point is not known to be acceptable, so the last iterate is returned.
    A, b = spd_matrix(6, cond=1e4), np.ones(6)
    obj = InterruptOnGrad(A, b, at=3)
    res = NewtonCG(subsample=1.0, damping=5.0).minimize(obj, np.zeros(6))
    assert res.status == Status.INTERRUPTED and res.nit == 1
    assert res.fun == obj.fun(res.x) == res.history[0]["f"]


def test_keyboard_interrupt_in_line_search():
    A, b = spd_matrix(4), np.ones(4)

    class InterruptOnFun(Quadratic):
        def fun(self, x):
            raise KeyboardInterrupt

    res = NewtonCG(subsample=1.0).minimize(InterruptOnFun(A, b), np.zeros(4))
    assert res.status == Status.INTERRUPTED
    np.testing.assert_array_equal(res.x, np.zeros(4))


# ---------------------------------------------------------------- hooks, output
def test_validation_and_callback(logistic_problem, capsys):
    obj = logistic_problem[0]
    seen = []

    def validation(x):
        return {"val_accuracy": 0.5 + 0.01 * len(seen)}

    def callback(x, row):
        seen.append(row["iter"])
        with pytest.raises(ValueError):
            x[0] = 1.0  # the iterate handed to hooks is read-only
        return True if row["iter"] == 3 else {"note": "ok"}

    res = NewtonCG(subsample=0.5, validation=validation, verbose=1, random_state=0).minimize(
        obj, np.zeros(6), callback=callback)
    assert res.status == Status.CALLBACK and res.success and res.nit == 3
    assert seen == [1, 2, 3]
    assert [r["val_accuracy"] for r in res.history] == [0.5, 0.51, 0.52]
    assert res.history[0]["note"] == "ok"
    out = capsys.readouterr().out
    for word in ("iter", "lambda", "#CG", "ratio", "alpha", "|g|", "val_accuracy"):
        assert word in out
    assert len([ln for ln in out.splitlines() if ln.startswith("iter")]) == 3


def test_max_time_and_max_iter(logistic_problem):
    obj = logistic_problem[0]
    res = NewtonCG(max_time=1e-9, subsample=0.5).minimize(obj, np.zeros(6))
    assert res.status == Status.MAX_TIME and res.nit == 1 and res.success
    res = NewtonCG(max_iter=2, subsample=0.5, gtol=0.0).minimize(obj, np.zeros(6))
    assert res.status == Status.MAX_ITER and res.nit == 2
    res = NewtonCG(max_iter=0).minimize(obj, np.zeros(6))
    assert res.status == Status.MAX_ITER and res.nit == 0 and res.history == []


# ---------------------------------------------------------------- arguments
@pytest.mark.parametrize("kwargs, exc, name", [
    ({"subsample": 0.0}, ValueError, "subsample"),
    ({"subsample": 1.5}, ValueError, "subsample"),
    ({"subsample": -0.1}, ValueError, "subsample"),
    ({"subsample": "half"}, TypeError, "subsample"),
    ({"max_iter": -1}, ValueError, "max_iter"),
    ({"max_iter": 2.5}, TypeError, "max_iter"),
    ({"cg_max_iter": 0}, ValueError, "cg_max_iter"),
    ({"cg_tol": -1.0}, ValueError, "cg_tol"),
    ({"damping": -1.0}, ValueError, "damping"),
    ({"damping": float("nan")}, ValueError, "damping"),
    ({"damping_drop": 0.0}, ValueError, "damping_drop"),
    ({"damping_boost": 0.5}, ValueError, "damping_boost"),
    ({"armijo": 1.0}, ValueError, "armijo"),
    ({"gn_mode": "hessian"}, ValueError, "gn_mode"),
    ({"gn_mode": 1}, TypeError, "gn_mode"),
    ({"random_state": -3}, ValueError, "random_state"),
    ({"random_state": "seed"}, TypeError, "random_state"),
    ({"callback": 3}, TypeError, "callback"),
    ({"validation": "x"}, TypeError, "validation"),
    ({"max_time": 0}, ValueError, "max_time"),
    ({"max_halvings": -1}, ValueError, "max_halvings"),
    ({"gtol": -1e-3}, ValueError, "gtol"),
    ({"max_failures": 0}, ValueError, "max_failures"),
    ({"verbose": -1}, ValueError, "verbose"),
    ({"checkpoint": 3}, TypeError, "checkpoint"),
    ({"checkpoint": ""}, ValueError, "checkpoint"),
    ({"checkpoint_every": 0}, ValueError, "checkpoint_every"),
    ({"checkpoint_every": 1.5}, TypeError, "checkpoint_every"),
])
def test_bad_arguments(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        NewtonCG(**kwargs)


def test_bad_minimize_inputs():
    A, b = spd_matrix(3), np.ones(3)
    with pytest.raises(ValueError, match="x0"):
        NewtonCG().minimize(Quadratic(A, b), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="x0"):
        NewtonCG().minimize(Quadratic(A, b), np.array([0.0, np.nan, 0.0]))
    with pytest.raises(TypeError, match="objective"):
        NewtonCG().minimize(object(), np.zeros(3))
    with pytest.raises(TypeError, match="callback"):
        NewtonCG().minimize(Quadratic(A, b), np.zeros(3), callback=1)
    opt = NewtonCG()
    opt.subsample = 2.0  # attributes set after construction are checked too
    with pytest.raises(ValueError, match="subsample"):
        opt.minimize(Quadratic(A, b), np.zeros(3))


def test_get_set_params():
    opt = NewtonCG(subsample=0.2, gn_mode="jacobian")
    params = opt.get_params()
    assert params["subsample"] == 0.2 and params["gn_mode"] == "jacobian"
    assert NewtonCG(**params).get_params() == params
    assert opt.set_params(cg_tol=0.01) is opt and opt.cg_tol == 0.01
    with pytest.raises(ValueError, match="nonsense"):
        opt.set_params(nonsense=1)
    with pytest.raises(ValueError, match="subsample"):
        opt.set_params(subsample=3.0)
    assert opt.subsample == 0.2
    assert "subsample=0.2" in repr(opt)
    assert set(GN_MODES) == {"auto", "jacobian", "rop"}


# ---------------------------------------------------------------- checkpoints
# subsample 0.34 of 300 instances: |S| = 102, R = 3 blocks per permutation, so
# iteration 3 ends a cycle (the next one draws a new permutation) and
# iteration 4 is the first of the second cycle.
CK = dict(subsample=0.34, random_state=11, gtol=0.0, cg_tol=0.1)


def _rows(history):
    """History without the timing, NaN-safe (JSON text compares NaN equal)."""
    return json.dumps([{k: v for k, v in row.items() if k != "seconds"} for row in history])


def _same_checkpoint(path_a, path_b):
    a, b = load_checkpoint(path_a), load_checkpoint(path_b)
    for key in ("x", "g", "perm"):
        np.testing.assert_array_equal(a[key], b[key])
        assert a[key].dtype == b[key].dtype
    ma, mb = a["meta"], b["meta"]
    assert ma["fingerprint"] == mb["fingerprint"]
    assert ma["schedule"] == mb["schedule"]
    sa, sb = dict(ma["state"]), dict(mb["state"])
    sa.pop("seconds"), sb.pop("seconds")
    assert sa == sb
    assert _rows(ma["history"]) == _rows(mb["history"])


@pytest.mark.parametrize("split", [3, 4])
def test_resume_continues_the_same_trajectory(logistic_problem, tmp_path, split):
    obj = logistic_problem[0]
    x0 = np.zeros(6)
    full = NewtonCG(max_iter=6, checkpoint=tmp_path / "full.npz", **CK).minimize(obj, x0)

    path = tmp_path / "part.npz"
    first = NewtonCG(max_iter=split, checkpoint=path, **CK).minimize(obj, x0)
    assert first.nit == split and first.status == Status.MAX_ITER
    ck = load_checkpoint(path)
    state, sched = ck["meta"]["state"], ck["meta"]["schedule"]
    assert state["nit"] == split and state["lam"] == first.damping
    np.testing.assert_array_equal(ck["x"], first.x)
    assert sched["pos"] == (3 if split == 3 else 1)  # end of cycle 1 / start of cycle 2
    assert ck["perm"].shape == (300,)

    # A new optimizer (same settings, max_iter counts all iterations) goes on.
    second = NewtonCG(max_iter=6, checkpoint=path, **CK).minimize(
        obj, x0 if split == 3 else None, resume=path)
    assert second.nit == 6 and second.status == full.status == Status.MAX_ITER
    np.testing.assert_array_equal(second.x, full.x)
    np.testing.assert_array_equal(second.jac, full.jac)
    assert second.fun == full.fun and second.damping == full.damping
    assert _rows(second.history) == _rows(full.history)
    assert [r["iter"] for r in second.history] == list(range(1, 7))
    assert (second.nfev, second.njev, second.nhev) == (full.nfev, full.njev, full.nhev)
    # seconds are cumulative over both calls.
    assert second.history[split]["seconds"] >= state["seconds"]
    # The last checkpoint of the resumed run is the uninterrupted run's.
    _same_checkpoint(path, tmp_path / "full.npz")


def test_checkpoint_every_and_mid_cycle_resume_float32(tmp_path):
    A, b = spd_matrix(5, cond=1e3), np.arange(1.0, 6.0)
    obj = Quadratic(A.astype(np.float32), b.astype(np.float32), n_samples=10)
    kw = dict(subsample=0.3, random_state=4, gtol=0.0, damping=10.0)
    full = NewtonCG(max_iter=7, **kw).minimize(obj, np.zeros(5, np.float32))
    path = tmp_path / "q.npz"
    seen = []
    NewtonCG(max_iter=5, checkpoint=path, checkpoint_every=2, callback=lambda x, row: seen.append(
        load_checkpoint(path)["meta"]["state"]["nit"] if path.exists() else None), **kw
    ).minimize(obj, np.zeros(5, np.float32))
    # Written after iterations 2 and 4 (the callback runs before the write), then at the end.
    assert seen == [None, None, 2, 2, 4]
    assert load_checkpoint(path)["meta"]["state"]["nit"] == 5
    res = NewtonCG(max_iter=7, **kw).minimize(obj, np.zeros(5, np.float32), resume=path)
    assert res.x.dtype == np.float32
    np.testing.assert_array_equal(res.x, full.x)
    assert _rows(res.history) == _rows(full.history)
    # Resuming a finished run with the same max_iter does nothing more.
    again = NewtonCG(max_iter=5, **kw).minimize(obj, None, resume=path)
    assert again.nit == 5 and again.status == Status.MAX_ITER


class _FailingSavez:
    """Stands in for np.savez: writes half an archive, then fails."""

    real = staticmethod(np.savez)

    def __init__(self, exc):
        self.exc, self.calls = exc, 0

    def __call__(self, file, **arrays):
        import io
        self.calls += 1
        buf = io.BytesIO()
        self.real(buf, **arrays)
        file.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise self.exc


def test_checkpoint_write_is_atomic(logistic_problem, tmp_path, monkeypatch):
    obj = logistic_problem[0]
    path = tmp_path / "ck.npz"
    NewtonCG(max_iter=2, checkpoint=path, **CK).minimize(obj, np.zeros(6))
    before = load_checkpoint(path)
    assert before["meta"]["state"]["nit"] == 2

    # A crash in the middle of writing: the exception propagates, the old
    # checkpoint is untouched and no temporary file is left behind.
    monkeypatch.setattr(np, "savez", _FailingSavez(RuntimeError("simulated crash")))
    with pytest.raises(RuntimeError, match="simulated crash"):
        NewtonCG(max_iter=4, checkpoint=path, **CK).minimize(obj, np.zeros(6), resume=path)
    assert os.listdir(tmp_path) == ["ck.npz"]
    after = load_checkpoint(path)
    assert after["meta"]["state"]["nit"] == 2
    np.testing.assert_array_equal(after["x"], before["x"])

    # An OSError (disk full...) only warns: the run finishes, the old file stays.
    failing = _FailingSavez(OSError(28, "No space left on device"))
    monkeypatch.setattr(np, "savez", failing)
    with pytest.warns(RuntimeWarning, match="could not write the checkpoint"):
        res = NewtonCG(max_iter=4, checkpoint=path, **CK).minimize(obj, np.zeros(6),
                                                                     resume=path)
    assert res.nit == 4 and res.status == Status.MAX_ITER and failing.calls >= 2
    assert os.listdir(tmp_path) == ["ck.npz"]
    assert load_checkpoint(path)["meta"]["state"]["nit"] == 2


def test_resume_fingerprint_mismatch(logistic_problem, tmp_path):
    obj = logistic_problem[0]
    path = tmp_path / "ck.npz"
    NewtonCG(max_iter=1, checkpoint=path, **CK).minimize(obj, np.zeros(6))

    def resume(obj=obj, x0=np.zeros(6), **changes):
        NewtonCG(max_iter=3, **dict(CK, **changes)).minimize(obj, x0, resume=path)

    with pytest.raises(ValueError, match=r"subsample is 0\.34 in the checkpoint but 0\.5 here"):
        resume(subsample=0.5)
    with pytest.raises(ValueError, match="cg_tol.*gn_mode"):
        resume(cg_tol=0.01, gn_mode="rop")
    with pytest.raises(ValueError, match="random_state is 11 in the checkpoint but 12"):
        resume(random_state=12)
    with pytest.raises(ValueError, match="n_params is 6 in the checkpoint but 5"):
        resume(x0=np.zeros(5))
    with pytest.raises(ValueError, match="dtype is 'float64' in the checkpoint but 'float32'"):
        resume(x0=np.zeros(6, np.float32))
    small = Logistic(obj.X[:200], obj.y[:200], obj.C)
    with pytest.raises(ValueError, match=f"{path}.*n_samples is 300 in the checkpoint but 200"):
        resume(obj=small)
    # Settings that do not shape the trajectory may change; no seed means "any".
    resume(random_state=None, damping=5.0, max_time=100.0, gtol=1e-12)


def test_resume_missing_or_corrupt_file(logistic_problem, tmp_path):
    obj = logistic_problem[0]
    opt = NewtonCG(max_iter=2, **CK)
    missing = tmp_path / "missing.npz"
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        opt.minimize(obj, np.zeros(6), resume=missing)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(ValueError, match="cannot read checkpoint .*garbage.npz"):
        opt.minimize(obj, np.zeros(6), resume=garbage)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(2))
    with pytest.raises(ValueError, match="other.npz"):
        opt.minimize(obj, np.zeros(6), resume=other)
    # A truncated checkpoint (the failure atomic writes prevent) is reported too.
    good = tmp_path / "good.npz"
    NewtonCG(max_iter=1, checkpoint=good, **CK).minimize(obj, np.zeros(6))
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(ValueError, match="cut.npz"):
        opt.minimize(obj, np.zeros(6), resume=cut)
    with pytest.raises(TypeError, match="resume"):
        opt.minimize(obj, np.zeros(6), resume=3)


class _InterruptAt(Logistic):
    """Logistic objective raising ``exc`` at the ``at``-th gradient evaluation."""

    def __init__(self, base, at, exc):
        super().__init__(base.X, base.y, base.C)
        self.at, self.exc, self.n_grad = at, exc, 0

    def grad(self, w):
        self.n_grad += 1
        if self.n_grad == self.at:
            raise self.exc
        return super().grad(w)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError("objective failed")])
def test_interrupt_writes_checkpoint_of_last_complete_iteration(logistic_problem, tmp_path,
                                                                exc):
    base = logistic_problem[0]
    full = NewtonCG(max_iter=6, **CK).minimize(base, np.zeros(6))
    path = tmp_path / "ck.npz"
    # Gradient 1 is at x0, gradient k+1 ends iteration k (every step is
    # accepted here): fail inside iteration 4, after its step was accepted
    # but before its gradient is known.
    assert all(row["alpha"] > 0 for row in full.history)
    opt = NewtonCG(max_iter=6, checkpoint=path, checkpoint_every=100, **CK)
    if exc is KeyboardInterrupt:
        res = opt.minimize(_InterruptAt(base, 5, exc), np.zeros(6))
        assert res.status == Status.INTERRUPTED and res.nit == 3
    else:
        with pytest.raises(RuntimeError, match="objective failed"):
            opt.minimize(_InterruptAt(base, 5, exc), np.zeros(6))
    ck = load_checkpoint(path)  # only written on the way out (checkpoint_every=100)
    assert ck["meta"]["state"]["nit"] == 3
    np.testing.assert_array_equal(ck["x"], _x_after(base, 3))
    res = NewtonCG(max_iter=6, **CK).minimize(base, np.zeros(6), resume=path)
    np.testing.assert_array_equal(res.x, full.x)
    assert _rows(res.history) == _rows(full.history)


def _x_after(obj, k):
    return NewtonCG(max_iter=k, **CK).minimize(obj, np.zeros(6)).x


def test_interrupt_before_first_iteration_and_converged_start(tmp_path):
    A, b = spd_matrix(3), np.ones(3)
    path = tmp_path / "ck.npz"
    # Ctrl-C while evaluating g(x0): no consistent state yet, nothing written.
    res = NewtonCG(checkpoint=path).minimize(InterruptOnGrad(A, b, at=1), np.zeros(3))
    assert res.status == Status.INTERRUPTED and not path.exists()
    # Converged at x0: an iteration-0 checkpoint, which resumes to CONVERGED.
    obj = Quadratic(A, np.zeros(3))  # g(0) = 0 exactly
    res = NewtonCG(checkpoint=path, subsample=1.0).minimize(obj, np.zeros(3))
    assert res.status == Status.CONVERGED
    assert load_checkpoint(path)["meta"]["state"]["nit"] == 0
    res = NewtonCG(subsample=1.0).minimize(obj, None, resume=path)
    assert res.status == Status.CONVERGED and res.nit == 0


@pytest.mark.parametrize("bit_generator", ["MT19937", "Philox"])
def test_resume_keeps_any_bit_generator(logistic_problem, tmp_path, bit_generator):
    obj = logistic_problem[0]
    make = lambda: np.random.Generator(getattr(np.random, bit_generator)(3))
    kw = dict(CK, random_state=None)
    full = NewtonCG(max_iter=5, **dict(kw, random_state=make())).minimize(obj, np.zeros(6))
    path = tmp_path / "ck.npz"
    NewtonCG(max_iter=3, checkpoint=path, **dict(kw, random_state=make())).minimize(
        obj, np.zeros(6))
    res = NewtonCG(max_iter=5, **kw).minimize(obj, np.zeros(6), resume=path)
    np.testing.assert_array_equal(res.x, full.x)
    assert _rows(res.history) == _rows(full.history)
