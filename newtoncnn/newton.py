"""Subsampled Gauss-Newton Newton-CG with Levenberg-Marquardt damping.

This is the Newton method of Wang, Tan and Lin, "Newton Methods for
Convolutional Neural Networks" (ACM TIST 2020) and of their reference code
simpleNN, written against an abstract objective so that it knows nothing
about neural networks (like LIBLINEAR's ``newton.h``).

The user guide ("The Newton iteration", docs/guide/newton.rst) explains each step.
The objective protocol is described in ``newtoncnn._optim_common``.

The iteration (simpleNN's, exactly)
-----------------------------------
With full-data ``f`` and ``g = ∇f(x)`` and damping ``lam`` (``λ``):

1. Subset ``S``: ``|S| = ceil(subsample * l)``. The ``l`` instances are cut
   into ``R = ceil(l / |S|)`` blocks of one random permutation
   (``numpy.random.default_rng(random_state).permutation(l)``), wrapping
   around so every block is full: block ``j`` is
   ``perm[(j |S| + arange(|S|)) % l]``. One block per iteration, a new
   permutation every ``R`` iterations (see :func:`~newtoncnn.subsampling.subsample_blocks`).
2. CG on ``(G_S + λ I) s = -g`` from ``s = 0``, no preconditioner, until
   ``‖r‖ <= cg_tol ‖g‖`` or ``cg_max_iter`` iterations
   (:func:`~newtoncnn.cg.conjugate_gradient`). ``sᵀ G_S s = sᵀ(-g - r - λ s)`` is free.
3. Backtracking line search on the full-data ``f``: ``α = 1, 1/2, 1/4, …``,
   accept the first ``α`` with ``f(x + α s) - f(x) <= armijo α gᵀs``.
4. Levenberg-Marquardt: ``rho = actred / prered`` with
   ``actred = f(x + α s) - f(x)`` and ``prered = α gᵀs + ½ α² sᵀ G_S s``;
   ``rho < 0.25`` → ``λ ← damping_boost λ``; ``rho >= 0.75`` →
   ``λ ← damping_drop λ``; an undefined ``rho`` (zero or non-finite
   ``prered``) leaves ``λ`` unchanged, as simpleNN's comparisons with NaN do.
5. ``x ← x + α s``. The trial of the line search whose ``α`` was accepted last
   time (``α = 1`` at first) computes ``f`` and ``g`` together (``fun_grad``), so
   the usual case needs no second pass, and the trials before it cost ``f`` only
   (the same ``f`` to the bit: the iterates do not depend on which trial does).

The options that cut the work (``preset="fast"``) are described in
:mod:`newtoncnn.solver_presets`.

Differences from simpleNN, all on failure paths only: the line search tries
at most ``max_halvings`` halvings and counts a non-finite trial ``f`` as a
rejection. A failed line search (or a CG direction that is not a descent
direction) does not move ``x``: ``λ`` is multiplied by ``damping_boost``, the
iteration is recorded with ``alpha = 0`` and the method goes on with the next
subset, stopping after ``max_failures`` consecutive failures or when ``λ``
exceeds ``max_damping``.

``OptimizeResult.status`` is a :class:`~newtoncnn._optim_common.Status`.
``success`` is True for statuses 0-3. Whatever the status, ``x`` is finite
and is the last accepted iterate (the lowest ``f`` seen, since accepted steps
decrease ``f``).

Checkpoints and resuming
------------------------
``NewtonCG(checkpoint=path)`` saves the complete state of the run, and
``minimize(objective, x0, resume=path)`` continues it on the same
trajectory: see :mod:`newtoncnn.checkpoint`.
"""

import math
import os
import types

import numpy as np
from scipy.optimize import OptimizeResult

from newtoncnn import checkpoint as _checkpoint
from newtoncnn.cg import CGResult, conjugate_gradient, progress_printer
from newtoncnn.gradient_sample import GradientSample
from newtoncnn.solver_presets import PRESETS, resolve_preset
from newtoncnn._optim_common import (
    STATUS_MESSAGES,
    SUCCESS_STATUSES,
    Clock,
    ParamsMixin,
    Status,
    all_finite,
    as_vector,
    check_objective,
    dot64,
    emit,
    format_row,
    fun_grad,
    norm64,
    prepare_x0,
    run_hooks,
)
from newtoncnn.checkpoint import load_checkpoint
from newtoncnn.fileio import check_output_path
from newtoncnn.subsampling import BlockSchedule, subsample_blocks, subsample_size
from newtoncnn.validation import (
    GN_MODES,
    check_int,
    check_max_time,
    check_option,
    check_optional_callable,
    check_optional_path,
    check_random_state,
    check_real,
    check_verbose,
)

