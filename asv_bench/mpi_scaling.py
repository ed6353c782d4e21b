"""Data-parallel scaling of one Newton iteration over MPI (newtoncnn.distributed).

    python asv_bench/mpi_scaling.py                       # 1 and 2 processes, 5 repeats
    python asv_bench/mpi_scaling.py --processes 1 2 4 --repeat 3 --n 12000

One Newton iteration of the paper's network (``newtoncnn.paper_network``, float32) on the
first ``--n`` Fashion-MNIST training images (``/usr/share/datasets/fashion-mnist`` or
``$NEWTONCNN_DATA``), as NewtonCG does it: f + ∇f, the Gauss-Newton operator on a 5 %
subset, ``--products`` products (CG's) and the line search's accepted first trial
(f + ∇f at the new point). Each process reads only its shard and runs one thread. The
script launches itself under ``mpiexec -n K`` for each K, and prints per phase the median
time over the repeats, the speed-up against one process, the share of the time spent in
Allreduce (waiting for slower processes included) and the bytes each Allreduce carries.

It then prints a model of a cluster (stated bandwidth and latency, the compute times
measured here) for Fashion-MNIST-sized data and 100x more.
"""
import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

PHASES = ("f+grad", "build G", "products", "line search")


# ---------------------------------------------------------------- one process of a run
def worker(args):
    from mpi4py import MPI

    import newtoncnn
    from newtoncnn.datasets import Normalizer, load_shard
    from newtoncnn.distributed import DistributedObjective, fit_normalizer
    from newtoncnn.subsampling import subsample_blocks

    newtoncnn.set_num_threads(1)
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    data = load_shard(args.data, rank, size, n_train=args.n)
    norm = fit_normalizer(Normalizer(dtype="float32").fit(data.X_train), data.X_train, comm)
    X = norm.transform(data.X_train)
    net = newtoncnn.paper_network((1, 28, 28), 10)
    obj = DistributedObjective(net, X, data.y_train, comm=comm, C=0.01, batch_size=1000)
    theta = net.init_params(0)
    subset = next(subsample_blocks(obj.n_samples, 0.05, random_state=0))
    v = np.random.default_rng(1).standard_normal(net.n_params).astype(np.float32)
    runs = []
    for _ in range(args.repeat + 1):  # the first run warms up (page faults, pools)
        comm.Barrier()
        times, cpu = {}, {}
        before = obj.traffic

        def phase(name, work):
            t0, c0 = time.perf_counter(), time.process_time()
            out = work()
            times[name] = time.perf_counter() - t0
            cpu[name] = time.process_time() - c0
            return out

        f, g = phase("f+grad", lambda: obj.fun_grad(theta))
        G = phase("build G", lambda: obj.gauss_newton(theta, subset=subset, mode="auto"))

        def products():
            w = v
            for _ in range(args.products):
                w = G @ w
                w /= np.linalg.norm(w)
            return w

        s = phase("products", products)
        del G
        phase("line search", lambda: obj.fun_grad(theta - 1e-3 * s))
        after = obj.traffic
        comm_s = after["seconds"] - before["seconds"]
        nbytes = after["bytes"] - before["bytes"]
        calls = after["calls"] - before["calls"]
        # the slowest process sets the pace: report its times
        total = sum(times.values())
        slowest = comm.allreduce((total, rank), op=MPI.MAX)[1]
        row = comm.bcast({"times": times, "cpu": cpu, "comm": comm_s, "bytes": nbytes,
                          "calls": calls, "total": total, "cpu_total": sum(cpu.values())},
                         root=slowest)
        runs.append(row)
    if rank == 0:
        print(json.dumps({"processes": size, "n": obj.n_samples, "subset": int(subset.size),
                          "n_params": net.n_params, "runs": runs[1:]}))


# ---------------------------------------------------------------- the driver
def launch(k, args):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("mpiexec not found: pip install 'newtoncnn[mpi]'")
    version = subprocess.run([mpiexec, "--version"], capture_output=True, text=True).stdout
    flags = ["--oversubscribe"] if "Open MPI" in version else []
    cmd = [mpiexec, *flags, "-n", str(k), sys.executable, "-m", "mpi4py", __file__, "--worker",
           "--n", str(args.n), "--repeat", str(args.repeat), "--products", str(args.products),
           "--data", args.data]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"mpiexec -n {k} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median(runs, key):
    return statistics.median(key(r) for r in runs)


