"""Every loader checks the whole file and fails with one ValueError naming it (issue 10,
item 10): saved models, checkpoints, the normalizer's state and the archive reader.

A file that loads must also work (predict, resume); a tampered one — missing or
replaced entries, wrong types, shapes that disagree with the declared network,
NaN values, a declared array larger than the file, JSON nested too deeply, a
truncated zip — is refused at load time, and the command line prints one line.
"""
import math

import numpy as np
import pytest

import cases
import tamper
from newtoncnn import NewtonCG, load_checkpoint
from newtoncnn.cli import main
from newtoncnn.estimator import CNNClassifier
from newtoncnn.normalizer import Normalizer

TIB36 = 450_000_000_000  # float64 values: 3.6 TB


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    X, y, _ = cases.fixture_images()
    clf = CNNClassifier(**dict(cases.fixture_model_params(), max_iter=1)).fit(X, y)
    return clf.save(tmp_path_factory.mktemp("model") / "m.npz")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "ck.npz"
    objective, theta0 = cases.fixture_objective()
    NewtonCG(max_iter=2, checkpoint=path, **cases.FIXTURE_NEWTON).minimize(objective, theta0)
    return path


def _set(*keys, value):
    def change(meta):
        d = meta
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return change


def _delete(*keys):
    def change(meta):
        d = meta
        for k in keys[:-1]:
            d = d[k]
        del d[keys[-1]]
    return change


MODEL_TAMPERING = {
    "classes disagree with the outputs": (dict(arrays={"classes": np.array(["a", "b"])}),
                                          "classes"),
    "NaN theta": (dict(arrays={"theta": np.full(114, np.nan)}), "theta"),
    "theta of another size": (dict(arrays={"theta": np.zeros(7)}), "theta"),
    "theta in float32": (dict(arrays={"theta": np.zeros(114, np.float32)}), "theta"),
    "normalizer mean of another shape": (dict(arrays={"normalizer_mean": np.zeros((2, 3))}),
                                         "normalizer_mean"),
    "normalizer mean NaN": (dict(arrays={"normalizer_mean": np.full((1, 6, 6), np.nan)}),
                            "finite"),
    "no params": (dict(change_meta=_delete("params")), "params"),
    "no network": (dict(change_meta=_delete("network")), "network"),
    "params a list": (dict(change_meta=_set("params", value=[1, 2])), "params"),
    "layers a string": (dict(change_meta=_set("params", "layers", value="conv")), "layers"),
    "layer of unknown type": (dict(change_meta=_set("network", "layers", 0,
                                                    value={"type": "LSTM"})), "LSTM"),
    "bad C": (dict(change_meta=_set("params", "C", value=-1)), "C"),
    "bad classes_dtype": (dict(change_meta=_set("classes_dtype", value="nonsense")),
                          "nonsense"),
    "input shape of another network": (dict(change_meta=_set("input_shape",
                                                             value=[1, 8, 8])), "input_shape"),
    "status out of range": (dict(change_meta=_set("result", "status", value=99)), "Status"),
    "history not rows": (dict(change_meta=_set("history", value=[1, 2])), "history"),
    "no theta": (dict(drop=["theta"]), "theta"),
    "theta declared 3.6 TB": (dict(arrays={"theta": tamper.npy_header((TIB36,), "<f8",
                                                                      b"\0" * 240)}), "theta"),
    "object array": (dict(arrays={"classes": tamper.npy_header((2,), "|O", b"\0" * 16)}),
                     "dtype object"),
}


def _model_sizes_are_right(model):
    parts = tamper.members(model)
    assert tamper.array(parts["theta"]).shape == (114,)
    assert tamper.array(parts["normalizer_mean"]).shape == (1, 6, 6)


@pytest.mark.parametrize("case", list(MODEL_TAMPERING))
def test_a_tampered_model_is_refused_naming_the_file(model, tmp_path, case):
    _model_sizes_are_right(model)
    kwargs, word = MODEL_TAMPERING[case]
    path = tamper.edit(model, tmp_path / "bad.npz", **kwargs)
    with pytest.raises(ValueError) as info:
        CNNClassifier.load(path)
    assert str(path) in str(info.value) and word in str(info.value)


def test_json_nested_too_deeply_is_refused(model, checkpoint, tmp_path):
    for src, load in ((model, CNNClassifier.load), (checkpoint, load_checkpoint)):
        parts = tamper.members(src)
        text = tamper.json.dumps(tamper.meta_of(parts))
        text = text[:-1] + ', "deep": ' + tamper.nested(200_000) + "}"
        path = tamper.write_members(tmp_path / "deep.npz", tamper.with_meta(parts, text))
        with pytest.raises(ValueError, match="nested too deeply") as info:
            load(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.9, 0.99])
def test_a_truncated_file_is_refused(model, checkpoint, tmp_path, cut):
    for src, load in ((model, CNNClassifier.load), (checkpoint, load_checkpoint)):
        data = src.read_bytes() if hasattr(src, "read_bytes") else open(src, "rb").read()
        path = tmp_path / "cut.npz"
        path.write_bytes(data[:math.floor(len(data) * cut)])
        with pytest.raises(ValueError) as info:
            load(path)
        assert str(path) in str(info.value)


