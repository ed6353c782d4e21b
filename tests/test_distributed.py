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
from cases import TESTS_DIR, run_python

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
                          text=True, timeout=timeout, env=env, cwd=TESTS_DIR)


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
    proc = run_python("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


# ---------------------------------------------------------------- the command line
# simpleNN's C (the default C="auto" is 600 / 90 here: a weaker regularization whose
# worse-conditioned CG amplifies the reduction order's rounding past 1e-10 in f)
CLI = ["train", "--n-train", "90", "--n-test", "30", "--dtype", "float64", "--seed", "3",
       "--subsample", "0.2", "--batch-size", "32", "--quiet", "--C", "0.01"]
NEWTON = ["--max-iter", "3"]
SGD_OPTIONS = ["--solver", "sgd", "--epochs", "2", "--sgd-batch-size", "16", "--lr", "0.001"]


def cli_files(tmp_path, tag, n_proc, extra):
    """Run the command line (n_proc None: one process without MPI); its history and θ."""
    history, model = tmp_path / f"{tag}.json", tmp_path / f"{tag}.npz"
    args = [*CLI, *extra, "--history", str(history), "--out", str(model)]
    if n_proc is None:
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        proc = run_python("-m", "newtoncnn", *args, timeout=TIME_LIMIT, env=env)
    else:
        proc = mpirun(n_proc, "-m", "newtoncnn", *args, "--mpi")
    assert proc.returncode == 0, proc.stderr
    from newtoncnn.estimator import CNNClassifier
    rows = json.loads(history.read_text())
    return {"f": np.array([r["f"] for r in rows["history"]]),
            "cg": np.array([r.get("cg_iters", 0) for r in rows["history"]]),
            "x": CNNClassifier.load(model).theta_, "n_train": rows["n_train"],
            "stdout": proc.stdout}


@needs_mpi
@pytest.mark.parametrize("solver, extra, counts", [("newton", NEWTON, (1, 2, 3)),
                                                   ("sgd", SGD_OPTIONS, (2,))])
def test_command_line_with_mpi_reproduces_one_process(tmp_path, solver, extra, counts):
    want = cli_files(tmp_path, "single", None, extra)
    assert want["f"][-1] < want["f"][0]
    for n_proc in counts:
        got = cli_files(tmp_path, f"mpi{n_proc}", n_proc, extra)
        assert_same_run(got, want)
        assert got["n_train"] == 90
        # process 0 alone prints: one summary
        assert got["stdout"].count("status ") == 1, got["stdout"]


@needs_mpi
def test_resume_is_read_by_every_process(tmp_path):
    want = cli_files(tmp_path, "single", None, ["--max-iter", "3"])
    ck = tmp_path / "run.ck.npz"
    cli_files(tmp_path, "first", 2, ["--max-iter", "2", "--checkpoint", str(ck)])
    got = cli_files(tmp_path, "resumed", 3, ["--max-iter", "3", "--resume", str(ck)])
    assert_same_run(got, want)


def failing_run(n_proc, rank, after):
    """The command line under MPI with process ``rank`` raising at its ``after``-th
    gradient (the others then wait in an Allreduce that it never joins)."""
    code = ("import sys\n"
            "from mpi4py import MPI\n"
            "from newtoncnn.objective import CNNObjective\n"
            f"if MPI.COMM_WORLD.Get_rank() == {rank}:\n"
            "    calls = []\n"
            "    original = CNNObjective.loss_sum_grad\n"
            "    def failing(self, *args, **kw):\n"
            "        calls.append(1)\n"
            f"        if len(calls) == {after}:\n"
            "            raise RuntimeError('injected failure')\n"
            "        return original(self, *args, **kw)\n"
            "    CNNObjective.loss_sum_grad = failing\n"
            "from newtoncnn.cli import main\n"
            f"sys.exit(main({CLI + ['--max-iter', '20', '--mpi']!r}))\n")
    return mpirun(n_proc, "-c", code)


@needs_mpi
def test_a_failing_process_ends_every_process_with_an_error():
    start = time.monotonic()
    proc = failing_run(3, rank=1, after=3)  # mid-run: the third Newton iteration
    assert time.monotonic() - start < TIME_LIMIT
    assert proc.returncode != 0
    assert "injected failure" in proc.stderr
    assert "process 1 of 3 failed; aborting every process" in proc.stderr


@needs_mpi
def test_processes_that_disagree_stop_with_an_error_not_a_hang(tmp_path):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1")
    args = [sys.executable, "-m", "newtoncnn", *CLI, "--max-iter", "1", "--mpi"]
    # MPMD launch: process 1 gets another seed
    cmd = [MPIEXEC, *oversubscribe(), "-n", "1", *args, ":", "-n", "1", *args[:-1],
           "--seed", "4", "--mpi"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIME_LIMIT, env=env,
                          cwd=TESTS_DIR)
    assert proc.returncode != 0
    assert "disagree on the command line" in proc.stderr
    assert "('seed', 3)" in proc.stderr and "('seed', 4)" in proc.stderr


@needs_mpi
def test_objective_checks_the_problem_and_shards():
    code = ("from mpi4py import MPI\n"
            "import distributed_worker as w\n"
            "from newtoncnn.distributed import DistributedObjective, DisagreementError,"
            " CollectiveError\n"
            "net, X, y, _ = w.problem()\n"
            "rank = MPI.COMM_WORLD.Get_rank()\n"
            "try:\n"
            "    DistributedObjective(net, X, y, C=0.1 if rank == 0 else 0.2)\n"
            "except DisagreementError as exc:\n"
            "    print(rank, 'disagree', exc)\n"
            "try:\n"
            "    DistributedObjective(net, X[:0] if rank == 1 else X, y[:0] if rank == 1 else y)\n"
            "except CollectiveError as exc:\n"
            "    print(rank, 'empty', exc)\n"
            "obj = DistributedObjective(net, X, y)\n"
            "print(rank, 'l', obj.n_samples, obj.offset)\n"
            "from newtoncnn.estimator import CNNClassifier\n"
            "for params in ({'max_time': 5.0, 'random_state': 0}, {'random_state': None}):\n"
            "    try:\n"
            "        CNNClassifier(**params).fit(X, y, comm=MPI.COMM_WORLD)\n"
            "    except CollectiveError as exc:\n"
            "        print(rank, 'estimator', exc)\n")
    proc = mpirun(2, "-m", "mpi4py", "-c", code)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for rank in (0, 1):
        assert f"{rank} disagree the 2 processes disagree on the problem" in out
        assert f"{rank} empty process 1 of 2 failed: ValueError: X must hold at least one" in out
        assert f"{rank} l {2 * worker.N_INSTANCES} {rank * worker.N_INSTANCES}" in out
        assert f"{rank} estimator process 0 of 2 failed: ValueError: max_time is not" in out
        assert f"{rank} estimator process 0 of 2 failed: ValueError: random_state must" in out


@needs_mpi
def test_abort_on_error_ends_a_script_whose_process_raised():
    # without the hook, process 0 would wait in the Allreduce forever
    code = ("import numpy as np\n"
            "from mpi4py import MPI\n"
            "from newtoncnn.distributed import abort_on_error\n"
            "abort_on_error()\n"
            "if MPI.COMM_WORLD.Get_rank() == 1:\n"
            "    raise RuntimeError('injected failure')\n"
            "MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, np.zeros(3))\n"
            "print('not reached')\n")
    start = time.monotonic()
    proc = mpirun(2, "-c", code)
    assert time.monotonic() - start < TIME_LIMIT
    assert proc.returncode != 0
    assert "injected failure" in proc.stderr and "not reached" not in proc.stdout


@needs_mpi
@pytest.mark.parametrize("n_proc", [2, 3])
def test_estimator_scaling_warm_start_and_early_stopping_with_comm(tmp_path, n_proc):
    want = worker.estimator_run()
    code = ("import sys, numpy as np\n"
            "from mpi4py import MPI\n"
            "import distributed_worker as w\n"
            "out = w.estimator_run(MPI.COMM_WORLD)\n"
            "if MPI.COMM_WORLD.Get_rank() == 0:\n"
            f"    np.savez({str(tmp_path / 'run.npz')!r}, **out)\n"
            "else:\n"
            "    np.savez(f'{sys.argv[1]}', **out)\n")
    proc = mpirun(n_proc, "-m", "mpi4py", "-c", code, str(tmp_path / "last.npz"))
    assert proc.returncode == 0, proc.stderr
    for path in ("run.npz", "last.npz"):  # process 0 and the others: the same scaling
        with np.load(tmp_path / path) as got:
            for name, _, _ in worker.SCALINGS:
                assert str(got[f"{name}_rule"]) == str(want[f"{name}_rule"])
                np.testing.assert_allclose(got[f"{name}_scale"], want[f"{name}_scale"],
                                           rtol=1e-12)
                np.testing.assert_allclose(got[f"{name}_mean"], want[f"{name}_mean"],
                                           rtol=1e-12, atol=1e-14)
            # the standardized float data: the fit and its warm start as on one process
            assert float(got["C"]) == float(want["C"]) == 600 / worker.N_INSTANCES
            np.testing.assert_allclose(got["scale"], want["scale"], rtol=1e-12)
            for key in ("x", "x_warm", "loss_curve"):
                np.testing.assert_allclose(got[key], want[key], rtol=1e-8, atol=1e-12)
            assert got["loss_curve"].size == 5
            message = str(got["early_stopping"])
            assert "early_stopping=True is not supported with comm" in message
    assert str(want["early_stopping"]) == "accepted"
    assert float(want["standardize_scale"]) > 10  # far from 1: a wrong scale would show
    assert not np.allclose(want["x"], want["x_warm"])  # the warm start moved on
