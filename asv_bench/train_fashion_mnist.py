"""Long benchmark: train the paper's CNN on full Fashion-MNIST and log accuracy per iteration.

Not part of the test suite (tens of minutes to hours). One JSON line per
iteration goes to ``--log`` (f, ‖g‖, α, ρ, λ, #CG, seconds, test accuracy), so
a run that is stopped early still leaves its curve.

    python asv_bench/train_fashion_mnist.py --solver newton --log newton.jsonl
    python asv_bench/train_fashion_mnist.py --solver sgd --log sgd.jsonl
"""
import argparse
import json
import sys
import time

import numpy as np

import newtoncnn
from newtoncnn.datasets import Normalizer, load_fashion_mnist
from newtoncnn.newton import NewtonCG
from newtoncnn.sgd import SGD


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solver", choices=("newton", "sgd"), default="newton")
    parser.add_argument("--data-dir", default=None, help="IDX directory (default: Debian's)")
    parser.add_argument("--max-iter", type=int, default=100, help="Newton iterations")
    parser.add_argument("--epochs", type=int, default=20, help="SGD epochs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log", required=True, help="JSON-lines output")
    parser.add_argument("--out", default=None, help="final θ (.npy)")
    parser.add_argument("--checkpoint", default=None,
                        help="Newton: write the optimizer state to this file every iteration")
    parser.add_argument("--resume", default=None,
                        help="Newton: continue the run saved in this checkpoint (same trajectory; "
                             "the log is appended to)")
    args = parser.parse_args(argv)

    newtoncnn.set_num_threads(args.threads)
    data = load_fashion_mnist(args.data_dir)
    norm = Normalizer(dtype="float32").fit(data.X_train)
    X, Xt = norm.transform(data.X_train), norm.transform(data.X_test)
    net = newtoncnn.paper_network((1, 28, 28), 10, loss="squared", dtype="float32")
    objective = newtoncnn.CNNObjective(net, X, data.y_train, C=0.01, batch_size=1000)
    theta0 = net.init_params(args.seed)
    start = time.perf_counter()
    log = open(args.log, "a" if args.resume else "w")

    def validation(theta):
        return {"test_accuracy": float(np.mean(net.predict(theta, Xt) == data.y_test))}

    def callback(theta, row):
        row = dict(row, wall=time.perf_counter() - start)
        log.write(json.dumps({k: (float(v) if isinstance(v, (np.floating, np.integer)) else v)
                              for k, v in row.items()}) + "\n")
        log.flush()

    if args.solver == "newton":
        solver = NewtonCG(max_iter=args.max_iter, random_state=args.seed, verbose=1,
                          validation=validation, checkpoint=args.checkpoint)
    else:
        solver = SGD(epochs=args.epochs, random_state=args.seed, verbose=1,
                     validation=validation)
    if args.solver == "newton":
        result = solver.minimize(objective, theta0, callback=callback, resume=args.resume)
    else:
        result = solver.minimize(objective, theta0, callback=callback)
    print(result.message, f"total {time.perf_counter() - start:.0f} s", flush=True)
    if args.out:
        np.save(args.out, result.x)
    return 0


if __name__ == "__main__":
    sys.exit(main())
