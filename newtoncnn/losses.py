"""Per-instance losses ξ(z; y): value, gradient ∂ξ/∂z and the loss Hessian B applied to u.

Each works on a batch: z is (n, K), y holds class indices (n,). B is never
formed: ``hessian_product`` costs O(K) per instance, and so does
``curvature_factor_product``, a factor L_i of B_i = L_i L_iᵀ applied to a vector (what
an unbiased estimate of diag(G) needs).
"""
import numpy as np

from newtoncnn.validation import LOSSES, check_option

__all__ = ["SquaredLoss", "SoftmaxLoss", "get_loss"]


class SquaredLoss:
    """ξ = ‖z − y‖² with one-hot y (no ½, as in simpleNN), so B = 2 I."""

    name = "squared"

    @staticmethod
    def _residual(z, y):
        r = z.astype(np.float64, copy=True)
        r[np.arange(len(y)), y] -= 1.0
        return r

    def value(self, z, y):
        """Σ_i ξ_i over the batch, in float64.

        Parameters
        ----------
        z : ndarray, shape (n, K)
            Network outputs of a batch.
        y : ndarray of int, shape (n,)
            Class indices.
        """
        r = self._residual(z, y)
        return float(np.einsum("ik,ik->", r, r))

    def value_grad(self, z, y):
        """(Σ_i ξ_i, ∂ξ_i/∂z_i as (n, K) in z's dtype).

        Parameters
        ----------
        z : ndarray, shape (n, K)
            Network outputs of a batch.
        y : ndarray of int, shape (n,)
            Class indices.
        """
        r = self._residual(z, y)
        return float(np.einsum("ik,ik->", r, r)), (2.0 * r).astype(z.dtype)

    def curvature_state(self, z):
        """What B_i depends on (nothing for the squared loss).

        Parameters
        ----------
        z : ndarray, shape (n, K)
            Network outputs of a batch.
        """
        return None

    def hessian_product(self, state, u):
        """B_i u_i = 2 u_i.

        Parameters
        ----------
        state : None
            The curvature state (unused).
        u : ndarray, shape (n, K)
            One vector per instance.
        """
        return 2.0 * u

    def curvature_factor_product(self, state, sigma):
        """L_i σ_i with L_i L_iᵀ = B_i = 2 I: ``√2 σ_i``.

        Parameters
        ----------
        state : None
            Unused (B is constant).
        sigma : (n, K) ndarray
            The σ_i as rows.
        """
        return np.sqrt(2.0).astype(sigma.dtype) * sigma


class SoftmaxLoss:
    """ξ = −log softmax(z)_y; B = diag(p) − p pᵀ with p = softmax(z)."""

    name = "softmax"

    @staticmethod
    def probabilities(z):
        """softmax(z) row by row, in float64.

        Parameters
        ----------
        z : ndarray, shape (n, K)
            Network outputs of a batch.
        """
        z = z.astype(np.float64)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    @staticmethod
    def _log_sum_exp(z):
        z = z.astype(np.float64)
        zmax = z.max(axis=1)
        return zmax + np.log(np.exp(z - zmax[:, None]).sum(axis=1))

    @classmethod
    def log_probabilities(cls, z):
        """log softmax(z), computed stably, in float64.

        Parameters
        ----------
        z : ndarray, shape (n, K)
            Network outputs of a batch.
        """
        return z.astype(np.float64) - cls._log_sum_exp(z)[:, None]

    def value(self, z, y):
        return float(np.sum(self._log_sum_exp(z) - z[np.arange(len(y)), y]))

    def value_grad(self, z, y):
        p = self.probabilities(z)
        rows = np.arange(len(y))
        value = float(np.sum(self._log_sum_exp(z) - z[rows, y]))
        p[rows, y] -= 1.0
        return value, p.astype(z.dtype)

    def curvature_state(self, z):
        """p_i = softmax(z_i), kept for the products.

        Parameters
        ----------
        z : ndarray, shape (n, K)
            Network outputs of a batch.
        """
        return self.probabilities(z).astype(z.dtype)

    def hessian_product(self, p, u):
        """B_i u_i = p_i ⊙ u_i − p_i (p_iᵀ u_i).

        Parameters
        ----------
        p : ndarray, shape (n, K)
            The curvature state (probabilities).
        u : ndarray, shape (n, K)
            One vector per instance.
        """
        return p * (u - np.einsum("ik,ik->i", p, u)[:, None])

    def curvature_factor_product(self, p, sigma):
        """L_i σ_i with L_i L_iᵀ = B_i, L_i = [√p_ik (e_k − p_i)]_k:
        ``√p_i ⊙ σ_i − p_i (√p_iᵀ σ_i)``.

        Parameters
        ----------
        p : (n, K) ndarray
            Probabilities (the curvature state).
        sigma : (n, K) ndarray
            The σ_i as rows.
        """
        sq = np.sqrt(p)
        return sq * sigma - p * np.einsum("ik,ik->i", sq, sigma)[:, None]


def get_loss(name):
    """The loss object for "squared" or "softmax".

    Parameters
    ----------
    name : {"squared", "softmax"}
        The loss.
    """
    losses = {"squared": SquaredLoss, "softmax": SoftmaxLoss}
    return losses[check_option("loss", name, LOSSES)]()
