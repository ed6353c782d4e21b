"""A checkpoint resumes only the run it was written for (issue 10, item 3).

The fingerprint covers everything that shapes the trajectory: the optimizer's
settings, C, the loss, the network and a digest of the data (X and y, after
normalization). Through every entry point (NewtonCG, the estimator, the CLI) a
resume with another of them is refused with a message naming it; files of
newtoncnn 0.1.0, which record none of them, still resume with a warning.
"""
import os
import warnings

import numpy as np
import pytest

import cases
from newtoncnn import CNN, CNNObjective, Conv, Dense, MaxPool, NewtonCG
from newtoncnn.cli import main
from newtoncnn.estimator import CNNClassifier
from test_datasets import write_idx_dir

SETTINGS = dict(subsample=0.25, random_state=5, gn_mode="rop", gtol=0.0)


def _problem(C=0.1, loss="squared", layers=None, seed=3):
    rng = np.random.default_rng(seed)
    layers = layers or [Conv(2, 3, padding=1), MaxPool(2), Dense(3)]
    net = CNN((1, 6, 6), layers, loss=loss, dtype="float64")
    X = rng.standard_normal((24, 1, 6, 6))
    y = np.arange(24) % 3
    return CNNObjective(net, X, y, C=C), net.init_params(7)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("fp") / "ck.npz"
    objective, theta0 = _problem()
    NewtonCG(max_iter=2, checkpoint=path, **SETTINGS).minimize(objective, theta0)
    return path


def _resume(path, objective, theta0):
    return NewtonCG(max_iter=3, **SETTINGS).minimize(objective, theta0, resume=path)


def test_the_same_problem_resumes_without_a_warning(checkpoint):
    objective, theta0 = _problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _resume(checkpoint, objective, theta0).nit == 3


@pytest.mark.parametrize("change, message", [
    (dict(C=100.0), "C is 0.1 in the checkpoint but 100.0 here"),
    (dict(loss="softmax"), "loss is 'squared' in the checkpoint but 'softmax' here"),
    (dict(seed=4), "the data differ"),
    # same number of parameters (77), another network
    (dict(layers=[Conv(2, 3, stride=2, padding=1), Dense(3)]), "network is"),
])
def test_newton_refuses_another_problem(checkpoint, change, message):
    objective, theta0 = _problem(**change)
    assert theta0.size == 77
    with pytest.raises(ValueError, match="does not match this run") as info:
        _resume(checkpoint, objective, theta0)
    assert message in str(info.value)


def test_labels_are_part_of_the_data(checkpoint):
    objective, theta0 = _problem()
    objective.y = objective.y[::-1].copy()
    with pytest.raises(ValueError, match="the data differ"):
        _resume(checkpoint, objective, theta0)


def test_a_checkpoint_of_version_0_1_0_resumes_with_a_warning():
    objective, theta0 = cases.fixture_objective()
    path = os.path.join(os.path.dirname(__file__), "fixtures", cases.FIXTURE_CHECKPOINT)
    with pytest.warns(UserWarning, match="could not be verified") as record:
        result = NewtonCG(max_iter=4, **cases.FIXTURE_NEWTON).minimize(objective, theta0,
                                                                       resume=path)
    assert result.nit == 4
    assert "C, loss, network, data" in str(record[0].message)


# ---------------------------------------------------------------- estimator
def _estimator_data(seed=0):
    X, y, _ = cases.fixture_images(seed=seed)
    return X, y


@pytest.mark.parametrize("change, data_seed, message", [
    (dict(C=100.0), 0, "C is 1.0 in the checkpoint but 100.0 here"),
    (dict(loss="squared"), 0, "loss is 'softmax'"),
    (dict(normalize=False), 0, "the data differ"),
    ({}, 1, "the data differ"),
])
def test_estimator_refuses_another_problem(tmp_path, change, data_seed, message):
    params = dict(cases.fixture_model_params(), max_iter=2, checkpoint=tmp_path / "ck.npz")
    X, y = _estimator_data()
    CNNClassifier(**params).fit(X, y)
    X2, y2 = _estimator_data(data_seed)
    assert X2.shape == X.shape
    with pytest.raises(ValueError, match="does not match this run") as info:
        CNNClassifier(**dict(params, max_iter=3, **change)).fit(X2, y2,
                                                                 resume=tmp_path / "ck.npz")
    assert message in str(info.value)
    # the same settings and data resume
    clf = CNNClassifier(**dict(params, max_iter=3)).fit(X, y, resume=tmp_path / "ck.npz")
    assert clf.n_iter_ == 3


# ---------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def cli_checkpoint(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_fp")
    write_idx_dir(tmp / "a", np.random.default_rng(0), n_train=40, n_test=5)
    write_idx_dir(tmp / "b", np.random.default_rng(1), n_train=40, n_test=5)
    ck = tmp / "ck.npz"
    assert main(["train", "--data-dir", str(tmp / "a"), "--max-iter", "1", "--seed", "0",
                 "--gn-mode", "rop", "--subsample", "0.5", "--threads", "1", "--quiet",
                 "--checkpoint", str(ck)]) == 0
    return tmp, ck


@pytest.mark.parametrize("extra, message", [
    (["--C", "100"], "C is 15.0 in the checkpoint but 100.0 here"),  # C="auto": 600 / 40
    (["--loss", "softmax"], "loss is 'squared' in the checkpoint but 'softmax' here"),
    (["--data-dir", "b"], "the data differ"),
])
def test_cli_refuses_another_problem(capsys, cli_checkpoint, extra, message):
    tmp, ck = cli_checkpoint
    extra = [str(tmp / "b") if e == "b" else e for e in extra]
    data = [] if "--data-dir" in extra else ["--data-dir", str(tmp / "a")]
    before = ck.read_bytes()
    capsys.readouterr()
    code = main(["train", *data, "--max-iter", "2", "--gn-mode", "rop", "--subsample", "0.5",
                 "--threads", "1", "--quiet", "--resume", str(ck), *extra])
    err = capsys.readouterr().err
    assert code == 1
    assert "does not match this run" in err and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert ck.read_bytes() == before
