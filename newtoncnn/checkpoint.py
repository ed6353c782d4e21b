"""Checkpoints of :class:`~newtoncnn.newton.NewtonCG` runs: what is saved, how, and checks.

With ``NewtonCG(checkpoint=path)`` the complete state of the run is written
to ``path`` after every ``checkpoint_every``-th iteration, at the end of
``minimize`` (whatever the status), on ``KeyboardInterrupt`` and when an
exception escapes: ``x``, ``f``, ``g``, ``λ``, the iteration count, the
subset schedule (the generator's ``bit_generator.state``, the current
permutation and the position in its cycle), ``nfev``/``njev``/``nhev``, the
history, the consecutive-failure count, the cumulative ``seconds``, and a
fingerprint of the problem and of the settings that shape the trajectory.
A checkpoint always describes the state between two iterations: an
iteration interrupted half-way is redone on resume. The file is an archive
of :mod:`newtoncnn.fileio` (``.npz`` of arrays plus one JSON string, no
pickle), written atomically: a crash while writing leaves the previous
checkpoint intact. An ``OSError`` while writing (disk full, ...) is a
``RuntimeWarning``, not the end of the run. :func:`load_checkpoint` reads one.

``minimize(objective, x0, resume=path)`` continues the run saved in
``path``: the result, the history (``seconds`` apart) and every later
checkpoint are bit-for-bit those of the run that was never stopped, given
the same objective, settings and thread count. ``max_iter`` counts the
iterations of the whole run (a checkpoint after 3 iterations resumed with
``max_iter=6`` does 3 more); ``max_time`` is the budget of this call. The
fingerprint must match: ``objective.n_samples``, the number of parameters,
the dtype, ``subsample``, ``cg_tol``, ``cg_max_iter``, ``damping_drop``,
``damping_boost``, ``armijo``, ``gn_mode``, ``max_halvings``, when both
are ints ``random_state``, and whatever the objective's optional
``fingerprint()`` method returns (for a
:class:`~newtoncnn.objective.CNNObjective`: ``C``, the loss, the network and
a digest of the data X and y it holds, so after any normalization);
otherwise a ``ValueError`` lists what differs. A checkpoint written before
these entries existed (newtoncnn 0.1.0) still resumes, with a
``UserWarning`` that it could not be verified against them.
``damping`` (the *initial* λ) is not compared: λ is restored. Termination
settings (``max_iter``, ``max_time``, ``gtol``, ``max_failures``,
``max_damping``) may change between runs.
"""
import json
import numbers
import os
import warnings

import numpy as np

from newtoncnn._optim_common import prepare_x0
from newtoncnn.fileio import OutputPathError, dumps_json, read_archive, write_archive
from newtoncnn.subsampling import BlockSchedule
from newtoncnn.validation import GN_MODES, check_bool, check_int, check_real

__all__ = ["load_checkpoint", "fingerprint", "problem_fingerprint", "check_fingerprint", "restore",
           "Checkpointer"]

FORMAT = "newtoncnn.NewtonCG.checkpoint"
VERSION = 1
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def problem_fingerprint(objective):
    """``objective.fingerprint()`` (a JSON-ready dict of what defines the problem: for a
    CNN objective its C, loss, network and data digest), or ``{}`` when the objective
    has no such method.

    Parameters
    ----------
    objective : object
        The objective of the run.
    """
    method = getattr(objective, "fingerprint", None)
    if method is None:
        return {}
    found = method()
    if not isinstance(found, dict):
        raise TypeError(f"objective.fingerprint() must return a dict, got "
                        f"{type(found).__name__}")
    return found


