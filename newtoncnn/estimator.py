"""A scikit-learn compatible classifier: :class:`CNNClassifier`.

``CNNClassifier`` wraps the whole pipeline — input checks, simpleNN's
normalization (pixels / 255 minus the training mean image), the network
(:class:`~newtoncnn.network.CNN`), the objective
(:class:`~newtoncnn.objective.CNNObjective`) and an optimizer
(:class:`~newtoncnn.newton.NewtonCG` or :class:`~newtoncnn.sgd.SGD`) — behind
the estimator API of scikit-learn: ``fit`` returns ``self``, fitted attributes
end in ``_``, ``get_params``/``set_params``, ``predict``,
``decision_function``, ``predict_proba`` (softmax loss only), ``score``,
pickling, plus :meth:`CNNClassifier.save` / :meth:`CNNClassifier.load`.

scikit-learn is optional. The class does not inherit from
``sklearn.base.BaseEstimator`` (importing scikit-learn costs most of a
second); it implements the same protocol itself (``get_params``,
``set_params``, ``__sklearn_tags__``, ``__sklearn_is_fitted__``), so
``sklearn.base.clone``, pipelines, grid searches and
``sklearn.utils.estimator_checks`` work when scikit-learn is installed.
Errors and warnings are this module's :class:`NotFittedError`,
:class:`ConvergenceWarning` and :class:`DataConversionWarning`; once
scikit-learn has been imported, the instances raised are also instances of
scikit-learn's classes of the same names, so ``except
sklearn.exceptions.NotFittedError`` works too.
"""
import contextlib
import dataclasses
import inspect
import json
import math
import numbers
import os
import sys
import warnings

import numpy as np
import scipy.sparse
from scipy.optimize import OptimizeResult

from newtoncnn._optim_common import atomic_savez
from newtoncnn.datasets import Normalizer
from newtoncnn.layers import Conv, Dense, MaxPool
from newtoncnn.network import CNN
from newtoncnn.objective import CNNObjective
from newtoncnn.presets import paper_layers
from newtoncnn.threads import get_num_threads, set_num_threads
from newtoncnn.validation import check_batch_size, resolve_dtype

__all__ = ["CNNClassifier", "NotFittedError", "ConvergenceWarning", "DataConversionWarning",
           "default_layers"]

SOLVERS = ("newton", "sgd")
LOSSES = ("squared", "softmax")
_FORMAT = "newtoncnn.CNNClassifier"
_FORMAT_VERSION = 1
_LAYER_TYPES = {"Conv": Conv, "MaxPool": MaxPool, "Dense": Dense}


# ====================================================================== errors
class NotFittedError(ValueError, AttributeError):
    """The estimator is used before :meth:`CNNClassifier.fit` (like scikit-learn's)."""


class ConvergenceWarning(UserWarning):
    """The optimizer stopped on a failure (line search, damping, non-finite values)."""


class DataConversionWarning(UserWarning):
    """The input was converted (e.g. a column-vector y was ravelled)."""


_SKLEARN_TWINS = {}


def _sklearn_twin(cls):
    """``cls``, or — once scikit-learn is imported — a subclass of both ``cls`` and
    scikit-learn's class of the same name, so either ``except`` clause catches it."""
    if "sklearn" not in sys.modules:
        return cls
    twin = _SKLEARN_TWINS.get(cls.__name__)
    if twin is None:
        try:
            import sklearn.exceptions
            sk_cls = getattr(sklearn.exceptions, cls.__name__)
        except (ImportError, AttributeError):
            return cls
        twin = type(cls.__name__, (cls, sk_cls), {"__module__": __name__,
                                                  "__qualname__": f"_sklearn_{cls.__name__}",
                                                  "__doc__": cls.__doc__})
        _SKLEARN_TWINS[cls.__name__] = twin
    return twin


def __getattr__(name):
    # Lets pickle find the twin classes (e.g. an exception sent back by a joblib worker).
    if name.startswith("_sklearn_"):
        base = globals().get(name[len("_sklearn_"):])
        if isinstance(base, type) and issubclass(base, Exception):
            twin = _sklearn_twin(base)
            if twin is not base:
                return twin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _warn(cls, message, stacklevel=3):
    warnings.warn(message, _sklearn_twin(cls), stacklevel=stacklevel)


