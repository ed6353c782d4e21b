"""Property-based fuzzing of the public surface (issue 10): constructors, the objective,
the Gauss-Newton operators, both optimizers, the estimator, the file loaders and the
command line's options.

Each call either works or raises ValueError/TypeError naming the argument or the
file (``fuzz.works_or_names``). The hypothesis profile is registered in
conftest.py: deterministic (derandomized), a modest number of examples by
default so the whole suite stays fast; ``NEWTONCNN_FUZZ=long`` runs more.
The examples tried per test are printed at the end of the run.
"""
import json
import numbers
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cases
import tamper
from fuzz import SCALARS, TRIED, kwargs_of, small_int, works_or_names
from newtoncnn import (CNN, SGD, CNNObjective, Conv, Dense, MaxPool, NewtonCG, load_checkpoint,
                       paper_network)
from newtoncnn.cli import build_parser, main
from newtoncnn.estimator import CNNClassifier

NO_FIXTURE_CHECK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module", autouse=True)
def report_examples():
    yield
    total = sum(TRIED.values())
    lines = [f"  {name}: {count}" for name, count in sorted(TRIED.items())]
    print(f"\nfuzz: {total} examples tried\n" + "\n".join(lines))


# ---------------------------------------------------------------- layers and networks
LAYER_NAMES = {Conv: ("Conv", "filters", "kernel_size", "stride", "padding", "argument"),
               MaxPool: ("MaxPool", "pool_size", "argument"),
               Dense: ("Dense", "units", "argument")}


@given(kind=st.sampled_from([Conv, MaxPool, Dense]), args=st.lists(SCALARS, max_size=5))
def test_layer_constructors(kind, args):
    TRIED["layer constructors"] += 1
    layer = works_or_names(lambda: kind(*args), *LAYER_NAMES[kind])
    if layer is not None:
        assert all(isinstance(v, numbers.Integral) and v >= 0 for v in vars(layer).values())


def _layer():
    return st.one_of(
        st.builds(Conv, st.integers(1, 3), st.integers(1, 5), st.integers(1, 3),
                  st.integers(0, 3)),
        st.builds(MaxPool, st.integers(1, 3)),
        st.builds(Dense, st.integers(1, 4)),
        SCALARS)


NETWORK_NAMES = ("input_shape", "layers", "layer", "loss", "dtype", "Conv", "MaxPool", "Dense",
                 "pool", "kernel")


@given(input_shape=st.one_of(st.tuples(small_int(1, 3), small_int(1, 12), small_int(1, 12)),
                             SCALARS),
       layers=st.one_of(st.lists(_layer(), max_size=5), SCALARS),
       loss=st.one_of(st.sampled_from(["squared", "softmax"]), SCALARS),
       dtype=st.one_of(st.sampled_from(["float32", "float64", np.float64]), SCALARS))
def test_cnn_constructor_and_forward(input_shape, layers, loss, dtype):
    TRIED["CNN"] += 1
    net = works_or_names(lambda: CNN(input_shape, layers, loss=loss, dtype=dtype),
                         *NETWORK_NAMES)
    if net is None:
        return
    X = np.random.default_rng(0).standard_normal((2,) + net.input_shape)
    z = net.forward(net.init_params(0), X)
    assert z.shape == (2, net.n_classes) and np.isfinite(z).all()


@given(input_shape=st.one_of(st.tuples(small_int(1, 2), small_int(1, 12), small_int(1, 12)),
                             SCALARS),
       n_classes=small_int(1, 5), loss=st.one_of(st.just("softmax"), SCALARS),
       dtype=st.one_of(st.just("float64"), SCALARS))
def test_paper_network(input_shape, n_classes, loss, dtype):
    TRIED["paper_network"] += 1
    net = works_or_names(lambda: paper_network(input_shape, n_classes, loss, dtype),
                         "input_shape", "n_classes", "units", "loss", "dtype", "layer", "pool")
    if net is not None:
        assert net.n_classes == n_classes


# ---------------------------------------------------------------- objective and operators
NET = CNN((1, 6, 6), [Conv(2, 3, padding=1), MaxPool(2), Dense(3)], dtype="float64")


