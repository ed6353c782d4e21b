"""The command line: ``python -m newtoncnn train ...`` and ``python -m newtoncnn evaluate ...``.

``train`` loads a data set (the bundled Fashion-MNIST subset by default),
normalizes it as simpleNN does, trains a :class:`~newtoncnn.estimator.CNNClassifier`
(the paper's network) with subsampled Gauss-Newton Newton-CG or momentum
SGD, prints one progress line per iteration, and can write the model
(``--out``), the history (``--history``) and a learning curve (``--plot``).
Ctrl-C stops training cleanly: the best parameters so far are kept and still
written. With ``--checkpoint FILE`` the Newton-CG state is saved (atomically)
every ``--checkpoint-every`` iterations, at the end and on Ctrl-C, and
``--resume FILE`` continues such a run on the same trajectory. ``evaluate``
reads a model and prints its test accuracy.

``mpiexec -n K newtoncnn train --mpi ...`` trains data-parallel
(:mod:`newtoncnn.distributed`): each process reads its contiguous part of the
training images; process 0 prints and writes ``--out``, ``--history``,
``--plot`` and the checkpoints; every process reads ``--resume``. The
processes check that they agree (options, version, data sizes) and end with
an error, not a hang, when they do not; an error on one process aborts them all.
"""
import argparse
import inspect
import math
import os
import secrets
import sys
import time
import traceback
import warnings

import numpy as np

from newtoncnn.newton import PRESETS
from newtoncnn.validation import DTYPES, GN_MODES, INT_MAX, LOSSES, SOLVERS, check_int, check_real

__all__ = ["main", "build_parser"]

EXIT_INTERRUPTED = 130  # the shell's convention for SIGINT


def _defaults():
    from newtoncnn import CNNClassifier
    return {name: p.default for name, p in
            inspect.signature(CNNClassifier.__init__).parameters.items() if name != "self"}


# ---------------------------------------------------------------- argument types
def _number(kind, what, **bounds):
    """An argparse type: an int or float (``kind``) within ``bounds`` (those of
    :func:`~newtoncnn.validation.check_int` / ``check_real``), with a clear message."""
    check = check_int if kind is int else check_real

    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}")
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        try:
            return check("value", value, **bounds)
        except ValueError:
            bound = f" of at most {INT_MAX}" if kind is int and value > INT_MAX else ""
            raise argparse.ArgumentTypeError(f"must be {what}{bound}, got {text!r}") from None
    convert.__name__ = "integer" if kind is int else "number"
    return convert


_POS_INT = _number(int, "a positive integer", low=1)
_NONNEG_INT = _number(int, "an integer >= 0", low=0)
_POS_FLOAT = _number(float, "a positive number", low=0.0, low_open=True)
_NONNEG_FLOAT = _number(float, "a number >= 0", low=0.0)
_FRACTION = _number(float, "a number in (0, 1]", low=0.0, high=1.0, low_open=True)
_MOMENTUM = _number(float, "a number in [0, 1)", low=0.0, high=1.0, high_open=True)


def _regularization(text):
    """--C: "auto" or a positive number."""
    return "auto" if text == "auto" else _POS_FLOAT(text)


_regularization.__name__ = "number"


