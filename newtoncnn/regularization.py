"""The estimator's default regularization, ``C="auto"``: a rule on the number of instances.

The objective is ``f(θ) = θᵀθ / (2 C l) + (1/l) Σ ξ_i``: the weight of the
regularization term, ``1 / (C l)``, falls as the training set grows. simpleNN's
``C = 0.01`` was chosen for ``l = 60,000`` (weight 1/600); on 1,347 instances
(scikit-learn's digits) the same ``C`` weighs the regularization 45 times more
and the minimizer predicts one class. ``C="auto"`` keeps the weight simpleNN
chose whatever ``l``::

    C = AUTO_C_TIMES_L / l        (AUTO_C_TIMES_L = 600)

so it is simpleNN's 0.01 at 60,000 instances, 0.12 at 5,000 and 0.45 at 1,347.
It costs nothing at fit time; choosing ``C`` from a grid on held-out data
costs one training run per grid value and, on the data measured (the user
guide's "Input scaling and the regularization default"), did not choose a
better value.
"""
from newtoncnn.validation import check_regularization

__all__ = ["AUTO_C_TIMES_L", "auto_C", "resolve_C"]

#: ``C · l`` of ``C="auto"``: simpleNN's C = 0.01 on its l = 60,000 instances.
AUTO_C_TIMES_L = 600.0


def auto_C(n_samples):
    """``C="auto"``'s value for ``n_samples`` training instances.

    Parameters
    ----------
    n_samples : int >= 1
        The number of training instances l.

    Returns
    -------
    float
        ``AUTO_C_TIMES_L / n_samples``.
    """
    return AUTO_C_TIMES_L / int(n_samples)


def resolve_C(C, n_samples):
    """``C`` as a float: ``auto_C(n_samples)`` for ``"auto"``, else the checked value.

    Parameters
    ----------
    C : "auto" or float > 0
        The estimator's parameter.
    n_samples : int
        The number of training instances l.
    """
    if isinstance(C, str) and C == "auto":
        return auto_C(n_samples)
    return check_regularization(C)