def fingerprint(optimizer, n_samples, x, problem=None):
    """What a checkpoint must agree on to continue the same trajectory.

    Parameters
    ----------
    optimizer : NewtonCG
        The optimizer whose settings shape the trajectory.
    n_samples : int
        ``objective.n_samples``.
    x : ndarray
        The starting point (its size and dtype are recorded).
    problem : dict, optional
        :func:`problem_fingerprint` of the objective, recorded as well.
    """
    rs = optimizer.random_state
    return {**(problem or {}),
        "n_samples": int(n_samples),
        "n_params": int(x.size),
        "dtype": x.dtype.name,
        "subsample": float(optimizer._cfg.subsample),
        "cg_tol": float(optimizer._cfg.cg_tol),
        "cg_max_iter": int(optimizer._cfg.cg_max_iter),
        "cg_model_tol": float(optimizer._cfg.cg_model_tol),
        "cg_warm_start": float(optimizer._cfg.cg_warm_start),
        "gradient_sample": float(optimizer._cfg.gradient_sample),
        "sample_theta": float(optimizer._cfg.sample_theta),
        "cg_diag_samples": int(optimizer._cfg.cg_diag_samples),
        "damping_full_step": bool(optimizer._cfg.damping_full_step),
        "damping_drop": float(optimizer.damping_drop),
        "damping_boost": float(optimizer.damping_boost),
        "armijo": float(optimizer.armijo),
        "gn_mode": optimizer.gn_mode,
        "max_halvings": int(optimizer.max_halvings),
        "random_state": (int(rs) if isinstance(rs, numbers.Integral)
                         and not isinstance(rs, bool) else None),
    }


# Entries every checkpoint has had since version 0.1.0, and their checks.
_V0_1_0 = {
    "n_samples": lambda name, v: check_int(name, v, 1),
    "n_params": lambda name, v: check_int(name, v, 1),
    "dtype": lambda name, v: _one_of(name, v, ("float32", "float64")),
    "subsample": lambda name, v: check_real(name, v, 0.0, 1.0, low_open=True),
    "cg_tol": lambda name, v: check_real(name, v, 0.0),
    "cg_max_iter": lambda name, v: check_int(name, v, 1),
    "damping_drop": lambda name, v: check_real(name, v, 0.0, 1.0, low_open=True),
    "damping_boost": lambda name, v: check_real(name, v, 1.0),
    "armijo": lambda name, v: check_real(name, v, 0.0, 1.0, high_open=True),
    "gn_mode": lambda name, v: _one_of(name, v, GN_MODES),
    "max_halvings": lambda name, v: check_int(name, v, 0),
    "random_state": lambda name, v: None if v is None else check_int(name, v, 0),
}
_FINITE_STATE = {"f": None, "gnorm": 0.0, "gnorm0": 0.0, "lam": 0.0, "seconds": 0.0}
_COUNTS = ("nit", "fails", "nfev", "njev", "nhev")


def _one_of(name, value, options):
    if value not in options:
        raise ValueError(f"{name} is {value!r}, expected one of {options}")
    return value


# Settings added after version 0.1.0, with the values its runs had (simpleNN's).
_SINCE_0_1_0 = {"cg_model_tol": 0.0, "cg_warm_start": 0.0, "gradient_sample": 1.0,
                "sample_theta": 0.5, "cg_diag_samples": 0, "damping_full_step": False}


def check_fingerprint(saved, here, path):
    """Raise ValueError listing every setting in which ``saved`` and ``here`` differ.

    Parameters
    ----------
    saved : dict
        The fingerprint stored in the checkpoint.
    here : dict
        The fingerprint of this problem and these settings.
    path : str
        The checkpoint's path, named in the error message.
    """
    diffs, unverified = [], []
    for key, value in here.items():
        if key not in saved and key not in _SINCE_0_1_0:
            unverified.append(key)
            continue
        old = saved.get(key, _SINCE_0_1_0.get(key))
        if key == "random_state" and (old is None or value is None):
            continue  # only two explicit seeds can disagree
        if old != _json_copy(value):
            diffs.append(_LABELS.get(key, "{key} is {old!r} in the checkpoint but {value!r} "
                                          "here").format(key=key, old=old, value=value))
    if diffs:
        raise ValueError(f"checkpoint {path!r} does not match this run: " + "; ".join(diffs))
    if unverified:
        warnings.warn(f"checkpoint {path!r} does not record {', '.join(unverified)} (it was "
                      "written by an older newtoncnn): it could not be verified that it was "
                      "written for this data and these settings", UserWarning, stacklevel=4)


_LABELS = {"data": "the data differ from the checkpoint's (digest of X and y as the "
                   "objective holds them, after any normalization: {old} in the checkpoint, "
                   "{value} here)"}