# ---------------------------------------------------------------- parser
class _HelpFormatter(argparse.HelpFormatter):
    """Shows "(default: ...)" for options whose default is a value (not None or a flag)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("%(default)" not in text and action.default not in (None, False, argparse.SUPPRESS)
                and action.option_strings and action.nargs != 0):
            text += " (default: %(default)s)"
        return text


def _prog():
    argv0 = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m newtoncnn" if argv0 in ("__main__.py", "-m", "-c", "") else "newtoncnn"


def _add_data_options(p, test_only=False):
    from newtoncnn.datasets import DATASET_NAMES
    g = p.add_argument_group("data")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--data", choices=DATASET_NAMES, default="bundled",
                     help="data set: the Fashion-MNIST subset shipped with newtoncnn "
                          "(5,000 train / 1,000 test images), or Fashion-MNIST, MNIST or "
                          "CIFAR-10 found through $NEWTONCNN_DATA or their standard places "
                          "(default: %(default)s)")
    src.add_argument("--data-dir", metavar="DIR",
                     help="a directory holding the four IDX files (Fashion-MNIST/MNIST "
                          "layout) or CIFAR-10's python batches; the format is detected")
    if not test_only:
        g.add_argument("--n-train", type=_POS_INT, metavar="N",
                       help="use only the first N training images (quick runs)")
    g.add_argument("--n-test", type=_POS_INT, metavar="N",
                   help="use only the first N test images")
    return g


def build_parser(prog=None):
    """The argparse parser of the command line (``train`` and ``evaluate``).

    Parameters
    ----------
    prog : str, optional
        Program name shown in usage lines (default: argparse's).
    """
    from newtoncnn import __version__
    d = _defaults()
    prog = prog or _prog()
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train convolutional neural networks with subsampled Gauss-Newton "
                    "Newton-CG (Wang, Tan and Lin 2020; simpleNN) on CPUs.")
    parser.add_argument("--version", action="version", version=f"newtoncnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    fmt = _HelpFormatter
    # ------------------------------------------------------------ train
    t = sub.add_parser(
        "train", formatter_class=fmt, help="train a CNN and report its test accuracy",
        description="Train the paper's CNN (conv 5x5x32 > pool > conv 3x3x64 > pool > "
                    "conv 3x3x64 > pool > dense) on a data set, printing one line per "
                    "iteration: iter, f, |g|, alpha (step size), ratio (rho), lambda "
                    "(damping), #CG, cumulative seconds and the test accuracy. Ctrl-C "
                    "stops training, keeps the best parameters so far and still writes "
                    "--out (exit status 130).")
    _add_data_options(t)
    m = t.add_argument_group("model and objective")
    m.add_argument("--loss", choices=LOSSES, default=d["loss"],
                   help="squared: ||z - onehot(y)||^2 (simpleNN); softmax: cross-entropy")
    m.add_argument("--C", type=_regularization, default=d["C"], dest="C",
                   help="regularization constant: f = theta'theta / (2 C l) + mean loss; "
                        "auto: C = 600 / l (simpleNN's 0.01 on 60,000 images)")
    m.add_argument("--dtype", choices=DTYPES, default=d["dtype"],
                   help="floating-point precision")
    m.add_argument("--batch-size", type=_POS_INT, default=d["batch_size"], metavar="B",
                   help="instances per forward/backward pass (memory bound; results "
                        "do not depend on it)")
    m.add_argument("--solver", choices=SOLVERS, default=d["solver"],
                   help="subsampled Gauss-Newton Newton-CG, or momentum SGD (baseline)")
    n = t.add_argument_group("Newton-CG (--solver newton)")
    n.add_argument("--max-iter", type=_NONNEG_INT, default=d["max_iter"], metavar="K",
                   help="Newton iterations")
    n.add_argument("--preset", choices=tuple(PRESETS), default=d["preset"],
                   help="simplenn: simpleNN's exact method; fast: f and the gradient on a "
                        "growing sample, CG warm starts, 2%% Gauss-Newton subsets and at "
                        "most 40 CG iterations (no learning rate to tune). The options "
                        "below override the preset's values")
    n.add_argument("--subsample", type=_FRACTION, default=d["subsample"], metavar="S",
                   help="fraction of the instances in each Gauss-Newton subset "
                        "(preset: 0.05 simplenn, 0.02 fast)")
    n.add_argument("--cg-tol", type=_NONNEG_FLOAT, default=d["cg_tol"], metavar="XI",
                   help="relative CG tolerance: stop when ||r|| <= XI ||g|| (preset: 0.1)")
    n.add_argument("--cg-max-iter", type=_POS_INT, default=d["cg_max_iter"], metavar="N",
                   help="maximum CG iterations per Newton iteration "
                        "(preset: 250 simplenn, 40 fast)")
    n.add_argument("--damping", type=_NONNEG_FLOAT, default=d["damping"], metavar="LAMBDA",
                   help="initial Levenberg-Marquardt damping")
    n.add_argument("--gn-mode", choices=GN_MODES, default=d["gn_mode"],
                   help="Gauss-Newton products from a stored Jacobian, by R-operator "
                        "passes, or (auto) R-operator passes first and the Jacobian stored "
                        "once a cost model of the network says the products done would "
                        "have paid for it (when it is cheaper per product and fits in "
                        "memory)")
    n.add_argument("--checkpoint", metavar="FILE",
                   help="save the complete optimizer state to FILE (an .npz archive, "
                        "written atomically) every --checkpoint-every iterations, at the "
                        "end and on Ctrl-C, to continue the run later with --resume")
    n.add_argument("--checkpoint-every", type=_POS_INT, default=d["checkpoint_every"],
                   metavar="N", help="iterations between checkpoints")
    n.add_argument("--resume", metavar="FILE",
                   help="continue the run saved in checkpoint FILE on the same trajectory "
                        "(same data and options; --max-iter counts all iterations, so "
                        "a run checkpointed after 2 iterations and resumed with "
                        "--max-iter 3 does 1 more). The seed defaults "
                        "to the checkpoint's, and FILE keeps being updated unless "
                        "--checkpoint names another file")
    s = t.add_argument_group("SGD (--solver sgd)")
    s.add_argument("--lr", type=_POS_FLOAT, default=d["lr"], help="learning rate")
    s.add_argument("--momentum", type=_MOMENTUM, default=d["momentum"], help="momentum")
    s.add_argument("--sgd-batch-size", type=_POS_INT, default=d["sgd_batch_size"],
                   metavar="B", help="minibatch size")
    s.add_argument("--epochs", type=_NONNEG_INT, default=d["epochs"], help="epochs")
    r = t.add_argument_group("run")
    r.add_argument("--max-time", type=_POS_FLOAT, default=d["max_time"], metavar="SECONDS",
                   help="stop training after this many seconds (either solver)")
    r.add_argument("--threads", type=_POS_INT, metavar="N",
                   help="threads for the kernels and BLAS (default: $OMP_NUM_THREADS or "
                        "all available cores)")
    r.add_argument("--seed", type=_NONNEG_INT, metavar="SEED",
                   help="random seed of the initialization and the subsets (default: a "
                        "fresh one, printed so the run can be repeated)")
    r.add_argument("--no-validation", action="store_true",
                   help="do not compute the test accuracy after every iteration")
    r.add_argument("--out", metavar="MODEL.npz",
                   help="write the trained model here (read it with `evaluate --model`)")
    r.add_argument("--history", metavar="HISTORY.json",
                   help="write the per-iteration history (and the run's settings) as JSON")
    r.add_argument("--plot", metavar="CURVE.png",
                   help="plot f and the test accuracy per iteration (needs matplotlib)")
    r.add_argument("--quiet", action="store_true",
                   help="print only the final summary")
    r.add_argument("--mpi", action="store_true",
                   help="data-parallel training over MPI (needs mpi4py: pip install "
                        "'newtoncnn[mpi]'): start with `mpiexec -n K newtoncnn train --mpi "
                        "...`; each process reads its part of the training images, process "
                        "0 prints and writes the files (--max-time is not supported)")

    # ------------------------------------------------------------ evaluate
    e = sub.add_parser("evaluate", formatter_class=fmt,
                       help="print the test accuracy of a saved model",
                       description="Read a model written by `train --out` and print its "
                                   "accuracy on a data set's test images.")
    e.add_argument("--model", required=True, metavar="MODEL.npz", help="the model file")
    _add_data_options(e, test_only=True)
    e.add_argument("--threads", type=_POS_INT, metavar="N",
                   help="threads for the kernels and BLAS")

    parser.epilog = "\n\n".join(
        f"{'=' * 8} {name} {'=' * 8}\n{sp.format_help()}"
        for name, sp in (("train", t), ("evaluate", e)))
    return parser


# ---------------------------------------------------------------- helpers
class _CommandError(Exception):
    """A user error: printed as 'error: ...' without a traceback."""


def _say(*args, quiet=False):
    if not quiet:
        print(*args, flush=True)


class _Processes:
    """This process among those of the run: one (``comm`` None) or an ``--mpi`` run's."""

    def __init__(self, comm=None):
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()
        self.root = self.rank == 0

    def collective(self, make):
        """``make()``; under MPI an error on any process is raised on every process."""
        if self.comm is None:
            return make()
        from newtoncnn.distributed import on_every_rank
        return on_every_rank(self.comm, make)

    def agree(self, what, value):
        if self.comm is not None:
            from newtoncnn.distributed import agree
            agree(self.comm, what, value)

    def total(self, n):
        return n if self.comm is None else self.comm.allreduce(n)


def _check_outputs(args, checkpoint):
    """Every output path writable, none a directory or special file, no two the same
    file, and a plot format matplotlib knows: all checked before training starts."""
    from newtoncnn.fileio import check_distinct_outputs, check_output_path

    outputs = {"--out": args.out, "--history": args.history, "--plot": args.plot,
               "--checkpoint": checkpoint}
    if checkpoint is not None and args.checkpoint is None:
        outputs["--resume (updated as the checkpoint)"] = outputs.pop("--checkpoint")
    elif args.resume is not None and os.path.realpath(args.resume) != os.path.realpath(
            checkpoint):
        outputs["--resume"] = args.resume  # read, not written: it must not be overwritten
    for option, path in outputs.items():
        if path is not None and option != "--resume":
            check_output_path(path, option)
    check_distinct_outputs(outputs)
    if args.plot:
        try:
            from matplotlib.backend_bases import FigureCanvasBase
        except ImportError:
            raise _CommandError("--plot needs matplotlib, which is not installed "
                                "(pip install matplotlib, or newtoncnn[plot])") from None
        ext = _plot_format(args.plot)
        formats = FigureCanvasBase.get_supported_filetypes()
        if ext not in formats:
            raise _CommandError(f"--plot {args.plot!r}: the name must end with one of "
                                f"{', '.join('.' + f for f in sorted(formats))}")


def _checkpoint_options(args):
    """(checkpoint path or None, the loaded --resume checkpoint or None), checked."""
    from newtoncnn import load_checkpoint

    checkpoint = args.checkpoint
    if args.solver != "newton":
        for option, value in (("--checkpoint", args.checkpoint), ("--resume", args.resume)):
            if value is not None:
                raise _CommandError(f"{option} needs --solver newton")
        return None, None
    if args.resume is None:
        return checkpoint, None
    if not os.path.isfile(args.resume):
        raise _CommandError(f"--resume: no such file {args.resume!r}")
    try:
        resume_from = load_checkpoint(args.resume)
    except (ValueError, OSError) as exc:
        raise _CommandError(f"--resume: {exc}") from None
    return (args.resume if checkpoint is None else checkpoint), resume_from


def _load_data(args, need_train=True, procs=None):
    """(source, X_train, y_train, X_test, y_test); with ``procs`` of an --mpi run, the
    training part is this process's shard (and only that part is read)."""
    from newtoncnn.datasets import load_dataset, load_shard
    source = args.data_dir if args.data_dir is not None else args.data
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        raise _CommandError(f"--data-dir: {args.data_dir!r} is not a directory")
    n_train = getattr(args, "n_train", None)
    try:
        if procs is not None and procs.comm is not None:
            data = load_shard(source, procs.rank, procs.size, n_train=n_train)
            n_train = None
        else:
            data = load_dataset(source)
    except FileNotFoundError as exc:
        raise _CommandError(str(exc)) from None
    X_train, y_train, X_test, y_test = data
    if need_train and n_train is not None:
        X_train, y_train = X_train[:n_train], y_train[:n_train]
    if args.n_test is not None:
        X_test, y_test = X_test[:args.n_test], y_test[:args.n_test]
    return source, X_train, y_train, X_test, y_test


def _describe_layers(net):
    from newtoncnn.layers import Conv, Dense, MaxPool
    parts = []
    for layer in net.layers:
        if isinstance(layer, Conv):
            text = f"conv {layer.kernel_size}x{layer.kernel_size}x{layer.filters}"
            if layer.padding:
                text += f" pad {layer.padding}"
            if layer.stride != 1:
                text += f" stride {layer.stride}"
        elif isinstance(layer, MaxPool):
            text = f"pool {layer.pool_size}"
        elif isinstance(layer, Dense):
            text = f"dense {layer.units}"
        else:  # pragma: no cover
            text = repr(layer)
        parts.append(text)
    return " > ".join(parts)


def _accuracy_line(accuracy, n_correct, n):
    return f"test accuracy: {accuracy:.4f} ({n_correct}/{n})"


def _evaluate(clf, X, y):
    pred = clf.predict(X)
    n_correct = int(np.sum(pred == y))
    return n_correct / len(y), n_correct


def _plot_format(path):
    """The image format of a --plot file name: its extension, PNG without one."""
    return os.path.splitext(path)[1][1:].lower() or "png"


def _plot(path, history, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from newtoncnn.fileio import atomic_write

    key = "iter" if history and "iter" in history[0] else "epoch"
    x = [row.get(key, i + 1) for i, row in enumerate(history)]
    acc = [row.get("val_accuracy") for row in history]
    has_acc = any(a is not None for a in acc)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5, 3.8),
                             squeeze=False)
    ax = axes[0, 0]
    ax.plot(x, [row["f"] for row in history], marker=".")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("iteration" if key == "iter" else "epoch")
    ax.set_ylabel("objective f")
    ax.grid(True, alpha=0.3)
    if has_acc:
        ax = axes[0, 1]
        ax.plot(x, acc, marker=".", color="tab:green")
        ax.set_xlabel("iteration" if key == "iter" else "epoch")
        ax.set_ylabel("test accuracy")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format=_plot_format(path), dpi=120))
    plt.close(fig)


