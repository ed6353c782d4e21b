"""Output paths are checked before any work and written safely (issue 10, items 6, 7, 8).

Every file newtoncnn writes (``train --out/--history/--plot/--checkpoint``, the
estimator's and NewtonCG's checkpoints, ``CNNClassifier.save``) goes through
:mod:`newtoncnn.fileio`: a directory, a FIFO or a device is refused (and left
alone), a missing or unwritable directory is refused, a symbolic link is
written through to its target, a file saved over keeps its permission bits,
and two outputs naming the same file are refused — all before training starts.
"""
import os
import stat

import numpy as np
import pytest

import cases
from newtoncnn import NewtonCG
from newtoncnn.cli import main
from newtoncnn.estimator import CNNClassifier
from newtoncnn.fileio import atomic_write

TRAIN = ["train", "--n-train", "60", "--n-test", "20", "--max-iter", "1", "--gn-mode", "rop",
         "--seed", "0", "--threads", "1"]
posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")


def _train(capsys, *extra):
    capsys.readouterr()
    code = main([*TRAIN, *map(str, extra)])
    out, err = capsys.readouterr()
    return code, out, err


def _refused_before_training(code, out, err, *words):
    assert code == 1, (out, err)
    assert "iter " not in out and "status" not in out  # nothing was trained
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err, err


# ---------------------------------------------------------------- item 6: checked up front
@pytest.mark.parametrize("option", ["--out", "--history", "--checkpoint", "--plot"])
def test_an_existing_directory_is_refused_before_training(capsys, tmp_path, option):
    target = tmp_path / "dir.png"
    target.mkdir()
    code, out, err = _train(capsys, option, target)
    _refused_before_training(code, out, err, option, "is a directory")
    assert target.is_dir()


@pytest.mark.parametrize("option", ["--out", "--history"])
def test_a_missing_directory_is_refused_before_training(capsys, tmp_path, option):
    code, out, err = _train(capsys, option, tmp_path / "nope" / "m.npz")
    _refused_before_training(code, out, err, option, "does not exist")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_an_unwritable_directory_is_refused_before_training(capsys):
    # /proc refuses new files even to root, unlike a chmod'ed directory
    code, out, err = _train(capsys, "--out", "/proc/newtoncnn-model.npz")
    _refused_before_training(code, out, err, "--out", "cannot create files")


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True,
                    reason="root writes into read-only directories")