def _array():
    shapes = st.one_of(st.just((4, 1, 6, 6)), st.just((4, 6, 6)),
                       st.lists(st.integers(0, 6), max_size=5).map(tuple))
    dtypes = st.sampled_from(["f8", "f4", "u1", "i8", "?", "c16", "U1", "O"])
    return st.tuples(shapes, dtypes).map(lambda sd: np.ones(sd[0], dtype=sd[1]))


@given(X=st.one_of(_array(), SCALARS),
       y=st.one_of(st.lists(st.integers(-2, 4), min_size=0, max_size=6).map(np.array),
                   SCALARS),
       C=st.one_of(st.just(0.1), SCALARS), batch_size=st.one_of(st.just(2), SCALARS),
       theta=st.one_of(st.just("good"), SCALARS, _array()))
def test_objective(X, y, C, batch_size, theta):
    TRIED["CNNObjective"] += 1
    obj = works_or_names(lambda: CNNObjective(NET, X, y, C=C, batch_size=batch_size),
                         "X", "y", "C", "batch_size")
    if obj is None:
        return
    if isinstance(theta, str) and theta == "good":
        theta = NET.init_params(1)
    result = works_or_names(lambda: obj.fun_grad(theta), "theta")
    if result is not None:
        f, g = result
        assert np.isfinite(f) and g.shape == (NET.n_params,)


OBJECTIVE = CNNObjective(NET, np.random.default_rng(0).standard_normal((8, 1, 6, 6)),
                         np.arange(8) % 3, C=0.1, batch_size=3)
THETA = NET.init_params(2)


@given(subset=st.one_of(st.none(), st.lists(st.integers(-2, 9), max_size=5).map(np.array),
                        SCALARS, st.just(np.ones((2, 2), int)), st.just(np.array([0.5]))),
       mode=st.one_of(st.sampled_from(["auto", "jacobian", "rop"]), SCALARS),
       budget=st.one_of(st.none(), st.integers(-10, 10**9), st.floats(-10, 1e9), SCALARS),
       v=st.one_of(st.just("good"), _array(), SCALARS))
def test_gauss_newton_operator(subset, mode, budget, v):
    TRIED["gauss_newton"] += 1
    G = works_or_names(lambda: OBJECTIVE.gauss_newton(THETA, subset, mode=mode,
                                                      memory_budget=budget),
                       "subset", "mode", "memory_budget",
                       allow=(MemoryError,))  # documented: mode="jacobian" over the budget
    if G is None:
        return
    if isinstance(v, str) and v == "good":
        v = np.ones(NET.n_params)
    # scipy's LinearOperator checks v: its messages say "array", "operand" or "dimension"
    Gv = works_or_names(lambda: G @ v, "array", "operand", "dimension")
    if Gv is not None:
        assert np.isfinite(Gv).all()


# ---------------------------------------------------------------- optimizers
NEWTON_PARAMS = ("max_iter", "subsample", "cg_tol", "cg_max_iter", "damping", "damping_drop",
                 "damping_boost", "armijo", "gn_mode", "random_state", "callback", "verbose",
                 "max_halvings", "gtol", "max_time", "validation", "max_failures",
                 "max_damping", "checkpoint_every", "preset", "cg_model_tol",
                 "cg_warm_start", "gradient_sample", "sample_theta", "cg_diag_samples")


def _capped(kwargs, **caps):
    """Numbers in ``kwargs`` that would make a run long replaced by small ones."""
    return {k: (min(v, caps[k]) if k in caps and isinstance(v, (int, float))
                and not isinstance(v, bool) else v) for k, v in kwargs.items()}


