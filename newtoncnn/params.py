"""The flat parameter vector θ and its per-layer views.

Layer m's block of θ is the row-major matrix ``[W | b]`` of shape
``(out, fan_in + 1)``, W in PyTorch's layout seen as a matrix: conv
``(out, in * kh * kw)`` (column order channel, kernel row, kernel column: the
row order of the im2col matrix φ), dense ``(out, in)``. With a row of ones
under φ, ``[W | b] [φ; 1ᵀ]`` is the whole affine map in one GEMM, and the
gradient block ``dS [φ; 1ᵀ]ᵀ`` holds ∂/∂W and ∂/∂b together.
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

    def augmented(self, theta, m):
        """[W^m | b^m] as an (out, fan_in + 1) C-contiguous view into θ.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ in the model's dtype.
        m : int
            Layer index, 0-based.
        """
        g = self.geometry[m]
        start = self.offsets[m]
        return theta[start:start + g.n_params].reshape(g.weight_shape[0], g.fan_in + 1)

    def weight_matrix(self, theta, m):
        """W^m as an (out, fan_in) view into θ (rows fan_in + 1 apart).

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ in the model's dtype.
        m : int
            Layer index, 0-based.
        """
        return self.augmented(theta, m)[:, :-1]

    def bias(self, theta, m):
        """b^m as a (strided) view into θ.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ in the model's dtype.
        m : int
            Layer index, 0-based.
        """
        return self.augmented(theta, m)[:, -1]

    def layer(self, theta, m):
        """(W^m as (out, fan_in), b^m), both views into θ.

        Parameters
        ----------
        theta : ndarray, shape (n_params,)
            Flat parameter vector θ in the model's dtype.
        m : int
            Layer index, 0-based.
        """
        return self.weight_matrix(theta, m), self.bias(theta, m)
