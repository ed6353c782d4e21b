"""The saved-model file of :class:`~newtoncnn.estimator.CNNClassifier`: writing it, and
reading it back with every entry checked.

A model file is an archive of :mod:`newtoncnn.fileio` (format
``"newtoncnn.CNNClassifier"``): arrays ``theta``, ``classes`` and, with
normalization, ``normalizer_mean``; JSON ``params`` (the constructor
arguments), ``network`` (input shape, layers, loss, dtype), ``classes_dtype``,
``normalizer``, ``input_shape``, ``result`` and ``history``. Reading checks the
whole file against itself — the parameters as the constructor checks them, θ
against the declared network (shape, dtype, finite), the classes against its
outputs, the normalizer against the input shape — so that a file that loads
also predicts; anything wrong is one ``ValueError`` naming the file.

Version 2 adds the scaling rule (``normalizer["rule"]``), the resolved ``C``,
``n_iter`` and the stopping rule's curves (``loss_curve_``,
``validation_scores_``, ``best_loss_``, ``best_validation_score_``). Version 1
files (newtoncnn 0.1.0) still load: their scaling is simpleNN's (``"pixels"``),
their ``C`` the one in their parameters and their loss curve the history's ``f``.
"""
import math
import numbers
import os

import numpy as np
from scipy.optimize import OptimizeResult

from newtoncnn._optim_common import Status
from newtoncnn.fileio import read_archive, write_archive
from newtoncnn.layers import layer_from_dict, layer_to_dict
from newtoncnn.network import CNN
from newtoncnn.normalizer import Normalizer
from newtoncnn.regularization import resolve_C
from newtoncnn.scaling import SCALING_RULES
from newtoncnn.validation import check_int, resolve_dtype

__all__ = ["save_model", "load_model"]

FORMAT = "newtoncnn.CNNClassifier"
VERSION = 2
# Fitted attributes of the stopping rule, written as they are (JSON).
_CURVES = ("loss_curve_", "validation_scores_", "best_loss_", "best_validation_score_")
_WHAT = "newtoncnn model file"
_CORRUPT = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError,
            RecursionError)


def save_model(est, path):
    """Write the fitted estimator ``est`` to ``path`` (see
    :meth:`~newtoncnn.estimator.CNNClassifier.save`); returns the path as a str."""
    classes = est.classes_
    classes_dtype = classes.dtype.str
    if classes.dtype == object:
        classes = np.asarray(classes.tolist())
        if classes.dtype.kind not in "biufU":
            raise TypeError("save() supports integer, float, bool or string labels, got "
                            f"{type(est.classes_[0]).__name__} labels")
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
    result = est.result_
    meta = {
        "params": params,
        "network": {"input_shape": list(est.network_.input_shape),
                    "layers": [layer_to_dict(lay) for lay in est.network_.layers],
                    "loss": est.network_.loss, "dtype": est.network_.dtype.name},
        "classes_dtype": classes_dtype,
        "normalizer": None if est.normalizer_ is None else
        {"scale": est.normalizer_.scale, "dtype": est.normalizer_.dtype,
         "rule": est.scaling_},
        "input_shape": list(est.input_shape_),
        "C": float(est.C_),
        "n_iter": int(est.n_iter_),
        **{name: getattr(est, name, None) for name in _CURVES},
        "result": None if result is None else
        {"status": int(result.status), "message": str(result.message),
         "success": bool(result.success), "nit": int(result.nit),
         "fun": float(result.fun) if result.fun is not None else None},
        "history": est.history_,
    }
    arrays = {"theta": np.asarray(est.theta_), "classes": classes}
    if est.normalizer_ is not None:
        arrays["normalizer_mean"] = est.normalizer_.mean_
    return write_archive(path, FORMAT, VERSION, meta, arrays)


def load_model(cls, path):
    """The estimator (of class ``cls``) saved in ``path``, every entry checked.

    Raises FileNotFoundError for a missing file and ValueError, naming the file
    and what is wrong, for anything else."""
    path = os.fspath(path)
    meta, arrays = read_archive(path, FORMAT, VERSION, ("theta", "classes"), _WHAT)
    try:
        return _build(cls, meta, arrays)
    except _CORRUPT as exc:
        detail = f"no {exc} entry" if isinstance(exc, KeyError) else (
            "nested too deeply" if isinstance(exc, RecursionError) else str(exc))
        raise ValueError(f"{_WHAT} {path!r} is corrupt: {detail}") from None


def _dict(name, value):
    if not isinstance(value, dict):
        raise TypeError(f"{name} is a {type(value).__name__}, expected a dict")
    return value


def _layers(name, specs):
    if not isinstance(specs, list):
        raise TypeError(f"{name} is a {type(specs).__name__}, expected a list of layers")
    return [layer_from_dict(_dict(f"{name}[{i}]", s)) for i, s in enumerate(specs)]