@given(kwargs=kwargs_of(NEWTON_PARAMS), x0=st.one_of(st.just("good"), SCALARS, _array()))
def test_newton_arguments(kwargs, x0):
    TRIED["NewtonCG"] += 1
    kwargs = _capped(kwargs, max_iter=3, cg_max_iter=20, max_halvings=20, verbose=0,
                     cg_diag_samples=3)
    opt = works_or_names(lambda: NewtonCG(**kwargs), *NEWTON_PARAMS, "random_state")
    if opt is None:
        return
    if isinstance(x0, str) and x0 == "good":
        x0 = THETA
    result = works_or_names(lambda: opt.minimize(OBJECTIVE, x0), "x0", "theta")
    if result is not None:
        assert np.isfinite(result.x).all()


SGD_PARAMS = ("lr", "momentum", "batch_size", "epochs", "decay", "random_state", "callback",
              "verbose", "max_time", "validation")


@given(kwargs=kwargs_of(SGD_PARAMS), x0=st.one_of(st.just("good"), SCALARS, _array()))
def test_sgd_arguments(kwargs, x0):
    TRIED["SGD"] += 1
    kwargs = _capped(kwargs, epochs=2, verbose=0)
    opt = works_or_names(lambda: SGD(**kwargs), *SGD_PARAMS)
    if opt is None:
        return
    if isinstance(x0, str) and x0 == "good":
        x0 = THETA
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a huge lr overflows: NON_FINITE
        works_or_names(lambda: opt.minimize(OBJECTIVE, x0), "x0", "theta")


# ---------------------------------------------------------------- estimator
ESTIMATOR_PARAMS = ("layers", "solver", "loss", "C", "dtype", "batch_size", "max_iter",
                    "subsample", "cg_tol", "cg_max_iter", "damping", "gn_mode", "lr",
                    "momentum", "sgd_batch_size", "epochs", "normalize", "random_state",
                    "verbose", "n_threads", "max_time", "checkpoint_every", "preset")
ESTIMATOR_DATA = cases.fixture_images(n=12)


@settings(max_examples=max(5, settings().max_examples // 3))
@given(kwargs=kwargs_of(ESTIMATOR_PARAMS, st.one_of(SCALARS, st.lists(_layer(), max_size=3))))
def test_estimator_arguments(kwargs):
    TRIED["CNNClassifier"] += 1
    kwargs = _capped(kwargs, max_iter=2, epochs=1, cg_max_iter=10, verbose=0, n_threads=2)
    X, y, X_new = ESTIMATOR_DATA
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = works_or_names(lambda: CNNClassifier(**kwargs).fit(X, y), *ESTIMATOR_PARAMS,
                             "layer", "pool", "kernel", "Conv", "Dense", "MaxPool", "image")
    if clf is not None:
        assert set(clf.predict(X_new)) <= set(clf.classes_)


# ---------------------------------------------------------------- loaders
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz_files")
    X, y, _ = cases.fixture_images()
    model = CNNClassifier(**dict(cases.fixture_model_params(), max_iter=1)).fit(X, y).save(
        tmp / "model.npz")
    ck = tmp / "ck.npz"
    objective, theta0 = cases.fixture_objective()
    NewtonCG(max_iter=2, checkpoint=ck, **cases.FIXTURE_NEWTON).minimize(objective, theta0)
    return _Files(model=open(model, "rb").read(), checkpoint=ck.read_bytes(), tmp=tmp)


class _Files(dict):
    """The pristine files (a short repr in hypothesis' reports)."""

    def __repr__(self):
        return "<the saved model and checkpoint>"


def _paths(meta, prefix=()):
    """Every key path of a JSON document."""
    if isinstance(meta, dict):
        items = meta.items()
    elif isinstance(meta, list):
        items = enumerate(meta)
    else:
        return
    for key, value in items:
        yield prefix + (key,)
        yield from _paths(value, prefix + (key,))


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
              st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=6)


def _mutated(files, kind, draw):
    """A copy of the pristine file ``kind`` mutated as a hostile user would (byte flips,
    truncation, or a JSON entry removed or replaced, sometimes an array too); its path."""
    TRIED[kind] += 1
    data = files[kind]
    path = files["tmp"] / f"mutated_{kind}.npz"
    how = draw(st.sampled_from(["flip", "truncate", "remove", "replace"]))
    if how == "flip":
        data = bytearray(data)
        for pos in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=4)):
            data[pos] ^= draw(st.integers(1, 255))
    elif how == "truncate":
        data = data[:draw(st.integers(0, len(data) - 1))]
    if how in ("flip", "truncate"):
        path.write_bytes(bytes(data))
        return path
    path.write_bytes(data)
    parts = tamper.members(path)
    meta = tamper.meta_of(parts)
    keys = draw(st.sampled_from(list(_paths(meta))))
    target = meta
    for k in keys[:-1]:
        target = target[k]
    if how == "remove":
        del target[keys[-1]]
    else:
        target[keys[-1]] = draw(JSON_VALUES)
    parts = tamper.with_meta(parts, json.dumps(meta))
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(set(parts) - {"meta"})))
        parts[name] = tamper.npy(draw(_array()))
    return tamper.write_members(path, parts)


