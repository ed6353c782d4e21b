"""CNNClassifier's defaults on data that is not Fashion-MNIST: the input scaling and
C chosen from the data, MLPClassifier's stopping rule, warm starts.

scikit-learn's digits (1,797 8x8 images, values 0-16, the split of
``train_test_split(random_state=0)``) and a tiny synthetic image set; a small
network and a few Newton iterations keep each test to seconds.
"""
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from newtoncnn import scaling
from newtoncnn.estimator import CNNClassifier
from newtoncnn.layers import Conv, MaxPool
from newtoncnn.newton import NewtonCG, Status
from newtoncnn.normalizer import Normalizer
from newtoncnn.regularization import AUTO_C_TIMES_L, auto_C, resolve_C
from newtoncnn.stopping import NoImprovement, held_out_split

DIGITS_NET = [Conv(8, 3, padding=1), MaxPool(2), Conv(16, 3, padding=1), MaxPool(2)]
# Measured with 8 Newton iterations (seed 0): 0-16 and /16 93.6 %, standardized 90.2 %;
# with the former defaults (pixels / 255, C = 0.01) the same fit scores about 10 %.
DIGITS_ACCURACY = 0.88
DIGITS_STANDARDIZED_ACCURACY = 0.85


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, random_state=0)


def digits_clf(**kwargs):
    params = dict(layers=DIGITS_NET, max_iter=8, random_state=0)
    params.update(kwargs)
    return CNNClassifier(**params)


@pytest.fixture(scope="module")
def digits_fitted(digits):
    X_train, _, y_train, _ = digits
    return digits_clf().fit(X_train, y_train)


