"""The estimator's stopping rule, as in scikit-learn's ``MLPClassifier``.

:class:`NoImprovement` is an optimizer callback (``callback(x, row)``, see
:class:`~newtoncnn.newton.NewtonCG`): after every iteration it records the training
objective (``loss_curve``) and, with a validation set, the validation accuracy
(``validation_scores``), and asks the optimizer to stop when the monitored
quantity has not improved by at least ``tol`` for ``n_iter_no_change``
consecutive iterations:

- without a validation set, the training objective ``f`` must fall below
  ``best_loss - tol``;
- with one (``early_stopping=True``), the validation accuracy must rise above
  ``best_score + tol``, and the parameters of the best score are kept
  (``best_x``).

A rejected Newton iteration (failed line search, ``alpha = 0``) never counts
as an improvement of the loss: a run that cannot make progress stops after
``n_iter_no_change`` iterations at the latest (the optimizer's own
``max_failures`` may stop it sooner), and :attr:`NoImprovement.stalled` says
that it did not move at all.
"""
import math

import numpy as np
from sklearn.model_selection import train_test_split

from newtoncnn.image_input import to_float
from newtoncnn.validation import check_int, check_real

__all__ = ["NoImprovement", "held_out_split", "check_stopping_params", "stopping_rule",
           "warm_state"]

# Fitted attributes of the stopping rule (continued by a warm start).
_CURVES = ("n_iter_", "loss_curve_", "validation_scores_", "best_loss_",
           "best_validation_score_")


def warm_state(est, y):
    """What a warm-started fit of ``est`` continues (its curves), checked against ``y``.

    Parameters
    ----------
    est : CNNClassifier
        A fitted estimator.
    y : array_like
        The new labels, or their classes (with ``comm``: those of all shards); the
        same classes as the first fit.
    """
    classes = np.unique(np.asarray(y))
    if classes.shape != est.classes_.shape or np.any(classes != est.classes_):
        raise ValueError(f"warm_start=True needs the classes of the first fit "
                         f"{est.classes_.tolist()}, got {classes.tolist()}")
    return {name: getattr(est, name) for name in _CURVES}


def stopping_rule(est, X_held_out, y_held_out, previous):
    """The :class:`NoImprovement` callback of a fit of ``est``.

    Parameters
    ----------
    est : CNNClassifier
        With ``network_``, ``normalizer_``, ``tol``, ``n_iter_no_change`` set.
    X_held_out, y_held_out : ndarray or None
        Early stopping's held-out images (not yet scaled) and class indices.
    previous : dict or None
        :func:`warm_state` of a warm start.
    """
    validation = None
    if X_held_out is not None:
        X_held_out = to_float(X_held_out, est.normalizer_, est.network_.dtype)
        network, batch = est.network_, est.batch_size

        def validation(theta):
            return float(np.mean(network.predict(theta, X_held_out, batch) == y_held_out))

    return NoImprovement.continuing(est.tol, est.n_iter_no_change, validation, previous,
                                    x=getattr(est, "theta_", None))


