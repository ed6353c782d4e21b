"""Files written by newtoncnn 0.1.0 (tests/fixtures/, see tools/make_test_fixtures.py) load.

The saved model must predict what it predicted when it was written; the
checkpoint must resume onto the trajectory the current code computes from
scratch.
"""
import json
import os

import numpy as np
import pytest

import cases

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
# float64 on the same data and weights; only the summation order of BLAS may differ
RTOL = 1e-10


def _fixture(name):
    return os.path.join(FIXTURES, name)


@pytest.fixture(scope="module")
def expected():
    with open(_fixture(cases.FIXTURE_MODEL_EXPECTED)) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def old_model():
    from newtoncnn.estimator import CNNClassifier
    return CNNClassifier.load(_fixture(cases.FIXTURE_MODEL))


def test_saved_model_predicts_as_when_it_was_written(old_model, expected):
    _, _, X_new = cases.fixture_images()
    assert old_model.classes_.tolist() == expected["classes"]
    assert old_model.predict(X_new).tolist() == expected["predict"]
    np.testing.assert_allclose(old_model.decision_function(X_new),
                               expected["decision_function"], rtol=RTOL, atol=1e-14)
    np.testing.assert_allclose(old_model.predict_proba(X_new), expected["predict_proba"],
                               rtol=RTOL, atol=1e-14)
    assert old_model.n_iter_ == expected["n_iter"]
    assert [row["f"] for row in old_model.history_] == expected["f"]


def test_saved_model_keeps_its_parameters(old_model):
    params = cases.fixture_model_params()
    got = old_model.get_params()
    for key, value in params.items():
        assert got[key] == value, key


def test_saved_model_is_refitted_the_same_by_the_current_code(old_model, expected):
    from newtoncnn.estimator import CNNClassifier
    X, y, X_new = cases.fixture_images()
    clf = CNNClassifier(**cases.fixture_model_params()).fit(X, y)
    np.testing.assert_allclose([row["f"] for row in clf.history_], expected["f"], rtol=1e-9)
    np.testing.assert_allclose(clf.theta_, old_model.theta_, rtol=1e-8, atol=1e-12)


def test_saved_model_round_trips_through_the_current_format(old_model, tmp_path):
    from newtoncnn.estimator import CNNClassifier
    _, _, X_new = cases.fixture_images()
    path = old_model.save(tmp_path / "again.npz")
    again = CNNClassifier.load(path)
    np.testing.assert_array_equal(again.decision_function(X_new),
                                  old_model.decision_function(X_new))
    assert again.get_params() == old_model.get_params()


def test_checkpoint_loads_through_every_import_path():
    import newtoncnn
    import newtoncnn.newton
    path = _fixture(cases.FIXTURE_CHECKPOINT)
    for load in (newtoncnn.load_checkpoint, newtoncnn.newton.load_checkpoint):
        ck = load(path)
        assert ck["meta"]["state"]["nit"] == cases.FIXTURE_CHECKPOINT_ITERS
        assert len(ck["meta"]["history"]) == cases.FIXTURE_CHECKPOINT_ITERS
        assert ck["x"].dtype == np.float64


def test_checkpoint_resumes_onto_the_uninterrupted_trajectory():
    from newtoncnn import NewtonCG, load_checkpoint
    objective, theta0 = cases.fixture_objective()
    total = cases.FIXTURE_CHECKPOINT_TOTAL
    path = _fixture(cases.FIXTURE_CHECKPOINT)
    old = load_checkpoint(path)

    # The current code reaches the checkpoint's state from scratch ...
    part = NewtonCG(max_iter=cases.FIXTURE_CHECKPOINT_ITERS, **cases.FIXTURE_NEWTON).minimize(
        objective, theta0)
    np.testing.assert_allclose(part.x, old["x"], rtol=1e-9, atol=1e-13)
    assert part.damping == pytest.approx(old["meta"]["state"]["lam"], rel=1e-12)
    # ... and the resumed run ends where the uninterrupted one does.
    full = NewtonCG(max_iter=total, **cases.FIXTURE_NEWTON).minimize(objective, theta0)
    with pytest.warns(UserWarning, match="could not be verified"):  # 0.1.0 has no digest
        resumed = NewtonCG(max_iter=total, **cases.FIXTURE_NEWTON).minimize(
            objective, theta0, resume=path)
    assert resumed.nit == full.nit == total
    assert [row["iter"] for row in resumed.history] == list(range(1, total + 1))
    assert [row["cg_iters"] for row in resumed.history] == \
        [row["cg_iters"] for row in full.history]
    np.testing.assert_allclose(resumed.x, full.x, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose([row["f"] for row in resumed.history],
                               [row["f"] for row in full.history], rtol=1e-10)


def test_checkpoint_rejects_another_problem():
    from newtoncnn import NewtonCG
    objective, theta0 = cases.fixture_objective()
    settings = dict(cases.FIXTURE_NEWTON, subsample=0.5)
    with pytest.raises(ValueError, match="subsample"):
        NewtonCG(max_iter=5, **settings).minimize(objective, theta0,
                                                  resume=_fixture(cases.FIXTURE_CHECKPOINT))