# ====================================================================== helpers
class _AvailableIf:
    """A method that exists only when ``check(self)`` is true (scikit-learn's
    ``available_if``): otherwise attribute access raises AttributeError, so
    ``hasattr`` is False."""

    def __init__(self, fn, check):
        self.fn, self.check = fn, check
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        self.__qualname__ = getattr(fn, "__qualname__", fn.__name__)
        self.__wrapped__ = fn

    def __set_name__(self, owner, name):
        self.__name__ = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.fn
        self.check(obj)  # raises AttributeError
        return self.fn.__get__(obj, owner)


def _available_if(check):
    return lambda fn: _AvailableIf(fn, check)


def _check_softmax(est):
    if est.loss != "softmax":
        raise AttributeError(
            f"{type(est).__name__} has probabilities only with loss='softmax' "
            f"(this one has loss={est.loss!r}); use decision_function instead")
    return True


@contextlib.contextmanager
def _thread_limit(n_threads):
    """Use n_threads threads inside the block (None: leave the setting alone)."""
    if n_threads is None:
        yield
        return
    before = get_num_threads()
    set_num_threads(int(n_threads))
    try:
        yield
    finally:
        set_num_threads(before)


def _check_int(name, value, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def default_layers(input_shape, n_classes):
    """The layers used when ``layers=None``.

    The paper's network (:func:`newtoncnn.presets.paper_layers`) when both image
    sides are at least 8 pixels (it needs three 2x2 pools); otherwise a small
    net that fits any size: conv 3x3x32 pad 1 [-> pool 2 when both sides are
    >= 4] -> conv 3x3x64 pad 1 -> dense K.
    """
    _, h, w = input_shape
    if min(h, w) >= 8:
        return paper_layers(n_classes)
    layers = [Conv(32, 3, padding=1)]
    if min(h, w) >= 4:
        layers.append(MaxPool(2))
    return layers + [Conv(64, 3, padding=1), Dense(n_classes)]


def _check_layer_list(spec):
    """The user's layer list as a list, each entry a Conv, MaxPool or Dense."""
    if not isinstance(spec, (list, tuple)):
        raise TypeError("layers must be None, a list of Conv/MaxPool/Dense layers or a "
                        f"callable n_classes -> list, got {type(spec).__name__}")
    layers = list(spec)
    for pos, layer in enumerate(layers):
        if not isinstance(layer, (Conv, MaxPool, Dense)):
            raise TypeError(f"layers[{pos}] must be a Conv, MaxPool or Dense layer, "
                            f"got {type(layer).__name__}")
    return layers


def _resolve_layers(spec, n_classes):
    """A user layer list -> the network's list, with the output layer Dense(K)."""
    layers = _check_layer_list(spec)
    if layers and isinstance(layers[-1], Dense):
        if layers[-1].units != n_classes:
            raise ValueError(
                f"the last layer of layers is Dense({layers[-1].units}) but y has {n_classes} "
                f"classes: end the list with Dense({n_classes}), or leave the output layer "
                "out and it is appended with the right size")
        return layers
    return layers + [Dense(n_classes)]


def _layer_to_json(layer):
    return {"type": type(layer).__name__, **dataclasses.asdict(layer)}


def _layer_from_json(spec):
    spec = dict(spec)
    cls = _LAYER_TYPES.get(spec.pop("type", None))
    if cls is None:
        raise ValueError(f"unknown layer specification {spec!r} in the model file")
    return cls(**spec)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.dtype):
        return value.name
    raise TypeError(f"cannot store {type(value).__name__} in the model file")


def _is_fitted(est):
    return hasattr(est, "theta_")


# ====================================================================== input checks
def _reshape_hint(X):
    return (f"got a {X.ndim}-d array of shape {X.shape}. Reshape your data either using "
            "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) "
            "if it contains a single sample")


def _as_numeric(X, name):
    """X as an ndarray with a real numeric dtype (no copy when it already is one)."""
    if X is None:
        raise ValueError(f"{name} must be an array of images, got None")
    if scipy.sparse.issparse(X):
        raise TypeError(f"Sparse data was passed for {name}, but dense data is required; "
                        "convert it with X.toarray()")
    X = np.asarray(X)
    if np.iscomplexobj(X):
        raise ValueError(f"Complex data not supported: {name} has dtype {X.dtype}")
    if X.dtype == object:
        X = X.astype(np.float64)  # TypeError names the offending element
        if np.iscomplexobj(X):
            raise ValueError(f"Complex data not supported in {name}")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers (pixel values), got dtype {X.dtype}")
    if X.dtype.kind == "b":
        X = X.astype(np.uint8)
    return X


