"""Data-parallel training over MPI (newtoncnn.distributed), run through ``mpiexec`` subprocesses.

1, 2 and 3 processes on the same float64 problem and seed must give the single-process
run: f after every iteration, the CG counts and the final θ to 1e-10 relative.
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import distributed_worker as worker

HERE = os.path.dirname(os.path.abspath(__file__))
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
MPIEXEC = shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(
    not (HAVE_MPI4PY and MPIEXEC),
    reason="mpi4py or mpiexec not installed (pip install 'newtoncnn[mpi]')")
RTOL = 1e-10
TIME_LIMIT = 60  # seconds: a hung job fails the test instead of the suite


def oversubscribe():
    """Open MPI's flag for more processes than cores (MPICH needs none)."""
    if not hasattr(oversubscribe, "flags"):
        version = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True)
        oversubscribe.flags = ["--oversubscribe"] if "Open MPI" in version.stdout else []
    return oversubscribe.flags


def mpirun(n, *args, timeout=TIME_LIMIT):
    """``mpiexec -n n python ARGS`` from the tests folder, one thread per process."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run([MPIEXEC, *oversubscribe(), "-n", str(n), sys.executable, *args],
                          capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=HERE)


def assert_same_run(got, want):
    np.testing.assert_array_equal(got["cg"], want["cg"])
    assert got["f"].shape == want["f"].shape and got["f"].size > 0
    np.testing.assert_allclose(got["f"], want["f"], rtol=RTOL, atol=0)
    err = np.linalg.norm(got["x"] - want["x"]) / np.linalg.norm(want["x"])
    assert err <= RTOL, err


CASES = ["newton", "jacobian", "fast", "sgd"]


@pytest.fixture(scope="module")
def single():
    """The single-process runs (no MPI at all), computed once."""
    return {case: worker.summary(worker.run(case)) for case in CASES}


@pytest.fixture(scope="module")
def parallel(tmp_path_factory):
    """Every case on 1, 2 and 3 processes (one mpiexec per count): {n: directory}."""
    runs = {}
    for n_proc in (1, 2, 3):
        out = tmp_path_factory.mktemp(f"mpi{n_proc}")
        proc = mpirun(n_proc, "-m", "mpi4py", "distributed_worker.py", str(out), *CASES)
        assert proc.returncode == 0, proc.stderr
        runs[n_proc] = out
    return runs


@needs_mpi
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("n_proc", [1, 2, 3])
def test_processes_reproduce_the_single_process_run(case, n_proc, single, parallel):
    want = single[case]
    with np.load(parallel[n_proc] / f"{case}.npz") as got:
        assert int(got["nit"]) == len(want["f"])
        assert_same_run(dict(got), want)
    # the runs move: a comparison of two runs that stood still would prove nothing
    assert want["f"][-1] < 0.7 * want["f"][0] or case == "sgd" and want["f"][-1] < want["f"][0]


def test_single_process_never_imports_mpi4py():
    code = ("import sys, numpy as np, newtoncnn\n"
            "from newtoncnn.estimator import CNNClassifier\n"
            "X = np.random.default_rng(0).integers(0, 255, (40, 1, 8, 8))\n"
            "y = np.arange(40) % 2\n"
            "CNNClassifier(layers=[newtoncnn.Conv(2, 3), newtoncnn.MaxPool(2)], max_iter=1,"
            " random_state=0).fit(X, y)\n"
            "from newtoncnn.cli import main\n"
            "assert main(['train', '--n-train', '50', '--n-test', '20', '--max-iter', '1',"
            " '--quiet', '--seed', '1']) == 0\n"
            "print('mpi4py' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=HERE, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"
