"""Regenerate the file-format fixtures in tests/fixtures/ (run from the repository root).

    python tools/make_test_fixtures.py [--out tests/fixtures]

Writes a saved CNNClassifier (``CNNClassifier.save``), the predictions it
made when it was written, and a NewtonCG checkpoint after a few iterations of
a tiny CNN problem. The problems are defined in ``tests/cases.py``;
``tests/test_fixtures.py`` loads the files with the current code and checks
that the model predicts the same and that the checkpoint resumes the run.

The committed fixtures were produced by newtoncnn 0.1.0 at commit 5cb20fd
(before the estimator moved onto scikit-learn and the checkpoint code left
newton.py). Do not regenerate them to make a test pass: their point is that
files written by that version keep loading. Regenerate only to add a new
fixture for a new format version, under a new name.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import cases  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "..", "tests", "fixtures"))
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)

    import newtoncnn
    from newtoncnn.estimator import CNNClassifier
    from newtoncnn.newton import NewtonCG

    X, y, X_new = cases.fixture_images()
    clf = CNNClassifier(**cases.fixture_model_params()).fit(X, y)
    clf.save(os.path.join(args.out, cases.FIXTURE_MODEL))
    expected = {
        "newtoncnn_version": newtoncnn.__version__,
        "classes": clf.classes_.tolist(),
        "predict": clf.predict(X_new).tolist(),
        "decision_function": clf.decision_function(X_new).tolist(),
        "predict_proba": clf.predict_proba(X_new).tolist(),
        "n_iter": clf.n_iter_,
        "f": [row["f"] for row in clf.history_],
    }
    with open(os.path.join(args.out, cases.FIXTURE_MODEL_EXPECTED), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")

    objective, theta0 = cases.fixture_objective()
    path = os.path.join(args.out, cases.FIXTURE_CHECKPOINT)
    NewtonCG(max_iter=cases.FIXTURE_CHECKPOINT_ITERS, checkpoint=path,
             **cases.FIXTURE_NEWTON).minimize(objective, theta0)
    for name in (cases.FIXTURE_MODEL, cases.FIXTURE_MODEL_EXPECTED, cases.FIXTURE_CHECKPOINT):
        print(f"{os.path.join(args.out, name)}: "
              f"{os.path.getsize(os.path.join(args.out, name))} bytes")


if __name__ == "__main__":
    main()
