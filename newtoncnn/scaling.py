"""Input scaling chosen from the training data: which rule, and the scale it gives.

Every rule is a :class:`~newtoncnn.normalizer.Normalizer`, ``X / scale - mean``
with ``mean`` the mean training image of ``X / scale``; the rules differ only in
``scale``:

``"pixels"``
    simpleNN's rule, ``scale = 255``: the pixels of 8-bit images.
``"standardize"``
    ``scale`` = the root mean square of the centered training data divided by
    ``TARGET_RMS = 0.3`` (one number for all pixels, so the contrast between
    pixels is kept): the inputs have mean 0 and root mean square 0.3 whatever
    unit the data come in — the size simpleNN's rule gives 8-bit images
    (0.296 on Fashion-MNIST), so the network's initialization and the
    regularization default (:mod:`newtoncnn.regularization`) meet inputs of one
    size on either path. (Unit root mean square learned more slowly: on
    scikit-learn's digits with ``C = 1``, 66.7 % test accuracy after 10 Newton
    iterations against 96.4 % at 0.3.)
``"range"``
    ``scale = max(X) - min(X)`` over the training data.
``"auto"``
    ``"pixels"`` for uint8 images, ``"standardize"`` for any other dtype.

Why ``"standardize"`` for non-8-bit data: both data rules are invariant to a
change of unit (floats in [0, 1], pixel values in [0, 16] or [0, 255] as
floats give the same inputs up to rounding), but the range is set by the most
extreme pixel, so data already standardized per feature (scikit-learn's
``StandardScaler``: rare pixels reach ±30) became inputs of size ~0.03 and the
regularized network learned little; the root mean square is not driven by a
few pixels. The measurements are in the user guide ("Input scaling and the
regularization default").
"""
import numpy as np

from newtoncnn.normalizer import Normalizer

__all__ = ["SCALING_RULES", "TARGET_RMS", "check_normalize", "scaling_rule", "data_scale",
           "sum_sq_about", "usable_scale", "fit_scaling"]

#: The values of ``CNNClassifier(normalize=...)`` other than True/False.
SCALING_RULES = ("auto", "pixels", "standardize", "range")

#: Root mean square of the inputs under ``"standardize"``.
TARGET_RMS = 0.3

_CHUNK = 4096  # rows per pass of the float64 sums (bounds the temporary memory)


def check_normalize(normalize):
    """Check the estimator's ``normalize`` (TypeError/ValueError naming it).

    Parameters
    ----------
    normalize : object
        Must be a bool or one of :data:`SCALING_RULES`.
    """
    if isinstance(normalize, str):
        if normalize not in SCALING_RULES:
            raise ValueError(f"normalize must be one of {SCALING_RULES} (or True/False), "
                             f"got {normalize!r}")
    elif not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"normalize must be True, False or one of {SCALING_RULES}, got "
                        f"{normalize!r}")
    return normalize


def scaling_rule(normalize, X):
    """The rule ``normalize`` selects for training images ``X`` (None: no scaling).

    Parameters
    ----------
    normalize : bool or {"auto", "pixels", "standardize", "range"}
        True means ``"auto"``; False and None mean no scaling.
    X : ndarray
        The training images (only the dtype is read).

    Returns
    -------
    str or None
        ``"pixels"``, ``"standardize"``, ``"range"`` or None.
    """
    if normalize is None:
        return None
    normalize = check_normalize(normalize)
    if isinstance(normalize, str) and normalize != "auto":
        return normalize
    if not normalize:
        return None
    return "pixels" if np.asarray(X).dtype == np.uint8 else "standardize"


def sum_sq_about(X, mean):
    """sum((X - mean)²) over every row and pixel of ``X``, in float64, in chunks of rows.

    Parameters
    ----------
    X : ndarray of shape (n, ...)
        Images.
    mean : ndarray of float64, shape (prod(X.shape[1:]),)
        The (flattened) image to subtract from every row.

    Returns
    -------
    float
    """
    flat = X.reshape(len(X), -1)
    total = 0.0
    for start in range(0, len(flat), _CHUNK):
        block = flat[start:start + _CHUNK].astype(np.float64) - mean
        total += float(np.einsum("ij,ij->", block, block))
    return total


def usable_scale(scale):
    """``scale``, or 1.0 when it is not a positive finite number above 1e-30 (constant
    or denormal-sized data: nothing to scale, keep the unit).

    Parameters
    ----------
    scale : float
        A scale computed from the data.
    """
    return scale if np.isfinite(scale) and scale > 1e-30 else 1.0


def _rms_about_mean(X):
    """sqrt(mean((X - mean image)²)) in float64."""
    flat = X.reshape(len(X), -1)
    return (sum_sq_about(flat, np.mean(flat, axis=0, dtype=np.float64)) / flat.size) ** 0.5


def data_scale(X, rule):
    """The ``scale`` of ``rule`` for training images ``X`` (1.0 for constant data).

    Parameters
    ----------
    X : ndarray of shape (n, ...)
        Training images (numeric, finite).
    rule : {"pixels", "standardize", "range"}
        See the module docstring.

    Returns
    -------
    float
        A positive finite number.
    """
    if rule == "pixels":
        return 255.0
    if rule == "range":
        scale = float(np.max(X)) - float(np.min(X))
    elif rule == "standardize":
        scale = _rms_about_mean(np.asarray(X)) / TARGET_RMS
    else:
        raise ValueError(f"rule must be 'pixels', 'standardize' or 'range', got {rule!r}")
    return usable_scale(scale)


def fit_scaling(X, normalize, dtype="float32"):
    """Fit the scaling ``normalize`` selects on training images ``X``.

    Parameters
    ----------
    X : ndarray of shape (n, ...)
        Training images.
    normalize : bool or {"auto", "pixels", "standardize", "range"}
        As for :func:`scaling_rule`.
    dtype : str or numpy dtype, default "float32"
        The floating dtype the Normalizer produces.

    Returns
    -------
    normalizer : Normalizer or None
        Fitted (None when there is no scaling).
    rule : str or None
        The rule used.
    """
    rule = scaling_rule(normalize, X)
    if rule is None:
        return None, None
    return Normalizer(scale=data_scale(X, rule), dtype=dtype).fit(X), rule
