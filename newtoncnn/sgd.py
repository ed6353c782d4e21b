"""Minibatch stochastic gradient descent with momentum (the paper's baseline).

The objective protocol is the one of :mod:`newtoncnn.newton`, of which SGD
uses only ``n_samples``, ``fun_grad(x)`` (full data, for monitoring) and
``fun_grad(x, subset=idx)``: the minibatch objective
``xᵀx / (2 C l) + (1/|B|) Σ_{i∈B} ξ_i`` and its gradient (the regularizer is
the full one; only the loss average runs over the minibatch).

Each epoch draws a new permutation of the ``l`` instances
(``numpy.random.default_rng(random_state).permutation(l)``) and cuts it into
minibatches of ``batch_size`` (the last, partial one included). Update
``t = 0, 1, 2, …`` (counted over all epochs) is::

    lr_t = lr / (1 + decay t)          # inverse-time decay
    v    ← momentum v − lr_t g_B
    x    ← x + v

After each epoch the full-data ``f`` and ``‖∇f‖`` are computed for the
history. Termination statuses are :class:`newtoncnn._optim_common.Status`
(see :mod:`newtoncnn.newton`); SGD uses ``MAX_ITER`` (all epochs done),
``MAX_TIME``, ``CALLBACK``, ``NON_FINITE`` and ``INTERRUPTED``.
"""

import math

import numpy as np
from scipy.optimize import OptimizeResult

from newtoncnn._optim_common import (
    STATUS_MESSAGES,
    SUCCESS_STATUSES,
    Clock,
    ParamsMixin,
    Status,
    all_finite,
    as_vector,
    check_objective,
    emit,
    format_row,
    norm64,
    prepare_x0,
    run_hooks,
)
from newtoncnn.validation import (
    check_int,
    check_max_time,
    check_optional_callable,
    check_random_state,
    check_real,
    check_verbose,
)

__all__ = ["SGD", "Status"]

_FIELDS = [
    ("epoch", "epoch", "4d"),
    ("f", "f", ".6e"),
    ("grad_norm", "|g|", ".3e"),
    ("lr", "lr", ".3e"),
    ("seconds", "time", ".2f"),
]
_HIDDEN = ("updates",)
_MESSAGES = {**STATUS_MESSAGES, Status.MAX_ITER: "All epochs done."}


class _State:
    """Mutable state of one run (kept together so Ctrl-C loses nothing)."""

    def __init__(self, x):
        self.x = x
        self.v = np.zeros_like(x)
        self.t = 0  # updates so far
        self.lr_t = math.nan  # learning rate of the last update
        # Last point with a full-data evaluation (the fallback on NaN).
        self.x_eval, self.f, self.g, self.gnorm = x, math.nan, None, math.nan
        self.nfev = 0  # full-data evaluations
        self.n_batches = 0  # minibatch evaluations
        self.history = []


