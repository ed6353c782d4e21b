"""Named settings of NewtonCG: simpleNN's exact method and the fast combination.

A preset fills the parameters a user leaves at None; explicit arguments win.
A value of 0 (``cg_model_tol``, ``cg_warm_start``), 1 (``gradient_sample``) or
False (``damping_full_step``) switches an option off, and with every option off
the iterates are simpleNN's, bit for bit. The options, each off in ``"simplenn"``:

``cg_model_tol`` (ε)
    CG also stops at iteration ``i`` when the last ``k = max(10, ⌈i/10⌉)``
    iterations decreased the model ``q(s) = gᵀs + ½ sᵀ(G_S + λI)s`` by less than
    ``k ε`` times its value (Martens, "Deep learning via Hessian-free
    optimization", ICML 2010; Galli and Lin, IEEE TNNLS 2022); see
    :func:`newtoncnn.cg.conjugate_gradient`.
``cg_warm_start``
    CG starts from this multiple of the previous Newton direction (Martens
    2010 uses 0.95): one extra product, and CG starts from 0 when that start
    is worse than 0.
``gradient_sample``, ``sample_theta`` (θ)
    f, ∇f and the line search run on a sample that starts with this fraction
    of the instances and grows by the norm test of Byrd, Chin, Nocedal and Wu
    (Math. Programming 2012) until it holds every instance
    (:mod:`newtoncnn.gradient_sample`). History rows then report the sampled
    ``f`` and ``grad_norm`` and the sample size ``sample_size``.

``cg_diag_samples``
    CG is preconditioned by Martens' ``M = (diag(G_S) + λ)^0.75`` (ICML 2010, §4.7)
    with diag(G_S) estimated from this many backward passes with random signs
    (Chapelle and Erhan 2011; :meth:`GaussNewtonOperator.diagonal_estimate
    <newtoncnn.gauss_newton.GaussNewtonOperator.diagonal_estimate>`). Off (0) in both
    presets: it did not pay in the measurements of the README's benchmark.

``damping_full_step``
    λ follows the ratio ρ of the full step ``s`` (``α = 1``, the line search's
    first trial, whose ``f`` is known) instead of the accepted step ``α s``, as in
    Martens (ICML 2010, §4.1), who computes ρ before the backtracking: when ``α = 1``
    fails, the model overrates the step and λ grows, so that later steps need no
    halving (each halving costs a pass over the gradient sample). The same
    iterates as without it while ``α = 1`` is accepted.

``"fast"`` also builds G_S on 2 % of the instances (``subsample=0.02``) and caps
CG at 40 products. None of its values depends on the data set: the sample
sizes are fractions and tests, there is no learning rate.
"""
from newtoncnn.validation import check_bool, check_int, check_option, check_real

__all__ = ["PRESETS", "resolve_preset"]

#: ``"simplenn"`` is simpleNN's method exactly. ``"fast"`` is the combination that
#: reached a given test accuracy soonest in ``asv_bench/time_to_accuracy.py`` (see
#: the README), with nothing to tune per data set.
PRESETS = {
    "simplenn": {"subsample": 0.05, "cg_tol": 0.1, "cg_max_iter": 250, "cg_model_tol": 0.0,
                 "cg_warm_start": 0.0, "gradient_sample": 1.0, "sample_theta": 0.5,
                 "cg_diag_samples": 0, "damping_full_step": False},
    "fast": {"subsample": 0.02, "cg_tol": 0.1, "cg_max_iter": 40, "cg_model_tol": 5e-4,
             "cg_warm_start": 0.95, "gradient_sample": 0.1, "sample_theta": 0.5,
             "cg_diag_samples": 0, "damping_full_step": True},
}


def resolve_preset(preset, explicit):
    """The preset's settings with the non-None entries of ``explicit`` on top (a dict),
    each checked (errors name the parameter).

    Parameters
    ----------
    preset : {"simplenn", "fast"}
        The preset's name.
    explicit : dict
        Parameter values given by the user (None: take the preset's).
    """
    check_option("preset", preset, tuple(PRESETS))
    cfg = dict(PRESETS[preset])
    cfg.update((name, value) for name, value in explicit.items()
               if name in cfg and value is not None)
    check_real("subsample", cfg["subsample"], low=0.0, high=1.0, low_open=True)
    check_real("cg_tol", cfg["cg_tol"], low=0.0)
    check_int("cg_max_iter", cfg["cg_max_iter"], low=1)
    check_real("cg_model_tol", cfg["cg_model_tol"], low=0.0)
    check_real("cg_warm_start", cfg["cg_warm_start"], low=0.0, high=1.0)
    check_real("gradient_sample", cfg["gradient_sample"], low=0.0, high=1.0, low_open=True)
    check_real("sample_theta", cfg["sample_theta"], low=0.0, low_open=True)
    check_int("cg_diag_samples", cfg["cg_diag_samples"], low=0)
    cfg["damping_full_step"] = check_bool("damping_full_step", cfg["damping_full_step"])
    return cfg
