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