class SGD(ParamsMixin):
    """Minibatch SGD with momentum and inverse-time learning-rate decay.

    Parameters
    ----------
    lr : float > 0, default 0.01
        Initial learning rate.
    momentum : float in [0, 1), default 0.9
        Momentum coefficient.
    batch_size : int >= 1, default 128
        Minibatch size (the last minibatch of an epoch may be smaller).
    epochs : int >= 0, default 10
        Number of passes over the data.
    decay : float >= 0, default 0.0
        ``lr_t = lr / (1 + decay t)`` at update ``t`` (0-based, over all
        epochs).
    random_state : None, int or numpy.random.Generator, default None
        Seeds the per-epoch permutations.
    callback : callable, optional
        ``callback(x, row)`` after every epoch (read-only ``x``, history
        row); may return a dict (merged into the row), True (stop, status
        ``CALLBACK``) or None, or raise ``StopIteration``.
    verbose : int, default 0
        1 prints one line per epoch.
    max_time : float > 0, optional
        Wall-clock budget in seconds, checked after every minibatch; the run
        then ends with a (partial) epoch row and status ``MAX_TIME``.
    validation : callable, optional
        ``validation(x) -> dict`` after every epoch, merged into the row.
    """

    def __init__(
        self,
        lr=0.01,
        momentum=0.9,
        batch_size=128,
        epochs=10,
        decay=0.0,
        random_state=None,
        callback=None,
        verbose=0,
        max_time=None,
        validation=None,
    ):
        self.lr = lr
        self.momentum = momentum
        self.batch_size = batch_size
        self.epochs = epochs
        self.decay = decay
        self.random_state = random_state
        self.callback = callback
        self.verbose = verbose
        self.max_time = max_time
        self.validation = validation
        self._validate()

    def _validate(self):
        """Check every parameter; errors name the parameter."""
        check_real("lr", self.lr, low=0.0, low_open=True)
        check_real("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_int("batch_size", self.batch_size, low=1)
        check_int("epochs", self.epochs, low=0)
        check_real("decay", self.decay, low=0.0)
        check_random_state(self.random_state)
        check_optional_callable("callback", self.callback)
        check_verbose(self.verbose)
        check_max_time(self.max_time)
        check_optional_callable("validation", self.validation)

    def minimize(self, objective, x0, callback=None):
        """Minimize ``objective`` from ``x0``.

        Parameters
        ----------
        objective : object
            ``n_samples`` and ``fun_grad(x, subset=None)`` (see module doc).
        x0 : array_like, shape (n,)
            Starting point; never modified.
        callback : callable, optional
            Same contract as the constructor's; both are called if both are
            given (constructor's first).

        Returns
        -------
        scipy.optimize.OptimizeResult
            ``x, fun, jac, nit`` (history rows = epochs run, the last one
            possibly partial under ``max_time``), ``status, message,
            success, nfev = njev`` (full-data evaluations), ``n_batches``
            (minibatch evaluations), ``n_updates``, ``lr`` (last learning
            rate) and ``history``: one dict per epoch with ``epoch, f,
            grad_norm, lr, updates, seconds`` plus hook entries. ``seconds``
            is cumulative training time, excluding the full-data monitoring
            evaluations and the hooks.

            On ``NON_FINITE`` (NaN/Inf minibatch loss, gradient or weights)
            ``x`` is the last epoch-end point, whose full ``f`` was finite.
            On ``INTERRUPTED``, ``x`` is the current iterate; if it was
            interrupted mid-epoch, ``fun`` is NaN and ``jac`` None since
            ``f`` is unknown there.
        """
        self._validate()
        check_optional_callable("callback", callback)
        n_samples = check_objective(objective, ("fun_grad",))
        st = _State(prepare_x0(x0, objective))
        rng = check_random_state(self.random_state)
        callbacks = [c for c in (self.callback, callback) if c is not None]
        clock = Clock()
        try:
            status = self._evaluate(objective, st, clock)
            if status is None:
                emit(f"SGD: l={n_samples} n={st.x.size} initial f {st.f:.6e}"
                     f"  |g| {st.gnorm:.3e}", self.verbose)
                status = self._run(objective, st, rng, n_samples, callbacks, clock)
        except KeyboardInterrupt:
            status = Status.INTERRUPTED
        return self._result(st, status)

    # ---------------------------------------------------------- loop
    def _run(self, objective, st, rng, n_samples, callbacks, clock):
        for epoch in range(1, self.epochs + 1):
            status = self._epoch(objective, st, rng.permutation(n_samples), clock)
            if status is Status.NON_FINITE:
                return status
            if self._evaluate(objective, st, clock) is not None:
                return Status.NON_FINITE
            row = {"epoch": epoch, "f": st.f, "grad_norm": st.gnorm, "lr": st.lr_t,
                   "updates": st.t, "seconds": clock.elapsed()}
            st.history.append(row)
            stop = run_hooks(st.x, row, self.validation, callbacks, clock)
            emit(format_row(row, _FIELDS, _HIDDEN), self.verbose)
            if status is None and stop:
                status = Status.CALLBACK
            if status is None and self._out_of_time(clock):
                status = Status.MAX_TIME
            if status is not None:
                return status
        return Status.MAX_ITER

    def _epoch(self, objective, st, perm, clock):
        """One pass over ``perm``; returns NON_FINITE, MAX_TIME or None."""
        for start in range(0, perm.size, self.batch_size):
            # Sorted: the minibatch is a set; sorted indices read data in order.
            idx = np.sort(perm[start:start + self.batch_size])
            if not self._update(objective, st, idx):
                return Status.NON_FINITE
            if self._out_of_time(clock):
                return Status.MAX_TIME
        return None

    def _update(self, objective, st, idx):
        """One momentum step on minibatch ``idx``; False (x untouched) if non-finite."""
        fB, gB = objective.fun_grad(st.x, subset=idx)
        st.n_batches += 1
        gB = np.asarray(gB).reshape(-1)  # kept in its dtype: the update casts once
        if gB.shape != st.x.shape:
            raise ValueError(f"objective gradient has shape {gB.shape}, expected {st.x.shape}")
        if not (math.isfinite(float(fB)) and all_finite(gB)):
            return False
        lr_t = self.lr / (1.0 + self.decay * st.t)
        v = (self.momentum * st.v - lr_t * gB).astype(st.x.dtype, copy=False)
        x = st.x + v  # new arrays: hooks holding an old x keep a valid snapshot
        if not all_finite(x):
            return False
        st.x, st.v, st.lr_t = x, v, lr_t
        st.t += 1
        return True

    def _evaluate(self, objective, st, clock):
        """Full-data f and g at st.x (monitoring: off the clock); NON_FINITE or None."""
        with clock.paused():
            f, g = objective.fun_grad(st.x)
        st.nfev += 1
        f = float(f)
        g = as_vector(g, st.x)
        if not (math.isfinite(f) and all_finite(g)):
            return Status.NON_FINITE
        st.x_eval, st.f, st.g, st.gnorm = st.x, f, g, norm64(g)
        return None

    def _out_of_time(self, clock):
        return self.max_time is not None and clock.wall() >= self.max_time

    def _result(self, st, status):
        status = Status(status)
        if status is Status.NON_FINITE:
            st.x = st.x_eval  # the current x may be finite but already diverging
        known = st.x is st.x_eval
        emit(_MESSAGES[status], self.verbose)
        return OptimizeResult(
            x=st.x,
            fun=st.f if known else math.nan,
            jac=st.g if known else None,
            nit=len(st.history),
            status=status,
            message=_MESSAGES[status],
            success=status in SUCCESS_STATUSES,
            nfev=st.nfev,
            njev=st.nfev,
            n_batches=st.n_batches,
            n_updates=st.t,
            lr=st.lr_t,
            history=st.history,
        )