def _image_shape_of(X):
    """(C, H, W) that a fresh X of shape (n, ...) is read as."""
    if X.ndim == 4:
        return tuple(int(v) for v in X.shape[1:])
    if X.ndim == 3:
        return (1, int(X.shape[1]), int(X.shape[2]))
    d = int(X.shape[1])
    s = math.isqrt(d)
    return (1, s, s) if s * s == d else (1, 1, d)


def _to_float(X, normalizer, dtype):
    """X normalized (or just converted) to a C-contiguous float array."""
    if normalizer is not None:
        return normalizer.transform(X, dtype=dtype)
    return np.ascontiguousarray(X, dtype=dtype)


# ====================================================================== the estimator
class CNNClassifier:
    """Convolutional network classifier trained by subsampled Gauss-Newton Newton-CG.

    The method is simpleNN's (Wang, Tan and Lin, "Newton Methods for
    Convolutional Neural Networks", ACM TIST 2020): Newton-CG on a 5 %
    subsample per iteration with Levenberg-Marquardt damping and a
    backtracking line search; ``solver="sgd"`` gives the paper's momentum SGD
    baseline instead.

    Parameters
    ----------
    layers : None, list of Conv/MaxPool/Dense, or callable, default None
        The network. None: :func:`default_layers` — the paper's "3-layer CNN"
        (:func:`~newtoncnn.presets.paper_layers`) when both image sides are
        >= 8 pixels, else a small conv net that fits. A list: the layers in
        order; if it does not end with a ``Dense`` layer, the output layer
        ``Dense(n_classes)`` is appended (so one list serves any number of
        classes); if it does, that layer's units must equal the number of
        classes. A callable: ``layers(n_classes)`` returns such a list (e.g.
        ``newtoncnn.presets.paper_layers``).
    solver : {"newton", "sgd"}, default "newton"
    loss : {"squared", "softmax"}, default "squared"
        ``"squared"``: ‖z − onehot(y)‖² (simpleNN); ``"softmax"``:
        cross-entropy, which also gives :meth:`predict_proba`.
    C : float > 0, default 0.01
        Regularization: the objective is θᵀθ / (2 C l) + mean loss.
    dtype : {"float32", "float64"}, default "float32"
        Precision of the network and the optimization.
    batch_size : int >= 1, default 1000
        Instances per forward/backward pass (bounds memory; no effect on results).
    max_iter : int >= 0, default 100
        Newton iterations (solver="newton").
    subsample : float in (0, 1], default 0.05
        Fraction of the instances in each Gauss-Newton subset.
    cg_tol : float >= 0, default 0.1
        Relative CG tolerance.
    cg_max_iter : int >= 1, default 250
        CG iterations per Newton iteration.
    damping : float >= 0, default 1.0
        Initial Levenberg-Marquardt damping λ.
    gn_mode : {"auto", "jacobian", "rop"}, default "auto"
        How Gauss-Newton products are computed (see ``CNNObjective.gauss_newton``).
    lr, momentum : float, default 0.01, 0.9
        SGD learning rate and momentum (solver="sgd").
    sgd_batch_size : int >= 1, default 128
        SGD minibatch size.
    epochs : int >= 0, default 10
        SGD epochs.
    normalize : bool, default True
        True: images are divided by 255 and the mean training image is
        subtracted (simpleNN; :class:`~newtoncnn.datasets.Normalizer`, fitted on
        the training X). False: X is used as it is, as floating point.
    random_state : None, int, numpy Generator or RandomState, default None
        Seeds the He initialization and the subsets (or minibatches). An int
        is passed both to ``network_.init_params`` and to the optimizer, so a
        fit reproduces the low-level calls with the same seed exactly.
    verbose : int, default 0
        1: the optimizer prints one line per iteration (f, |g|, step size,
        ratio, damping, CG iterations, time, and ``val_accuracy`` when
        ``validation_data`` is given).
    n_threads : int >= 1 or None, default None
        Threads for the kernels and BLAS during ``fit`` and prediction (None:
        the current setting, see :func:`newtoncnn.set_num_threads`).
    max_time : float > 0 or None, default None
        Wall-clock budget of ``fit`` in seconds.
    checkpoint : None, str or os.PathLike, default None
        solver="newton" only: write the optimizer's state to this file every
        ``checkpoint_every`` iterations, at the end and on Ctrl-C (atomically;
        see :class:`~newtoncnn.newton.NewtonCG`), so that ``fit(X, y,
        resume=checkpoint)`` can continue the run.
    checkpoint_every : int >= 1, default 1
        Newton iterations between checkpoints.

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
        The labels, ``np.unique(y)``; any integers or strings.
    n_classes_ : int
    network_ : CNN
    theta_ : ndarray (network_.n_params,)
        The trained parameters (flat θ). ``coef_`` is the same array.
    normalizer_ : Normalizer or None
        The fitted normalization (None when ``normalize=False``).
    input_shape_ : tuple (C, H, W)
        The image shape the network reads.
    n_features_in_ : int
        C * H * W.
    n_iter_ : int
        Iterations (Newton) or epochs (SGD) run.
    history_ : list of dict
        One row per iteration from the optimizer (``f``, ``grad_norm``,
        ``alpha``, ``ratio``, ``damping``, ``cg_iters``, ``seconds``, ... and
        ``val_accuracy`` with ``validation_data``).
    result_ : scipy.optimize.OptimizeResult
        The optimizer's result (``status``, ``message``, ...).

    Notes
    -----
    X may be images ``(n, C, H, W)`` or ``(n, H, W)`` (one channel), or a 2-d
    ``(n, d)`` array: read as ``(n, 1, s, s)`` images when ``d = s²`` and as
    one-row images ``(n, 1, 1, d)`` otherwise (so tabular data work too).
    After fitting, a 2-d ``(n, C·H·W)`` array is reshaped to ``input_shape_``.

    ``decision_function`` returns the network outputs ``(n, n_classes)``,
    except for two classes, where it is ``(n,)`` = output of ``classes_[1]``
    minus output of ``classes_[0]`` (scikit-learn's binary convention:
    positive means ``classes_[1]``).

    Ctrl-C during ``fit`` stops the optimizer, which keeps the best
    parameters so far: the estimator is fitted with them and a warning says so.

    Examples
    --------
    >>> from newtoncnn.datasets import load_bundled
    >>> X, y, X_test, y_test = load_bundled()
    >>> clf = CNNClassifier(max_iter=20, random_state=0).fit(X, y)  # doctest: +SKIP
    >>> clf.score(X_test, y_test)  # doctest: +SKIP
    """

    _estimator_type = "classifier"  # scikit-learn < 1.6

    def __init__(self, layers=None, solver="newton", loss="squared", C=0.01, dtype="float32",
                 batch_size=1000, max_iter=100, subsample=0.05, cg_tol=0.1, cg_max_iter=250,
                 damping=1.0, gn_mode="auto", lr=0.01, momentum=0.9, sgd_batch_size=128,
                 epochs=10, normalize=True, random_state=None, verbose=0, n_threads=None,
                 max_time=None, checkpoint=None, checkpoint_every=1):
        self.layers = layers
        self.solver = solver
        self.loss = loss
        self.C = C
        self.dtype = dtype
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.subsample = subsample
        self.cg_tol = cg_tol
        self.cg_max_iter = cg_max_iter
        self.damping = damping
        self.gn_mode = gn_mode
        self.lr = lr
        self.momentum = momentum
        self.sgd_batch_size = sgd_batch_size
        self.epochs = epochs
        self.normalize = normalize
        self.random_state = random_state
        self.verbose = verbose
        self.n_threads = n_threads
        self.max_time = max_time
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    # ------------------------------------------------------------------ params protocol
    @classmethod
    def _get_param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values()
                      if p.name != "self" and p.kind == p.POSITIONAL_OR_KEYWORD)

    def get_params(self, deep=True):
        """The constructor arguments as a dict (scikit-learn convention)."""
        out = {}
        for key in self._get_param_names():
            value = getattr(self, key)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((f"{key}__{k}", v) for k, v in value.get_params().items())
            out[key] = value
        return out

    def set_params(self, **params):
        """Set constructor arguments (checked at ``fit``, as in scikit-learn); returns self."""
        if not params:
            return self
        valid = self.get_params(deep=True)
        nested = {}
        for key, value in params.items():
            key, delim, sub_key = key.partition("__")
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for estimator {self}. "
                                 f"Valid parameters are: {self._get_param_names()!r}.")
            if delim:
                nested.setdefault(key, {})[sub_key] = value
            else:
                setattr(self, key, value)
                valid[key] = value
        for key, sub_params in nested.items():
            valid[key].set_params(**sub_params)
        return self

    def __repr__(self):
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name, p in sig.parameters.items():
            if name == "self":
                continue
            value = getattr(self, name, p.default)
            if value is p.default:
                continue
            try:
                same = bool(value == p.default) and type(value) is type(p.default)
            except Exception:
                same = False
            if not same:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags
        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags(), input_tags=InputTags(two_d_array=True))

    def __sklearn_is_fitted__(self):
        return _is_fitted(self)

    def _check_is_fitted(self):
        if not _is_fitted(self):
            raise _sklearn_twin(NotFittedError)(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator.")

    # ------------------------------------------------------------------ parameter checks
    def _validate_params(self):
        """Check every constructor argument; returns (dtype, the optimizer to use)."""
        from newtoncnn.newton import NewtonCG
        from newtoncnn.sgd import SGD

        if not isinstance(self.solver, str) or self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if not isinstance(self.loss, str) or self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        dtype = resolve_dtype(self.dtype)
        C = self.C
        if isinstance(C, (bool, np.bool_)) or not isinstance(C, numbers.Real):
            raise TypeError(f"C must be a positive number, got {C!r}")
        if not (math.isfinite(C) and C > 0):
            raise ValueError(f"C must be a positive finite number, got {C!r}")
        check_batch_size(self.batch_size, "batch_size")
        _check_int("sgd_batch_size", self.sgd_batch_size, 1)
        if not isinstance(self.normalize, (bool, np.bool_)):
            raise TypeError(f"normalize must be True or False, got {self.normalize!r}")
        if self.n_threads is not None:
            _check_int("n_threads", self.n_threads, 1)
        if self.layers is not None and not callable(self.layers):
            _check_layer_list(self.layers)
        random_state = self._optimizer_random_state()
        # The optimizers check their own arguments (errors name them).
        newton = NewtonCG(max_iter=self.max_iter, subsample=self.subsample, cg_tol=self.cg_tol,
                          cg_max_iter=self.cg_max_iter, damping=self.damping,
                          gn_mode=self.gn_mode, random_state=random_state,
                          verbose=self.verbose, max_time=self.max_time,
                          checkpoint=self.checkpoint, checkpoint_every=self.checkpoint_every)
        if self.solver == "sgd" and self.checkpoint is not None:
            raise ValueError("checkpoint is supported by solver='newton' only, got "
                             "solver='sgd'")
        sgd = SGD(lr=self.lr, momentum=self.momentum, batch_size=self.sgd_batch_size,
                  epochs=self.epochs, random_state=random_state, verbose=self.verbose,
                  max_time=self.max_time)
        return dtype, (newton if self.solver == "newton" else sgd)

    def _optimizer_random_state(self):
        rs = self.random_state
        if isinstance(rs, np.random.RandomState):
            # A legacy RandomState (scikit-learn style): draw a seed from it.
            return int(rs.randint(np.iinfo(np.int32).max))
        if rs is None or isinstance(rs, np.random.Generator):
            return rs
        if isinstance(rs, (bool, np.bool_)) or not isinstance(rs, numbers.Integral):
            raise TypeError("random_state must be None, an int, a numpy Generator or a "
                            f"RandomState, got {rs!r}")
        if rs < 0:
            raise ValueError(f"random_state must be non-negative, got {rs}")
        return int(rs)

    def _build_network(self, input_shape, n_classes, dtype=None):
        """The CNN for images of ``input_shape`` and ``n_classes`` outputs."""
        spec = self.layers
        if spec is None:
            layers = default_layers(input_shape, n_classes)
        else:
            if callable(spec):
                spec = spec(n_classes)
            layers = _resolve_layers(spec, n_classes)
        dtype = resolve_dtype(self.dtype) if dtype is None else dtype
        return CNN(input_shape, layers, loss=self.loss, dtype=dtype)

    # ------------------------------------------------------------------ data checks
    def _validate_X(self, X, name="X", reset=False):
        """X as a 4-d (n, C, H, W) numeric array (not yet normalized)."""
        X = _as_numeric(X, name)
        if X.ndim < 2:
            raise ValueError(f"{name} must be images (n, C, H, W) or (n, H, W) or a 2-d array "
                             f"(n, n_features); {_reshape_hint(X)}.")
        if X.ndim > 4:
            raise ValueError(f"{name} must be images (n, C, H, W) or (n, H, W) or a 2-d array "
                             f"(n, n_features), got a {X.ndim}-d array of shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum "
                             f"of 1 is required: {name} is empty.")
        n_features = int(np.prod(X.shape[1:]))
        if n_features == 0:
            raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum "
                             f"of 1 is required: {name} has no pixels.")
        if reset:
            shape = _image_shape_of(X)
        else:
            shape = self.input_shape_
            expected = int(np.prod(shape))
            if X.ndim == 2:
                if n_features != expected:
                    raise ValueError(
                        f"{name} has {n_features} features, but {type(self).__name__} is "
                        f"expecting {expected} features as input (images of shape {shape}).")
            elif _image_shape_of(X) != shape:
                hint = f" or (n, {shape[1]}, {shape[2]})" if shape[0] == 1 else ""
                raise ValueError(
                    f"{name} has images of shape {_image_shape_of(X)}, but "
                    f"{type(self).__name__} was fitted on images of shape {shape}: pass "
                    f"(n, {shape[0]}, {shape[1]}, {shape[2]}){hint} or (n, {expected}).")
        if X.dtype.kind == "f" and not np.isfinite(X).all():
            raise ValueError(f"Input {name} contains NaN or infinity.")
        return X.reshape((X.shape[0],) + shape)

    def _validate_y(self, y, n, name="y"):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                             "y is None.")
        if scipy.sparse.issparse(y):
            raise TypeError(f"Sparse data was passed for {name}, but a 1-d array of labels "
                            "is required")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            _warn(DataConversionWarning,
                  "A column-vector y was passed when a 1d array was expected. Please change "
                  "the shape of y to (n_samples, ), for example using ravel().", stacklevel=4)
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"{name} should be a 1d array of labels, got an array of shape "
                             f"{y.shape} (multi-output targets are not supported)")
        if y.shape[0] != n:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"X has {n} instances but {name} has {y.shape[0]} labels.")
        if y.dtype.kind == "c":
            raise ValueError(f"Complex data not supported in {name}")
        if y.dtype.kind == "f" or (y.dtype == object and all(
                isinstance(v, (float, np.floating)) for v in y[:1000])):
            yf = y.astype(np.float64)
            if not np.isfinite(yf).all():
                raise ValueError(f"Input {name} contains NaN or infinity: labels must be "
                                 "finite.")
            if not np.all(yf == np.round(yf)):
                raise ValueError(f"Unknown label type: 'continuous'. {type(self).__name__} is a "
                                 f"classifier: {name} must hold class labels (integers or "
                                 "strings), not continuous values.")
        try:
            classes, y_idx = np.unique(y, return_inverse=True)
        except TypeError as exc:
            raise TypeError(f"{name} must hold labels of one comparable type (all numbers or "
                            f"all strings): {exc}") from None
        if classes.size < 2:
            raise ValueError(f"{name} has only 1 class ({classes[0]!r}); a classifier needs at "
                             "least 2 classes.")
        return classes, y_idx.reshape(-1).astype(np.int64)

    def _prepare(self, X):
        """Normalized float images for the network (X already validated)."""
        return _to_float(X, self.normalizer_, self.network_.dtype)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, validation_data=None, resume=None):
        """Train the network on images ``X`` with labels ``y``.

        Parameters
        ----------
        X : array (n, C, H, W), (n, H, W) or (n, d)
            Training images (e.g. uint8 pixels); see the class Notes for 2-d X.
        y : array (n,)
            Labels: any integers or strings (at least 2 classes).
        validation_data : (X_val, y_val), optional
            Evaluated after every iteration: ``val_accuracy`` is added to the
            history rows (and to the progress lines when ``verbose``).
        resume : str or os.PathLike, optional
            solver="newton" only: a checkpoint written by a fit with
            ``checkpoint=...`` on the same data and settings. Training continues
            from it exactly where it stopped (``max_iter`` counts the iterations
            of the whole run); ``history_`` holds all iterations. The network is
            built as usual and its fresh θ is only checked against the
            checkpoint. A checkpoint of another problem or other settings raises
            ``ValueError`` saying what differs.

        Returns
        -------
        self
        """
        dtype, optimizer = self._validate_params()
        if resume is not None and self.solver != "newton":
            raise ValueError("resume is supported by solver='newton' only, got "
                             f"solver={self.solver!r}")
        X = self._validate_X(X, reset=True)
        classes, y_idx = self._validate_y(y, X.shape[0])
        input_shape = tuple(X.shape[1:])

        for attr in ("theta_", "network_", "normalizer_", "classes_", "history_", "result_"):
            self.__dict__.pop(attr, None)
        network = self._build_network(input_shape, classes.size, dtype)
        normalizer = Normalizer(dtype=dtype.name).fit(X) if self.normalize else None
        Xn = _to_float(X, normalizer, dtype)
        objective = CNNObjective(network, Xn, y_idx, C=self.C, batch_size=self.batch_size)

        # Fitted attributes needed by _prepare / the validation hook.
        self.classes_ = classes
        self.n_classes_ = int(classes.size)
        self.input_shape_ = input_shape
        self.n_features_in_ = int(np.prod(input_shape))
        self.network_ = network
        self.normalizer_ = normalizer
        if validation_data is not None:
            optimizer.validation = self._validation_hook(validation_data)

        random_state = optimizer.random_state  # same int/Generator for init and optimizer
        with _thread_limit(self.n_threads):
            theta0 = network.init_params(random_state)
            if resume is None:
                result = optimizer.minimize(objective, theta0)
            else:
                result = optimizer.minimize(objective, theta0, resume=resume)
        optimizer.validation = None  # do not keep the data alive through result_

        self.theta_ = result.x
        self.history_ = result.history
        self.result_ = result
        self.n_iter_ = int(result.nit)
        from newtoncnn.newton import Status
        if result.status == Status.INTERRUPTED:
            _warn(UserWarning, "Training interrupted by the user (KeyboardInterrupt); the "
                  "estimator keeps the best parameters found so far.")
        elif not result.success:
            _warn(ConvergenceWarning, f"{type(self).__name__}: the optimizer stopped early: "
                  f"{result.message} The estimator keeps the best parameters found.")
        return self

    def _validation_hook(self, validation_data):
        try:
            X_val, y_val = validation_data
        except (TypeError, ValueError):
            raise TypeError("validation_data must be a pair (X_val, y_val)") from None
        X_val = self._prepare(self._validate_X(X_val, name="X_val"))
        y_val = np.asarray(y_val)
        if y_val.ndim != 1 or y_val.shape[0] != X_val.shape[0]:
            raise ValueError(f"y_val must be a 1-d array of {X_val.shape[0]} labels, got "
                             f"shape {y_val.shape}")
        network, classes, batch = self.network_, self.classes_, self.batch_size

        def validation(theta):
            pred = classes[network.predict(theta, X_val, batch)]
            return {"val_accuracy": float(np.mean(pred == y_val))}

        return validation

    # ------------------------------------------------------------------ prediction
    def _outputs(self, X):
        """Network outputs (n, K) for raw images X."""
        self._check_is_fitted()
        X = self._prepare(self._validate_X(X))
        with _thread_limit(self.n_threads):
            return self.network_.forward(self.theta_, X, self.batch_size)

    @property
    def coef_(self):
        """The trained parameters θ (the same array as ``theta_``)."""
        return self.theta_

    def decision_function(self, X):
        """Network outputs: ``(n, n_classes)``; for two classes ``(n,)``, the output of
        ``classes_[1]`` minus that of ``classes_[0]``."""
        z = self._outputs(X)
        if z.shape[1] == 2:
            return z[:, 1] - z[:, 0]
        return z

    def predict(self, X):
        """Labels (from ``classes_``) of the largest output."""
        z = self._outputs(X)
        return self.classes_[np.argmax(z, axis=1)]

    @_available_if(_check_softmax)
    def predict_proba(self, X):
        """Class probabilities ``softmax(outputs)``, ``(n, n_classes)`` in float64
        (only with ``loss="softmax"``)."""
        z = self._outputs(X).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z

    @_available_if(_check_softmax)
    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed stably (only with ``loss="softmax"``)."""
        z = self._outputs(X).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
        return z

    def score(self, X, y, sample_weight=None):
        """Accuracy of :meth:`predict` on ``(X, y)`` (weighted by ``sample_weight``)."""
        y = np.asarray(y)
        pred = self.predict(X)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        if y.shape != pred.shape:
            raise ValueError(f"y must be a 1-d array of {pred.shape[0]} labels, got shape "
                             f"{y.shape}")
        return float(np.average(pred == y, weights=sample_weight))

    # ------------------------------------------------------------------ persistence
    def _json_params(self):
        params = self.get_params(deep=False)
        layers = params["layers"]
        if callable(layers):  # stored as the list it produced
            layers = self.network_.layers
        params["layers"] = None if layers is None else [_layer_to_json(lay) for lay in layers]
        if not isinstance(params["random_state"], (numbers.Integral, type(None))):
            params["random_state"] = None  # a Generator's state is not kept
        params["dtype"] = resolve_dtype(params["dtype"]).name
        if params["checkpoint"] is not None:
            params["checkpoint"] = os.fspath(params["checkpoint"])
        return params

    def save(self, path):
        """Write the fitted model to ``path`` (a ``.npz`` file; no pickle inside).

        The file holds the parameters θ, the normalizer's mean image, the
        classes and, as JSON, the constructor arguments, the network and the
        history; :meth:`load` restores an estimator whose predictions are
        identical. A callable ``layers`` is stored as the layer list it
        produced and a Generator ``random_state`` as None. The file is
        written atomically (a temporary file renamed over ``path``).

        Returns
        -------
        str
            The path written.
        """
        self._check_is_fitted()
        path = os.fspath(path)
        classes = self.classes_
        classes_dtype = classes.dtype.str
        if classes.dtype == object:
            classes = np.asarray(classes.tolist())
            if classes.dtype.kind not in "biufU":
                raise TypeError("save() supports integer, float, bool or string labels, got "
                                f"{type(self.classes_[0]).__name__} labels")
        result = self.result_
        meta = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "params": self._json_params(),
            "network": {"input_shape": list(self.network_.input_shape),
                        "layers": [_layer_to_json(lay) for lay in self.network_.layers],
                        "loss": self.network_.loss, "dtype": self.network_.dtype.name},
            "classes_dtype": classes_dtype,
            "normalizer": None if self.normalizer_ is None else
            {"scale": self.normalizer_.scale, "dtype": self.normalizer_.dtype},
            "input_shape": list(self.input_shape_),
            "result": None if result is None else
            {"status": int(result.status), "message": str(result.message),
             "success": bool(result.success), "nit": int(result.nit),
             "fun": float(result.fun) if result.fun is not None else None},
            "history": self.history_,
        }
        arrays = {"meta": np.array(json.dumps(meta, default=_json_default)),
                  "theta": np.asarray(self.theta_), "classes": classes}
        if self.normalizer_ is not None:
            arrays["normalizer_mean"] = self.normalizer_.mean_
        atomic_savez(path, arrays)
        return path

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save` (``allow_pickle=False``)."""
        with np.load(path, allow_pickle=False) as npz:
            files = set(npz.files)
            if not {"meta", "theta", "classes"} <= files:
                raise ValueError(f"{os.fspath(path)!r} is not a newtoncnn model file "
                                 f"(arrays: {sorted(files)})")
            meta = json.loads(str(npz["meta"][()]))
            theta = npz["theta"]
            classes = npz["classes"]
            mean = npz["normalizer_mean"] if "normalizer_mean" in files else None
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{os.fspath(path)!r} is not a newtoncnn model file")
        if meta.get("version", 0) > _FORMAT_VERSION:
            raise ValueError(f"{os.fspath(path)!r} was written by a newer newtoncnn (format "
                             f"{meta['version']}); upgrade newtoncnn to read it")
        params = dict(meta["params"])
        if params.get("layers") is not None:
            params["layers"] = [_layer_from_json(s) for s in params["layers"]]
        known = set(cls._get_param_names())
        est = cls(**{k: v for k, v in params.items() if k in known})
        spec = meta["network"]
        est.network_ = CNN(tuple(spec["input_shape"]),
                           [_layer_from_json(s) for s in spec["layers"]],
                           loss=spec["loss"], dtype=spec["dtype"])
        if theta.shape != (est.network_.n_params,) or theta.dtype != est.network_.dtype:
            raise ValueError(f"{os.fspath(path)!r}: theta has shape {theta.shape} and dtype "
                             f"{theta.dtype}, expected ({est.network_.n_params},) "
                             f"{est.network_.dtype}")
        est.theta_ = theta
        est.classes_ = classes.astype(np.dtype(meta["classes_dtype"]))
        est.n_classes_ = int(classes.size)
        est.input_shape_ = tuple(meta["input_shape"])
        est.n_features_in_ = int(np.prod(est.input_shape_))
        norm = meta["normalizer"]
        est.normalizer_ = None if norm is None else Normalizer.from_dict(
            {"scale": norm["scale"], "dtype": norm["dtype"], "mean": mean})
        est.history_ = meta["history"]
        res = meta["result"]
        if res is not None:
            from newtoncnn.newton import Status
            est.result_ = OptimizeResult(x=theta, fun=res["fun"], nit=res["nit"],
                                         status=Status(res["status"]), message=res["message"],
                                         success=res["success"], history=est.history_)
            est.n_iter_ = res["nit"]
        else:
            est.result_ = None
            est.n_iter_ = len(est.history_)
        return est
