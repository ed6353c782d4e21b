"""How the estimator reads X: images of any layout, and 2-d tables read as images.

X may be ``(n, C, H, W)`` or ``(n, H, W)`` images, or a 2-d ``(n, d)`` array:
``(n, 1, s, s)`` images when ``d = s²``, one-row images ``(n, 1, 1, d)``
otherwise. Boolean X becomes 0/1 floats (so ``"auto"`` scaling treats it as
data, not as 8-bit pixels).
"""
import math

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

__all__ = ["image_shape_of", "to_float", "validate_images"]


def image_shape_of(shape):
    """(C, H, W) that a fresh X of ``shape`` (n, ...) is read as.

    Parameters
    ----------
    shape : tuple of int
        The shape of X.
    """
    if len(shape) == 4:
        return tuple(int(v) for v in shape[1:])
    if len(shape) == 3:
        return (1, int(shape[1]), int(shape[2]))
    d = int(shape[1])
    s = math.isqrt(d)
    return (1, s, s) if s * s == d else (1, 1, d)


def to_float(X, normalizer, dtype):
    """X scaled by ``normalizer`` (or just converted) as a C-contiguous float array.

    Parameters
    ----------
    X : ndarray
        Images.
    normalizer : Normalizer or None
        The fitted scaling.
    dtype : numpy dtype
        The floating dtype of the result.
    """
    if normalizer is not None:
        return normalizer.transform(X, dtype=dtype)
    return np.ascontiguousarray(X, dtype=dtype)


def validate_images(est, X, y="no_validation", reset=False, name="X"):
    """X as (n, C, H, W) numeric images (not yet scaled), and y as checked labels.

    scikit-learn's ``validate_data`` checks X read as a table of ``C·H·W``
    features (and y) and sets ``n_features_in_`` when ``reset``; image shapes
    are checked here first, against ``est.input_shape_`` when not ``reset``.

    Parameters
    ----------
    est : CNNClassifier
        The estimator (``validate_data`` reads and sets its attributes).
    X : array_like
        Images ``(n, C, H, W)`` or ``(n, H, W)``, or a 2-d ``(n, d)`` table.
    y : array_like or "no_validation"
        The labels, or no labels.
    reset : bool
        True at ``fit`` (the shape is learned), False after.
    name : str
        The argument's name in messages.
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
    if images and not reset and image_shape_of(shape) != est.input_shape_:
        c, h, w = est.input_shape_
        hint = f" or (n, {h}, {w})" if c == 1 else ""
        raise ValueError(
            f"{name} has images of shape {image_shape_of(shape)}, but "
            f"{type(est).__name__} was fitted on images of shape {est.input_shape_}: "
            f"pass (n, {c}, {h}, {w}){hint} or (n, {c * h * w}).")
    if images:
        X = np.asarray(X).reshape(shape[0], math.prod(shape[1:]))
    no_y = isinstance(y, str) and y == "no_validation"
    if no_y:
        X = validate_data(est, X, reset=reset, dtype="numeric")
    else:
        X, y = validate_data(est, X, y, reset=reset, dtype="numeric")
        check_classification_targets(y)
    if X.dtype.kind == "b":  # 0/1, not pixels: scaled as any non-uint8 data
        X = X.astype(np.float32)
    image_shape = image_shape_of(shape if images else X.shape) if reset else \
        est.input_shape_
    X = X.reshape((X.shape[0],) + image_shape)
    return X if no_y else (X, y)
