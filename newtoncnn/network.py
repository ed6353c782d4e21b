"""The CNN model: geometry, parameters, weights in PyTorch's layout, forward."""
import numpy as np

from newtoncnn import _kernels
from newtoncnn.layers import ConvGeometry, resolve
from newtoncnn.params import ParamLayout
from newtoncnn import passes
from newtoncnn.validation import (LOSSES, check_images, check_int, check_option,
                                  check_random_state, check_theta, resolve_dtype)

__all__ = ["CNN"]


def _non_finite_message(dtype, what):
    """The error for non-finite activations: their likely cause and what to do.

    Parameters
    ----------
    dtype : dtype
        The network's dtype.
    what : str
        What is not finite (``"outputs"``, ...).
    """
    hint = ("use dtype='float64' or inputs of a smaller scale" if np.dtype(dtype) == np.float32
            else "use inputs of a smaller scale (or smaller weights)")
    return (f"the network's {what} are not finite (NaN or infinity): an activation "
            f"overflowed the range of {np.dtype(dtype).name}; {hint}")

class CNN:
    """A convolutional network: Conv (+ ReLU) [+ MaxPool] layers, then Dense layers.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one image (NCHW input, like PyTorch).
    layers : list of Conv, MaxPool, Dense
        The last layer is Dense; its ``units`` are the K outputs.
    loss : {"squared", "softmax"}, default "squared"
        ``"squared"``: ξ = ‖z − y‖² with one-hot y (simpleNN); ``"softmax"``:
        cross-entropy of softmax(z).
    dtype : {"float32", "float64"}, default "float32"

    Attributes
    ----------
    geometry : list of ConvGeometry / DenseGeometry
    n_params : int
    n_classes : int
    """

    def __init__(self, input_shape, layers, loss="squared", dtype="float32"):
        check_option("loss", loss, LOSSES)
        self.input_shape = tuple(input_shape) if np.iterable(input_shape) else input_shape
        if isinstance(layers, (str, bytes, dict)) or not np.iterable(layers):
            raise TypeError(f"layers must be a list of Conv/MaxPool/Dense layers, got "
                            f"{type(layers).__name__}")
        self.layers = list(layers)
        self.geometry = resolve(self.input_shape, self.layers)
        self.input_shape = tuple(int(v) for v in self.input_shape)
        self.loss = loss
        self.dtype = resolve_dtype(dtype)
        self.layout = ParamLayout(self.geometry)
        self.n_conv = sum(isinstance(g, ConvGeometry) for g in self.geometry)
        self._index_maps = {}
        self.workspace = _kernels.Workspace()

    def __repr__(self):
        inner = ", ".join(repr(layer) for layer in self.layers)
        return (f"CNN(input_shape={self.input_shape}, layers=[{inner}], "
                f"loss={self.loss!r}, dtype={self.dtype.name!r})")

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_index_maps"], state["workspace"]   # caches, rebuilt on demand
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._index_maps = {}
        self.workspace = _kernels.Workspace()

    @property
    def n_params(self):
        """Number of parameters (the length of θ)."""
        return self.layout.size

    @property
    def n_classes(self):
        """K, the number of outputs."""
        return self.geometry[-1].out_features

    def im2col_index(self, m):
        """The (taps, P) index map P_φ of conv layer m (P: the used plane), computed once.

        Parameters
        ----------
        m : int
            Conv layer index, 0-based.
        """
        idx = self._index_maps.get(m)
        if idx is None:
            g = self.geometry[m]
            idx = _kernels.im2col_index(g.kernel, g.kernel, g.stride, g.padded_h, g.padded_w,
                                        pool=g.pool)
            self._index_maps[m] = idx
        return idx

    def init_params(self, random_state=None):
        """He initialization: W ~ N(0, 2 / fan_in), b = 0; returns a flat θ.

        Parameters
        ----------
        random_state : None, int or numpy.random.Generator
            Seeds the draw.
        """
        rng = check_random_state(random_state)
        theta = np.zeros(self.n_params, dtype=self.dtype)
        for m, g in enumerate(self.geometry):
            W = self.layout.weight_matrix(theta, m)
            W[...] = rng.standard_normal(W.shape) * np.sqrt(2.0 / g.fan_in)
        return theta

    def get_weights(self, theta):
        """Per-layer ``(W, b)`` copies in PyTorch's layout.

        Conv W is ``(out, in, kh, kw)`` (``Conv2d.weight``); dense W is
        ``(out, in)`` (``Linear.weight``), the first dense layer reading the
        feature map flattened in (channel, row, column) order (``Flatten``).

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ in the model's dtype.
        """
        theta = check_theta(theta, self.n_params, self.dtype)
        return [(self.layout.weight_matrix(theta, m).reshape(g.weight_shape).copy(),
                 self.layout.bias(theta, m).copy())
                for m, g in enumerate(self.geometry)]

    def set_weights(self, weights):
        """Inverse of :meth:`get_weights`: a list of ``(W, b)`` -> flat θ.

        Parameters
        ----------
        weights : list of (W, b)
            One pair per Conv and Dense layer, in :meth:`get_weights`'s layout.
        """
        weights = list(weights)
        if len(weights) != len(self.geometry):
            raise ValueError(f"weights must hold {len(self.geometry)} (W, b) pairs, "
                             f"got {len(weights)}")
        theta = np.empty(self.n_params, dtype=self.dtype)
        for m, (g, pair) in enumerate(zip(self.geometry, weights)):
            W, b = (np.asarray(a) for a in pair)
            if W.shape != g.weight_shape or b.shape != (g.weight_shape[0],):
                raise ValueError(f"weights[{m}] must be W {g.weight_shape} and b "
                                 f"({g.weight_shape[0]},), got {W.shape} and {b.shape}")
            self.layout.weight_matrix(theta, m)[...] = W.reshape(g.weight_shape[0], -1)
            self.layout.bias(theta, m)[...] = b
        if not np.isfinite(theta).all():
            raise ValueError("weights contain NaN or infinity")
        return theta

    def forward(self, theta, X, batch_size=1000):
        """The outputs z^{L+1} of every instance: ``(n, K)``.

        Parameters
        ----------
        theta : ndarray (n_params,)
        X : ndarray (n, C, H, W), or (n, H, W) for one channel
        batch_size : int, default 1000
            Instances per pass; memory is bounded by the batch.
        """
        theta = check_theta(theta, self.n_params, self.dtype)
        X = check_images(X, self.input_shape, self.dtype)
        out = np.empty((X.shape[0], self.n_classes), dtype=self.dtype)
        for batch in self.batches(X.shape[0], batch_size):
            out[batch] = passes.forward(self, theta, X[batch], keep=False).out
        if not np.isfinite(out).all():   # the kernels never mask a NaN: it reaches here
            raise ValueError(_non_finite_message(self.dtype, "outputs"))
        return out

    def batches(self, n, batch_size):
        """Slices of ``range(n)`` of at most ``batch_size`` instances (capped so
        that no im2col matrix exceeds the 2**31 columns BLAS can index).

        Parameters
        ----------
        n : int
            Number of instances.
        batch_size : int
            Largest batch wanted.
        """
        size = min(check_int("batch_size", batch_size, low=1), self.max_batch)
        return [slice(start, min(start + size, n)) for start in range(0, n, size)]

    @property
    def max_batch(self):
        """The largest batch whose im2col and feature maps BLAS and the kernels can index."""
        widest = max([g.conv_h * g.conv_w for g in self.geometry if isinstance(g, ConvGeometry)]
                     + [1])
        return max(1, (2**31 - 1) // widest)

    def predict(self, theta, X, batch_size=1000):
        """Class indices 0..K−1 of the largest output.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ in the model's dtype.
        X : array_like, shape (n, C, H, W) or (n, H, W)
            Images, normalized as for training.
        batch_size : int, default 1000
            Instances per forward pass.
        """
        return np.argmax(self.forward(theta, X, batch_size), axis=1)

    def forward_flops(self, n):
        """Floating-point operations of the forward GEMMs for n instances.

        Parameters
        ----------
        n : int
            Number of instances.
        """
        return sum(g.flops(n) for g in self.geometry)

