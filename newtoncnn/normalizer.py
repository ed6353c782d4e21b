"""simpleNN's input normalization: pixels divided by 255, minus the mean training image."""
import numbers

import numpy as np

__all__ = ["Normalizer"]


def _as_images(X, name, need_rows=True):
    """Validate an image batch ``(n, ...)`` and return it as an ndarray."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {X.dtype}")
    if X.ndim < 2:
        raise ValueError(f"{name} must have shape (n, ...) with at least 2 "
                         f"dimensions, got shape {X.shape}")
    if need_rows and len(X) == 0:
        raise ValueError(f"{name} has no instances (shape {X.shape})")
    if X.dtype.kind == "f" and not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return X


def _float_dtype(dtype, name="dtype"):
    """Return ``dtype`` as a floating numpy dtype or raise ValueError."""
    try:
        dtype = np.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"{name} must be a floating dtype, got {dtype!r}") from exc
    if dtype.kind != "f":
        raise ValueError(f"{name} must be a floating dtype, got {dtype}")
    return dtype


class Normalizer:
    """simpleNN's input normalization: ``X / scale - mean(X_train / scale)``.

    Parameters
    ----------
    scale : float, default 255.0
        Pixels are divided by ``scale`` first.
    dtype : str or numpy dtype, default "float32"
        Floating dtype returned by :meth:`transform`.

    Attributes
    ----------
    mean_ : ndarray of float64, shape ``X.shape[1:]``
        Mean training image of ``X_train / scale`` (per pixel and channel),
        set by :meth:`fit`.

    Examples
    --------
    >>> norm = Normalizer().fit(X_train)          # doctest: +SKIP
    >>> Z_train = norm.transform(X_train)         # doctest: +SKIP
    >>> Z_test = norm.transform(X_test)           # doctest: +SKIP
    """

    def __init__(self, scale=255.0, dtype="float32"):
        scale = float(scale)
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive finite number, got {scale}")
        self.scale = scale
        self.dtype = _float_dtype(dtype).name

    def fit(self, X):
        """Compute ``mean_`` from training images ``X`` of shape ``(n, ...)``.

        Parameters
        ----------
        X : array_like
            Training images, e.g. uint8 ``(n, C, H, W)``.

        Returns
        -------
        Normalizer
            ``self``.
        """
        X = _as_images(X, "X")
        self.mean_ = np.mean(X, axis=0, dtype=np.float64) / self.scale
        return self

    def transform(self, X, dtype=None):
        """Return ``X / scale - mean_`` as a new floating array.

        Parameters
        ----------
        X : array_like
            Images with ``X.shape[1:] == mean_.shape``.
        dtype : str or numpy dtype, optional
            Output dtype; default ``self.dtype``.

        Returns
        -------
        ndarray
            Normalized copy of ``X``.
        """
        if getattr(self, "mean_", None) is None:
            raise ValueError("This Normalizer is not fitted yet; call "
                             "fit(X_train) first")
        dtype = _float_dtype(self.dtype if dtype is None else dtype)
        X = _as_images(X, "X", need_rows=False)
        if X.shape[1:] != self.mean_.shape:
            raise ValueError(f"X has image shape {X.shape[1:]} but the "
                             f"Normalizer was fitted on {self.mean_.shape}")
        out = np.array(X, dtype=dtype)
        out /= dtype.type(self.scale)
        out -= self.mean_.astype(dtype)
        return out

    def fit_transform(self, X, dtype=None):
        """Fit on ``X`` and return ``transform(X, dtype)``.

        Parameters
        ----------
        X : array_like
            Images, as for :meth:`fit`.
        dtype : dtype, optional
            As for :meth:`transform`.
        """
        return self.fit(X).transform(X, dtype)

    def to_dict(self):
        """Return the state as a dict (``mean`` is None if not fitted)."""
        mean = getattr(self, "mean_", None)
        return {"scale": self.scale, "dtype": self.dtype,
                "mean": None if mean is None else mean.copy()}

    @classmethod
    def from_dict(cls, state):
        """Rebuild a Normalizer from :meth:`to_dict` output.

        Parameters
        ----------
        state : dict
            With keys ``scale``, ``dtype`` and ``mean`` (array-like or None).

        Returns
        -------
        Normalizer
        """
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict, got {type(state).__name__}")
        for key in ("scale", "dtype"):
            if key not in state:
                raise ValueError(f"state has no {key!r} entry")
        scale = state["scale"]
        if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
            raise ValueError(f"state['scale'] must be a positive number, got {scale!r}")
        norm = cls(scale=scale, dtype=state["dtype"])
        if state.get("mean") is not None:
            try:
                mean = np.asarray(state["mean"], dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError("state['mean'] must be an array of numbers") from None
            if mean.ndim < 1 or not np.all(np.isfinite(mean)):
                raise ValueError("state['mean'] must be a finite array with "
                                 f"at least 1 dimension, got shape {mean.shape}")
            norm.mean_ = mean
        return norm

    def __repr__(self):
        return f"Normalizer(scale={self.scale!r}, dtype={self.dtype!r})"
