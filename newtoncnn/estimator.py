"""A scikit-learn classifier: :class:`CNNClassifier`.

``CNNClassifier`` wraps the whole pipeline — an input scaling chosen from the
data (:mod:`newtoncnn.scaling`), the network
(:class:`~newtoncnn.network.CNN`), the objective
(:class:`~newtoncnn.objective.CNNObjective`) and an optimizer
(:class:`~newtoncnn.newton.NewtonCG` or :class:`~newtoncnn.sgd.SGD`) — in a
``ClassifierMixin, BaseEstimator``: scikit-learn provides the parameter
protocol, the input checks (``validate_data``), the exceptions and ``score``;
this module adds what is specific to a CNN: images of any shape (and 2-d
tables read as images), the network's construction, the defaults that fit
any data set (:mod:`newtoncnn.scaling`, :mod:`newtoncnn.regularization`),
``MLPClassifier``'s stopping rule (:mod:`newtoncnn.stopping`) and
:meth:`CNNClassifier.save` / :meth:`CNNClassifier.load`
(``newtoncnn._model_file``).
"""
import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from newtoncnn._model_file import load_model, save_model
from newtoncnn._optim_common import Status
from newtoncnn.image_input import to_float, validate_images
from newtoncnn.layers import check_layer_list
from newtoncnn.losses import SoftmaxLoss
from newtoncnn.network import CNN
from newtoncnn.newton import NewtonCG
from newtoncnn.objective import CNNObjective
from newtoncnn.presets import default_layers, resolve_layers
from newtoncnn.regularization import resolve_C
from newtoncnn.scaling import check_normalize, fit_scaling
from newtoncnn.sgd import SGD
from newtoncnn.stopping import check_stopping_params, held_out_split, stopping_rule, warm_state
from newtoncnn.threads import blas_single_threaded, num_threads
from newtoncnn.validation import (LOSSES, SOLVERS, check_int, check_option, check_random_state,
                                  resolve_dtype)

__all__ = ["CNNClassifier", "NotFittedError", "ConvergenceWarning", "DataConversionWarning",
           "default_layers"]



