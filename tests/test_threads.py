"""Thread control: newtoncnn.set_num_threads reaches OpenMP and both OpenBLAS builds
(scipy's, which the conv tiles call, and numpy's), and the passes run BLAS on one
thread while OpenMP runs the tiles. threadpoolctl is the independent observer."""
import numpy as np
import pytest

import newtoncnn
from newtoncnn import threads

threadpoolctl = pytest.importorskip("threadpoolctl")


def _openblas_threads():
    return {info["filepath"]: info["num_threads"] for info in threadpoolctl.threadpool_info()
            if info["internal_api"] == "openblas"}


@pytest.fixture
def restore():
    before = newtoncnn.get_num_threads()
    yield
    newtoncnn.set_num_threads(before)


@pytest.mark.skipif(not threads.blas_controller().lib_controllers,
                    reason="no BLAS that threadpoolctl knows in this process")
@pytest.mark.parametrize("n", [1, 2, 3])
def test_set_num_threads_reaches_every_openblas(n, restore):
    newtoncnn.set_num_threads(n)
    assert newtoncnn.get_num_threads() == n
    counts = _openblas_threads()
    assert len(counts) >= len(threads.blas_controller().lib_controllers)
    assert set(counts.values()) == {n}


@pytest.mark.skipif(not threads.blas_controller().lib_controllers,
                    reason="no BLAS that threadpoolctl knows in this process")
def test_blas_is_single_threaded_inside_passes_and_restored_after(restore):
    newtoncnn.set_num_threads(2)
    with threads.blas_single_threaded():
        assert set(_openblas_threads().values()) == {1}
    assert set(_openblas_threads().values()) == {2}
    # restored on errors too
    with pytest.raises(RuntimeError):
        with threads.blas_single_threaded():
            raise RuntimeError("boom")
    assert set(_openblas_threads().values()) == {2}


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="n_threads must be a positive integer"):
        newtoncnn.set_num_threads(bad)


def test_forward_leaves_blas_threads_as_set(restore):
    newtoncnn.set_num_threads(2)
    net = newtoncnn.paper_network((1, 12, 12), 3, dtype="float64")
    X = np.random.default_rng(0).standard_normal((5, 1, 12, 12))
    net.forward(net.init_params(0), X)
    assert set(_openblas_threads().values()) == {2}


@pytest.mark.skipif(not threads.blas_controller().lib_controllers,
                    reason="no BLAS that threadpoolctl knows in this process")
def test_a_fit_holds_blas_to_one_thread_between_passes_too(restore, monkeypatch):
    # the optimizer's vector work between passes: BLAS threads there only spin against
    # the OpenMP team (a 2-thread fit of digits took twice as long)
    from newtoncnn import estimator, stopping
    seen = []
    call = stopping.NoImprovement.__call__

    def observing_call(self, x, row):
        seen.append((newtoncnn.get_num_threads(), set(_openblas_threads().values())))
        return call(self, x, row)

    monkeypatch.setattr(stopping.NoImprovement, "__call__", observing_call)
    newtoncnn.set_num_threads(1)
    X = np.random.default_rng(0).standard_normal((12, 1, 6, 6))
    clf = estimator.CNNClassifier(layers=[newtoncnn.Conv(2, 3), newtoncnn.MaxPool(2)],
                                  max_iter=2, n_threads=2, random_state=0)
    clf.fit(X, np.arange(12) % 3)
    assert seen == [(2, {1})] * 2
    # and the process's settings are back as they were
    assert newtoncnn.get_num_threads() == 1 and set(_openblas_threads().values()) == {1}
    newtoncnn.set_num_threads(3)
    clf.fit(X, np.arange(12) % 3)
    assert set(_openblas_threads().values()) == {3}
