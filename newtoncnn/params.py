"""The flat parameter vector θ and its per-layer views.

θ is the concatenation over layers of ``[W.ravel(), b]`` with W in PyTorch's
layout: conv ``(out, in, kh, kw)``, dense ``(out, in)``. Seen as a matrix,
a conv W is ``(out, in * kh * kw)``, whose column order (channel, kernel row,
kernel column) is the row order of the im2col matrix φ, so ``W φ`` needs no
reshuffling.
"""
import numpy as np

__all__ = ["ParamLayout"]


class ParamLayout:
    """Offsets of every layer's (W, b) in θ.

    Parameters
    ----------
    geometry : list of ConvGeometry / DenseGeometry
    """

    def __init__(self, geometry):
        self.geometry = geometry
        self.offsets = np.cumsum([0] + [g.n_params for g in geometry]).tolist()
        self.size = self.offsets[-1]

    def weight_matrix(self, theta, m):
        """W^m as an (out, fan_in) view into θ."""
        g = self.geometry[m]
        start = self.offsets[m]
        return theta[start:start + g.n_weights].reshape(g.weight_shape[0], g.fan_in)

    def bias(self, theta, m):
        """b^m as a view into θ."""
        g = self.geometry[m]
        start = self.offsets[m] + g.n_weights
        return theta[start:start + g.weight_shape[0]]

    def layer(self, theta, m):
        """(W^m as (out, fan_in), b^m), both views into θ."""
        return self.weight_matrix(theta, m), self.bias(theta, m)
