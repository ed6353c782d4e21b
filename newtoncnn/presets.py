"""Ready-made networks."""
from newtoncnn.layers import Conv, Dense, MaxPool
from newtoncnn.network import CNN

__all__ = ["paper_layers", "paper_network"]


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