def _build(cls, meta, arrays):
    params = dict(_dict("params", meta["params"]))
    if params.get("layers") is not None:
        params["layers"] = _layers("params['layers']", params["layers"])
    known = set(cls._get_param_names())
    est = cls(**{k: v for k, v in params.items() if k in known})
    dtype, _ = est._validate_params()  # the constructor's checks; errors name the parameter
    spec = _dict("network", meta["network"])
    if not isinstance(spec["input_shape"], list):
        raise TypeError("network['input_shape'] is not a list")
    network = CNN(tuple(spec["input_shape"]), _layers("network['layers']", spec["layers"]),
                  loss=spec["loss"], dtype=spec["dtype"])
    if network.loss != est.loss or network.dtype != dtype:
        raise ValueError(f"the network has loss {network.loss!r} and dtype "
                         f"{network.dtype.name} but the parameters say {est.loss!r} and "
                         f"{dtype.name}")
    theta = arrays["theta"]
    if theta.shape != (network.n_params,) or theta.dtype != network.dtype:
        raise ValueError(f"theta has shape {theta.shape} and dtype {theta.dtype}, expected "
                         f"({network.n_params},) {network.dtype} for the declared network")
    if not np.isfinite(theta).all():
        raise ValueError("theta holds NaN or infinite values")
    input_shape = meta["input_shape"]
    if not isinstance(input_shape, list) or tuple(input_shape) != network.input_shape:
        raise ValueError(f"input_shape {input_shape!r} is not the network's "
                         f"{list(network.input_shape)}")
    est.network_, est.theta_, est.input_shape_ = network, theta, network.input_shape
    est.n_features_in_ = int(np.prod(network.input_shape))
    est.classes_ = _classes(arrays["classes"], meta["classes_dtype"], network.n_classes)
    est.n_classes_ = int(est.classes_.size)
    est.normalizer_ = _normalizer(meta["normalizer"], arrays.get("normalizer_mean"),
                                  network.input_shape, est.normalize)
    # version 1 (0.1.0): simpleNN's scaling was the only one, C a number
    est.scaling_ = None if est.normalizer_ is None else meta["normalizer"].get("rule", "pixels")
    if est.scaling_ not in SCALING_RULES[1:]:
        raise ValueError(f"normalizer rule {est.scaling_!r} is not one of {SCALING_RULES[1:]}")
    est.C_ = resolve_C(meta.get("C", params["C"]), 1)
    history = meta["history"]
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise TypeError("history is not a list of rows (dicts)")
    est.history_ = history
    _curves(est, meta, history)
    res = meta["result"]
    if res is None:
        est.result_ = None
        est.n_iter_ = check_int("n_iter", meta.get("n_iter", len(history)), 0)
        return est
    res = _dict("result", res)
    fun = res["fun"]
    if fun is not None and (isinstance(fun, bool) or not isinstance(fun, numbers.Real)):
        raise TypeError(f"result['fun'] is {fun!r}, expected a number or null")
    if not isinstance(res["message"], str) or not isinstance(res["success"], bool):
        raise TypeError("result['message'] or result['success'] has the wrong type")
    nit = check_int("result['nit']", res["nit"], 0)
    status = Status(check_int("result['status']", res["status"], 0))
    est.result_ = OptimizeResult(x=theta, fun=fun, nit=nit, status=status,
                                 message=res["message"], success=res["success"],
                                 history=history)
    est.n_iter_ = check_int("n_iter", meta.get("n_iter", nit), 0)
    return est


def _numbers(name, values, allow_none):
    if values is None and allow_none:
        return None
    if not isinstance(values, list) or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
            for v in values):
        raise TypeError(f"{name} is not a list of finite numbers")
    return [float(v) for v in values]


def _curves(est, meta, history):
    """The stopping rule's curves (version 2), or what version 1 implies."""
    curve = meta.get("loss_curve_")
    est.loss_curve_ = (_numbers("loss_curve_", curve, False) if curve is not None
                       else [row.get("f") for row in history])
    est.validation_scores_ = _numbers("validation_scores_", meta.get("validation_scores_"),
                                      True)
    for name in ("best_loss_", "best_validation_score_"):
        value = meta.get(name)
        if value is not None:
            value = _numbers(name, [value], False)[0]
        setattr(est, name, value)


def _classes(classes, classes_dtype, n_outputs):
    if not isinstance(classes_dtype, str):
        raise TypeError(f"classes_dtype is {classes_dtype!r}, expected a dtype string")
    dtype = np.dtype(classes_dtype)
    if dtype.kind not in "biufUO":
        raise ValueError(f"classes_dtype {classes_dtype!r} is not a label type")
    if classes.ndim != 1 or classes.size != n_outputs:
        raise ValueError(f"classes has shape {classes.shape} but the network has "
                         f"{n_outputs} outputs")
    if classes.size < 2 or np.unique(classes).size != classes.size:
        raise ValueError(f"classes must be at least 2 distinct labels, got {classes.size} "
                         f"with {np.unique(classes).size} distinct")
    return classes.astype(dtype)


def _normalizer(spec, mean, input_shape, normalize):
    if spec is None:
        if normalize or mean is not None:
            raise ValueError("normalize is true but the normalizer is missing"
                             if normalize else "a normalizer mean without a normalizer")
        return None
    spec = _dict("normalizer", spec)
    if not normalize:
        raise ValueError("normalize is false but the file holds a normalizer")
    if mean is None or mean.shape != input_shape or mean.dtype.kind != "f":
        raise ValueError(f"normalizer_mean has shape "
                         f"{None if mean is None else mean.shape}, expected {input_shape} "
                         "floats")
    scale = spec["scale"]
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"normalizer scale is {scale!r}, expected a number")
    if not isinstance(spec["dtype"], str):
        raise TypeError(f"normalizer dtype is {spec['dtype']!r}, expected a dtype name")
    return Normalizer.from_dict({"scale": scale, "dtype": spec["dtype"], "mean": mean})
