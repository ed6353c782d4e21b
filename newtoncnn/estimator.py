"""A scikit-learn classifier: :class:`CNNClassifier`.

``CNNClassifier`` wraps the whole pipeline — simpleNN's normalization
(:class:`~newtoncnn.normalizer.Normalizer`), the network
(:class:`~newtoncnn.network.CNN`), the objective
(:class:`~newtoncnn.objective.CNNObjective`) and an optimizer
(:class:`~newtoncnn.newton.NewtonCG` or :class:`~newtoncnn.sgd.SGD`) — in a
``ClassifierMixin, BaseEstimator``: scikit-learn provides the parameter
protocol, the input checks (``validate_data``), the exceptions and ``score``;
this module adds what is specific to a CNN: images of any shape (and 2-d
tables read as images), the network's construction and
:meth:`CNNClassifier.save` / :meth:`CNNClassifier.load`.
"""
import math
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from newtoncnn._model_file import load_model, save_model
from newtoncnn._optim_common import Status
from newtoncnn.layers import Conv, Dense, MaxPool, check_layer_list
from newtoncnn.losses import SoftmaxLoss
from newtoncnn.network import CNN
from newtoncnn.newton import NewtonCG
from newtoncnn.normalizer import Normalizer
from newtoncnn.objective import CNNObjective
from newtoncnn.presets import paper_layers
from newtoncnn.sgd import SGD
from newtoncnn.threads import num_threads
from newtoncnn.validation import (LOSSES, SOLVERS, check_int, check_option, check_random_state,
                                  check_regularization, resolve_dtype)

__all__ = ["CNNClassifier", "NotFittedError", "ConvergenceWarning", "DataConversionWarning",
           "default_layers"]

def default_layers(input_shape, n_classes):
    """The layers used when ``layers=None``.

    The paper's network (:func:`newtoncnn.presets.paper_layers`) when both image
    sides are at least 8 pixels (it needs three 2x2 pools); otherwise a small
    net that fits any size: conv 3x3x32 pad 1 [-> pool 2 when both sides are
    >= 4] -> conv 3x3x64 pad 1 -> dense K.

    Parameters
    ----------
    input_shape : tuple of int
        ``(C, H, W)`` of one image.
    n_classes : int
        Number of classes K (units of the last Dense layer).
    """
    _, h, w = input_shape
    if min(h, w) >= 8:
        return paper_layers(n_classes)
    layers = [Conv(32, 3, padding=1)]
    if min(h, w) >= 4:
        layers.append(MaxPool(2))
    return layers + [Conv(64, 3, padding=1), Dense(n_classes)]


def _resolve_layers(spec, n_classes):
    """A user layer list -> the network's list, with the output layer Dense(K)."""
    layers = check_layer_list(spec)
    if layers and isinstance(layers[-1], Dense):
        if layers[-1].units != n_classes:
            raise ValueError(
                f"the last layer of layers is Dense({layers[-1].units}) but y has {n_classes} "
                f"classes: end the list with Dense({n_classes}), or leave the output layer "
                "out and it is appended with the right size")
        return layers
    return layers + [Dense(n_classes)]


def _has_softmax(est):
    if est.loss != "softmax":
        raise AttributeError(
            f"{type(est).__name__} has probabilities only with loss='softmax' "
            f"(this one has loss={est.loss!r}); use decision_function instead")
    return True


def _image_shape_of(shape):
    """(C, H, W) that a fresh X of ``shape`` (n, ...) is read as."""
    if len(shape) == 4:
        return tuple(int(v) for v in shape[1:])
    if len(shape) == 3:
        return (1, int(shape[1]), int(shape[2]))
    d = int(shape[1])
    s = math.isqrt(d)
    return (1, s, s) if s * s == d else (1, 1, d)


def _to_float(X, normalizer, dtype):
    """X normalized (or just converted) to a C-contiguous float array."""
    if normalizer is not None:
        return normalizer.transform(X, dtype=dtype)
    return np.ascontiguousarray(X, dtype=dtype)


