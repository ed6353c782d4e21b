"""Tests for newtoncnn.sgd: momentum SGD on plain objectives.

Oracles: a momentum-SGD loop written here from the update formulas, and
scipy's L-BFGS minimum of regularized logistic regression.
"""

import math

import numpy as np
import pytest
from scipy.optimize import minimize as scipy_minimize

from newtoncnn.sgd import SGD, Status

from cases import Logistic, logistic_data


class LeastSquares:
    """f_B(x) = xᵀx/(2Cl) + (1/|B|) Σ_{i∈B} ½ (a_iᵀx − b_i)²."""

    def __init__(self, A, b, C=1.0):
        self.A, self.b, self.C = A, b, C
        self.n_samples = len(b)
        self.calls = 0  # minibatch calls

    def fun_grad(self, x, subset=None):
        if subset is None:
            subset = np.arange(self.n_samples)
        else:
            self.calls += 1
        A, b = self.A[subset], self.b[subset]
        res = A @ x - b
        reg = 1.0 / (self.C * self.n_samples)
        f = 0.5 * reg * (x @ x) + 0.5 * (res @ res) / len(subset)
        return f, reg * x + A.T @ res / len(subset)


def least_squares(l=23, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return LeastSquares(rng.standard_normal((l, n)), rng.standard_normal(l))


@pytest.fixture(scope="module")
def logistic_problem():
    obj = Logistic(*logistic_data(200, 5), C=0.1)
    ref = scipy_minimize(obj.fun, np.zeros(obj.X.shape[1]), jac=obj.grad, method="L-BFGS-B",
                         options={"gtol": 1e-12, "ftol": 1e-15})
    return obj, ref.x, ref.fun


def reference_sgd(obj, x0, lr, momentum, batch_size, epochs, decay, seed):
    """Momentum SGD straight from the formulas, same permutation stream."""
    rng = np.random.default_rng(seed)
    x, v, t = x0.copy(), np.zeros_like(x0), 0
    for _ in range(epochs):
        perm = rng.permutation(obj.n_samples)
        for start in range(0, obj.n_samples, batch_size):
            _, gB = obj.fun_grad(x, subset=perm[start:start + batch_size])
            v = momentum * v - lr / (1 + decay * t) * gB
            x = x + v
            t += 1
    return x


def test_matches_reference_loop():
    obj = least_squares()
    x0 = np.full(4, 0.3)
    kw = dict(lr=0.05, momentum=0.7, batch_size=5, epochs=4, decay=0.3)
    res = SGD(random_state=9, **kw).minimize(obj, x0)
    x_ref = reference_sgd(obj, x0, seed=9, **kw)
    np.testing.assert_allclose(res.x, x_ref, rtol=1e-12, atol=1e-14)
    assert res.status == Status.MAX_ITER and res.success
    assert res.nit == 4 and len(res.history) == 4
    n_batches = math.ceil(23 / 5)  # the last, partial minibatch is included
    assert res.n_updates == res.n_batches == 4 * n_batches
    assert np.all(x0 == 0.3)


def test_decay_schedule_in_history():
    obj = least_squares()
    lr, decay = 0.05, 0.25
    res = SGD(lr=lr, decay=decay, batch_size=10, epochs=3, random_state=0).minimize(
        obj, np.zeros(4))
    for row in res.history:
        t_last = row["updates"] - 1  # the lr of the epoch's last update
        assert row["lr"] == pytest.approx(lr / (1 + decay * t_last))
    assert [row["updates"] for row in res.history] == [3, 6, 9]
    res0 = SGD(lr=lr, decay=0.0, batch_size=10, epochs=2).minimize(obj, np.zeros(4))
    assert all(row["lr"] == lr for row in res0.history)


def test_reaches_logistic_optimum(logistic_problem):
    obj, x_ref, f_ref = logistic_problem
    x0 = np.zeros(x_ref.size)
    f0 = obj.fun(x0)
    res = SGD(lr=0.1, momentum=0.9, batch_size=20, epochs=40, decay=0.05,
              random_state=0).minimize(obj, x0)
    fs = [row["f"] for row in res.history]
    assert fs[0] < f0 and fs[-1] < fs[0]
    assert res.fun - f_ref < 1e-4
    np.testing.assert_allclose(res.x, x_ref, atol=2e-2)
    assert {"epoch", "f", "grad_norm", "lr", "seconds"} <= res.history[0].keys()
    assert res.history[-1]["grad_norm"] == pytest.approx(np.linalg.norm(obj.grad(res.x)))
    np.testing.assert_allclose(res.jac, obj.grad(res.x))


def test_deterministic_for_random_state():
    obj = least_squares()
    run = lambda seed: SGD(lr=0.05, batch_size=4, epochs=2, random_state=seed).minimize(
        obj, np.zeros(4))
    a, b, c = run(3), run(3), run(4)
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)


