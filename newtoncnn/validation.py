"""Argument checks shared by the whole package: each error names the argument.

The one home of the option names (:data:`LOSSES`, :data:`GN_MODES`,
:data:`SOLVERS`, :data:`DTYPES`), of the integer and real-number checks, of
the rule for ``random_state`` and of the array checks of the model layer.
"""
import math
import numbers
import os

import numpy as np

__all__ = ["LOSSES", "GN_MODES", "SOLVERS", "DTYPES", "INT_MAX", "check_int", "check_real",
           "check_regularization", "check_option", "check_random_state", "check_verbose",
           "check_max_time", "check_optional_callable", "check_optional_path",
           "resolve_dtype", "check_images", "check_theta", "check_subset", "check_labels", "check_vector"]

#: Losses of the network (``loss=``).
LOSSES = ("squared", "softmax")
#: How Gauss-Newton products are computed (``gn_mode=`` / ``mode=``).
GN_MODES = ("auto", "jacobian", "rop")
#: Optimizers of the estimator and the command line (``solver=``).
SOLVERS = ("newton", "sgd")
#: Floating-point precisions of the network (``dtype=``).
DTYPES = ("float32", "float64")
#: The largest integer argument: every count and size may reach C code as a C ``int``.
INT_MAX = 2**31 - 1


# ---------------------------------------------------------------- scalars
def check_int(name, value, low=None, high=INT_MAX):
    """``value`` as an int after checking its type and bounds (inclusive).

    bool (numpy's too) is not an integer here: ``True`` as a size is a mistake.
    Every integer argument of the package is a count or size that may reach the C
    kernels as a C ``int``, so none may exceed :data:`INT_MAX` (a ValueError, never
    the ``OverflowError`` of a later conversion).

    Parameters
    ----------
    name : str
        The argument's name, used in error messages.
    value : object
        The value to check.
    low : int, optional
        Smallest allowed value.
    high : int, default INT_MAX
        Largest allowed value.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_real(name, value, low=None, high=None, low_open=False, high_open=False):
    """``value`` as a finite float after checking its type and bounds.

    Parameters
    ----------
    name : str
        The argument's name, used in error messages.
    value : object
        The value to check.
    low : float, optional
        Lower bound.
    high : float, optional
        Upper bound.
    low_open : bool, default False
        Exclude ``low`` itself.
    high_open : bool, default False
        Exclude ``high`` itself.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    try:
        value = float(value)
    except OverflowError:   # an int beyond float's range
        raise ValueError(f"{name} must be finite, got a value beyond float's range") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def check_regularization(C):
    """The regularization constant ``C`` as a float > 0 (any bad value is a ValueError).

    Parameters
    ----------
    C : float
        The regularization constant.
    """
    try:
        return check_real("C", C, low=0.0, low_open=True)
    except (TypeError, ValueError):
        raise ValueError(f"C must be a positive finite number, got {C!r}") from None


def check_option(name, value, options):
    """``value`` if it is one of the strings ``options`` (None is a ValueError: no choice;
    any other non-string a TypeError).

    Parameters
    ----------
    name : str
        The argument's name, used in error messages.
    value : object
        The value to check.
    options : tuple of str
        The allowed values.
    """
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be one of {options}, got {value!r} "
                        f"({type(value).__name__})")
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def check_bool(name, value):
    """``value`` as a bool if it is a Python or NumPy bool (anything else is a TypeError
    naming the argument ``name``: ``0`` or ``"yes"`` would hide a mistake)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_random_state(random_state):
    """A ``numpy.random.Generator`` from ``random_state``.

    None (fresh entropy), an int >= 0, a SeedSequence or BitGenerator
    (``numpy.random.default_rng`` of it), or a Generator, used as it is (and
    consumed), like scikit-learn does.

    Parameters
    ----------
    random_state : None, int, SeedSequence, BitGenerator or Generator
        The seed or generator.
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (np.random.SeedSequence,
                                                         np.random.BitGenerator)):
        return np.random.default_rng(random_state)
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state,
                                                                    numbers.Integral):
        raise TypeError("random_state must be None, a non-negative int or a "
                        f"numpy.random.Generator, got {type(random_state).__name__}")
    if random_state < 0:
        raise ValueError(f"random_state must be non-negative, got {random_state}")
    return np.random.default_rng(int(random_state))


def check_verbose(value):
    """``verbose``: a non-negative int (bools accepted).

    Parameters
    ----------
    value : object
        The value to check.
    """
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    return check_int("verbose", value, low=0)


def check_max_time(value):
    """``max_time``: None or a positive number of seconds.

    Parameters
    ----------
    value : object
        The value to check.
    """
    if value is None:
        return None
    return check_real("max_time", value, low=0.0, low_open=True)


def check_optional_callable(name, value):
    """``value`` if it is None or callable.

    Parameters
    ----------
    name : str
        The argument's name, used in error messages.
    value : object
        The value to check.
    """
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be None or a callable, got {type(value).__name__}")
    return value


def check_optional_path(name, value):
    """``value``: None, a str or an os.PathLike (returned unchanged).

    Parameters
    ----------
    name : str
        The argument's name, used in error messages.
    value : object
        The value to check.
    """
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be None or a file path (str or os.PathLike), "
                        f"got {type(value).__name__}")
    if isinstance(value, str) and not value:
        raise ValueError(f"{name} must not be an empty string")
    return value


# ---------------------------------------------------------------- arrays
def resolve_dtype(dtype):
    """np.dtype of "float32"/"float64" (or those numpy types); anything else is an error.

    Parameters
    ----------
    dtype : str or numpy type
        ``"float32"`` or ``"float64"``.
    """
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
    """X as a C-contiguous (n, C, H, W) array of ``dtype``; (n, H, W) means one channel.

    Parameters
    ----------
    X : array_like
        The images.
    input_shape : tuple of int
        ``(C, H, W)`` the network expects.
    dtype : dtype
        The dtype to convert to.
    name : str, default "X"
        The argument's name in error messages.
    """
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
    """v as a finite 1-d array of length ``size`` and ``dtype``.

    Parameters
    ----------
    v : array_like
        The vector.
    size : int
        Expected length.
    dtype : dtype
        dtype to convert to.
    name : str
        The argument's name, used in error messages.
    """
    v = _numeric_array(v, name)
    if v.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {v.shape}")
    v = np.ascontiguousarray(v, dtype=dtype)
    if not np.isfinite(v).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return v


def check_subset(subset, n_samples):
    """A non-empty 1-d integer array of instance indices in ``0..n_samples-1`` (None stays
    None: all instances).

    Parameters
    ----------
    subset : array_like of int or None
        The indices.
    n_samples : int
        Number of instances they index.
    """
    if subset is None:
        return None
    idx = np.asarray(subset)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError("subset must be a non-empty 1-d array of instance indices")
    if idx.min() < 0 or idx.max() >= n_samples:
        raise ValueError(f"subset indices must lie in 0..{n_samples - 1}")
    return idx


def check_theta(theta, n_params, dtype):
    """θ as a finite 1-d array of length n_params and the model's dtype.

    Parameters
    ----------
    theta : array_like
        The parameter vector.
    n_params : int
        Expected length.
    dtype : dtype
        The model's dtype.
    """
    return check_vector(theta, n_params, dtype, "theta")


def check_labels(y, n, n_classes, name="y"):
    """Class indices 0..K−1 as an int64 array of length n.

    Parameters
    ----------
    y : array_like
        The labels.
    n : int
        Expected length.
    n_classes : int
        K: labels must be in 0..K−1.
    name : str, default "y"
        The argument's name in error messages.
    """
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