@NO_FIXTURE_CHECK
@given(data=st.data())
def test_mutated_model_files(files, data):
    path = _mutated(files, "model", data.draw)
    clf = works_or_names(lambda: CNNClassifier.load(path), str(path))
    if clf is not None:  # a file that loads predicts
        labels = works_or_names(lambda: clf.predict(ESTIMATOR_DATA[2]), "X", "non-finite")
        if labels is not None:
            assert set(labels) <= set(clf.classes_)


@NO_FIXTURE_CHECK
@given(data=st.data())
def test_mutated_checkpoints(files, data):
    path = _mutated(files, "checkpoint", data.draw)
    if works_or_names(lambda: load_checkpoint(path), str(path)) is not None:
        # a checkpoint that loads resumes, or says why not
        objective, theta0 = cases.fixture_objective()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not be verified"
            works_or_names(lambda: NewtonCG(max_iter=3, **cases.FIXTURE_NEWTON).minimize(
                objective, theta0, resume=path), str(path))


# ---------------------------------------------------------------- command line
CLI_VALUES = st.one_of(st.sampled_from(["0", "1", "-1", "0.5", "nan", "inf", "1e400", "abc", "",
                                        "3000000", "squared", "softmax", "rop", "sgd", "fast",
                                        "float64", "2147483647", "2147483648", "3000000000"]),
                       st.integers(-5, 50).map(str), st.floats(-2, 2).map(repr),
                       st.text(max_size=3))
CLI_OPTIONS = ("--loss", "--C", "--dtype", "--batch-size", "--solver", "--max-iter", "--preset",
               "--subsample", "--cg-tol", "--cg-max-iter", "--damping", "--gn-mode",
               "--checkpoint-every", "--lr", "--momentum", "--sgd-batch-size", "--epochs",
               "--max-time", "--seed", "--n-test", "--n-train", "--threads")


@NO_FIXTURE_CHECK
@given(options=st.lists(st.tuples(st.sampled_from(CLI_OPTIONS), CLI_VALUES), max_size=4))
def test_cli_options(capsys, options):
    """Parse and validate: the run itself is cut to no iterations on 20 images."""
    TRIED["command line"] += 1
    argv = ["train"] + [x for pair in options for x in pair]
    # threads are real: 5 .. 2**31 - 1 would start that many (sizes beyond a C int must fail)
    assume(not any(o == "--threads" and v.lstrip("-").isdigit() and 4 < int(v) < 2**31
                   for o, v in options))
    argv += ["--max-iter", "0", "--epochs", "0", "--n-train", "20", "--n-test", "5", "--quiet",
             "--no-validation", "--max-time", "60"]
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    if code == 0:
        return
    assert code in (1, 2), (argv, code, err)
    line = err.strip().splitlines()[-1]
    assert "Traceback" not in err and "error:" in line
    named = [o for o, _ in options] + ["--" + w for w in ("max-iter", "epochs", "n-train")]
    assert any(o in line or o.lstrip("-").replace("-", "_") in line for o in named) or \
        "network" in line, (argv, line)


def test_build_parser_knows_the_fuzzed_options():
    """The fuzzed option list is the parser's (a renamed option must be fuzzed too)."""
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    known = {o for a in train._actions for o in a.option_strings}
    assert set(CLI_OPTIONS) <= known