def _json_copy(value):
    """``value`` as it reads back from a checkpoint's JSON (tuples become lists)."""
    return json.loads(dumps_json(value))


def restore(ck, optimizer, objective, x0, n_samples, path, problem=None):
    """The state of the run saved in ``ck`` (a :func:`load_checkpoint` dict), after checking
    that it belongs to this problem and these settings (:func:`fingerprint`) and that
    every entry is sound.

    ``x0`` (None, or the starting point of the resumed call) fixes the size and
    dtype; without it they come from the checkpoint (the objective's dtype wins).

    Parameters
    ----------
    ck : dict
        A checkpoint read by :func:`load_checkpoint`.
    optimizer : NewtonCG
        The optimizer that resumes (its fingerprint must match).
    objective : object
        The objective of the resumed run.
    x0 : array_like or None
        The resumed call's starting point (size and dtype checked).
    n_samples : int
        ``objective.n_samples``.
    path : str
        The checkpoint's path, named in error messages.
    problem : dict, optional
        :func:`problem_fingerprint` of the objective (compared too).

    Returns
    -------
    state : dict
        ``x``, ``g`` (copies), ``f``, ``gnorm``, ``gnorm0``, ``lam``, ``fails``,
        ``nfev``, ``njev``, ``nhev``, ``history`` and ``seconds``.
    blocks : BlockSchedule
        The subset schedule where the run left it.
    """
    if x0 is not None:
        x0 = prepare_x0(x0, objective)
        n_params, dtype = x0.size, x0.dtype
    else:
        saved = ck["meta"]["fingerprint"]
        dtype = getattr(objective, "dtype", None)
        try:
            n_params = check_int("n_params", saved["n_params"], 1)
            dtype = np.dtype(saved["dtype"] if dtype is None else dtype)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"checkpoint {path!r} is corrupt: {exc}") from None
    here = fingerprint(optimizer, n_samples, np.empty(n_params, dtype=dtype), problem)
    check_fingerprint(ck["meta"]["fingerprint"], here, path)
    blocks = BlockSchedule(n_samples, optimizer._cfg.subsample, None)
    meta = ck["meta"]
    x, g, perm = ck["x"], ck["g"], ck["perm"]
    state, sched = meta["state"], meta["schedule"]
    blocks.rng = _rng_from_state(sched["rng"], path)
    out = {}
    try:
        for name, arr in (("x", x), ("g", g)):
            if arr.shape != (n_params,) or arr.dtype != dtype or not np.isfinite(arr).all():
                raise ValueError(f"{name} has shape {arr.shape} and dtype {arr.dtype}, "
                                 f"expected finite ({n_params},) {dtype}")
            out[name] = arr.copy()
        if sched["has_perm"]:
            if perm.shape != (n_samples,) or not np.array_equal(np.sort(perm),
                                                                np.arange(n_samples)):
                raise ValueError("the stored permutation is not a permutation of "
                                 f"{n_samples} instances")
            blocks.perm = perm
        blocks.pos = check_int("schedule position", sched["pos"], 0, blocks.n_blocks)
        history = meta["history"]
        nit = check_int("iteration count", state["nit"], 0)
        if not isinstance(history, list) or len(history) != nit:
            raise ValueError(f"the history has {len(history)} rows for {nit} iterations")
        out["history"] = history
        for key in ("f", "gnorm", "gnorm0", "lam", "seconds"):
            out[key] = float(state[key])
        out["fails"] = check_int("failure count", state["fails"], 0)
        for key in ("nfev", "njev", "nhev"):
            out[key] = check_int(key, state[key], 0)
        out["s_prev"] = _optional_vector(ck.get("s_prev"), n_params, dtype, "s_prev")
        out["sample_state"] = _sample_state(ck.get("sample_order"), state, n_samples,
                                            optimizer._cfg.gradient_sample < 1.0)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint {path!r} is corrupt: {exc}") from None
    return out, blocks


def _optional_vector(arr, n_params, dtype, name):
    """A stored vector that may be absent (empty, or missing in older files): None."""
    if arr is None or arr.size == 0:
        return None
    if arr.shape != (n_params,) or arr.dtype != dtype or not np.isfinite(arr).all():
        raise ValueError(f"{name} has shape {arr.shape} and dtype {arr.dtype}, "
                         f"expected finite ({n_params},) {dtype}")
    return arr.copy()