def _has_softmax(est):
    if est.loss != "softmax":
        raise AttributeError(
            f"{type(est).__name__} has probabilities only with loss='softmax' "
            f"(this one has loss={est.loss!r}); use decision_function instead")
    return True


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
    C : "auto" or float > 0, default "auto"
        Regularization: the objective is θᵀθ / (2 C l) + mean loss over the
        l training instances. ``"auto"``: ``C = 600 / l``
        (:func:`~newtoncnn.regularization.auto_C`), which keeps the weight
        1 / (C l) of simpleNN's ``C = 0.01`` on 60,000 instances at any l
        (0.45 on scikit-learn's 1,347 digits); the value used is ``C_``.
        ``C=0.01`` is simpleNN's setting.
    dtype : {"float32", "float64"}, default "float32"
        Precision of the network and the optimization.
    batch_size : int >= 1, default 1000
        Instances per forward/backward pass (bounds memory; no effect on results).
    max_iter : int >= 0, default 100
        Newton iterations (solver="newton"), at most; the stopping rule
        (``tol``, ``n_iter_no_change``) may end the fit sooner.
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
    normalize : {"auto", "pixels", "standardize", "range"} or bool, default "auto"
        Input scaling, fitted on the training X and applied by ``predict``
        (:mod:`newtoncnn.scaling`; always ``X / scale - mean training image``).
        ``"auto"`` (or True): uint8 images are divided by 255 (simpleNN's rule,
        ``"pixels"``); any other data are centered and divided by the root
        mean square of the centered training data (``"standardize"``), so
        floats in [0, 1], values in [0, 16] and standardized features give
        the same network inputs — the range (``"range"``) does the same for a
        change of unit but not for standardized features, where a few extreme
        pixels set it (standardized digits: 96.7 % against 94.7 % after 40
        iterations). False: X is used as it is.
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
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data (stratified) and
        stop when its accuracy has not improved by more than ``tol`` for
        ``n_iter_no_change`` iterations; the parameters of the best accuracy
        are kept (as ``MLPClassifier``).
    validation_fraction : float in (0, 1), default 0.1
        The held-out part with ``early_stopping``.
    n_iter_no_change : int >= 1, default 10
        Iterations without an improvement of more than ``tol`` before the fit
        stops: of the validation accuracy with ``early_stopping``, else of the
        training objective f. A Newton iteration whose line search fails
        leaves f unchanged, so a fit that cannot make progress stops after
        this many iterations at the latest.
    tol : float >= 0, default 1e-4
        The improvement that counts (of f, or of the validation accuracy).
    warm_start : bool, default False
        True: a new ``fit`` on data of the same classes and image shape starts
        from the current ``theta_`` (and keeps the fitted scaling) instead of
        a new initialization; ``loss_curve_``, ``validation_scores_`` and
        ``n_iter_`` continue.

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
        The labels, ``np.unique(y)``; any integers or strings.
    n_classes_ : int
    network_ : CNN
    theta_ : ndarray of shape (n_params,)
        The trained parameters (flat θ). ``coef_`` is the same array.
    normalizer_ : Normalizer or None
        The fitted input scaling (None when ``normalize=False``).
    scaling_ : str or None
        Its rule: ``"pixels"``, ``"standardize"`` or ``"range"``.
    C_ : float
        The regularization constant used (``C``, or ``"auto"``'s value).
    input_shape_ : tuple (C, H, W)
        The image shape the network reads.
    n_features_in_ : int
        C * H * W.
    n_iter_ : int
        Iterations (Newton) or epochs (SGD) run (over all fits with ``warm_start``).
    loss_curve_ : list of float
        The training objective f after every iteration (the regularized
        mean loss; sampled with ``preset="fast"``).
    validation_scores_ : list of float or None
        Accuracy on the held-out part after every iteration
        (``early_stopping=True``; None otherwise).
    best_loss_ : float or None
        The smallest f (None with ``early_stopping``).
    best_validation_score_ : float or None
        The best held-out accuracy (``early_stopping=True``; None otherwise).
    history_ : list of dict
        One row per iteration from the optimizer (``f``, ``grad_norm``,
        ``alpha``, ``ratio``, ``damping``, ``cg_iters``, ``seconds``, ... and
        ``val_accuracy`` with ``validation_data``).
    result_ : scipy.optimize.OptimizeResult
        The optimizer's result (``status``, ``message``, ...).

    Notes
    -----
    X may be images ``(n, C, H, W)`` or ``(n, H, W)``, or a 2-d ``(n, d)``
    array, read as ``(n, 1, s, s)`` images when ``d = s²`` and as one-row
    images otherwise (:mod:`newtoncnn.image_input`). Parameters are checked at
    ``fit``; errors and warnings are scikit-learn's (``NotFittedError``,
    ``ConvergenceWarning``, ``DataConversionWarning``, also importable from
    this module). For two classes ``decision_function`` is ``(n,)``, positive
    for ``classes_[1]``. Ctrl-C during ``fit`` keeps the best parameters so
    far, with a warning.

    Examples
    --------
    scikit-learn's 8x8 digits (values 0-16; 100 Newton iterations, 18 s of CPU time on
    one core):

    >>> from sklearn.datasets import load_digits
    >>> from sklearn.model_selection import train_test_split
    >>> X, y = load_digits(return_X_y=True)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    >>> clf = CNNClassifier(random_state=0).fit(X_train, y_train)  # doctest: +SKIP
    >>> clf.score(X_test, y_test)  # doctest: +SKIP
    0.98...
    """

    def __init__(self, layers=None, solver="newton", loss="squared", C="auto", dtype="float32",
                 batch_size=1000, max_iter=100, subsample=None, cg_tol=None, cg_max_iter=None,
                 damping=1.0, gn_mode="auto", lr=0.01, momentum=0.9, sgd_batch_size=128,
                 epochs=10, normalize="auto", random_state=None, verbose=0, n_threads=None,
                 max_time=None, checkpoint=None, checkpoint_every=1, preset="simplenn",
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, tol=1e-4,
                 warm_start=False):
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
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start

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
        resolve_C(self.C, 1)
        check_int("batch_size", self.batch_size, low=1)
        check_int("sgd_batch_size", self.sgd_batch_size, low=1)
        check_normalize(self.normalize)
        check_stopping_params(self.early_stopping, self.validation_fraction,
                              self.n_iter_no_change, self.tol, self.warm_start)
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
            layers = resolve_layers(spec(n_classes) if callable(spec) else spec, n_classes)
        return CNN(input_shape, layers, loss=check_option("loss", self.loss, LOSSES),
                   dtype=resolve_dtype(self.dtype))

    # ------------------------------------------------------------------ data checks
    def _validate_data(self, X, y="no_validation", reset=False, name="X"):
        """X as (n, C, H, W) numeric images (not yet scaled), and y as checked labels."""
        return validate_images(self, X, y, reset, name)

    def _prepare(self, X, name="X"):
        """Normalized float images for the network from raw input X."""
        X = self._validate_data(X, name=name)
        return to_float(X, self.normalizer_, self.network_.dtype)

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
            order) and the same parameters, ``random_state`` an int; the classes, the
            input scaling (any ``normalize`` rule: its statistics over all shards) and
            ``C="auto"`` (600 / the total l) come from all shards. ``checkpoint`` is
            written by the processes that set it (give it on one). ``warm_start``
            works as without ``comm``. Refused (``ValueError``): ``max_time`` (the
            processes' clocks would not agree on when to stop) and
            ``early_stopping=True`` (each process would hold out a different part).

        Returns
        -------
        self
        """
        dtype, optimizer = self._validate_params()
        if resume is not None and self.solver != "newton":
            raise ValueError("resume is supported by solver='newton' only, got "
                             f"solver={self.solver!r}")
        warm = self.warm_start and hasattr(self, "theta_")
        if warm and resume is not None:
            raise ValueError("resume and warm_start=True both say where to start; use one")
        if not warm:
            for attr in ("theta_", "network_", "normalizer_", "classes_", "history_",
                         "result_"):
                self.__dict__.pop(attr, None)
        X, y = self._validate_data(X, y, reset=not warm)
        if comm is None:
            classes, y_idx = np.unique(y, return_inverse=True)
        else:
            from newtoncnn import distributed
            distributed.check_estimator(self, comm)  # refuses early_stopping, max_time
            distributed.agree(comm, "warm start (a fitted estimator)", warm)
            classes, y_idx = distributed.global_classes(y, comm)
        if classes.size < 2:
            raise ValueError(f"y has only 1 class ({classes[0]!r}); a classifier needs at "
                             "least 2 classes.")
        previous = warm_state(self, classes) if warm else None  # classes of all shards
        y_idx = y_idx.reshape(-1)
        random_state = optimizer.random_state  # same int/Generator for init and optimizer
        X_es = y_es = None
        if self.early_stopping:
            X, X_es, y_idx, y_es = held_out_split(X, y_idx, self.validation_fraction,
                                                  random_state)
        if warm:
            network, normalizer = self.network_, self.normalizer_
        else:
            input_shape = tuple(X.shape[1:])
            network = self.network_for(input_shape, classes.size)
            normalizer, self.scaling_ = (  # with comm: fitted to all shards
                fit_scaling(X, self.normalize, dtype.name) if comm is None else
                distributed.fit_scaling(X, self.normalize, dtype.name, comm))
            # Fitted attributes needed by _prepare / the validation hook.
            self.classes_ = classes
            self.n_classes_ = int(classes.size)
            self.input_shape_ = input_shape
            self.network_ = network
            self.normalizer_ = normalizer
        self.C_ = resolve_C(self.C, len(X) if comm is None else comm.allreduce(len(X)))
        Xn = to_float(X, normalizer, network.dtype)
        objective = (CNNObjective(network, Xn, y_idx, C=self.C_, batch_size=self.batch_size)
                     if comm is None else
                     distributed.DistributedObjective(network, Xn, y_idx, comm=comm, C=self.C_,
                                                      batch_size=self.batch_size))
        if validation_data is not None:
            optimizer.validation = self._validation_hook(validation_data)
        monitor = stopping_rule(self, X_es, y_es, previous)

        # BLAS on one thread for the whole run, not only inside the passes: between
        # them the optimizer's vector work gains nothing from BLAS threads, whose idle
        # spinning then slows the next pass's OpenMP team (2x on digits with 2 threads)
        with num_threads(self.n_threads), blas_single_threaded():
            theta0 = (self.theta_.astype(network.dtype) if warm
                      else network.init_params(random_state))
            if resume is None:
                result = optimizer.minimize(objective, theta0, callback=monitor)
            else:
                result = optimizer.minimize(objective, theta0, callback=monitor,
                                            resume=resume)
        optimizer.validation = None  # do not keep the data alive through result_
        self._set_fitted(result, monitor)
        return self

    def _set_fitted(self, result, monitor):
        """The fitted attributes from the optimizer's result and the stopping rule's curves."""
        self.theta_ = result.x
        if monitor.best_x is not None and result.status != Status.INTERRUPTED:
            self.theta_ = monitor.best_x.astype(result.x.dtype)  # the best held-out accuracy
        self.history_ = result.history
        self.result_ = result
        for name, value in monitor.fitted_attributes(result.nit).items():
            setattr(self, name, value)
        if monitor.stopped:
            result.message = monitor.message()
        if result.status == Status.INTERRUPTED:
            warnings.warn("Training interrupted by the user (KeyboardInterrupt); the "
                          "estimator keeps the best parameters found so far.", UserWarning,
                          stacklevel=3)
        elif not result.success or monitor.stalled:
            why = (f"the line search failed in the last {self.n_iter_no_change} iterations "
                   "(no step decreased f)." if monitor.stalled else result.message)
            warnings.warn(f"{type(self).__name__}: the optimizer stopped early: {why} "
                          "The estimator keeps the best parameters found.",
                          ConvergenceWarning, stacklevel=3)

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