def bars(n, seed):
    """A tiny synthetic image set: float 8x8 images in [0, 1] holding a horizontal bar,
    a vertical bar or a diagonal (3 classes), anywhere, with noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = 0.2 * rng.random((n, 8, 8))
    pos = rng.integers(0, 8, n)
    for i in range(n):
        if y[i] == 0:
            X[i, pos[i], :] += 0.8
        elif y[i] == 1:
            X[i, :, pos[i]] += 0.8
        else:
            X[i] += 0.8 * np.eye(8, k=int(pos[i]) - 4)
    return X, y


# ---------------------------------------------------------------- scaling
def test_scaling_rules_against_numpy():
    rng = np.random.default_rng(0)
    X = rng.random((50, 1, 4, 5)) * 7.0 + 3.0
    centered = X - X.mean(axis=0)
    rms = math.sqrt(np.mean(centered ** 2))
    assert scaling.data_scale(X, "standardize") == pytest.approx(rms / scaling.TARGET_RMS,
                                                                  rel=1e-12)
    assert scaling.data_scale(X, "range") == X.max() - X.min()
    assert scaling.data_scale(X, "pixels") == 255.0
    norm, rule = scaling.fit_scaling(X, "auto", "float64")
    assert rule == "standardize"
    Z = norm.transform(X)
    assert_allclose(Z.mean(axis=0), 0.0, atol=1e-12)
    assert math.sqrt(np.mean(Z ** 2)) == pytest.approx(scaling.TARGET_RMS, rel=1e-12)


def test_scaling_rms_in_chunks(monkeypatch):
    X = np.random.default_rng(1).standard_normal((23, 3, 2, 2))
    whole = scaling.data_scale(X, "standardize")
    monkeypatch.setattr(scaling, "_CHUNK", 5)
    assert scaling.data_scale(X, "standardize") == pytest.approx(whole, rel=1e-13)


def test_scaling_rule_from_dtype():
    assert scaling.scaling_rule("auto", np.zeros((2, 4), np.uint8)) == "pixels"
    assert scaling.scaling_rule(True, np.zeros((2, 4), np.uint8)) == "pixels"
    for dtype in (np.float32, np.float64, np.int64, np.uint16):
        assert scaling.scaling_rule("auto", np.zeros((2, 4), dtype)) == "standardize"
    assert scaling.scaling_rule("range", np.zeros((2, 4))) == "range"
    assert scaling.scaling_rule(False, np.zeros((2, 4))) is None
    with pytest.raises(ValueError, match="normalize"):
        scaling.scaling_rule("minmax", np.zeros((2, 4)))
    # constant data: nothing to divide by, the unit is kept
    assert scaling.data_scale(np.full((4, 3), 5.0), "standardize") == 1.0
    assert scaling.data_scale(np.full((4, 3), 5.0), "range") == 1.0


@pytest.mark.parametrize("rule", ["standardize", "range"])
def test_data_rules_ignore_the_unit(rule):
    """Floats in [0, 1] and the same data in [0, 16] or [-8, 8] give the same inputs."""
    X = np.random.default_rng(2).integers(0, 17, size=(40, 1, 8, 8)).astype(np.float64)
    ref = scaling.fit_scaling(X / 16, rule, "float64")[0].transform(X / 16)
    # a power of two: the inputs agree to the last bit
    assert_array_equal(scaling.fit_scaling(X, rule, "float64")[0].transform(X), ref)
    for Y in (X - 8.0, X * 0.37 + 1.5):  # any affine change of unit, to rounding
        assert_allclose(scaling.fit_scaling(Y, rule, "float64")[0].transform(Y), ref,
                        atol=1e-12)


# ---------------------------------------------------------------- regularization
def test_auto_C_rule():
    assert auto_C(60000) == pytest.approx(0.01)  # simpleNN's setting at its size
    assert auto_C(1347) == AUTO_C_TIMES_L / 1347
    assert resolve_C("auto", 5000) == pytest.approx(0.12)
    assert resolve_C(0.01, 5000) == 0.01
    with pytest.raises(ValueError, match="C must be a positive"):
        resolve_C("big", 10)


# ---------------------------------------------------------------- digits
def test_digits_with_the_defaults(digits, digits_fitted):
    X_train, X_test, y_train, y_test = digits
    clf = digits_fitted
    assert clf.scaling_ == "standardize"
    assert clf.C_ == pytest.approx(AUTO_C_TIMES_L / len(X_train))
    assert clf.input_shape_ == (1, 8, 8)
    assert clf.score(X_test, y_test) >= DIGITS_ACCURACY


def test_digits_divided_by_16_predict_the_same(digits, digits_fitted):
    X_train, X_test, y_train, y_test = digits
    clf = digits_clf().fit(X_train / 16, y_train)
    assert_array_equal(clf.theta_, digits_fitted.theta_)
    assert_array_equal(clf.predict(X_test / 16), digits_fitted.predict(X_test))


def test_digits_standardized(digits, digits_fitted):
    X_train, X_test, y_train, y_test = digits
    sc = StandardScaler().fit(X_train)
    clf = digits_clf().fit(sc.transform(X_train), y_train)
    assert clf.score(sc.transform(X_test), y_test) >= DIGITS_STANDARDIZED_ACCURACY


def test_fitted_scaling_is_used_by_predict_and_saved(digits, digits_fitted, tmp_path):
    X_train, X_test, _, _ = digits
    clf = digits_fitted
    norm = Normalizer(scale=scaling.data_scale(X_train, "standardize"),
                      dtype="float32").fit(X_train.reshape(-1, 1, 8, 8))
    inputs = norm.transform(X_test.reshape(-1, 1, 8, 8))
    assert_array_equal(clf.decision_function(X_test),
                       clf.network_.forward(clf.theta_, inputs))
    path = clf.save(tmp_path / "digits.npz")
    loaded = CNNClassifier.load(path)
    assert loaded.scaling_ == "standardize" and loaded.C_ == clf.C_
    assert loaded.normalizer_.scale == clf.normalizer_.scale
    assert loaded.loss_curve_ == clf.loss_curve_ and loaded.n_iter_ == clf.n_iter_
    assert_array_equal(loaded.predict(X_test), clf.predict(X_test))


def test_tiny_synthetic_images():
    X, y = bars(240, seed=0)
    X_test, y_test = bars(90, seed=1)
    clf = CNNClassifier(layers=[Conv(6, 3, padding=1), MaxPool(2)], max_iter=10,
                        random_state=0).fit(X, y)
    assert clf.scaling_ == "standardize"
    assert clf.score(X_test, y_test) >= 0.9


# ---------------------------------------------------------------- stopping rule
def test_no_improvement_counts_iterations():
    rule = NoImprovement(tol=0.1, n_iter_no_change=3)
    x = np.zeros(2)
    curve = [5.0, 4.0, 3.95, 3.8, 3.79, 3.78, 3.77]
    stops = [rule(x, {"f": f}) for f in curve]
    # improvements (below the best f so far minus 0.1): 5.0 (the first), 4.0, 3.8
    assert stops == [None] * 6 + [True]
    assert rule.loss_curve == curve and rule.best_loss == 3.77 and rule.stopped
    # a rejected Newton iteration (alpha = 0) is never an improvement
    rule = NoImprovement(tol=0.0, n_iter_no_change=2)
    assert [rule(x, {"f": 1.0, "alpha": 0.0}) for _ in range(2)] == [None, True]

    scores = iter([0.5, 0.7, 0.69, 0.7, 0.6])
    rule = NoImprovement(tol=0.0, n_iter_no_change=3, validation=lambda x: next(scores))
    rows = [{"f": 1.0} for _ in range(5)]
    out = [rule(np.full(2, float(i)), row) for i, row in enumerate(rows)]
    assert out == [None, None, None, None, True]
    assert rule.validation_scores == [0.5, 0.7, 0.69, 0.7, 0.6]
    assert rule.best_score == 0.7
    assert_array_equal(rule.best_x, np.full(2, 1.0))
    assert [row["validation_score"] for row in rows] == rule.validation_scores


def test_held_out_split_is_stratified_and_seeded():
    X = np.arange(100).reshape(100, 1)
    y = np.arange(100) % 4
    a = held_out_split(X, y, 0.2, 0)
    b = held_out_split(X, y, 0.2, 0)
    for u, v in zip(a, b):
        assert_array_equal(u, v)
    X_tr, X_val, y_tr, y_val = a
    assert len(X_val) == 20 and np.bincount(y_val).tolist() == [5, 5, 5, 5]
    assert sorted(np.concatenate([X_tr, X_val]).ravel().tolist()) == list(range(100))
    with pytest.raises(ValueError, match="validation_fraction"):
        held_out_split(X[:3], y[:3], 0.1, 0)


def test_fit_stops_when_the_loss_stalls(digits):
    X_train, _, y_train, _ = digits
    # nothing but the first f (on the best so far, +inf) counts as an improvement: the
    # fit stops after 1 + n_iter_no_change iterations
    clf = digits_clf(max_iter=50, tol=1e9, n_iter_no_change=3).fit(X_train, y_train)
    assert clf.n_iter_ == 4 == len(clf.loss_curve_)
    assert clf.result_.status == Status.CALLBACK
    assert "did not improve" in clf.result_.message
    assert clf.loss_curve_ == [row["f"] for row in clf.history_]
    assert clf.best_loss_ == min(clf.loss_curve_) and clf.validation_scores_ is None


def test_fit_stops_promptly_when_no_step_is_accepted(digits, monkeypatch):
    """Every line search fails: f never improves, the fit ends after n_iter_no_change
    iterations (or the optimizer's max_failures, whichever comes first)."""
    X_train, _, y_train, _ = digits
    calls = {"n": 0}

    def failed(self, objective, st, s, gs):
        calls["n"] += 1
        return 0.0, None, math.nan, None, self.max_halvings + 1, math.nan

    monkeypatch.setattr(NewtonCG, "_line_search", failed)
    with pytest.warns(Warning, match="line search"):
        clf = digits_clf(max_iter=100, n_iter_no_change=4).fit(X_train, y_train)
    assert calls["n"] == clf.n_iter_ == 4
    assert all(row["alpha"] == 0.0 for row in clf.history_)


def test_early_stopping(digits):
    X_train, X_test, y_train, y_test = digits
    clf = digits_clf(max_iter=12, early_stopping=True, validation_fraction=0.2,
                     n_iter_no_change=3, tol=0.0).fit(X_train, y_train)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_ == len(clf.loss_curve_) <= 12
    assert clf.best_validation_score_ == max(scores)
    assert clf.best_loss_ is None
    assert [row["validation_score"] for row in clf.history_] == scores
    # trained on 80 %; theta_ is the iterate of the best held-out accuracy
    _, X_val, _, y_val = held_out_split(X_train, y_train, 0.2, 0)
    assert clf.score(X_val, y_val) == pytest.approx(max(scores), abs=1e-12)
    assert clf.C_ == pytest.approx(AUTO_C_TIMES_L / (len(X_train) - len(X_val)))
    if clf.n_iter_ < 12:  # stopped by the rule: 3 iterations without a new best
        best = int(np.argmax(scores))
        assert len(scores) - 1 - best == 3


def test_warm_start_continues(digits):
    X_train, X_test, y_train, _ = digits
    clf = digits_clf(max_iter=3, warm_start=True).fit(X_train, y_train)
    theta, curve, norm = clf.theta_.copy(), list(clf.loss_curve_), clf.normalizer_
    clf.set_params(max_iter=0).fit(X_train, y_train)  # no iteration: θ stays
    assert_array_equal(clf.theta_, theta)
    assert clf.normalizer_ is norm and clf.n_iter_ == 3
    clf.set_params(max_iter=2).fit(X_train, y_train)
    assert clf.n_iter_ == 5 and len(clf.loss_curve_) == 5
    assert clf.loss_curve_[:3] == curve
    assert clf.loss_curve_[3] <= curve[2]  # f(θ) only decreases from the trained θ
    with pytest.raises(ValueError, match="classes of the first fit"):
        clf.fit(X_train, y_train % 3)
    cold = digits_clf(max_iter=3).fit(X_train, y_train)
    cold.set_params(max_iter=0).fit(X_train, y_train)  # warm_start=False: a new start
    assert cold.n_iter_ == 0 and not np.array_equal(cold.theta_, theta)


def test_a_continued_rule_keeps_the_best_of_the_last_fit():
    previous = {"n_iter_": 4, "loss_curve_": [3.0, 2.0, 1.5, 1.4], "best_loss_": None,
                "validation_scores_": [0.5, 0.9, 0.8, 0.85], "best_validation_score_": 0.9}
    scores = iter([0.8, 0.95, 0.9])
    rule = NoImprovement.continuing(0.0, 5, lambda x: next(scores), previous,
                                    x=np.full(3, 7.0))
    assert rule(np.zeros(3), {"f": 1.3}) is None
    assert_array_equal(rule.best_x, np.full(3, 7.0))  # 0.8 < 0.9: the last fit's θ stays
    rule(np.ones(3), {"f": 1.2})
    rule(np.full(3, 2.0), {"f": 1.1})
    assert_array_equal(rule.best_x, np.ones(3))
    assert rule.best_score == 0.95
    fitted = rule.fitted_attributes(3)
    assert fitted["n_iter_"] == 7 and fitted["loss_curve_"] == [3.0, 2.0, 1.5, 1.4, 1.3, 1.2, 1.1]
    assert fitted["validation_scores_"] == [0.5, 0.9, 0.8, 0.85, 0.8, 0.95, 0.9]
    assert fitted["best_validation_score_"] == 0.95 and fitted["best_loss_"] is None