def test_a_read_only_directory_is_refused_before_training(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, out, err = _train(capsys, "--history", ro / "h.json")
    finally:
        ro.chmod(0o755)
    _refused_before_training(code, out, err, "--history")


def test_a_plot_format_matplotlib_cannot_write_is_refused_before_training(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    code, out, err = _train(capsys, "--plot", tmp_path / "curve.xyz")
    _refused_before_training(code, out, err, "--plot", ".png")


def test_the_estimator_checks_its_checkpoint_before_training(tmp_path):
    objective = cases.Quadratic(cases.spd_matrix(4), np.ones(4))
    with pytest.raises(ValueError, match="checkpoint .* is a directory"):
        NewtonCG(max_iter=2, checkpoint=tmp_path).minimize(objective, np.zeros(4))
    assert objective.n_grad == 0  # refused before the first evaluation
    X, y, _ = cases.fixture_images()
    with pytest.raises(ValueError, match="does not exist"):
        CNNClassifier(**dict(cases.fixture_model_params(), max_iter=1),
                      checkpoint=tmp_path / "no" / "ck.npz").fit(X, y)


# ---------------------------------------------------------------- item 7: special files, links
@posix_only
@pytest.mark.parametrize("option", ["--out", "--history", "--checkpoint"])
def test_a_fifo_is_refused_and_left_alone(capsys, tmp_path, option):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, out, err = _train(capsys, option, fifo)
    _refused_before_training(code, out, err, option, "FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@posix_only
def test_writers_refuse_special_files(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    from newtoncnn.fileio import check_output_path
    with pytest.raises(ValueError, match="FIFO"):
        atomic_write(fifo, lambda f: f.write(b"x"))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with pytest.raises(ValueError, match="character device"):
        check_output_path(os.devnull, "--out")
    with pytest.raises(ValueError, match="is a directory"):
        check_output_path(tmp_path, "--out")
    assert not [p for p in os.listdir(tmp_path) if p != "pipe"]  # no temporary files left
    clf = CNNClassifier(**dict(cases.fixture_model_params(), max_iter=1))
    X, y, _ = cases.fixture_images()
    clf.fit(X, y)
    with pytest.raises(ValueError, match="FIFO"):
        clf.save(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with pytest.raises(ValueError, match="FIFO"):
        CNNClassifier(**dict(cases.fixture_model_params(), max_iter=1),
                      checkpoint=fifo).fit(X, y)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symlink_is_written_through_and_modes_are_kept(capsys, tmp_path):
    target_model, target_hist = tmp_path / "real_model.npz", tmp_path / "real_h.json"
    link_model, link_hist = tmp_path / "model.npz", tmp_path / "h.json"
    link_model.symlink_to(target_model.name)   # dangling: the target is created
    target_hist.write_text("old")
    target_hist.chmod(0o640)
    link_hist.symlink_to(target_hist)
    code, out, err = _train(capsys, "--out", link_model, "--history", link_hist)
    assert code == 0, err
    assert link_model.is_symlink() and link_hist.is_symlink()
    assert CNNClassifier.load(link_model).n_iter_ == 1
    assert target_hist.read_text().startswith("{")
    assert stat.S_IMODE(os.stat(target_hist).st_mode) == 0o640


def test_a_file_saved_over_keeps_its_mode(tmp_path):
    path = tmp_path / "m.npz"
    for mode in (0o600, 0o664, 0o640):
        atomic_write(path, lambda f: f.write(b"data"))
        path.chmod(mode)
        atomic_write(path, lambda f: f.write(b"new"))
        assert stat.S_IMODE(os.stat(path).st_mode) == mode and path.read_bytes() == b"new"
    fresh = tmp_path / "fresh.bin"
    atomic_write(fresh, lambda f: f.write(b"x"))
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o666 & ~mask


# ---------------------------------------------------------------- item 8: collisions
@pytest.mark.parametrize("first, second", [("--out", "--checkpoint"), ("--out", "--history"),
                                           ("--history", "--plot"),
                                           ("--checkpoint", "--history")])
def test_colliding_outputs_are_refused_before_training(capsys, tmp_path, first, second):
    path = tmp_path / "m.png"
    code, out, err = _train(capsys, first, path, second, path)
    _refused_before_training(code, out, err, "name the same file", first, second)
    assert not path.exists()


def test_collisions_through_links_and_with_the_resumed_checkpoint(capsys, tmp_path):
    model = tmp_path / "m.npz"
    (tmp_path / "link.npz").symlink_to(model)
    code, out, err = _train(capsys, "--out", model, "--checkpoint", tmp_path / "link.npz")
    _refused_before_training(code, out, err, "name the same file")
    ck = tmp_path / "ck.npz"
    assert _train(capsys, "--checkpoint", ck)[0] == 0
    before = ck.read_bytes()
    # --resume keeps updating its file: --out must not overwrite it
    code, out, err = _train(capsys, "--resume", ck, "--out", ck)
    _refused_before_training(code, out, err, "name the same file", "--resume")
    code, out, err = _train(capsys, "--resume", ck, "--checkpoint", tmp_path / "ck2.npz",
                            "--history", ck)
    _refused_before_training(code, out, err, "name the same file", "--resume")
    assert ck.read_bytes() == before
    # the same file for --resume and --checkpoint is the normal case
    code, out, err = _train(capsys, "--resume", ck, "--checkpoint", ck, "--max-iter", "2")
    assert code == 0, err


def test_check_distinct_outputs_sees_hard_links(tmp_path):
    from newtoncnn.fileio import check_distinct_outputs
    a = tmp_path / "a"
    a.write_bytes(b"")
    os.link(a, tmp_path / "b")
    with pytest.raises(ValueError, match="x and y name the same file"):
        check_distinct_outputs({"y": a, "z": None, "x": tmp_path / "b"})
    check_distinct_outputs({"y": a, "x": tmp_path / "c"})


def test_the_plot_is_written_atomically_through_a_symlink(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "real_curve"
    (tmp_path / "curve").symlink_to(target)
    code, out, err = _train(capsys, "--plot", tmp_path / "curve")  # no extension: PNG
    assert code == 0, err
    assert (tmp_path / "curve").is_symlink()
    assert target.read_bytes().startswith(b"\x89PNG")
