"""Every public call is safe from several threads at once (docs/guide/practice.rst,
"Threads"): a network's shared workspace is held for the whole sequence of passes that
reads it, so results computed while other threads use the same network are
bit-identical to the ones computed alone. The oracle is the same call made
single-threaded beforehand."""
import threading

import numpy as np
import pytest

from newtoncnn import CNN, CNNObjective, Conv, Dense, MaxPool

ROUNDS = 20


def _net(dtype="float64"):
    return CNN((1, 8, 8), [Conv(3, 3, padding=1), MaxPool(2), Conv(4, 3, padding=1),
                           Dense(6), Dense(3)], dtype=dtype)


def _data(net, n, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n,) + net.input_shape),
            rng.integers(0, net.n_classes, n))


def _hammer(jobs, rounds=ROUNDS):
    """Runs each job ``rounds`` times in its own thread, all at once; returns the
    results per job and re-raises the first error."""
    barrier = threading.Barrier(len(jobs))
    results = [[] for _ in jobs]
    errors = []

    def run(i, job):
        try:
            barrier.wait()
            for _ in range(rounds):
                results[i].append(job())
        except Exception as exc:   # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def _assert_all_equal(results, expected):
    for per_job, want in zip(results, expected):
        for got in per_job:
            np.testing.assert_array_equal(got, want)


def test_predict_beside_gradients_of_the_same_network():
    net = _net()
    X, y = _data(net, 37, 0)
    Xp, _ = _data(net, 23, 1)
    obj = CNNObjective(net, X, y, C=0.5, batch_size=16)
    theta = net.init_params(2)
    g_alone = obj.grad(theta)
    out_alone = net.forward(theta, Xp, batch_size=8)
    results = _hammer([lambda: obj.grad(theta), lambda: net.forward(theta, Xp, batch_size=8)])
    _assert_all_equal(results, [g_alone, out_alone])


def test_two_objectives_sharing_one_network():
    net = _net()
    X1, y1 = _data(net, 30, 3)
    X2, y2 = _data(net, 41, 4)
    obj1 = CNNObjective(net, X1, y1, C=0.5, batch_size=16)
    obj2 = CNNObjective(net, X2, y2, C=2.0, batch_size=16)
    theta = net.init_params(5)
    fg1, fg2 = obj1.fun_grad(theta), obj2.fun_grad(theta)
    res1, res2 = _hammer([lambda: obj1.fun_grad(theta), lambda: obj2.fun_grad(theta)])
    for (f, g), (f0, g0) in [(r, fg1) for r in res1] + [(r, fg2) for r in res2]:
        assert f == f0
        np.testing.assert_array_equal(g, g0)


@pytest.mark.parametrize("mode, memory_budget", [("rop", 0), ("rop", None), ("jacobian", None)])
def test_gauss_newton_products_beside_gradients_and_predictions(mode, memory_budget):
    """memory_budget=0: the R-op operator keeps nothing and recomputes each chunk's
    forward pass into the network's shared buffers for every product."""
    net = _net()
    X, y = _data(net, 29, 6)
    obj = CNNObjective(net, X, y, C=0.5, batch_size=8)
    theta = net.init_params(7)
    v = np.random.default_rng(8).standard_normal(net.n_params)
    G = obj.gauss_newton(theta, mode=mode, memory_budget=memory_budget)
    Gv, Jv = G @ v, G.jvp(v)
    JtU = G.vjp(np.ones((29, net.n_classes)))
    g_alone, labels = obj.grad(theta), net.predict(theta, X, batch_size=5)
    results = _hammer([
        lambda: G @ v, lambda: G.jvp(v), lambda: G.vjp(np.ones((29, net.n_classes))),
        lambda: obj.grad(theta), lambda: net.predict(theta, X, batch_size=5)])
    _assert_all_equal(results, [Gv, Jv, JtU, g_alone, labels])


def test_operators_built_concurrently_on_one_objective():
    net = _net()
    X, y = _data(net, 25, 9)
    obj = CNNObjective(net, X, y, C=0.5, batch_size=8)
    theta = net.init_params(10)
    v = np.random.default_rng(11).standard_normal(net.n_params)
    Gv = obj.gauss_newton(theta, mode="jacobian") @ v

    def build_and_multiply():
        return obj.gauss_newton(theta, mode="jacobian") @ v

    _assert_all_equal(_hammer([build_and_multiply, build_and_multiply], rounds=10), [Gv, Gv])


@pytest.mark.parametrize("mode, memory_budget", [("rop", 0), ("rop", None), ("jacobian", None)])
def test_an_operator_owns_the_theta_it_was_built_at(mode, memory_budget):
    """G built at θ, then θ changed in place: G @ v is still G(θ_old) v."""
    net = _net()
    X, y = _data(net, 13, 12)
    obj = CNNObjective(net, X, y, C=0.5, batch_size=8)
    theta = net.init_params(13)
    rng = np.random.default_rng(14)
    v, d = rng.standard_normal(net.n_params), rng.standard_normal(net.n_params)
    old = obj.gauss_newton(theta.copy(), mode=mode, memory_budget=memory_budget)
    expected, expected_jv = old @ v, old.jvp(v)
    G = obj.gauss_newton(theta, mode=mode, memory_budget=memory_budget)
    theta += d
    np.testing.assert_array_equal(G @ v, expected)
    np.testing.assert_array_equal(G.jvp(v), expected_jv)
