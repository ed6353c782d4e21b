"""One process of the data-parallel tests (tests/test_distributed.py), or the same run in one
process without MPI: ``mpiexec -n K python -m mpi4py distributed_worker.py OUT CASE...``.

Every process builds the same small float64 problem, keeps its contiguous shard of the
instances and runs an optimizer on a :class:`DistributedObjective`; process 0 writes
the history, CG counts and final θ of each case to ``OUT/CASE.npz``.
"""
import sys

import numpy as np

from newtoncnn import CNN, SGD, CNNObjective, Conv, Dense, MaxPool, NewtonCG
from newtoncnn.datasets import shard_bounds

N_INSTANCES = 61  # not a multiple of 2 or 3: the shards differ in size


def problem():
    """(net, X, y, θ0): 61 random 8x8 images in 3 classes, a conv-pool-dense net, float64."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((N_INSTANCES, 1, 8, 8))
    y = rng.integers(0, 3, N_INSTANCES)
    net = CNN((1, 8, 8), [Conv(3, 3, padding=1), MaxPool(2), Dense(3)], dtype="float64")
    return net, X, y, net.init_params(0)


def optimizer(case):
    """The optimizer of a case (the same seed on every process)."""
    if case == "newton":
        return NewtonCG(max_iter=5, subsample=0.3, random_state=3, gn_mode="rop")
    if case == "jacobian":
        return NewtonCG(max_iter=4, subsample=0.2, random_state=4, gn_mode="jacobian")
    if case == "fast":
        return NewtonCG(max_iter=5, preset="fast", gradient_sample=0.2, random_state=5)
    if case == "sgd":
        return SGD(epochs=3, batch_size=8, lr=0.01, momentum=0.5, random_state=6)
    raise ValueError(f"unknown case {case!r}")


def run(case, comm=None):
    """The result of ``case`` in one process (comm None) or on this process's shard."""
    net, X, y, theta0 = problem()
    if comm is None:
        objective = CNNObjective(net, X, y, C=0.1, batch_size=7)
    else:
        from newtoncnn.distributed import DistributedObjective
        start, stop = shard_bounds(N_INSTANCES, comm.Get_rank(), comm.Get_size())
        objective = DistributedObjective(net, X[start:stop], y[start:stop], comm=comm, C=0.1,
                                         batch_size=7)
    return optimizer(case).minimize(objective, theta0)


def summary(result):
    """The arrays the tests compare: f per iteration (or epoch), CG counts, final θ."""
    return {"f": np.array([row["f"] for row in result.history]),
            "cg": np.array([row.get("cg_iters", 0) for row in result.history]),
            "x": np.asarray(result.x), "nit": np.array(result.nit)}


if __name__ == "__main__":
    from mpi4py import MPI
    out = sys.argv[1]
    for case in sys.argv[2:]:
        res = run(case, MPI.COMM_WORLD)
        if MPI.COMM_WORLD.Get_rank() == 0:
            np.savez(f"{out}/{case}.npz", **summary(res))


# ---------------------------------------------------------------- the estimator
SCALINGS = [("pixels", "uint8", True), ("standardize", "float", True),
            ("range", "float", "range"), ("range_uint8", "uint8", "range"),
            ("standardize_uint8", "uint8", "standardize")]


def estimator_run(comm=None):
    """The fitted scalings and an estimator's θ after a fit and a warm-started fit, on this
    process's shard (comm None: all the data, no MPI). The labels are sorted, so with 3
    processes a shard lacks a class; the float images are far from unit scale."""
    from newtoncnn.estimator import CNNClassifier
    from newtoncnn.scaling import fit_scaling
    rng = np.random.default_rng(11)
    images = {"float": rng.normal(3.0, 7.0, (N_INSTANCES, 1, 6, 6)),
              "uint8": rng.integers(0, 256, (N_INSTANCES, 1, 6, 6), dtype=np.uint8)}
    y = np.repeat([4, 7, 9], [20, 20, N_INSTANCES - 40])
    start, stop = (0, N_INSTANCES) if comm is None else shard_bounds(
        N_INSTANCES, comm.Get_rank(), comm.Get_size())
    out = {}
    if comm is not None:
        from newtoncnn.distributed import fit_scaling as fit_all_shards
    for name, kind, normalize in SCALINGS:
        X = images[kind][start:stop]
        norm, rule = (fit_scaling(X, normalize, "float64") if comm is None else
                      fit_all_shards(X, normalize, "float64", comm))
        out[f"{name}_rule"], out[f"{name}_scale"] = np.array(rule), np.array(norm.scale)
        out[f"{name}_mean"] = norm.mean_
    clf = CNNClassifier(layers=[Conv(3, 3, padding=1), MaxPool(2), Dense(3)], max_iter=3,
                        subsample=0.5, batch_size=7, dtype="float64", random_state=2,
                        warm_start=True)
    kw = {} if comm is None else {"comm": comm}
    clf.fit(images["float"][start:stop], y[start:stop], **kw)
    out["x"], out["C"], out["scale"] = clf.theta_, np.array(clf.C_), np.array(
        clf.normalizer_.scale)
    clf.set_params(max_iter=2).fit(images["float"][start:stop], y[start:stop], **kw)
    out["x_warm"], out["loss_curve"] = clf.theta_, np.array(clf.loss_curve_)
    try:
        clf.set_params(early_stopping=True, warm_start=False).fit(
            images["float"][start:stop], y[start:stop], **kw)
        out["early_stopping"] = np.array("accepted")
    except ValueError as exc:
        out["early_stopping"] = np.array(str(exc))
    return out
