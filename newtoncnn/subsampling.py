"""simpleNN's subsets: full blocks of successive random permutations of the instances.

The ``l`` instances are cut into ``R = ceil(l / |S|)`` blocks of one random
permutation, wrapping around so every block is full; one block per Newton
iteration, a new permutation every ``R`` iterations.
"""
import math

import numpy as np

from newtoncnn.validation import check_random_state

__all__ = ["subsample_size", "subsample_blocks", "BlockSchedule"]


def subsample_size(n_samples, subsample):
    """``|S| = ceil(subsample * l)``, clipped to ``[1, l]``.

    A relative slack of 1e-9 absorbs floating-point error so that, e.g.,
    ``0.05 * 60000`` gives 3000 and not 3001.

    Parameters
    ----------
    n_samples : int
        Number ``l`` of instances.
    subsample : float in (0, 1]
        The fraction.
    """
    exact = subsample * n_samples
    size = math.ceil(exact - 1e-9 * exact)
    return min(max(size, 1), n_samples)


def subsample_blocks(n_samples, subsample, random_state=None):
    """Yield simpleNN's subsets forever: full blocks of successive permutations.

    Parameters
    ----------
    n_samples : int
        Number ``l`` of instances.
    subsample : float in (0, 1]
        Fraction of instances per block; ``|S| = subsample_size(l, subsample)``.
    random_state : None, int or numpy.random.Generator
        Seeds ``numpy.random.default_rng``; each cycle draws
        ``rng.permutation(l)``.

    Yields
    ------
    idx : ndarray of intp, shape (len(S),)
        Block ``j`` of the current cycle is ``perm[(j |S| + arange(|S|)) % l]``
        for ``j = 0 .. R-1``, ``R = ceil(l / |S|)``; the last block wraps
        around to the start of the permutation so it is full. Each block is
        returned sorted: it is a set of instances, and sorted indices read the
        data in memory order and make ``subsample=1`` exactly ``arange(l)``.
    """
    yield from BlockSchedule(n_samples, subsample, check_random_state(random_state))


class BlockSchedule:
    """The iterator behind :func:`subsample_blocks`, with its state exposed.

    The state is ``rng`` (its ``bit_generator.state``), the current
    permutation ``perm`` (None before the first block) and ``pos``, the
    number of blocks of ``perm`` already handed out; a new permutation is
    drawn when ``pos`` reaches ``n_blocks``. Restoring the three restores
    the sequence of subsets exactly.

    Parameters
    ----------
    n_samples : int
        Number ``l`` of instances.
    subsample : float in (0, 1]
        Fraction of instances per block.
    rng : numpy.random.Generator
        Draws the permutations.
    """

    def __init__(self, n_samples, subsample, rng):
        self.n_samples = n_samples
        self.size = subsample_size(n_samples, subsample)
        self.n_blocks = -(-n_samples // self.size)
        self.offsets = np.arange(self.size)
        self.rng = rng
        self.perm = None
        self.pos = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.perm is None or self.pos >= self.n_blocks:
            self.perm = self.rng.permutation(self.n_samples)
            self.pos = 0
        idx = self.perm[(self.pos * self.size + self.offsets) % self.n_samples]
        self.pos += 1
        return np.sort(idx)
