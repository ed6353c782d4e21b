"""Tests for the command line (``python -m newtoncnn``), run through subprocesses."""
import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

from newtoncnn.cli import main
from newtoncnn.estimator import CNNClassifier
from newtoncnn.newton import load_checkpoint

from cases import TESTS_DIR, run_python

TRAIN_OPTIONS = ["--data", "--data-dir", "--n-train", "--n-test", "--solver", "--loss", "--C",
                 "--dtype", "--batch-size", "--max-iter", "--subsample", "--cg-tol",
                 "--cg-max-iter", "--damping", "--gn-mode", "--max-time", "--lr", "--momentum",
                 "--sgd-batch-size", "--epochs", "--threads", "--seed", "--out", "--history",
                 "--plot", "--quiet", "--checkpoint", "--checkpoint-every", "--resume",
                 "--preset", "--mpi"]
ACCURACY = re.compile(r"^test accuracy: (\d\.\d{4}) \((\d+)/(\d+)\)$", re.M)
PROGRESS = re.compile(r"^iter +(\d+) +f \S+ +\|g\| \S+ +alpha \S+ +ratio \S+ +lambda \S+ +"
                      r"#CG +\d+ +time \S+ +val_accuracy \S+$", re.M)


def run(*args, timeout=120):
    return run_python("-m", "newtoncnn", *args, timeout=timeout,
                      env=dict(os.environ, PYTHONUNBUFFERED="1"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One short training run shared by the tests that read its output and files."""
    tmp = tmp_path_factory.mktemp("cli")
    model, history = tmp / "model.npz", tmp / "h.json"
    args = ["train", "--n-train", "300", "--n-test", "100", "--max-iter", "2",
            "--gn-mode", "rop", "--seed", "0", "--out", str(model), "--history", str(history)]
    try:
        import matplotlib  # noqa: F401  (the plot needs it)
        args += ["--plot", str(tmp / "curve.png")]
    except ImportError:
        pass
    return run(*args), tmp


def test_help_documents_every_option():
    out = run("--help")
    assert out.returncode == 0, out.stderr
    for option in TRAIN_OPTIONS + ["--model", "train", "evaluate"]:
        assert option in out.stdout, option
    assert "(default: 0.01)" in out.stdout  # defaults are shown (C)


def test_train_writes_model_history_and_reports_accuracy(trained):
    out, tmp = trained
    assert out.returncode == 0, out.stderr
    assert "n_params  62026" in out.stdout  # header: the paper's network on 28x28x1
    assert "train (300, 1, 28, 28) uint8, test (100, 1, 28, 28)" in out.stdout
    assert [int(k) for k in PROGRESS.findall(out.stdout)] == [1, 2]
    assert len(ACCURACY.findall(out.stdout)) == 1
    assert (tmp / "model.npz").is_file()

    with open(tmp / "h.json") as f:
        history = json.load(f)  # strict JSON (no NaN)
    assert history["n_train"] == 300 and history["status_name"] == "MAX_ITER"
    rows = history["history"]
    assert [row["iter"] for row in rows] == [1, 2]
    assert {"f", "grad_norm", "alpha", "ratio", "damping", "cg_iters", "seconds",
            "val_accuracy"} <= set(rows[0])
    assert rows[1]["f"] <= rows[0]["f"]
    accuracy = float(ACCURACY.search(out.stdout).group(1))
    assert history["test_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    assert rows[-1]["val_accuracy"] == pytest.approx(accuracy, abs=1e-4)
    if (tmp / "curve.png").exists():
        assert (tmp / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_reads_the_model_back(trained):
    out, tmp = trained
    assert out.returncode == 0, out.stderr
    ev = run("evaluate", "--model", str(tmp / "model.npz"), "--n-test", "100")
    assert ev.returncode == 0, ev.stderr
    assert ACCURACY.findall(ev.stdout) == ACCURACY.findall(out.stdout)
    clf = CNNClassifier.load(tmp / "model.npz")
    assert clf.get_params()["max_iter"] == 2 and clf.get_params()["random_state"] == 0


def test_bad_option_exits_nonzero_with_a_message(tmp_path):
    out = run("train", "--max-iter", "-1")
    assert out.returncode == 2
    assert "argument --max-iter: must be an integer >= 0, got '-1'" in out.stderr
    out = run("evaluate", "--model", str(tmp_path / "missing.npz"))
    assert out.returncode == 1
    assert "evaluate: error: --model: no such file" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("argv, message", [
    (["train", "--solver", "adam"], "invalid choice: 'adam'"),
    (["train", "--subsample", "0"], "must be a number in (0, 1]"),
    (["train", "--data", "imagenet"], "invalid choice: 'imagenet'"),
    (["train", "--data", "mnist", "--data-dir", "."], "not allowed with argument"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["evaluate"], "the following arguments are required: --model"),
])
def test_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_runtime_errors(capsys, tmp_path):
    assert main([]) == 2
    assert "choose a command" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "no" / "m.npz")]) == 1
    err = capsys.readouterr().err
    assert "--out" in err and "does not exist" in err
    assert main(["train", "--data-dir", str(tmp_path)]) == 1  # an empty directory
    assert "holds neither IDX files" in capsys.readouterr().err
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    assert main(["evaluate", "--model", str(tmp_path / "other.npz")]) == 1
    assert "not a newtoncnn model" in capsys.readouterr().err


def test_sgd_quiet(capsys, tmp_path):
    status = main(["train", "--solver", "sgd", "--epochs", "1", "--n-train", "100",
                   "--n-test", "50", "--quiet", "--seed", "1", "--history",
                   str(tmp_path / "h.json")])
    out = capsys.readouterr().out
    assert status == 0
    assert not re.search(r"^epoch +1", out, re.M) and "n_params" not in out  # quiet
    assert len(ACCURACY.findall(out)) == 1
    with open(tmp_path / "h.json") as f:
        assert [row["epoch"] for row in json.load(f)["history"]] == [1]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT delivery differs on Windows")
def test_ctrl_c_keeps_the_best_parameters_and_writes_the_model(tmp_path):
    model = tmp_path / "model.npz"
    proc = subprocess.Popen(
        [sys.executable, "-m", "newtoncnn", "train", "--n-train", "200", "--n-test", "50",
         "--max-iter", "200", "--gn-mode", "rop", "--seed", "0", "--out", str(model)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"), cwd=TESTS_DIR)
    lines = []
    try:
        # Progress lines are flushed one by one; interrupt after the first (a loaded
        # machine can take minutes to get there: no deadline short of the test's own).
        for line in proc.stdout:
            lines.append(line)
            if PROGRESS.match(line):
                break
        assert any(PROGRESS.match(line) for line in lines), "".join(lines)
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines) + rest
    assert proc.returncode == 130, err
    assert "interrupted: keeping the best parameters so far" in out
    assert "Traceback" not in err
    assert model.is_file()
    clf = CNNClassifier.load(model)
    assert clf.result_.message.startswith("Interrupted")
    assert clf.n_iter_ >= 1


def test_checkpoint_then_resume(capsys, tmp_path):
    ck = tmp_path / "ck.npz"
    common = ["train", "--n-train", "300", "--n-test", "100", "--gn-mode", "rop",
              "--threads", "1"]
    assert main(common + ["--max-iter", "2", "--seed", "0", "--checkpoint", str(ck),
                          "--history", str(tmp_path / "h2.json")]) == 0
    out = capsys.readouterr().out
    assert [int(k) for k in PROGRESS.findall(out)] == [1, 2]
    assert f"checkpoint written to {ck}" in out
    assert load_checkpoint(ck)["meta"]["state"]["nit"] == 2

    # No --seed: the checkpoint's is used; --resume keeps updating the file.
    assert main(common + ["--max-iter", "3", "--resume", str(ck),
                          "--history", str(tmp_path / "h3.json")]) == 0
    out = capsys.readouterr().out
    assert [int(k) for k in PROGRESS.findall(out)] == [3]  # one more iteration, printed
    assert f"resume    {ck}: 2 iterations done" in out and "seed 0" in out
    assert "(3 iterations" in out and len(ACCURACY.findall(out)) == 1
    assert load_checkpoint(ck)["meta"]["state"]["nit"] == 3
    with open(tmp_path / "h2.json") as f2, open(tmp_path / "h3.json") as f3:
        h2, h3 = json.load(f2)["history"], json.load(f3)["history"]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
    assert [r["iter"] for r in h3] == [1, 2, 3]
    assert strip(h3[:2]) == strip(h2)

    # Another setting than the checkpoint's is refused, naming it.
    assert main(common + ["--max-iter", "4", "--resume", str(ck), "--subsample", "0.1"]) == 1
    err = capsys.readouterr().err
    assert "does not match this run" in err and "subsample is 0.05" in err
    assert main(["train", "--resume", str(tmp_path / "nope.npz")]) == 1
    assert "--resume: no such file" in capsys.readouterr().err
    assert main(["train", "--solver", "sgd", "--checkpoint", str(ck)]) == 1
    assert "--checkpoint needs --solver newton" in capsys.readouterr().err
    assert load_checkpoint(ck)["meta"]["state"]["nit"] == 3  # untouched by the failures


def test_fast_preset_trains_on_a_growing_sample(tmp_path):
    out = run("train", "--n-train", "300", "--n-test", "100", "--max-iter", "3",
              "--preset", "fast", "--seed", "0", "--history", str(tmp_path / "h.json"))
    assert out.returncode == 0, out.stderr
    assert "Newton-CG (fast):" in out.stdout and "cg_max_iter 40" in out.stdout
    rows = json.load(open(tmp_path / "h.json"))["history"]
    assert len(rows) == 3 and all(row["cg_iters"] <= 40 for row in rows)
    assert all(2 <= row["sample_size"] <= 300 for row in rows)
    out = run("train", "--n-train", "300", "--n-test", "100", "--max-iter", "1",
              "--preset", "fast", "--cg-max-iter", "7", "--seed", "0")
    assert "cg_max_iter 7" in out.stdout  # an explicit option overrides the preset