# ---------------------------------------------------------------- commands
def _preflight(args, procs):
    """Check the options and output paths (process 0 writes); (checkpoint, resume_from)."""
    checkpoint, resume_from = _checkpoint_options(args)
    if procs.comm is not None and args.max_time is not None:
        raise _CommandError("--max-time is not supported with --mpi (the processes' clocks "
                            "would not agree on when to stop)")
    if not procs.root:
        return None, resume_from
    _check_outputs(args, checkpoint)
    return checkpoint, resume_from


def _train(args, procs=None):
    t_start = time.perf_counter()
    from newtoncnn import __version__
    from sklearn.exceptions import ConvergenceWarning

    from newtoncnn import CNNClassifier, get_num_threads
    from newtoncnn.fileio import write_json
    from newtoncnn.newton import NewtonCG, Status, subsample_size
    from newtoncnn.regularization import auto_C

    procs = procs or _Processes()
    quiet = args.quiet or not procs.root
    procs.agree("the command line (options and newtoncnn version)",
                (__version__, sorted(vars(args).items())))
    checkpoint, resume_from = procs.collective(lambda: _preflight(args, procs))

    source, X_train, y_train, X_test, y_test = procs.collective(
        lambda: _load_data(args, procs=procs))
    procs.agree("the data (image shape, test images)",
                (X_train.shape[1:], X_test.shape, y_test.tobytes()))
    n_train = procs.total(len(X_train))
    seed = args.seed
    if seed is None and resume_from is not None:
        seed = resume_from["meta"]["fingerprint"].get("random_state")
    if seed is None:
        seed = secrets.randbelow(2**31)
        if procs.comm is not None:
            seed = procs.comm.bcast(seed)  # every process draws the same subsets
    clf = CNNClassifier(
        solver=args.solver, loss=args.loss, C=args.C, dtype=args.dtype,
        batch_size=args.batch_size, max_iter=args.max_iter, subsample=args.subsample,
        cg_tol=args.cg_tol, cg_max_iter=args.cg_max_iter, damping=args.damping,
        gn_mode=args.gn_mode, lr=args.lr, momentum=args.momentum,
        sgd_batch_size=args.sgd_batch_size, epochs=args.epochs, random_state=seed,
        verbose=0 if quiet else 1, n_threads=args.threads, max_time=args.max_time,
        checkpoint=checkpoint, checkpoint_every=args.checkpoint_every, preset=args.preset)

    n_classes = int(np.unique(y_train).size) if procs.comm is None else int(np.unique(
        np.concatenate(procs.comm.allgather(np.unique(y_train)))).size)
    image_shape = tuple(X_train.shape[1:]) if X_train.ndim == 4 else (1,) + X_train.shape[1:]
    try:
        net = clf.network_for(image_shape, n_classes)
    except (TypeError, ValueError) as exc:
        raise _CommandError(f"the network does not fit the data: {exc}") from None
    threads = args.threads if args.threads is not None else get_num_threads()
    _say(f"newtoncnn {__version__}: train ({'Newton-CG' if args.solver == 'newton' else 'SGD'})",
         quiet=quiet)
    _say(f"data      {source}: train {(n_train,) + X_train.shape[1:]} {X_train.dtype}, test "
         f"{X_test.shape} {X_test.dtype}, {n_classes} classes", quiet=quiet)
    if procs.comm is not None:
        _say(f"mpi       {procs.size} processes, each with about {n_train // procs.size} "
             "training images and the whole model", quiet=quiet)
    _say(f"network   {_describe_layers(net)}  ({args.loss} loss, {args.dtype})", quiet=quiet)
    _say(f"n_params  {net.n_params}   threads {threads}   seed {seed}", quiet=quiet)
    c_text = (f"auto = {auto_C(len(X_train)):.4g}" if args.C == "auto" else f"{args.C}")
    if args.solver == "newton":
        cfg = NewtonCG(preset=args.preset, subsample=args.subsample, cg_tol=args.cg_tol,
                       cg_max_iter=args.cg_max_iter).settings
        size = subsample_size(n_train, cfg["subsample"])
        _say(f"solver    Newton-CG ({args.preset}): max_iter {args.max_iter}, subsample "
             f"{cfg['subsample']} (|S| = {size}), C {c_text}, cg_tol {cfg['cg_tol']}, "
             f"cg_max_iter {cfg['cg_max_iter']}, damping {args.damping}, gn_mode "
             f"{args.gn_mode}", quiet=quiet)
        if resume_from is not None:
            state = resume_from["meta"]["state"]
            _say(f"resume    {args.resume}: {state['nit']} iterations done, f "
                 f"{state['f']:.6e}, lambda {state['lam']:.4e}", quiet=quiet)
        if checkpoint is not None:
            _say(f"checkpoint {checkpoint} every {args.checkpoint_every} "
                 f"iteration{'' if args.checkpoint_every == 1 else 's'}", quiet=quiet)
    else:
        _say(f"solver    SGD: epochs {args.epochs}, lr {args.lr}, momentum {args.momentum}, "
             f"batch {args.sgd_batch_size}, C {c_text}", quiet=quiet)

    validation = (None if args.no_validation or len(X_test) == 0 or not procs.root
                  else (X_test, y_test))
    t_fit = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(X_train, y_train, validation_data=validation, resume=args.resume,
                **({} if procs.comm is None else {"comm": procs.comm}))
    for w in caught:  # the summary reports interruptions and failures itself
        if not (issubclass(w.category, ConvergenceWarning)
                or "interrupted by the user" in str(w.message)):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    fit_seconds = time.perf_counter() - t_fit
    if not procs.root:
        return 0  # process 0 evaluates, writes and reports
    result = clf.result_
    interrupted = result.status == Status.INTERRUPTED
    if interrupted:
        print(f"interrupted: keeping the best parameters so far ({result.nit} iterations "
              "done)", flush=True)

    # Write the model first: nothing is lost if the evaluation is interrupted.
    if args.out:
        clf.save(args.out)
    accuracy = n_correct = None
    try:
        accuracy, n_correct = _evaluate(clf, X_test, y_test)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted: test accuracy not computed", flush=True)
    if args.history:
        write_json(args.history, {
            "command": "train", "data": source, "n_train": n_train, "processes": procs.size,
            "n_test": len(X_test), "n_params": clf.network_.n_params, "threads": threads,
            "params": clf.get_params(), "status": int(result.status),
            "status_name": Status(result.status).name, "message": result.message,
            "n_iter": int(result.nit), "train_seconds": fit_seconds,
            "test_accuracy": accuracy, "history": clf.history_})
    if args.plot and clf.history_:
        _plot(args.plot, clf.history_,
              f"{source}: {'Newton-CG' if args.solver == 'newton' else 'SGD'}, "
              f"{n_train} images")

    last = clf.history_[-1] if clf.history_ else {}
    unit = "iteration" if args.solver == "newton" else "epoch"
    print(f"status    {result.message} ({result.nit} {unit}{'' if result.nit == 1 else 's'}"
          + (f", {result.nhev} CG iterations" if "nhev" in result else "") + ")", flush=True)
    if last:
        print(f"final     f {last['f']:.6e}  |g| {last['grad_norm']:.3e}", flush=True)
    print(f"time      training {fit_seconds:.2f} s, total "
          f"{time.perf_counter() - t_start:.2f} s", flush=True)
    if accuracy is not None:
        print(_accuracy_line(accuracy, n_correct, len(y_test)), flush=True)
    for option, path in (("model", args.out), ("history", args.history),
                         ("plot", args.plot if clf.history_ else None),
                         ("checkpoint", checkpoint if checkpoint and os.path.isfile(checkpoint)
                          else None)):
        if path:
            print(f"{option} written to {path}", flush=True)
    return EXIT_INTERRUPTED if interrupted else 0