__all__ = ["NewtonCG", "Status", "CGResult", "conjugate_gradient", "subsample_size",
           "subsample_blocks", "load_checkpoint", "GN_MODES", "PRESETS"]

# Printed columns: (history key, label, format).
_FIELDS = [
    ("iter", "iter", "4d"),
    ("f", "f", ".6e"),
    ("grad_norm", "|g|", ".3e"),
    ("alpha", "alpha", ".3e"),
    ("ratio", "ratio", ".3f"),
    ("damping", "lambda", ".4e"),
    ("cg_iters", "#CG", "3d"),
    ("seconds", "time", ".2f"),
]
# History keys not printed (available in the result).
_HIDDEN = ("actred", "prered", "ls_trials", "cg_residual")




# ============================================================== optimizer
class _State:
    """Mutable state of one run (kept together so Ctrl-C loses nothing)."""

    def __init__(self, x, lam):
        self.x = x
        self.f = math.nan
        self.g = None
        self.gnorm = math.nan
        self.gnorm0 = math.nan
        self.lam = lam
        self.fails = 0  # consecutive rejected iterations
        self.nfev = self.njev = self.nhev = 0
        self.history = []
        self.pending = None  # (x, f) accepted but gradient not yet computed
        self.sample = None  # GradientSample when f and g run on a sample
        self.parts = None  # the sample's per-part (n, f, g) at x
        self.s_prev = None  # last accepted Newton direction (CG warm start)
        # The line-search trial that computes g with f: the one that was accepted last
        # time (α = 1 at first). Cost only: f is the same to the bit either way.
        self.grad_trial = 1