def test_float32_stays_float32():
    obj = least_squares()
    obj.A, obj.b = obj.A.astype(np.float32), obj.b.astype(np.float32)
    res = SGD(epochs=2, batch_size=8).minimize(obj, np.zeros(4, dtype=np.float32))
    assert res.x.dtype == np.float32


def test_non_finite_minibatch_returns_last_good_point():
    obj = least_squares()

    class NaNLater(LeastSquares):
        def fun_grad(self, x, subset=None):
            f, g = super().fun_grad(x, subset)
            if subset is not None and self.calls > 7:  # during the 2nd epoch
                return math.nan, g
            return f, g

    bad = NaNLater(obj.A, obj.b)
    epoch1 = SGD(lr=0.05, batch_size=5, epochs=1, random_state=1).minimize(bad, np.zeros(4))
    bad.calls = 0
    res = SGD(lr=0.05, batch_size=5, epochs=5, random_state=1).minimize(bad, np.zeros(4))
    assert res.status == Status.NON_FINITE and not res.success
    assert "non-finite" in res.message.lower()
    assert res.nit == 1
    np.testing.assert_array_equal(res.x, epoch1.x)
    assert res.fun == epoch1.fun


def test_divergence_never_returns_nan_weights():
    obj = least_squares()
    with np.errstate(all="ignore"):
        res = SGD(lr=1e3, momentum=0.9, batch_size=5, epochs=50, random_state=0).minimize(
            obj, np.zeros(4))
    assert res.status == Status.NON_FINITE
    assert np.all(np.isfinite(res.x)) and math.isfinite(res.fun)


def test_keyboard_interrupt_mid_epoch():
    obj = least_squares()

    class Interrupt(LeastSquares):
        def fun_grad(self, x, subset=None):
            if subset is not None and self.calls == 6:
                raise KeyboardInterrupt
            return super().fun_grad(x, subset)

    res = SGD(lr=0.05, batch_size=5, epochs=3).minimize(Interrupt(obj.A, obj.b), np.zeros(4))
    assert res.status == Status.INTERRUPTED and not res.success
    assert np.all(np.isfinite(res.x)) and res.n_updates == 6
    assert math.isnan(res.fun) and res.jac is None  # f unknown mid-epoch
    assert res.nit == 1


def test_hooks_and_verbose(capsys):
    obj = least_squares()
    rows = []

    def callback(x, row):
        rows.append(row["epoch"])
        return row["epoch"] == 2

    res = SGD(epochs=5, batch_size=5, verbose=1, validation=lambda x: {"val": float(x.sum())},
              callback=callback).minimize(obj, np.zeros(4))
    assert res.status == Status.CALLBACK and res.nit == 2 and rows == [1, 2]
    assert "val" in res.history[0]
    out = capsys.readouterr().out
    assert "epoch" in out and "val" in out and "|g|" in out


def test_max_time():
    obj = least_squares()
    res = SGD(epochs=100, batch_size=5, max_time=1e-9).minimize(obj, np.zeros(4))
    assert res.status == Status.MAX_TIME and res.success
    assert res.nit == 1 and res.n_updates == 1 and res.fun == res.history[0]["f"]


@pytest.mark.parametrize("kwargs, exc, name", [
    ({"lr": 0.0}, ValueError, "lr"),
    ({"lr": "big"}, TypeError, "lr"),
    ({"momentum": 1.0}, ValueError, "momentum"),
    ({"momentum": -0.1}, ValueError, "momentum"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": 2.0}, TypeError, "batch_size"),
    ({"epochs": -1}, ValueError, "epochs"),
    ({"decay": -1.0}, ValueError, "decay"),
    ({"random_state": -1}, ValueError, "random_state"),
    ({"callback": 5}, TypeError, "callback"),
    ({"max_time": -1.0}, ValueError, "max_time"),
])
def test_bad_arguments(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        SGD(**kwargs)


def test_bad_objective_and_params():
    with pytest.raises(TypeError, match="objective"):
        SGD().minimize(object(), np.zeros(2))
    opt = SGD(lr=0.5)
    assert opt.get_params()["lr"] == 0.5
    assert SGD(**opt.get_params()).get_params() == opt.get_params()
    with pytest.raises(ValueError, match="batch_size"):
        opt.set_params(batch_size=0)
