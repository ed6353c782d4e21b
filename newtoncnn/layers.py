"""Layer specifications and the geometry they imply (user guide, "The objective and its
scaling": docs/guide/objective.rst).

``Conv``, ``MaxPool`` and ``Dense`` are what a user writes; :func:`resolve`
turns a list of them into per-layer geometry (``ConvGeometry``,
``DenseGeometry``) with every size checked, so that nothing downstream has
to re-validate a shape.
"""
import dataclasses
from dataclasses import dataclass

from newtoncnn.validation import INT_MAX, check_int

__all__ = ["Conv", "MaxPool", "Dense", "ConvGeometry", "DenseGeometry", "resolve",
           "check_layer_list", "layer_to_dict", "layer_from_dict"]


@dataclass(frozen=True)
class Conv:
    """A convolutional layer (cross-correlation, no kernel flip), followed by ReLU.

    Parameters
    ----------
    filters : int
        Number of output channels d_{m+1}.
    kernel_size : int
        Side h_m of the square filters.
    stride : int, default 1
        Stride s_m.
    padding : int, default 0
        Zero padding p_m on every side.
    """

    filters: int
    kernel_size: int
    stride: int = 1
    padding: int = 0

    def __post_init__(self):
        check_int("Conv filters", self.filters, low=1)
        check_int("Conv kernel_size", self.kernel_size, low=1)
        check_int("Conv stride", self.stride, low=1)
        check_int("Conv padding", self.padding, low=0)


@dataclass(frozen=True)
class MaxPool:
    """Max pooling with window = stride = ``pool_size`` after the preceding ``Conv``.

    Pixels that do not fill a whole window are dropped; ties go to the first
    maximum in the window (row-major order).

    Parameters
    ----------
    pool_size : int
        Window side and stride k.
    """

    pool_size: int

    def __post_init__(self):
        check_int("MaxPool pool_size", self.pool_size, low=1)


@dataclass(frozen=True)
class Dense:
    """A fully connected layer; ReLU follows unless it is the last layer.

    Parameters
    ----------
    units : int
        Output units (K for the last layer).
    """

    units: int

    def __post_init__(self):
        check_int("Dense units", self.units, low=1)


@dataclass(frozen=True)
class ConvGeometry:
    """Sizes of one conv layer m: input (in_c, in_h, in_w) -> S^m (out_c, conv_h, conv_w)
    -> Z^{m+1} (out_c, out_h, out_w) after ReLU and a pool of size ``pool`` (1: none).

    Parameters
    ----------
    in_c, in_h, in_w : int
        Channels, height and width of the layer's input.
    out_c : int
        Filters (output channels).
    kernel : int
        Kernel side h.
    stride : int
        Stride s.
    padding : int
        Zero padding p on every side.
    pool : int
        Max-pool window and stride k (1: no pool).
    """

    in_c: int
    in_h: int
    in_w: int
    out_c: int
    kernel: int
    stride: int
    padding: int
    pool: int

    @property
    def padded_h(self):
        return self.in_h + 2 * self.padding

    @property
    def padded_w(self):
        return self.in_w + 2 * self.padding

    @property
    def conv_h(self):
        return (self.padded_h - self.kernel) // self.stride + 1

    @property
    def conv_w(self):
        return (self.padded_w - self.kernel) // self.stride + 1

    @property
    def out_h(self):
        return self.conv_h // self.pool

    @property
    def out_w(self):
        return self.conv_w // self.pool

    @property
    def used_h(self):
        """Rows of S^m that some pool window reads (``out_h * pool``): the passes compute
        only these, since the others reach no output (a 7x7 plane pooled by 2 uses 6x6)."""
        return self.out_h * self.pool

    @property
    def used_w(self):
        """Columns of S^m that some pool window reads (``out_w * pool``)."""
        return self.out_w * self.pool

    @property
    def taps(self):
        """h_m^2: the number of kernel positions."""
        return self.kernel * self.kernel

    @property
    def n_weights(self):
        return self.out_c * self.in_c * self.taps

    @property
    def n_params(self):
        return self.n_weights + self.out_c

    @property
    def weight_shape(self):
        """PyTorch's Conv2d layout (out, in, kh, kw)."""
        return (self.out_c, self.in_c, self.kernel, self.kernel)

    @property
    def fan_in(self):
        return self.in_c * self.taps

    def flops(self, n):
        """Multiply-adds x 2 of the forward GEMM W phi for n instances (the used plane
        ``used_h x used_w`` only: the passes compute nothing else).

        Parameters
        ----------
        n : int
            Number of instances.
        """
        return 2.0 * n * self.out_c * self.fan_in * self.used_h * self.used_w


@dataclass(frozen=True)
class DenseGeometry:
    """Sizes of one fully connected layer: in_features -> out_features, ReLU if ``relu``.

    Parameters
    ----------
    in_features : int
        Inputs.
    out_features : int
        Outputs.
    relu : bool
        Whether a ReLU follows (all but the last layer).
    """

    in_features: int
    out_features: int
    relu: bool

    @property
    def n_weights(self):
        return self.out_features * self.in_features

    @property
    def n_params(self):
        return self.n_weights + self.out_features

    @property
    def weight_shape(self):
        """PyTorch's Linear layout (out, in)."""
        return (self.out_features, self.in_features)

    @property
    def fan_in(self):
        return self.in_features

    def flops(self, n):
        return 2.0 * n * self.out_features * self.in_features


