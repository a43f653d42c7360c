"""A seeded visiting order over N items, epoch after epoch, that is a pure function of the draw index.

Training stages ask for "the i-th item of the run" rather than iterating a loader, so a run resumed at any step,
on any number of processes, draws exactly the items an uninterrupted run would have.

Run as (from Python):
    order = SeededOrder(len(rows), seed=0); row = rows[order[17]]
"""

from __future__ import annotations

import numpy as np


class SeededOrder:
    def __init__(self, size: int, seed: int = 0, shuffle: bool = True):
        if size < 1:
            raise ValueError("SeededOrder needs at least one item")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self._epoch, self._permutation = -1, np.arange(size)

    def __getitem__(self, index: int) -> int:
        """The item drawn `index`-th: each epoch is a fresh permutation seeded by (seed, epoch)."""
        epoch, position = divmod(index, self.size)
        if self.shuffle and epoch != self._epoch:
            self._permutation = np.random.default_rng([self.seed, epoch]).permutation(self.size)
            self._epoch = epoch
        return int(self._permutation[position])
