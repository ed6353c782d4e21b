"""Argument checks shared by the public API: each error names the argument."""
import numbers

import numpy as np

__all__ = ["resolve_dtype", "check_images", "check_theta", "check_labels",
           "check_random_state", "check_batch_size", "check_vector"]

DTYPES = ("float32", "float64")


def resolve_dtype(dtype):
    """np.dtype of "float32"/"float64" (or those numpy types); anything else is an error."""
    if dtype is None:   # np.dtype(None) would quietly mean float64
        raise TypeError(f"dtype must be one of {DTYPES}, got None")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dt.name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    return dt


def _numeric_array(X, name):
    X = np.asarray(X)
    if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {X.dtype}")
    if np.iscomplexobj(X):
        raise TypeError(f"{name} must be real, got dtype {X.dtype}")
    return X


def check_images(X, input_shape, dtype, name="X"):
    """X as a C-contiguous (n, C, H, W) array of ``dtype``; (n, H, W) means one channel."""
    X = _numeric_array(X, name)
    C, H, W = input_shape
    if X.ndim == 3 and C == 1:
        X = X[:, None, :, :]
    if X.ndim != 4 or X.shape[1:] != (C, H, W):
        expected = f"(n, {C}, {H}, {W})" + (f" or (n, {H}, {W})" if C == 1 else "")
        raise ValueError(f"{name} must have shape {expected} for input_shape "
                         f"{tuple(input_shape)}, got {X.shape}")
    X = np.ascontiguousarray(X, dtype=dtype)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return X


def check_vector(v, size, dtype, name):
    """v as a finite 1-d array of length ``size`` and ``dtype``."""
    v = _numeric_array(v, name)
    if v.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {v.shape}")
    v = np.ascontiguousarray(v, dtype=dtype)
    if not np.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return v


def check_theta(theta, n_params, dtype):
    """θ as a finite 1-d array of length n_params and the model's dtype."""
    return check_vector(theta, n_params, dtype, "theta")


def check_labels(y, n, n_classes, name="y"):
    """Class indices 0..K−1 as an int64 array of length n."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"{name} must be a 1-d array of {n} class indices, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise TypeError(f"{name} must hold integer class indices 0..{n_classes - 1}, "
                            f"got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} must hold class indices in 0..{n_classes - 1}, "
                         f"got values in {y.min()}..{y.max()}")
    return y


def check_random_state(random_state):
    """A np.random.Generator from None, an int seed or a Generator."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or (isinstance(random_state, numbers.Integral)
                                and not isinstance(random_state, bool)):
        return np.random.default_rng(random_state)
    raise TypeError(f"random_state must be None, an int or a numpy Generator, got {random_state!r}")


def check_batch_size(batch_size, name="batch_size"):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"{name} must be >= 1, got {batch_size}")
    return int(batch_size)