def resolve(input_shape, layers):
    """Check a layer stack against ``input_shape`` and return its geometry.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)``.
    layers : sequence of Conv, MaxPool, Dense
        Conv layers (each optionally followed by one MaxPool), then Dense
        layers; the last layer must be Dense (its units are the K outputs).

    Returns
    -------
    list of ConvGeometry and DenseGeometry
    """
    shape = _check_input_shape(input_shape)
    layers = list(layers)
    if not layers or not isinstance(layers[-1], Dense):
        raise ValueError("layers must end with a Dense layer giving the K outputs")
    geometry = []
    c, h, w = shape
    features = None
    for pos, layer in enumerate(layers):
        where = f"layers[{pos}]"
        if isinstance(layer, Conv):
            if features is not None:
                raise ValueError(f"{where}: a Conv layer cannot follow a Dense layer")
            g = _conv_geometry(layer, _following_pool(layers, pos), c, h, w, where)
            geometry.append(g)
            c, h, w = g.out_c, g.out_h, g.out_w
        elif isinstance(layer, MaxPool):
            if pos == 0 or not isinstance(layers[pos - 1], Conv):
                raise ValueError(f"{where}: MaxPool must directly follow a Conv layer")
        elif isinstance(layer, Dense):
            in_features = c * h * w if features is None else features
            g = DenseGeometry(in_features, layer.units, relu=pos != len(layers) - 1)
            _check_fits(where, in_features=g.in_features, n_params=g.n_params)
            geometry.append(g)
            features = layer.units
        else:
            raise TypeError(f"{where}: expected Conv, MaxPool or Dense, got {type(layer).__name__}")
    return geometry


def check_layer_list(layers, name="layers"):
    """``layers`` as a list, each entry a Conv, MaxPool or Dense (order not checked).

    Parameters
    ----------
    layers : list
        The layer list to check.
    name : str, default "layers"
        The argument's name in error messages.
    """
    if not isinstance(layers, (list, tuple)):
        raise TypeError(f"{name} must be a list of Conv/MaxPool/Dense layers, "
                        f"got {type(layers).__name__}")
    for pos, layer in enumerate(layers):
        if not isinstance(layer, (Conv, MaxPool, Dense)):
            raise TypeError(f"{name}[{pos}] must be a Conv, MaxPool or Dense layer, "
                            f"got {type(layer).__name__}")
    return list(layers)


def layer_to_dict(layer):
    """A layer as a JSON-ready dict: ``{"type": "Conv", "filters": 32, ...}``.

    Parameters
    ----------
    layer : Conv, MaxPool or Dense
        The layer.
    """
    return {"type": type(layer).__name__, **dataclasses.asdict(layer)}


def layer_from_dict(spec):
    """The layer of a :func:`layer_to_dict` dict (its sizes checked as usual).

    Parameters
    ----------
    spec : dict
        A dict made by :func:`layer_to_dict`.
    """
    if not isinstance(spec, dict):
        raise TypeError(f"a layer specification must be a dict, got {type(spec).__name__}")
    spec = dict(spec)
    kind = spec.pop("type", None)
    cls = {"Conv": Conv, "MaxPool": MaxPool, "Dense": Dense}.get(kind) if isinstance(
        kind, str) else None
    if cls is None:
        raise ValueError(f"unknown layer type {kind!r} (expected 'Conv', 'MaxPool' or 'Dense') "
                         f"in the layer specification {spec!r}")
    return cls(**spec)


def _check_input_shape(input_shape):
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a (channels, height, width) tuple, got {input_shape!r}")
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (channels, height, width), got {shape!r}")
    return tuple(check_int(f"input_shape[{i}]", v, low=1) for i, v in enumerate(shape))


def _following_pool(layers, pos):
    nxt = layers[pos + 1] if pos + 1 < len(layers) else None
    return nxt.pool_size if isinstance(nxt, MaxPool) else 1


def _check_fits(where, **sizes):
    """Each of ``sizes`` fits the C int in which the kernels and BLAS receive it."""
    for name, value in sizes.items():
        if value > INT_MAX:
            raise ValueError(f"{where}: {name} = {value} exceeds {INT_MAX}, the largest size "
                             "the kernels take (a C int)")


def _conv_geometry(layer, pool, c, h, w, where):
    g = ConvGeometry(c, h, w, layer.filters, layer.kernel_size, layer.stride, layer.padding, pool)
    _check_fits(where, padded_h=g.padded_h, padded_w=g.padded_w,
                padded_plane=g.padded_h * g.padded_w, input_size=g.in_c * g.in_h * g.in_w,
                n_params=g.n_params)
    if g.kernel > g.padded_h or g.kernel > g.padded_w:
        raise ValueError(
            f"{where}: kernel_size {g.kernel} is larger than the padded input "
            f"{g.padded_h}x{g.padded_w} (input {h}x{w}, padding {g.padding})")
    if g.out_h < 1 or g.out_w < 1:
        raise ValueError(
            f"{where}: MaxPool({pool}) leaves no pixels of the {g.conv_h}x{g.conv_w} conv output")
    _check_fits(where, conv_plane=g.conv_h * g.conv_w, output_size=g.out_c * g.out_h * g.out_w)
    return g
