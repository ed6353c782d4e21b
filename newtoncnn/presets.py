"""Ready-made networks, and the layers the estimator builds for any image size."""
from newtoncnn.layers import Conv, Dense, MaxPool, check_layer_list
from newtoncnn.network import CNN

__all__ = ["paper_layers", "paper_network", "default_layers", "resolve_layers"]


def paper_layers(n_classes):
    """The paper's "3-layer CNN": conv 5x5x32 pad 2 -> pool 2 -> conv 3x3x64 pad 1 -> pool 2
    -> conv 3x3x64 pad 1 -> pool 2 -> dense K.

    Parameters
    ----------
    n_classes : int
        K, the units of the last Dense layer.
    """
    return [Conv(32, 5, padding=2), MaxPool(2),
            Conv(64, 3, padding=1), MaxPool(2),
            Conv(64, 3, padding=1), MaxPool(2),
            Dense(n_classes)]


def paper_network(input_shape=(1, 28, 28), n_classes=10, loss="squared", dtype="float32"):
    """The network of Wang, Tan and Lin (2020) for any input size.

    Parameters
    ----------
    input_shape : tuple of int, default (1, 28, 28)
        ``(channels, height, width)``; each side must survive three 2x2 pools (>= 8).
    n_classes : int, default 10
    loss, dtype : see :class:`~newtoncnn.network.CNN`
    """
    return CNN(input_shape, paper_layers(n_classes), loss=loss, dtype=dtype)


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


def resolve_layers(spec, n_classes):
    """A user layer list -> the network's list, with the output layer Dense(K).

    Parameters
    ----------
    spec : list of Conv/MaxPool/Dense
        The layers; ``Dense(n_classes)`` is appended unless the list ends with a
        Dense layer, whose units must then be ``n_classes``.
    n_classes : int
        Number of classes K.
    """
    layers = check_layer_list(spec)
    if layers and isinstance(layers[-1], Dense):
        if layers[-1].units != n_classes:
            raise ValueError(
                f"the last layer of layers is Dense({layers[-1].units}) but y has {n_classes} "
                f"classes: end the list with Dense({n_classes}), or leave the output layer "
                "out and it is appended with the right size")
        return layers
    return layers + [Dense(n_classes)]