class NewtonCG(ParamsMixin):
    """Subsampled Gauss-Newton Newton-CG (simpleNN's method and defaults).

    See the module docstring for the objective protocol and the iteration.

    Parameters
    ----------
    max_iter : int, default 100
        Number of Newton iterations (each one a row of ``history``).
    subsample : float in (0, 1], default None (simplenn: 0.05, fast: 0.02)
        Fraction of instances in the Gauss-Newton subset.
    cg_tol : float >= 0, default None (preset: 0.1)
        Relative CG tolerance ``ξ``: stop when ``‖r‖ <= ξ ‖g‖``.
    cg_max_iter : int >= 1, default None (simplenn: 250, fast: 40)
        Maximum CG iterations per Newton iteration.
    damping : float >= 0, default 1.0
        Initial Levenberg-Marquardt damping ``λ₀``.
    damping_drop : float in (0, 1], default 2/3
        Factor applied to ``λ`` when ``rho >= 0.75``.
    damping_boost : float >= 1, default 3/2
        Factor applied to ``λ`` when ``rho < 0.25`` or a step is rejected.
    armijo : float in [0, 1), default 1e-4
        Sufficient-decrease constant ``η`` of the line search.
    gn_mode : {"auto", "jacobian", "rop"}, default "auto"
        Passed to ``objective.gauss_newton`` (how the product is computed).
    random_state : None, int or numpy.random.Generator, default None
        Seeds the subset permutations. An int gives the same run every time.
    callback : callable, optional
        ``callback(x, row)`` after every iteration with a read-only view of
        ``x`` and the history row; it may return a dict (merged into the
        row), True (stop with status ``CALLBACK``) or None, or raise
        ``StopIteration``.
    verbose : int, default 0
        1 prints one line per iteration (iter, f, ``|g|``, alpha, ratio, lambda,
        #CG, time, then validation entries), as simpleNN does. 2 also prints
        CG's progress (every 25 products or 10 seconds) during long iterations.
    max_halvings : int >= 0, default 20
        Maximum step halvings of the line search (so ``α >= 2**-20 ≈ 1e-6``).
        simpleNN has no bound and can loop forever.
    gtol : float >= 0, default 1e-8
        Stop when ``‖g‖ <= gtol ‖g₀‖`` (relative to the initial gradient, so
        the test is independent of the scaling of ``f``). 0 disables it except
        for an exactly zero gradient.
    max_time : float > 0, optional
        Stop after the iteration during which this many wall-clock seconds
        (hooks included) have elapsed.
    validation : callable, optional
        ``validation(x) -> dict`` after every iteration, merged into the
        history row (e.g. ``{"val_accuracy": 0.91}``). Its time, and the
        callback's, is excluded from ``seconds``.
    max_failures : int >= 1, default 5
        Stop with ``LINE_SEARCH_FAILED`` after this many consecutive rejected
        iterations.
    max_damping : float > 0, default 1e10
        Stop with ``DAMPING_TOO_LARGE`` when ``λ`` exceeds this value.
    checkpoint : None, str or os.PathLike, default None
        Write the optimizer's full state to this file (an ``.npz`` archive,
        written atomically) every ``checkpoint_every`` iterations, at the
        end, on Ctrl-C and when an exception escapes; resume with
        ``minimize(..., resume=path)``. See "Checkpoints and resuming" in the
        module docstring.
    checkpoint_every : int >= 1, default 1
        Iterations between checkpoints (iterations ``k`` with
        ``k % checkpoint_every == 0``, counted over the whole run).
    preset : {"simplenn", "fast"}, default "simplenn"
        Where the parameters left at None take their values
        (:data:`~newtoncnn.solver_presets.PRESETS`); explicit arguments win.
    cg_model_tol : float >= 0, default None (simplenn: 0, off; fast: 5e-4)
        ``ε`` of Martens' stopping rule on the quadratic model's decrease.
    cg_warm_start : float in [0, 1], default None (simplenn: 0, off; fast: 0.95)
        Start CG from this multiple of the previous Newton direction.
    gradient_sample : float in (0, 1], default None (simplenn: 1, off; fast: 0.1)
        f, ∇f and the line search on a growing sample starting with this
        fraction of the instances (rows then also hold ``sample_size``).
    sample_theta : float > 0, default None (preset: 0.5)
        ``θ`` of the norm test that grows the sample.
    cg_diag_samples : int >= 0, default None (preset: 0, off)
        Precondition CG by ``M = (d + λ)^0.75`` (Martens 2010, §4.7), ``d`` an unbiased
        estimate of diag(G_S) from this many backward passes over the subset with
        random signs (the operator's ``diagonal_estimate``); the signs of iteration
        ``k`` are drawn from ``k``, so a resumed run draws the same ones.
    damping_full_step : bool, default None (simplenn: False, off; fast: True)
        Update λ from the ratio ρ of the full step (``α = 1``) rather than of the
        accepted one (Martens 2010, §4.1): a halving line search then raises λ.

    Examples
    --------
    >>> res = NewtonCG(max_iter=50, subsample=1.0).minimize(objective, x0)  # doctest: +SKIP
    >>> res.x, res.fun, res.history[-1]["grad_norm"]  # doctest: +SKIP

    Checkpointing a long run, then continuing it after a crash or Ctrl-C:

    >>> NewtonCG(max_iter=100, checkpoint="run.npz").minimize(objective, x0)  # doctest: +SKIP
    >>> NewtonCG(max_iter=100, checkpoint="run.npz").minimize(
    ...     objective, x0, resume="run.npz")  # doctest: +SKIP
    """

    def __init__(self, max_iter=100, subsample=None, cg_tol=None, cg_max_iter=None, damping=1.0,
                 damping_drop=2 / 3, damping_boost=3 / 2, armijo=1e-4, gn_mode="auto",
                 random_state=None, callback=None, verbose=0, max_halvings=20, gtol=1e-8,
                 max_time=None, validation=None, max_failures=5, max_damping=1e10,
                 checkpoint=None, checkpoint_every=1, preset="simplenn", cg_model_tol=None,
                 cg_warm_start=None, gradient_sample=None, sample_theta=None,
                 cg_diag_samples=None, damping_full_step=None):
        self.max_iter = max_iter
        self.subsample = subsample
        self.cg_tol = cg_tol
        self.cg_max_iter = cg_max_iter
        self.damping = damping
        self.damping_drop = damping_drop
        self.damping_boost = damping_boost
        self.armijo = armijo
        self.gn_mode = gn_mode
        self.random_state = random_state
        self.callback = callback
        self.verbose = verbose
        self.max_halvings = max_halvings
        self.gtol = gtol
        self.max_time = max_time
        self.validation = validation
        self.max_failures = max_failures
        self.max_damping = max_damping
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.preset = preset
        self.cg_model_tol = cg_model_tol
        self.cg_warm_start = cg_warm_start
        self.gradient_sample = gradient_sample
        self.sample_theta = sample_theta
        self.cg_diag_samples = cg_diag_samples
        self.damping_full_step = damping_full_step
        self._validate()

    # ---------------------------------------------------------- validation
    def _validate(self):
        """Check every parameter; errors name the parameter."""
        check_int("max_iter", self.max_iter, low=0)
        self._cfg = types.SimpleNamespace(**resolve_preset(
            self.preset, {name: getattr(self, name) for name in PRESETS["simplenn"]}))
        check_real("damping", self.damping, low=0.0)
        check_real("damping_drop", self.damping_drop, low=0.0, high=1.0, low_open=True)
        check_real("damping_boost", self.damping_boost, low=1.0)
        check_real("armijo", self.armijo, low=0.0, high=1.0, high_open=True)
        check_option("gn_mode", self.gn_mode, GN_MODES)
        check_random_state(self.random_state)
        check_optional_callable("callback", self.callback)
        check_verbose(self.verbose)
        check_int("max_halvings", self.max_halvings, low=0)
        check_real("gtol", self.gtol, low=0.0)
        check_max_time(self.max_time)
        check_optional_callable("validation", self.validation)
        check_int("max_failures", self.max_failures, low=1)
        check_real("max_damping", self.max_damping, low=0.0, low_open=True)
        check_optional_path("checkpoint", self.checkpoint)
        check_int("checkpoint_every", self.checkpoint_every, low=1)

    @property
    def settings(self):
        """The values in force for the preset-controlled parameters (a dict): the
        preset's, with the explicit arguments on top."""
        self._validate()
        return dict(vars(self._cfg))

    # ---------------------------------------------------------- public
    def minimize(self, objective, x0, callback=None, resume=None):
        """Minimize ``objective`` from ``x0``, or continue a checkpointed run.

        Parameters
        ----------
        objective : object
            Implements the protocol in the module docstring.
        x0 : array_like, shape (n,), or None
            Starting point; never modified. With ``resume`` it is only
            checked against the checkpoint (size and dtype) and may be None.
        callback : callable, optional
            Same contract as the constructor's ``callback``; if both are
            given, both are called (constructor's first).
        resume : None, str or os.PathLike, optional
            A checkpoint written by a ``NewtonCG(checkpoint=...)`` run on the
            same problem: the run continues from it exactly as if it had
            never stopped, up to ``max_iter`` iterations in total. Raises
            ``FileNotFoundError`` (missing file) or ``ValueError`` (not a
            readable checkpoint, or one whose fingerprint differs from this
            problem and these settings; the message says what differs). It
            is a ``minimize`` argument, not a constructor parameter, because
            like ``x0`` it describes where this call starts.

        Returns
        -------
        scipy.optimize.OptimizeResult
            ``x, fun, jac, nit, status, message, success, nfev, njev, nhev``
            (products with ``G_S``), ``damping`` (final ``λ``),
            ``subsample_size`` and ``history`` (one dict per iteration with
            ``iter, f, grad_norm, alpha, ratio, damping, cg_iters, seconds,
            actred, prered, ls_trials, cg_residual`` plus hook entries; ``f``,
            ``grad_norm`` and ``damping`` are the values after the step;
            ``seconds`` is the cumulative time spent in the optimizer and
            the objective, excluding the validation and callback hooks).
        """
        self._validate()
        check_optional_callable("callback", callback)
        check_optional_path("resume", resume)
        n_samples = check_objective(objective, ("fun", "grad", "gauss_newton"))
        callbacks = [c for c in (self.callback, callback) if c is not None]
        if self.checkpoint is not None:  # a path that cannot be written fails now, not later
            check_output_path(self.checkpoint, "checkpoint")
        problem = (_checkpoint.problem_fingerprint(objective)
                   if resume is not None or self.checkpoint is not None else None)
        if resume is None:
            st = _State(prepare_x0(x0, objective), lam=float(self.damping))
            blocks = BlockSchedule(n_samples, self._cfg.subsample,
                                   check_random_state(self.random_state))
            clock = Clock()
        else:
            ck = load_checkpoint(resume)
            saved, blocks = _checkpoint.restore(ck, self, objective, x0, n_samples,
                                                os.fspath(resume), problem)
            st = _State(saved.pop("x"), lam=saved.pop("lam"))
            clock = Clock(offset=saved.pop("seconds"))
            sample_state = saved.pop("sample_state")
            st.__dict__.update(saved)
            if sample_state is not None:
                st.sample = GradientSample.restore(objective, self._cfg.sample_theta,
                                                   *sample_state)
                st.parts = st.sample.evaluate(st.x)
        saver = None
        if self.checkpoint is not None:
            fingerprint = _checkpoint.fingerprint(self, n_samples, st.x, problem)
            if resume is not None and fingerprint["random_state"] is None:
                # Resumed without a seed: later checkpoints still name the run's seed.
                fingerprint["random_state"] = ck["meta"]["fingerprint"].get("random_state")
            saver = _checkpoint.Checkpointer(self.checkpoint, self.checkpoint_every, fingerprint)
        try:
            try:
                if resume is None:
                    status = self._start(objective, st, n_samples, blocks.rng)
                else:
                    status = self._resumed(st, n_samples, os.fspath(resume), clock)
                if saver is not None and status != Status.NON_FINITE:
                    saver.mark(st, blocks, clock.elapsed())
                if status is None:
                    status = self._run(objective, st, blocks, callbacks, clock, saver)
            except KeyboardInterrupt:
                status = Status.INTERRUPTED
            if saver is not None:
                saver.write(st.history)
        except KeyboardInterrupt:  # a second Ctrl-C while writing the last checkpoint
            status = Status.INTERRUPTED
        except BaseException:
            if saver is not None:  # keep the last complete iteration, then re-raise
                saver.write(st.history, quiet=True)
            raise
        return self._result(st, status, subsample_size(n_samples, self._cfg.subsample))

    # ---------------------------------------------------------- steps
    def _start(self, objective, st, n_samples, rng):
        """Evaluate f and g at x0; return a status if there is nothing to do."""
        if self._cfg.gradient_sample < 1.0:
            # its own stream, so that the Gauss-Newton subsets stay those of simpleNN
            st.sample = GradientSample(objective, self._cfg.gradient_sample,
                                       self._cfg.sample_theta, rng.spawn(1)[0])
            st.parts = st.sample.evaluate(st.x)
            st.parts, st.f, st.g = st.sample.tested(st.x, st.parts)
        else:
            st.f, st.g = fun_grad(objective, st.x)
        st.nfev += 1
        st.njev += 1
        if not (math.isfinite(st.f) and all_finite(st.g)):
            return Status.NON_FINITE
        st.gnorm = st.gnorm0 = norm64(st.g)
        if not math.isfinite(st.gnorm):   # never convergence: inf <= gtol * inf
            return Status.NON_FINITE
        size = "" if st.sample is None else f" |Sg|={st.sample.size}"
        emit(
            f"NewtonCG ({self.preset}): l={n_samples} "
            f"|S|={subsample_size(n_samples, self._cfg.subsample)}{size} "
            f"n={st.x.size} dtype={st.x.dtype}  initial f {st.f:.6e}  |g| {st.gnorm:.3e}",
            self.verbose,
        )
        if self._converged(st):
            return Status.CONVERGED
        return None

    def _resumed(self, st, n_samples, path, clock):
        """Announce a resumed run; return a status if it is already over."""
        emit(
            f"NewtonCG: resumed from {path} at iteration {len(st.history)}: l={n_samples} "
            f"|S|={subsample_size(n_samples, self._cfg.subsample)} n={st.x.size} "
            f"dtype={st.x.dtype}  f {st.f:.6e}  |g| {st.gnorm:.3e}  lambda {st.lam:.4e}",
            self.verbose,
        )
        # What the uninterrupted run checked at this point (the termination
        # settings are the ones of this call).
        if not st.history:
            return Status.CONVERGED if self._converged(st) else None
        return self._check_stop(st, False, clock)

    def _run(self, objective, st, blocks, callbacks, clock, saver=None):
        """The Newton loop; returns the termination status."""
        for k in range(len(st.history) + 1, self.max_iter + 1):
            row = self._iteration(objective, st, next(blocks), k)
            if row is None:  # non-finite gradient at the accepted point
                return Status.NON_FINITE
            row["seconds"] = clock.elapsed()
            st.history.append(row)  # recorded before hooks: Ctrl-C in a hook keeps it
            if saver is not None:
                saver.mark(st, blocks, row["seconds"])
            stop = run_hooks(st.x, row, self.validation, callbacks, clock)
            emit(format_row(row, _FIELDS, _HIDDEN), self.verbose)
            if saver is not None and k % self.checkpoint_every == 0:
                saver.write(st.history)
            status = self._check_stop(st, stop, clock)
            if status is not None:
                return status
        return Status.MAX_ITER

    def _iteration(self, objective, st, idx, k):
        """One Newton iteration on subset ``idx``; returns its history row."""
        G = objective.gauss_newton(st.x, subset=idx, mode=self.gn_mode)
        cfg = self._cfg
        s0 = (None if st.s_prev is None or cfg.cg_warm_start == 0.0
              else cfg.cg_warm_start * st.s_prev)
        M = _preconditioner(G, st.lam, cfg.cg_diag_samples, k) if cfg.cg_diag_samples else None
        cg = conjugate_gradient(G, st.g, st.lam, cfg.cg_tol, cfg.cg_max_iter, s0=s0,
                                model_tol=cfg.cg_model_tol or None,
                                progress=progress_printer(st.gnorm) if self.verbose >= 2
                                else None, preconditioner=M)
        st.nhev += cg.n_iter
        del G  # its memory goes back to the objective's pool before the line search
        s = cg.s
        gs = dot64(st.g, s)
        row = {"iter": k, "cg_iters": cg.n_iter, "cg_residual": cg.residual_norm}
        # A zero or ascent direction (CG breakdown, NaN products) cannot be
        # line-searched: reject the iteration, a larger λ will help.
        if not (gs < 0.0 and math.isfinite(cg.sGs) and all_finite(s)):
            return self._reject(st, row, trials=0)
        alpha, x_new, f_new, g_new, trials, f_full = self._line_search(objective, st, s, gs)
        st.nfev += trials
        if x_new is None:
            return self._reject(st, row, trials)
        actred = f_new - st.f
        prered = alpha * gs + 0.5 * alpha * alpha * cg.sGs
        rho = _ratio(actred, prered)
        if cfg.damping_full_step and alpha != 1.0:
            # a non-finite f at α = 1 is the worst model fit there is
            rho_lam = _ratio(f_full - st.f, gs + 0.5 * cg.sGs) if math.isfinite(f_full) \
                else -math.inf
        else:
            rho_lam = rho
        if not self._accept(objective, st, x_new, f_new, g_new):
            return None
        st.lam = self._update_damping(st.lam, rho_lam)
        st.fails = 0
        st.s_prev = s
        row.update(alpha=alpha, ratio=rho, actred=actred, prered=prered, ls_trials=trials)
        return self._finish_row(st, row)

    def _line_search(self, objective, st, s, gs):
        """Backtracking α = 1, ½, …; returns (α, x_new, f_new, g_new or None, trials,
        f at α = 1).

        The trial that was accepted last time (``st.grad_trial``; α = 1 at first)
        computes f and g together, so that the usual case (it is accepted again)
        needs no second pass at the new point, and the trials before it, which
        will probably fail, pay for f only. On a sample whose objective cannot
        evaluate f alone, every trial computes both (the parts are kept for the
        norm test). x_new is None if every trial failed.
        """
        alpha, f_full = 1.0, math.nan
        for trial in range(1, self.max_halvings + 2):
            x_new = st.x + alpha * s
            with_grad = trial == st.grad_trial
            if st.sample is not None:
                parts = st.sample.evaluate(x_new, grad=with_grad)
                f_new, g_new = GradientSample.combine(parts, x_new.dtype)
                st.njev += g_new is not None
            elif with_grad and callable(getattr(objective, "fun_grad", None)):
                f_new, g_new = fun_grad(objective, x_new)
                st.njev += 1
            else:
                f_new, g_new = float(objective.fun(x_new)), None
            if trial == 1:
                f_full = f_new
            # NaN compares False, so a non-finite f is a rejection.
            if math.isfinite(f_new) and f_new - st.f <= self.armijo * alpha * gs:
                if st.sample is not None:
                    st.parts = parts
                st.grad_trial = trial
                return alpha, x_new, f_new, g_new, trial, f_full
            alpha *= 0.5
        return 0.0, None, math.nan, None, self.max_halvings + 1, f_full

    def _accept(self, objective, st, x_new, f_new, g_new):
        """Move to x_new (computing g there if the line search did not); False if g
        is non-finite."""
        if g_new is None and st.sample is not None:
            st.pending = (x_new, f_new)  # Ctrl-C during grad must not lose the step
            st.parts = st.sample.evaluate(x_new)
            st.njev += 1
            g_new = GradientSample.combine(st.parts, x_new.dtype)[1]
        elif g_new is None:
            st.pending = (x_new, f_new)
            g_new = objective.grad(x_new)
            st.njev += 1
        g_new = as_vector(g_new, x_new)
        if st.sample is not None and all_finite(g_new):
            st.pending = (x_new, f_new)
            st.parts, f_new, g_new = st.sample.tested(x_new, st.parts)
        st.pending = None
        if not all_finite(g_new):
            return False
        gnorm = norm64(g_new)
        if not math.isfinite(gnorm):
            return False
        st.x, st.f, st.g = x_new, f_new, g_new
        st.gnorm = gnorm
        return True

    def _reject(self, st, row, trials):
        """Failed iteration: x unchanged, λ boosted."""
        st.s_prev = None
        st.lam *= self.damping_boost
        st.fails += 1
        row.update(alpha=0.0, ratio=math.nan, actred=math.nan, prered=math.nan,
                   ls_trials=trials)
        return self._finish_row(st, row)

    def _update_damping(self, lam, rho):
        """Levenberg-Marquardt rule; NaN rho leaves λ unchanged (as simpleNN)."""
        if rho < 0.25:
            return lam * self.damping_boost
        if rho >= 0.75:
            return lam * self.damping_drop
        return lam

    @staticmethod
    def _finish_row(st, row):
        row.update(f=st.f, grad_norm=st.gnorm, damping=st.lam)
        if st.sample is not None:
            row["sample_size"] = st.sample.size
        return row

    def _converged(self, st):
        # a non-finite norm is never convergence (inf <= gtol * inf would be)
        return math.isfinite(st.gnorm) and (st.gnorm == 0.0 or st.gnorm <= self.gtol * st.gnorm0)

    def _check_stop(self, st, stop, clock):
        """Status after an iteration, or None to continue."""
        if self._converged(st):
            return Status.CONVERGED
        if st.fails >= self.max_failures:
            return Status.LINE_SEARCH_FAILED
        if st.lam > self.max_damping:
            return Status.DAMPING_TOO_LARGE
        if stop:
            return Status.CALLBACK
        if self.max_time is not None and clock.wall() >= self.max_time:
            return Status.MAX_TIME
        return None

    def _result(self, st, status, size):
        """Build the OptimizeResult (never with a non-finite x)."""
        x, f, g = st.x, st.f, st.g
        if st.pending is not None:  # interrupted while computing the new gradient
            (x, f), g = st.pending, None
        status = Status(status)
        emit(f"{STATUS_MESSAGES[status]} total #CG {st.nhev}", self.verbose)
        return OptimizeResult(
            x=x,
            fun=f,
            jac=g,
            nit=len(st.history),
            status=status,
            message=STATUS_MESSAGES[status],
            success=status in SUCCESS_STATUSES,
            nfev=st.nfev,
            njev=st.njev,
            nhev=st.nhev,
            damping=st.lam,
            subsample_size=size,
            history=st.history,
        )


def _ratio(actred, prered):
    """ρ = actred / prered; NaN where prered is zero or not finite (λ then stays)."""
    return actred / prered if (prered != 0.0 and math.isfinite(prered)) else math.nan


def _preconditioner(G, lam, n_samples, k):
    """Martens' (ICML 2010, §4.7) diagonal ``(d + λ)^0.75``, d estimating diag(G_S), with
    the signs of iteration k drawn from k."""
    estimate = getattr(G, "diagonal_estimate", None)
    if estimate is None:
        raise TypeError(f"cg_diag_samples needs a Gauss-Newton operator with "
                        f"diagonal_estimate(n_samples, rng); {type(G).__name__} has none")
    d = estimate(n_samples, np.random.default_rng(k))
    return (d + lam) ** 0.75
