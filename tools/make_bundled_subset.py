#!/usr/bin/env python3
"""Make ``newtoncnn/data/fashion_mnist_subset.npz``, the bundled data subset.

Deterministic: the first ``--train-per-class`` (500) images of each class of
the Fashion-MNIST training file and the first ``--test-per-class`` (100) of
each class of the test file, kept in file order, giving 5,000 training and
1,000 test images.  The ``.npz`` holds

* ``X_train``, ``X_test``: uint8, shape (n, 28, 28);
* ``y_train``, ``y_test``: uint8 class indices;
* ``train_index``, ``test_index``: uint16 positions in the original files;
* ``source``, ``license``: provenance strings.

Fashion-MNIST is Copyright (c) 2017 Zalando SE (Zalando Research,
https://github.com/zalandoresearch/fashion-mnist), released under the MIT
licence.  Source files: ``apt-get install dataset-fashion-mnist``.

Usage::

    python tools/make_bundled_subset.py [--source DIR] [--out FILE]
"""

import argparse
import hashlib
import importlib.util
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "newtoncnn", "data", "fashion_mnist_subset.npz")
SOURCE = ("Fashion-MNIST, Zalando Research, "
          "https://github.com/zalandoresearch/fashion-mnist; subset: first "
          "{} train and {} test images per class, in file order")
LICENSE = "MIT License, Copyright (c) 2017 Zalando SE"


def _datasets_module():
    """Import newtoncnn/datasets.py alone (no compiled extensions needed)."""
    path = os.path.join(ROOT, "newtoncnn", "datasets.py")
    spec = importlib.util.spec_from_file_location("_newtoncnn_datasets", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def first_per_class(y, per_class):
    """Sorted indices of the first ``per_class`` instances of each class."""
    keep = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < per_class:
            raise ValueError(f"class {c} has only {len(idx)} instances")
        keep.append(idx[:per_class])
    return np.sort(np.concatenate(keep))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=None,
                        help="Fashion-MNIST IDX directory (default: "
                             "$NEWTONCNN_DATA or /usr/share/datasets/fashion-mnist)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output .npz file")
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--test-per-class", type=int, default=100)
    args = parser.parse_args(argv)

    X_train, y_train, X_test, y_test = _datasets_module().load_fashion_mnist(
        args.source)
    tr = first_per_class(y_train, args.train_per_class)
    te = first_per_class(y_test, args.test_per_class)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(
        args.out,
        X_train=X_train[tr, 0], y_train=y_train[tr].astype(np.uint8),
        X_test=X_test[te, 0], y_test=y_test[te].astype(np.uint8),
        train_index=tr.astype(np.uint16), test_index=te.astype(np.uint16),
        source=np.array(SOURCE.format(args.train_per_class, args.test_per_class)),
        license=np.array(LICENSE))
    with open(args.out, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    print(f"wrote {args.out}: {len(tr)} train + {len(te)} test images, "
          f"{os.path.getsize(args.out)} bytes, sha256 {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