def _sample_state(order, state, n_samples, sampled):
    """(order, size, part_size) of the gradient sample, or None when f runs on all data."""
    if not sampled:
        return None
    if order is None or order.shape != (n_samples,) or not np.array_equal(
            np.sort(order), np.arange(n_samples)):
        raise ValueError("the gradient sample's order is missing or not a permutation of "
                         f"{n_samples} instances")
    size = check_int("sample size", state["sample_size"], 2, n_samples)
    part_size = check_int("sample part size", state["sample_part_size"], 1, n_samples)
    return order.copy(), size, part_size


class Checkpointer:
    """Keeps the state at the last iteration boundary and writes it on demand.

    ``mark`` records references (``x`` and ``g`` are replaced, never changed
    in place, by the iteration; the permutation likewise), so it is cheap;
    an iteration interrupted half-way therefore never reaches the file.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.
    every : int
        ``checkpoint_every``: iterations between writes.
    fingerprint : dict
        What the file must agree on to be resumed (:func:`fingerprint`).
    """

    def __init__(self, path, every, fingerprint):
        self.path = os.fspath(path)
        self.every = every
        self.fingerprint = fingerprint
        self.snap = None
        self.written = None  # iteration count of the last file written

    def mark(self, st, blocks, seconds):
        self.snap = {
            "x": st.x, "g": st.g, "perm": blocks.perm, "pos": blocks.pos,
            "rng": blocks.rng.bit_generator.state,
            "state": {"nit": len(st.history), "f": st.f, "gnorm": st.gnorm,
                      "gnorm0": st.gnorm0, "lam": st.lam, "fails": st.fails,
                      "nfev": st.nfev, "njev": st.njev, "nhev": st.nhev,
                      "seconds": float(seconds)},
            "s_prev": st.s_prev, "sample": st.sample,
        }
        if st.sample is not None:  # its size and order only grow/stay: copy the ints now
            self.snap["state"].update(sample_size=st.sample.size,
                                      sample_part_size=st.sample.part_size)

    def write(self, history, quiet=False):
        """Write the marked state unless it is already on disk.

        Parameters
        ----------
        history : list of dict
            The run's history rows (saved with the state).
        quiet : bool, default False
            Suppress the warning on a failed write (used while an exception escapes).
        """
        snap = self.snap
        if snap is None or snap["state"]["nit"] == self.written:
            return
        nit = snap["state"]["nit"]
        perm = snap["perm"]
        meta = {
            "fingerprint": self.fingerprint,
            "state": snap["state"],
            "schedule": {"rng": snap["rng"], "pos": snap["pos"], "has_perm": perm is not None},
            "history": history[:nit],
        }
        arrays = {"x": snap["x"], "g": snap["g"],
                  "perm": np.zeros(0, np.int64) if perm is None else perm,
                  "s_prev": snap["x"][:0] if snap["s_prev"] is None else snap["s_prev"],
                  "sample_order": (np.zeros(0, np.int64) if snap["sample"] is None
                                   else snap["sample"].order)}
        try:
            write_archive(self.path, FORMAT, VERSION, meta, arrays)
        except (OSError, OutputPathError) as exc:
            if not quiet:
                warnings.warn(f"could not write the checkpoint {self.path!r} ({exc}); "
                              "the previous one is kept and the run goes on",
                              RuntimeWarning, stacklevel=4)
            return
        except Exception:
            if quiet:
                return
            raise
        self.written = nit


def _rng_from_state(state, path):
    """A Generator whose bit generator has the JSON ``state`` of a checkpoint."""
    where = f"checkpoint {path!r}: " if path else ""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if not isinstance(name, str) or name not in _BIT_GENERATORS:
        raise ValueError(f"{where}unsupported random generator {name!r} "
                         f"(expected one of {_BIT_GENERATORS})")
    bit_generator = getattr(np.random, name)()
    try:
        bit_generator.state = state
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{where}bad generator state ({type(exc).__name__}: {exc})") from None
    return np.random.Generator(bit_generator)