def report(results, args):
    base = None
    print(f"one Newton iteration: paper network ({results[0]['n_params']} parameters, "
          f"float32), l = {results[0]['n']}, |S| = {results[0]['subset']}, "
          f"{args.products} products; 1 thread per process; median of {args.repeat}")
    head = "| processes | " + " | ".join(f"{p} s" for p in PHASES) + \
        " | total s | speed-up | CPU s | CPU speed-up | in Allreduce | Allreduces | " \
        "payload bytes |"
    print(head)
    print("|" + "---:|" * (len(PHASES) + 8))
    cpu_base = None
    for res in results:
        runs = res["runs"]
        total = median(runs, lambda r: r["total"])
        base = base or total
        share = median(runs, lambda r: r["comm"] / r["total"])
        cpu = median(runs, lambda r: r["cpu_total"])
        cpu_base = cpu_base or cpu
        cells = [f"{median(runs, lambda r, p=p: r['times'][p]):.3f}" for p in PHASES]
        print(f"| {res['processes']} | " + " | ".join(cells) +
              f" | {total:.3f} | {base / total:.2f} | {cpu:.3f} | {cpu_base / cpu:.2f} | "
              f"{100 * share:.1f} % | "
              f"{runs[0]['calls']} | {runs[0]['bytes']:,} |")
    return results[0]


def allreduce_seconds(nbytes, k, bandwidth, latency):
    """Ring Allreduce (reduce-scatter + allgather): 2(k-1) steps of nbytes/k each."""
    if k == 1:
        return 0.0
    return 2 * (k - 1) * (latency + nbytes / k / bandwidth)


def model(one, args):
    """Time per iteration on a cluster: the measured one-process compute split over k
    processes plus ring Allreduces at the stated network speeds."""
    runs = one["runs"]
    n, sub = one["n"], one["subset"]
    n_params = one["n_params"]
    # CPU seconds: what the computation costs without the other jobs of a shared machine
    comp = {p: median(runs, lambda r, p=p: r["cpu"][p]) for p in PHASES}
    per_inst_fg = (comp["f+grad"] + comp["line search"]) / 2 / n        # s per instance
    per_inst_build = comp["build G"] / sub
    per_inst_prod = comp["products"] / args.products / sub
    networks = [("10 Gb/s Ethernet", 1.25e9, 25e-6), ("100 Gb/s InfiniBand", 12.5e9, 2e-6)]
    print()
    print("model: per-process compute = the one-process CPU time per instance measured "
          f"here (f+grad {per_inst_fg * 1e3:.3f} ms, build {per_inst_build * 1e3:.3f} ms, "
          f"product {per_inst_prod * 1e3:.3f} ms) x l/k for f+grad (twice) and x |S|/k "
          "for the build and each product, perfectly balanced; Allreduce = ring, "
          "2(k-1)(latency + m/(k bandwidth)); m = 4 n_params bytes per product, "
          f"8 (n_params + 1) per f+grad; {args.products} products per iteration (a simpleNN "
          "iteration may do up to 250)")
    for label, l in (("Fashion-MNIST, l = 60,000", 60000),
                     ("100x larger, l = 6,000,000", 6000000)):
        s = math.ceil(0.05 * l)
        print(f"\n{label}, |S| = {s:,}")
        print("| processes | compute s | " +
              " | ".join(f"comm s ({name}) | speed-up ({name})" for name, _, _ in networks) +
              " |")
        print("|" + "---:|" * (2 + 2 * len(networks)))
        t1 = None
        for k in (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024):
            compute = (2 * per_inst_fg * l + (per_inst_build + args.products * per_inst_prod) * s
                       ) / k
            t1 = t1 or compute
            cells = []
            for _, bw, lat in networks:
                comm = (2 * allreduce_seconds(8 * (n_params + 1), k, bw, lat) +
                        args.products * allreduce_seconds(4 * n_params, k, bw, lat))
                cells += [f"{comm:.4f}", f"{t1 / (compute + comm):.1f}"]
            print(f"| {k} | {compute:.3f} | " + " | ".join(cells) + " |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--n", type=int, default=12000, help="training images (default 12000)")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--products", type=int, default=20)
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", metavar="FILE", help="also write the raw results here")
    args = p.parse_args()
    if args.worker:
        return worker(args)
    results = [launch(k, args) for k in args.processes]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    one = report(results, args)
    if one["processes"] == 1:
        model(one, args)


if __name__ == "__main__":
    main()