def test_a_model_that_loads_predicts(model):
    clf = CNNClassifier.load(model)
    _, _, X_new = cases.fixture_images()
    assert set(clf.predict(X_new)) <= set(clf.classes_)


# ---------------------------------------------------------------- checkpoints
CHECKPOINT_TAMPERING = {
    "NaN f": (dict(change_meta=_set("state", "f", value=float("nan"))), "f"),
    "negative lambda": (dict(change_meta=_set("state", "lam", value=-1.0)), "lam"),
    "infinite gnorm": (dict(change_meta=_set("state", "gnorm", value=float("inf"))), "gnorm"),
    "negative nfev": (dict(change_meta=_set("state", "nfev", value=-3)), "nfev"),
    "NaN x": (dict(arrays={"x": np.full(77, np.nan)}), "x"),
    "g of another size": (dict(arrays={"g": np.zeros(5)}), "g"),
    "x declared 3.6 TB": (dict(arrays={"x": tamper.npy_header((TIB36,), "<f8", b"\0" * 616)}),
                          "x"),
    "perm not a permutation": (dict(arrays={"perm": np.zeros(24, np.int64)}), "perm"),
    "no state": (dict(change_meta=_delete("state")), "state"),
    "state a list": (dict(change_meta=_set("state", value=[])), "state"),
    "history a number": (dict(change_meta=_set("history", value=3)), "history"),
    "n_params a string": (dict(change_meta=_set("fingerprint", "n_params", value="77")),
                          "n_params"),
    "no n_samples": (dict(change_meta=_delete("fingerprint", "n_samples")), "n_samples"),
    "dtype unknown": (dict(change_meta=_set("fingerprint", "dtype", value="float16")),
                      "dtype"),
    "bad generator": (dict(change_meta=_set("schedule", "rng", value={"bit_generator": 5})),
                      "generator"),
    "generator state garbage": (dict(change_meta=_set("schedule", "rng", "state",
                                                      value="x")), "generator"),
    "no x": (dict(drop=["x"]), "x"),
    "meta not a string": (dict(arrays={"meta": np.zeros(3)}), "meta"),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_TAMPERING))
def test_a_tampered_checkpoint_is_refused_naming_the_file(checkpoint, tmp_path, case):
    kwargs, word = CHECKPOINT_TAMPERING[case]
    path = tamper.edit(checkpoint, tmp_path / "bad.npz", **kwargs)
    with pytest.raises(ValueError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and word in str(info.value)
    objective, theta0 = cases.fixture_objective()
    with pytest.raises(ValueError):
        NewtonCG(max_iter=3, **cases.FIXTURE_NEWTON).minimize(objective, theta0, resume=path)


def test_the_untampered_checkpoint_resumes(checkpoint):
    objective, theta0 = cases.fixture_objective()
    assert tamper.array(tamper.members(checkpoint)["x"]).shape == (77,)
    result = NewtonCG(max_iter=3, **cases.FIXTURE_NEWTON).minimize(objective, theta0,
                                                                   resume=checkpoint)
    assert result.nit == 3


# ---------------------------------------------------------------- normalizer
@pytest.mark.parametrize("state, word", [
    ({"scale": "abc", "dtype": "float32", "mean": None}, "scale"),
    ({"scale": 255.0, "dtype": "int8", "mean": None}, "dtype"),
    ({"scale": 255.0, "dtype": "float32", "mean": [["a"]]}, "mean"),
    ({"scale": 255.0, "dtype": "float32", "mean": [np.nan]}, "mean"),
    ({"scale": 255.0, "dtype": "float32", "mean": 3.0}, "mean"),
    ({"dtype": "float32", "mean": None}, "scale"),
    ([1, 2], "dict"),
])
def test_normalizer_from_dict_names_what_is_wrong(state, word):
    with pytest.raises(ValueError, match=word):
        Normalizer.from_dict(state)


# ---------------------------------------------------------------- command line
@pytest.mark.parametrize("case", ["classes disagree with the outputs", "NaN theta",
                                  "theta declared 3.6 TB", "no params", "bad classes_dtype"])
def test_evaluate_prints_one_line_for_a_tampered_model(capsys, model, tmp_path, case):
    kwargs, _ = MODEL_TAMPERING[case]
    path = tamper.edit(model, tmp_path / "bad.npz", **kwargs)
    code = main(["evaluate", "--model", str(path), "--n-test", "5"])
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and str(path) in err


@pytest.mark.parametrize("case", ["NaN f", "negative lambda", "x declared 3.6 TB",
                                  "history a number"])
def test_train_resume_prints_one_line_for_a_tampered_checkpoint(capsys, checkpoint, tmp_path,
                                                                case):
    kwargs, _ = CHECKPOINT_TAMPERING[case]
    path = tamper.edit(checkpoint, tmp_path / "bad.npz", **kwargs)
    code = main(["train", "--n-train", "30", "--max-iter", "1", "--resume", str(path)])
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and str(path) in err
