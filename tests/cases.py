"""Test problems shared by several test files (and by tools/make_test_fixtures.py).

Objectives that know nothing of CNNs (for the optimizers), and the small
problems behind the file-format fixtures in ``tests/fixtures/``.
"""
import os
import subprocess
import sys

import numpy as np
from scipy.sparse.linalg import LinearOperator, aslinearoperator
from scipy.special import expit

# ---------------------------------------------------------------- child processes

# Children start in the tests folder: "python -c" and "python -m" put the working directory
# first on sys.path, and from the repository root that is the source tree, whose package has
# no compiled extension unless it was built in place (CI installs the package and runs the
# tests from the root: a child started there would import the wrong newtoncnn).
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def run_python(*args, timeout=120, env=None):
    """``python ARGS`` in a child started in the tests folder; its CompletedProcess."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=TESTS_DIR)


# ---------------------------------------------------------------- plain objectives


class Quadratic:
    """f(x) = ½ xᵀAx − bᵀx; the Gauss-Newton matrix is A whatever the subset."""

    def __init__(self, A, b, n_samples=10):
        self.A, self.b, self.n_samples = A, b, n_samples
        self.subsets, self.modes = [], []
        self.n_grad = 0

    def fun(self, x):
        return 0.5 * x @ (self.A @ x) - self.b @ x

    def grad(self, x):
        self.n_grad += 1
        return self.A @ x - self.b

    def fun_grad(self, x):
        return self.fun(x), self.grad(x)

    def gauss_newton(self, x, subset=None, mode="auto"):
        self.subsets.append(np.array(subset))
        self.modes.append(mode)
        return aslinearoperator(self.A)


def spd_matrix(n, seed=0, cond=50.0):
    """A symmetric positive definite n x n matrix with condition number ``cond``."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (Q * np.geomspace(1.0, cond, n)) @ Q.T


class Logistic:
    """f_B = wᵀw/(2Cl) + (1/|B|) Σ_{i∈B} log(1 + exp(−y_i w·x_i)), y ∈ {−1, +1}.

    ``subset=None`` is the full-data objective; ``gauss_newton`` gives the
    exact subsampled Gauss-Newton matrix, so both optimizers can run on it.
    """

    def __init__(self, X, y, C):
        self.X, self.y, self.C = X, y, C
        self.n_samples = len(y)

    def _fun_grad(self, w, subset):
        X, y = self.X[subset], self.y[subset]
        z = y * (X @ w)
        reg = 1.0 / (self.C * self.n_samples)
        f = 0.5 * reg * (w @ w) + np.logaddexp(0.0, -z).mean()
        return f, reg * w + X.T @ (-y * expit(-z)) / len(y)

    def fun(self, w):
        return self._fun_grad(w, slice(None))[0]

    def grad(self, w):
        return self._fun_grad(w, slice(None))[1]

    def fun_grad(self, w, subset=None):
        if subset is None:  # through fun and grad, so that a subclass can watch them
            return self.fun(w), self.grad(w)
        return self._fun_grad(w, subset)

    def gauss_newton(self, w, subset=None, mode="auto"):
        XS = self.X[subset]
        p = expit(self.y[subset] * (XS @ w))
        D = p * (1.0 - p)
        reg = 1.0 / (self.C * self.n_samples)
        n = w.size
        return LinearOperator(
            (n, n), matvec=lambda v: reg * v + XS.T @ (D * (XS @ v)) / len(subset),
            dtype=np.float64,
        )


def logistic_data(l, n, seed=1):
    """(X, y): ``l`` Gaussian points in R^n labelled ±1 by a noisy random hyperplane."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((l, n))
    w_true = rng.standard_normal(n)
    y = np.where(X @ w_true + 0.5 * rng.standard_normal(l) > 0, 1.0, -1.0)
    return X, y


# ---------------------------------------------------------------- file-format fixtures
FIXTURE_MODEL = "model_v0.1.0.npz"
FIXTURE_MODEL_EXPECTED = "model_v0.1.0_expected.json"
FIXTURE_CHECKPOINT = "checkpoint_v0.1.0.npz"
# The checkpoint fixture: this many iterations were written; resumed runs go to TOTAL.
FIXTURE_CHECKPOINT_ITERS = 3
FIXTURE_CHECKPOINT_TOTAL = 6
FIXTURE_NEWTON = dict(subsample=0.25, random_state=5, gn_mode="rop", gtol=0.0)


def fixture_images(n=40, seed=0):
    """(X, y, X_new): uint8 1x6x6 images with three string classes, and 7 more images.

    Class c's images are brighter in the c-th third of the rows, so a tiny net
    separates them in a few iterations.
    """
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 120, size=(n, 1, 6, 6)).astype(np.uint8)
    c = np.arange(n) % 3
    for k in range(3):
        X[c == k, :, 2 * k:2 * k + 2, :] += np.uint8(100)
    y = np.array(["ankle", "bag", "coat"])[c]
    X_new = rng.integers(0, 220, size=(7, 1, 6, 6)).astype(np.uint8)
    return X, y, X_new


def fixture_model_params():
    """CNNClassifier arguments of the saved-model fixture (layers as a list)."""
    from newtoncnn.layers import Conv, MaxPool
    return dict(layers=[Conv(3, 3, padding=1), MaxPool(2)], loss="softmax",
                C=1.0, dtype="float64", max_iter=6, gn_mode="jacobian", random_state=0)


def fixture_objective():
    """(objective, θ0) of the checkpoint fixture: a tiny float64 CNN on 24 images."""
    from newtoncnn.layers import Conv, Dense, MaxPool
    from newtoncnn.network import CNN
    from newtoncnn.objective import CNNObjective
    rng = np.random.default_rng(3)
    net = CNN((1, 6, 6), [Conv(2, 3, padding=1), MaxPool(2), Dense(3)], dtype="float64")
    X = rng.standard_normal((24, 1, 6, 6))
    y = np.arange(24) % 3
    return CNNObjective(net, X, y, C=0.1), net.init_params(7)
