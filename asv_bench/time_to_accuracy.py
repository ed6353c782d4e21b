"""Time to accuracy: full Fashion-MNIST, the paper's network, one initial point, float32.

Runs, one after another in one invocation (never two at once: they share the
cores), each for a wall-clock budget:

- ``simplenn``: ``NewtonCG(preset="simplenn")``, simpleNN's exact method;
- ``fast``: ``NewtonCG(preset="fast")``;
- ``fast-no-sample``, ``fast-no-model-stop``, ``fast-no-warm-start``,
  ``fast-no-small-G``, ``fast-no-full-step-damping``: the fast preset with one of
  its options switched back to simpleNN's value (the ablation; ``--runs ablation``
  runs all five): f and ∇f on every instance (``gradient_sample=1``), CG without
  the model-decrease stop (``cg_model_tol=0``), CG from 0 (``cg_warm_start=0``), G
  on 5 % with CG up to 250 products (``subsample=0.05, cg_max_iter=250``), λ from
  the accepted step's ρ (``damping_full_step=False``);
- ``sgd``: newtoncnn's SGD baseline with its defaults;
- ``adam``: PyTorch's Adam (lr 1e-3, batch 128, cross-entropy) on the same
  network from the same initial point, when torch is installed.

``--loss softmax`` trains the Newton and SGD runs with the softmax
(cross-entropy) loss, the one Adam uses, instead of simpleNN's squared loss;
such runs are named ``fast-softmax`` etc. in the table and the plot.

Test accuracy is measured after every Newton iteration, every SGD epoch and
every ``--adam-eval-every`` Adam steps; evaluation time is excluded from the
training time. One JSON line per measurement goes to ``--log`` (``run``,
``seconds``, ``test_accuracy``, ...); at the end a table gives the time to
reach 85 / 88 / 90 / 91 % and the best accuracy of every run, and ``--plot``
draws every run's accuracy against time on one set of axes.

    python asv_bench/time_to_accuracy.py --budget 1800 --log tta.jsonl --plot tta.png
    python asv_bench/time_to_accuracy.py --runs fast --seeds 0 1 2 --budget 600 --log seeds.jsonl
    python asv_bench/time_to_accuracy.py --runs ablation --budget 600 --log ablation.jsonl
    python asv_bench/time_to_accuracy.py --runs fast --loss softmax --budget 1800 --log tta.jsonl --append
    python asv_bench/time_to_accuracy.py --table-only --log tta.jsonl --plot tta.png

Not part of the test suite: a full invocation takes about two hours.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

import newtoncnn
from newtoncnn.datasets import Normalizer, load_fashion_mnist
from newtoncnn.newton import NewtonCG
from newtoncnn.sgd import SGD
from newtoncnn.threads import blas_single_threaded

THRESHOLDS = (0.85, 0.88, 0.90, 0.91)
#: The fast preset with one option switched back to simpleNN's value (the ablation).
ABLATIONS = {
    "fast-no-sample": {"gradient_sample": 1.0},
    "fast-no-model-stop": {"cg_model_tol": 0.0},
    "fast-no-warm-start": {"cg_warm_start": 0.0},
    "fast-no-small-G": {"subsample": 0.05, "cg_max_iter": 250},
    "fast-no-full-step-damping": {"damping_full_step": False},
}
RUNS = ("simplenn", "fast", *ABLATIONS, "sgd", "adam")


class Problem:
    """The data, the network and the initial point every run starts from."""

    def __init__(self, data_dir, seed, loss="squared"):
        data = load_fashion_mnist(data_dir)
        norm = Normalizer(dtype="float32").fit(data.X_train)
        self.X, self.Xt = norm.transform(data.X_train), norm.transform(data.X_test)
        self.y, self.yt = data.y_train, data.y_test
        self.net = newtoncnn.paper_network((1, 28, 28), 10, loss=loss, dtype="float32")
        self.loss = loss
        self.theta0 = self.net.init_params(seed)
        self.seed = seed

    def objective(self):
        return newtoncnn.CNNObjective(self.net, self.X, self.y, C=0.01, batch_size=1000)

    def accuracy(self, theta):
        return float(np.mean(self.net.predict(theta, self.Xt) == self.yt))


class Log:
    """JSON lines, flushed, so a stopped benchmark keeps its curves."""

    def __init__(self, path, append):
        self.file = open(path, "a" if append else "w")

    def write(self, run, seed, seconds, accuracy, **extra):
        row = {"run": run, "seed": seed, "seconds": float(seconds),
               "test_accuracy": float(accuracy), **extra}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        print(f"{run:9s} seed {seed}  {seconds:8.1f} s  test accuracy {accuracy:.4f}", flush=True)


def run_newton(problem, log, run, budget):
    def validation(theta):
        return {"test_accuracy": problem.accuracy(theta)}

    def callback(theta, row):
        log.write(run, problem.seed, row["seconds"], row["test_accuracy"], loss=problem.loss,
                  iter=row["iter"], f=float(row["f"]), cg_iters=int(row["cg_iters"]),
                  sample_size=int(row.get("sample_size", problem.X.shape[0])),
                  step=float(row["alpha"]), ls_trials=int(row["ls_trials"]),
                  ratio=float(row["ratio"]), damping=float(row["damping"]))

    preset, changes = ("fast", ABLATIONS[run]) if run in ABLATIONS else (run, {})
    solver = NewtonCG(preset=preset, max_iter=10**6, max_time=budget, random_state=problem.seed,
                      validation=validation, **changes)
    log.write(run, problem.seed, 0.0, problem.accuracy(problem.theta0), loss=problem.loss,
              iter=0)
    with blas_single_threaded():  # as CNNClassifier.fit does
        solver.minimize(problem.objective(), problem.theta0, callback=callback)


def run_sgd(problem, log, budget):
    def validation(theta):
        return {"test_accuracy": problem.accuracy(theta)}

    def callback(theta, row):
        log.write("sgd", problem.seed, row["seconds"], row["test_accuracy"], loss=problem.loss,
                  epoch=row["epoch"])

    log.write("sgd", problem.seed, 0.0, problem.accuracy(problem.theta0), loss=problem.loss,
              epoch=0)
    solver = SGD(epochs=10**6, max_time=budget, random_state=problem.seed, validation=validation)
    with blas_single_threaded():  # as CNNClassifier.fit does
        solver.minimize(problem.objective(), problem.theta0, callback=callback)


def run_adam(problem, log, budget, eval_every, threads):
    import torch
    from peer_benchmark import torch_model

    torch.manual_seed(problem.seed)
    torch.set_num_threads(threads)
    model = torch_model(problem.net, problem.theta0, torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    X, y = torch.from_numpy(problem.X), torch.from_numpy(problem.y.astype(np.int64))
    Xt = torch.from_numpy(problem.Xt)
    rng = np.random.default_rng(problem.seed)

    def accuracy():
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(Xt[i:i + 2000]).argmax(1) for i in range(0, len(Xt), 2000)])
        model.train()
        return float((pred.numpy() == problem.yt).mean())

    log.write("adam", problem.seed, 0.0, accuracy(), loss="softmax", step=0)
    trained, step = 0.0, 0
    while trained < budget:
        perm = torch.from_numpy(rng.permutation(len(X)))
        for start in range(0, len(X), 128):
            t0 = time.perf_counter()
            idx = perm[start:start + 128]
            opt.zero_grad()
            loss_fn(model(X[idx]), y[idx]).backward()
            opt.step()
            trained += time.perf_counter() - t0
            step += 1
            if step % eval_every == 0 or trained >= budget:
                log.write("adam", problem.seed, trained, accuracy(), loss="softmax", step=step,
                          epoch=step * 128 / len(X))
            if trained >= budget:
                return


def time_to(rows, threshold):
    """Seconds of the first measurement at or above ``threshold`` (None: never)."""
    for row in sorted(rows, key=lambda r: r["seconds"]):
        if row["test_accuracy"] >= threshold:
            return row["seconds"]
    return None


def label(row):
    """A run's name in the table and the plot: the run, and the loss if not the squared one
    (Adam's is always cross-entropy; logs from before ``--loss`` have no loss: squared)."""
    loss = row.get("loss", "squared")
    return row["run"] if row["run"] == "adam" or loss == "squared" else f"{row['run']}-{loss}"


def _groups(rows):
    """Rows by (run, loss, seed), in RUNS order, the squared loss first."""
    groups = {}
    for row in rows:
        key = (RUNS.index(row["run"]), row.get("loss", "squared") != "squared", row["seed"])
        groups.setdefault(key, []).append(row)
    return [(label(rs[0]), key[2], rs) for key, rs in sorted(groups.items())]


def table(rows):
    """Markdown table: time to each threshold and best accuracy, per run, loss and seed."""
    head = ("| run | seed | " + " | ".join(f"to {t:.0%}" for t in THRESHOLDS)
            + " | best | at | budget used |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for run, seed, rs in _groups(rows):
        best = max(rs, key=lambda r: r["test_accuracy"])
        times = [time_to(rs, t) for t in THRESHOLDS]
        cells = [("-" if t is None else f"{t / 60:.1f} min") for t in times]
        lines.append(f"| {run} | {seed} | " + " | ".join(cells)
                     + f" | {best['test_accuracy']:.2%} | {best['seconds'] / 60:.1f} min"
                     f" | {max(r['seconds'] for r in rs) / 60:.1f} min |")
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for run, seed, rs in _groups(rows):
        rs = sorted(rs, key=lambda r: r["seconds"])
        ax.plot([r["seconds"] / 60 for r in rs], [100 * r["test_accuracy"] for r in rs],
                marker=".", label=f"{run} (seed {seed})")
    for t in THRESHOLDS:
        ax.axhline(100 * t, color="grey", lw=0.5, ls=":")
    ax.set_ylim(80, 93)
    ax.set_xlabel("training time (minutes, evaluation excluded)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Fashion-MNIST, the paper's CNN, float32, 2 threads")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", choices=RUNS + ("ablation",),
                        default=["simplenn", "fast", "sgd", "adam"],
                        help="runs, one after another (default: simplenn fast sgd adam); "
                             "'ablation' stands for the five fast-no-* runs")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0],
                        help="initial points (and subset seeds); each run is done per seed")
    parser.add_argument("--budget", type=float, default=1800.0,
                        help="training seconds per run (default 1800)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loss", choices=("squared", "softmax"), default="squared",
                        help="loss of the Newton and SGD runs (simpleNN's is squared; "
                             "Adam always uses cross-entropy, i.e. softmax)")
    parser.add_argument("--data-dir", default=None, help="IDX directory (default: Debian's)")
    parser.add_argument("--adam-eval-every", type=int, default=100,
                        help="Adam steps between accuracy measurements")
    parser.add_argument("--log", required=True, help="JSON-lines file")
    parser.add_argument("--append", action="store_true", help="append to --log")
    parser.add_argument("--plot", default=None, help="PNG of accuracy against time")
    parser.add_argument("--table-only", action="store_true",
                        help="only print the table (and plot) of an existing --log")
    args = parser.parse_args(argv)
    runs = [r for run in args.runs for r in (ABLATIONS if run == "ablation" else [run])]

    if not args.table_only:
        newtoncnn.set_num_threads(args.threads)
        log = Log(args.log, args.append)
        for seed in args.seeds:
            problem = Problem(args.data_dir, seed, args.loss)
            for run in runs:
                if run in ("simplenn", "fast") or run in ABLATIONS:
                    run_newton(problem, log, run, args.budget)
                elif run == "sgd":
                    run_sgd(problem, log, args.budget)
                else:
                    try:
                        import torch  # noqa: F401
                    except ImportError:
                        print("adam: torch is not installed, skipped", flush=True)
                        continue
                    run_adam(problem, log, args.budget, args.adam_eval_every, args.threads)
    with open(args.log) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    print(table(rows))
    if args.plot:
        plot(rows, args.plot)
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