def check_stopping_params(early_stopping, validation_fraction, n_iter_no_change, tol,
                          warm_start):
    """Check the estimator's stopping and warm-start parameters (errors name them).

    Parameters
    ----------
    early_stopping, warm_start : bool
    validation_fraction : float in (0, 1)
    n_iter_no_change : int >= 1
    tol : float >= 0
    """
    for name, value in (("early_stopping", early_stopping), ("warm_start", warm_start)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    check_real("validation_fraction", validation_fraction, low=0.0, high=1.0, low_open=True,
               high_open=True)
    check_int("n_iter_no_change", n_iter_no_change, low=1)
    check_real("tol", tol, low=0.0)


def held_out_split(X, y, fraction, random_state):
    """``(X_train, X_held_out, y_train, y_held_out)``: ``ceil(fraction · n)`` instances
    held out, stratified by ``y`` when every class has at least two instances.

    Parameters
    ----------
    X, y : ndarray
        The training data (n instances).
    fraction : float in (0, 1)
        ``validation_fraction``.
    random_state : None, int or numpy Generator
        Seeds the split (a Generator gives an int seed first).
    """
    if isinstance(random_state, np.random.Generator):
        random_state = int(random_state.integers(np.iinfo(np.int32).max))
    n_val = math.ceil(fraction * len(X))
    if n_val < 2 or len(X) - n_val < 2:
        raise ValueError(f"early_stopping: validation_fraction={fraction} of {len(X)} "
                         "instances leaves too few to train and validate on")
    try:
        return train_test_split(X, y, test_size=n_val, random_state=random_state, stratify=y)
    except ValueError:  # a class too small to be in both parts
        return train_test_split(X, y, test_size=n_val, random_state=random_state)


class NoImprovement:
    """Callback stopping a run whose loss (or validation score) stalls.

    Parameters
    ----------
    tol : float >= 0
        The improvement that counts.
    n_iter_no_change : int >= 1
        Iterations without improvement before stopping.
    validation : callable or None
        ``validation(x) -> float``, the score to maximize (e.g. accuracy on
        held-out data); None monitors the training objective instead.
    best_loss, best_score : float, optional
        Starting values (a warm-started fit continues from its last best).

    Attributes
    ----------
    loss_curve : list of float
        The row's ``f`` after every iteration.
    validation_scores : list of float
        ``validation(x)`` after every iteration (empty without ``validation``).
    best_loss, best_score : float
        The best values seen.
    best_x : ndarray or None
        A copy of the parameters with the best validation score.
    stopped : bool
        True once the rule asked the optimizer to stop.
    """

    def __init__(self, tol, n_iter_no_change, validation=None, best_loss=math.inf,
                 best_score=-math.inf):
        self.tol = float(tol)
        self.n_iter_no_change = int(n_iter_no_change)
        self.validation = validation
        self.loss_curve = []
        self.validation_scores = []
        self.best_loss = float(best_loss)
        self.best_score = float(best_score)
        self.best_x = None
        self.no_change = 0
        self.stopped = False
        self._alphas = []

    def __call__(self, x, row):
        f = float(row["f"])
        self.loss_curve.append(f)
        self._alphas.append(row.get("alpha"))
        rejected = row.get("alpha") == 0.0  # a Newton iteration that did not move
        if self.validation is None:
            improved = f < self.best_loss - self.tol and not rejected
            self.best_loss = min(self.best_loss, f)
        else:
            score = float(self.validation(x))
            self.validation_scores.append(score)
            improved = score > self.best_score + self.tol
            if score > self.best_score:
                self.best_score = score
                self.best_x = np.array(x, copy=True)
            row["validation_score"] = score
        self.no_change = 0 if improved else self.no_change + 1
        if self.no_change >= self.n_iter_no_change:
            self.stopped = True
            return True
        return None

    @classmethod
    def continuing(cls, tol, n_iter_no_change, validation, previous, x=None):
        """A rule that continues ``previous`` (an estimator's fitted curves, or None).

        Parameters
        ----------
        tol, n_iter_no_change, validation
            As for the constructor.
        previous : dict or None
            ``fitted_attributes`` of the last fit (warm start).
        x : ndarray, optional
            The parameters that fit ended with: the best so far when it had a
            validation score, kept unless this run finds a better one.
        """
        rule = cls(tol, n_iter_no_change, validation)
        if previous is not None:
            rule.previous = previous
            if previous["best_loss_"] is not None:
                rule.best_loss = previous["best_loss_"]
            if previous["best_validation_score_"] is not None and validation is not None:
                rule.best_score = previous["best_validation_score_"]
                rule.best_x = None if x is None else np.array(x, copy=True)
        return rule

    def fitted_attributes(self, nit):
        """The estimator's attributes after a run of ``nit`` iterations (dict):
        ``n_iter_``, ``loss_curve_``, ``validation_scores_``, ``best_loss_``,
        ``best_validation_score_``, continuing the curves of a warm start.

        Parameters
        ----------
        nit : int
            Iterations of this run.
        """
        before = getattr(self, "previous", None) or {
            "n_iter_": 0, "loss_curve_": [], "validation_scores_": None}
        early = self.validation is not None
        return {
            "n_iter_": int(before["n_iter_"]) + int(nit),
            "loss_curve_": list(before["loss_curve_"]) + self.loss_curve,
            "validation_scores_": (list(before["validation_scores_"] or [])
                                   + self.validation_scores) if early else None,
            "best_validation_score_": self.best_score if early and math.isfinite(
                self.best_score) else None,
            "best_loss_": None if early or not math.isfinite(self.best_loss)
            else self.best_loss,
        }

    @property
    def stalled(self):
        """True if the rule stopped a run whose last ``n_iter_no_change`` iterations
        were all rejected (no step accepted)."""
        return self.stopped and all(a == 0.0 for a in self._alphas[-self.n_iter_no_change:])

    def message(self):
        """Why the run stopped, in words (for ``result_.message``)."""
        what = "validation score" if self.validation is not None else "training loss"
        return (f"Stopped: the {what} did not improve by more than tol={self.tol:g} for "
                f"{self.n_iter_no_change} consecutive iterations.")