class CNNClassifier(ClassifierMixin, BaseEstimator):
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
    subsample : float in (0, 1], default None (the preset's: 0.05 simplenn, 0.02 fast)
        Fraction of the instances in each Gauss-Newton subset.
    cg_tol : float >= 0, default None (the preset's: 0.1)
        Relative CG tolerance.
    cg_max_iter : int >= 1, default None (the preset's: 250 simplenn, 40 fast)
        CG iterations per Newton iteration.
    preset : {"simplenn", "fast"}, default "simplenn"
        The Newton method's settings (:data:`~newtoncnn.solver_presets.PRESETS`):
        simpleNN's exact method, or the fast combination (f and ∇f on a
        growing sample, CG warm starts, a smaller Gauss-Newton subset and CG
        cap), which needs no learning rate; see :class:`~newtoncnn.newton.NewtonCG`.
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
        subtracted (simpleNN; :class:`~newtoncnn.normalizer.Normalizer`, fitted on
        the training X). False: X is used as it is, as floating point.
    random_state : None, int, numpy Generator or RandomState, default None
        Seeds the He initialization and the subsets (or minibatches). An int
        is passed both to ``network_.init_params`` and to the optimizer, so a
        fit reproduces the low-level calls with the same seed exactly.
    verbose : int, default 0
        1: the optimizer prints one line per iteration (f, ``|g|``, step size,
        ratio, damping, CG iterations, time, and ``val_accuracy`` when
        ``validation_data`` is given).
    n_threads : int >= 1 or None, default None
        Threads for the kernels and BLAS during ``fit`` and prediction (None:
        the current setting, see :func:`~newtoncnn.threads.set_num_threads`).
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
    theta_ : ndarray of shape (n_params,)
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

    Parameters are checked at ``fit`` (scikit-learn's convention); errors name
    them. Errors and warnings are scikit-learn's (``NotFittedError``,
    ``ConvergenceWarning``, ``DataConversionWarning``, also importable from
    this module).

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

    def __init__(self, layers=None, solver="newton", loss="squared", C=0.01, dtype="float32",
                 batch_size=1000, max_iter=100, subsample=None, cg_tol=None, cg_max_iter=None,
                 damping=1.0, gn_mode="auto", lr=0.01, momentum=0.9, sgd_batch_size=128,
                 epochs=10, normalize=True, random_state=None, verbose=0, n_threads=None,
                 max_time=None, checkpoint=None, checkpoint_every=1, preset="simplenn"):
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
        self.preset = preset

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags

    # ------------------------------------------------------------------ parameter checks
    def _validate_params(self):
        """Check every constructor argument; returns (dtype, the optimizer to use)."""
        check_option("solver", self.solver, SOLVERS)
        check_option("loss", self.loss, LOSSES)
        dtype = resolve_dtype(self.dtype)
        check_regularization(self.C)
        check_int("batch_size", self.batch_size, low=1)
        check_int("sgd_batch_size", self.sgd_batch_size, low=1)
        if not isinstance(self.normalize, (bool, np.bool_)):
            raise TypeError(f"normalize must be True or False, got {self.normalize!r}")
        if self.n_threads is not None:
            check_int("n_threads", self.n_threads, low=1)
        if self.layers is not None and not callable(self.layers):
            check_layer_list(self.layers)
        if self.solver == "sgd" and self.checkpoint is not None:
            raise ValueError("checkpoint is supported by solver='newton' only, got "
                             "solver='sgd'")
        random_state = self._optimizer_random_state()
        # The optimizers check their own arguments (errors name them).
        newton = NewtonCG(max_iter=self.max_iter, subsample=self.subsample, cg_tol=self.cg_tol,
                          cg_max_iter=self.cg_max_iter, damping=self.damping,
                          gn_mode=self.gn_mode, random_state=random_state,
                          verbose=self.verbose, max_time=self.max_time,
                          checkpoint=self.checkpoint, checkpoint_every=self.checkpoint_every,
                          preset=self.preset)
        sgd = SGD(lr=self.lr, momentum=self.momentum, batch_size=self.sgd_batch_size,
                  epochs=self.epochs, random_state=random_state, verbose=self.verbose,
                  max_time=self.max_time)
        return dtype, (newton if self.solver == "newton" else sgd)

    def _optimizer_random_state(self):
        """The seed (or Generator) both the initialization and the optimizer use."""
        rs = self.random_state
        if isinstance(rs, np.random.RandomState):
            # A legacy RandomState (scikit-learn style): draw a seed from it.
            return int(rs.randint(np.iinfo(np.int32).max))
        check_random_state(rs)
        return int(rs) if isinstance(rs, numbers.Integral) else rs

    def network_for(self, input_shape, n_classes):
        """The :class:`~newtoncnn.network.CNN` that ``fit`` builds for images of
        ``input_shape`` ``(C, H, W)`` and ``n_classes`` classes (untrained; raises
        ValueError when the layers do not fit the images).

        Parameters
        ----------
        input_shape : tuple of int
            ``(C, H, W)`` of one image.
        n_classes : int
            Number of classes K.
        """
        spec = self.layers
        if spec is None:
            layers = default_layers(input_shape, n_classes)
        else:
            layers = _resolve_layers(spec(n_classes) if callable(spec) else spec, n_classes)
        return CNN(input_shape, layers, loss=check_option("loss", self.loss, LOSSES),
                   dtype=resolve_dtype(self.dtype))

    # ------------------------------------------------------------------ data checks
    def _validate_data(self, X, y="no_validation", reset=False, name="X"):
        """X as (n, C, H, W) numeric images (not yet normalized), and y as checked labels.

        scikit-learn's ``validate_data`` checks X read as a table of ``C·H·W``
        features (and y); image shapes are checked here first.
        """
        if not hasattr(X, "shape") and X is not None:  # nested lists of images
            X = np.asarray(X)
        shape = getattr(X, "shape", None)
        if isinstance(X, np.ndarray) and X.dtype.kind in "USV":
            raise TypeError(f"{name} must hold numbers (pixel values), got dtype {X.dtype}")
        if shape is not None and len(shape) > 4:
            raise ValueError(f"{name} must be images (n, C, H, W) or (n, H, W) or a 2-d array "
                             f"(n, n_features), got a {len(shape)}-d array of shape {shape}")
        images = shape is not None and len(shape) >= 3
        if images and not reset and _image_shape_of(shape) != self.input_shape_:
            c, h, w = self.input_shape_
            hint = f" or (n, {h}, {w})" if c == 1 else ""
            raise ValueError(
                f"{name} has images of shape {_image_shape_of(shape)}, but "
                f"{type(self).__name__} was fitted on images of shape {self.input_shape_}: "
                f"pass (n, {c}, {h}, {w}){hint} or (n, {c * h * w}).")
        if images:
            X = np.asarray(X).reshape(shape[0], math.prod(shape[1:]))
        no_y = isinstance(y, str) and y == "no_validation"
        if no_y:
            X = validate_data(self, X, reset=reset, dtype="numeric")
        else:
            X, y = validate_data(self, X, y, reset=reset, dtype="numeric")
            check_classification_targets(y)
        if X.dtype.kind == "b":
            X = X.view(np.uint8)
        image_shape = _image_shape_of(shape if images else X.shape) if reset else \
            self.input_shape_
        X = X.reshape((X.shape[0],) + image_shape)
        return X if no_y else (X, y)

    def _prepare(self, X, name="X"):
        """Normalized float images for the network from raw input X."""
        X = self._validate_data(X, name=name)
        return _to_float(X, self.normalizer_, self.network_.dtype)

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, validation_data=None, resume=None, comm=None):
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
        comm : mpi4py.MPI.Comm, optional
            Data-parallel training (:mod:`newtoncnn.distributed`): every process of
            ``comm`` calls ``fit`` with its own contiguous shard ``X, y`` (in rank
            order) and the same parameters, ``random_state`` an int; the classes and
            the normalization come from all shards. ``checkpoint`` is written by the
            processes that set it (give it on one). ``max_time`` is refused: the
            processes' clocks would not agree on when to stop.

        Returns
        -------
        self
        """
        dtype, optimizer = self._validate_params()
        if resume is not None and self.solver != "newton":
            raise ValueError("resume is supported by solver='newton' only, got "
                             f"solver={self.solver!r}")
        for attr in ("theta_", "network_", "normalizer_", "classes_", "history_", "result_"):
            self.__dict__.pop(attr, None)
        X, y = self._validate_data(X, y, reset=True)
        if comm is None:
            classes, y_idx = np.unique(y, return_inverse=True)
        else:
            from newtoncnn import distributed
            distributed.check_estimator(self, comm)
            classes, y_idx = distributed.global_classes(y, comm)
        if classes.size < 2:
            raise ValueError(f"y has only 1 class ({classes[0]!r}); a classifier needs at "
                             "least 2 classes.")
        input_shape = tuple(X.shape[1:])
        network = self.network_for(input_shape, classes.size)
        normalizer = Normalizer(dtype=dtype.name).fit(X) if self.normalize else None
        if comm is not None and normalizer is not None:
            distributed.fit_normalizer(normalizer, X, comm)  # the mean image of all shards
        Xn = _to_float(X, normalizer, dtype)
        objective = (CNNObjective(network, Xn, y_idx.reshape(-1), C=self.C,
                                  batch_size=self.batch_size) if comm is None else
                     distributed.DistributedObjective(network, Xn, y_idx.reshape(-1), comm=comm,
                                                      C=self.C, batch_size=self.batch_size))

        # Fitted attributes needed by _prepare / the validation hook.
        self.classes_ = classes
        self.n_classes_ = int(classes.size)
        self.input_shape_ = input_shape
        self.network_ = network
        self.normalizer_ = normalizer
        if validation_data is not None:
            optimizer.validation = self._validation_hook(validation_data)

        random_state = optimizer.random_state  # same int/Generator for init and optimizer
        with num_threads(self.n_threads):
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
        if result.status == Status.INTERRUPTED:
            warnings.warn("Training interrupted by the user (KeyboardInterrupt); the "
                          "estimator keeps the best parameters found so far.", UserWarning,
                          stacklevel=2)
        elif not result.success:
            warnings.warn(f"{type(self).__name__}: the optimizer stopped early: "
                          f"{result.message} The estimator keeps the best parameters found.",
                          ConvergenceWarning, stacklevel=2)
        return self

    def _validation_hook(self, validation_data):
        try:
            X_val, y_val = validation_data
        except (TypeError, ValueError):
            raise TypeError("validation_data must be a pair (X_val, y_val)") from None
        try:
            X_val = self._prepare(X_val, name="X_val")
        except (TypeError, ValueError) as exc:  # scikit-learn's checks call every input X
            raise type(exc)(f"validation_data: X_val: {exc}") from None
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
        check_is_fitted(self, "theta_")
        X = self._prepare(X)
        with num_threads(self.n_threads):
            return self.network_.forward(self.theta_, X, self.batch_size)

    @property
    def coef_(self):
        """The trained parameters θ (the same array as ``theta_``)."""
        return self.theta_

    def decision_function(self, X):
        """Network outputs: ``(n, n_classes)``; for two classes ``(n,)``, the output of
        ``classes_[1]`` minus that of ``classes_[0]``.

        Parameters
        ----------
        X : array_like, shape (n, C, H, W) or (n, H, W)
            Images in the layout ``fit`` saw (raw pixels when ``normalize=True``).
        """
        z = self._outputs(X)
        if z.shape[1] == 2:
            return z[:, 1] - z[:, 0]
        return z

    def predict(self, X):
        """Labels (from ``classes_``) of the largest output.

        Parameters
        ----------
        X : array_like, shape (n, C, H, W) or (n, H, W)
            Images in the layout ``fit`` saw (raw pixels when ``normalize=True``).
        """
        z = self._outputs(X)
        return self.classes_[np.argmax(z, axis=1)]

    @available_if(_has_softmax)
    def predict_proba(self, X):
        """Class probabilities ``softmax(outputs)``, ``(n, n_classes)`` in float64
        (only with ``loss="softmax"``).

        Parameters
        ----------
        X : array_like, shape (n, C, H, W) or (n, H, W)
            Images in the layout ``fit`` saw (raw pixels when ``normalize=True``).
        """
        return SoftmaxLoss.probabilities(self._outputs(X))

    @available_if(_has_softmax)
    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed stably (only with ``loss="softmax"``).

        Parameters
        ----------
        X : array_like, shape (n, C, H, W) or (n, H, W)
            Images in the layout ``fit`` saw (raw pixels when ``normalize=True``).
        """
        return SoftmaxLoss.log_probabilities(self._outputs(X))

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Write the fitted model to ``path`` (a ``.npz`` file; no pickle inside).

        The file holds the parameters θ, the normalizer's mean image, the
        classes and, as JSON, the constructor arguments, the network and the
        history; :meth:`load` restores an estimator whose predictions are
        identical. A callable ``layers`` is stored as the layer list it
        produced and a Generator ``random_state`` as None. The file is
        written atomically (a temporary file renamed over ``path``).

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (replaced if it is a regular file).

        Returns
        -------
        str
            The path written.
        """
        check_is_fitted(self, "theta_")
        return save_model(self, path)

    @classmethod
    def load(cls, path):
        """Read a model written by :meth:`save` (``allow_pickle=False``).

        Every entry of the file is checked (the parameters as the constructor
        checks them, θ against the declared network, the classes against its
        outputs, the normalizer against the input shape, finite values), so a
        model that loads also predicts.

        Parameters
        ----------
        path : str or os.PathLike
            A file written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            ``path`` does not exist.
        ValueError
            ``path`` is not a sound model file; the message names it and what
            is wrong.
        """
        return load_model(cls, path)