def _evaluate_command(args):
    from newtoncnn import CNNClassifier

    if not os.path.isfile(args.model):
        raise _CommandError(f"--model: no such file {args.model!r}")
    try:
        clf = CNNClassifier.load(args.model)
    except (ValueError, KeyError, OSError) as exc:
        raise _CommandError(f"--model: cannot read {args.model!r}: {exc}") from None
    if args.threads is not None:
        clf.set_params(n_threads=args.threads)
    source, _, _, X_test, y_test = _load_data(args, need_train=False)
    print(f"model     {args.model}: {_describe_layers(clf.network_)} "
          f"({clf.network_.loss} loss, {clf.network_.dtype.name}), "
          f"{clf.network_.n_params} parameters", flush=True)
    print(f"data      {source}: test {X_test.shape} {X_test.dtype}", flush=True)
    accuracy, n_correct = _evaluate(clf, X_test, y_test)
    print(_accuracy_line(accuracy, n_correct, len(y_test)), flush=True)
    return 0


def _train_mpi(args):
    """``_train`` on every process of MPI's world; an error on one process ends them all."""
    try:
        from newtoncnn import distributed
        procs = _Processes(distributed.world())
    except ImportError as exc:
        raise _CommandError(f"--mpi: {exc}") from None
    try:
        return _train(args, procs)
    except distributed.CollectiveError as exc:  # raised on every process: a normal exit
        if procs.root:
            print(f"{_prog()} train: error: {exc}", file=sys.stderr, flush=True)
        return 1
    except BaseException as exc:
        # One process failed; the others may be waiting for it in a collective. Say why,
        # then end every process of the job.
        if isinstance(exc, (_CommandError, ValueError, OSError)):
            print(f"{_prog()} train: error on process {procs.rank} of {procs.size}: {exc}",
                  file=sys.stderr, flush=True)
        else:
            traceback.print_exc()
            print(f"{_prog()} train: process {procs.rank} of {procs.size} failed; aborting "
                  "every process", file=sys.stderr, flush=True)
        procs.comm.Abort(EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else 1)


def main(argv=None):
    """Run the command line; returns the exit status (0 ok, 1 error, 2 usage, 130 Ctrl-C).

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).
    """
    args = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_usage(sys.stderr)
            print(f"{parser.prog}: error: choose a command: train or evaluate "
                  f"(see {parser.prog} --help)", file=sys.stderr)
            return 2
        if args.command == "train" and args.mpi:
            return _train_mpi(args)
        run = _train if args.command == "train" else _evaluate_command
        return run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except (_CommandError, ValueError, OSError) as exc:
        where = f" {args.command}" if args is not None and args.command else ""
        print(f"{_prog()}{where}: error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