def load_checkpoint(path):
    """Read a checkpoint written by ``NewtonCG(checkpoint=path)``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
        ``x``, ``g`` (the iterate and its gradient), ``perm`` (the current
        permutation of the subset schedule, empty before the first block)
        and ``meta``: the JSON part with ``fingerprint`` (``n_samples``,
        ``n_params``, ``dtype`` and the settings), ``state`` (``nit``, ``f``,
        ``gnorm``, ``gnorm0``, ``lam``, ``fails``, ``nfev``, ``njev``,
        ``nhev``, ``seconds``), ``schedule`` (``rng``: the bit generator's
        state, ``pos``, ``has_perm``) and ``history``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        ``path`` is not a readable NewtonCG checkpoint (corrupt, truncated,
        another kind of file, or written by a newer version).
    """
    path = os.fspath(path)
    meta, arrays = read_archive(path, FORMAT, VERSION, ("x", "g", "perm"), "checkpoint")
    try:
        _check_contents(meta, arrays)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        detail = f"no {exc} entry" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"checkpoint {path!r} is corrupt: {detail}") from None
    out = {"x": arrays["x"], "g": arrays["g"], "perm": arrays["perm"], "meta": meta}
    for key in ("s_prev", "sample_order"):  # written since 0.2: absent from older files
        if key in arrays:
            out[key] = arrays[key]
    return out


def _check_contents(meta, arrays):
    """Check every entry of a checkpoint on its own (types, ranges, finiteness, shapes
    against its fingerprint); :func:`restore` then checks it against the run."""
    for key in ("fingerprint", "state", "schedule", "history"):
        if key not in meta:
            raise KeyError(repr(key))
    fp, state, sched = meta["fingerprint"], meta["state"], meta["schedule"]
    for name, entry in (("fingerprint", fp), ("state", state), ("schedule", sched)):
        if not isinstance(entry, dict):
            raise TypeError(f"{name} is a {type(entry).__name__}, expected a dict")
    for key, check in _V0_1_0.items():
        check(f"fingerprint[{key!r}]", fp[key])
    for key in _SINCE_0_1_0:
        if key in fp:
            check = check_bool if isinstance(_SINCE_0_1_0[key], bool) else check_real
            check(f"fingerprint[{key!r}]", fp[key])
    n_samples, n_params, dtype = fp["n_samples"], fp["n_params"], np.dtype(fp["dtype"])
    for key in _COUNTS:
        check_int(f"state[{key!r}]", state[key], 0)
    for key, low in _FINITE_STATE.items():
        check_real(f"state[{key!r}]", state[key], low)  # finite: NaN f or λ < 0 is corrupt
    history = meta["history"]
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise TypeError("history is not a list of rows")
    if len(history) != state["nit"]:
        raise ValueError(f"the history has {len(history)} rows for {state['nit']} iterations")
    _rng_from_state(sched["rng"], "")
    check_int("schedule['pos']", sched["pos"], 0, n_samples)
    if not isinstance(sched["has_perm"], bool):
        raise TypeError("schedule['has_perm'] is not true or false")
    for name in ("x", "g"):
        _check_vector(name, arrays[name], n_params, dtype, required=True)
    _check_vector("s_prev", arrays.get("s_prev"), n_params, dtype, required=False)
    _check_permutation("perm", arrays["perm"], n_samples, required=sched["has_perm"])
    _check_permutation("sample_order", arrays.get("sample_order"), n_samples, required=False)


def _check_vector(name, arr, n_params, dtype, required):
    if arr is None or (not required and arr.size == 0):
        return
    if arr.shape != (n_params,) or arr.dtype != dtype or not np.isfinite(arr).all():
        raise ValueError(f"{name} has shape {arr.shape} and dtype {arr.dtype}, expected "
                         f"finite ({n_params},) {dtype} (the fingerprint's n_params and dtype)")


def _check_permutation(name, arr, n, required):
    if arr is None or (not required and arr.size == 0):
        return
    if (arr.dtype.kind not in "iu" or arr.shape != (n,)
            or not np.array_equal(np.sort(arr), np.arange(n))):
        raise ValueError(f"{name} is not a permutation of the {n} instances")
