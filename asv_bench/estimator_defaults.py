"""CNNClassifier's defaults against the former ones (simpleNN's: pixels / 255, C = 0.01).

Not a test (minutes). For each data set it fits ``CNNClassifier(random_state=0)``
with the current defaults ("new") and with the defaults of newtoncnn 0.1.0
("old": ``normalize="pixels", C=0.01`` and no stopping rule, which is what 0.1.0's
``CNNClassifier()`` computed), one after the other, and prints wall and CPU
seconds, iterations and the test accuracy:

    python asv_bench/estimator_defaults.py digits            # scikit-learn's digits
    python asv_bench/estimator_defaults.py bundled --max-time 600
    python asv_bench/estimator_defaults.py fashion-mnist --max-iter 3

``digits``: ``load_digits()`` split by ``train_test_split(random_state=0)``, the
new defaults on the 0-16 values, on ``X / 16`` and on ``StandardScaler``
output, and the old defaults on the 0-16 values. ``--max-time`` / ``--max-iter``
cap every run the same way. ``--log FILE`` appends one JSON line per run.
"""
import argparse
import json
import sys
import time

import numpy as np

import newtoncnn


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    sc = StandardScaler().fit(X_train)
    return [("new", "0-16", X_train, y_train, X_test, y_test),
            ("new", "/16", X_train / 16, y_train, X_test / 16, y_test),
            ("new", "standardized", sc.transform(X_train), y_train, sc.transform(X_test), y_test),
            ("old", "0-16", X_train, y_train, X_test, y_test)]


def _images(name):
    from newtoncnn.datasets import load_dataset
    X_train, y_train, X_test, y_test = load_dataset(name)
    return [(kind, "uint8", X_train, y_train, X_test, y_test) for kind in ("new", "old")]


def _params(kind, args, legacy):
    params = {"random_state": 0, "n_threads": args.threads}
    if args.max_time is not None:
        params["max_time"] = args.max_time
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    if kind == "old" and not legacy:  # newtoncnn 0.1.0's CNNClassifier()
        params.update(normalize="pixels", C=0.01,
                      n_iter_no_change=(args.max_iter or 100) + 1)
    return params


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", choices=("digits", "bundled", "fashion-mnist"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-time", type=float, default=None,
                        help="seconds per fit (the same for every run)")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="Newton iterations per fit (default: the estimator's)")
    parser.add_argument("--only", choices=("new", "old"), default=None,
                        help="run only the new or the old defaults")
    parser.add_argument("--log", default=None, help="append one JSON line per run")
    args = parser.parse_args(argv)

    from newtoncnn.estimator import CNNClassifier
    # Run from a checkout of newtoncnn 0.1.0 (PYTHONPATH), its defaults are the old ones.
    legacy = "n_iter_no_change" not in CNNClassifier().get_params()
    if legacy and args.only != "old":
        parser.error("this newtoncnn has only the old defaults: pass --only old")
    newtoncnn.set_num_threads(args.threads)
    runs = _digits() if args.data == "digits" else _images(args.data)
    print(f"newtoncnn {newtoncnn.__version__}, {args.threads} threads, data {args.data}",
          flush=True)
    print(f"{'defaults':8} {'input':13} {'wall s':>7} {'cpu s':>7} {'iters':>5} "
          f"{'C':>8} {'scaling':11} {'accuracy':>8}  stop", flush=True)
    for kind, variant, X, y, X_test, y_test in runs:
        if args.only is not None and kind != args.only:
            continue
        clf = CNNClassifier(**_params(kind, args, legacy))
        t0, c0 = time.perf_counter(), time.process_time()
        clf.fit(X, y)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        accuracy = clf.score(X_test, y_test)
        C = getattr(clf, "C_", clf.C)
        scaling = getattr(clf, "scaling_", "pixels" if clf.normalize else None)
        curve = getattr(clf, "loss_curve_", [row["f"] for row in clf.history_])
        print(f"{kind:8} {variant:13} {wall:7.1f} {cpu:7.1f} {clf.n_iter_:5d} {C:8.4g} "
              f"{str(scaling):11} {accuracy:8.4f}  {clf.result_.message}", flush=True)
        if args.log:
            with open(args.log, "a") as f:
                f.write(json.dumps({
                    "data": args.data, "defaults": kind, "input": variant, "wall": wall,
                    "cpu": cpu, "n_iter": clf.n_iter_, "C": C, "scaling": scaling,
                    "accuracy": accuracy, "message": clf.result_.message,
                    "threads": args.threads, "max_time": args.max_time,
                    "max_iter": args.max_iter,
                    "seconds": [row["seconds"] for row in clf.history_],
                    "loss_curve": curve, "legacy": legacy}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
