"""The file format of a fitted :class:`~newtoncnn.estimator.CNNClassifier`.

An archive of :mod:`newtoncnn.fileio` (``.npz``, no pickle) of format
``"newtoncnn.CNNClassifier"``: the arrays ``theta``, ``classes`` and (when
the input is scaled) ``normalizer_mean``; as JSON the constructor arguments,
the network, the input scaling (rule and scale), the resolved ``C``, the
history and the optimizer's result.

Version 2 adds the scaling rule, the resolved ``C`` and the curves of the
stopping rule (``loss_curve_``, ``validation_scores_``, ...). Version 1 files
(newtoncnn 0.1.0) still load: their scaling is simpleNN's (``"pixels"``), their
``C`` the one in their parameters and their loss curve the history's ``f``.
"""
import numbers
import os

import numpy as np
from scipy.optimize import OptimizeResult

from newtoncnn._optim_common import Status
from newtoncnn.fileio import read_archive, write_archive
from newtoncnn.layers import layer_from_dict, layer_to_dict
from newtoncnn.network import CNN
from newtoncnn.normalizer import Normalizer
from newtoncnn.validation import resolve_dtype

__all__ = ["FORMAT", "FORMAT_VERSION", "save_estimator", "load_estimator"]

FORMAT = "newtoncnn.CNNClassifier"
FORMAT_VERSION = 2

# Fitted attributes of the stopping rule, written as they are (JSON).
_CURVES = ("loss_curve_", "validation_scores_", "best_loss_", "best_validation_score_")


def _params_for_json(est):
    params = est.get_params(deep=False)
    layers = est.network_.layers if callable(params["layers"]) else params["layers"]
    params["layers"] = None if layers is None else [layer_to_dict(lay) for lay in layers]
    if not isinstance(params["random_state"], (numbers.Integral, type(None))):
        params["random_state"] = None  # a Generator's state is not kept
    params["dtype"] = resolve_dtype(params["dtype"]).name
    if params["checkpoint"] is not None:
        params["checkpoint"] = os.fspath(params["checkpoint"])
    if isinstance(params["normalize"], np.bool_):
        params["normalize"] = bool(params["normalize"])
    return params


def save_estimator(est, path):
    """Write fitted ``est`` to ``path`` atomically; returns the path as a str.

    Parameters
    ----------
    est : CNNClassifier
        A fitted estimator.
    path : str or os.PathLike
        The file to write.
    """
    classes = est.classes_
    classes_dtype = classes.dtype.str
    if classes.dtype == object:
        classes = np.asarray(classes.tolist())
        if classes.dtype.kind not in "biufU":
            raise TypeError("save() supports integer, float, bool or string labels, got "
                            f"{type(est.classes_[0]).__name__} labels")
    result = est.result_
    norm = est.normalizer_
    meta = {
        "params": _params_for_json(est),
        "network": {"input_shape": list(est.network_.input_shape),
                    "layers": [layer_to_dict(lay) for lay in est.network_.layers],
                    "loss": est.network_.loss, "dtype": est.network_.dtype.name},
        "classes_dtype": classes_dtype,
        "normalizer": None if norm is None else
        {"scale": norm.scale, "dtype": norm.dtype, "rule": est.scaling_},
        "input_shape": list(est.input_shape_),
        "C": float(est.C_),
        "n_iter": int(est.n_iter_),
        "result": None if result is None else
        {"status": int(result.status), "message": str(result.message),
         "success": bool(result.success), "nit": int(result.nit),
         "fun": float(result.fun) if result.fun is not None else None},
        "history": est.history_,
        **{name: getattr(est, name, None) for name in _CURVES},
    }
    arrays = {"theta": np.asarray(est.theta_), "classes": classes}
    if norm is not None:
        arrays["normalizer_mean"] = norm.mean_
    return write_archive(path, FORMAT, FORMAT_VERSION, meta, arrays)


def load_estimator(estimator_class, path):
    """Read a file written by :func:`save_estimator` (any version) as a fitted
    ``estimator_class``.

    Parameters
    ----------
    estimator_class : type
        ``CNNClassifier`` (or a subclass).
    path : str or os.PathLike
        The file.
    """
    path = os.fspath(path)
    meta, arrays = read_archive(path, FORMAT, FORMAT_VERSION, ("theta", "classes"),
                                "newtoncnn model file")
    theta, classes = arrays["theta"], arrays["classes"]
    params = dict(meta["params"])
    if params.get("layers") is not None:
        params["layers"] = [layer_from_dict(s) for s in params["layers"]]
    known = set(estimator_class._get_param_names())
    est = estimator_class(**{k: v for k, v in params.items() if k in known})
    spec = meta["network"]
    est.network_ = CNN(tuple(spec["input_shape"]),
                       [layer_from_dict(s) for s in spec["layers"]],
                       loss=spec["loss"], dtype=spec["dtype"])
    if theta.shape != (est.network_.n_params,) or theta.dtype != est.network_.dtype:
        raise ValueError(f"{path!r}: theta has shape {theta.shape} and dtype "
                         f"{theta.dtype}, expected ({est.network_.n_params},) "
                         f"{est.network_.dtype}")
    est.theta_ = theta
    est.classes_ = classes.astype(np.dtype(meta["classes_dtype"]))
    est.n_classes_ = int(classes.size)
    est.input_shape_ = tuple(meta["input_shape"])
    est.n_features_in_ = int(np.prod(est.input_shape_))
    norm = meta["normalizer"]
    est.normalizer_ = None if norm is None else Normalizer.from_dict(
        {"scale": norm["scale"], "dtype": norm["dtype"],
         "mean": arrays.get("normalizer_mean")})
    # version 1 (0.1.0): simpleNN's scaling was the only one
    est.scaling_ = None if norm is None else norm.get("rule", "pixels")
    est.C_ = float(meta.get("C", params["C"]))
    est.history_ = meta["history"]
    res = meta["result"]
    if res is not None:
        est.result_ = OptimizeResult(x=theta, fun=res["fun"], nit=res["nit"],
                                     status=Status(res["status"]), message=res["message"],
                                     success=res["success"], history=est.history_)
    else:
        est.result_ = None
    est.n_iter_ = int(meta.get("n_iter", res["nit"] if res is not None else len(est.history_)))
    for name in _CURVES:
        setattr(est, name, meta.get(name))
    if est.loss_curve_ is None:  # version 1
        est.loss_curve_ = [row["f"] for row in est.history_]
    return est
